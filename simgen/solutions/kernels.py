"""Numba kernels of the ``solutions`` simulator: arrays in, outputs preallocated by the caller and filled in place.

* :func:`speciate`        mass-action speciation (ion pairs, protonation, hydrolysis) with Davies activities;
* :func:`band_sum`        sum of pseudo-Voigt bands on an increasing axis, each band evaluated on its window only;
* :func:`gauss_smooth`    convolution with a Gaussian instrument function (width in points, edges renormalised);
* :func:`transmit_measure` absorbance -> what a spectrophotometer reports: slit averaging of the transmittance,
  stray light, photometric noise and detector saturation.

Each has a slow NumPy reference in ``tests/simgen/test_solutions.py``.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

FOUR_LN2 = 4.0 * math.log(2.0)
LN10 = math.log(10.0)


@nb.njit(cache=True, nogil=True)
def _davies_lngamma_unit(ionic, A, b, i_max):
    """ln(gamma) of a unit-charge ion by the Davies equation (multiply by z**2), evaluated at min(I, i_max)."""
    if ionic > i_max:
        ionic = i_max
    s = math.sqrt(ionic)
    return -A * LN10 * (s / (1.0 + s) - b * ionic)


@nb.njit(cache=True, nogil=True)
def _live_reactions(m, nu):
    """Reactions that can proceed in some direction: every species on one side present, or producible by a live
    reaction (propagated to a fixed point)."""
    R, S = nu.shape
    avail = m > 0.0
    live = np.zeros(R, dtype=np.bool_)
    changed = True
    while changed:
        changed = False
        for r in range(R):
            if live[r]:
                continue
            fwd = True
            bwd = True
            for s in range(S):
                if nu[r, s] < 0.0 and not avail[s]:
                    fwd = False
                if nu[r, s] > 0.0 and not avail[s]:
                    bwd = False
            if fwd or bwd:
                live[r] = True
                changed = True
                for s in range(S):
                    if nu[r, s] != 0.0:
                        avail[s] = True
    return live


@nb.njit(cache=True, nogil=True)
def speciate(m0, nu, lnK, z2, A, b, i_max, tol, max_iter, out, ionic):
    """Equilibrium molalities of every species (minimum of the Gibbs energy over the reaction extents).

    Damped Newton on the extents of the reactions that can proceed: F_r = sum_s nu_rs ln(gamma_s m_s) - ln K_r,
    Hessian N diag(1/m) N^T (activity coefficients refreshed every iteration), steps kept inside m > 0 and
    accepted by an Armijo test on the Gibbs energy.  Species a live reaction needs but that start at 0 are seeded
    at 1e-14 of the largest molality (a mass error far below any tolerance).

    Parameters
    ----------
    m0 : (n, S) float64
        Starting molalities (mol/kg): component ions at their totals, products at 0.
    nu : (R, S) float64
        Stoichiometric coefficients of independent reactions (reactants < 0, products > 0).
    lnK : (R,) float64
        ln K of each reaction on the molal scale at I = 0 (water activity 1).
    z2 : (S,) float64
        Squared charges.
    A, b : float
        Davies constants (A = 0: ideal solution).
    i_max : float
        The Davies equation is evaluated at min(I, i_max) (it is meant for I up to ~0.5 mol/kg and turns
        upwards beyond; above i_max the coefficients are held, a stated approximation).
    tol : float
        Convergence: max_r |F_r| (a relative error of the mass-action quotients).
    max_iter : int
        Newton iterations at most.
    out : (n, S) float64
        Filled with the equilibrium molalities.
    ionic : (n,) float64
        Filled with the ionic strength (mol/kg) of the equilibrium state.
    """
    n, S = m0.shape
    R = nu.shape[0]
    lng = np.zeros(S)
    for i in range(n):
        m = out[i]
        mmax = 0.0
        for s in range(S):
            m[s] = m0[i, s]
            if m[s] > mmax:
                mmax = m[s]
        live = _live_reactions(m, nu) if R > 0 else np.zeros(0, dtype=np.bool_)
        L = np.flatnonzero(live)
        nl = len(L)
        if nl > 0:
            seed = 1e-14 * mmax
            for r in L:
                for s in range(S):
                    if nu[r, s] != 0.0 and m[s] <= 0.0:
                        m[s] = seed
            F = np.empty(nl)
            H = np.empty((nl, nl))
            d = np.empty(nl)
            dm = np.empty(S)
            mt = np.empty(S)
            buf = np.empty(nl, dtype=np.int64)
            for it in range(max_iter):
                I = 0.0
                for s in range(S):
                    I += 0.5 * z2[s] * m[s]
                unit = _davies_lngamma_unit(I, A, b, i_max) if A > 0.0 else 0.0
                for s in range(S):
                    lng[s] = z2[s] * unit
                err = 0.0
                for a in range(nl):
                    r = L[a]
                    f = -lnK[r]
                    for s in range(S):
                        if nu[r, s] != 0.0:
                            f += nu[r, s] * (math.log(m[s]) + lng[s])
                    F[a] = f
                    if abs(f) > err:
                        err = abs(f)
                if err <= tol:
                    break
                for a in range(nl):
                    for c in range(nl):
                        H[a, c] = 0.0
                for s in range(S):  # H = N diag(1/m) N^T, species by species (each is in few reactions)
                    k = 0
                    for a in range(nl):
                        if nu[L[a], s] != 0.0:
                            buf[k] = a
                            k += 1
                    inv = 1.0 / m[s] if k > 0 else 0.0
                    for u in range(k):
                        for v in range(k):
                            H[buf[u], buf[v]] += nu[L[buf[u]], s] * nu[L[buf[v]], s] * inv
                _solve_spd(H, F, d)  # d = H^-1 F; the Newton step is -d
                slope = 0.0
                for a in range(nl):
                    slope -= F[a] * d[a]
                amax = 1.0
                for s in range(S):
                    v = 0.0
                    for a in range(nl):
                        v -= nu[L[a], s] * d[a]
                    dm[s] = v
                    if v < 0.0:
                        lim = 0.99 * m[s] / (-v)
                        if lim < amax:
                            amax = lim
                g0 = 0.0
                for s in range(S):
                    if m[s] > 0.0:
                        g0 += m[s] * (math.log(m[s]) - 1.0 + lng[s])
                alpha = amax
                for ls in range(40):
                    g1 = 0.0
                    for s in range(S):
                        mt[s] = m[s] + alpha * dm[s]
                        if mt[s] > 0.0:
                            g1 += mt[s] * (math.log(mt[s]) - 1.0 + lng[s])
                    for a in range(nl):
                        g1 += alpha * d[a] * lnK[L[a]]
                    if g1 <= g0 + 1e-4 * alpha * slope or ls == 39:
                        break
                    alpha *= 0.5
                for s in range(S):
                    m[s] = mt[s] if mt[s] > 0.0 else 0.0
        I = 0.0
        for s in range(S):
            I += 0.5 * z2[s] * m[s]
        ionic[i] = I


@nb.njit(cache=True, nogil=True)
def _solve_spd(H, F, x):
    """x = H^-1 F for a symmetric positive-definite H (Jacobi-scaled Cholesky; H is overwritten)."""
    n = H.shape[0]
    sc = np.empty(n)
    for a in range(n):
        sc[a] = 1.0 / math.sqrt(H[a, a]) if H[a, a] > 0.0 else 1.0
    for a in range(n):
        for c in range(n):
            H[a, c] *= sc[a] * sc[c]
        H[a, a] += 1e-13
    for a in range(n):
        for c in range(a + 1):
            v = H[a, c]
            for k in range(c):
                v -= H[a, k] * H[c, k]
            if a == c:
                H[a, a] = math.sqrt(v if v > 1e-300 else 1e-300)
            else:
                H[a, c] = v / H[c, c]
    y = np.empty(n)
    for a in range(n):
        v = F[a] * sc[a]
        for k in range(a):
            v -= H[a, k] * y[k]
        y[a] = v / H[a, a]
    for a in range(n - 1, -1, -1):
        v = y[a]
        for k in range(a + 1, n):
            v -= H[k, a] * x[k]
        x[a] = v / H[a, a]
    for a in range(n):
        x[a] *= sc[a]


@nb.njit(cache=True, nogil=True)
def band_sum(x, pos, fwhm, eta, height, lorentz_cut, out):
    """out[i, j] = sum_b height[i, b] * [(1 - eta_b) G + eta_b L](x_j; pos[i, b], fwhm[i, b]).

    G and L are unit-height Gaussian and Lorentzian profiles with full width at half maximum ``fwhm``.  ``x``
    must increase.  The Gaussian part is evaluated within 4 FWHM of the centre (beyond, < 1e-19 of the height),
    the Lorentzian part within ``lorentz_cut`` FWHM (beyond, < 1/(1 + 4 lorentz_cut**2) of the height).  Bands
    with height 0 are skipped.

    Shapes: x (M,), pos/fwhm/height (n, B), eta (B,), out (n, M) (overwritten).
    """
    n, M = out.shape
    B = pos.shape[1]
    for i in range(n):
        row = out[i]
        for j in range(M):
            row[j] = 0.0
        for k in range(B):
            h = height[i, k]
            if h == 0.0:
                continue
            c = pos[i, k]
            w = fwhm[i, k]
            e = eta[k]
            inv_w = 1.0 / w
            if e < 1.0:  # Gaussian part, within 4 FWHM
                hg = h * (1.0 - e)
                j0 = np.searchsorted(x, c - 4.0 * w)
                j1 = np.searchsorted(x, c + 4.0 * w)
                for j in range(j0, j1):
                    d = (x[j] - c) * inv_w
                    row[j] += hg * math.exp(-FOUR_LN2 * d * d)
            if e > 0.0:  # Lorentzian part, within lorentz_cut FWHM
                hl = h * e
                j0 = np.searchsorted(x, c - lorentz_cut * w)
                j1 = np.searchsorted(x, c + lorentz_cut * w)
                for j in range(j0, j1):
                    d = (x[j] - c) * inv_w
                    row[j] += hl / (1.0 + 4.0 * d * d)


@nb.njit(cache=True, nogil=True)
def gauss_smooth(y, sigma_pts, out):
    """Convolve each row of ``y`` with a unit-area Gaussian of standard deviation ``sigma_pts[i]`` (in points),
    truncated at 4 sigma; near the ends the weights inside the row are renormalised to 1.  Rows with
    sigma_pts <= 0.05 are copied.  Shapes: y (n, M), sigma_pts (n,), out (n, M)."""
    n, M = y.shape
    for i in range(n):
        s = sigma_pts[i]
        if s <= 0.05:
            for j in range(M):
                out[i, j] = y[i, j]
            continue
        K = int(math.ceil(4.0 * s))
        if K > M - 1:
            K = M - 1
        w = np.empty(2 * K + 1)
        for k in range(-K, K + 1):
            w[k + K] = math.exp(-0.5 * (k / s) ** 2)
        for j in range(M):
            acc = 0.0
            ws = 0.0
            k0 = -K if j - K >= 0 else -j
            k1 = K if j + K <= M - 1 else M - 1 - j
            for k in range(k0, k1 + 1):
                acc += w[k + K] * y[i, j + k]
                ws += w[k + K]
            out[i, j] = acc / ws


@nb.njit(cache=True, nogil=True)
def transmit_measure(absorbance, sigma_pts, stray, noise, a_max, tmp, out):
    """Measured absorbance from the true one.

    T = 10**-A is averaged over the instrument's slit function (Gaussian, ``sigma_pts[i]`` points), stray light
    of fraction s is added, T_m = (T + s) / (1 + s) + noise[i, j] (photometric noise, in transmittance), and
    A_m = -log10(max(T_m, 10**-a_max)): the reading saturates at ``a_max``.

    Shapes: absorbance, noise, tmp, out (n, M); sigma_pts, stray (n,).
    """
    n, M = absorbance.shape
    floor = 10.0 ** (-a_max)
    for i in range(n):
        for j in range(M):
            out[i, j] = 10.0 ** (-absorbance[i, j])
    gauss_smooth(out, sigma_pts, tmp)
    for i in range(n):
        s = stray[i]
        for j in range(M):
            t = (tmp[i, j] + s) / (1.0 + s) + noise[i, j]
            if t < floor:
                t = floor
            out[i, j] = -math.log10(t)
