"""Structures for the PDF simulator: loading (ase.Atoms, CIF, xyz, catalog names), nanoparticles and disorder.

Catalog phases live in ``catalogs/pdf/structures/<name>.cif`` (sources in ``catalogs/pdf/structures/README.md``).
Nanoparticles: a spherical cut of any crystal, or ASE's icosahedra, decahedra and octahedra for fcc metals.
Disorder: isotropic/anisotropic strain (cell' = cell (I + e)), rattle (Gaussian displacements), vacancies and
substitutions (explicit and random for clusters; as mean-field occupancies / mixed scatterers for bulk crystals).
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..catalogs import catalog_dirs, find
from ..errors import ParameterError

__all__ = ["Model", "check_uani", "as_model", "model_from_cif", "model_from_diffpy", "load_atoms", "list_phases", "phase_model", "strain_matrix", "strained_cell",
           "sphere_cut", "fcc_cluster", "equivalent_diameter", "rattle", "apply_vacancies", "apply_substitution"]


@dataclass
class Model:
    """An atomic model: periodic (cell rows in A, fractional coordinates) or a finite cluster (cartesian).

    ``symbols`` are element names; ``occupancy`` per site (default 1); ``uiso`` per site (A^2, optional).
    """

    symbols: list
    positions: np.ndarray               # cartesian (A), shape (n, 3)
    cell: np.ndarray | None = None      # 3x3 rows (A) when periodic
    occupancy: np.ndarray | None = None
    uiso: np.ndarray | None = None
    name: str = ""
    uani: np.ndarray | None = None      # anisotropic U per site, Cartesian (n, 3, 3) in A^2 (optional)

    def __post_init__(self):
        self.positions = np.ascontiguousarray(np.asarray(self.positions, dtype=np.float64).reshape(-1, 3))
        self.symbols = [str(s) for s in self.symbols]
        n = len(self.symbols)
        if n == 0:
            raise ParameterError("structure", self.name or "(empty)", "a structure with at least one atom")
        if self.positions.shape[0] != n:
            raise ParameterError("structure.positions", self.positions.shape, f"{n} positions, one per symbol")
        if not np.isfinite(self.positions).all():
            raise ParameterError("structure.positions", "non-finite coordinates", "finite coordinates in A")
        self.occupancy = np.ones(n) if self.occupancy is None else np.asarray(self.occupancy, float).reshape(n)
        if self.uani is not None:
            self.uani = check_uani(self.uani, n, "structure.uani")
        if self.cell is not None:
            self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
            if abs(np.linalg.det(self.cell)) < 1e-6:
                self.cell = None

    @property
    def periodic(self) -> bool:
        return self.cell is not None

    @property
    def frac(self) -> np.ndarray:
        return np.linalg.solve(self.cell.T, self.positions.T).T

    @property
    def volume(self) -> float:
        return abs(float(np.linalg.det(self.cell))) if self.periodic else 0.0

    @classmethod
    def from_atoms(cls, atoms, periodic: bool | None = None, name: str = "") -> "Model":
        if periodic is None:
            periodic = bool(np.all(atoms.pbc)) and atoms.cell.rank == 3
        occ = None
        if "occupancy" in atoms.arrays:
            occ = atoms.arrays["occupancy"]
        # optional per-atom ADPs carried by the Atoms object: arrays["uiso"] (A^2) and arrays["uani"] (Cartesian
        # U, (n, 3, 3) or (n, 9), A^2); used when pdf_from_model is called with uiso=None
        uiso = np.asarray(atoms.arrays["uiso"], float) if "uiso" in atoms.arrays else None
        uani = np.asarray(atoms.arrays["uani"], float).reshape(-1, 3, 3) if "uani" in atoms.arrays else None
        if uani is not None and uiso is None:
            uiso = np.trace(uani, axis1=1, axis2=2) / 3.0
        return cls(atoms.get_chemical_symbols(), atoms.positions.copy(),
                   np.array(atoms.cell) if periodic else None, occ, uiso, name, uani)


def check_uani(uani, n: int, name: str = "uani") -> np.ndarray:
    """Anisotropic U as (n, 3, 3) Cartesian A^2: symmetric, positive semi-definite, finite; a 3x3 is used for
    every atom."""
    try:
        a = np.asarray(uani, dtype=np.float64)
        a = np.ascontiguousarray(np.broadcast_to(a, (n, 3, 3)) if a.shape == (3, 3) else a.reshape(n, 3, 3))
    except (ValueError, TypeError):
        raise ParameterError(name, np.shape(uani), f"a 3x3 matrix or one 3x3 per atom ({n}, 3, 3), in A^2") \
            from None
    if not np.isfinite(a).all():
        raise ParameterError(name, "non-finite values", "finite U in A^2")
    if np.abs(a - a.transpose(0, 2, 1)).max() > 1e-9:
        raise ParameterError(name, "a non-symmetric tensor", "symmetric U (U_ij = U_ji)")
    ev = np.linalg.eigvalsh(a)
    if ev.min() < -1e-12:
        k = int(np.argmin(ev.min(1)))
        raise ParameterError(name, f"atom {k} with eigenvalue {ev[k].min():.3g}", "positive semi-definite U (A^2)")
    return a



def list_phases() -> list[str]:
    out = set()
    for d in catalog_dirs():
        sd = d / "pdf" / "structures"
        if sd.is_dir():
            out.update(p.stem for p in sd.glob("*.cif"))
    return sorted(out)


def load_atoms(src):
    """ase.Atoms from an Atoms object, a file path (CIF, xyz, anything ase.io reads) or a catalog phase name."""
    import ase
    import ase.io
    if isinstance(src, ase.Atoms):
        return src.copy()
    p = Path(str(src)).expanduser()
    if not p.is_file():
        try:
            p = find(f"pdf/structures/{src}.cif")
        except FileNotFoundError:
            import difflib
            close = difflib.get_close_matches(str(src), list_phases(), n=1)
            raise ParameterError("structure", src, "an ase.Atoms, a structure file or a catalog phase ("
                                 + ", ".join(list_phases()) + ")" + (f"; did you mean '{close[0]}'?" if close else "")
                                 ) from None
    try:
        return _read_cached(str(p), os.path.getmtime(p)).copy()
    except ParameterError:
        raise
    except Exception as exc:
        raise ParameterError("structure", str(p), f"a readable structure file ({type(exc).__name__}: {exc})") \
            from None


@functools.lru_cache(maxsize=64)
def _read_cached(path: str, mtime: float):
    import ase.io
    atoms = ase.io.read(path)
    if path.lower().endswith(".xyz"):
        atoms.pbc = False
    return atoms


def as_model(src, periodic: bool | None = None) -> Model:
    if isinstance(src, Model):
        return src
    atoms = load_atoms(src)
    name = str(src) if not hasattr(src, "get_chemical_formula") else src.get_chemical_formula()
    if len(atoms) == 0:
        raise ParameterError("structure", name, "a structure with at least one atom")
    return Model.from_atoms(atoms, periodic=periodic, name=name)


def model_from_diffpy(stru, name: str = "") -> Model:
    """Model from a diffpy.structure Structure, keeping occupancies, U_iso(eq) and anisotropic U.

    diffpy (like CIF) holds U_ij on the crystal axes normalised by the reciprocal lengths; the Cartesian tensor is
    U_cart = M^T U M with M = lattice.normbase (rows a_k |a*_k|) (Grosse-Kunstleve & Adams, J. Appl. Cryst. 35,
    477 (2002)).  The model is periodic (cell = lattice.base rows) unless the lattice is diffpy's default unit
    cube of a non-periodic structure (all cell lengths 1 A)."""
    lat = stru.lattice
    if len(stru) == 0:
        raise ParameterError("structure", name or "(empty)", "a structure with at least one atom")
    base = np.asarray(lat.base, dtype=np.float64)
    nb = np.asarray(lat.normbase, dtype=np.float64)
    xyz = np.array([a.xyz for a in stru], dtype=np.float64)
    uani = np.array([nb.T @ np.asarray(a.U, dtype=np.float64) @ nb for a in stru])
    periodic = not np.allclose(base, np.eye(3))
    return Model([a.element for a in stru], xyz @ base, base if periodic else None,
                 np.array([a.occupancy for a in stru], dtype=np.float64),
                 np.trace(uani, axis1=1, axis2=2) / 3.0, name, uani)


def model_from_cif(path, name: str = "") -> Model:
    """Model of a CIF read by diffpy.structure (symmetry-expanded; aniso_U loops kept as Cartesian ``uani``).

    Use with ``pdf_from_model(model, uiso=None)`` so the model's own (anisotropic) ADPs are used."""
    try:
        from diffpy.structure import loadStructure
        stru = loadStructure(str(path))
    except Exception as exc:
        raise ParameterError("structure", str(path), f"a CIF readable by diffpy.structure ({type(exc).__name__}: "
                             f"{exc})") from None
    return model_from_diffpy(stru, name or Path(str(path)).stem)


@functools.lru_cache(maxsize=64)
def phase_model(name: str) -> Model:
    """The catalog phase ``name`` as a periodic Model (cached)."""
    m = as_model(name, periodic=True)
    m.name = name
    return m


# -------------------------------------------------------------------------------------------------- disorder
def strain_matrix(iso: float = 0.0, aniso=(0.0, 0.0, 0.0)) -> np.ndarray:
    """I + e for an isotropic strain ``iso`` and extra normal strains along a, b, c (``aniso``)."""
    e = np.diag([(1 + iso) * (1 + aniso[0]), (1 + iso) * (1 + aniso[1]), (1 + iso) * (1 + aniso[2])])
    return e


def strained_cell(cell: np.ndarray, iso: float = 0.0, aniso=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Strain along the cell's own axes: row vector a_k is scaled by (1+iso)(1+aniso_k)."""
    s = np.array([(1 + iso) * (1 + aniso[k]) for k in range(3)])
    return np.asarray(cell, float) * s[:, None]


def sphere_cut(model: Model, diameter: float, center=None, cell: np.ndarray | None = None) -> Model:
    """Atoms of the (optionally strained) crystal inside a sphere of ``diameter`` (A) around ``center``
    (fractional offset from the origin, default a lattice site so small spheres stay centred)."""
    if not model.periodic:
        raise ParameterError("structure", model.name, "a periodic crystal to cut a sphere from")
    if not diameter > 0:
        raise ParameterError("diameter", diameter, "a positive diameter in A")
    c = model.cell if cell is None else np.asarray(cell, float)
    frac = model.frac % 1.0
    rad = 0.5 * diameter
    recip = np.linalg.inv(c).T
    widths = 1.0 / np.linalg.norm(recip, axis=1)
    nrep = np.ceil(rad / widths).astype(int) + 1
    ctr = np.zeros(3) if center is None else np.asarray(center, float)
    grid = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in nrep], indexing="ij"), -1).reshape(-1, 3)
    pos_f = (frac[None, :, :] + grid[:, None, :] - ctr).reshape(-1, 3)
    pos = pos_f @ c
    keep = np.einsum("ij,ij->i", pos, pos) <= rad * rad
    idx = np.tile(np.arange(len(frac)), len(grid))[keep]
    if not keep.any():
        raise ParameterError("diameter", diameter, "a sphere large enough to hold at least one atom")
    return Model([model.symbols[i] for i in idx], pos[keep], None, model.occupancy[idx], None,
                 f"{model.name} sphere d={diameter:g}")


def equivalent_diameter(natoms: int, number_density: float) -> float:
    """Diameter (A) of the sphere holding ``natoms`` at the bulk ``number_density`` (1/A^3)."""
    return (6.0 * natoms / (math.pi * number_density)) ** (1.0 / 3.0)


@functools.lru_cache(maxsize=256)
def _fcc_cluster_cached(shape: str, symbol: str, a: float, size: int):
    from ase.cluster import Decahedron, Icosahedron, Octahedron
    if shape == "icosahedron":
        at = Icosahedron(symbol, noshells=int(size), latticeconstant=a)
    elif shape == "decahedron":
        at = Decahedron(symbol, p=int(size), q=max(1, int(size) // 2), r=0, latticeconstant=a)
    elif shape == "octahedron":
        at = Octahedron(symbol, length=int(size), cutoff=max(0, (int(size) - 1) // 3), latticeconstant=a)
    else:
        raise ParameterError("shape", shape, "sphere, icosahedron, decahedron or octahedron")
    pos = at.positions - at.positions.mean(0)
    return pos


def fcc_cluster(shape: str, symbol: str, a: float, diameter: float) -> tuple[np.ndarray, int]:
    """Positions of an ASE ``shape`` cluster of an fcc metal whose volume-equivalent diameter is closest to
    ``diameter`` (A); returns (positions, size parameter)."""
    rho = 4.0 / a ** 3
    best = None
    for size in range(2, 40):
        pos = _fcc_cluster_cached(shape, symbol, round(float(a), 6), size)
        d = equivalent_diameter(len(pos), rho)
        err = abs(d - diameter)
        if best is None or err < best[0]:
            best = (err, pos, size)
        if d > diameter:
            break
    return best[1].copy(), best[2]


def rattle(pos: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Independent Gaussian displacements (sigma in A per Cartesian component)."""
    if sigma <= 0:
        return pos
    return pos + rng.normal(0.0, sigma, size=pos.shape)


def apply_vacancies(n: int, fraction: float, rng: np.random.Generator, candidates=None) -> np.ndarray:
    """Boolean mask of atoms kept after removing round(fraction * len(candidates)) random atoms."""
    keep = np.ones(n, dtype=bool)
    if fraction <= 0:
        return keep
    cand = np.arange(n) if candidates is None else np.asarray(candidates)
    k = int(round(fraction * len(cand)))
    k = min(k, max(len(cand) - 1, 0)) if len(cand) == n else min(k, len(cand))
    if k > 0:
        keep[rng.choice(cand, size=k, replace=False)] = False
    return keep


def apply_substitution(symbols: list, host: str, dopant: str, fraction: float, rng: np.random.Generator) -> list:
    """Replace round(fraction * N_host) random ``host`` atoms by ``dopant``."""
    if fraction <= 0 or not host or not dopant:
        return list(symbols)
    sym = np.array(symbols, dtype=object)
    cand = np.flatnonzero(sym == host)
    k = int(round(fraction * len(cand)))
    if k > 0:
        sym[rng.choice(cand, size=k, replace=False)] = dopant
    return list(sym)
