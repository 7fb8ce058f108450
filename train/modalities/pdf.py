"""PDF adapter: G(r) files (.gr/.fgr after a PDFgetX2/PDFgetX3/xPDFsuite/PDFgui header) and their preparation onto
a model's r grid (point sampling, like the simulator).  :func:`read_pdf` is the one .gr reader of the project
(``simgen.pdf.refine`` uses it too)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..measurements import Measurement, MeasurementError
from ..measurements.columns import sorted_axis, text_lines
from ..prepare import Prepared, TargetSpec, check_units, covers, prior_support, refuse, span
from . import Adapter, add_warning, refuse_stack

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


def prepare_pdf(m: Measurement, spec: TargetSpec) -> Prepared:
    """G(r) onto the model's r grid by point sampling (linear interpolation), like the simulator, which evaluates
    G at the grid points: G(r) is band-limited by Qmax, so a measured grid finer than pi/Qmax is interpolated,
    not bin-averaged (averaging would broaden peaks and damp termination ripples the simulator keeps).  The
    model's first point (recipes start at 1.5 A, below which reductions leave ripples rather than structure)
    is where the window begins; nothing before it is used.  No rescaling: the experimental scale is arbitrary and
    the recipe's ``scale`` prior covers it (the measured Qmin/Qmax are compared with the recipe's priors and a
    warning is recorded when they lie outside)."""
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
    covers(m, x, r, "r (A)")
    info: dict = {"steps": [], "r_step_measured": float(np.median(np.diff(x)))}
    qmax = m.meta.get("qmax")
    nyq = math.pi / float(qmax) if qmax else None
    if nyq is not None and info["r_step_measured"] > nyq * 1.0001:
        info["warning"] = (f"measured r step {info['r_step_measured']:g} A is coarser than pi/Qmax = {nyq:.3g} A: "
                           "G(r) is undersampled, interpolation loses peak shape")
    g = np.interp(r, x, y)
    info["steps"].append(f"G(r) interpolated onto r {span(r)} A (step {float(r[1] - r[0]):g} A)")
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
        prep = prepare_pdf(m, spec)
        rad, want = m.meta.get("radiation"), (spec.config or {}).get("radiation")
        if rad in ("xray", "neutron") and want in ("xray", "neutron") and rad != want:
            add_warning(prep.info, f"{rad} PDF but the model simulates {want} scattering (other scattering lengths "
                                   "weight the pairs differently)")
        return prep
