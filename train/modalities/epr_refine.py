"""Physics refinement of an EPR network's reading: from the network's class and estimate, g and the hyperfine
coupling are re-read from the measured spectrum itself, on the file's own field axis and frequency.

* **Centre of antisymmetry** (every isotropic class): a first-derivative pattern of isotropic lines is
  antisymmetric about the resonance field of g_iso (to first order in the hyperfine coupling), whatever the number
  of lines, nuclei or line shape.  The centre ``c`` minimising ``sum (y(c + d) + y(c - d))^2 / sum (y(c + d)^2 +
  y(c - d)^2)`` over the symmetric part of the window is found on a fine grid and refined by a parabola.
* **Least squares with the simulator's isotropic line shape** (classes with a resolved hyperfine pattern of one
  nucleus: ``nitroxide`` (14N), ``Mn2`` (55Mn, S = 5/2, central lines with second-order shifts)): g, A, the
  Gaussian and Lorentzian widths, an amplitude (any sign: inverted detection phase) and a linear baseline, started
  from the antisymmetry centre and the network's A (:func:`simgen.epr.physics.cw_spectrum`).

Classes the refinement does not model (axial Cu2+ powders) keep the network's values.  The network-only values
stay in the result beside the refined ones (``<name>_net``).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["antisymmetry_centre", "refine_epr", "REFINED_CLASSES"]

#: class -> (nucleus, S, fit the hyperfine coupling by least squares)
REFINED_CLASSES = {
    "single_line": (None, 0.5, False),
    "radical_hf": (None, 0.5, False),
    "Cu2_exchange": (None, 0.5, False),
    "nitroxide": ("14N", 0.5, True),
    "Mn2": ("55Mn", 2.5, True),
}


def _prepared_native(m):
    """(field mT, derivative with the end-window linear baseline removed, max |y| = 1) on the file's own axis."""
    x = np.asarray(m.axis, float)
    y = np.asarray(m.values, float).copy()
    n = len(y)
    w = max(3, n // 20)
    xa, xb = np.median(x[:w]), np.median(x[-w:])
    ya, yb = np.median(y[:w]), np.median(y[-w:])
    y -= ya + (yb - ya) * (x - xa) / (xb - xa)
    pk = np.max(np.abs(y))
    return x, (y / pk if pk > 0 else y)


def _asym(x, y, c, d):
    yp = np.interp(c + d, x, y)
    ym = np.interp(c - d, x, y)
    den = np.sum(yp * yp + ym * ym)
    return float(np.sum((yp + ym) ** 2) / den) if den > 0 else 1.0


def antisymmetry_centre(x, y, c0: float, search: float, min_half: float | None = None) -> tuple[float, float]:
    """Field (mT) about which ``y(x)`` is most nearly antisymmetric, searched within ``c0 +- search``.

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Field (mT, increasing) and first-derivative spectrum.
    c0 : float
        Starting centre (mT), e.g. the network's resonance field.
    search : float
        Half-width of the search interval (mT).
    min_half : float, optional
        Smallest half-window (mT) the comparison must use (default: 10 field steps).

    Returns
    -------
    (centre, residual)
        The centre in mT and the normalised residual (0: perfectly antisymmetric, 1: no antisymmetry).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    h = float(np.median(np.diff(x)))
    min_half = 10 * h if min_half is None else min_half
    lo, hi = max(c0 - search, x[0] + min_half), min(c0 + search, x[-1] - min_half)
    if hi <= lo:
        return float("nan"), 1.0

    def score(c):
        half = min(c - x[0], x[-1] - c)
        d = np.linspace(h / 2, half, int(min(max(half / (h / 2), 2), 4000)))
        return _asym(x, y, c, d)

    # coarse to fine: 201-2001 candidates (about a field step apart) over the interval, then twice 41 around the best, down to a quarter step
    cs = np.linspace(lo, hi, int(np.clip((hi - lo) / h, 201, 2001)))
    r = np.array([score(c) for c in cs])
    while True:
        k = int(np.argmin(r))
        step = cs[1] - cs[0]
        if step <= h / 4:
            break
        cs = np.linspace(max(lo, cs[k] - step), min(hi, cs[k] + step), 41)
        r = np.array([score(c) for c in cs])
    k = int(np.argmin(r))
    c = float(cs[k])
    if 0 < k < len(cs) - 1:  # parabola through the three lowest points
        a, b, e = r[k - 1], r[k], r[k + 1]
        den = a - 2 * b + e
        if den > 0:
            c += 0.5 * (a - e) / den * (cs[1] - cs[0])
    return c, float(r[k])


def _ls_fit(x, y, nu, S, nucleus, g0, A0, lw0):
    """Least-squares fit of an isotropic centre (one nucleus) to the derivative ``y(x)``: returns (g, A MHz, rms)."""
    from scipy.optimize import least_squares

    from simgen.epr.physics import Experiment, Options, SpinSystem, cw_spectrum
    opt = Options(method="auto")
    exp = Experiment(np.asarray(x, float), mw_freq=float(nu), harmonic=1, mod_amp=0.0, mw_phase=0.0)
    u = (x - 0.5 * (x[0] + x[-1])) / (0.5 * (x[-1] - x[0]))

    def shape(q):
        g, A, lwG, lwL = q
        s = SpinSystem(S=S, g=[g, g, g], nucleus=nucleus, A=[A, A, A], lw=abs(lwG), lwL=abs(lwL))
        return cw_spectrum(s, exp, opt)

    def resid(q):
        f = shape(q)
        M = np.stack([f, np.ones_like(u), u], axis=1)   # amplitude and linear baseline: linear, solved exactly
        coef, *_ = np.linalg.lstsq(M, y, rcond=None)
        return M @ coef - y

    q0 = np.array([g0, A0, max(lw0, 0.05), 0.05])
    lo = np.array([g0 - 0.01, A0 - 0.3 * abs(A0) - 1.0, 0.01, 0.0])
    hi = np.array([g0 + 0.01, A0 + 0.3 * abs(A0) + 1.0, 5.0, 5.0])
    q0 = np.clip(q0, lo + 1e-9, hi - 1e-9)
    sol = least_squares(resid, q0, bounds=(lo, hi), x_scale=[1e-4, 0.5, 0.05, 0.05], diff_step=1e-4,
                        max_nfev=200)
    rms = float(np.sqrt(np.mean(sol.fun ** 2)))
    return float(sol.x[0]), float(sol.x[1]), rms, bool(sol.success)


def refine_epr(m, cls: str, g_net: float, A_net: float | None, nu_model: float | None) -> dict | None:
    """Refined g_iso (and A_iso, a_iso) of measurement ``m`` of class ``cls``, started from the network's
    estimates ``g_net`` and ``A_net`` (MHz, already divided by the field scale).

    Returns ``None`` for a class the refinement does not model, else a dict with ``g_iso``, optionally
    ``A_iso_MHz`` and ``a_iso_mT``, and ``refine`` (the method, residuals and the frequency used).  The frequency
    is the file's (``meta['mw_frequency_GHz']``) or, when it has none, the model's.
    """
    from .epr import MUB_MHZ_PER_MT
    if cls not in REFINED_CLASSES or not (g_net > 0 and math.isfinite(g_net)):
        return None
    nucleus, S, fit_A = REFINED_CLASSES[cls]
    nu = m.meta.get("mw_frequency_GHz") or nu_model
    if not nu:
        return None
    x, y = _prepared_native(m)
    b_net = nu * 1e3 / (MUB_MHZ_PER_MT * g_net)
    # search +-0.02 in g around the network (about +-3.4 mT at X band): the network places the pattern, the
    # spectrum decides the centre
    search = b_net * 0.02 / g_net
    c, r = antisymmetry_centre(x, y, b_net, search)
    info: dict = {"method": "antisymmetry centre", "asym_residual": r, "mw_frequency_GHz": float(nu)}
    if not math.isfinite(c):
        return None
    g = nu * 1e3 / (MUB_MHZ_PER_MT * c)
    out: dict = {"g_iso": g, "refine": info}
    if fit_A and A_net is not None and math.isfinite(A_net):
        A0 = A_net
        if nucleus == "55Mn":
            A0 = -abs(A_net)
            # second order: both central lines shift by -(a^2 / 2B)(I(I+1) - 1/4) = -8.5 a^2 / (2 B) (I = 5/2), so
            # the antisymmetry centre lies below the resonance of g; start the fit from the corrected field
            a_mT = abs(A0) / (MUB_MHZ_PER_MT * g)
            g = nu * 1e3 / (MUB_MHZ_PER_MT * (c + 8.5 * a_mT ** 2 / (2 * c)))
        lw0 = 0.2
        try:
            gf, Af, rms, ok = _ls_fit(x, y, nu, S, nucleus, g, A0, lw0)
        except Exception as exc:  # a failed fit keeps the antisymmetry g and the network's A, and says why
            info["fit_error"] = f"{type(exc).__name__}: {exc}"
            return out
        info.update(method="antisymmetry centre + least squares (iso, " + nucleus + ")", fit_rms=rms,
                    fit_converged=ok)
        out["g_iso"] = gf
        out["A_iso_MHz"] = Af
        out["a_iso_mT"] = Af / (MUB_MHZ_PER_MT * gf)
    return out
