"""PDF adapter: G(r) files (.gr/.fgr after a PDFgetX2/PDFgetX3/xPDFsuite/PDFgui header) and their preparation onto
a model's r grid (point sampling, like the simulator).  :func:`read_pdf` is the one .gr reader of the project
(``simgen.pdf.refine`` uses it too)."""
from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..measurements import Measurement, MeasurementError
from ..measurements.columns import sorted_axis, text_lines
from ..prepare import Prepared, TargetSpec, check_units, covers, prior_support, refuse, span
from . import Adapter, OutOfDomain, add_warning, refuse_stack

__all__ = ["read_pdf", "prepare_pdf", "PDFAdapter"]


_PDF_KEYS = {"qmax": "qmax", "qmin": "qmin", "qmaxinst": "qmax_instrument", "wavelength": "wavelength_A",
             "lambda": "wavelength_A", "temperature": "temperature_K", "temp": "temperature_K", "qdamp": "qdamp",
             "qbroad": "qbroad", "rstep": "rstep", "composition": "composition", "mode": "radiation",
             "stype": "radiation", "dscale": "scale", "rpoly": "rpoly"}
_TEXT_KEYS = ("composition", "mode", "stype")


def read_pdf(path, columns=None) -> Measurement:
    """G(r) (.gr) or F(r)-like (.fgr) after a PDFgetX2/PDFgetX3/PDFgetN/xPDFsuite/PDFgui header.

    Data start after the '#### start data' marker when present (so numbers of the header, such as PDFgetN's and
    PDFgui's bank tables, are never data), else at the first run of numeric lines.  Header ``key = value``
    pairs go into meta: ``qmax``, ``qmin``, ``qmax_instrument``, ``wavelength_A``, ``temperature_K``,
    ``qdamp``, ``qbroad``, ``composition`` (the whole value, e.g. 'Cd Se'), ``radiation`` ('xray' or 'neutron'
    from PDFgetX3 ``mode``, PDFgui ``stype=X|N``, or a PDFgetN header).  A third and fourth column (dr, dG) are
    kept as ``meta['dG']``.  ``columns=(r, G)`` picks other columns by name or number.
    """
    path = Path(path)
    lines = text_lines(path)
    start = None
    for i, ln in enumerate(lines):
        if "start data" in ln.lower():
            start = i + 1
            break
    header_lines = lines[:start] if start is not None else lines[:400]
    meta: dict = {"format": "PDF " + path.suffix.lower().lstrip(".")}
    for ln in header_lines:
        body = ln.strip().lstrip("#").strip()
        m = re.match(r"^(composition|mode|stype)\s*=\s*(.+?)\s*$", body, re.I)
        if m:
            meta.setdefault(_PDF_KEYS[m.group(1).lower()], m.group(2).strip())
            continue
        for m in re.finditer(r"(?<![A-Za-z])([A-Za-z]+)\s*=\s*([^\s]+)", ln):
            key = m.group(1).lower()
            if key in _PDF_KEYS and key not in _TEXT_KEYS and _PDF_KEYS[key] not in meta:
                try:
                    meta[_PDF_KEYS[key]] = float(m.group(2))
                except ValueError:
                    pass
        if re.search(r"neutron", ln, re.I) and "radiation" not in meta and re.search(r"radiation|mode|source|stype",
                                                                                     ln, re.I):
            meta["radiation"] = "neutron"
    head = "\n".join(lines[:(start or 0) + 6])
    if "radiation" not in meta and re.search(r"PDFgetN|machine\s*=\s*npdf", head, re.I):
        meta["radiation"] = "neutron"
    if "radiation" not in meta and re.search(r"PDFgetX|X-ray\s+PDF|##\s*X-Ray", head, re.I):
        meta["radiation"] = "xray"
    if "radiation" in meta:
        r = str(meta["radiation"]).strip().lower()
        meta["radiation"] = ("neutron" if r.startswith("n") else "xray" if r.startswith("x") else r)
    if "composition" in meta:
        meta["composition"] = " ".join(str(meta["composition"]).split())
    from ..measurements.columns import read_table, select_xy
    try:
        t = read_table(path, lines, start=start)
    except MeasurementError as exc:
        if "ragged row" not in str(exc):
            raise
        # some PDF writers add dr/dG on a few rows only: keep r and G of every row
        t = read_table(path, lines, start=start, keep=2)
        meta["ragged_rows"] = "extra columns on some rows ignored"
    if t.ncol < 2:
        raise MeasurementError(path, f"{t.ncol} column(s); expected r and G(r)")
    if columns is not None:
        r, g, *_ = select_xy(t, None, columns)
        r, (g,) = sorted_axis(path, np.asarray(r, float), [np.asarray(g, float)], "r")
        cols = [g]
    else:
        data = t.data
        r, cols = sorted_axis(path, data[:, 0], [data[:, k] for k in range(1, data.shape[1])], "r")
    if r[0] < 0:
        raise MeasurementError(path, f"r starts at {r[0]:g} A; expected r >= 0")
    if len(cols) >= 3:
        meta["dG"] = cols[2]
    return Measurement(r, cols[0], "r", "A", "1/A^2", "pdf", meta)


#: a file of a crystal whose G(r) ends before the model's axis is read when it reaches at least this far (A): the
#: lattice length then comes from the refinement on the measured range (1.5-15 A holds 10-20 coordination shells
#: of the catalog's cubic and hexagonal phases), and the network sees G = 0 past the file's end
PDF_MIN_RMAX = 15.0


def prepare_pdf(m: Measurement, spec: TargetSpec, partial: bool = False) -> Prepared:
    """G(r) onto the model's r grid by point sampling (linear interpolation), like the simulator, which evaluates
    G at the grid points: G(r) is band-limited by Qmax, so a measured grid finer than pi/Qmax is interpolated,
    not bin-averaged (averaging would broaden peaks and damp termination ripples the simulator keeps).  The
    model's first point (recipes start at 1.5 A, below which reductions leave ripples rather than structure)
    is where the window begins; nothing before it is used.  No rescaling: the experimental scale is arbitrary and
    the recipe's ``scale`` prior covers it (the measured Qmin/Qmax are compared with the recipe's priors and a
    warning is recorded when they lie outside).

    ``partial``: a file that starts at the axis start but ends before the axis end (at or beyond
    ``PDF_MIN_RMAX``) is accepted, G = 0 past its end, with a warning and ``info['r_measured_max']``: the adapter's
    refinement works on the measured range only and refuses the file when it cannot refine it."""
    axis = spec.axis
    check_units(m, axis, "A")
    r = axis.coords[0]
    x, y = np.asarray(m.axis, float), np.asarray(m.values, float)
    if x.ndim != 1 or y.shape != x.shape or len(x) < 2:
        refuse(m, f"G(r) of shape {y.shape} on r of shape {x.shape}: expected one value per r point")
    if np.any(np.diff(x) <= 0):
        refuse(m, "r values do not increase monotonically")
    if not np.all(np.isfinite(y)):
        refuse(m, f"{int(np.sum(~np.isfinite(y)))} non-finite G(r) values")
    step = float(r[1] - r[0])
    short = partial and x[0] <= r[0] + 0.5 * step and x[-1] < r[-1] - 0.5 * step
    if short and x[-1] < PDF_MIN_RMAX:
        refuse(m, f"r (A) {span(x)} ends before {PDF_MIN_RMAX:g} A: too short to refine a lattice (the model's axis "
                  f"is {span(r)})")
    if not short:
        covers(m, x, r, "r (A)")
    info: dict = {"steps": [], "r_step_measured": float(np.median(np.diff(x)))}
    qmax = m.meta.get("qmax")
    nyq = math.pi / float(qmax) if qmax else None
    if nyq is not None and info["r_step_measured"] > nyq * 1.0001:
        info["warning"] = (f"measured r step {info['r_step_measured']:g} A is coarser than pi/Qmax = {nyq:.3g} A: "
                           "G(r) is undersampled, interpolation loses peak shape")
    g = np.interp(r, x, y)
    info["steps"].append(f"G(r) interpolated onto r {span(r)} A (step {float(r[1] - r[0]):g} A)")
    if short:
        g[r > x[-1]] = 0.0
        info["r_measured_max"] = float(x[-1])
        info["steps"].append(f"G = 0 past the file's end ({float(x[-1]):.4g} A)")
        info["warning"] = (f"G(r) measured to {float(x[-1]):.4g} A, the model's axis runs to {float(r[-1]):.4g} A: the "
                           "network sees G = 0 beyond, the lattice length comes from the refinement on the measured "
                           "range")
    for key in ("qmax", "qmin"):
        if key in m.meta and m.meta[key] is not None:
            val = float(m.meta[key])
            info[f"{key}_measured"] = val
            sup = prior_support(spec, key)
            if sup is not None and not (sup[0] - 1e-9 <= val <= sup[1] + 1e-9):
                msg = f"measured {key} {val:g} 1/A lies outside the recipe's {sup[0]:g}-{sup[1]:g}"
                info["warning"] = (info["warning"] + "; " + msg) if "warning" in info else msg
    return Prepared(g[None].astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ adapter
class PDFAdapter(Adapter):
    """Atomic pair distribution functions G(r) for the ``pdf`` simulator (crystals and nanoparticles)."""

    name = "pdf"
    axis_dims = ("r",)
    formats = {".gr": read_pdf, ".fgr": read_pdf}
    data_dirs = ("pdf",)
    acceptance = {"pdf": ["Ni.gr"], "pdf_np": ["Pt-nanoparticles.gr"]}

    columns_kind = "r"
    value_columns = ("g", "g(r)", "gr")

    def prepare(self, m, spec):
        refuse_stack(m)
        # a crystal's lattice is refined on whatever range the file has; a particle's diameter needs the range
        # where its G(r) dies out, so a model that predicts one takes whole-axis files only
        targets = list(getattr(spec.recipe, "targets", None) or [])
        partial = bool(targets) and "diameter" not in targets and "a" in targets
        prep = prepare_pdf(m, spec, partial=partial)
        rad, want = m.meta.get("radiation"), (spec.config or {}).get("radiation")
        if rad in ("xray", "neutron") and want in ("xray", "neutron") and rad != want:
            add_warning(prep.info, f"{rad} PDF but the model simulates {want} scattering (other scattering lengths "
                                   "weight the pairs differently)")
        return prep

    # ------------------------------------------------------------------ composition and refinement
    #: a refined phase whose Rw exceeds this does not describe the measurement: the file is refused.  A correct
    #: phase refines to Rw 0.04-0.16 on the project's dev files (Ni, Si, Pt nanoparticles over 1.5-30 A), and
    #: PDF practice counts Rw of 0.1-0.25 as a good bulk fit (Egami & Billinge, *Underneath the Bragg Peaks*,
    #: 2nd ed. 2012, ch. 5); a wrong structure type refines to 0.6-0.9.
    max_rw: float = 0.35
    #: how many of the network's most probable phases are refined
    n_candidates: int = 4

    @staticmethod
    def _elements(text) -> set[str] | None:
        if not text:
            return None
        els = set(re.findall(r"[A-Z][a-z]?", str(text)))
        return els or None

    def allowed_classes(self, m, classes):
        """When the file states its composition (PDFgetX3 ``composition``), only the phases with exactly those
        elements; None (all phases) otherwise."""
        els = self._elements(m.meta.get("composition"))
        if not els:
            return None
        from simgen.pdf.structures import list_phases, phase_model
        known = set(list_phases())
        return [c in known and set(phase_model(c).symbols) == els for c in classes]

    def check_domain(self, m, spec):
        """A file whose stated composition matches no phase of the model is refused (a network would still name
        one of its phases)."""
        run = spec.run
        classes = list(run.task.classes) if run is not None and getattr(run.task, "classes", None) else []
        allowed = self.allowed_classes(m, classes) if classes else None
        if allowed is not None and not any(allowed):
            raise OutOfDomain(m.source, f"composition {m.meta.get('composition')!r}: no phase of the model has these "
                                        f"elements (phases: {', '.join(classes)})")

    def refine(self, m, prep, result, run, spec):
        """Least-squares refinement of the simulator's phase (``simgen.pdf.refine``) against the measured G(r) on
        the model's r window, from the network's prediction: the ``n_candidates`` most probable phases (those
        the file's composition allows) are refined (lattice length, scale, Uiso, delta2, Qdamp, and the
        spherical-envelope diameter for a model that predicts one) with the file's Qmax/Qmin and radiation, and
        the lowest Rw wins.  ``result['values']`` then holds the refined ``a`` (and ``diameter``, ``uiso``,
        ``delta2``), ``result['network']`` the network's own values.  Refused (:class:`OutOfDomain`) when even
        the best phase refines to Rw > ``max_rw``: the structure type is not among the model's phases."""
        from simgen.pdf.structures import list_phases, phase_model
        vals = result.get("values") or {}
        short = prep is not None and "r_measured_max" in (prep.info or {})
        if "a" not in vals:
            if short:
                raise OutOfDomain(m.source, "G(r) shorter than the model's axis and nothing to refine")
            return
        classes = list(run.task.classes) if getattr(run.task, "classes", None) else []
        if classes and result.get("class_probs"):
            probs = result["class_probs"]
            order = sorted((c for c in classes if probs.get(c, 0.0) > 0.0), key=lambda c: -probs[c])
            cands = order[: self.n_candidates] or classes[:1]
        else:
            cands = [(spec.config or {}).get("phase", "Ni_fcc")]
        known = set(list_phases())
        cands = [c for c in cands if c in known]
        if not cands:
            if short:
                raise OutOfDomain(m.source, "G(r) shorter than the model's axis and no catalog phase to refine")
            return
        r = spec.axis.coords[0]
        x, y = np.asarray(m.axis, float), np.asarray(m.values, float)
        lo, hi = max(float(r[0]), float(x[0])), min(float(r[-1]), float(x[-1]))
        qsup = prior_support(spec, "qmax")
        qmax = float(m.meta.get("qmax") or (0.5 * (qsup[0] + qsup[1]) if qsup else 25.0))
        qmin = float(m.meta.get("qmin") or 0.0)
        rad = m.meta.get("radiation") if m.meta.get("radiation") in ("xray", "neutron") else \
            (spec.config or {}).get("radiation", "xray")
        net_class = result.get("class", cands[0])
        fits, windows = {}, {}
        for c in cands:
            model = phase_model(c)
            a0 = float(np.linalg.norm(model.cell[0]))
            # starts: the catalog cell and, for the network's phase, its predicted lattice length
            # (starting values are rounded - a to 0.5 % of the cell, uiso to 0.002 A^2, delta2 to 0.5 A^2 - so that
            # training seeds which read alike share one cached refinement; the optimum does not depend on it)
            starts = [a0] + ([a0 * (1 + 0.005 * round((float(vals["a"]["value"]) / a0 - 1) / 0.005))]
                             if c == net_class and abs(vals["a"]["value"] / a0 - 1) < 0.1 else [])
            starts = list(dict.fromkeys(round(v, 6) for v in starts))
            # the fit starts just below the phase's nearest-neighbour peak: below it a measured G(r) holds only the
            # -4 pi rho r line and the reduction's ripples, which no structure describes
            lo_c = max(lo, 0.85 * _nearest_distance(c) * min(starts) / a0)
            windows[c] = (lo_c, hi)
            best_c = None
            for a_start in starts:
                free = {"a": a_start, "scale": 0.5,
                        "uiso": round(float(np.clip(vals.get("uiso", {}).get("value", 0.006), 0.002, 0.05)) / 0.002)
                        * 0.002,
                        "delta2": round(float(np.clip(vals.get("delta2", {}).get("value", 2.0), 0.0, 10.0)) * 2) / 2,
                        "qdamp": 0.04}
                fixed = {"qmin": qmin, "qmax": qmax}
                if "diameter" in vals:
                    # a finite particle damps G(r) like the instrument's Qdamp does: with the diameter free, the
                    # instrument terms stay at the file's stated values, else at the middle of the recipe's priors
                    free["spdiameter"] = float(np.clip(vals["diameter"]["value"], 10.0, 500.0))
                    del free["qdamp"]
                    for k in ("qdamp", "qbroad"):
                        sup = prior_support(spec, k)
                        if m.meta.get(k) is not None:
                            fixed[k] = float(m.meta[k])
                        elif sup is not None:
                            fixed[k] = 0.5 * (sup[0] + sup[1])
                f = _cached_refine(str(m.source), x, y, c, lo_c, hi, free, fixed, rad)
                if f is not None and (best_c is None or f.rw < best_c.rw):
                    best_c = f
            fits[c] = best_c
        ok = {c: f for c, f in fits.items() if f is not None}
        if not ok:
            if short:
                raise OutOfDomain(m.source, f"G(r) measured to {prep.info['r_measured_max']:.4g} A only and no phase "
                                            "could be refined on it: the network alone would read a truncated G(r)")
            return
        best = min(ok, key=lambda c: ok[c].rw)
        fit = ok[best]
        if fit.rw > self.max_rw:
            tried = ", ".join(f"{c} {f.rw:.2f}" for c, f in sorted(ok.items(), key=lambda t: t[1].rw))
            raise OutOfDomain(m.source, f"no phase of the model describes it: best refined Rw {fit.rw:.2f} > "
                                        f"{self.max_rw:g} over r {windows[best][0]:.3g}-{hi:.4g} A ({tried}); its "
                                        "structure type is "
                                        "not among the model's phases")
        import copy
        result["network"] = copy.deepcopy(vals)
        vals["a"] = {"value": fit.values["a"], "unc": None}
        for q, k in (("uiso", "uiso"), ("delta2", "delta2"), ("diameter", "spdiameter")):
            if q in vals and k in fit.values:
                vals[q] = {"value": fit.values[k], "unc": None}
        result["refined"] = {"method": "least-squares refinement of the phase (simgen.pdf.refine)", "phase": best,
                             "rw": fit.rw, "r_range_A": list(windows[best]), "qmax": qmax, "radiation": rad,
                             "rw_by_phase": {c: f.rw for c, f in ok.items()}}
        if classes and best != result.get("class"):
            result["network_class"] = result.get("class")
            result["class"] = best


_REFINE_CACHE: dict = {}


@lru_cache(maxsize=64)
def _nearest_distance(phase: str) -> float:
    """Shortest interatomic distance (A) of a catalog phase at its catalog cell."""
    from simgen.pdf.structures import phase_model
    model = phase_model(phase)
    pos = np.asarray(model.positions, float)
    cell = np.asarray(model.cell, float)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], float) @ cell
    d = np.linalg.norm(pos[:, None, None, :] + shifts[None, :, None, :] - pos[None, None, :, :], axis=-1)
    return float(np.min(d[d > 1e-6]))


def _cached_refine(source, x, y, phase, lo, hi, free, fixed, rad):
    """One refinement, cached on (file, phase, window, start) so several training seeds that start alike share
    it; None when the fit fails numerically."""
    from simgen.errors import SimgenError
    from simgen.pdf.refine import refine
    key = (source, phase, round(lo, 4), round(hi, 4), tuple(sorted(fixed.items())), rad,
           tuple((k, round(v, 4)) for k, v in sorted(free.items())), hash(y[:: max(1, len(y) // 64)].tobytes()))
    if key in _REFINE_CACHE:
        return _REFINE_CACHE[key]
    try:
        fit = refine(phase, x, y, rmin=lo, rmax=hi, free=dict(free), fixed=dict(fixed),
                     radiation=rad)
    except (ValueError, SimgenError, FloatingPointError):
        fit = None
    if len(_REFINE_CACHE) > 256:
        _REFINE_CACHE.clear()
    _REFINE_CACHE[key] = fit
    return fit
