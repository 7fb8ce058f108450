"""Physics refinement of an EPR network's reading: from the network's class and estimate, g and the hyperfine
coupling are re-read from the measured spectrum itself, on the file's own field axis and frequency.

* **Centre of antisymmetry** (every isotropic class): a first-derivative pattern of isotropic lines is
  antisymmetric about the resonance field of g_iso (to first order in the hyperfine coupling), whatever the number
  of lines, nuclei or line shape.  The centre ``c`` minimising ``sum (y(c + d) + y(c - d))^2 / sum (y(c + d)^2 +
  y(c - d)^2)`` over the symmetric part of the window is found on a fine grid and refined by a parabola.
* **Least squares with the simulator's isotropic line shape** (classes with a resolved hyperfine pattern of one
  nucleus: ``nitroxide`` (14N, :func:`simgen.epr.physics.cw_spectrum`), ``Mn2`` (55Mn, S = 5/2: the six central
  transitions with their second-order shifts, :func:`mn_central_lines`)): g, A, the Gaussian and Lorentzian
  widths, an amplitude (any sign: inverted detection phase) and a linear baseline, started from the best point of
  a grid around the antisymmetry centre and the network's A.

Classes the refinement does not model (axial Cu2+ powders) keep the network's values.  The network-only values
stay in the result beside the refined ones (``result['network']``).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["antisymmetry_centre", "mn_central_lines", "refine_epr", "REFINED_CLASSES"]

#: a least-squares fit that explains less of the spectrum's variance than this is rejected (the class's pattern
#: does not describe the spectrum; measured on the development files: nitroxides 0.89-1.0, Mn2+ markers
#: 0.93-0.95; a single line fitted as a nitroxide or Mn2+ 0.14-0.33, a nitroxide fitted as Mn2+ 0.001-0.03)
MIN_EXPLAINED = 0.5

#: class -> (nucleus, S, fit the hyperfine coupling by least squares)
REFINED_CLASSES = {
    "single_line": (None, 0.5, False),
    "radical_hf": (None, 0.5, False),
    "Cu2_exchange": (None, 0.5, False),
    "nitroxide": ("14N", 0.5, True),
    "Mn2": ("55Mn", 2.5, True),
}


def _prepared_native(x, y):
    """(field mT, derivative with the end-window linear baseline removed, max |y| = 1) on the file's own axis."""
    x = np.asarray(x, float)
    y = np.asarray(y, float).copy()
    n = len(y)
    w = max(3, n // 20)
    xa, xb = np.median(x[:w]), np.median(x[-w:])
    ya, yb = np.median(y[:w]), np.median(y[-w:])
    y -= ya + (yb - ya) * (x - xa) / (xb - xa)
    pk = np.max(np.abs(y))
    return x, (y / pk if pk > 0 else y)


#: half-width (mT) of the pattern around its centre, beyond the centre search, by class: the refinement works on
#: that window of the file (a narrow pattern on a wide sweep is fitted where it is, not against the whole sweep)
def _extent(cls: str, a_mT: float, pp: float) -> float:
    if cls == "nitroxide":
        return 2.0 * a_mT + 3.0
    if cls == "Mn2":
        return 3.0 * a_mT + 5.0
    if cls == "Cu2_exchange":
        return max(8.0 * pp, 20.0)
    return max(10.0 * pp, 5.0)


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


def _ls_fit(x, y, nu, S, nucleus, g0, A0, lw0, g_grid: float = 0.0):
    """Least-squares fit of an isotropic centre (one nucleus) to the derivative ``y(x)``: returns (g, A MHz, rms,
    converged).  A grid over A (+-15 % in 1 % steps; and over g +- ``g_grid`` in 4e-4 steps when given) picks the
    start, so that a multiplet is not locked one line off."""
    from scipy.optimize import least_squares

    from simgen.epr.physics import Experiment, Options, SpinSystem, cw_spectrum
    opt = Options(method="auto")
    exp = Experiment(np.asarray(x, float), mw_freq=float(nu), harmonic=1, mod_amp=0.0, mw_phase=0.0)
    u = (x - 0.5 * (x[0] + x[-1])) / (0.5 * (x[-1] - x[0]))
    ones = np.ones_like(u)

    def shape(q):
        g, A, lwG, lwL = q
        s = SpinSystem(S=S, g=[g, g, g], nucleus=nucleus, A=[A, A, A], lw=abs(lwG), lwL=abs(lwL))
        return cw_spectrum(s, exp, opt)

    def resid(q):
        f = shape(q)
        M = np.stack([f, ones, u], axis=1)   # amplitude (any sign) and linear baseline: linear, solved exactly
        coef, *_ = np.linalg.lstsq(M, y, rcond=None)
        return M @ coef - y

    gs = g0 + np.arange(-g_grid, g_grid + 1e-12, 4e-4) if g_grid > 0 else np.array([g0])
    As = A0 * (1.0 + np.arange(-0.15, 0.1501, 0.01))
    cost = [(float(np.sum(resid((g, A, lw0, 0.05)) ** 2)), g, A) for g in gs for A in As]
    _, g1, A1 = min(cost)
    q0 = np.array([g1, A1, lw0, 0.05])
    lo = np.array([g1 - 0.003, A1 - 0.1 * abs(A1) - 1.0, 0.01, 0.0])
    hi = np.array([g1 + 0.003, A1 + 0.1 * abs(A1) + 1.0, 5.0, 5.0])
    sol = least_squares(resid, q0, bounds=(lo, hi), x_scale=[1e-4, 0.5, 0.05, 0.05], diff_step=1e-4,
                        max_nfev=200)
    rms = float(np.sqrt(np.mean(sol.fun ** 2)))
    return float(sol.x[0]), float(sol.x[1]), rms, bool(sol.success)


def mn_central_lines(x, nu, g, a_mT, wG, wL):
    """First-derivative spectrum of the six central (M = +1/2 <-> -1/2) 55Mn hyperfine lines of Mn2+ (S = 5/2,
    I = 5/2) at field ``x`` (mT), each a Voigt derivative of Gaussian / Lorentzian FWHM ``wG`` / ``wL`` (mT), at
    B_m = B0 - m a - (a^2 / 2 B0) (I(I+1) - m^2) with B0 = h nu / (g mu_B) (second order in the hyperfine
    coupling; the central transition has no first-order fine-structure shift, so it stays sharp while the others
    spread with the zero-field splitting and its strain, Abragam & Bleaney 1970, section 7.4)."""
    from scipy.special import voigt_profile

    from .epr import MUB_MHZ_PER_MT
    x = np.asarray(x, float)
    b0 = nu * 1e3 / (MUB_MHZ_PER_MT * g)
    sig, gam = max(wG, 1e-4) / (2 * math.sqrt(2 * math.log(2))), max(wL, 0.0) / 2
    out = np.zeros_like(x)
    for m in np.arange(-2.5, 2.6, 1.0):
        bm = b0 - m * a_mT - a_mT ** 2 / (2 * b0) * (35.0 / 4.0 - m * m)
        out += voigt_profile(x - bm, sig, gam)
    return np.gradient(out, x)


def _mn_fit(x, y, nu, g0, a0):
    """Least-squares fit of :func:`mn_central_lines` (amplitude of any sign and linear baseline solved linearly),
    started from the best point of a grid over g (+-0.006 in 2e-4 steps) and |a| (+-15 % in 1 % steps): returns
    (g, |a| mT, rms, converged)."""
    from scipy.optimize import least_squares
    u = (x - 0.5 * (x[0] + x[-1])) / (0.5 * (x[-1] - x[0]))
    ones = np.ones_like(u)

    def resid(q):
        f = mn_central_lines(x, nu, q[0], q[1], abs(q[2]), abs(q[3]))
        M = np.stack([f, ones, u], axis=1)
        coef, *_ = np.linalg.lstsq(M, y, rcond=None)
        return M @ coef - y

    cost = [(float(np.sum(resid((g, a, 0.15, 0.05)) ** 2)), g, a)
            for g in g0 + np.arange(-0.006, 0.00601, 2e-4) for a in a0 * (1.0 + np.arange(-0.15, 0.1501, 0.01))]
    _, g1, a1 = min(cost)
    lo = np.array([g1 - 0.002, 0.9 * a1, 0.005, 0.0])
    hi = np.array([g1 + 0.002, 1.1 * a1, 5.0, 5.0])
    sol = least_squares(resid, np.array([g1, a1, 0.15, 0.05]), bounds=(lo, hi),
                        x_scale=[1e-4, 0.01, 0.02, 0.02], diff_step=1e-5, max_nfev=300)
    return float(sol.x[0]), float(sol.x[1]), float(np.sqrt(np.mean(sol.fun ** 2))), bool(sol.success)


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
    x, y = _prepared_native(m.axis, m.values)
    b_net = nu * 1e3 / (MUB_MHZ_PER_MT * g_net)
    a_net = abs(A_net) / (MUB_MHZ_PER_MT * g_net) if A_net is not None and math.isfinite(A_net) else 0.0
    # the strongest line near the network's field: its peak-to-peak width sets the search for broad lines
    near = np.abs(x - b_net) <= max(_extent(cls, a_net, 0.0), 0.05 * b_net)
    if near.sum() < 16:
        return None
    xn, yn = x[near], y[near]
    pp = abs(float(xn[int(np.argmax(yn))] - xn[int(np.argmin(yn))]))
    # search +-0.02 in g around the network (about +-3.4 mT at X band), or +-3 peak-to-peak widths of the strongest
    # line when wider (broad exchange-narrowed lines): the network places the pattern, the spectrum its centre
    search = max(b_net * 0.02 / g_net, 3.0 * pp)
    win = np.abs(x - b_net) <= search + _extent(cls, a_net, pp)
    if win.sum() < 16:
        return None
    if not win.all():
        x, y = _prepared_native(x[win], m.values[win])
    c, r = antisymmetry_centre(x, y, b_net, search)
    info: dict = {"method": "antisymmetry centre", "asym_residual": r, "mw_frequency_GHz": float(nu)}
    if not math.isfinite(c):
        return None
    g = nu * 1e3 / (MUB_MHZ_PER_MT * c)
    out: dict = {"g_iso": g, "refine": info}
    if fit_A and A_net is not None and math.isfinite(A_net):
        try:
            if nucleus == "55Mn":
                # only the central transitions are modelled (sharp in any host).  Second-order shifts move the
                # pattern's centre below the resonance of g by up to ~1 mT, and a window holding two of the six
                # lines has no unique centre, so g is searched +-0.006 around the network's g, not the centre
                a0 = abs(A_net) / (MUB_MHZ_PER_MT * g_net)
                gf, af, rms, ok = _mn_fit(x, y, nu, g_net, a0)
                Af = -af * MUB_MHZ_PER_MT * gf          # 55Mn couplings are negative (g_n > 0, core polarisation)
                what = "least squares, the six central 55Mn lines to second order"
            else:
                gf, Af, rms, ok = _ls_fit(x, y, nu, S, nucleus, g, abs(A_net), 0.2)
                what = f"least squares, simulator's isotropic {nucleus} pattern"
        except Exception as exc:  # a failed fit keeps the antisymmetry g (Mn2+: the network's) and the network's A
            info["fit_error"] = f"{type(exc).__name__}: {exc}"
            if nucleus == "55Mn":
                out["g_iso"] = float(g_net)
            return out
        explained = 1.0 - rms ** 2 / float(np.var(y)) if np.var(y) > 0 else 0.0
        info.update(fit_rms=rms, fit_converged=ok, fit_explained=explained)
        if explained < MIN_EXPLAINED:  # the class's pattern does not describe this spectrum (misclassified?)
            base = "antisymmetry centre"
            if nucleus == "55Mn":  # second-order shifts bias the centre of a Mn2+ pattern: keep the network's g
                out["g_iso"], base = float(g_net), "network g"
            info["method"] = (f"{base} ({what} rejected: it explains {100 * explained:.0f} % of the "
                              f"spectrum's variance, under {100 * MIN_EXPLAINED:.0f} %)")
            return out
        info["method"] = "antisymmetry centre + " + what
        out["g_iso"] = gf
        out["A_iso_MHz"] = Af
        out["a_iso_mT"] = Af / (MUB_MHZ_PER_MT * gf)
    return out
