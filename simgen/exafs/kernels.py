"""Numba kernels of the EXAFS / EXELFS simulators (arrays in, outputs preallocated by the caller).

The EXAFS equation follows FEFF's convention (as coded in larch's ``feffdat._calc_chi``)::

    q   = sign(k^2 - dE0*ETOK) sqrt|k^2 - dE0*ETOK|
    p   = real_p(q) + i/lambda(q)
    chi = Im[ N S0^2 |f|(q) / (q (Reff+dR)^2) exp(-2 Reff Im p - 2 p^2 (sigma2 - p^2 C4/3)
              + i (2 q Reff + phi(q) + 2 p (dR - 2 sigma2/Reff - 2 p^2 C3/3))) ]

which, for real p = k, is the textbook S0^2 N |f| / (k R^2) exp(-2 sigma2 k^2) exp(-2R/lambda)
sin(2kR + phi - 4/3 C3 k^3).  Tables (|f|, phi, lambda, real_p) are cubic splines in k whose piecewise
coefficients the caller computes (not-a-knot, the same interpolant as FITPACK's s=0 spline).

Speed (scripts/bench_exafs.py): q(k, dE0) and its spline piece are found once per spectrum for all paths on
the same knots; per path one scalar pass evaluates the four cubics, a second pass does the complex algebra, exp
and sin with the polynomial ``exp_scaled`` / ``sin_reduced`` (relative / absolute ~4e-16 on the ranges that
occur, tested against numpy; exponent and sign set on the float's bits) so LLVM vectorises it (no SVML needed).
No approximation of the interpolant is made.  When the same (table, k grid, E0) comes back (fits, benchmarks),
``path_tables`` stores the spline values once as four columns per path (plus 2q, shared), and
``chi_tabulated`` only adds a few products before the exp and sin (the caller caches the columns; few columns,
little memory streamed per call).  The phase is not linear in k (p(q) is a tabulated complex function), so no
sin/exp recurrence along the grid would be exact: none is used.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..fastmath import exp_scaled, fast_exp, fast_sin, sin_reduced  # noqa: F401 - shared, re-exported


@nb.njit(cache=True, nogil=True)
def _find_interval(knots, nk, x):
    """Index i with knots[i] <= x < knots[i+1], clamped to [0, nk-2] (end pieces extrapolate)."""
    if x <= knots[0]:
        return 0
    if x >= knots[nk - 1]:
        return nk - 2
    lo, hi = 0, nk - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if knots[mid] <= x:
            lo = mid
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def spline_eval(knots, nk, coef, x):
    """Evaluate a piecewise cubic (coef[i, 0..3] = c3, c2, c1, c0 about knots[i]) at x."""
    i = _find_interval(knots, nk, x)
    d = x - knots[i]
    return ((coef[i, 0] * d + coef[i, 1]) * d + coef[i, 2]) * d + coef[i, 3]


# ---- elementary functions: fast_exp / fast_sin live in simgen.fastmath (shared with the micrograph kernels)


@nb.njit(cache=True, nogil=True)
def _same_knots(knots, nknots, a, b):
    if nknots[a] != nknots[b]:
        return False
    for i in range(nknots[a]):
        if knots[a, i] != knots[b, i]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _locate(q, kn, nk, iw, xw):
    """iw[m], xw[m]: spline piece of each (sorted or not) q[m] on the knots kn[:nk] and the offset in it."""
    i = 0
    for m in range(q.shape[0]):
        qm = q[m]
        if qm < kn[i]:
            i = _find_interval(kn, nk, qm)
        else:
            while i < nk - 2 and qm >= kn[i + 1]:
                i += 1
        iw[m] = i
        xw[m] = qm - kn[i]


@nb.njit(cache=True, nogil=True, fastmath=True)
def _add_path(q, A, P, RP, G, R, d, s2, c3, c4, pref, out):
    """out += Im[pref |f|/q exp(...)] for one path, tables already evaluated at q (A = |f|/q, P = phase,
    RP = real p, G = 1/lambda).  Straight-line arithmetic only: LLVM vectorises this loop (AVX2: 4 points)."""
    c4t = c4 / 3.0
    c3t = 2.0 * c3 / 3.0
    w0 = d - 2.0 * s2 / R
    for m in range(q.shape[0]):
        rep = RP[m]
        g = G[m]
        # p = rep + i g ; pp = p^2 = a + i b
        a = rep * rep - g * g
        b = 2.0 * rep * g
        # T2 = -2 pp (s2 - pp c4/3)
        t2r = -2.0 * (a * s2 - (a * a - b * b) * c4t)
        t2i = -2.0 * (b * s2 - 2.0 * a * b * c4t)
        # Z = 2qR + pha + 2 p w, w = d - 2 s2/R - 2 pp c3/3 (complex)
        wr = w0 - a * c3t
        wi = -b * c3t
        zr = 2.0 * q[m] * R + P[m] + 2.0 * (rep * wr - g * wi)
        zi = 2.0 * (rep * wi + g * wr)
        out[m] += pref * A[m] * exp_scaled(t2r - zi - 2.0 * R * g) * sin_reduced(t2i + zr)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def chi_paths(k, knots, nknots, coefs, table, degen, reff, dr, sigma2, c3, c4, s02, e0, etok, work, iwork, out):
    """Add the EXAFS of every path to ``out`` (chi at the wavenumbers ``k``, 1/A).

    knots[t, :nknots[t]]: the k grid of table t; coefs[t, c, i, 0..3]: cubic pieces of column c
    (0 amp, 1 phase, 2 real_p, 3 lambda).  Per path j: table[j], degen[j] (N), reff[j], dr[j], sigma2[j],
    c3[j], c4[j].  s02, e0 (eV) are scalars; etok = 2 m_e / hbar^2 in 1/(A^2 eV).
    work (>= 7, len(k)) float64 and iwork (len(k),) int64 are scratch.  The photoelectron wavenumber
    q(k, e0) and its spline piece are found once for all paths on the same knots (FEFF writes one k grid per
    run); per path, one pass evaluates the four cubics at q, a second (vectorised) pass the exponential and
    sine, written out in real arithmetic.
    """
    nkk = k.shape[0]
    q = work[0]
    xw = work[1]
    A = work[2]
    P = work[3]
    RP = work[4]
    G = work[5]
    iq = work[6]
    for m in range(nkk):
        en = k[m] * k[m] - e0 * etok
        if abs(en) < 1e-10:
            en = 1e-10
        q[m] = math.sqrt(en) if en > 0 else -math.sqrt(-en)
        iq[m] = 1.0 / q[m]
    last = -1
    for j in range(table.shape[0]):
        t = table[j]
        if last < 0 or (t != last and not _same_knots(knots, nknots, t, last)):
            _locate(q, knots[t], nknots[t], iwork, xw)
        last = t
        cf = coefs[t]
        for m in range(nkk):
            i = iwork[m]
            x = xw[m]
            A[m] = (((cf[0, i, 0] * x + cf[0, i, 1]) * x + cf[0, i, 2]) * x + cf[0, i, 3]) * iq[m]
            P[m] = ((cf[1, i, 0] * x + cf[1, i, 1]) * x + cf[1, i, 2]) * x + cf[1, i, 3]
            RP[m] = ((cf[2, i, 0] * x + cf[2, i, 1]) * x + cf[2, i, 2]) * x + cf[2, i, 3]
            G[m] = 1.0 / (((cf[3, i, 0] * x + cf[3, i, 1]) * x + cf[3, i, 2]) * x + cf[3, i, 3])
        R = reff[j]
        d = dr[j]
        _add_path(q, A, P, RP, G, R, d, sigma2[j], c3[j], c4[j], degen[j] * s02 / ((R + d) * (R + d)), out)


# ---- tabulated route: the splines are evaluated once per (table, k grid, E0) into parameter-free columns, and
# a call only combines them with the path parameters before one exp and one sin per point.  A call streams the
# columns of every path once, so they are kept few (4 per path, 13 KB at 401 points): with p = rep + i g and
# p^2 = a + i b, the exponent and phase need |f|/q, phase, -2g and 2 rep per path and 2q (the same for all
# paths: it depends on k and E0 only); a, b and the cumulant terms are rebuilt from -2g and 2 rep in registers.
# Columns of ``tab[j, c, m]`` (point m of path j):
T_AMP, T_PHA, T_G2, T_RP2, T_Q2 = range(5)
NTAB = 5


@nb.njit(cache=True, nogil=True)
def path_tables(k, knots, nknots, coefs, table, e0, etok, work, iwork, tab):
    """Fill ``tab (npath, NTAB, nk)`` with the spline values of paths ``table`` at q(k, e0): |f|/q, phase,
    -2g, 2 rep and 2q (p = rep + i g; see ``chi_tabulated``).  work (2, nk) float64 and iwork (nk) int64 are
    scratch; q and its spline piece are found once for all paths on the same knots."""
    nkk = k.shape[0]
    qv = work[0]
    xw = work[1]
    for m in range(nkk):
        en = k[m] * k[m] - e0 * etok
        if abs(en) < 1e-10:
            en = 1e-10
        qv[m] = math.sqrt(en) if en > 0 else -math.sqrt(-en)
    last = -1
    for j in range(table.shape[0]):
        t = table[j]
        tj = tab[j]
        if last < 0 or (t != last and not _same_knots(knots, nknots, t, last)):
            _locate(qv, knots[t], nknots[t], iwork, xw)
        last = t
        cf = coefs[t]
        for m in range(nkk):
            i = iwork[m]
            x = xw[m]
            q = qv[m]
            tj[T_Q2, m] = 2.0 * q
            tj[T_AMP, m] = (((cf[0, i, 0] * x + cf[0, i, 1]) * x + cf[0, i, 2]) * x + cf[0, i, 3]) / q
            tj[T_PHA, m] = ((cf[1, i, 0] * x + cf[1, i, 1]) * x + cf[1, i, 2]) * x + cf[1, i, 3]
            tj[T_RP2, m] = 2.0 * (((cf[2, i, 0] * x + cf[2, i, 1]) * x + cf[2, i, 2]) * x + cf[2, i, 3])
            tj[T_G2, m] = -2.0 / (((cf[3, i, 0] * x + cf[3, i, 1]) * x + cf[3, i, 2]) * x + cf[3, i, 3])


@nb.njit(cache=True, nogil=True, fastmath=True)
def _add_tabulated(tj, q2, R, d, s2, c3, c4, pref, out):
    """out += pref |f|/q exp(re) sin(ph) for one path from its columns and the shared 2q column ``q2``.

    With G = -2g and P = 2 rep: -2 Re(p^2) = (G^2 - P^2)/2 and -2 Im(p^2) = P G, so
    re = s2 (G^2 - P^2)/2 + (R + w0) G and ph = 2qR + phase + s2 P G + w0 P (w0 = dR - 2 s2/R) for c3 = c4 = 0;
    the cumulants add 2(a^2 - b^2) c4/3 + 2(rep b + g a) 2c3/3 to re and 4ab c4/3 + 2(g b - rep a) 2c3/3 to ph."""
    w0 = d - 2.0 * s2 / R
    c4t = c4 / 3.0
    c3t = 2.0 * c3 / 3.0
    wr = w0 + R
    hs2 = 0.5 * s2
    amp, pha, g2c, rp2c = tj[T_AMP], tj[T_PHA], tj[T_G2], tj[T_RP2]
    if c3 == 0.0 and c4 == 0.0:
        for m in range(out.shape[0]):
            g2 = g2c[m]
            rp2 = rp2c[m]
            re = hs2 * (g2 * g2 - rp2 * rp2) + wr * g2
            ph = R * q2[m] + pha[m] + (s2 * g2 + w0) * rp2
            out[m] += pref * amp[m] * exp_scaled(re) * sin_reduced(ph)
    else:
        for m in range(out.shape[0]):
            g2 = g2c[m]
            rp2 = rp2c[m]
            rep = 0.5 * rp2
            g = -0.5 * g2
            a = rep * rep - g * g
            b = 2.0 * rep * g
            re = (hs2 * (g2 * g2 - rp2 * rp2) + wr * g2 + c4t * 2.0 * (a * a - b * b)
                  + c3t * 2.0 * (rep * b + g * a))
            ph = (R * q2[m] + pha[m] + (s2 * g2 + w0) * rp2 + c4t * 4.0 * a * b
                  + c3t * 2.0 * (g * b - rep * a))
            out[m] += pref * amp[m] * exp_scaled(re) * sin_reduced(ph)


@nb.njit(cache=True, nogil=True)
def chi_tabulated(tab, degen, reff, dr, sigma2, c3, c4, s02, out):
    """Add the EXAFS of every path to ``out`` from the columns ``tab`` of ``path_tables`` (same equation and
    arguments as ``chi_paths``; path j uses tab[j], and every path the 2q column of tab[0])."""
    if tab.shape[0] == 0:
        return
    q2 = tab[0, T_Q2]
    for j in range(tab.shape[0]):
        R = reff[j]
        d = dr[j]
        _add_tabulated(tab[j], q2, R, d, sigma2[j], c3[j], c4[j], degen[j] * s02 / ((R + d) * (R + d)), out)


@nb.njit(cache=True, nogil=True)
def mu_from_chi(energy, e_edge, chi_e, pre_offset, pre_slope, jump, width, post1, post2, wl_height, wl_width,
                out):
    """Absorption mu(E): pre-edge line + jump * [arctan step of FWHM ``width`` * post-edge atomic background
    (1 + post1 x + post2 x^2, x = (E - E_edge)/1000 eV) * (1 + chi(E))] + a Lorentzian white line at the edge.

    chi_e is chi already evaluated on the energy grid (zero below the edge).
    """
    for m in range(energy.shape[0]):
        x = energy[m] - e_edge
        step = 0.5 + math.atan(2.0 * x / width) / math.pi
        xx = x / 1000.0
        post = 1.0 + post1 * xx + post2 * xx * xx
        wl = wl_height / (1.0 + 4.0 * (x / wl_width) ** 2)
        out[m] = pre_offset + pre_slope * xx + jump * (step * post * (1.0 + chi_e[m]) + wl)


@nb.njit(cache=True, nogil=True)
def eels_edge(energy, onset, width, decay, chi_e, wl_height, wl_width, weight, out):
    """Add one ionisation edge to ``out``: weight * [step (arctan, FWHM width) * (E/onset)^-decay
    * (1 + chi(E)) + Lorentzian white line of height wl_height and FWHM wl_width at the onset]."""
    for m in range(energy.shape[0]):
        e = energy[m]
        x = e - onset
        step = 0.5 + math.atan(2.0 * x / width) / math.pi
        saw = (e / onset) ** (-decay) if e > 0 else 0.0
        wl = wl_height / (1.0 + 4.0 * (x / wl_width) ** 2)
        out[m] += weight * (step * saw * (1.0 + chi_e[m]) + wl)


@nb.njit(cache=True, nogil=True)
def convolve_same(x, kern, center, out):
    """out[m] = sum_j x[m - j + center] * kern[j] (zero outside x): a 'same'-size discrete convolution."""
    n = x.shape[0]
    nkern = kern.shape[0]
    for m in range(n):
        s = 0.0
        for j in range(nkern):
            idx = m - j + center
            if 0 <= idx < n:
                s += x[idx] * kern[j]
        out[m] = s
