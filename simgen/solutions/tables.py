"""The species catalog (``catalogs/solutions/species.yaml``) as arrays the kernels use.

:func:`species_table` returns a :class:`SpeciesTable`: component ions (the simulator's ``c_<key>`` parameters),
speciation products (complexes), the reactions linking them, the salts compositions are drawn from, and the flat
Raman and UV-vis band tables (one row per band, with the species it belongs to).
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import yaml

from .. import catalogs
from ..errors import RecipeError

__all__ = ["SpeciesTable", "BandTable", "species_table", "CATALOG"]

CATALOG = "solutions/species.yaml"
ROLES = {"": 0, "hb_strong": 1, "hb_weak": 2}
#: area of a unit-height, unit-FWHM Gaussian and Lorentzian
GAUSS_AREA = math.sqrt(math.pi / (4.0 * math.log(2.0)))
LORENTZ_AREA = math.pi / 2.0


@dataclass(frozen=True, eq=False)
class BandTable:
    """One row per band.  ``species``: index into :attr:`SpeciesTable.species` (``water`` = the last slot);
    ``group``: index of the species whose strength it carries (for per-species strength randomisation)."""

    species: np.ndarray       # (B,) int
    group: np.ndarray         # (B,) int
    pos: np.ndarray           # (B,) cm-1 (Raman shift, or UV-vis band maximum as wavenumber)
    fwhm: np.ndarray          # (B,) cm-1
    eta: np.ndarray           # (B,) Lorentzian fraction
    strength: np.ndarray      # (B,) Raman: relative area per mole; UV-vis: peak molar absorptivity L/mol/cm
    shift_I: np.ndarray       # (B,) cm-1 per mol/kg
    shift_sqrtI: np.ndarray   # (B,) cm-1 per (mol/kg)^0.5
    width_I: np.ndarray       # (B,) cm-1 per mol/kg
    role: np.ndarray          # (B,) int: 0, 1 (strongly H-bonded O-H stretch), 2 (weakly H-bonded)
    label: tuple              # (B,) "species: mode"

    def __len__(self):
        return len(self.pos)


@dataclass(frozen=True, eq=False)
class SpeciesTable:
    components: tuple           # keys of the component ions (parameters c_<key>), catalog order
    species: tuple              # components + complexes (speciation products), then "water" is index S
    formula: dict               # key -> formula
    charge: np.ndarray          # (S,)
    volume: np.ndarray          # (K,) partial molar volumes of the components, cm3/mol
    water_hb: np.ndarray        # (S,)
    nu: np.ndarray              # (R, S) reaction stoichiometry
    logK: np.ndarray            # (R,)
    reaction_names: tuple       # (R,)
    salts: dict                 # salt key -> {"formula": str, "ions": {component: stoich}, "solubility": float|None}
    raman: BandTable
    uvvis: BandTable
    water_molality: float
    water_density: float
    activity_A: float
    davies_b: float
    davies_I_max: float
    digest: str                 # sha256 of the catalog file

    @property
    def n_species(self) -> int:
        return len(self.species)

    def index(self, key: str) -> int:
        return self.species.index(key)


def _num(v, where, src):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RecipeError(where, v, "a number", src)
    return float(v)


def _bands(raw, kind, where, src):
    out = []
    for j, b in enumerate(raw or []):
        w = f"{where}.{kind}[{j}]"
        if not isinstance(b, dict):
            raise RecipeError(w, b, "a mapping describing one band", src)
        if kind == "raman":
            pos = _num(b.get("pos"), f"{w}.pos", src)
            eta = _num(b.get("eta", 0.0), f"{w}.eta", src)
            strength = _num(b.get("xsec"), f"{w}.xsec", src)
        else:
            nm = _num(b.get("nm"), f"{w}.nm", src)
            pos = 1e7 / nm
            eta = _num(b.get("eta", 0.0), f"{w}.eta", src)
            strength = _num(b.get("eps"), f"{w}.eps", src)
        fwhm = _num(b.get("fwhm"), f"{w}.fwhm", src)
        if fwhm <= 0 or not 0 <= eta <= 1 or strength < 0:
            raise RecipeError(w, b, "fwhm > 0, 0 <= eta <= 1 and a non-negative strength", src)
        if "src" not in b:
            raise RecipeError(f"{w}.src", None, "the key of the literature source of this band", src)
        role = b.get("role", "")
        if role not in ROLES:
            raise RecipeError(f"{w}.role", role, "one of " + ", ".join(r for r in ROLES if r), src)
        out.append(dict(pos=pos, fwhm=fwhm, eta=eta, strength=strength,
                        shift_I=_num(b.get("shift_I", 0.0), f"{w}.shift_I", src),
                        shift_sqrtI=_num(b.get("shift_sqrtI", 0.0), f"{w}.shift_sqrtI", src),
                        width_I=_num(b.get("width_I", 0.0), f"{w}.width_I", src),
                        role=ROLES[role], mode=str(b.get("mode", ""))))
    return out


def _table(rows):
    def col(k, dt=np.float64):
        return np.array([r[k] for r in rows], dtype=dt)
    return BandTable(col("species", np.int64), col("group", np.int64), col("pos"), col("fwhm"), col("eta"),
                     col("strength"), col("shift_I"), col("shift_sqrtI"), col("width_I"), col("role", np.int64),
                     tuple(r["label"] for r in rows))


@functools.lru_cache(maxsize=None)
def _load(path: str, digest: str) -> SpeciesTable:
    src = path
    with open(path, "rb") as f:
        raw = yaml.safe_load(f)
    sources = raw.get("sources") or {}
    sp_raw = raw["species"]
    cx_raw = raw.get("complexes") or {}
    components = tuple(sp_raw)
    products = [k for k, c in cx_raw.items() if "same_as" not in c]
    species = components + tuple(products)
    S = len(species)
    idx = {k: i for i, k in enumerate(species)}
    water = S

    def check_src(v, where):
        keys = v.values() if isinstance(v, dict) else [v]
        for key in keys:
            if key != "estimate" and key not in sources:
                raise RecipeError(where, key, "a key of the catalog's sources", src)

    charge = np.zeros(S)
    water_hb = np.zeros(S)
    formula = {}
    volume = np.zeros(len(components))
    own_raman, own_uv = {}, {}
    for i, k in enumerate(components):
        s = sp_raw[k]
        if not k.isidentifier() or k != k.lower():
            raise RecipeError(f"species.{k}", k, "a lowercase identifier", src)
        charge[i] = _num(s.get("charge"), f"species.{k}.charge", src)
        volume[i] = _num(s.get("volume"), f"species.{k}.volume", src)
        water_hb[i] = _num(s.get("water_hb", 0.0), f"species.{k}.water_hb", src)
        formula[k] = str(s.get("formula", k))
        own_raman[k] = _bands(s.get("raman"), "raman", f"species.{k}", src)
        own_uv[k] = _bands(s.get("uvvis"), "uvvis", f"species.{k}", src)
        check_src(s.get("src", {}), f"species.{k}.src")
        for b in (s.get("raman") or []) + (s.get("uvvis") or []):
            check_src(b["src"], f"species.{k}.band.src")

    reactions, names, logK = [], [], []
    for k, c in cx_raw.items():
        where = f"complexes.{k}"
        prod = c.get("same_as", k)
        if prod not in idx:
            raise RecipeError(f"{where}.same_as", prod, "a species key", src)
        nu = np.zeros(S)
        for r, v in (c.get("from") or {}).items():
            if r not in idx:
                raise RecipeError(f"{where}.from", r, "species keys", src)
            nu[idx[r]] -= v
        for r, v in (c.get("releases") or {}).items():
            if r not in idx:
                raise RecipeError(f"{where}.releases", r, "species keys", src)
            nu[idx[r]] += v
        nu[idx[prod]] += 1.0
        reactions.append(nu)
        names.append(k)
        logK.append(_num(c.get("logK"), f"{where}.logK", src))
        check_src(c.get("src", {}), f"{where}.src")
        if "same_as" in c:
            continue
        i = idx[k]
        q = -sum(nu[j] * charge[j] for j in range(S) if j != i)
        charge[i] = q
        formula[k] = str(c.get("formula", k))
        water_hb[i] = sum(water_hb[idx[r]] * v for r, v in (c.get("from") or {}).items())
    # Raman/UV bands of complexes: inherited (with contact replacement) + own
    raman_rows, uv_rows = [], []

    def add(rows, bands, sp, group, scale, key):
        for b in bands:
            if scale * b["strength"] == 0:
                continue
            rows.append({**b, "species": sp, "group": group, "strength": b["strength"] * scale,
                         "label": f"{key}: {b['mode']}"})

    for k in components:
        add(raman_rows, own_raman[k], idx[k], idx[k], 1.0, formula[k])
        add(uv_rows, own_uv[k], idx[k], idx[k], 1.0, formula[k])
    for k in products:
        c = cx_raw[k]
        where = f"complexes.{k}"
        i = idx[k]
        inherit = c.get("inherit") or []
        rep = c.get("contact_replaces")
        fc = _num(c.get("contact_fraction", 0.0), f"{where}.contact_fraction", src) if rep else 0.0
        if not 0 <= fc <= 1:
            raise RecipeError(f"{where}.contact_fraction", fc, "a fraction in [0, 1]", src)
        for h in inherit:
            if h not in own_raman:
                raise RecipeError(f"{where}.inherit", h, "component species keys", src)
            add(raman_rows, own_raman[h], i, idx[h], (1.0 - fc) if h == rep else 1.0, formula[k])
        contact = _bands(c.get("contact_raman"), "raman", where, src)
        add(raman_rows, contact, i, i, fc, formula[k] + " (contact)")
        add(raman_rows, _bands(c.get("raman"), "raman", where, src), i, i, 1.0, formula[k])
        if "uvvis" in c:
            add(uv_rows, _bands(c.get("uvvis"), "uvvis", where, src), i, i, 1.0, formula[k])
        else:
            for h in inherit:
                add(uv_rows, own_uv[h], i, idx[h], 1.0, formula[k])
    w = raw["water"]
    add(raman_rows, _bands(w.get("raman"), "raman", "water", src), water, water, 1.0, "H2O")
    add(uv_rows, _bands(w.get("uvvis"), "uvvis", "water", src), water, water, 1.0, "H2O")

    salts = {}
    for key, s in (raw.get("salts") or {}).items():
        ions = {}
        for ion, v in (s.get("ions") or {}).items():
            if ion not in components:
                raise RecipeError(f"salts.{key}.ions", ion, "component ion keys: " + ", ".join(components), src)
            ions[ion] = _num(v, f"salts.{key}.ions.{ion}", src)
        q = sum(charge[idx[ion]] * v for ion, v in ions.items())
        if abs(q) > 1e-12:
            raise RecipeError(f"salts.{key}.ions", s.get("ions"), f"an electroneutral formula unit (charge {q:g})",
                              src)
        salts[key] = {"formula": str(s.get("formula", key)), "ions": ions, "solubility": s.get("solubility")}

    return SpeciesTable(
        components=components, species=species, formula=formula, charge=charge, volume=volume,
        water_hb=water_hb, nu=np.array(reactions).reshape(len(reactions), S), logK=np.array(logK),
        reaction_names=tuple(names), salts=salts, raman=_table(raman_rows), uvvis=_table(uv_rows),
        water_molality=float(w.get("molality", 55.508)), water_density=float(w.get("density", 0.99705)),
        activity_A=float(raw.get("activity_A", 0.509)), davies_b=float(raw.get("davies_b", 0.3)),
        davies_I_max=float(raw.get("davies_I_max", 1.0)), digest=digest)


def species_table() -> SpeciesTable:
    """The species catalog found along the catalog search path (cached per file content)."""
    path = catalogs.find(CATALOG)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return _load(str(path), digest)
