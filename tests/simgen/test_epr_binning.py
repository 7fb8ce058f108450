"""EPR powder binning kernels against slow, obvious NumPy versions (octant grid, box and hat bins, width
classes, missing knots), the S = 1/2 closed form of ``s12_knots`` and the FFT helpers of ``physics``."""
import math

import numpy as np
import pytest
import scipy.fft

from simgen.epr import kernels, physics

BM = kernels.BMAGN


def _catmull(t):
    t = np.asarray(t, dtype=float)
    return 0.5 * np.stack([-t + 2 * t ** 2 - t ** 3, 2 - 5 * t ** 2 + 3 * t ** 3, t + 4 * t ** 2 - 3 * t ** 3,
                           -t ** 2 + t ** 3], -1)


def _mirror(q, n):
    q = abs(q)
    return 2 * (n - 1) - q if q > n - 1 else q


def _bin_ref(stick, c, x0, dx, lo, hi, w):
    """Spread w uniformly over [lo, hi]: box bins [x0 + i|dx|, x0 + (i+1)|dx|) (dx < 0) or hat functions
    centred on x0 + i dx (dx > 0), by integrating each bin function over the interval."""
    nb = stick.shape[1]
    d = abs(dx)
    tlo, thi = (lo - x0) / d, (hi - x0) / d
    i = np.arange(nb)
    if dx < 0:
        if thi - tlo < 1e-6:
            t = 0.5 * (tlo + thi) if thi - tlo > 1e-9 else tlo
            if 0 <= t and int(t) < nb:
                stick[c, int(t)] += w
            return
        ov = np.clip(np.minimum(thi, i + 1.0) - np.maximum(tlo, i * 1.0), 0, None)
        stick[c] += w * ov / (thi - tlo)
        return
    if thi - tlo < 1e-6:
        t = 0.5 * (tlo + thi)
        i0 = math.floor(t)
        for k, f in ((i0, 1 - (t - i0)), (i0 + 1, t - i0)):
            if 0 <= k < nb:
                stick[c, k] += w * f
        return

    def cdf(u):          # integral of the unit hat from -inf to u
        u = np.clip(u, -1, 1)
        return np.where(u < 0, 0.5 * (u + 1) ** 2, 1 - 0.5 * (1 - u) ** 2)
    stick[c] += w * (cdf(thi - i) - cdf(tlo - i)) / (thi - tlo)


def _line_ref(stick, x0, dx, lo, hi, w, wid, lwg, cw):
    """The line in the width class(es) of its total FWHM, split linearly in the variance between neighbours."""
    nc = len(cw)
    tot = math.hypot(lwg, wid)
    if nc == 1 or tot <= cw[0]:
        return _bin_ref(stick, 0, x0, dx, lo, hi, w)
    if tot >= cw[-1]:
        return _bin_ref(stick, nc - 1, x0, dx, lo, hi, w)
    c = min(int(np.searchsorted(cw, tot, side="right")) - 1, nc - 2)
    f = np.clip((tot ** 2 - cw[c] ** 2) / (cw[c + 1] ** 2 - cw[c] ** 2), 0, 1)
    _bin_ref(stick, c, x0, dx, lo, hi, w * (1 - f))
    _bin_ref(stick, c + 1, x0, dx, lo, hi, w * f)


def powder_bin_octant_ref(B, I, W, partner, th, ph, r, x0, dx, lwg, cw, scale, nb):
    """Slow octant binning: per cell and line, the bicubic Catmull-Rom surface of the 4 x 4 mirrored knot
    neighbourhood (bilinear when a neighbour has no line) on the sub-cell corners (fields) and centres
    (intensities, clipped at 0); each sub-cell is a box [min, max] of its corner fields with weight
    scale * sin(theta) dtheta dphi * intensity; cells with missing corners put a quarter of their weight on each
    valid corner, spread to the midpoint with the partner root when there is one."""
    nt, nph = len(th), len(ph)
    stick = np.zeros((len(cw), nb))
    Bk = B.reshape(nt, nph, -1)
    Ik = I.reshape(nt, nph, -1)
    Wk = W.reshape(nt, nph, -1)
    we = _catmull(np.arange(r + 1) / r)
    wm = _catmull((np.arange(r) + 0.5) / r)
    fe = np.arange(r + 1) / r
    fm = (np.arange(r) + 0.5) / r
    for i in range(nt - 1):
        t0, t1 = th[i], th[i + 1]
        ia = [_mirror(q, nt) for q in range(i - 1, i + 3)]
        for j in range(nph - 1):
            p0, p1 = ph[j], ph[j + 1]
            jc = [_mirror(q, nph) for q in range(j - 1, j + 3)]
            for l in range(B.shape[1]):
                cb = Bk[i:i + 2, j:j + 2, l]
                ok = np.isfinite(cb)
                if not ok.any():
                    continue
                if ok.all():
                    PB = Bk[np.ix_(ia, jc)][..., l]
                    PI = Ik[np.ix_(ia, jc)][..., l]
                    if np.isfinite(PB).all():
                        bc = we @ PB @ we.T
                        qi = np.clip(wm @ PI @ wm.T, 0, None)
                    else:
                        ci = Ik[i:i + 2, j:j + 2, l]
                        bil = (lambda v, f, g: (1 - f)[:, None] * ((1 - g)[None] * v[0, 0] + g[None] * v[0, 1])
                               + f[:, None] * ((1 - g)[None] * v[1, 0] + g[None] * v[1, 1]))
                        bc, qi = bil(cb, fe, fe), bil(ci, fm, fm)
                    cwid = Wk[i:i + 2, j:j + 2, l]
                    for a in range(r):
                        ws = scale * math.sin(t0 + (t1 - t0) * (a + 0.5) / r) * (t1 - t0) * (p1 - p0) / r ** 2
                        for c in range(r):
                            q = bc[a:a + 2, c:c + 2]
                            wid = ((1 - fm[a]) * ((1 - fm[c]) * cwid[0, 0] + fm[c] * cwid[0, 1])
                                   + fm[a] * ((1 - fm[c]) * cwid[1, 0] + fm[c] * cwid[1, 1]))
                            _line_ref(stick, x0, dx, q.min(), q.max(), ws * qi[a, c], wid, lwg, cw)
                    continue
                wgt = 0.25 * (math.cos(t0) - math.cos(t1)) * (p1 - p0) * scale
                for di in (0, 1):
                    for dj in (0, 1):
                        k = (i + di) * nph + j + dj
                        b = B[k, l]
                        if not np.isfinite(b):
                            continue
                        lo = hi = b
                        p = partner[l]
                        if p >= 0 and np.isfinite(B[k, p]):
                            lo, hi = min(b, 0.5 * (b + B[k, p])), max(b, 0.5 * (b + B[k, p]))
                        _line_ref(stick, x0, dx, lo, hi, wgt * I[k, l], W[k, l], lwg, cw)
    return stick


def _grid(nt, nph):
    th = np.linspace(0, np.pi / 2, nt)
    ph = np.linspace(0, np.pi / 2, nph)
    T, P = np.meshgrid(th, ph, indexing="ij")
    nv = np.ascontiguousarray(np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3))
    return th, ph, nv


def _knots(nv, g, gs=(0.0, 0.0, 0.0), nuc=None):
    K = nv.shape[0]
    if nuc is None:
        A, Iv, mc = np.zeros((0, 3)), np.zeros(0), np.zeros((1, 0))
    else:
        A, Iv = np.array([nuc[1]], dtype=float), np.array([nuc[0]])
        mc = np.arange(-nuc[0], nuc[0] + 0.5).reshape(-1, 1)
    L = mc.shape[0]
    B, In, W = (np.empty((K, L)) for _ in range(3))
    kernels.s12_knots(nv, np.asarray(g, float), np.asarray(gs, float), A, Iv, mc, np.ones(L), np.full(len(Iv), 2.0),
                      9500.0, B, In, W)
    return B, In, W


def _check(B, In, W, partner, th, ph, r, x0, dx, lwg, cw, scale=1.3, nb=700):
    stick = np.zeros((len(cw), nb))
    kernels.powder_bin(B, In, W, partner, len(th), len(ph), th, ph, r, x0, dx, lwg, cw, scale, stick,
                       np.empty((len(cw), nb + 1)))
    ref = powder_bin_octant_ref(B, In, W, partner, th, ph, r, x0, dx, lwg, cw, scale, nb)
    assert np.abs(ref).max() > 0
    assert np.allclose(stick, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
    return stick


@pytest.mark.parametrize("nt,nph,r", [(9, 9, 3), (7, 10, 4), (5, 4, 2)])
def test_octant_box_bins_single_class(nt, nph, r):
    th, ph, nv = _grid(nt, nph)
    B, In, W = _knots(nv, (2.0025, 2.009, 2.05))
    d = 0.02
    # box bins (dx < 0) from x0: the line spans bins ~ 70 .. 540 of 700
    _check(B, In, W, np.full(1, -1), th, ph, r, 330.0, -d, 0.4, np.array([0.4]))


def test_octant_hat_bins_and_width_classes():
    th, ph, nv = _grid(8, 9)
    B, In, W = _knots(nv, (2.0, 2.03, 2.09), gs=(0.004, 0.01, 0.02), nuc=(1.0, (20.0, 30.0, 60.0)))
    cw = 0.3 * 1.2 ** np.arange(6)
    for dx in (0.05, -0.05):
        _check(B, In, W, np.full(B.shape[1], -1), th, ph, 3, 315.0, dx, 0.3, cw, nb=900)


def test_octant_missing_knots_bilinear_and_corners():
    """Knots without a line: cells next to them fall back to bilinear interpolation, cells with a missing
    corner to their valid corners (spread towards the partner root)."""
    th, ph, nv = _grid(9, 9)
    B1, I1, W1 = _knots(nv, (2.0, 2.05, 2.2))
    B2, I2, W2 = _knots(nv, (2.01, 2.06, 2.21))
    B, In, W = np.hstack([B1, B2]), np.hstack([I1, I2]), np.hstack([W1, W2])
    rng = np.random.default_rng(5)
    gone = rng.random(B.shape) < 0.15
    B[gone] = np.nan
    In[gone] = 0.0
    partner = np.array([1, 0])
    assert np.isnan(B).any(axis=0).all()
    _check(B, In, W, partner, th, ph, 3, 300.0, -0.05, 0.5, np.array([0.5]), nb=1100)
    _check(B, In, W, partner, th, ph, 3, 300.0, 0.05, 0.5, np.array([0.5, 0.8, 1.28]), nb=1100)


def test_s12_knots_closed_form_without_nuclei():
    th, ph, nv = _grid(6, 5)
    g = np.array([2.0, 2.05, 2.2])
    gs = np.array([0.01, 0.0, 0.03])
    B, In, W = _knots(nv, g, gs)
    gv = nv * g
    geff = np.linalg.norm(gv, axis=1)
    P = 0.125 * (np.sum(g ** 2) - (nv ** 2 @ g ** 4) / geff ** 2)
    Bref = 9500.0 / (geff * BM)
    dg = np.linalg.norm(gv * gs, axis=1) / geff
    assert np.allclose(B[:, 0], Bref, rtol=1e-14)
    assert np.allclose(In[:, 0], P / (geff * BM), rtol=1e-13)
    assert np.allclose(W[:, 0], Bref * dg / geff, rtol=1e-13, atol=1e-15)


def test_fft_helpers_equal_scipy_fft():
    rng = np.random.default_rng(2)
    for nc, nb, nfft in ((1, 1270, 1280), (3, 500, 512), (2, 640, 640)):
        x = rng.standard_normal((nc, nb))
        F = physics._rfft_rows(x, nfft)
        assert np.array_equal(F, scipy.fft.rfft(x, nfft, axis=1))
        assert np.array_equal(physics._irfft(F[0].copy(), nfft), scipy.fft.irfft(F[0], nfft))


def test_octant_point_boxes():
    """A field the same at every knot (isotropic g on the 2-D grid): every sub-cell is a point."""
    th, ph, nv = _grid(6, 7)
    B, In, W = _knots(nv, (2.05, 2.05, 2.05))
    assert np.ptp(B) < 1e-9 * B.max()
    B[:] = B[0, 0]
    _check(B, In, W, np.full(1, -1), th, ph, 3, 330.0, -0.02, 0.4, np.array([0.4]))
    _check(B, In, W, np.full(1, -1), th, ph, 3, 330.0, 0.02, 0.4, np.array([0.4]))


def powder_bin_axial_ref(B, I, W, partner, th, r, x0, dx, lwg, cw, scale, nb):
    """Slow 1-D (axial) binning: per cell and line, the Catmull-Rom curve of the 4 mirrored knots (linear when
    a neighbour has no line) on r sub-cells, each a box between its end fields with weight scale * sin(theta)
    dtheta * intensity (clipped at 0).  A cell with the line at one end k0 only: when its partner root is at k0
    too and gone at the other end k1, the loop closes at theta_c, where the
    squared root gap, linear in theta through k0 and the knot kk beyond it, reaches 0 (mid-cell when kk lacks
    the pair; no deposit when the gap does not shrink towards the cell); the line is a box from its field at
    k0 to the pair's mid field extrapolated to theta_c, with weight 2 I(k0) |theta_c - theta_k0| sin(theta_k0 +
    2/3 (theta_c - theta_k0)); any other cell with a missing end is left out."""
    n = len(th)
    stick = np.zeros((len(cw), nb))
    we = _catmull(np.arange(r + 1) / r)
    wm = _catmull((np.arange(r) + 0.5) / r)
    for i in range(n - 1):
        t0, t1 = th[i], th[i + 1]
        ia = [_mirror(q, n) for q in range(i - 1, i + 3)]
        for l in range(B.shape[1]):
            ok = np.isfinite(B[[i, i + 1], l])
            if ok.all():
                PB, PI = B[ia, l], I[ia, l]
                if np.isfinite(PB).all():
                    be, qi = we @ PB, np.clip(wm @ PI, 0, None)
                else:
                    f = np.arange(r + 1) / r
                    be = B[i, l] + (B[i + 1, l] - B[i, l]) * f
                    fmid = (np.arange(r) + 0.5) / r
                    qi = I[i, l] + (I[i + 1, l] - I[i, l]) * fmid
                for s in range(r):
                    fm = (s + 0.5) / r
                    wid = W[i, l] + (W[i + 1, l] - W[i, l]) * fm
                    w = scale * qi[s] * math.sin(t0 + (t1 - t0) * fm) * (t1 - t0) / r
                    _line_ref(stick, x0, dx, min(be[s], be[s + 1]), max(be[s], be[s + 1]), w, wid, lwg, cw)
                continue
            p = partner[l]
            if ok.sum() != 1 or p < 0:
                continue
            k0, k1 = (i, i + 1) if ok[0] else (i + 1, i)
            if not np.isfinite(B[k0, p]) or np.isfinite(B[k1, p]):
                continue
            h = th[k1] - th[k0]
            kk = 2 * k0 - k1
            gap0 = (B[k0, l] - B[k0, p]) ** 2
            mid0 = 0.5 * (B[k0, l] + B[k0, p])
            frac, bc = 0.5, mid0
            if 0 <= kk < n and np.isfinite(B[kk, [l, p]]).all():
                gapk = (B[kk, l] - B[kk, p]) ** 2
                if gapk <= gap0:
                    continue
                hk = abs(th[k0] - th[kk])
                frac = min(gap0 / (gapk - gap0) * hk / abs(h), 1.0)
                bc = mid0 + (mid0 - 0.5 * (B[kk, l] + B[kk, p])) * frac * abs(h) / hk
            w = scale * I[k0, l] * 2.0 * frac * abs(h) * math.sin(th[k0] + 2.0 / 3.0 * frac * h)
            _line_ref(stick, x0, dx, min(B[k0, l], bc), max(B[k0, l], bc), w, W[k0, l], lwg, cw)
    return stick


def _loop_knots(th, tc, open_low=False):
    """A looping transition's two roots B = 300 + 10 theta +- 40 sqrt(theta_c - theta) mT, intensity
    1 / sqrt(theta_c - theta), for theta < theta_c (theta > theta_c with ``open_low``: the loop closes towards
    smaller theta); a third line, a plain branch, everywhere; NaN where a root is absent."""
    n = len(th)
    u = np.sqrt(np.clip(th - tc if open_low else tc - th, 0, None))
    ok = (th > tc) if open_low else (th < tc)
    B, I = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    B[ok, 0] = 300 + 10 * th[ok] + 40 * u[ok]
    B[ok, 1] = 300 + 10 * th[ok] - 40 * u[ok]
    I[ok, 0] = I[ok, 1] = 1 / u[ok]
    B[:, 2] = 330 + 20 * np.sin(th) ** 2
    I[:, 2] = 1.0
    return B, I, 0.2 + 0.1 * np.cos(th)[:, None] * np.ones((1, 3))


@pytest.mark.parametrize("n,open_low", [(11, False), (21, False), (41, False), (81, False), (13, True), (25, True)])
def test_axial_loop_closure_against_slow_ref_and_weight(n, open_low):
    """1-D binning of a looping transition that closes inside a cell: the kernel equals the slow reference
    (box and hat bins, one and three width classes; x0 keeps the plain branch's end, 350 mT, off a bin edge,
    where rounding picks the bin), and the weight of the two branches is within 3 % of the integral
    2 int sin(theta) / sqrt(theta_c - theta) dtheta over the loop (0.7-2.8 % at 11-81 knots; 18-33 % short
    when the closing cell is left out, as with no partner root)."""
    from scipy.integrate import quad
    th = np.linspace(0, np.pi / 2, n)
    tc = 0.62 if open_low else 1.0
    B, I, W = _loop_knots(th, tc, open_low)
    partner = np.array([1, 0, -1])
    for cw in (np.array([0.5]), 0.4 * 1.25 ** np.arange(3)):
        for dx in (-0.05, 0.05):
            stick = np.zeros((len(cw), 4000))
            kernels.powder_bin(B, I, W, partner, n, 1, th, np.zeros(1), 4, 250.0123, dx, 0.3, cw, 1.3, stick)
            ref = powder_bin_axial_ref(B, I, W, partner, th, 4, 250.0123, dx, 0.3, cw, 1.3, 4000)
            assert np.allclose(stick, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
    lim = (tc, np.pi / 2) if open_low else (0.0, tc)
    f = (lambda t: math.sin(t) / math.sqrt(t - tc)) if open_low else (lambda t: math.sin(t) / math.sqrt(tc - t))
    exact = 2 * quad(f, *lim)[0]
    loops = B.copy()
    loops[:, 2] = np.nan                           # the loop alone
    for part, bound in ((partner, 0.03), (np.full(3, -1), None)):
        stick = np.zeros((1, 4000))
        kernels.powder_bin(loops, I, W, part, n, 1, th, np.zeros(1), 4, 250.0, -0.05, 0.3, np.array([0.5]), 1.0,
                           stick)
        err = stick.sum() / exact - 1
        if bound is not None:
            assert abs(err) < bound, err
        else:
            assert err < -0.1, err


def test_axial_loop_on_one_knot_against_slow_ref():
    """A looping transition present at a single knot (a lens B = 400 +- 30 sqrt((theta - 0.42)(0.52 - theta))
    mT on 11 knots: only theta = 0.471 inside): both cells beside it close the loop with no knot beyond to fit
    the gap, so theta_c is mid-cell and the meeting field the pair's mid field; the kernel equals the slow
    reference and puts I h sin(theta_k +- h / 3) per branch and cell, 2 I h (sin(theta_k + h / 3) +
    sin(theta_k - h / 3)) in all, between the two roots."""
    n = 11
    th = np.linspace(0, np.pi / 2, n)
    u = np.sqrt(np.clip((th - 0.42) * (0.52 - th), 0, None))
    B, I = np.full((n, 2), np.nan), np.full((n, 2), np.nan)
    k = int(np.argmax(u))
    assert (u > 0).sum() == 1
    B[k] = 400 + 30 * u[k], 400 - 30 * u[k]
    I[k] = 1 / u[k]
    W = np.full((n, 2), 0.2)
    partner = np.array([1, 0])
    for dx in (-0.05, 0.05):
        stick = np.zeros((1, 4000))
        kernels.powder_bin(B, I, W, partner, n, 1, th, np.zeros(1), 4, 250.0123, dx, 0.3, np.array([0.5]), 1.0,
                           stick)
        ref = powder_bin_axial_ref(B, I, W, partner, th, 4, 250.0123, dx, 0.3, np.array([0.5]), 1.0, 4000)
        assert np.allclose(stick, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
    h = th[1] - th[0]
    expect = 2 * I[k, 0] * h * (math.sin(th[k] + h / 3) + math.sin(th[k] - h / 3))
    assert stick.sum() == pytest.approx(expect, rel=1e-9)
    lo, hi = np.nonzero(stick[0])[0][[0, -1]]
    assert 250.0123 + (lo - 1) * 0.05 <= B[k, 1] and 250.0123 + (hi + 1) * 0.05 >= B[k, 0]
