"""Put a measured :class:`~train.measurements.Measurement` onto a model's (or simulator's) axis with the
conventions of the simulator's output.

``prepare(measurement, target)``; ``target`` is a run directory / :class:`train.run.Run`, a
:class:`simgen.simulator.Simulator`, a :class:`simgen.recipe.Recipe` or recipe name, or a bare
:class:`~simgen.simulator.Axis` (then ``modality=`` says which conventions apply).  Conventions per simulator:

* ``epr`` (field, mT): the field is rescaled by nu_model / nu_measured (B' = B nu'/nu keeps every g; a
  hyperfine splitting in mT scales by the same factor, so A predicted from the rescaled spectrum is divided by
  ``info['field_scale']``); nu_model is the measured frequency clipped into the recipe's ``mw_freq`` prior (no
  rescale when it lies inside).  A linear baseline through both ends is removed, the spectrum is max-|y|
  normalised like the simulator, rebinned onto the axis and padded with the zero baseline where the model's
  sweep is wider (refused when the signal has not returned to the baseline at the measured window's edge, or
  the strongest feature lies outside the model's sweep).
* ``exafs`` with ``output: chi`` (k, 1/A): AUTOBK-like background (``simgen.exafs.background.autobk``,
  rbkg 1 A, k-weight 2) with E0 = the largest derivative within +-30 eV of the tabulated edge, chi(k) on the
  model's k grid times k^k_weight; refused when the data end before the model's k_max.
  ``output: mu`` (energy, eV relative to the tabulated edge): pre-edge line removed, divided by the edge step.
* ``exelfs`` (energy loss, eV): counts rebinned onto the axis, divided by their maximum (``normalize: true``);
  the power-law pre-edge background is kept (the simulator draws it); a start above the model's first loss is
  filled by the A E^-r law fitted to the first 30 eV when that window is pre-edge and the gap <= 60 eV.
* ``pdf`` (r, A): G(r) interpolated (point-sampled) onto the model's r grid, like the simulator; no rescaling (the recipe's ``scale`` prior covers it).
* image simulators (image_y, image_x in nm): resampled to the model's pixel size (Gaussian anti-aliasing when
  shrinking), cut into non-overlapping tiles of the model's shape, each divided by its mean (unit-mean
  intensity like the simulator).
* anything else with a 1-D axis (``peaks``): values rebinned onto the axis.

A measurement that does not cover the axis raises :class:`~train.measurements.MeasurementError` naming the
file, the measured range and the model's range.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simgen.simulator import Axis

from .measurements import Measurement, MeasurementError

__all__ = ["Prepared", "TargetSpec", "target_spec", "prepare", "rebin", "identify_eels_edges",
           "extract_chi", "MODALITY_OF_SIMULATOR"]

MODALITY_OF_SIMULATOR = {"epr": "epr", "exafs": "xafs", "exelfs": "eels", "pdf": "pdf", "swelling": "image",
                         "peaks": "columns"}
_DIM_SIMULATOR = {"field": "epr", "k": "exafs", "energy": "exafs", "energy_loss": "exelfs", "r": "pdf",
                  "image_y": "swelling"}


@dataclass
class Prepared:
    """A measurement on the model's axis: ``x`` (float32, ``(n, *axis.shape)``; n > 1 only for image tiles)."""

    x: np.ndarray
    axis: Axis
    measurement: Measurement
    info: dict = field(default_factory=dict)


@dataclass
class TargetSpec:
    """What preparation needs to know about the model: axis, simulator name, its config and recipe (if known)."""

    axis: Axis
    simulator: str
    config: dict = field(default_factory=dict)
    recipe: Any = None
    run: Any = None


# ------------------------------------------------------------------------------------------------ target
def _recipe_of_run_dir(path: Path):
    from simgen.recipe import load_recipe
    for name in ("recipe.yaml", "recipe.json"):
        if (path / name).exists():
            txt = (path / name).read_text()
            import yaml
            return load_recipe(yaml.safe_load(txt))
    cfg = json.loads((path / "config.json").read_text()) if (path / "config.json").exists() else {}
    store = cfg.get("store")
    if store and Path(store).exists():
        import simgen.corpus
        return simgen.corpus.open(store).recipe
    return None


def target_spec(target, modality: str | None = None) -> TargetSpec:
    from simgen.recipe import Recipe, load_recipe
    from simgen.simulator import Simulator
    if isinstance(target, TargetSpec):
        return target
    if isinstance(target, Axis):
        sim = {v: k for k, v in MODALITY_OF_SIMULATOR.items()}.get(modality or "", None) \
            or _DIM_SIMULATOR.get(target.dims[0], "peaks")
        return TargetSpec(target, sim)
    if isinstance(target, Simulator):
        return TargetSpec(target.axis, target.name, dict(target.config), getattr(target, "_recipe", None))
    if isinstance(target, Recipe):
        sim = target.build()
        return TargetSpec(sim.axis, sim.name, dict(sim.config), target)
    if isinstance(target, (str, Path)) and Path(target).is_dir():
        from .run import load_run
        target = load_run(target)
    if hasattr(target, "axis") and hasattr(target, "path") and hasattr(target, "task"):  # a train.run.Run
        recipe = _recipe_of_run_dir(Path(target.path))
        if recipe is not None:
            return TargetSpec(target.axis, recipe.simulator, dict(recipe.config), recipe, target)
        vf = Path(target.path) / "versions.json"
        sim = json.loads(vf.read_text()).get("simulator") if vf.exists() else None
        return TargetSpec(target.axis, sim or _DIM_SIMULATOR.get(target.axis.dims[0], "peaks"), {}, None, target)
    if isinstance(target, (str, Path)):
        return target_spec(load_recipe(target), modality)
    raise TypeError(f"prepare target {type(target).__name__}: expected a run directory, Run, Simulator, Recipe, "
                    "recipe name or Axis")


def _prior_support(spec: TargetSpec, name: str, cls: str | None = None):
    r = spec.recipe
    if r is None:
        return None
    pri = None
    try:
        params = r.params if hasattr(r, "params") else {}
        pri = params.get(name)
    except AttributeError:
        pri = None
    if pri is None:
        return None
    from simgen.priors import parse_prior
    try:
        p = parse_prior(pri, f"params.{name}") if not hasattr(pri, "support") else pri
        return p.support()
    except Exception:
        return None


# ------------------------------------------------------------------------------------------------ helpers
def rebin(x: np.ndarray, y: np.ndarray, xnew: np.ndarray) -> np.ndarray:
    """Values of (x, y) on ``xnew``: bin averages (exact integral of the linear interpolant over each new bin)
    where the data are finer than the new grid, linear interpolation where they are coarser."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    xnew = np.asarray(xnew, float)
    if len(xnew) < 2:
        return np.interp(xnew, x, y)
    dx_data = np.median(np.diff(x))
    edges = np.concatenate([[xnew[0] - (xnew[1] - xnew[0]) / 2], (xnew[1:] + xnew[:-1]) / 2,
                            [xnew[-1] + (xnew[-1] - xnew[-2]) / 2]])
    lin = np.interp(xnew, x, y)
    if dx_data >= np.median(np.diff(xnew)) / 1.5:
        return lin
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])

    def F(t):
        t = np.clip(t, x[0], x[-1])
        i = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
        h = t - x[i]
        slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
        return cum[i] + y[i] * h + 0.5 * slope * h * h

    lo = np.clip(edges[:-1], x[0], x[-1])
    hi = np.clip(edges[1:], x[0], x[-1])
    w = hi - lo
    out = np.where(w > 0, (F(hi) - F(lo)) / np.where(w > 0, w, 1.0), lin)
    return out


def _range(a) -> str:
    return f"{a[0]:g}-{a[-1]:g}"


def _refuse(m: Measurement, what: str):
    raise MeasurementError(m.source, what)


def _check_units(m: Measurement, axis: Axis, expected_units: str):
    if m.units != expected_units:
        _refuse(m, f"{m.axis_name} in '{m.units}' but the model's axis '{axis.dims[0]}' is in '{expected_units}'")


def _covers(m: Measurement, xdata, axis_c, label: str, tol: float | None = None):
    step = abs(axis_c[1] - axis_c[0]) if len(axis_c) > 1 else 0.0
    tol = 0.5 * step if tol is None else tol
    if xdata[0] > axis_c[0] + tol or xdata[-1] < axis_c[-1] - tol:
        _refuse(m, f"{label} {_range(xdata)} does not cover the model's axis {_range(axis_c)}")


# ------------------------------------------------------------------------------------------------ EPR
def _prepare_epr(m: Measurement, spec: TargetSpec, mw_frequency_GHz=None, pad: bool = True) -> Prepared:
    axis = spec.axis
    _check_units(m, axis, "mT")
    B = spec_axis = axis.coords[0]
    nu = m.meta.get("mw_frequency_GHz")
    info: dict = {"steps": []}
    if mw_frequency_GHz is not None:
        nu_t = float(mw_frequency_GHz)
    else:
        sup = _prior_support(spec, "mw_freq")
        if nu is None:
            nu_t = None
        elif sup is not None:
            nu_t = float(np.clip(nu, sup[0], sup[1]))
        else:
            nu_t = nu
    scale = 1.0
    if nu is not None and nu_t is not None and nu > 0:
        scale = nu_t / nu
    elif mw_frequency_GHz is not None:
        _refuse(m, "no microwave frequency in the file: cannot rescale the field to "
                f"{mw_frequency_GHz} GHz")
    info.update(mw_frequency_measured_GHz=nu, mw_frequency_GHz=nu_t if nu_t is not None else nu, field_scale=scale)
    x = m.axis * scale
    y = m.values.astype(float).copy()
    if scale != 1.0:
        info["steps"].append(f"field x {scale:.6f} (nu {nu:.6f} -> {nu_t:.6f} GHz)")
    n = len(y)
    w = max(3, n // 20)
    # linear baseline through the medians of both end windows
    xa, xb = np.median(x[:w]), np.median(x[-w:])
    ya, yb = np.median(y[:w]), np.median(y[-w:])
    y -= ya + (yb - ya) * (x - xa) / (xb - xa)
    peak = np.max(np.abs(y))
    if not peak > 0:
        _refuse(m, "flat spectrum (no signal above the baseline)")
    y /= peak
    info["steps"].append("linear baseline through the end 5 % removed; max |y| = 1")
    inside = (x >= B[0]) & (x <= B[-1])
    if not inside.any():
        _refuse(m, f"field {_range(x)} mT (after rescaling x{scale:.5f}) does not overlap the model's axis "
                f"{_range(B)} mT")
    ipk = int(np.argmax(np.abs(y)))
    if not (B[0] <= x[ipk] <= B[-1]):
        _refuse(m, f"the strongest feature at {x[ipk]:.3f} mT lies outside the model's axis {_range(B)} mT")
    covers = x[0] <= B[0] + 1e-9 and x[-1] >= B[-1] - 1e-9
    if not covers:
        if not pad:
            _refuse(m, f"field {_range(x)} mT does not cover the model's axis {_range(B)} mT (pad=False)")
        edge = max(np.mean(np.abs(y[:max(2, n // 50)])), np.mean(np.abs(y[-max(2, n // 50):])))
        if edge > 0.15:
            _refuse(m, f"field {_range(x)} mT is narrower than the model's axis {_range(B)} mT and the signal does "
                    f"not return to the baseline at the window's edge (mean |y| {edge:.2f} of the maximum): "
                    "cannot pad")
        info["steps"].append(f"padded with the zero baseline outside {_range(x)} mT")
    out = rebin(x, y, B)
    out[(B < x[0]) | (B > x[-1])] = 0.0
    info["coverage"] = float(np.mean((B >= x[0]) & (B <= x[-1])))
    return Prepared(out[None].astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ XAFS
def _edge_energy(m: Measurement):
    if "edge_energy_eV" in m.meta:
        return float(m.meta["edge_energy_eV"])
    if "element" in m.meta and "edge" in m.meta:
        from simgen.exafs.edges import edge_energy
        return edge_energy(m.meta["element"], m.meta["edge"])
    return None


def _find_e0(m: Measurement, e, mu, near: float | None, window: float = 30.0):
    d = np.gradient(mu, e)
    sel = np.ones(len(e), bool)
    if near is not None:
        sel = (e >= near - window) & (e <= near + window)
        if sel.sum() < 3:
            _refuse(m, f"energy {_range(e)} eV holds no points within +-{window:g} eV of the tabulated edge "
                    f"{near:g} eV")
    i = np.flatnonzero(sel)[np.argmax(d[sel])]
    return float(e[i])


def extract_chi(m: Measurement, kstep: float = 0.05, rbkg: float = 1.0, kweight: int = 2, e0: float | None = None):
    """AUTOBK-like chi(k) of a mu(E) measurement: (BackgroundResult, e0, edge energy)."""
    from simgen.exafs.background import autobk
    e, mu = m.axis, m.values
    e_tab = _edge_energy(m)
    if e0 is None:
        e0 = _find_e0(m, e, mu, e_tab)
    if not (e[0] < e0 - 20 and e[-1] > e0 + 150):
        _refuse(m, f"energy {_range(e)} eV: need pre-edge (< E0 - 20) and post-edge (> E0 + 150) data around "
                f"E0 = {e0:g} eV")
    res = autobk(e, mu, e0=e0, rbkg=rbkg, kweight=kweight, kstep=kstep)
    if not res.edge_step > 0:
        _refuse(m, f"edge step {res.edge_step:g} at E0 = {e0:g} eV: mu(E) does not rise at the edge")
    return res, e0, e_tab


def _prepare_xafs(m: Measurement, spec: TargetSpec, e0=None) -> Prepared:
    axis = spec.axis
    c = spec.config
    _check_units(m, Axis(("energy",), (m.axis,), (m.units,)), "eV")
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
                _refuse(m, f"the recipe's k axis {_range(sim.axis.coords[0])} differs from the model's {_range(k)}")
            e_tab = _edge_energy(m)
            e_all, mu_all = m.axis, m.values
            e0_try = e0 if e0 is not None else _find_e0(m, e_all, mu_all, e_tab)
            if not (e_all[0] < e0_try - 20 and e_all[-1] > e0_try + 150):
                _refuse(m, f"energy {_range(e_all)} eV: need pre-edge (< E0 - 20) and post-edge (> E0 + 150) data "
                        f"around E0 = {e0_try:g} eV")
            from simgen.exafs.background import ETOK
            k_data = float(np.sqrt(max(float(np.max(e_all)) - e0_try, 0.0) * ETOK))
            if k_data < k[-1] - 1e-6:
                _refuse(m, f"k 0-{k_data:.2f} 1/A (E0 = {e0_try:.1f} eV, data to {float(np.max(e_all)):g} eV) does "
                        f"not cover the model's axis k {_range(k)} 1/A")
            try:
                x, res = measured_chi(e_all, mu_all, sim, e0=e0, edge_energy=e_tab, return_result=True)
            except ParameterError as err:
                _refuse(m, str(err))
            if not res.edge_step > 0:
                _refuse(m, f"edge step {res.edge_step:g} at E0 = {res.e0:g} eV: mu(E) does not rise at the edge")
            info.update(e0_eV=float(res.e0), edge_energy_eV=e_tab, edge_step=res.edge_step,
                        k_max_data=float(res.k[-1]))
            info["steps"].append(f"simgen.exafs.background.measured_chi: AUTOBK-like background (rbkg 1 A), "
                                 f"E0 = {res.e0:.2f} eV, step {res.edge_step:.4g}, chi(k) * k^{kw} on k {_range(k)} 1/A")
            return Prepared(np.asarray(x, np.float32)[None], axis, m, info)
        res, e0_, e_tab = extract_chi(m, kstep=min(0.05, float(k[1] - k[0])), e0=e0)
        info.update(e0_eV=e0_, edge_energy_eV=e_tab, edge_step=res.edge_step, k_max_data=float(res.k[-1]))
        info["steps"].append(f"AUTOBK-like background (rbkg 1 A), E0 = {e0_:.2f} eV, step {res.edge_step:.4g}")
        if res.k[-1] < k[-1] - 1e-6:
            _refuse(m, f"k {res.k[0]:g}-{res.k[-1]:.2f} 1/A (E0 = {e0_:.1f} eV, data to {m.axis[-1]:g} eV) does not "
                    f"cover the model's axis k {_range(k)} 1/A")
        chi = np.interp(k, res.k, res.chi)
        info["steps"].append(f"chi(k) * k^{kw} on k {_range(k)} 1/A")
        return Prepared((chi * k ** kw)[None].astype(np.float32), axis, m, info)
    if dim == "energy":
        from simgen.exafs.background import autobk
        e_tab = _edge_energy(m)
        if e_tab is None:
            _refuse(m, "no element/edge in the file: cannot place energies relative to the tabulated edge")
        e0_ = e0 if e0 is not None else _find_e0(m, m.axis, m.values, e_tab)
        res = autobk(m.axis, m.values, e0=e0_)
        rel = m.axis - e_tab
        _covers(m, rel, axis.coords[0], "energy relative to the edge (eV)")
        norm = (m.values - res.pre_edge) / res.edge_step
        info.update(e0_eV=e0_, edge_energy_eV=e_tab, edge_step=res.edge_step)
        info["steps"].append("pre-edge line removed, divided by the edge step; E - E_edge(tabulated)")
        return Prepared(rebin(rel, norm, axis.coords[0])[None].astype(np.float32), axis, m, info)
    _refuse(m, f"XAFS data cannot be put on a '{dim}' axis")


# ------------------------------------------------------------------------------------------------ EELS
def _prepare_eels(m: Measurement, spec: TargetSpec) -> Prepared:
    axis = spec.axis
    _check_units(m, axis, "eV")
    E = axis.coords[0]
    x, y = m.axis, m.values.astype(float)
    info: dict = {"steps": []}
    if x[-1] < E[-1] - 0.5 * (E[1] - E[0]):
        _refuse(m, f"energy loss {_range(x)} eV ends before the model's axis {_range(E)} eV")
    if x[0] > E[0] + 0.5 * (E[1] - E[0]):
        gap = x[0] - E[0]
        win = (x >= x[0]) & (x <= x[0] + 30.0)
        edges_in = [e for e in identify_eels_edges(m, max_edges=3) if e["onset_eV"] < x[0] + 35.0]
        if gap > 60.0 or edges_in or win.sum() < 5 or np.any(y[win] <= 0):
            _refuse(m, f"energy loss {_range(x)} eV starts {gap:.1f} eV after the model's axis {_range(E)} eV and "
                    "the power-law pre-edge background cannot be extrapolated (gap > 60 eV, edge within 35 eV of "
                    "the start, or non-positive counts)")
        slope, icpt = np.polyfit(np.log(x[win]), np.log(y[win]), 1)
        resid = np.log(y[win]) - (icpt + slope * np.log(x[win]))
        sm = np.convolve(resid, np.ones(9) / 9, mode="valid") if win.sum() > 9 else resid
        if not (-6.0 < slope < -1.0) or np.max(np.abs(sm)) > 0.03:
            _refuse(m, f"energy loss {_range(x)} eV starts {gap:.1f} eV after the model's axis {_range(E)} eV and "
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
            _refuse(m, "no positive counts on the model's energy-loss window")
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
    if m.modality != "eels" or m.units != "eV":
        _refuse(m, f"edge identification needs an EELS spectrum in eV (got {m.modality} in {m.units})")
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


# ------------------------------------------------------------------------------------------------ PDF
def _prepare_pdf(m: Measurement, spec: TargetSpec) -> Prepared:
    """G(r) onto the model's r grid by point sampling (linear interpolation), like the simulator, which evaluates
    G at the grid points: G(r) is band-limited by Qmax, so a measured grid finer than pi/Qmax is interpolated,
    not bin-averaged (averaging would broaden peaks and damp termination ripples the simulator keeps).  The
    model's first point (recipes start at 1.5 A, below which reductions leave ripples rather than structure)
    is where the window begins; nothing before it is used.  No rescaling: the experimental scale is arbitrary and
    the recipe's ``scale`` prior covers it (the measured Qmin/Qmax are compared with the recipe's priors and a
    warning is recorded when they lie outside)."""
    axis = spec.axis
    _check_units(m, axis, "A")
    r = axis.coords[0]
    x, y = np.asarray(m.axis, float), np.asarray(m.values, float)
    if x.ndim != 1 or y.shape != x.shape or len(x) < 2:
        _refuse(m, f"G(r) of shape {y.shape} on r of shape {x.shape}: expected one value per r point")
    if np.any(np.diff(x) <= 0):
        _refuse(m, "r values do not increase monotonically")
    if not np.all(np.isfinite(y)):
        _refuse(m, f"{int(np.sum(~np.isfinite(y)))} non-finite G(r) values")
    _covers(m, x, r, "r (A)")
    info: dict = {"steps": [], "r_step_measured": float(np.median(np.diff(x)))}
    qmax = m.meta.get("qmax")
    nyq = math.pi / float(qmax) if qmax else None
    if nyq is not None and info["r_step_measured"] > nyq * 1.0001:
        info["warning"] = (f"measured r step {info['r_step_measured']:g} A is coarser than pi/Qmax = {nyq:.3g} A: "
                           "G(r) is undersampled, interpolation loses peak shape")
    g = np.interp(r, x, y)
    info["steps"].append(f"G(r) interpolated onto r {_range(r)} A (step {float(r[1] - r[0]):g} A)")
    for key in ("qmax", "qmin"):
        if key in m.meta and m.meta[key] is not None:
            val = float(m.meta[key])
            info[f"{key}_measured"] = val
            sup = _prior_support(spec, key)
            if sup is not None and not (sup[0] - 1e-9 <= val <= sup[1] + 1e-9):
                msg = f"measured {key} {val:g} 1/A lies outside the recipe's {sup[0]:g}-{sup[1]:g}"
                info["warning"] = (info["warning"] + "; " + msg) if "warning" in info else msg
    return Prepared(g[None].astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ images
def _prepare_image(m: Measurement, spec: TargetSpec, pixel_size_nm=None, max_tiles: int | None = None) -> Prepared:
    from scipy import ndimage
    axis = spec.axis
    if m.values.ndim != 2:
        _refuse(m, f"values of shape {m.values.shape}: the model expects 2-D images")
    ny, nx = axis.shape
    px_model = float(axis.coords[1][1] - axis.coords[1][0])
    px = pixel_size_nm if pixel_size_nm is not None else m.meta.get("pixel_size_nm")
    if px is None:
        _refuse(m, "pixel size unknown (no calibration in the file): pass pixel_size_nm")
    img = m.values.astype(float)
    f = float(px) / px_model
    info: dict = {"pixel_size_nm": float(px), "model_pixel_nm": px_model, "zoom": f, "steps": []}
    if abs(f - 1.0) > 1e-3:
        if f < 1.0:  # shrinking: anti-alias first
            img = ndimage.gaussian_filter(img, sigma=max(0.0, (1.0 / f - 1.0) / 2.0))
        img = ndimage.zoom(img, f, order=1)
        info["steps"].append(f"resampled x{f:.4f} to {px_model:g} nm/pixel")
    H, W = img.shape
    if H < ny or W < nx:
        _refuse(m, f"image {m.values.shape[0]}x{m.values.shape[1]} px at {px:g} nm is {H}x{W} px at the model's "
                f"{px_model:g} nm: smaller than one {ny}x{nx} tile")
    tiles = []
    for i in range(0, H - ny + 1, ny):
        for j in range(0, W - nx + 1, nx):
            t = img[i:i + ny, j:j + nx]
            mu = t.mean()
            if not mu > 0:
                _refuse(m, f"tile at ({i}, {j}) has non-positive mean intensity {mu:g}")
            tiles.append(t / mu)
            if max_tiles and len(tiles) >= max_tiles:
                break
        if max_tiles and len(tiles) >= max_tiles:
            break
    info["n_tiles"] = len(tiles)
    info["steps"].append(f"{len(tiles)} tile(s) of {ny}x{nx}, each divided by its mean")
    return Prepared(np.stack(tiles).astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ generic
def _prepare_generic(m: Measurement, spec: TargetSpec) -> Prepared:
    axis = spec.axis
    if axis.ndim != 1 or m.values.ndim != 1:
        _refuse(m, f"cannot put a {m.values.ndim}-D measurement on a {axis.ndim}-D axis")
    if m.units and axis.units[0] and m.units != axis.units[0]:
        _refuse(m, f"axis in '{m.units}' but the model's axis '{axis.dims[0]}' is in '{axis.units[0]}'")
    _covers(m, m.axis, axis.coords[0], f"{m.axis_name}")
    return Prepared(rebin(m.axis, m.values, axis.coords[0])[None].astype(np.float32), axis, m,
                    {"steps": ["rebinned onto the axis"]})


_EXPECTED = {"epr": ("epr",), "exafs": ("xafs",), "exelfs": ("eels",), "pdf": ("pdf",), "swelling": ("image",)}


def prepare(measurement: Measurement, target, *, modality: str | None = None, mw_frequency_GHz=None,
            pad: bool = True, e0=None, pixel_size_nm=None, max_tiles=None) -> Prepared:
    """Put ``measurement`` on ``target``'s axis (see the module docstring for the conventions)."""
    spec = target_spec(target, modality)
    m = measurement
    sim = spec.simulator
    want = _EXPECTED.get(sim)
    if want and m.modality not in want + ("columns",):
        _refuse(m, f"a {m.modality} measurement cannot feed a '{sim}' model (expects {', '.join(want)} data)")
    if sim == "epr":
        return _prepare_epr(m, spec, mw_frequency_GHz, pad)
    if sim == "exafs":
        return _prepare_xafs(m, spec, e0)
    if sim == "exelfs":
        return _prepare_eels(m, spec)
    if sim == "pdf":
        return _prepare_pdf(m, spec)
    if spec.axis.ndim == 2:
        return _prepare_image(m, spec, pixel_size_nm, max_tiles)
    return _prepare_generic(m, spec)
