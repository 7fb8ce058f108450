"""AUTOBK-like extraction of chi(k) from measured mu(E), and the project's one E0 finder (used by train/ to prepare
measured XAFS).

Steps (after Newville, Livins, Yacoby, Rehr & Stern, PRB 47, 14126 (1993), in simplified form):
1. E0 = energy of the largest derivative of mu(E) (or given);
2. pre-edge line fitted over [E0 + pre1, E0 + pre2], post-edge quadratic over [E0 + norm1, E0 + norm2];
   edge step = post - pre at E0;
3. background mu0(E): a least-squares cubic B-spline in k with knots spaced pi/rbkg apart, so it cannot follow
   oscillations from distances above rbkg (AUTOBK's criterion: chi(R < rbkg) is removed), fitted with k^kweight
   weights;
4. chi(k) = (mu - mu0)/step on a uniform k grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import make_lsq_spline

from .simulator import ETOK

__all__ = ["autobk", "find_e0", "BackgroundResult", "r_factor", "measured_chi", "measured_chi_file"]


@dataclass
class BackgroundResult:
    k: np.ndarray
    chi: np.ndarray
    e0: float
    edge_step: float
    energy: np.ndarray
    bkg: np.ndarray
    pre_edge: np.ndarray


def find_e0(energy, mu, near=None, window=30.0, smooth=0.0) -> float:
    """E0 of a mu(E) scan: the energy of its steepest rise, the project's one E0 finder.

    Parameters
    ----------
    energy, mu : array
        The scan (eV; any order of points is not assumed: energies must increase).
    near : float, optional
        Look only within +-``window`` eV of this energy (e.g. the tabulated edge), robust against glitches
        elsewhere.
    smooth : float, eV
        When > 0, mu is first put on a uniform grid (step >= 0.5 eV) and box-smoothed over +-``smooth`` eV, so the
        rise of a noisy scan is found rather than its largest single-point jump (used to identify an unknown edge).

    The first and last few points are ignored (edge effects of the gradient).  Raises ValueError when no data lie
    near ``near``.
    """
    e = np.asarray(energy, float)
    y = np.asarray(mu, float)
    if smooth > 0:
        grid = np.arange(e[0], e[-1], max(0.5, float(np.median(np.diff(e)))))
        y = np.interp(grid, e, y)
        k = max(1, int(round(smooth / (grid[1] - grid[0]))))
        y = np.convolve(y, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
        e = grid
    d = np.gradient(y, e)
    n = len(e)
    sel = np.zeros(n, bool)
    edge = max(min(5, n // 10), 2 * int(round(smooth / (e[1] - e[0]))) if smooth > 0 else 0)
    sel[edge:max(n - edge, n - n // 10)] = True
    if near is not None:
        sel &= np.abs(e - float(near)) <= window
        if sel.sum() < 3:
            raise ValueError(f"no data within +-{window:g} eV of the edge at {near:g} eV "
                             f"(energy {e[0]:g}-{e[-1]:g} eV)")
    i = np.flatnonzero(sel)
    return float(e[i[np.argmax(d[i])]])


def autobk(energy, mu, e0=None, rbkg=1.0, kweight=2, kmax=None, kstep=0.05, pre1=-150.0, pre2=-30.0,
           norm1=100.0, norm2=None) -> BackgroundResult:
    e = np.asarray(energy, float)
    mu = np.asarray(mu, float)
    if e0 is None:
        e0 = find_e0(e, mu)
    if not (e[0] < e0 < e[-1]):
        raise ValueError(f"e0 = {e0}: outside the energy range {e[0]}-{e[-1]} eV")
    pre_sel = (e >= e0 + pre1) & (e <= e0 + pre2)
    if pre_sel.sum() < 2:
        pre_sel = e < e0 - 10
    pre = np.polyfit(e[pre_sel], mu[pre_sel], 1) if pre_sel.sum() >= 2 else np.array([0.0, mu[0]])
    norm2 = e[-1] - e0 if norm2 is None else norm2
    post_sel = (e >= e0 + norm1) & (e <= e0 + norm2)
    if post_sel.sum() < 3:                      # short scan: the upper half of the post-edge data
        post_sel = e >= e0 + 0.5 * (e[-1] - e0)
    post = np.polyfit(e[post_sel] - e0, mu[post_sel], 2)
    step = float(np.polyval(post, 0.0) - np.polyval(pre, e0))
    above = e > e0
    kk = np.sqrt(ETOK * (e[above] - e0))
    y = mu[above]
    kmax_data = kk[-1]
    kmax = kmax_data if kmax is None else min(kmax, kmax_data)
    nknots = max(int(2 * rbkg * (kmax_data - 0.0) / np.pi) + 1, 2)
    inner = np.linspace(0.0, kmax_data, nknots)[1:-1]
    t = np.r_[[0.0] * 4, inner, [kmax_data] * 4]
    w = np.maximum(kk, 0.5) ** kweight
    spl = make_lsq_spline(kk, y, t, k=3, w=w)
    bkg = np.full(len(e), np.nan)
    bkg[above] = spl(kk)
    kgrid = np.arange(0.0, kmax + kstep / 2, kstep)
    chi = np.interp(kgrid, kk, (y - spl(kk)) / step)
    return BackgroundResult(kgrid, chi, float(e0), step, e, bkg, np.polyval(pre, e))


def r_factor(data, model) -> float:
    """sum (data - model)^2 / sum data^2 (the EXAFS fit R-factor)."""
    d = np.asarray(data, float)
    return float(np.sum((d - np.asarray(model, float)) ** 2) / np.sum(d * d))


def _exafs_sim(recipe_or_sim):
    """The chi-output EXAFS simulator behind a Simulator, a Recipe or a recipe name/path."""
    from ..errors import RecipeError
    from ..simulator import Simulator
    from .simulator import EXAFSSimulator
    sim = recipe_or_sim
    if isinstance(sim, (str, bytes)) or hasattr(sim, "__fspath__"):
        from .. import load_recipe
        sim = load_recipe(sim)
    if not isinstance(sim, Simulator) and hasattr(sim, "build"):
        sim = sim.build()
    if not isinstance(sim, EXAFSSimulator):
        raise RecipeError("simulator", type(sim).__name__, "an 'exafs' simulator (or its recipe)")
    if sim.config["output"] != "chi":
        raise RecipeError("config.output", sim.config["output"], "'chi' (measured_chi gives chi(k) on a k grid)")
    return sim


def measured_chi(energy, mu, recipe_or_sim, e0=None, rbkg=1.0, k_weighted=True, return_result=False,
                 edge_energy=None):
    """A measured mu(E) prepared like the simulator's output: chi(k) on the simulator's k grid.

    Uses the simulator's conventions: E0 at the steepest point of the edge (the simulator's dE0 prior absorbs
    the difference to FEFF's E0), chi = (mu - mu0) / edge step (pre-edge line, post-edge quadratic, as in
    Athena/Larch), background mu0 an AUTOBK-like spline in k with knots pi/rbkg apart (``autobk``), then
    interpolated onto ``sim.axis`` and, with ``k_weighted`` (default), multiplied by k^config.k_weight, which
    is exactly what ``sim.simulate`` returns (float32).  recipe_or_sim: an ``exafs`` simulator, its Recipe, or a
    recipe name/path.  The data must reach config.k_max (else ParameterError naming 'energy').
    edge_energy (eV, e.g. ``edges.edge_energy('Cu', 'K')``): look for E0 within +-30 eV of it (robust against
    glitches elsewhere); e0 fixes E0.  return_result=True also returns the BackgroundResult (e0, edge step, mu0).
    """
    from ..errors import ParameterError
    sim = _exafs_sim(recipe_or_sim)
    e = np.asarray(energy, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    if e.ndim != 1 or e.shape != mu.shape or len(e) < 20:
        raise ParameterError("energy", f"shape {e.shape} vs mu {mu.shape}", "two 1-D arrays of equal length >= 20")
    order = np.argsort(e)
    e, mu = e[order], mu[order]
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(mu))):
        raise ParameterError("mu", "non-finite values", "finite energy and mu")
    k = sim.axis.coords[0]
    if e0 is None:
        try:
            e0 = find_e0(e, mu, near=edge_energy)
        except ValueError:
            raise ParameterError("energy", f"{e[0]:g}-{e[-1]:g} eV",
                                 f"data within +-30 eV of the edge at {edge_energy:g} eV") from None
    e0 = float(e0)
    if e[-1] - e0 < k[-1] ** 2 / ETOK:
        raise ParameterError("energy", f"up to E0 + {e[-1] - e0:.0f} eV (k = {np.sqrt(max(e[-1] - e0, 0) * ETOK):.2f}"
                             " 1/A)", f"data reaching the simulator's k_max = {k[-1]:g} 1/A "
                             f"(E0 + {k[-1] ** 2 / ETOK:.0f} eV)")
    bk = autobk(e, mu, e0=e0, rbkg=rbkg, kweight=sim.config["k_weight"], kstep=0.025)
    chi = np.interp(k, bk.k, bk.chi)
    if k_weighted:
        chi = chi * k ** sim.config["k_weight"]
    chi = chi.astype(np.float32)
    return (chi, bk) if return_result else chi


def measured_chi_file(path, recipe_or_sim, **kw):
    """``measured_chi`` of an XAFS file (XDI or '#'-commented energy/mu columns), read by the project's one XAFS
    reader (:func:`train.measurements.read` through the exafs adapter)."""
    from train.measurements import read
    m = read(path, modality="exafs")
    return measured_chi(m.axis, m.values, recipe_or_sim, **kw)
