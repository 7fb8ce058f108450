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
def hist_periodic_fused(frac, cell, nrep, typ, sf, norm, ntype, rlo, rhi, h, divide_by_d, hist):
    """One pass that enumerates the unordered periodic pairs within rhi and bins them (nothing stored).

    Pairs (i, j, n) with i < j, or i == j and the lattice vector n = (a, b, c) > 0 lexicographically, stand for
    themselves and their mirror (j, i, -n) at the same distance: each adds 2 sf[i] sf[j] norm (/ d) to row
    typ_i * ntype + typ_j (rows are only ever summed with symmetric widths).  For each (i, j, a, b) the range of
    c with |d| <= rhi is solved from the quadratic in c, so no translation outside the sphere is visited.
    Linear binning as in the module docstring (a in -nrep[0]..nrep[0], b likewise).
    """
    nat = frac.shape[0]
    nb = hist.shape[1]
    r2hi = rhi * rhi
    c2x, c2y, c2z = cell[2, 0], cell[2, 1], cell[2, 2]
    A = c2x * c2x + c2y * c2y + c2z * c2z
    invh = 1.0 / h
    for i in range(nat):
        for j in range(i, nat):
            w2 = 2.0 * sf[i] * sf[j] * norm
            row = typ[i] * ntype + typ[j]
            g0 = frac[j, 0] - frac[i, 0]
            g1 = frac[j, 1] - frac[i, 1]
            g2 = frac[j, 2] - frac[i, 2]
            for a in range(-nrep[0], nrep[0] + 1):
                if i == j and a < 0:
                    continue
                for b in range(-nrep[1], nrep[1] + 1):
                    if i == j and a == 0 and b < 0:
                        continue
                    f0 = g0 + a
                    f1 = g1 + b
                    bx = f0 * cell[0, 0] + f1 * cell[1, 0] + g2 * c2x
                    by = f0 * cell[0, 1] + f1 * cell[1, 1] + g2 * c2y
                    bz = f0 * cell[0, 2] + f1 * cell[1, 2] + g2 * c2z
                    Bq = bx * c2x + by * c2y + bz * c2z
                    C = bx * bx + by * by + bz * bz - r2hi
                    disc = Bq * Bq - A * C
                    if disc < 0.0:
                        continue
                    sq = math.sqrt(disc)
                    cmin = int(math.ceil((-Bq - sq) / A - 1e-9))
                    cmax = int(math.floor((-Bq + sq) / A + 1e-9))
                    if i == j and a == 0 and b == 0 and cmin < 1:
                        cmin = 1
                    for c in range(cmin, cmax + 1):
                        x = bx + c * c2x
                        y = by + c * c2y
                        z = bz + c * c2z
                        d2 = x * x + y * y + z * z
                        if d2 > r2hi or d2 <= 0.0:
                            continue
                        d = math.sqrt(d2)
                        if d < rlo:
                            continue
                        ww = w2 / d if divide_by_d else w2
                        u = d * invh
                        k = int(u)
                        t = u - k
                        if k + 1 < nb:
                            hist[row, k] += ww * (1.0 - t)
                            hist[row, k + 1] += ww * t


@numba.njit(**_NJIT)
def _cell_list(pos, cs):
    """Linked-cell list of the points ``pos`` (n, 3) on cubic cells of side ``cs`` from their bounding box's
    low corner: cells per axis nn (3,), the first point of each cell head (nn0 nn1 nn2; -1 empty, cell index
    (a nn1 + b) nn2 + e), the next point of the same cell nxt (n; -1 last) and each point's cell cid (n, 3)."""
    n = pos.shape[0]
    lo = np.empty(3)
    nn = np.empty(3, dtype=np.int64)
    for k in range(3):
        lo[k] = pos[:, k].min()
        nn[k] = max(1, int((pos[:, k].max() - lo[k]) / cs) + 1)
    head = np.full(nn[0] * nn[1] * nn[2], -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    cid = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        for k in range(3):
            cid[i, k] = min(int((pos[i, k] - lo[k]) / cs), nn[k] - 1)
        c = (cid[i, 0] * nn[1] + cid[i, 1]) * nn[2] + cid[i, 2]
        nxt[i] = head[c]
        head[c] = i
    return nn, head, nxt, cid


@numba.njit(**_NJIT)
def min_distance(pos, cutoff):
    """Smallest interatomic distance below ``cutoff`` (cell list), or ``cutoff`` if none is closer."""
    n = pos.shape[0]
    best = cutoff
    if n < 2:
        return best
    span = 0.0
    for k in range(3):
        span = max(span, pos[:, k].max() - pos[:, k].min())
    # cells no smaller than the cutoff (neighbours are within +-1 cell) and at most ~128 per axis (memory)
    nn, head, nxt, cid = _cell_list(pos, max(cutoff, span / 128.0))
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
    evaluated by a multiplicative recurrence (two multiplications per point, see :func:`_gauss_run`).
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
            _gauss_run(out, k0 - klo, k1 - k0, g, ratio, cmul)


@numba.njit(**_NJIT)
def _gauss_run(out, j0, n, g, ratio, cmul):
    """out[j0 + i] += g_i for i < n, g_{i+1} = g_i r_i, r_{i+1} = r_i cmul (g_0 = g, r_0 = ratio), as four
    interleaved recurrences of stride 4 (g_{i+4} = g_i Q_i, Q_i = r_i^4 cmul^6, Q_{i+4} = Q_i cmul^16): four
    independent multiplication chains instead of one, so the loop runs at throughput rather than latency."""
    g0 = g
    r0 = ratio
    g1 = g0 * r0
    r1 = r0 * cmul
    g2 = g1 * r1
    r2 = r1 * cmul
    g3 = g2 * r2
    r3 = r2 * cmul
    c2 = cmul * cmul
    c4 = c2 * c2
    c6 = c4 * c2
    c16 = (c4 * c4) * (c4 * c4)
    q0 = (r0 * r0) * (r0 * r0) * c6
    q1 = (r1 * r1) * (r1 * r1) * c6
    q2 = (r2 * r2) * (r2 * r2) * c6
    q3 = (r3 * r3) * (r3 * r3) * c6
    i = 0
    while i + 4 <= n:
        j = j0 + i
        out[j] += g0
        out[j + 1] += g1
        out[j + 2] += g2
        out[j + 3] += g3
        g0 *= q0
        g1 *= q1
        g2 *= q2
        g3 *= q3
        q0 *= c16
        q1 *= c16
        q2 *= c16
        q3 *= c16
        i += 4
    j = j0 + i
    if i < n:
        out[j] += g0
    if i + 1 < n:
        out[j + 1] += g1
    if i + 2 < n:
        out[j + 2] += g2


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


# ------------------------------------------------------------------------------- cluster pair histogram (v2)
# Atoms are sorted by (cell, type) by the caller (calculator.cluster_histogram) so that the atoms of one cell and
# type are a contiguous segment ``seg[s]:seg[s+1]`` with s = cell * ntype + type; coordinates are float32 and
# centred on the cluster (|x| <= ~100 A, so their rounding, ~4e-6 A, is far below the 1e-3 A bin width).  The
# inner loop over a segment first computes u = d/h for the whole segment (a straight loop LLVM vectorises),
# then scatters the in-range ones into one histogram row; the row is fixed per segment pair, so there is no
# per-pair type lookup.  Counts are unweighted: the caller applies per-type weights (and 1/r) per bin.


@numba.njit(**_NJIT)
def cluster_cell_pairs(seg, dims, ntype, reach, cs, rhi, out):
    """Fill ``out[p] = (c, cc)`` for every non-empty cell pair c <= cc within ``reach`` cells whose closest
    points are within ``rhi``; ``out[p, 2]`` is the pair's cost (atom-pair count).  Returns the number of pairs
    (also when ``out`` has fewer rows: call with 0 rows to count, then again to fill)."""
    n0 = dims[0]
    n1 = dims[1]
    n2 = dims[2]
    r2hi = rhi * rhi
    p = 0
    for c0 in range(n0):
        for c1 in range(n1):
            for c2 in range(n2):
                c = (c0 * n1 + c1) * n2 + c2
                na = seg[(c + 1) * ntype] - seg[c * ntype]
                if na == 0:
                    continue
                for a in range(max(c0 - reach, 0), min(c0 + reach + 1, n0)):
                    for b in range(max(c1 - reach, 0), min(c1 + reach + 1, n1)):
                        for e in range(max(c2 - reach, 0), min(c2 + reach + 1, n2)):
                            cc = (a * n1 + b) * n2 + e
                            if cc < c:
                                continue
                            nb_ = seg[(cc + 1) * ntype] - seg[cc * ntype]
                            if nb_ == 0:
                                continue
                            g0 = max(abs(a - c0) - 1, 0) * cs
                            g1 = max(abs(b - c1) - 1, 0) * cs
                            g2 = max(abs(e - c2) - 1, 0) * cs
                            if g0 * g0 + g1 * g1 + g2 * g2 > r2hi:
                                continue
                            if p < out.shape[0]:
                                out[p, 0] = c
                                out[p, 1] = cc
                                out[p, 2] = na * nb_ if cc != c else na * (na - 1) // 2
                            p += 1
    return p


@numba.njit(**_NJIT)
def _segment_pair_hist(xs, ys, zs, i0, i1, j0, j1, same, ulo, uhi, invh, hrow, buf):
    for i in range(i0, i1):
        xi = xs[i]
        yi = ys[i]
        zi = zs[i]
        js = i + 1 if same else j0
        nj = j1 - js
        if nj <= 0:
            continue
        xr = xs[js:j1]         # slices: contiguous vector loads (an index js + jj that may be < 0 makes gathers)
        yr = ys[js:j1]
        zr = zs[js:j1]
        for jj in range(nj):
            dx = xr[jj] - xi
            dy = yr[jj] - yi
            dz = zr[jj] - zi
            buf[jj] = math.sqrt(dx * dx + dy * dy + dz * dz) * invh
        for jj in range(nj):
            u = buf[jj]
            if u <= uhi and u >= ulo:
                k = int(u)
                t = np.float64(u - k)
                hrow[k] += 1.0 - t
                hrow[k + 1] += t


@numba.njit(**_NJIT)
def hist_cluster_cells(xs, ys, zs, seg, ntype, pairs, p0, p1, rlo, rhi, h, hist):
    """Linear-binned counts of unordered pairs with rlo <= d <= rhi over cell pairs ``pairs[p0:p1]``.

    ``hist[ta * ntype + tb]`` (ta <= tb) gets, per pair at d = (k + t) h, 1 - t in bin k and t in bin k + 1
    (pairs that would fall past the last bin are dropped).  Float32 distances (u = d/h rounds to ~2e-7 relative).
    """
    nb = hist.shape[1]
    invh = np.float32(1.0 / h)
    ulo = np.float32(rlo / h)
    uhi = np.float32(min(rhi / h, nb - 2.0))
    buf = np.empty(xs.shape[0], dtype=np.float32)
    for p in range(p0, p1):
        c = pairs[p, 0]
        cc = pairs[p, 1]
        for ta in range(ntype):
            i0 = seg[c * ntype + ta]
            i1 = seg[c * ntype + ta + 1]
            if i1 == i0:
                continue
            for tb in range(ntype):
                if cc == c and tb < ta:
                    continue
                j0 = seg[cc * ntype + tb]
                j1 = seg[cc * ntype + tb + 1]
                if j1 == j0:
                    continue
                row = min(ta, tb) * ntype + max(ta, tb)
                _segment_pair_hist(xs, ys, zs, i0, i1, j0, j1, cc == c and ta == tb, ulo, uhi, invh, hist[row],
                                   buf)


@numba.njit(**_NJIT)
def hist_cluster_rows(xs, ys, zs, ts, cstart, dims, ntype, reach, cs, rlo, rhi, h, nreal, flat):
    """Linear-binned counts of unordered pairs (i < j) with rlo <= d <= rhi in one pass, nothing stored.

    Atoms sorted by cell (cell index (c0 * n1 + c1) * n2 + c2, atoms of cell c at cstart[c]:cstart[c+1]) and by
    z inside a cell, so the cells (a, b, e0..e1) of one row along the last axis are one run of atoms sorted by z.
    For each cell and each neighbouring row whose nearest point is within rhi (lateral gap g), only atoms with
    |z_j - z_i| <= sqrt(rhi^2 - g^2) can be within rhi: two pointers find that window for the atoms of the cell
    in z order (amortised O(1) per atom).  The distances u = d/h to the window are computed in one straight loop
    over contiguous slices (vectorised), then scattered without a branch: a pair at d = (k + t) h adds 1 - t to
    bin k and t to bin k + 1 of row min(ti, tj) * ntype + max(ti, tj), i.e. ``flat[row * nreal + k]`` (pairs
    past bin nreal - 2 dropped).  Pairs out of [rlo, rhi] are shifted to u >= nreal inside the loop and land in
    the scratch tail ``flat[ntype**2 * nreal:]`` (no mispredicted branch per pair, no single hot junk bin); the
    caller discards it.  Float32 coordinates as in :func:`hist_cluster_cells`.
    """
    n0 = dims[0]
    n1 = dims[1]
    n2 = dims[2]
    invh = np.float32(1.0 / h)
    ulo = np.float32(rlo / h)
    uhi = np.float32(min(rhi / h, nreal - 2.0))
    # out-of-range pairs: u -> u + shift (>= nreal), clamped to the scratch tail (memory safety)
    shift_hi = np.float32(nreal - math.floor(uhi))
    shift_lo = np.float32(nreal)
    nrow = ntype * ntype
    tail = nrow * nreal
    umax = np.float32(flat.shape[0] - tail + nreal - 2)
    r2hi = rhi * rhi
    zabs = 0.0
    for i in range(zs.shape[0]):
        zabs = max(zabs, abs(np.float64(zs[i])))
    kbuf = np.empty(xs.shape[0], dtype=np.int32)
    tbuf = np.empty(xs.shape[0], dtype=np.float64)
    for c0 in range(n0):
        for c1 in range(n1):
            for c2 in range(n2):
                c = (c0 * n1 + c1) * n2 + c2
                i0 = cstart[c]
                i1 = cstart[c + 1]
                if i1 == i0:
                    continue
                for a in range(c0, min(c0 + reach + 1, n0)):
                    g0 = max(a - c0 - 1, 0) * cs
                    for b in range(max(c1 - reach, 0), min(c1 + reach + 1, n1)):
                        if a == c0 and b < c1:
                            continue
                        g1 = max(abs(b - c1) - 1, 0) * cs
                        rest = r2hi - g0 * g0 - g1 * g1
                        if rest < 0.0:
                            continue
                        wz = math.sqrt(rest)
                        span = min(int(wz / cs) + 1, reach)
                        e0 = max(c2 - span, 0)
                        e1 = min(c2 + span, n2 - 1)
                        own = a == c0 and b == c1
                        if own:
                            e0 = c2
                        row0 = (a * n1 + b) * n2
                        j0 = cstart[row0 + e0]
                        j1 = cstart[row0 + e1 + 1]
                        if j1 == j0:
                            continue
                        # z window half-width, widened by a few float32 roundings of the coordinates
                        wf = np.float32(wz + 1e-6 * (zabs + wz) + 1e-6)
                        lo = j0
                        hi = j0
                        for i in range(i0, i1):
                            zi = zs[i]
                            while lo < j1 and zs[lo] < zi - wf:
                                lo += 1
                            if hi < lo:
                                hi = lo
                            while hi < j1 and zs[hi] <= zi + wf:
                                hi += 1
                            js = max(i + 1, lo) if own else lo
                            nj = hi - js
                            if nj <= 0:
                                continue
                            xi = xs[i]
                            yi = ys[i]
                            # slices: indices provably >= 0, so LLVM emits contiguous vector loads, not gathers
                            xr = xs[js:hi]
                            yr = ys[js:hi]
                            zr = zs[js:hi]
                            for jj in range(nj):
                                dx = xr[jj] - xi
                                dy = yr[jj] - yi
                                dz = zr[jj] - zi
                                u = math.sqrt(dx * dx + dy * dy + dz * dz) * invh
                                u = u + shift_hi if u > uhi else u
                                u = u + shift_lo if u < ulo else u
                                u = u if u < umax else umax
                                k = np.int32(u)
                                kbuf[jj] = k
                                tbuf[jj] = np.float64(u - np.float32(k))
                            if ntype == 1:
                                for jj in range(nj):
                                    k = kbuf[jj]
                                    t = tbuf[jj]
                                    flat[k] += 1.0 - t
                                    flat[k + 1] += t
                            else:
                                ti = ts[i]
                                tr = ts[js:hi]
                                for jj in range(nj):
                                    k = kbuf[jj]
                                    t = tbuf[jj]
                                    tj = tr[jj]
                                    f = (min(ti, tj) * ntype + max(ti, tj)) * nreal + k if k < nreal \
                                        else tail + k - nreal
                                    flat[f] += 1.0 - t
                                    flat[f + 1] += t


@numba.njit(cache=True, nogil=True, parallel=True)
def hist_cluster_cells_parallel(xs, ys, zs, seg, ntype, pairs, bounds, rlo, rhi, h, hist_t):
    """:func:`hist_cluster_cells` over chunks ``pairs[bounds[k]:bounds[k+1]]`` in parallel (numba prange), chunk k
    into its own ``hist_t[k]`` (the caller sums them).  Only used when the caller asks for threads."""
    for k in numba.prange(bounds.shape[0] - 1):
        hist_cluster_cells(xs, ys, zs, seg, ntype, pairs, bounds[k], bounds[k + 1], rlo, rhi, h, hist_t[k])


@numba.njit(**_NJIT)
def sine_sum(q0, dq, fq, r, out):
    """out[i] = sum_k fq[k] sin((q0 + k dq) r[i]) by the Chebyshev recurrence (no BLAS, no cached matrix)."""
    nq = fq.shape[0]
    for i in range(r.shape[0]):
        x = r[i]
        sprev = math.sin((q0 - dq) * x)
        scur = math.sin(q0 * x)
        twocos = 2.0 * math.cos(dq * x)
        acc = 0.0
        for k in range(nq):
            acc += fq[k] * scur
            snext = twocos * scur - sprev
            sprev = scur
            scur = snext
        out[i] = acc


# ------------------------------------------------------------------------------- anisotropic ADPs (per pair)
# With anisotropic U the width depends on the bond direction n: sigma^2 = (n.U_i.n + n.U_j.n) * (1 - delta1/d
# - delta2/d^2 + Qbroad^2 d^2) (srreal's msd of a bond), so pairs are not binned by type: each pair adds its own
# Gaussian at its exact distance (as srreal does).


@numba.njit(**_NJIT)
def _add_gaussian(out, klo, r, w, s2, halfboundrel, rstep):
    if s2 <= 0.0:
        return
    nout = out.shape[0]
    sig = math.sqrt(s2)
    xb = halfboundrel * 2.0 * math.sqrt(2.0 * math.log(2.0)) * sig
    k0 = max(int(math.floor((r - xb) / rstep)), klo)
    k1 = min(int(math.floor((r + xb) / rstep)) + 1, klo + nout)
    if k1 <= k0:
        return
    amp = w / (sig * math.sqrt(2.0 * math.pi))
    inv2s2 = 0.5 / s2
    x0 = k0 * rstep - r
    g = amp * math.exp(-x0 * x0 * inv2s2)
    ratio = math.exp(-(2.0 * x0 * rstep + rstep * rstep) * inv2s2)
    cmul = math.exp(-rstep * rstep / s2)
    for k in range(k0, k1):
        out[k - klo] += g
        g *= ratio
        ratio *= cmul


@numba.njit(**_NJIT)
def _bond_msd(ux, x, y, z, i, j):
    # n.U_i.n + n.U_j.n for the unit vector n = (x, y, z)/|.|, U given as (n, 3, 3) Cartesian
    d2 = x * x + y * y + z * z
    s = 0.0
    for a in (i, j):
        s += (ux[a, 0, 0] * x * x + ux[a, 1, 1] * y * y + ux[a, 2, 2] * z * z
              + 2.0 * (ux[a, 0, 1] * x * y + ux[a, 0, 2] * x * z + ux[a, 1, 2] * y * z))
    return s / d2


@numba.njit(**_NJIT)
def gauss_periodic_aniso(dfrac, pi, pj, pw, cell, ucart, rlo, rhi, delta1, delta2, qbroad, halfboundrel, rstep,
                         klo, out):
    """out += sum over cached periodic pairs (d in [rlo, rhi]) of pw/d * N(r; d, sigma_p), sigma_p^2 from the
    bond-projected anisotropic U of both sites (``ucart`` (nsites, 3, 3), Cartesian, A^2)."""
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
        m = _bond_msd(ucart, x, y, z, pi[p], pj[p])
        s2 = m * (1.0 - delta1 / d - delta2 / (d * d) + (qbroad * d) ** 2)
        _add_gaussian(out, klo, d, pw[p] / d, s2, halfboundrel, rstep)


@numba.njit(**_NJIT)
def gauss_cluster_aniso(pos, sw, ucart, rlo, rhi, delta1, delta2, qbroad, halfboundrel, rstep, klo, out):
    """out += sum over ordered pairs i != j of a finite cluster with rlo <= d <= rhi of sw[i] sw[j]/d *
    N(r; d, sigma_ij) with the bond-projected anisotropic U (cell list over all atoms, memory O(N))."""
    n = pos.shape[0]
    if n < 2:
        return
    nn, head, nxt, cid = _cell_list(pos, max(rhi, 1e-3))
    for i in range(n):
        for a in range(max(cid[i, 0] - 1, 0), min(cid[i, 0] + 2, nn[0])):
            for b in range(max(cid[i, 1] - 1, 0), min(cid[i, 1] + 2, nn[1])):
                for e in range(max(cid[i, 2] - 1, 0), min(cid[i, 2] + 2, nn[2])):
                    j = head[(a * nn[1] + b) * nn[2] + e]
                    while j >= 0:
                        if j > i:
                            x = pos[j, 0] - pos[i, 0]
                            y = pos[j, 1] - pos[i, 1]
                            z = pos[j, 2] - pos[i, 2]
                            d = math.sqrt(x * x + y * y + z * z)
                            if d >= rlo and d <= rhi and d > 0.0:
                                m = _bond_msd(ucart, x, y, z, i, j)
                                s2 = m * (1.0 - delta1 / d - delta2 / (d * d) + (qbroad * d) ** 2)
                                _add_gaussian(out, klo, d, 2.0 * sw[i] * sw[j] / d, s2, halfboundrel, rstep)
                        j = nxt[j]
