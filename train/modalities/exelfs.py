"""EXELFS adapter: core-loss EELS spectra (.msa, .dm3/.dm4, .hspy through rosettasciio), their preparation onto a
model's energy-loss axis, and the identification of ionisation edges.

Preparation (simulator ``exelfs``, energy loss in eV): counts rebinned onto the axis, divided by their maximum
(``normalize: true``); the power-law pre-edge background is kept (the simulator draws it); a start above the
model's first loss is filled by the A E^-r law fitted to the first 30 eV when that window is pre-edge and the
gap <= 60 eV.
"""
from __future__ import annotations

import numpy as np

from ..measurements import Measurement
from ..measurements.rsc import read_dm, read_hspy, read_msa
from ..prepare import Prepared, TargetSpec, check_units, rebin, refuse, span
from . import Adapter, refuse_stack

__all__ = ["prepare_exelfs", "identify_eels_edges", "EXELFSAdapter"]


def prepare_exelfs(m: Measurement, spec: TargetSpec) -> Prepared:
    axis = spec.axis
    check_units(m, axis, "eV")
    E = axis.coords[0]
    x, y = m.axis, m.values.astype(float)
    info: dict = {"steps": []}
    if x[-1] < E[-1] - 0.5 * (E[1] - E[0]):
        refuse(m, f"energy loss {span(x)} eV ends before the model's axis {span(E)} eV")
    if x[0] > E[0] + 0.5 * (E[1] - E[0]):
        gap = x[0] - E[0]
        win = (x >= x[0]) & (x <= x[0] + 30.0)
        edges_in = [e for e in identify_eels_edges(m, max_edges=3) if e["onset_eV"] < x[0] + 35.0]
        if gap > 60.0 or edges_in or win.sum() < 5 or np.any(y[win] <= 0):
            refuse(m, f"energy loss {span(x)} eV starts {gap:.1f} eV after the model's axis {span(E)} eV and "
                    "the power-law pre-edge background cannot be extrapolated (gap > 60 eV, edge within 35 eV of "
                    "the start, or non-positive counts)")
        slope, icpt = np.polyfit(np.log(x[win]), np.log(y[win]), 1)
        resid = np.log(y[win]) - (icpt + slope * np.log(x[win]))
        sm = np.convolve(resid, np.ones(9) / 9, mode="valid") if win.sum() > 9 else resid
        if not (-6.0 < slope < -1.0) or np.max(np.abs(sm)) > 0.03:
            refuse(m, f"energy loss {span(x)} eV starts {gap:.1f} eV after the model's axis {span(E)} eV and "
                    f"its first 30 eV are not a clean power law (exponent {-slope:.2f}, smoothed log residual up to "
                    f"{np.max(np.abs(sm)):.3f}): an edge is too close to the start to extrapolate the background")
        xe = np.arange(E[0], x[0], x[1] - x[0])
        x = np.concatenate([xe, x])
        y = np.concatenate([np.exp(icpt) * xe ** slope, y])
        info["steps"].append(f"pre-edge power law E^{slope:.2f} extrapolated over {E[0]:g}-{m.axis[0]:g} eV")
        info["power_law_r"] = -float(slope)
    out = rebin(x, y, E)
    if spec.config.get("normalize", True):
        mx = float(np.max(out))
        if not mx > 0:
            refuse(m, "no positive counts on the model's energy-loss window")
        out = out / mx
        info["steps"].append("divided by the maximum on the model's window")
    return Prepared(out[None].astype(np.float32), axis, m, info)


def _powerlaw_fit(x, y):
    ok = y > 0
    if ok.sum() < 4:
        return None
    s, c = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return s, c


def identify_eels_edges(m: Measurement, max_edges: int = 6, min_jump: float = 0.08, tolerance: float = 8.0):
    """Ionisation edges in a core-loss spectrum, matched to tabulated onsets.

    Onsets: energies where the counts rise above the A E^-r law fitted to the 40 eV before them by more than
    ``min_jump`` (relative), located at the steepest rise.  Each onset is matched to the nearest tabulated
    major edge (K, L3 -> 'L2,3', M5 -> 'M4,5'; xraydb energies + the EELS offsets of
    ``catalogs/exafs/edge_offsets.csv`` via :func:`simgen.exafs.edges.eels_onset`) within ``tolerance`` eV;
    candidates are ranked by |dE| plus a penalty: 0 for K edges of Z <= 20 and L2,3 of the 3d metals, 2 eV for
    other K/L2,3, 6 eV for M4,5 (the common edges of oxides win near-ties).  The strongest edge's match (within
    ``tolerance`` + 4 eV) fixes a spectrometer energy offset that is removed before the other onsets are matched
    (the pyTEMlib SrTiO3 file's O K rises ~8 eV below the tabulated 532 eV).  Returns a list of dicts (onset_eV, jump,
    label, element, edge, tabulated_eV, delta_eV) sorted by energy.
    """
    x, y = m.axis.astype(float), m.values.astype(float)
    if m.modality not in ("exelfs", None) or m.units != "eV":
        refuse(m, f"edge identification needs an EELS spectrum in eV (got {m.modality} in {m.units})")
    step = float(np.median(np.diff(x)))
    k = max(1, int(round(2.0 / step)))
    ys = np.convolve(y, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
    jumps = np.full(len(x), np.nan)
    pre_n = int(round(40.0 / step))
    gap_n = int(round(3.0 / step))
    post_n = int(round(15.0 / step))
    for i in range(pre_n + k, len(x) - post_n - k, max(1, int(round(1.0 / step)))):
        fit = _powerlaw_fit(x[i - pre_n:i - gap_n], ys[i - pre_n:i - gap_n])
        if fit is None:
            continue
        s, c = fit
        post = slice(i, i + post_n)
        bg = np.exp(c) * x[post] ** s
        jumps[i] = np.mean(ys[post] / bg) - 1.0
    found = []
    valid = np.isfinite(jumps)
    grad = np.gradient(ys, x)
    order = np.argsort(np.where(valid, -jumps, np.inf))
    for i in order:
        if not valid[i] or jumps[i] < min_jump or len(found) >= max_edges:
            break
        # onset: the steepest rise of the smoothed counts within 12 eV before the detector's position
        lo, hi = max(1, i - int(12 / step)), min(len(x) - 1, i + int(3 / step))
        j = lo + int(np.argmax(grad[lo:hi]))
        e_on = float(x[j])
        # an edge's own near-edge structure spoils the power law fitted after it: drop detections from 25 eV
        # before to 45 eV after an accepted (stronger) edge
        if any(f["onset_eV"] - 25.0 < e_on < f["onset_eV"] + 45.0 for f in found):
            continue
        found.append({"onset_eV": e_on, "jump": float(jumps[i])})
    table = _edge_table(x[0], x[-1])

    def match(e_on, tol):
        best = None
        for (el, edge, label, e_tab, pen) in table:
            dE = abs(e_tab - e_on)
            if dE <= tol and (best is None or dE + pen < best[0]):
                best = (dE + pen, el, edge, label, e_tab)
        return best

    # the strongest edge fixes the spectrometer's energy offset; the others are matched after that shift
    offset = 0.0
    if found:
        top = max(found, key=lambda f: f["jump"])
        b0 = match(top["onset_eV"], tolerance + 4.0)
        if b0 is not None:
            offset = top["onset_eV"] - b0[4]
    for f in found:
        best = match(f["onset_eV"] - offset, tolerance)
        if best is not None:
            _, el, edge, label, e_tab = best
            f.update(label=f"{el} {label}", element=el, edge=edge, tabulated_eV=e_tab,
                     delta_eV=f["onset_eV"] - e_tab, energy_offset_eV=offset)
        else:
            f.update(label="unidentified", element=None, edge=None, tabulated_eV=None, delta_eV=None,
                     energy_offset_eV=offset)
    return sorted(found, key=lambda f: f["onset_eV"])


def _edge_table(lo: float, hi: float):
    import xraydb
    from simgen.exafs.edges import eels_onset
    out = []
    for z in range(3, 84):
        el = xraydb.atomic_symbol(z)
        edges = xraydb.xray_edges(el)
        for edge, label in (("K", "K"), ("L3", "L2,3"), ("M5", "M4,5")):
            if edge in edges:
                e = eels_onset(el, edge)
                if lo - 20 <= e <= hi + 20:
                    common = (edge == "K" and z <= 20) or (edge == "L3" and 19 <= z <= 30)
                    out.append((el, edge, label, e, 0.0 if common else (2.0 if edge != "M5" else 6.0)))
    return out


# ------------------------------------------------------------------------------------------------ adapter
class EXELFSAdapter(Adapter):
    """Core-loss EELS for the ``exelfs`` simulator; validation also lists the identified edges of every file,
    which needs no trained network."""

    name = "exelfs"
    axis_dims = ("energy_loss",)
    formats = {".msa": read_msa, ".ems": read_msa, ".dm3": read_dm, ".dm4": read_dm, ".hspy": read_hspy,
               ".hdf5": read_hspy}
    columns_kind = "energy_loss"
    value_columns = ("counts", "intensity", "signal", "i")
    data_dirs = ("eels",)
    acceptance = {"exelfs": ["pyTEMlib_EELS_STO.dm3", "coreloss_spectrum.msa"]}

    def prepare(self, m, spec):
        refuse_stack(m)
        return prepare_exelfs(m, spec)

    def annotate(self, m, result):
        result["edges"] = identify_eels_edges(m)

    def check_without_run(self, m):
        return {"file": m.name, "values": {}, "edges": identify_eels_edges(m)}
