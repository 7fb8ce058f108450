"""AUTOBK-like extraction of chi(k) from measured mu(E) (used by train/ to prepare measured XAFS).

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

__all__ = ["autobk", "find_e0", "BackgroundResult", "r_factor"]


@dataclass
class BackgroundResult:
    k: np.ndarray
    chi: np.ndarray
    e0: float
    edge_step: float
    energy: np.ndarray
    bkg: np.ndarray
    pre_edge: np.ndarray


def find_e0(energy, mu) -> float:
    e = np.asarray(energy, float)
    d = np.gradient(np.asarray(mu, float), e)
    # ignore the first and last few points (edge effects)
    n = len(e)
    sl = slice(min(5, n // 10), max(n - 5, n - n // 10))
    return float(e[sl][np.argmax(d[sl])])


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
