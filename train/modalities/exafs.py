"""EXAFS adapter: XAFS column files (XDI 1.0, '#'-commented .xmu/.dat/.chi columns), the one E0 finder and the
AUTOBK-like chi(k) extraction, and preparation onto a model's k (or energy) axis.

Preparation (simulator ``exafs``): with ``output: chi`` (k, 1/A), exactly the simulator's own
(:func:`simgen.exafs.background.measured_chi`: AUTOBK-like background, rbkg 1 A, E0 = the steepest rise within
+-30 eV of the tabulated edge) giving chi(k) k^k_weight on the model's k grid; refused when the data end before
the model's k_max.  With ``output: mu`` (energy, eV relative to the tabulated edge): pre-edge line removed,
divided by the edge step.  Option: ``e0`` (eV).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from simgen.simulator import Axis

from ..measurements import Measurement, MeasurementError
from ..measurements.columns import COMMENT, floats, numeric_block, read_columns, sorted_axis, text_lines
from ..prepare import Prepared, TargetSpec, check_units, covers, rebin, refuse, span
from . import Adapter, OutOfDomain

__all__ = ["read_xdi", "read_xafs_columns", "read_dat", "find_e0", "extract_chi", "prepare_exafs", "EXAFSAdapter"]


# ------------------------------------------------------------------------------------------------ XAFS
_EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")


def _temperature(text: str | None):
    if not text:
        return None
    t = text.strip().lower()
    if "room" in t or t in ("rt", "ambient"):
        return 295.0
    m = re.match(r"^([-+]?\d+(?:\.\d*)?)\s*(k|c)?\b", t)
    if not m:
        return None
    v = float(m.group(1))
    return v + 273.15 if m.group(2) == "c" else v


def _xafs_meta(path: Path, header: dict) -> dict:
    low = {k.lower(): v for k, v in header.items()}
    meta: dict = {}
    el = low.get("element.symbol") or low.get("atom") or low.get("element")
    if el:
        meta["element"] = el.split()[0].capitalize()
    edge = low.get("element.edge") or low.get("edge")
    if edge:
        edge = edge.split()[0].upper()
        if edge in _EDGES:
            meta["edge"] = edge
    e0 = low.get("scan.edge_energy")
    if e0:
        try:
            meta["edge_energy_eV"] = float(e0.split()[0])
        except ValueError:
            pass
    if "edge_energy_eV" not in meta and "element" in meta and "edge" in meta:
        try:
            from simgen.exafs.edges import edge_energy
            meta["edge_energy_eV"] = edge_energy(meta["element"], meta["edge"])
            meta["edge_energy_source"] = "xraydb"
        except Exception:  # unknown element: leave it to the preparation to find E0
            pass
    t = _temperature(low.get("sample.temperature") or low.get("temp") or low.get("temperature"))
    if t is None:
        name = (low.get("sample.name", "") + " " + path.stem).lower()
        m = re.search(r"(\d+(?:\.\d+)?)\s*k\b", name.replace("_", " "))
        t = float(m.group(1)) if m else (295.0 if re.search(r"\brt\b|room", name.replace("_", " ")) else None)
    if t is not None:
        meta["temperature_K"] = t
    return meta


def _mu_from_columns(path, labels: dict, data: np.ndarray):
    """mu(E) from named columns: a mu column, else ln(i0/itrans), else ifluor/i0."""
    for name in ("mutrans", "mu", "xmu", "mufluor", "mutrans_norm", "normtrans", "norm"):
        if name in labels:
            return data[:, labels[name]], name
    if "i0" in labels and ("itrans" in labels or "i1" in labels or "it" in labels):
        it = data[:, labels.get("itrans", labels.get("i1", labels.get("it")))]
        i0 = data[:, labels["i0"]]
        if np.any(i0 <= 0) or np.any(it <= 0):
            raise MeasurementError(path, "i0/itrans hold non-positive values; cannot form ln(i0/itrans)")
        return np.log(i0 / it), "ln(i0/itrans)"
    if "i0" in labels and "ifluor" in labels:
        return data[:, labels["ifluor"]] / data[:, labels["i0"]], "ifluor/i0"
    return None, None


def read_xdi(path) -> Measurement:
    """XDI 1.0: '# XDI/1.0' first line, '# Key.sub: value' header, '# ///' then free comments, then columns."""
    path = Path(path)
    lines = text_lines(path)
    if not lines or not lines[0].lstrip("#% ").upper().startswith("XDI/"):
        raise MeasurementError(path, f"first line {lines[0][:30]!r} is not an XDI version line ('# XDI/1.0 ...')")
    header, labels = {}, {}
    units = {}
    for ln in lines:
        if not ln.startswith("#"):
            break
        body = ln.lstrip("#").strip()
        m = re.match(r"^([A-Za-z_][\w.]*)\s*:\s*(.*)$", body)
        if m:
            header.setdefault(m.group(1), m.group(2).strip())
            if m.group(1).lower().startswith("column."):
                try:
                    k = int(m.group(1).split(".")[1]) - 1
                except ValueError:
                    raise MeasurementError(path, f"header {m.group(1)!r}: expected Column.<number>") from None
                parts = m.group(2).split()
                if parts:
                    labels[parts[0].lower()] = k
                    if len(parts) > 1:
                        units[parts[0].lower()] = parts[1]
    data, _ = numeric_block(path, lines)
    if "energy" not in labels:
        raise MeasurementError(path, "no 'Column.N: energy' header line")
    for lab, k in labels.items():
        if k >= data.shape[1]:
            raise MeasurementError(path, f"header Column.{k + 1} ({lab}) but the data have {data.shape[1]} columns")
    mu, how = _mu_from_columns(path, labels, data)
    if mu is None:
        raise MeasurementError(path, f"no absorption column: expected mutrans/mu/mufluor or i0 with itrans/ifluor "
                               f"(columns: {', '.join(labels)})")
    e = data[:, labels["energy"]]
    if units.get("energy", "eV").lower() == "kev":
        e = e * 1000.0
    e, (mu,) = sorted_axis(path, e, [mu], "energy")
    meta = {"format": "XDI", "mu_from": how, **_xafs_meta(path, header)}
    return Measurement(e, mu, "energy", "eV", "mu(E)", "exafs", meta)


def read_xafs_columns(path) -> Measurement:
    """'#'-commented columns (uwxafs/Athena/larch .xmu): energy (eV) then mu; '#%key: value' metadata lines."""
    path = Path(path)
    lines = text_lines(path)
    if lines and lines[0].lstrip("#% ").upper().startswith("XDI/"):
        return read_xdi(path)
    header = {}
    last_comment = ""
    for ln in lines:
        s = ln.strip()
        if not s.startswith(COMMENT):
            if s and floats(s) is not None:
                break
            continue
        body = s.lstrip("#%!; ").strip()
        m = re.match(r"^([A-Za-z_][\w.]*)\s*:\s*(.*)$", body)
        if m:
            header.setdefault(m.group(1), m.group(2).strip())
        if body and not set(body) <= set("-=*"):
            last_comment = body
    data, _ = numeric_block(path, lines)
    if data.shape[1] < 2:
        raise MeasurementError(path, f"{data.shape[1]} column(s); expected energy and mu")
    labels = {t.lower(): i for i, t in enumerate(last_comment.split())} if last_comment else {}
    mu, how = (None, None)
    if labels and len(labels) == data.shape[1]:
        mu, how = _mu_from_columns(path, labels, data)
    if mu is None:
        mu, how = data[:, 1], "column 2"
    e, (mu,) = sorted_axis(path, data[:, 0], [mu], "energy")
    if e[-1] < 100.0:
        raise MeasurementError(path, f"first column runs {e[0]:g}..{e[-1]:g}: expected X-ray energies in eV")
    meta = {"format": "xafs columns", "mu_from": how, **_xafs_meta(path, header)}
    return Measurement(e, mu, "energy", "eV", "mu(E)", "exafs", meta)


def read_dat(path) -> Measurement:
    """.dat: XDI when it says so, XAFS columns when column 1 looks like X-ray energies (eV), else plain columns."""
    path = Path(path)
    lines = text_lines(path)
    if lines and lines[0].lstrip("#% ").upper().startswith("XDI/"):
        return read_xdi(path)
    data, _ = numeric_block(path, lines)
    x = data[:, 0]
    if data.shape[1] >= 2 and x.min() > 1000.0 and x.max() < 200000.0 and np.all(np.diff(x) > 0):
        return read_xafs_columns(path)
    return read_columns(path)


# ------------------------------------------------------------------------------------------------ preparation
def _edge_energy(m: Measurement):
    if "edge_energy_eV" in m.meta:
        return float(m.meta["edge_energy_eV"])
    if "element" in m.meta and "edge" in m.meta:
        from simgen.exafs.edges import edge_energy
        return edge_energy(m.meta["element"], m.meta["edge"])
    return None


def find_e0(m: Measurement, e, mu, near: float | None, window: float = 30.0) -> float:
    """E0 of a measured mu(E): :func:`simgen.exafs.background.find_e0` (the steepest rise, within +-``window`` eV
    of the tabulated edge ``near`` when known), refusing the file by name when no data lie near the edge."""
    from simgen.exafs.background import find_e0 as _steepest
    try:
        return _steepest(e, mu, near=near, window=window)
    except ValueError as exc:
        refuse(m, str(exc))


def extract_chi(m: Measurement, kstep: float = 0.05, rbkg: float = 1.0, kweight: int = 2, e0: float | None = None):
    """AUTOBK-like chi(k) of a mu(E) measurement: (BackgroundResult, e0, edge energy)."""
    from simgen.exafs.background import autobk
    e, mu = m.axis, m.values
    e_tab = _edge_energy(m)
    if e0 is None:
        e0 = find_e0(m, e, mu, e_tab)
    if not (e[0] < e0 - 20 and e[-1] > e0 + 150):
        refuse(m, f"energy {span(e)} eV: need pre-edge (< E0 - 20) and post-edge (> E0 + 150) data around "
                f"E0 = {e0:g} eV")
    res = autobk(e, mu, e0=e0, rbkg=rbkg, kweight=kweight, kstep=kstep)
    if not res.edge_step > 0:
        refuse(m, f"edge step {res.edge_step:g} at E0 = {e0:g} eV: mu(E) does not rise at the edge")
    return res, e0, e_tab


def prepare_exafs(m: Measurement, spec: TargetSpec, e0=None) -> Prepared:
    axis = spec.axis
    c = spec.config
    check_units(m, Axis(("energy",), (m.axis,), (m.units,)), "eV")
    dim = axis.dims[0]
    info: dict = {"steps": []}
    if dim == "k":
        kw = int(c.get("k_weight", 2))
        k = axis.coords[0]
        if spec.recipe is not None and spec.simulator == "exafs":
            # exactly the simulator's own preparation (simgen.exafs.background.measured_chi)
            from simgen.errors import ParameterError
            from simgen.exafs.background import measured_chi
            sim = spec.recipe.build()
            if sim.axis.shape != axis.shape or not np.allclose(sim.axis.coords[0], k):
                refuse(m, f"the recipe's k axis {span(sim.axis.coords[0])} differs from the model's {span(k)}")
            e_tab = _edge_energy(m)
            e_all, mu_all = m.axis, m.values
            e0_try = e0 if e0 is not None else find_e0(m, e_all, mu_all, e_tab)
            if not (e_all[0] < e0_try - 20 and e_all[-1] > e0_try + 150):
                refuse(m, f"energy {span(e_all)} eV: need pre-edge (< E0 - 20) and post-edge (> E0 + 150) data "
                        f"around E0 = {e0_try:g} eV")
            from simgen.exafs.background import ETOK
            k_data = float(np.sqrt(max(float(np.max(e_all)) - e0_try, 0.0) * ETOK))
            if k_data < k[-1] - 1e-6:
                refuse(m, f"k 0-{k_data:.2f} 1/A (E0 = {e0_try:.1f} eV, data to {float(np.max(e_all)):g} eV) does "
                        f"not cover the model's axis k {span(k)} 1/A")
            try:
                x, res = measured_chi(e_all, mu_all, sim, e0=e0, edge_energy=e_tab, return_result=True)
            except ParameterError as err:
                refuse(m, str(err))
            if not res.edge_step > 0:
                refuse(m, f"edge step {res.edge_step:g} at E0 = {res.e0:g} eV: mu(E) does not rise at the edge")
            info.update(e0_eV=float(res.e0), edge_energy_eV=e_tab, edge_step=res.edge_step,
                        k_max_data=float(res.k[-1]))
            info["steps"].append(f"simgen.exafs.background.measured_chi: AUTOBK-like background (rbkg 1 A), "
                                 f"E0 = {res.e0:.2f} eV, step {res.edge_step:.4g}, chi(k) * k^{kw} on k {span(k)} 1/A")
            return Prepared(np.asarray(x, np.float32)[None], axis, m, info)
        res, e0_, e_tab = extract_chi(m, kstep=min(0.05, float(k[1] - k[0])), e0=e0)
        info.update(e0_eV=e0_, edge_energy_eV=e_tab, edge_step=res.edge_step, k_max_data=float(res.k[-1]))
        info["steps"].append(f"AUTOBK-like background (rbkg 1 A), E0 = {e0_:.2f} eV, step {res.edge_step:.4g}")
        if res.k[-1] < k[-1] - 1e-6:
            refuse(m, f"k {res.k[0]:g}-{res.k[-1]:.2f} 1/A (E0 = {e0_:.1f} eV, data to {m.axis[-1]:g} eV) does not "
                    f"cover the model's axis k {span(k)} 1/A")
        chi = np.interp(k, res.k, res.chi)
        info["steps"].append(f"chi(k) * k^{kw} on k {span(k)} 1/A")
        return Prepared((chi * k ** kw)[None].astype(np.float32), axis, m, info)
    if dim == "energy":
        from simgen.exafs.background import autobk
        e_tab = _edge_energy(m)
        if e_tab is None:
            refuse(m, "no element/edge in the file: cannot place energies relative to the tabulated edge")
        e0_ = e0 if e0 is not None else find_e0(m, m.axis, m.values, e_tab)
        res = autobk(m.axis, m.values, e0=e0_)
        rel = m.axis - e_tab
        covers(m, rel, axis.coords[0], "energy relative to the edge (eV)")
        norm = (m.values - res.pre_edge) / res.edge_step
        info.update(e0_eV=e0_, edge_energy_eV=e_tab, edge_step=res.edge_step)
        info["steps"].append("pre-edge line removed, divided by the edge step; E - E_edge(tabulated)")
        return Prepared(rebin(rel, norm, axis.coords[0])[None].astype(np.float32), axis, m, info)
    refuse(m, f"XAFS data cannot be put on a '{dim}' axis")


# ------------------------------------------------------------------------------------------------ domain
def model_edges(spec) -> dict[tuple[str, str], float]:
    """(element, edge) -> tabulated edge energy (eV) of every FEFF material the model's recipe can draw
    (material names are ``<element>_<edge>_<structure>``); empty when the model has no recipe."""
    if spec.recipe is None:
        return {}
    from simgen.exafs.edges import edge_energy
    from simgen.priors import Choice, Fixed
    sim = spec.recipe.build()
    names: set[str] = set()

    def add(prior):
        if isinstance(prior, Choice):
            names.update(str(v) for v in prior.values)
        elif isinstance(prior, Fixed):
            names.add(str(prior.value))
    add(sim.priors.get("material"))
    if sim.label is not None:
        for over in sim.label.overrides.values():
            add(over.get("material"))
    out = {}
    for n in sorted(names):
        parts = n.split("_")
        if len(parts) >= 2:
            out[(parts[0], parts[1])] = edge_energy(parts[0], parts[1])
    return out


def nearest_edge(e0: float, window: float = 60.0):
    """The tabulated K/L3/L2 edge (element, edge, energy) nearest to ``e0`` (eV), within ``window``; else None."""
    import xraydb
    best = None
    for z in range(3, 95):
        el = xraydb.atomic_symbol(z)
        for edge, val in xraydb.xray_edges(el).items():
            if edge not in ("K", "L3", "L2"):
                continue
            d = abs(val.energy - e0)
            if d <= window and (best is None or d < best[0]):
                best = (d, el, edge, float(val.energy))
    return None if best is None else best[1:]


def identify_edge(m: Measurement, model: dict | None = None) -> tuple[str | None, str | None, float | None]:
    """(element, edge, E0 in eV) of a mu(E) file: from its metadata when it names them, else from the steepest
    rise matched to the model's edges (within 60 eV) or, failing that, to the nearest tabulated edge."""
    el, edge = m.meta.get("element"), m.meta.get("edge")
    e0 = find_e0(m, m.axis, m.values, _edge_energy(m)) if len(m.axis) > 20 else None
    if el and edge:
        return el, edge, e0
    if e0 is None:
        return None, None, None
    for (mel, medge), energy in (model or {}).items():
        if abs(energy - e0) <= 60.0:
            return mel, medge, e0
    hit = nearest_edge(e0)
    return (hit[0], hit[1], e0) if hit else (None, None, e0)


# ------------------------------------------------------------------------------------------------ adapter
class EXAFSAdapter(Adapter):
    """XAFS mu(E) files for the ``exafs`` simulator (see the module docstring)."""

    name = "exafs"
    axis_dims = ("k", "energy")
    formats = {".xdi": read_xdi, ".xmu": read_xafs_columns, ".chi": read_xafs_columns, ".dat": read_dat}
    data_dirs = ("xafs",)
    acceptance = {"exafs": ["XASLIB_Cu_cu_metal_rt.xdi", "XASLIB_Cu_cu_metal_10K.xdi", "larch_cu_50k.xmu",
                            "larch_cu_150k.xmu", "XASLIB_Fe_Fe_metal_rt_01.xdi"]}

    def prepare(self, m, spec, e0=None):
        return prepare_exafs(m, spec, e0)

    def check_domain(self, m, spec):
        """The absorber and edge come from the file (metadata, else its edge energy), never from the network: a
        file whose edge is not one the model was trained on is refused."""
        model = model_edges(spec)
        if not model:
            return
        el, edge, e0 = identify_edge(m, model)
        known = ", ".join(f"{a} {b} ({e:.0f} eV)" for (a, b), e in sorted(model.items(), key=lambda t: t[1]))
        if el is None:
            raise OutOfDomain(m.source, f"no tabulated K or L edge within 60 eV of its edge at {e0:.0f} eV; the "
                              f"model reads {known}")
        if (el, edge) not in model:
            raise OutOfDomain(m.source, f"{el} {edge} edge (E0 {e0:.0f} eV); the model reads only {known}")
        m.meta.setdefault("element", el)
        m.meta.setdefault("edge", edge)

    def allowed_classes(self, m, classes):
        """Only the classes (materials ``<element>_<edge>_...``) of the file's absorber and edge."""
        el, edge = m.meta.get("element"), m.meta.get("edge")
        if not el:
            return None
        return [c.split("_")[:2] == [el, edge] if edge else c.split("_")[0] == el for c in classes]

    def derived(self, names, samples, info):
        """The nearest-neighbour shell as users define it: sub-shells within 10 % of R1 (such as the 6 + 6 of
        hcp metals) summed, ``N_nn`` and their N-weighted mean distance ``R_nn``."""
        idx = {t: j for j, t in enumerate(names)}
        if not {"N1", "R1"} <= set(idx):
            return {}
        N = samples[..., idx["N1"]].copy()
        NR = N * samples[..., idx["R1"]]
        R1 = samples[..., idx["R1"]]
        for j in (2, 3):
            if f"N{j}" in idx and f"R{j}" in idx:
                Rj, Nj = samples[..., idx[f"R{j}"]], samples[..., idx[f"N{j}"]]
                near = Rj < 1.10 * R1
                N = N + np.where(near, Nj, 0.0)
                NR = NR + np.where(near, Nj * Rj, 0.0)
        return {"N_nn": N, "R_nn": NR / np.where(N > 0, N, np.nan)}
