"""Numba kernels of the PDF simulator: pair enumeration, pair-distance histograms, Gaussian sums, Debye sums.

Arrays in, outputs preallocated by the caller and filled in place; serial; no randomness.  Each kernel has a
slow NumPy twin in tests/simgen/test_pdf.py.

Histogram convention: a pair at distance d with weight w adds w*(1-t) to bin k and w*t to bin k+1, where
d = (k + t) * h (linear "cloud in cell" binning, so a Gaussian or sin(Qd) evaluated at the bin centres is exact
to second order in h).
"""
from __future__ import annotations

import math

import numba
import numpy as np

_NJIT = dict(cache=True, nogil=True)


@numba.njit(**_NJIT)
def count_periodic_pairs(frac, cell, rmax, nrep):
    """Number of ordered pairs (i, j, lattice vector n), i != j or n != 0, with 0 < |x_j + n - x_i| <= rmax."""
    nat = frac.shape[0]
    cnt = 0
    r2max = rmax * rmax
    for i in range(nat):
        for j in range(nat):
            for a in range(-nrep[0], nrep[0] + 1):
                for b in range(-nrep[1], nrep[1] + 1):
                    for c in range(-nrep[2], nrep[2] + 1):
                        f0 = frac[j, 0] + a - frac[i, 0]
                        f1 = frac[j, 1] + b - frac[i, 1]
                        f2 = frac[j, 2] + c - frac[i, 2]
                        x = f0 * cell[0, 0] + f1 * cell[1, 0] + f2 * cell[2, 0]
                        y = f0 * cell[0, 1] + f1 * cell[1, 1] + f2 * cell[2, 1]
                        z = f0 * cell[0, 2] + f1 * cell[1, 2] + f2 * cell[2, 2]
                        d2 = x * x + y * y + z * z
                        if d2 <= r2max and d2 > 0.0:
                            cnt += 1
    return cnt


@numba.njit(**_NJIT)
def fill_periodic_pairs(frac, cell, rmax, nrep, pi, pj, dfrac):
    """Fill the pairs counted by :func:`count_periodic_pairs`: site indices and fractional separation."""
    nat = frac.shape[0]
    k = 0
    r2max = rmax * rmax
    for i in range(nat):
        for j in range(nat):
            for a in range(-nrep[0], nrep[0] + 1):
                for b in range(-nrep[1], nrep[1] + 1):
                    for c in range(-nrep[2], nrep[2] + 1):
                        f0 = frac[j, 0] + a - frac[i, 0]
                        f1 = frac[j, 1] + b - frac[i, 1]
                        f2 = frac[j, 2] + c - frac[i, 2]
                        x = f0 * cell[0, 0] + f1 * cell[1, 0] + f2 * cell[2, 0]
                        y = f0 * cell[0, 1] + f1 * cell[1, 1] + f2 * cell[2, 1]
                        z = f0 * cell[0, 2] + f1 * cell[1, 2] + f2 * cell[2, 2]
                        d2 = x * x + y * y + z * z
                        if d2 <= r2max and d2 > 0.0:
                            pi[k] = i
                            pj[k] = j
                            dfrac[k, 0] = f0
                            dfrac[k, 1] = f1
                            dfrac[k, 2] = f2
                            k += 1
    return k


@numba.njit(**_NJIT)
def hist_periodic(dfrac, pcls, pw, cell, rlo, rhi, h, divide_by_d, hist):
    """Bin cached periodic pairs under (possibly strained) ``cell``: hist[pcls[p], bin] += pw[p] (/ d)."""
    nb = hist.shape[1]
    for p in range(dfrac.shape[0]):
        f0 = dfrac[p, 0]
        f1 = dfrac[p, 1]
        f2 = dfrac[p, 2]
        x = f0 * cell[0, 0] + f1 * cell[1, 0] + f2 * cell[2, 0]
        y = f0 * cell[0, 1] + f1 * cell[1, 1] + f2 * cell[2, 1]
        z = f0 * cell[0, 2] + f1 * cell[1, 2] + f2 * cell[2, 2]
        d = math.sqrt(x * x + y * y + z * z)
        if d < rlo or d > rhi or d <= 0.0:
            continue
        w = pw[p] / d if divide_by_d else pw[p]
        u = d / h
        k = int(u)
        t = u - k
        if k + 1 < nb:
            hist[pcls[p], k] += w * (1.0 - t)
            hist[pcls[p], k + 1] += w * t


@numba.njit(**_NJIT)
def hist_cluster(pos, typ, wtype, ntype, rlo, rhi, h, divide_by_d, hist):
    """Bin all ordered pairs i != j of a finite cluster with rlo <= d <= rhi (cell list; memory O(N)).

    ``typ`` gives each atom's type index, ``wtype[ta, tb]`` the pair weight, and the pair goes to histogram
    row ``ta * ntype + tb``.  Each unordered pair is visited once and added to both (ta, tb) and (tb, ta).
    """
    n = pos.shape[0]
    nb = hist.shape[1]
    if n < 2:
        return
    lo0 = pos[0, 0]
    lo1 = pos[0, 1]
    lo2 = pos[0, 2]
    hi0 = lo0
    hi1 = lo1
    hi2 = lo2
    for i in range(n):
        lo0 = min(lo0, pos[i, 0])
        lo1 = min(lo1, pos[i, 1])
        lo2 = min(lo2, pos[i, 2])
        hi0 = max(hi0, pos[i, 0])
        hi1 = max(hi1, pos[i, 1])
        hi2 = max(hi2, pos[i, 2])
    cs = max(rhi, 1e-6)
    n0 = max(1, int((hi0 - lo0) / cs) + 1)
    n1 = max(1, int((hi1 - lo1) / cs) + 1)
    n2 = max(1, int((hi2 - lo2) / cs) + 1)
    ncell = n0 * n1 * n2
    head = np.full(ncell, -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    cid = np.empty(n, dtype=np.int64)
    for i in range(n):
        c0 = min(int((pos[i, 0] - lo0) / cs), n0 - 1)
        c1 = min(int((pos[i, 1] - lo1) / cs), n1 - 1)
        c2 = min(int((pos[i, 2] - lo2) / cs), n2 - 1)
        c = (c0 * n1 + c1) * n2 + c2
        cid[i] = c
        nxt[i] = head[c]
        head[c] = i
    r2hi = rhi * rhi
    r2lo = rlo * rlo
    for i in range(n):
        c = cid[i]
        c2 = c % n2
        c1 = (c // n2) % n1
        c0 = c // (n1 * n2)
        ti = typ[i]
        for a in range(max(c0 - 1, 0), min(c0 + 2, n0)):
            for b in range(max(c1 - 1, 0), min(c1 + 2, n1)):
                for e in range(max(c2 - 1, 0), min(c2 + 2, n2)):
                    j = head[(a * n1 + b) * n2 + e]
                    while j >= 0:
                        if j > i:
                            dx = pos[j, 0] - pos[i, 0]
                            dy = pos[j, 1] - pos[i, 1]
                            dz = pos[j, 2] - pos[i, 2]
                            d2 = dx * dx + dy * dy + dz * dz
                            if d2 <= r2hi and d2 >= r2lo and d2 > 0.0:
                                d = math.sqrt(d2)
                                tj = typ[j]
                                w = wtype[ti, tj]
                                if divide_by_d:
                                    w = w / d
                                u = d / h
                                k = int(u)
                                t = u - k
                                if k + 1 < nb:
                                    r1 = min(ti, tj) * ntype + max(ti, tj)
                                    hist[r1, k] += w * (1.0 - t)
                                    hist[r1, k + 1] += w * t
                        j = nxt[j]
    # each unordered pair was added once to row (min, max): make it ordered pairs i != j
    for ta in range(ntype):
        for b in range(nb):
            hist[ta * ntype + ta, b] *= 2.0
        for tb in range(ta + 1, ntype):
            for b in range(nb):
                hist[tb * ntype + ta, b] = hist[ta * ntype + tb, b]


@numba.njit(**_NJIT)
def min_distance(pos, cutoff):
    """Smallest interatomic distance below ``cutoff`` (cell list), or ``cutoff`` if none is closer."""
    n = pos.shape[0]
    best = cutoff
    if n < 2:
        return best
    lo = np.empty(3)
    hi = np.empty(3)
    for k in range(3):
        lo[k] = pos[:, k].min()
        hi[k] = pos[:, k].max()
    cs = cutoff
    nn = np.empty(3, dtype=np.int64)
    for k in range(3):
        nn[k] = max(1, int((hi[k] - lo[k]) / cs) + 1)
    head = np.full(nn[0] * nn[1] * nn[2], -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    cid = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        for k in range(3):
            cid[i, k] = min(int((pos[i, k] - lo[k]) / cs), nn[k] - 1)
        c = (cid[i, 0] * nn[1] + cid[i, 1]) * nn[2] + cid[i, 2]
        nxt[i] = head[c]
        head[c] = i
    for i in range(n):
        for a in range(max(cid[i, 0] - 1, 0), min(cid[i, 0] + 2, nn[0])):
            for b in range(max(cid[i, 1] - 1, 0), min(cid[i, 1] + 2, nn[1])):
                for e in range(max(cid[i, 2] - 1, 0), min(cid[i, 2] + 2, nn[2])):
                    j = head[(a * nn[1] + b) * nn[2] + e]
                    while j >= 0:
                        if j > i:
                            d = math.sqrt((pos[j, 0] - pos[i, 0]) ** 2 + (pos[j, 1] - pos[i, 1]) ** 2
                                          + (pos[j, 2] - pos[i, 2]) ** 2)
                            if d < best:
                                best = d
                        j = nxt[j]
    return best


@numba.njit(**_NJIT)
def gauss_sum(hist, h, msd, delta1, delta2, qbroad, halfboundrel, rstep, klo, out):
    """out[k - klo] += sum over bins b of hist[c, b] * N(k*rstep - r_b; sigma_cb), Gaussian of unit area.

    sigma^2 = msd[c] * (1 - delta1/r_b - delta2/r_b^2 + qbroad^2 r_b^2) (Jeong et al. 2003, srreal's
    convention); a peak is cut at |x| > halfboundrel * fwhm like srreal's GaussianProfile.  The Gaussian is
    evaluated by a multiplicative recurrence (two multiplications per point).
    """
    ncls = hist.shape[0]
    nb = hist.shape[1]
    nout = out.shape[0]
    khi = klo + nout
    for c in range(ncls):
        m = msd[c]
        for b in range(nb):
            w = hist[c, b]
            if w == 0.0:
                continue
            r = b * h
            if r <= 0.0:
                continue
            corr = 1.0 - delta1 / r - delta2 / (r * r) + (qbroad * r) ** 2
            s2 = m * corr
            if s2 <= 0.0:
                continue
            sig = math.sqrt(s2)
            fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0)) * sig
            xb = halfboundrel * fwhm
            k0 = int(math.floor((r - xb) / rstep))
            k1 = int(math.floor((r + xb) / rstep)) + 1
            if k0 < klo:
                k0 = klo
            if k1 > khi:
                k1 = khi
            if k1 <= k0:
                continue
            amp = w / (sig * math.sqrt(2.0 * math.pi))
            inv2s2 = 0.5 / s2
            x0 = k0 * rstep - r
            g = amp * math.exp(-x0 * x0 * inv2s2)
            # ratio g(x+dr)/g(x) = exp(-(2 x dr + dr^2)/(2 s2)); successive ratios differ by exp(-dr^2/s2)
            ratio = math.exp(-(2.0 * x0 * rstep + rstep * rstep) * inv2s2)
            cmul = math.exp(-rstep * rstep / s2)
            for k in range(k0, k1):
                out[k - klo] += g
                g *= ratio
                ratio *= cmul


@numba.njit(**_NJIT)
def debye_partial(hist, h, msd, delta1, delta2, qbroad, q, out):
    """out[c, iq] = sum_b hist[c, b] * sin(q r_b) / r_b * exp(-sigma_cb^2 q^2 / 2) (Debye sum over a histogram).

    sin(q r_b) for successive q on a uniform grid is computed by the Chebyshev recurrence
    s_{k+1} = 2 cos(dq r) s_k - s_{k-1} (exact to rounding; q[0] must be 0 or the grid uniform).
    """
    ncls = hist.shape[0]
    nb = hist.shape[1]
    nq = q.shape[0]
    if nq == 0:
        return
    dq = q[1] - q[0] if nq > 1 else 0.0
    for c in range(ncls):
        m = msd[c]
        for b in range(nb):
            w = hist[c, b]
            if w == 0.0:
                continue
            r = b * h
            if r <= 0.0:
                continue
            corr = 1.0 - delta1 / r - delta2 / (r * r) + (qbroad * r) ** 2
            s2 = m * corr
            if s2 < 0.0:
                s2 = 0.0
            a = w / r
            sprev = math.sin((q[0] - dq) * r)
            scur = math.sin(q[0] * r)
            twocos = 2.0 * math.cos(dq * r)
            # Debye-Waller factor exp(-s2 q^2/2) by recurrence too
            e = math.exp(-0.5 * s2 * q[0] * q[0])
            er = math.exp(-0.5 * s2 * (2.0 * q[0] * dq + dq * dq))
            ec = math.exp(-s2 * dq * dq)
            for iq in range(nq):
                out[c, iq] += a * scur * e
                snext = twocos * scur - sprev
                sprev = scur
                scur = snext
                e *= er
                er *= ec
