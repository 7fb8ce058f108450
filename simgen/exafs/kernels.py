"""Numba kernels of the EXAFS / EXELFS simulators (arrays in, outputs preallocated by the caller).

The EXAFS equation follows FEFF's convention (as coded in larch's ``feffdat._calc_chi``)::

    q   = sign(k^2 - dE0*ETOK) sqrt|k^2 - dE0*ETOK|
    p   = real_p(q) + i/lambda(q)
    chi = Im[ N S0^2 |f|(q) / (q (Reff+dR)^2) exp(-2 Reff Im p - 2 p^2 (sigma2 - p^2 C4/3)
              + i (2 q Reff + phi(q) + 2 p (dR - 2 sigma2/Reff - 2 p^2 C3/3))) ]

which, for real p = k, is the textbook S0^2 N |f| / (k R^2) exp(-2 sigma2 k^2) exp(-2R/lambda)
sin(2kR + phi - 4/3 C3 k^3).  Tables (|f|, phi, lambda, real_p) are cubic splines in k whose piecewise
coefficients the caller computes (not-a-knot, the same interpolant as FITPACK's s=0 spline).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np


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


@nb.njit(cache=True, nogil=True, error_model="numpy")
def chi_paths(k, knots, nknots, coefs, table, degen, reff, dr, sigma2, c3, c4, s02, e0, etok, out):
    """Add the EXAFS of every path to ``out`` (chi at the wavenumbers ``k``, 1/A).

    knots[t, :nknots[t]]: the k grid of table t; coefs[t, c, i, 0..3]: cubic pieces of column c
    (0 amp, 1 phase, 2 real_p, 3 lambda).  Per path j: table[j], degen[j] (N), reff[j], dr[j], sigma2[j],
    c3[j], c4[j].  s02, e0 (eV) are scalars; etok = 2 m_e / hbar^2 in 1/(A^2 eV).
    The complex algebra is written out in real arithmetic (one exp and one sin per point).
    """
    npath = table.shape[0]
    nkk = k.shape[0]
    for j in range(npath):
        t = table[j]
        nk = nknots[t]
        kn = knots[t]
        cf = coefs[t]
        R = reff[j]
        d = dr[j]
        amp_pref = degen[j] * s02 / ((R + d) * (R + d))
        s2 = sigma2[j]
        c3j = c3[j]
        c4j = c4[j]
        i = 0
        for m in range(nkk):
            en = k[m] * k[m] - e0 * etok
            if abs(en) < 1e-10:
                en = 1e-10
            q = math.sqrt(en) if en > 0 else -math.sqrt(-en)
            # interval: walk forward from the previous one (k sorted), bisection otherwise
            if q < kn[i]:
                i = _find_interval(kn, nk, q)
            else:
                while i < nk - 2 and q >= kn[i + 1]:
                    i += 1
            x = q - kn[i]
            amp = ((cf[0, i, 0] * x + cf[0, i, 1]) * x + cf[0, i, 2]) * x + cf[0, i, 3]
            pha = ((cf[1, i, 0] * x + cf[1, i, 1]) * x + cf[1, i, 2]) * x + cf[1, i, 3]
            rep = ((cf[2, i, 0] * x + cf[2, i, 1]) * x + cf[2, i, 2]) * x + cf[2, i, 3]
            lam = ((cf[3, i, 0] * x + cf[3, i, 1]) * x + cf[3, i, 2]) * x + cf[3, i, 3]
            g = 1.0 / lam
            # p = rep + i g ; pp = p^2 = a + i b
            a = rep * rep - g * g
            b = 2.0 * rep * g
            # T2 = -2 pp (s2 - pp c4/3)
            pp2r = a * a - b * b
            pp2i = 2.0 * a * b
            t2r = -2.0 * (a * s2 - pp2r * c4j / 3.0)
            t2i = -2.0 * (b * s2 - pp2i * c4j / 3.0)
            # Z = 2qR + pha + 2 p (d - 2 s2/R - 2 pp c3/3) ; w = d - 2 s2/R - 2 pp c3/3 (complex)
            wr = d - 2.0 * s2 / R - 2.0 * a * c3j / 3.0
            wi = -2.0 * b * c3j / 3.0
            zr = 2.0 * q * R + pha + 2.0 * (rep * wr - g * wi)
            zi = 2.0 * (rep * wi + g * wr)
            re = -2.0 * R * g + t2r - zi
            im = t2i + zr
            out[m] += amp_pref * amp / q * math.exp(re) * math.sin(im)


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
