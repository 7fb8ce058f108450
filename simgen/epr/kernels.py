"""Numba kernels of the EPR simulator (arrays in, preallocated arrays filled in place).

Units: fields in mT, couplings and frequencies in MHz, ``BMAGN`` = mu_B/h in MHz/mT, ``NMAGN`` = mu_N/h in
MHz/mT.  Orientation knots are unit vectors ``nvec[k] = (sin t cos p, sin t sin p, cos t)`` of the static field in
the frame of the (collinear) g, A and D tensors.

Three stages, each checked against a slow NumPy version in ``tests/simgen/test_epr.py``:

1. resonance fields, intensities and extra (strain) widths at each knot, either
   ``s12_knots`` (S = 1/2, hyperfine to second order, closed form) or
   ``exact_knots`` (any S, one nucleus, full spin Hamiltonian diagonalised on a few field nodes per knot with
   Hermite-cubic interpolation of the level energies between nodes, using Hellmann-Feynman slopes; for S = 1/2
   at high field quintic Hermite with the second-order-perturbation curvatures on two nodes instead of three);
   real symmetric arithmetic when the field lies in the xz plane (axial systems), or
   ``hf_knots`` (S > 1/2 with one nucleus: the electron spin exactly, the hyperfine coupling to second order);
2. ``powder_bin``: interpolation of the knot values to a refined orientation grid (separable Catmull-Rom with
   tabulated weights, once per point of the refined lattice) and "box" binning of each refined cell's field
   range onto a stick spectrum, split over Gaussian-width classes (``width_classes``: geometric over the total
   widths of the lines present), the stick covering only the grid columns the lines reach (``field_window``);
3. line shape, harmonic, modulation and phase are applied by the caller in Fourier space (pocketfft; the few
   sticks of solution spectra by ``sparse_rfft``), or, for isotropic Gaussian lines without modulation, phase or
   Lorentzian, evaluated directly on the output grid (``gauss_direct``).

``s12_powder_plain`` runs stages 1 and 2 of an S = 1/2 centre without nuclei in one call (with ``width_classes``),
and ``fold_spectrum`` lets the caller transform back only the output points of an oversampled computation grid.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from scipy.constants import physical_constants

# mu_B / h and mu_N / h in MHz per mT (CODATA values of the installed SciPy); numba reads module globals as
# compile-time constants, so the kernels use these values directly
BMAGN = physical_constants["Bohr magneton in Hz/T"][0] * 1e-9
NMAGN = physical_constants["nuclear magneton in MHz/T"][0] * 1e-3


# --------------------------------------------------------------------------------------------- S = 1/2
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _s12_knots_plain(nvec, g, gstrain, cw, mw, outB, outI, outW):
    """``s12_knots`` without nuclei (one line, mw > 0): the same expressions with the hyperfine terms at their
    values X = 0, s1 = 0, wA2 = 0, as one loop over the knots without inner loops (vectorisable)."""
    g0, g1, g2 = g[0], g[1], g[2]
    s0, s1, s2 = gstrain[0], gstrain[1], gstrain[2]
    gg = g0 ** 2 + g1 ** 2 + g2 ** 2
    g04, g14, g24 = g0 ** 4, g1 ** 4, g2 ** 4
    y = 0.5 * (mw + math.sqrt(mw * mw - 0.0))
    for k in range(nvec.shape[0]):
        nx, ny, nz = nvec[k, 0], nvec[k, 1], nvec[k, 2]
        gx, gy, gz = g0 * nx, g1 * ny, g2 * nz
        geff = math.sqrt(gx * gx + gy * gy + gz * gz)
        P = 0.125 * (gg - (g04 * nx * nx + g14 * ny * ny + g24 * nz * nz) / (geff * geff))
        ax, ay, az = gx * s0, gy * s1, gz * s2
        dg = math.sqrt(ax * ax + ay * ay + az * az) / geff
        B = y / (geff * BMAGN)
        outB[k, 0] = B
        outI[k, 0] = cw * P / (geff * BMAGN)
        v = B * dg / geff
        outW[k, 0] = math.sqrt(v * v)


@numba.njit(cache=True, nogil=True)
def s12_knots(nvec, g, gstrain, A, Ival, mcomb, cweight, astrain, mw, outB, outI, outW):
    """S = 1/2 resonance fields to second order in the hyperfine couplings (coaxial diagonal g and A).

    nvec (K,3); g (3); gstrain (3) FWHM in g units; A (nn,3) MHz; Ival (nn); mcomb (L,nn) nuclear m of each
    line; cweight (L) weight of each line; astrain (nn) FWHM MHz of each A (broadening |m| * dA, uncorrelated);
    mw in MHz.  Fills outB (K,L) mT, outI (K,L) intensity (transition probability / (dnu/dB) * weight) and
    outW (K,L) extra Gaussian FWHM in mT.
    """
    K = nvec.shape[0]
    L = mcomb.shape[0]
    nn = A.shape[0]
    if nn == 0 and L == 1 and mw > 0.0:
        _s12_knots_plain(nvec, g, gstrain, cweight[0], mw, outB, outI, outW)
        return
    Kn = np.empty(nn)
    X0 = np.empty(nn)
    X1 = np.empty(nn)
    X2 = np.empty(nn)
    Astr = np.empty(nn)
    for k in range(K):
        nx, ny, nz = nvec[k, 0], nvec[k, 1], nvec[k, 2]
        gx, gy, gz = g[0] * nx, g[1] * ny, g[2] * nz
        geff = math.sqrt(gx * gx + gy * gy + gz * gz)
        ux = uy = uz = 0.0
        if nn > 0:               # the field direction in the g frame, for the hyperfine terms only
            ux, uy, uz = gx / geff, gy / geff, gz / geff
        # perpendicular-mode transition probability averaged over B1 normal to B0
        P = 0.125 * (g[0] ** 2 + g[1] ** 2 + g[2] ** 2
                     - (g[0] ** 4 * nx * nx + g[1] ** 4 * ny * ny + g[2] ** 4 * nz * nz) / (geff * geff))
        dg = math.sqrt((gx * gstrain[0]) ** 2 + (gy * gstrain[1]) ** 2 + (gz * gstrain[2]) ** 2) / geff
        for j in range(nn):
            ax, ay, az = A[j, 0], A[j, 1], A[j, 2]
            K2 = (ax * ux) ** 2 + (ay * uy) ** 2 + (az * uz) ** 2
            Kj = math.sqrt(K2)
            Kn[j] = Kj
            trA2 = ax * ax + ay * ay + az * az
            if Kj > 1e-12:
                A2u2 = (ax * ax * ux) ** 2 + (ay * ay * uy) ** 2 + (az * az * uz) ** 2
                ck2 = A2u2 / K2 - K2
            else:
                ck2 = 0.0
            c2 = trA2 - K2
            II = Ival[j] * (Ival[j] + 1.0)
            # X(m) = (II - m^2)(c2 - ck2) + 2 m^2 ck2 = X0 + m^2 X2
            X0[j] = II * (c2 - ck2)
            X2[j] = 2.0 * ck2 - (c2 - ck2)
            X1[j] = 0.0
            Astr[j] = astrain[j]
        for l in range(L):
            s1 = 0.0
            X = 0.0
            wA2 = 0.0
            for j in range(nn):
                m = mcomb[l, j]
                s1 += Kn[j] * m
                X += X0[j] + X2[j] * m * m
                wA2 += (m * Astr[j]) ** 2
            a = mw - s1
            disc = a * a - X
            if disc < 0.0 or a <= 0.0:
                outB[k, l] = np.nan
                outI[k, l] = 0.0
                outW[k, l] = 0.0
                continue
            y = 0.5 * (a + math.sqrt(disc))  # y = geff * BMAGN * B (MHz)
            B = y / (geff * BMAGN)
            dnudB = geff * BMAGN * (1.0 - X / (4.0 * y * y)) if X != 0.0 else geff * BMAGN
            outB[k, l] = B
            outI[k, l] = cweight[l] * P / dnudB
            outW[k, l] = math.sqrt((B * dg / geff) ** 2 + wA2 / (geff * BMAGN) ** 2)


# --------------------------------------------------------------------------------------------- exact
@numba.njit(cache=True, nogil=True)
def _spin_tables(S, I):
    """ms, mI of each product-basis state and the S+ / I+ matrix elements out of it (to state index +/-)."""
    nS = int(round(2 * S + 1))
    nI = int(round(2 * I + 1))
    N = nS * nI
    ms = np.empty(N)
    mi = np.empty(N)
    for a in range(nS):
        for b in range(nI):
            ms[a * nI + b] = S - a
            mi[a * nI + b] = I - b
    return ms, mi, nS, nI, N


@numba.njit(cache=True, nogil=True)
def build_ops(S, I, g, A, gn, D, E):
    """Dense H0 (field independent, MHz) and the three Zeeman operators per mT (x, y, z lab = tensor frame).

    Returns H0 (N,N) complex, Gx, Gy, Gz (N,N) complex (MHz/mT) and the electron-spin operators
    gSx, gSy, gSz (N,N) complex weighted by g (for the transition moments).
    """
    ms, mi, nS, nI, N = _spin_tables(S, I)
    Sx = np.zeros((N, N), np.complex128)
    Sy = np.zeros((N, N), np.complex128)
    Sz = np.zeros((N, N), np.complex128)
    Ix = np.zeros((N, N), np.complex128)
    Iy = np.zeros((N, N), np.complex128)
    Iz = np.zeros((N, N), np.complex128)
    for p in range(N):
        Sz[p, p] = ms[p]
        Iz[p, p] = mi[p]
        # S+ : ms -> ms+1 is index p - nI
        if ms[p] < S - 0.1:
            q = p - nI
            c = math.sqrt(S * (S + 1) - ms[p] * (ms[p] + 1))
            Sx[q, p] += 0.5 * c
            Sx[p, q] += 0.5 * c
            Sy[q, p] += -0.5j * c
            Sy[p, q] += 0.5j * c
        if mi[p] < I - 0.1:
            q = p - 1
            c = math.sqrt(I * (I + 1) - mi[p] * (mi[p] + 1))
            Ix[q, p] += 0.5 * c
            Ix[p, q] += 0.5 * c
            Iy[q, p] += -0.5j * c
            Iy[p, q] += 0.5j * c
    # products of electron and nuclear operators are Kronecker products of the small spin matrices
    sx = np.zeros((nS, nS), np.complex128)
    sy = np.zeros((nS, nS), np.complex128)
    sz = np.zeros((nS, nS), np.complex128)
    for a in range(nS):
        sz[a, a] = S - a
        if a > 0:   # <a-1| S+ |a>
            m = S - a
            c = math.sqrt(S * (S + 1) - m * (m + 1))
            sx[a - 1, a] = 0.5 * c
            sx[a, a - 1] = 0.5 * c
            sy[a - 1, a] = -0.5j * c
            sy[a, a - 1] = 0.5j * c
    ix = np.zeros((nI, nI), np.complex128)
    iy = np.zeros((nI, nI), np.complex128)
    iz = np.zeros((nI, nI), np.complex128)
    for b in range(nI):
        iz[b, b] = I - b
        if b > 0:
            m = I - b
            c = math.sqrt(I * (I + 1) - m * (m + 1))
            ix[b - 1, b] = 0.5 * c
            ix[b, b - 1] = 0.5 * c
            iy[b - 1, b] = -0.5j * c
            iy[b, b - 1] = 0.5j * c
    eI = np.eye(nI).astype(np.complex128)
    zfs = D * (sz @ sz - S * (S + 1) / 3.0 * np.eye(nS)) + E * (sx @ sx - sy @ sy)
    H0 = (np.kron(zfs, eI) + A[0] * np.kron(sx, ix) + A[1] * np.kron(sy, iy) + A[2] * np.kron(sz, iz))
    Gx = BMAGN * g[0] * Sx - gn * NMAGN * Ix
    Gy = BMAGN * g[1] * Sy - gn * NMAGN * Iy
    Gz = BMAGN * g[2] * Sz - gn * NMAGN * Iz
    return H0, Gx, Gy, Gz, g[0] * Sx, g[1] * Sy, g[2] * Sz


@numba.njit(cache=True, nogil=True)
def _hermite5_root(x0, x1, f0, f1, d0, d1, c0, c1):
    """Root in [x0, x1] of the quintic Hermite interpolant of f (values, slopes d, curvatures c at both ends);
    f0 * f1 <= 0.  Returns (x, t, slope) like ``_hermite_root``."""
    h = x1 - x0
    hd0, hd1 = h * d0, h * d1
    hc0, hc1 = h * h * c0, h * h * c1
    a0 = f0
    a1 = hd0
    a2 = 0.5 * hc0
    a3 = -10.0 * f0 - 6.0 * hd0 - 1.5 * hc0 + 0.5 * hc1 - 4.0 * hd1 + 10.0 * f1
    a4 = 15.0 * f0 + 8.0 * hd0 + 1.5 * hc0 - hc1 + 7.0 * hd1 - 15.0 * f1
    a5 = -6.0 * f0 - 3.0 * hd0 - 0.5 * hc0 + 0.5 * hc1 - 3.0 * hd1 + 6.0 * f1
    lo, hi = 0.0, 1.0
    flo = f0
    t = f0 / (f0 - f1) if f0 != f1 else 0.5
    for _ in range(50):
        f = a0 + t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
        df = a1 + t * (2.0 * a2 + t * (3.0 * a3 + t * (4.0 * a4 + t * 5.0 * a5)))
        if (f < 0) == (flo < 0):
            lo, flo = t, f
        else:
            hi = t
        if abs(f) < 1e-10:
            break
        tn = t - f / df if df != 0 else 0.5 * (lo + hi)
        if tn <= lo or tn >= hi:
            tn = 0.5 * (lo + hi)
        if abs(tn - t) < 1e-13:
            t = tn
            break
        t = tn
    slope = (a1 + t * (2.0 * a2 + t * (3.0 * a3 + t * (4.0 * a4 + t * 5.0 * a5)))) / h
    return x0 + t * h, t, slope


@numba.njit(cache=True, nogil=True)
def _hermite_root(x0, x1, f0, f1, d0, d1):
    """Root in [x0, x1] of the cubic Hermite interpolant of f (values f0, f1, slopes d0, d1); f0*f1 <= 0."""
    h = x1 - x0
    # bracketed Newton/bisection on t in [0, 1]
    lo, hi = 0.0, 1.0
    flo = f0
    t = f0 / (f0 - f1) if f0 != f1 else 0.5
    for _ in range(40):
        t2 = t * t
        t3 = t2 * t
        h00 = 2 * t3 - 3 * t2 + 1
        h10 = t3 - 2 * t2 + t
        h01 = -2 * t3 + 3 * t2
        h11 = t3 - t2
        f = h00 * f0 + h10 * h * d0 + h01 * f1 + h11 * h * d1
        df = ((6 * t2 - 6 * t) * f0 + (3 * t2 - 4 * t + 1) * h * d0 + (-6 * t2 + 6 * t) * f1
              + (3 * t2 - 2 * t) * h * d1)
        if (f < 0) == (flo < 0):
            lo, flo = t, f
        else:
            hi = t
        if abs(f) < 1e-10:
            break
        tn = t - f / df if df != 0 else 0.5 * (lo + hi)
        if tn <= lo or tn >= hi:
            tn = 0.5 * (lo + hi)
        if abs(tn - t) < 1e-13:
            t = tn
            break
        t = tn
    t2 = t * t
    slope = ((6 * t2 - 6 * t) * f0 + (3 * t2 - 4 * t + 1) * h * d0 + (-6 * t2 + 6 * t) * f1
             + (3 * t2 - 2 * t) * h * d1) / h
    return x0 + t * h, t, slope


# ------------------------------------------------------------------------ small symmetric eigenproblems
# LAPACK through numba (dsyev/dsyevd) spends ~20-25 us on a 16 x 16 matrix, mostly in blocking and call overhead;
# this unblocked Householder + QL routine, with all inner loops along rows, takes ~8 us and writes into
# caller-owned arrays.  Checked against numpy.linalg.eigh in tests/simgen/test_epr.py.
@numba.njit(cache=True, nogil=True)
def sym_eigh_rows(A, w, Zs, e):
    """Eigen-decomposition of the real symmetric A (n x n): eigenvalues ascending in w, the orthonormal
    eigenvectors as the ROWS of Zs (Zs[a] belongs to w[a]); e (n) is scratch.  Householder reduction to
    tridiagonal form with accumulated transformations, then implicit QL with Wilkinson-like shifts."""
    n = A.shape[0]
    Z = Zs
    for i in range(n):
        for j in range(n):
            Z[i, j] = A[j, i]
    d = w
    for j in range(n):
        d[j] = Z[j, n - 1]
    # --- Householder tridiagonalisation (row i eliminated against rows 0..i-1)
    for i in range(n - 1, 0, -1):
        scale = 0.0
        h = 0.0
        for k in range(i):
            scale += abs(d[k])
        if scale == 0.0:
            e[i] = d[i - 1]
            for j in range(i):
                d[j] = Z[j, i - 1]
                Z[j, i] = 0.0
                Z[i, j] = 0.0
        else:
            for k in range(i):
                d[k] /= scale
                h += d[k] * d[k]
            f = d[i - 1]
            g = math.sqrt(h)
            if f > 0.0:
                g = -g
            e[i] = scale * g
            h -= f * g
            d[i - 1] = f - g
            for j in range(i):
                e[j] = 0.0
            for j in range(i):
                f = d[j]
                Z[i, j] = f
                g = e[j] + Z[j, j] * f
                for k in range(j + 1, i):
                    g += Z[j, k] * d[k]
                    e[k] += Z[j, k] * f
                e[j] = g
            f = 0.0
            for j in range(i):
                e[j] /= h
                f += e[j] * d[j]
            hh = f / (h + h)
            for j in range(i):
                e[j] -= hh * d[j]
            for j in range(i):
                f = d[j]
                g = e[j]
                for k in range(j, i):
                    Z[j, k] -= f * e[k] + g * d[k]
                d[j] = Z[j, i - 1]
                Z[j, i] = 0.0
        d[i] = h
    # --- accumulate the transformations
    for i in range(n - 1):
        Z[i, n - 1] = Z[i, i]
        Z[i, i] = 1.0
        h = d[i + 1]
        if h != 0.0:
            for k in range(i + 1):
                d[k] = Z[i + 1, k] / h
            for j in range(i + 1):
                g = 0.0
                for k in range(i + 1):
                    g += Z[i + 1, k] * Z[j, k]
                for k in range(i + 1):
                    Z[j, k] -= g * d[k]
        for k in range(i + 1):
            Z[i + 1, k] = 0.0
    for j in range(n):
        d[j] = Z[j, n - 1]
        Z[j, n - 1] = 0.0
    Z[n - 1, n - 1] = 1.0
    e[0] = 0.0
    _ql_rows(d, e, Z)


@numba.njit(cache=True, nogil=True)
def _ql_rows(d, e, Z):
    """Implicit QL with shifts on the symmetric tridiagonal matrix with diagonal d and sub-diagonal e[1:]
    (e[i] couples i - 1 and i; e[0] unused).  The rotations are applied to the rows of Z (contiguous in
    memory), so with Z = Q^T on entry, row a of Z is the eigenvector of Q T Q^T for d[a] on exit; d ascending."""
    n = d.shape[0]
    for i in range(1, n):
        e[i - 1] = e[i]
    e[n - 1] = 0.0
    f = 0.0
    tst1 = 0.0
    eps = 2.220446049250313e-16
    for l in range(n):
        tst1 = max(tst1, abs(d[l]) + abs(e[l]))
        m = l
        while m < n - 1:
            if abs(e[m]) <= eps * tst1:
                break
            m += 1
        if m > l:
            for _it in range(60):
                g = d[l]
                p = (d[l + 1] - g) / (2.0 * e[l])
                r = math.sqrt(p * p + 1.0)
                if p < 0.0:
                    r = -r
                d[l] = e[l] / (p + r)
                d[l + 1] = e[l] * (p + r)
                dl1 = d[l + 1]
                h = g - d[l]
                for i in range(l + 2, n):
                    d[i] -= h
                f += h
                p = d[m]
                c = 1.0
                c2 = 1.0
                c3 = 1.0
                el1 = e[l + 1]
                s = 0.0
                s2 = 0.0
                for i in range(m - 1, l - 1, -1):
                    c3 = c2
                    c2 = c
                    s2 = s
                    g = c * e[i]
                    h = c * p
                    r = math.sqrt(p * p + e[i] * e[i])
                    e[i + 1] = s * r
                    s = e[i] / r
                    c = p / r
                    p = c * d[i] - s * g
                    d[i + 1] = h + s * (c * g + s * d[i])
                    for k in range(n):
                        h = Z[i + 1, k]
                        Z[i + 1, k] = s * Z[i, k] + c * h
                        Z[i, k] = c * Z[i, k] - s * h
                p = -s * s2 * c3 * el1 * e[l] / dl1
                e[l] = s * p
                d[l] = c * p
                if abs(e[l]) <= eps * tst1:
                    break
        d[l] += f
        e[l] = 0.0
    # --- ascending order
    for i in range(n - 1):
        k = i
        p = d[i]
        for j in range(i + 1, n):
            if d[j] < p:
                k = j
                p = d[j]
        if k != i:
            d[k] = d[i]
            d[i] = p
            for j in range(n):
                t = Z[i, j]
                Z[i, j] = Z[k, j]
                Z[k, j] = t


@numba.njit(cache=True, nogil=True)
def herm_eigh(A, w, V, e, Q, Z, u, pv):
    """Eigen-decomposition of the complex Hermitian A (n x n): eigenvalues ascending in w, orthonormal
    eigenvectors as the COLUMNS of V (as numpy.linalg.eigh).  Scratch (caller-owned, no allocation per call):
    e (n, float), Q (n x n, complex), Z (n x n, float), u and pv (n, complex).  Householder reflections bring A to tridiagonal form Q^H A Q; a diagonal unitary D
    makes its sub-diagonal real and positive; QL on that real tridiagonal gives its eigenvectors y (rows of
    Z) and the eigenvectors of A are Q D y.  LAPACK's zheevd takes ~5 us on 6 x 6 through numba, this ~2 us."""
    n = A.shape[0]
    T = V  # the working copy of A lives in V until the end
    for i in range(n):
        for j in range(n):
            T[i, j] = A[i, j]
            Q[i, j] = 1.0 if i == j else 0.0
    for k in range(n - 2):
        alpha = 0.0
        for i in range(k + 1, n):
            alpha += T[i, k].real ** 2 + T[i, k].imag ** 2
        alpha = math.sqrt(alpha)
        if alpha == 0.0:
            continue
        x0 = T[k + 1, k]
        ax0 = abs(x0)
        ph = x0 / ax0 if ax0 > 0.0 else 1.0 + 0.0j
        # reflector H = I - beta u u^H with u = x + ph |x| e1 maps x onto -ph |x| e1
        for i in range(k + 1, n):
            u[i] = T[i, k]
        u[k + 1] += ph * alpha
        un = 0.0
        for i in range(k + 1, n):
            un += u[i].real ** 2 + u[i].imag ** 2
        beta = 2.0 / un
        # trailing block: A <- A - q u^H - u q^H with p = beta A u, q = p - (beta/2)(u^H p) u
        for i in range(k + 1, n):
            s = 0.0 + 0.0j
            for j in range(k + 1, n):
                s += T[i, j] * u[j]
            pv[i] = beta * s
        kk = 0.0 + 0.0j
        for i in range(k + 1, n):
            kk += u[i].conjugate() * pv[i]
        kk *= 0.5 * beta
        for i in range(k + 1, n):
            pv[i] -= kk * u[i]
        for i in range(k + 1, n):
            for j in range(k + 1, n):
                T[i, j] -= pv[i] * u[j].conjugate() + u[i] * pv[j].conjugate()
        T[k + 1, k] = -ph * alpha
        T[k, k + 1] = -ph.conjugate() * alpha
        for i in range(k + 2, n):
            T[i, k] = 0.0
            T[k, i] = 0.0
        # Q <- Q H
        for i in range(n):
            s = 0.0 + 0.0j
            for j in range(k + 1, n):
                s += Q[i, j] * u[j]
            s *= beta
            for j in range(k + 1, n):
                Q[i, j] -= s * u[j].conjugate()
    # real tridiagonal D^H T D: diagonal T[i, i].real, sub-diagonal |T[i, i-1]|; D folded into Q
    dlt = 1.0 + 0.0j
    for i in range(n):
        w[i] = T[i, i].real
        if i > 0:
            c = T[i, i - 1]
            ac = abs(c)
            e[i] = ac
            if ac > 0.0:
                dlt = dlt * (c / ac)
            for r in range(n):
                Q[r, i] *= dlt
        else:
            e[0] = 0.0
        for j in range(n):
            Z[i, j] = 1.0 if i == j else 0.0
    _ql_rows(w, e, Z)
    for r in range(n):
        for a in range(n):
            s = 0.0 + 0.0j
            for j in range(n):
                s += Q[r, j] * Z[a, j]
            V[r, a] = s


@numba.njit(cache=True, nogil=True)
def _trans_prob(V, a, b, ms, spc, nI, g, nx, ny, nz):
    """0.5 (|M|^2 - |n.M|^2) with M = <a| (g_x Sx, g_y Sy, g_z Sz) |b> (columns of V are the states)."""
    N = V.shape[0]
    sp_ab = 0.0 + 0.0j  # <a|S+|b>
    sp_ba = 0.0 + 0.0j  # <b|S+|a>
    sz = 0.0 + 0.0j
    for p in range(N):
        sz += V[p, a].conjugate() * ms[p] * V[p, b]
        if spc[p] != 0.0:
            q = p - nI
            sp_ab += V[q, a].conjugate() * spc[p] * V[p, b]
            sp_ba += V[q, b].conjugate() * spc[p] * V[p, a]
    sm_ab = sp_ba.conjugate()
    mx = g[0] * 0.5 * (sp_ab + sm_ab)
    my = g[1] * (-0.5j) * (sp_ab - sm_ab)
    mz = g[2] * sz
    tot = abs(mx) ** 2 + abs(my) ** 2 + abs(mz) ** 2
    par = abs(nx * mx + ny * my + nz * mz) ** 2
    return 0.5 * (tot - par)


@numba.njit(cache=True, nogil=True)
def _trans_prob_real(Z, a, b, ms, spc, nI, g, nx, nz):
    """``_trans_prob`` for real eigenvectors stored as the ROWS of Z and the field in the xz plane (ny = 0)."""
    N = Z.shape[0]
    sp_ab = 0.0
    sp_ba = 0.0
    sz = 0.0
    for p in range(N):
        sz += Z[a, p] * ms[p] * Z[b, p]
        if spc[p] != 0.0:
            q = p - nI
            sp_ab += Z[a, q] * spc[p] * Z[b, p]
            sp_ba += Z[b, q] * spc[p] * Z[a, p]
    mx = g[0] * 0.5 * (sp_ab + sp_ba)
    my = g[1] * 0.5 * (sp_ab - sp_ba)     # |<a|g_y Sy|b>| (the element is imaginary)
    mz = g[2] * sz
    tot = mx * mx + my * my + mz * mz
    par = (nx * mx + nz * mz) ** 2
    return 0.5 * (tot - par)


@numba.njit(cache=True, nogil=True)
def _basis_tables(S, I, N):
    """ms, mI of each product-basis state and the raising-operator elements <p - nI| S+ |p>, <p - 1| I+ |p>."""
    nI = int(round(2 * I + 1))
    ms = np.empty(N)
    mi = np.empty(N)
    spc = np.zeros(N)
    ipc = np.zeros(N)
    for p in range(N):
        ms[p] = S - (p // nI)
        mi[p] = I - (p % nI)
        if ms[p] < S - 0.1:
            spc[p] = math.sqrt(S * (S + 1) - ms[p] * (ms[p] + 1))
        if mi[p] < I - 0.1:
            ipc[p] = math.sqrt(I * (I + 1) - mi[p] * (mi[p] + 1))
    return ms, mi, spc, ipc, nI


@numba.njit(cache=True, nogil=True)
def _levels_real(m, Bm, nx, nz, H0r, Gxr, Gzr, cSz, cIz, cSpr, cIpr, ms, mi, spc, ipc, nI, quintic,
                 Hr, w, scratch, Vr, T, E, dE, d2E):
    """Levels at field node m for a field in the xz plane (real symmetric H): energies E[m], Hellmann-Feynman
    slopes dE[m] and, when ``quintic``, second-order curvatures d2E[m]; eigenvectors as the rows of Vr."""
    N = Hr.shape[0]
    bx = Bm * nx
    bz = Bm * nz
    for i in range(N):
        for j in range(N):
            Hr[i, j] = H0r[i, j] + bx * Gxr[i, j] + bz * Gzr[i, j]
    sym_eigh_rows(Hr, w, Vr, scratch)
    if not quintic:
        for a in range(N):
            E[m, a] = w[a]
            s = 0.0
            for p in range(N):
                vp = Vr[a, p]
                s += (cSz * ms[p] + cIz * mi[p]) * vp * vp
                if spc[p] != 0.0:
                    s += 2.0 * cSpr * spc[p] * Vr[a, p - nI] * vp
                if ipc[p] != 0.0:
                    s += 2.0 * cIpr * ipc[p] * Vr[a, p - 1] * vp
            dE[m, a] = s
        return
    # slopes <a|G|a> and curvatures 2 sum_b <a|G|b>^2 / (E_a - E_b): T = (G V)^T by the sparse structure of
    # the spin operators, then the upper triangle of V^T T
    for b in range(N):
        for q in range(N):
            T[b, q] = (cSz * ms[q] + cIz * mi[q]) * Vr[b, q]
        for q in range(N):
            if spc[q] != 0.0:
                cq = cSpr * spc[q]
                T[b, q - nI] += cq * Vr[b, q]
                T[b, q] += cq * Vr[b, q - nI]
            if ipc[q] != 0.0:
                cq = cIpr * ipc[q]
                T[b, q - 1] += cq * Vr[b, q]
                T[b, q] += cq * Vr[b, q - 1]
    for a in range(N):
        E[m, a] = w[a]
        d2E[m, a] = 0.0
    for a in range(N):
        acc = 0.0
        for q in range(N):
            acc += Vr[a, q] * T[a, q]
        dE[m, a] = acc
        for b in range(a + 1, N):
            de = w[a] - w[b]
            if de == 0.0:
                continue
            gab = 0.0
            for q in range(N):
                gab += Vr[a, q] * T[b, q]
            t2 = 2.0 * gab * gab / de
            d2E[m, a] += t2
            d2E[m, b] -= t2


@numba.njit(cache=True, nogil=True)
def _levels_complex(m, Bm, nx, ny, nz, H0, Gx, Gy, Gz, cSz, cIz, cSp, cIp, ms, mi, spc, ipc, nI, quintic,
                    H, w, V, scratch, Qc, Zr, uc, pc, Gc, E, dE, d2E):
    """``_levels_real`` for any field direction (complex Hermitian H = H0 + Bm Gc, Gc = nx Gx + ny Gy + nz Gz
    filled by the caller); eigenvectors as the columns of V."""
    N = H.shape[0]
    # Gc = nx Gx + ny Gy + nz Gz (the Zeeman operator along n), filled by the caller once per knot
    for i in range(N):
        for j in range(N):
            H[i, j] = H0[i, j] + Bm * Gc[i, j]
    if N <= 24:
        herm_eigh(H, w, V, scratch, Qc, Zr, uc, pc)
    else:                                 # LAPACK is faster on the large (S = 5/2, I = 5/2) problems
        w2, V2 = np.linalg.eigh(H)
        w[:] = w2
        V[:, :] = V2
    for a in range(N):
        E[m, a] = w[a]
        # <a|G|a> by the sparse structure of the spin operators
        s = 0.0
        for p in range(N):
            vp = V[p, a]
            ap = abs(vp) ** 2
            s += cSz * ms[p] * ap + cIz * mi[p] * ap
            if spc[p] != 0.0:
                s += 2.0 * (cSp * spc[p] * V[p - nI, a].conjugate() * vp).real
            if ipc[p] != 0.0:
                s += 2.0 * (cIp * ipc[p] * V[p - 1, a].conjugate() * vp).real
        dE[m, a] = s
    if quintic:
        # curvatures 2 sum_b |<a|Gc|b>|^2 / (E_a - E_b): Qc = Gc V (Qc is herm_eigh's scratch, free again here)
        for p in range(N):
            for b in range(N):
                z = 0.0 + 0.0j
                for q in range(N):
                    z += Gc[p, q] * V[q, b]
                Qc[p, b] = z
        for a in range(N):
            d2E[m, a] = 0.0
        for a in range(N):
            for b in range(a + 1, N):
                de = w[a] - w[b]
                if de == 0.0:
                    continue
                z = 0.0 + 0.0j
                for p in range(N):
                    z += V[p, a].conjugate() * Qc[p, b]
                t2 = 2.0 * (z.real * z.real + z.imag * z.imag) / de
                d2E[m, a] += t2
                d2E[m, b] -= t2


@numba.njit(cache=True, nogil=True)
def _node_prob(real, Vs, VsR, m, a, b, ms, spc, nI, g, nx, ny, nz):
    """Transition probability of levels a < b at field node m."""
    if real:
        return _trans_prob_real(VsR[m], a, b, ms, spc, nI, g, nx, nz)
    return _trans_prob(Vs[m], a, b, ms, spc, nI, g, nx, ny, nz)


@numba.njit(cache=True, nogil=True)
def _roots_screened(k, E, dE, d2E, Bnodes, mw, R, rel_threshold, real, Vs, VsR, ms, spc, nI, g, nx, ny, nz,
                    bw, ca, cb, cm, cpair, cp0, cp1, outB, outI, outW):
    """Resonances of knot k by quintic Hermite roots (S = 1/2, high field): the transition probabilities at the
    nodes first, and crossings whose probability stays below rel_threshold / 10 of the strongest are dropped
    before the root search (their lines would fall below rel_threshold anyway).  bw = dg / geff (strain).
    Returns the strongest intensity."""
    N = E.shape[1]
    M = E.shape[0]
    nc = 0
    pmx = 0.0
    pair = 0
    for a in range(N):
        for b in range(a + 1, N):
            for m in range(M - 1):
                f0 = E[m, b] - E[m, a] - mw
                f1 = E[m + 1, b] - E[m + 1, a] - mw
                if (f0 <= 0.0 and f1 > 0.0) or (f0 >= 0.0 and f1 < 0.0):
                    p0 = _node_prob(real, Vs, VsR, m, a, b, ms, spc, nI, g, nx, ny, nz)
                    p1 = _node_prob(real, Vs, VsR, m + 1, a, b, ms, spc, nI, g, nx, ny, nz)
                    ca[nc] = a
                    cb[nc] = b
                    cm[nc] = m
                    cpair[nc] = pair
                    cp0[nc] = p0
                    cp1[nc] = p1
                    nc += 1
                    pmx = max(pmx, p0, p1)
            pair += 1
    pmax = 0.0
    lastpair = -1
    r = 0
    for c in range(nc):
        if cpair[c] != lastpair:
            lastpair = cpair[c]
            r = 0
        if r >= R or max(cp0[c], cp1[c]) < 0.1 * rel_threshold * pmx:
            continue
        a, b, m = ca[c], cb[c], cm[c]
        f0 = E[m, b] - E[m, a] - mw
        f1 = E[m + 1, b] - E[m + 1, a] - mw
        Br, t, sl = _hermite5_root(Bnodes[m], Bnodes[m + 1], f0, f1, dE[m, b] - dE[m, a],
                                   dE[m + 1, b] - dE[m + 1, a], d2E[m, b] - d2E[m, a],
                                   d2E[m + 1, b] - d2E[m + 1, a])
        if sl != 0.0:
            idx = cpair[c] * R + r
            val = ((1.0 - t) * cp0[c] + t * cp1[c]) / abs(sl)
            outB[k, idx] = Br
            outI[k, idx] = val
            outW[k, idx] = Br * bw
            if val > pmax:
                pmax = val
            r += 1
    return pmax


@numba.njit(cache=True, nogil=True)
def _poly3_root(a0, a1, a2, a3, lo, hi):
    """Root in [lo, hi] of a0 + a1 t + a2 t^2 + a3 t^3 (a sign change between lo and hi): bracketed Newton."""
    flo = a0 + lo * (a1 + lo * (a2 + lo * a3))
    t = 0.5 * (lo + hi)
    for _ in range(60):
        f = a0 + t * (a1 + t * (a2 + t * a3))
        df = a1 + t * (2.0 * a2 + t * 3.0 * a3)
        if (f < 0) == (flo < 0):
            lo, flo = t, f
        else:
            hi = t
        if abs(f) < 1e-10:
            break
        tn = t - f / df if df != 0 else 0.5 * (lo + hi)
        if tn <= lo or tn >= hi:
            tn = 0.5 * (lo + hi)
        if abs(tn - t) < 1e-13:
            t = tn
            break
        t = tn
    return t


@numba.njit(cache=True, nogil=True)
def _hermite_dip(x0, x1, f0, f1, d0, d1):
    """The two roots in [x0, x1] of the cubic Hermite interpolant of f when f0 and f1 have the same sign but the
    interpolant crosses zero in between (a looping transition opening and closing between two nodes).
    Returns (found, xa, ta, slope_a, xb, tb, slope_b)."""
    h = x1 - x0
    a0 = f0
    a1 = h * d0
    a2 = -3.0 * f0 - 2.0 * h * d0 + 3.0 * f1 - h * d1
    a3 = 2.0 * f0 + h * d0 - 2.0 * f1 + h * d1
    # critical points: a1 + 2 a2 t + 3 a3 t^2 = 0
    tc = -1.0
    if a3 != 0.0:
        disc = a2 * a2 - 3.0 * a3 * a1
        if disc >= 0.0:
            sq = math.sqrt(disc)
            for tt in ((-a2 - sq) / (3.0 * a3), (-a2 + sq) / (3.0 * a3)):
                if 0.0 < tt < 1.0:
                    fc = a0 + tt * (a1 + tt * (a2 + tt * a3))
                    if (fc < 0.0) != (f0 < 0.0) and fc != 0.0:
                        tc = tt
    elif a2 != 0.0:
        tt = -a1 / (2.0 * a2)
        if 0.0 < tt < 1.0:
            fc = a0 + tt * (a1 + tt * a2)
            if (fc < 0.0) != (f0 < 0.0) and fc != 0.0:
                tc = tt
    if tc < 0.0:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    ta = _poly3_root(a0, a1, a2, a3, 0.0, tc)
    tb = _poly3_root(a0, a1, a2, a3, tc, 1.0)
    sa = (a1 + ta * (2.0 * a2 + ta * 3.0 * a3)) / h
    sb = (a1 + tb * (2.0 * a2 + tb * 3.0 * a3)) / h
    return True, x0 + ta * h, ta, sa, x0 + tb * h, tb, sb


@numba.njit(cache=True, nogil=True)
def _root_slot(taken, sl, R):
    """Slot (0 .. R - 1) of a resonance with slope ``sl`` (d(E_b - E_a - mw)/dB) among its level pair's R slots,
    ``taken`` the bit mask of the slots already filled at this knot; -1 when none is left.  R = 2 (looping
    transitions): slot 0 for a rising crossing, 1 for a falling one, so a branch keeps its slot from knot to
    knot when the loop's other root lies outside the field range (filled in field order, a branch moved to
    slot 0 when its partner left at low field: the binning joined two branches across a cell); R != 2: the
    next free slot in field order."""
    if R == 2:
        q = 0 if sl > 0.0 else 1
        return -1 if taken & (1 << q) else q
    for q in range(R):
        if not taken & (1 << q):
            return q
    return -1


@numba.njit(cache=True, nogil=True)
def _roots_all(k, E, dE, d2E, Bnodes, mw, R, quintic, real, Vs, VsR, ms, spc, nI, g, nx, ny, nz, bw,
               outB, outI, outW, dips=False):
    """Resonances of knot k: for each level pair, up to R sign changes of E_b - E_a - mw between nodes, each
    located on the Hermite interpolant (cubic, quintic with curvatures); with ``dips`` (cubic only) also the
    two roots of an interval whose cubic interpolant crosses zero and back between same-sign ends (a looping
    transition inside one interval).  The transition probability is interpolated linearly between the nodes.
    Returns the strongest intensity."""
    N = E.shape[1]
    M = E.shape[0]
    full = (1 << R) - 1
    pmax = 0.0
    pair = 0
    for a in range(N):
        for b in range(a + 1, N):
            taken = 0
            for m in range(M - 1):
                if taken == full:
                    break
                f0 = E[m, b] - E[m, a] - mw
                f1 = E[m + 1, b] - E[m + 1, a] - mw
                if (f0 <= 0.0 and f1 > 0.0) or (f0 >= 0.0 and f1 < 0.0):
                    d0 = dE[m, b] - dE[m, a]
                    d1 = dE[m + 1, b] - dE[m + 1, a]
                    if quintic:
                        Br, t, sl = _hermite5_root(Bnodes[m], Bnodes[m + 1], f0, f1, d0, d1,
                                                   d2E[m, b] - d2E[m, a], d2E[m + 1, b] - d2E[m + 1, a])
                    else:
                        Br, t, sl = _hermite_root(Bnodes[m], Bnodes[m + 1], f0, f1, d0, d1)
                    P = ((1.0 - t) * _node_prob(real, Vs, VsR, m, a, b, ms, spc, nI, g, nx, ny, nz)
                         + t * _node_prob(real, Vs, VsR, m + 1, a, b, ms, spc, nI, g, nx, ny, nz))
                    q = _root_slot(taken, sl, R) if sl != 0.0 else -1
                    if q >= 0:
                        idx = pair * R + q
                        val = P / abs(sl)
                        outB[k, idx] = Br
                        outI[k, idx] = val
                        outW[k, idx] = Br * bw
                        if val > pmax:
                            pmax = val
                        taken |= 1 << q
                elif dips and f0 != 0.0 and f1 != 0.0:
                    d0 = dE[m, b] - dE[m, a]
                    d1 = dE[m + 1, b] - dE[m + 1, a]
                    # only where the slopes point towards zero at both ends (cheap test before the cubic)
                    if (f0 > 0.0 and (d0 < 0.0 or d1 > 0.0)) or (f0 < 0.0 and (d0 > 0.0 or d1 < 0.0)):
                        found, xa, ta, sa, xb, tb, sb = _hermite_dip(Bnodes[m], Bnodes[m + 1], f0, f1, d0, d1)
                        if found:
                            p0 = _node_prob(real, Vs, VsR, m, a, b, ms, spc, nI, g, nx, ny, nz)
                            p1 = _node_prob(real, Vs, VsR, m + 1, a, b, ms, spc, nI, g, nx, ny, nz)
                            for (Br, t, sl) in ((xa, ta, sa), (xb, tb, sb)):
                                q = _root_slot(taken, sl, R) if sl != 0.0 else -1
                                if q >= 0:
                                    idx = pair * R + q
                                    val = ((1.0 - t) * p0 + t * p1) / abs(sl)
                                    outB[k, idx] = Br
                                    outI[k, idx] = val
                                    outW[k, idx] = Br * bw
                                    if val > pmax:
                                        pmax = val
                                    taken |= 1 << q
            pair += 1
    return pmax


@numba.njit(cache=True, nogil=True)
def _drop_weak(k, pmax, rel_threshold, outB, outI):
    """Lines of knot k weaker than rel_threshold * pmax are removed (NaN field, zero intensity)."""
    for j in range(outB.shape[1]):
        if outI[k, j] < rel_threshold * pmax:
            outB[k, j] = np.nan
            outI[k, j] = 0.0


@numba.njit(cache=True, nogil=True)
def exact_knots(nvec, H0, Gx, Gy, Gz, S, I, g, gn, gstrain, mw, Bnodes, rel_threshold, outB, outI, outW,
                quintic=False, dips=False):
    """Resonance fields by exact diagonalisation on field nodes with Hermite-cubic interpolation.

    H0, Gx, Gy, Gz from ``build_ops`` (product basis |mS, mI>, mS and mI descending).
    Lines are indexed by (level pair u < v, slot r of that pair's resonances: ``_root_slot``) ->
    outB[k, pair * R + r] with R = outB.shape[1] // npairs; NaN where that slot is empty at knot k.
    Intensity = perpendicular-mode transition probability |<u|g S . b1|v>|^2 averaged over b1 normal to B0
    (interpolated linearly between the nodes) / |d(E_v - E_u)/dB| at resonance.  The field derivatives of the
    levels come from Hellmann-Feynman, <u|G|u>.  Lines weaker than rel_threshold * strongest are dropped.
    Per knot: the levels at every node (``_levels_real`` for a field in the xz plane of a real Hamiltonian,
    else ``_levels_complex``), then the roots (``_roots_screened`` for quintic, else ``_roots_all``) and
    ``_drop_weak``.
    """
    K = nvec.shape[0]
    N = H0.shape[0]
    M = Bnodes.shape[0]
    ms, mi, spc, ipc, nI = _basis_tables(S, I, N)
    E = np.empty((M, N))
    dE = np.empty((M, N))
    d2E = np.zeros((M, N))
    Vs = np.empty((M, N, N), np.complex128)
    VsR = np.empty((M, N, N))
    T = np.empty((N, N))
    Gc = np.empty((N, N), np.complex128)
    ncmax = (N * (N - 1) // 2) * max(M - 1, 1)
    ca = np.empty(ncmax, np.int64)
    cb = np.empty(ncmax, np.int64)
    cm = np.empty(ncmax, np.int64)
    cpair = np.empty(ncmax, np.int64)
    cp0 = np.empty(ncmax)
    cp1 = np.empty(ncmax)
    H = np.empty((N, N), np.complex128)
    Hr = np.empty((N, N))
    w = np.empty(N)
    scratch = np.empty(N)
    Qc = np.empty((N, N), np.complex128)
    Zr = np.empty((N, N))
    uc = np.empty(N, np.complex128)
    pc = np.empty(N, np.complex128)
    H0r = np.ascontiguousarray(H0.real)
    Gxr = np.ascontiguousarray(Gx.real)
    Gzr = np.ascontiguousarray(Gz.real)
    R = outB.shape[1] // (N * (N - 1) // 2)
    # field in the xz plane (axial systems): H is real (Sy, Iy only appear as Sy Iy), real eigenvectors
    realops = np.abs(H0.imag).max() == 0.0 and np.abs(Gx.imag).max() == 0.0 and np.abs(Gz.imag).max() == 0.0
    for k in range(K):
        nx, ny, nz = nvec[k, 0], nvec[k, 1], nvec[k, 2]
        real = ny == 0.0 and realops
        gx, gy, gz = g[0] * nx, g[1] * ny, g[2] * nz
        geff = math.sqrt(gx * gx + gy * gy + gz * gz)
        bw = math.sqrt((gx * gstrain[0]) ** 2 + (gy * gstrain[1]) ** 2 + (gz * gstrain[2]) ** 2) / geff / geff
        # Zeeman operator along n as (S+ coefficient, Sz coefficient, I+ coefficient, Iz coefficient), MHz/mT
        cSp = 0.5 * BMAGN * (gx - 1j * gy)     # coefficient of S+ (S- gets the conjugate)
        cSz = BMAGN * gz
        cIp = -0.5 * gn * NMAGN * (nx - 1j * ny)
        cIz = -gn * NMAGN * nz
        if not real:
            for i in range(N):
                for j in range(N):
                    Gc[i, j] = nx * Gx[i, j] + ny * Gy[i, j] + nz * Gz[i, j]
        for m in range(M):
            if real:
                _levels_real(m, Bnodes[m], nx, nz, H0r, Gxr, Gzr, cSz, cIz, cSp.real, cIp.real, ms, mi, spc,
                             ipc, nI, quintic, Hr, w, scratch, VsR[m], T, E, dE, d2E)
            else:
                _levels_complex(m, Bnodes[m], nx, ny, nz, H0, Gx, Gy, Gz, cSz, cIz, cSp, cIp, ms, mi, spc, ipc,
                                nI, quintic, H, w, Vs[m], scratch, Qc, Zr, uc, pc, Gc, E, dE, d2E)
        for j in range(outB.shape[1]):
            outB[k, j] = np.nan
            outI[k, j] = 0.0
            outW[k, j] = 0.0
        if quintic:
            pmax = _roots_screened(k, E, dE, d2E, Bnodes, mw, R, rel_threshold, real, Vs, VsR, ms, spc, nI, g,
                                   nx, ny, nz, bw, ca, cb, cm, cpair, cp0, cp1, outB, outI, outW)
        else:
            pmax = _roots_all(k, E, dE, d2E, Bnodes, mw, R, quintic, real, Vs, VsR, ms, spc, nI, g, nx, ny, nz,
                              bw, outB, outI, outW, dips)
        _drop_weak(k, pmax, rel_threshold, outB, outI)



@numba.njit(cache=True, nogil=True)
def _quintic_dip_sign(f0, f1, hd0, hd1, hc0, hc1, t):
    """Value at t of the quintic Hermite interpolant (values, h * slopes, h^2 * curvatures at t = 0, 1)."""
    a0 = f0
    a1 = hd0
    a2 = 0.5 * hc0
    a3 = -10.0 * f0 - 6.0 * hd0 - 1.5 * hc0 + 0.5 * hc1 - 4.0 * hd1 + 10.0 * f1
    a4 = 15.0 * f0 + 8.0 * hd0 + 1.5 * hc0 - hc1 + 7.0 * hd1 - 15.0 * f1
    a5 = -6.0 * f0 - 3.0 * hd0 - 0.5 * hc0 + 0.5 * hc1 - 3.0 * hd1 + 6.0 * f1
    return a0 + t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))


@numba.njit(cache=True, nogil=True)
def _cubic_extremum(f0, f1, hd0, hd1):
    """(t, value) of the cubic Hermite interpolant's interior extremum whose value lies nearest to, or across,
    zero from the side of f0; t = -1 when there is none in (0, 1)."""
    a1 = hd0
    a2 = -3.0 * f0 - 2.0 * hd0 + 3.0 * f1 - hd1
    a3 = 2.0 * f0 + hd0 - 2.0 * f1 + hd1
    best_t = -1.0
    best_v = 0.0
    if a3 != 0.0:
        disc = a2 * a2 - 3.0 * a3 * a1
        if disc >= 0.0:
            sq = math.sqrt(disc)
            for tt in ((-a2 - sq) / (3.0 * a3), (-a2 + sq) / (3.0 * a3)):
                if 0.0 < tt < 1.0:
                    v = f0 + tt * (a1 + tt * (a2 + tt * a3))
                    if best_t < 0.0 or (v * f0 < best_v * f0):
                        best_t, best_v = tt, v
    elif a2 != 0.0:
        tt = -a1 / (2.0 * a2)
        if 0.0 < tt < 1.0:
            best_t, best_v = tt, f0 + tt * (a1 + tt * a2)
    return best_t, best_v


@numba.njit(cache=True, nogil=True)
def _interval_needs_split(iL, iR, Bb, E, dE, d2E, mw, real, Vs, VsR, ms, spc, nI, g, nx, ny, nz, tolB, pstrong):
    """Whether the field interval between nodes iL and iR must be halved: for some level pair whose transition
    probability at either end reaches ``pstrong``, the cubic and the quintic Hermite interpolants of
    E_b - E_a - mw disagree - on a root by more than ``tolB`` (mT), or on whether the difference dips across
    zero inside the interval (a looping transition)."""
    N = E.shape[1]
    x0, x1 = Bb[iL], Bb[iR]
    h = x1 - x0
    for a in range(N):
        for b in range(a + 1, N):
            f0 = E[iL, b] - E[iL, a] - mw
            f1 = E[iR, b] - E[iR, a] - mw
            d0 = dE[iL, b] - dE[iL, a]
            d1 = dE[iR, b] - dE[iR, a]
            c0 = d2E[iL, b] - d2E[iL, a]
            c1 = d2E[iR, b] - d2E[iR, a]
            if (f0 <= 0.0 and f1 > 0.0) or (f0 >= 0.0 and f1 < 0.0):
                xc, _, _ = _hermite_root(x0, x1, f0, f1, d0, d1)
                xq, _, _ = _hermite5_root(x0, x1, f0, f1, d0, d1, c0, c1)
                if abs(xc - xq) <= tolB:
                    continue
            elif f0 != 0.0 and f1 != 0.0:
                tc, vc = _cubic_extremum(f0, f1, h * d0, h * d1)
                if tc < 0.0:
                    vq = _quintic_dip_sign(f0, f1, h * d0, h * d1, h * h * c0, h * h * c1, 0.5)
                    if (vq < 0.0) == (f0 < 0.0):
                        continue
                else:
                    vq = _quintic_dip_sign(f0, f1, h * d0, h * d1, h * h * c0, h * h * c1, tc)
                    if (vc < 0.0) == (f0 < 0.0) and (vq < 0.0) == (f0 < 0.0):
                        continue
            else:
                continue
            p0 = _node_prob(real, Vs, VsR, iL, a, b, ms, spc, nI, g, nx, ny, nz)
            p1 = _node_prob(real, Vs, VsR, iR, a, b, ms, spc, nI, g, nx, ny, nz)
            if max(p0, p1) >= pstrong:
                return True
    return False


@numba.njit(cache=True, nogil=True)
def exact_knots_adaptive(nvec, H0, Gx, Gy, Gz, S, I, g, gn, gstrain, mw, Bnodes, rel_threshold, outB, outI, outW,
                         tolB, maxdepth, cap_extra):
    """``exact_knots`` (cubic Hermite roots, looping transitions inside an interval) with field intervals halved
    where the levels are not resolved: per knot, an interval is split (new node at its middle, all levels
    exact there) while, for a level pair whose transition probability reaches 1 % of the knot's strongest at
    the start nodes, the cubic and the quintic (curvature) Hermite interpolants disagree on a resonance by more
    than ``tolB`` mT or on a dip across zero (``_interval_needs_split``); at most ``maxdepth`` halvings of a
    start interval and ``cap_extra`` new nodes per knot.  Bnodes: the start nodes (uniform).  The resonances
    are then the roots on the final intervals, taken in increasing field (quintic roots, cubic dips), each in
    the slot ``_root_slot`` gives."""
    K = nvec.shape[0]
    N = H0.shape[0]
    M0 = Bnodes.shape[0]
    cap = M0 + cap_extra
    ms, mi, spc, ipc, nI = _basis_tables(S, I, N)
    Bb = np.empty(cap)
    E = np.empty((cap, N))
    dE = np.empty((cap, N))
    d2E = np.zeros((cap, N))
    Vs = np.empty((cap, N, N), np.complex128)
    VsR = np.empty((cap, N, N))
    T = np.empty((N, N))
    Gc = np.empty((N, N), np.complex128)
    H = np.empty((N, N), np.complex128)
    Hr = np.empty((N, N))
    w = np.empty(N)
    scratch = np.empty(N)
    Qc = np.empty((N, N), np.complex128)
    Zr = np.empty((N, N))
    uc = np.empty(N, np.complex128)
    pc = np.empty(N, np.complex128)
    H0r = np.ascontiguousarray(H0.real)
    Gxr = np.ascontiguousarray(Gx.real)
    Gzr = np.ascontiguousarray(Gz.real)
    npair = N * (N - 1) // 2
    R = outB.shape[1] // npair
    rcnt = np.zeros(npair, np.int64)                # bit masks of the slots filled (_root_slot)
    full = (1 << R) - 1
    sL = np.empty(cap + M0, np.int64)
    sR = np.empty(cap + M0, np.int64)
    sD = np.empty(cap + M0, np.int64)
    realops = np.abs(H0.imag).max() == 0.0 and np.abs(Gx.imag).max() == 0.0 and np.abs(Gz.imag).max() == 0.0
    for k in range(K):
        nx, ny, nz = nvec[k, 0], nvec[k, 1], nvec[k, 2]
        real = ny == 0.0 and realops
        gx, gy, gz = g[0] * nx, g[1] * ny, g[2] * nz
        geff = math.sqrt(gx * gx + gy * gy + gz * gz)
        bw = math.sqrt((gx * gstrain[0]) ** 2 + (gy * gstrain[1]) ** 2 + (gz * gstrain[2]) ** 2) / geff / geff
        cSp = 0.5 * BMAGN * (gx - 1j * gy)
        cSz = BMAGN * gz
        cIp = -0.5 * gn * NMAGN * (nx - 1j * ny)
        cIz = -gn * NMAGN * nz
        for i in range(N):
            for j in range(N):
                Gc[i, j] = nx * Gx[i, j] + ny * Gy[i, j] + nz * Gz[i, j]
        used = 0
        for m in range(M0):
            Bb[m] = Bnodes[m]
        while used < M0:
            m = used
            if real:
                _levels_real(m, Bb[m], nx, nz, H0r, Gxr, Gzr, cSz, cIz, cSp.real, cIp.real, ms, mi, spc, ipc, nI,
                             True, Hr, w, scratch, VsR[m], T, E, dE, d2E)
            else:
                _levels_complex(m, Bb[m], nx, ny, nz, H0, Gx, Gy, Gz, cSz, cIz, cSp, cIp, ms, mi, spc, ipc, nI,
                                True, H, w, Vs[m], scratch, Qc, Zr, uc, pc, Gc, E, dE, d2E)
            used += 1
        # the strongest transition at the start nodes (resonances bracketed by them)
        pmx = 0.0
        for a in range(N):
            for b in range(a + 1, N):
                for m in range(M0 - 1):
                    f0 = E[m, b] - E[m, a] - mw
                    f1 = E[m + 1, b] - E[m + 1, a] - mw
                    if (f0 <= 0.0 and f1 > 0.0) or (f0 >= 0.0 and f1 < 0.0):
                        pmx = max(pmx, _node_prob(real, Vs, VsR, m, a, b, ms, spc, nI, g, nx, ny, nz),
                                  _node_prob(real, Vs, VsR, m + 1, a, b, ms, spc, nI, g, nx, ny, nz))
        pstrong = 0.01 * pmx
        for j in range(outB.shape[1]):
            outB[k, j] = np.nan
            outI[k, j] = 0.0
            outW[k, j] = 0.0
        for j in range(npair):
            rcnt[j] = 0
        top = 0
        for m in range(M0 - 2, -1, -1):
            sL[top] = m
            sR[top] = m + 1
            sD[top] = 0
            top += 1
        pmax = 0.0
        while top > 0:
            top -= 1
            iL, iR, dep = sL[top], sR[top], sD[top]
            if dep < maxdepth and used < cap and _interval_needs_split(
                    iL, iR, Bb, E, dE, d2E, mw, real, Vs, VsR, ms, spc, nI, g, nx, ny, nz, tolB, pstrong):
                m = used
                Bb[m] = 0.5 * (Bb[iL] + Bb[iR])
                if real:
                    _levels_real(m, Bb[m], nx, nz, H0r, Gxr, Gzr, cSz, cIz, cSp.real, cIp.real, ms, mi, spc, ipc,
                                 nI, True, Hr, w, scratch, VsR[m], T, E, dE, d2E)
                else:
                    _levels_complex(m, Bb[m], nx, ny, nz, H0, Gx, Gy, Gz, cSz, cIz, cSp, cIp, ms, mi, spc, ipc,
                                    nI, True, H, w, Vs[m], scratch, Qc, Zr, uc, pc, Gc, E, dE, d2E)
                used += 1
                sL[top], sR[top], sD[top] = m, iR, dep + 1
                top += 1
                sL[top], sR[top], sD[top] = iL, m, dep + 1
                top += 1
                continue
            # a final interval: its resonances, pair by pair (the same root and dip rules as ``_roots_all``, written
            # out here: a shared njit helper taking the ~10 arrays cost 0.45 of 1.8 ms on refs case f - numba
            # reference-counts array arguments on every call - and it runs for every pair of every interval)
            x0, x1 = Bb[iL], Bb[iR]
            pair = 0
            for a in range(N):
                for b in range(a + 1, N):
                    f0 = E[iL, b] - E[iL, a] - mw
                    f1 = E[iR, b] - E[iR, a] - mw
                    d0 = dE[iL, b] - dE[iL, a]
                    d1 = dE[iR, b] - dE[iR, a]
                    if rcnt[pair] != full and ((f0 <= 0.0 and f1 > 0.0) or (f0 >= 0.0 and f1 < 0.0)):
                        Br, t, sl = _hermite5_root(x0, x1, f0, f1, d0, d1, d2E[iL, b] - d2E[iL, a],
                                                   d2E[iR, b] - d2E[iR, a])
                        q = _root_slot(rcnt[pair], sl, R) if sl != 0.0 else -1
                        if q >= 0:
                            P = ((1.0 - t) * _node_prob(real, Vs, VsR, iL, a, b, ms, spc, nI, g, nx, ny, nz)
                                 + t * _node_prob(real, Vs, VsR, iR, a, b, ms, spc, nI, g, nx, ny, nz))
                            idx = pair * R + q
                            val = P / abs(sl)
                            outB[k, idx] = Br
                            outI[k, idx] = val
                            outW[k, idx] = Br * bw
                            pmax = max(pmax, val)
                            rcnt[pair] |= 1 << q
                    elif rcnt[pair] != full and f0 != 0.0 and f1 != 0.0 and (
                            (f0 > 0.0 and (d0 < 0.0 or d1 > 0.0)) or (f0 < 0.0 and (d0 > 0.0 or d1 < 0.0))):
                        found, xa, ta, sa, xb, tb, sb = _hermite_dip(x0, x1, f0, f1, d0, d1)
                        if found:
                            p0 = _node_prob(real, Vs, VsR, iL, a, b, ms, spc, nI, g, nx, ny, nz)
                            p1 = _node_prob(real, Vs, VsR, iR, a, b, ms, spc, nI, g, nx, ny, nz)
                            for (Br, t, sl) in ((xa, ta, sa), (xb, tb, sb)):
                                q = _root_slot(rcnt[pair], sl, R) if sl != 0.0 else -1
                                if q >= 0:
                                    idx = pair * R + q
                                    val = ((1.0 - t) * p0 + t * p1) / abs(sl)
                                    outB[k, idx] = Br
                                    outI[k, idx] = val
                                    outW[k, idx] = Br * bw
                                    pmax = max(pmax, val)
                                    rcnt[pair] |= 1 << q
                    pair += 1
        _drop_weak(k, pmax, rel_threshold, outB, outI)

# --------------------------------------------------------------------------------------------- binning
@numba.njit(cache=True, nogil=True)
def _hat_cdf(t):
    if t <= -1.0:
        return 0.0
    if t < 0.0:
        return 0.5 * (t + 1.0) ** 2
    if t < 1.0:
        return 1.0 - 0.5 * (1.0 - t) ** 2
    return 1.0


@numba.njit(cache=True, nogil=True)
def bin_box(stick, c, x0, dx, lo, hi, w):
    """Add weight w spread uniformly over [lo, hi] (mT) to stick[c].

    dx > 0: linear (hat) bin functions centred on x0 + i dx; dx < 0: box bins [x0 + i|dx|, x0 + (i+1)|dx|)
    (EasySpin's projection).
    """
    nb = stick.shape[1]
    if dx < 0:
        d = -dx
        tlo = (lo - x0) / d
        thi = (hi - x0) / d
        if thi - tlo < 1e-9:
            i0 = int(math.floor(tlo))
            if 0 <= i0 < nb:
                stick[c, i0] += w
            return
        inv = w / (thi - tlo)
        f0 = math.floor(tlo)
        f1 = math.floor(thi)
        i0 = int(f0)
        i1 = int(f1)
        if i0 == i1:
            if 0 <= i0 < nb:
                stick[c, i0] += w
            return
        # partial first and last bins, whole bins in between
        if 0 <= i0 < nb:
            stick[c, i0] += inv * (f0 + 1.0 - tlo)
        if 0 <= i1 < nb and thi > f1:
            stick[c, i1] += inv * (thi - f1)
        for i in range(max(i0 + 1, 0), min(i1, nb)):
            stick[c, i] += inv
        return
    tlo = (lo - x0) / dx
    thi = (hi - x0) / dx
    if thi - tlo < 1e-6:
        t = 0.5 * (tlo + thi)
        i0 = int(math.floor(t))
        f = t - i0
        if 0 <= i0 < nb:
            stick[c, i0] += w * (1.0 - f)
        if 0 <= i0 + 1 < nb:
            stick[c, i0 + 1] += w * f
        return
    inv = w / (thi - tlo)
    i_start = max(int(math.floor(tlo)), 0)
    i_stop = min(int(math.ceil(thi)) + 1, nb)
    for i in range(i_start, i_stop):
        stick[c, i] += inv * (_hat_cdf(thi - i) - _hat_cdf(tlo - i))


@numba.njit(cache=True, nogil=True, inline="always")
def _ramp_diff(T, c, t, s):
    """Add a ramp of slope s starting at t (bin units) to the cumulative weight, as first differences of the
    box-binned stick: bin floor(t) gets s * (its part above t), every later bin s (T[c] is d(stick)/d(bin))."""
    nb1 = T.shape[1]
    if t < 0.0:
        T[c, 0] += s
        return
    j = int(t)
    if j >= nb1 - 1:
        return
    f = j + 1.0 - t
    T[c, j] += s * f
    T[c, j + 1] += s * (1.0 - f)


@numba.njit(cache=True, nogil=True)
def box_diff(T, c, x0, d, lo, hi, w):
    """``bin_box`` with box bins of width d > 0 from x0, written as first differences: after
    ``integrate_diff``, stick[c, i] gets w * |[lo, hi] & bin i| / (hi - lo) (a point when hi - lo < 1e-6 bins).
    Four additions per line whatever its width (the box-addition floor), instead of one per bin covered."""
    inv = 1.0 / d
    tlo = (lo - x0) * inv
    thi = (hi - x0) * inv
    nb = T.shape[1] - 1
    if thi - tlo < 1e-6:
        t = 0.5 * (tlo + thi) if thi - tlo > 1e-9 else tlo
        if t >= 0.0:
            i0 = int(t)
            if i0 < nb:
                T[c, i0] += w
                T[c, i0 + 1] -= w
        return
    if thi <= 0.0 or tlo >= nb:
        return
    s = w / (thi - tlo)
    _ramp_diff(T, c, tlo, s)
    _ramp_diff(T, c, thi, -s)


@numba.njit(cache=True, nogil=True)
def integrate_diff(T, stick):
    """stick[c, i] += sum_{j <= i} T[c, j] (T (nc, nb + 1) from ``box_diff``; its last column is overflow).

    Rows without an entry are left alone, and each row is summed from its first non-zero difference on; past
    its last one the sum is constant: carried to the end of the row where it is a box running past the grid,
    left at zero where it is rounding (below 1e-12 of the row's largest value, what remains of boxes that
    close inside the grid), so the stick is exactly zero beyond its last line (``occupied_range``)."""
    nb = stick.shape[1]
    for c in range(stick.shape[0]):
        j1 = min(nb, T.shape[1]) - 1
        while j1 >= 0 and T[c, j1] == 0.0:
            j1 -= 1
        if j1 < 0:
            continue
        j0 = 0
        while T[c, j0] == 0.0:
            j0 += 1
        acc = 0.0
        big = 0.0
        for i in range(j0, j1 + 1):
            acc += T[c, i]
            stick[c, i] += acc
            if abs(acc) > big:
                big = abs(acc)
        if abs(acc) > 1e-12 * big:
            for i in range(j1 + 1, nb):
                stick[c, i] += acc


@numba.njit(cache=True, nogil=True)
def field_window(B, x0, d, nb, pad):
    """Columns [c0, c1) of an nb-column binning grid (bins of width d from x0) that the lines of the knot
    fields B (NaN = no line) can reach once interpolated between knots, with ``pad`` columns more on each side:
    the knots' field range widened by half of it on each side (the Catmull-Rom interpolants, 1-D, bicubic and
    on the triangular grid, overshoot their knots' range by at most 0.125 and 0.28 of it), clipped to the grid.
    (nb, 0) (empty) without any line.  Binning into a stick of c1 - c0 columns from x0 + c0 d gives the columns c0 .. c1
    - 1 of the whole grid's stick (``tests/simgen/test_epr.py`` checks it on every route)."""
    lo = np.inf
    hi = -np.inf
    for k in range(B.shape[0]):
        for l in range(B.shape[1]):
            b = B[k, l]
            if b == b:
                if b < lo:
                    lo = b
                if b > hi:
                    hi = b
    if hi < lo:
        return nb, 0
    m = 0.5 * (hi - lo)
    c0 = int(math.floor((lo - m - x0) / d)) - pad
    c1 = int(math.ceil((hi + m - x0) / d)) + 1 + pad
    c0 = min(max(c0, 0), nb - 1)
    c1 = max(min(c1, nb), c0 + 1)
    return c0, c1


@numba.njit(cache=True, nogil=True)
def _bin(stick, T, c, x0, dx, lo, hi, w):
    if dx < 0:
        box_diff(T, c, x0, -dx, lo, hi, w)
    else:
        bin_box(stick, c, x0, dx, lo, hi, w)


@numba.njit(cache=True, nogil=True)
def _add_line(stick, T, x0, dx, lo, hi, w, wid, lwg, cw, logr):
    """Add a line to the width class(es) of its total Gaussian FWHM sqrt(lwg^2 + wid^2) (variance split)."""
    nc = stick.shape[0]
    if nc == 1:
        _bin(stick, T, 0, x0, dx, lo, hi, w)
        return
    tot = math.sqrt(lwg * lwg + wid * wid)
    if tot <= cw[0]:
        _bin(stick, T, 0, x0, dx, lo, hi, w)
        return
    if tot >= cw[nc - 1]:
        _bin(stick, T, nc - 1, x0, dx, lo, hi, w)
        return
    # the class pair around tot: cw[c] <= tot < cw[c + 1] (geometric classes: the logarithm's estimate, then
    # corrected by one where rounding put it on the wrong side of a class width)
    c = int(math.log(tot / cw[0]) / logr)
    if c >= nc - 1:
        c = nc - 2
    if c > 0 and tot < cw[c]:
        c -= 1
    elif c < nc - 2 and tot >= cw[c + 1]:
        c += 1
    v0 = cw[c] * cw[c]
    v1 = cw[c + 1] * cw[c + 1]
    f = (tot * tot - v0) / (v1 - v0)
    if f < 0.0:
        f = 0.0
    if f > 1.0:
        f = 1.0
    if dx < 0:
        _box_pair(T, c, x0, -dx, lo, hi, w * (1.0 - f), w * f)
    else:
        bin_box(stick, c, x0, dx, lo, hi, w * (1.0 - f))
        bin_box(stick, c + 1, x0, dx, lo, hi, w * f)


@numba.njit(cache=True, nogil=True, inline="always")
def _box_pair(T, c, x0, d, lo, hi, wa, wb):
    """``box_diff`` of one box [lo, hi] into the neighbouring classes c (weight wa) and c + 1 (weight wb): the
    box ends computed once."""
    inv = 1.0 / d
    tlo = (lo - x0) * inv
    thi = (hi - x0) * inv
    nb = T.shape[1] - 1
    if thi - tlo < 1e-6:
        t = 0.5 * (tlo + thi) if thi - tlo > 1e-9 else tlo
        if t >= 0.0:
            i0 = int(t)
            if i0 < nb:
                T[c, i0] += wa
                T[c, i0 + 1] -= wa
                T[c + 1, i0] += wb
                T[c + 1, i0 + 1] -= wb
        return
    if thi <= 0.0 or tlo >= nb:
        return
    r = 1.0 / (thi - tlo)
    sa = wa * r
    sb = wb * r
    if tlo < 0.0:
        T[c, 0] += sa
        T[c + 1, 0] += sb
    else:
        j = int(tlo)
        if j < nb:
            f = j + 1.0 - tlo
            T[c, j] += sa * f
            T[c, j + 1] += sa * (1.0 - f)
            T[c + 1, j] += sb * f
            T[c + 1, j + 1] += sb * (1.0 - f)
    j = int(thi)
    if j < nb:
        f = j + 1.0 - thi
        T[c, j] -= sa * f
        T[c, j + 1] -= sa * (1.0 - f)
        T[c + 1, j] -= sb * f
        T[c + 1, j + 1] -= sb * (1.0 - f)


@numba.njit(cache=True, nogil=True)
def _corner(stick, T, x0, dx, B, I, W, partner, k, l, wgt, lwg, cw, logr):
    b = B[k, l]
    p = partner[l]
    lo = b
    hi = b
    if p >= 0:
        bp = B[k, p]
        if bp == bp:
            mid = 0.5 * (b + bp)
            lo = min(b, mid)
            hi = max(b, mid)
    _add_line(stick, T, x0, dx, lo, hi, wgt * I[k, l], W[k, l], lwg, cw, logr)


@numba.njit(cache=True, nogil=True)
def _catmull(p0, p1, p2, p3, t):
    """Catmull-Rom cubic between p1 (t = 0) and p2 (t = 1)."""
    return 0.5 * (2.0 * p1 + (p2 - p0) * t + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * t * t
                  + (3.0 * p1 - p0 - 3.0 * p2 + p3) * t * t * t)


@numba.njit(cache=True, nogil=True)
def _catmull_w(t, out, row):
    """Catmull-Rom weights of p0..p3 at t (the coefficients of ``_catmull``) into out[row]."""
    t2 = t * t
    t3 = t2 * t
    out[row, 0] = 0.5 * (-t + 2.0 * t2 - t3)
    out[row, 1] = 0.5 * (2.0 - 5.0 * t2 + 3.0 * t3)
    out[row, 2] = 0.5 * (t + 4.0 * t2 - 3.0 * t3)
    out[row, 3] = 0.5 * (-t2 + t3)


@numba.njit(cache=True, nogil=True)
def _loop_close(B, I, W, l, p, k0, k1, theta, x0, dx, lwg, cw, logr, scale, stick, T):
    """Root l of a looping transition (partner root p) present at knot k0 of a 1-D cell and, with p, gone at its
    other end k1: the two roots meet at theta_c inside the cell.  Near the meeting point the root gap d goes as
    sqrt(theta_c - theta) and the intensity (1 / |d(dE - h nu)/dB|) as 1 / d, so the line's weight is uniform
    in field between B_l(k0) and the meeting field B_c, and its total is I_l(k0) sin(theta) 2 |theta_c -
    theta_k0| (with the mean theta of that density, k0 + 2/3 of the way).  theta_c from d^2 linear in theta
    through k0 and the knot beyond it (kk), B_c from the pair's mid field extrapolated the same way; where kk
    has no pair, theta_c is mid-cell and B_c the mid field at k0; where d^2 does not shrink towards the cell
    (not a closing loop) the cell is left out, as any cell with a missing end."""
    h = theta[k1] - theta[k0]
    kk = 2 * k0 - k1
    b0, bp0 = B[k0, l], B[k0, p]
    m0 = 0.5 * (b0 + bp0)
    d0 = (b0 - bp0) * (b0 - bp0)
    f = 0.5
    bc = m0
    if 0 <= kk < B.shape[0]:
        bk, bpk = B[kk, l], B[kk, p]
        if bk == bk and bpk == bpk:
            dk = (bk - bpk) * (bk - bpk)
            if dk <= d0:
                return
            f = d0 / (dk - d0) * abs((theta[k0] - theta[kk]) / h)
            if f > 1.0:
                f = 1.0
            bc = m0 + (m0 - 0.5 * (bk + bpk)) * f * abs(h / (theta[k0] - theta[kk]))
    wgt = math.sin(theta[k0] + 2.0 / 3.0 * f * h) * 2.0 * f * abs(h)
    _add_line(stick, T, x0, dx, min(b0, bc), max(b0, bc), scale * I[k0, l] * wgt, W[k0, l], lwg, cw, logr)


@numba.njit(cache=True, nogil=True)
def _bin_axial(B, I, W, partner, ntheta, theta, r, x0, dx, lwg, cw, logr, scale, stick, T):
    """1-D (axial) grid: Catmull-Rom in theta (mirror symmetric at 0 and pi/2) with r sub-cells per interval.
    A cell with a line at one end only is left out, unless the line's partner root is there too and gone at
    the other end (a looping transition closing inside the cell: ``_loop_close``)."""
    L = B.shape[1]
    be = np.empty(r + 1)
    for i in range(ntheta - 1):
        t0, t1 = theta[i], theta[i + 1]
        im1 = i - 1 if i > 0 else 1                      # mirror: B(-theta) = B(theta)
        ip2 = i + 2 if i + 2 < ntheta else ntheta - 2    # mirror: B(pi - theta) = B(theta)
        for l in range(L):
            ba, bb = B[i, l], B[i + 1, l]
            oka = ba == ba
            okb = bb == bb
            if not (oka and okb):
                p = partner[l]
                if oka != okb and p >= 0:
                    k0 = i if oka else i + 1
                    k1 = i + 1 if oka else i
                    if B[k0, p] == B[k0, p] and not (B[k1, p] == B[k1, p]):
                        _loop_close(B, I, W, l, p, k0, k1, theta, x0, dx, lwg, cw, logr, scale, stick, T)
                continue
            p0, p3 = B[im1, l], B[ip2, l]
            cubic = p0 == p0 and p3 == p3
            for s in range(r + 1):
                t = s / r
                if cubic:
                    be[s] = _catmull(p0, ba, bb, p3, t)
                else:
                    be[s] = ba + (bb - ba) * t
            ia, ib = I[i, l], I[i + 1, l]
            i0, i3 = I[im1, l], I[ip2, l]
            wa, wb = W[i, l], W[i + 1, l]
            for s in range(r):
                fm = (s + 0.5) / r
                lo = be[s]
                hi = be[s + 1]
                if lo > hi:
                    lo, hi = hi, lo
                tt = t0 + (t1 - t0) * fm
                wgt = math.sin(tt) * (t1 - t0) / r
                if cubic:
                    inten = max(_catmull(i0, ia, ib, i3, fm), 0.0)
                else:
                    inten = ia + (ib - ia) * fm
                wid = wa + (wb - wa) * fm
                _add_line(stick, T, x0, dx, lo, hi, scale * inten * wgt, wid, lwg, cw, logr)


@numba.njit(cache=True, nogil=True)
def _bilinear_cell(b00, b01, b10, b11, i00, i01, i10, i11, bc, qi):
    """Bilinear fields on the sub-cell corners bc[c, a] and intensities on the centres qi[c, a] of one cell
    (a: theta, c: phi; the layout of ``_octant_lattice``) from its four corner knots."""
    r = qi.shape[0]
    for a in range(r + 1):
        fa = a / r
        for c in range(r + 1):
            fc = c / r
            bc[c, a] = (1 - fa) * ((1 - fc) * b00 + fc * b01) + fa * ((1 - fc) * b10 + fc * b11)
    for a in range(r):
        fa = (a + 0.5) / r
        for c in range(r):
            fc = (c + 0.5) / r
            qi[c, a] = (1 - fa) * ((1 - fc) * i00 + fc * i01) + fa * ((1 - fc) * i10 + fc * i11)


@numba.njit(cache=True, nogil=True)
def _mirror_rows(n, out):
    """out[i] = the four indices i-1 .. i+2 of cell i reflected at 0 and n-1 (the mirror symmetry of the
    octant's edges), i < n - 1."""
    for i in range(n - 1):
        for a in range(4):
            q = i - 1 + a
            if q < 0:
                q = -q
            if q > n - 1:
                q = 2 * (n - 1) - q
            out[i, a] = q


@numba.njit(cache=True, nogil=True)
def _octant_lattice(V, l, ntheta, nphi, r, wt, ia, jc, centres, TB, BC):
    """Values of column l of the knot values V (ntheta * nphi, L) on the refined lattice of the whole octant:
    the bicubic Catmull-Rom surface of each cell's mirrored 4 x 4 knot neighbourhood, separable, theta first,
    then phi, once per lattice point (neighbouring cells share their edges).

    Output transposed, BC[C, A] with A the refined theta index and C the refined phi index.  centres False:
    the (ntheta - 1) r + 1 by (nphi - 1) r + 1 sub-cell corners, weights wt (r + 1, 4); knot rows and columns
    are copied (the weights there are exactly 0, 1, 0, 0).  centres True: the (ntheta - 1) r by (nphi - 1) r
    sub-cell centres, weights wt (r, 4), clipped at 0.  TB: scratch of at least (nphi, rows).  Lattice points
    whose stencil meets a NaN knot come out NaN (those cells are not cubic)."""
    e = 0 if centres else 1
    NA = (ntheta - 1) * r + e
    for i in range(ntheta - 1 + e):
        for a in range(r):
            A = i * r + a
            if A >= NA:
                break
            if not centres and a == 0:
                k0 = i * nphi
                for j in range(nphi):
                    TB[j, A] = V[k0 + j, l]
                continue
            k0 = ia[i, 0] * nphi
            k1 = ia[i, 1] * nphi
            k2 = ia[i, 2] * nphi
            k3 = ia[i, 3] * nphi
            w0, w1, w2, w3 = wt[a, 0], wt[a, 1], wt[a, 2], wt[a, 3]
            for j in range(nphi):
                TB[j, A] = w0 * V[k0 + j, l] + w1 * V[k1 + j, l] + w2 * V[k2 + j, l] + w3 * V[k3 + j, l]
    for j in range(nphi - 1 + e):
        for c in range(r):
            C = j * r + c
            if not centres and c == 0:
                for A in range(NA):
                    BC[C, A] = TB[j, A]
                if j == nphi - 1:
                    break
                continue
            j0, j1, j2, j3 = jc[j, 0], jc[j, 1], jc[j, 2], jc[j, 3]
            w0, w1, w2, w3 = wt[c, 0], wt[c, 1], wt[c, 2], wt[c, 3]
            if centres:
                for A in range(NA):
                    v = TB[j0, A] * w0 + TB[j1, A] * w1 + TB[j2, A] * w2 + TB[j3, A] * w3
                    BC[C, A] = v if v > 0.0 else 0.0
            else:
                for A in range(NA):
                    BC[C, A] = TB[j0, A] * w0 + TB[j1, A] * w1 + TB[j2, A] * w2 + TB[j3, A] * w3


@numba.njit(cache=True, nogil=True, inline="always")
def _cell_boxes(stick, T, bc, qi, oa, oc, r, ws_row, single, inv_d, x0, dx, w00, w01, w10, w11, lwg, cw, logr):
    """Bin the r^2 sub-cells of one cell whose corner values are bc[oc:oc+r+1, oa:oa+r+1] and centre
    intensities qi[oc:oc+r, oa:oa+r] (phi index first): each sub-cell's field range [min, max] of its corners as a box of weight
    ws_row[a] * intensity.  single (one width class, box bins): straight into the difference array T with the
    operations of ``box_diff``; else ``_add_line`` with the bilinear width from the cell's corner widths."""
    nb = T.shape[1] - 1
    for a in range(r):
        ws = ws_row[a]
        fa = (a + 0.5) / r
        for c in range(r):
            q0, q1 = bc[oc + c, oa + a], bc[oc + c + 1, oa + a]
            q2, q3 = bc[oc + c, oa + a + 1], bc[oc + c + 1, oa + a + 1]
            lo = min(min(q0, q1), min(q2, q3))
            hi = max(max(q0, q1), max(q2, q3))
            w = ws * qi[oc + c, oa + a]
            if single:
                tlo = (lo - x0) * inv_d
                thi = (hi - x0) * inv_d
                if thi - tlo < 1e-6:
                    t = 0.5 * (tlo + thi) if thi - tlo > 1e-9 else tlo
                    if t >= 0.0:
                        i0 = int(t)
                        if i0 < nb:
                            T[0, i0] += w
                            T[0, i0 + 1] -= w
                    continue
                if thi <= 0.0 or tlo >= nb:
                    continue
                s = w / (thi - tlo)
                _ramp_diff(T, 0, tlo, s)
                _ramp_diff(T, 0, thi, -s)
            else:
                fc = (c + 0.5) / r
                wid = ((1 - fa) * ((1 - fc) * w00 + fc * w01) + fa * ((1 - fc) * w10 + fc * w11))
                _add_line(stick, T, x0, dx, lo, hi, w, wid, lwg, cw, logr)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _octant_boxes_full(BCs, QIs, sth, phi, ntheta, nphi, r, scale, x0, inv_d, T):
    """Every cell cubic, one width class, box bins: ``_cell_boxes`` for all cells, split in two passes that
    give the same numbers.  First, over the whole lattice at once (contiguous, vectorisable loops), each
    sub-cell's box ends in bin units and weight, and the ramp slope w / (thi - tlo) (NumPy error model: a
    zero-width box gives inf there, unused: it is binned as a point); then the difference-array additions in
    the order of the cell loop (theta row, phi column, line, sub-cell), which fixes the rounding of the sums."""
    L, NC, NA = BCs.shape
    NCc, NAc = NC - 1, NA - 1
    TLO = np.empty((L, NCc, NAc))
    THI = np.empty((L, NCc, NAc))
    WB = np.empty((L, NCc, NAc))
    SL = np.empty((L, NCc, NAc))
    sthA = sth.ravel()
    ws = np.empty(NAc)
    rr = r * r
    for C in range(NCc):
        j = C // r
        dp = phi[j + 1] - phi[j]
        for A in range(NAc):
            ws[A] = scale * (sthA[A] * dp / rr)
        for l in range(L):
            for A in range(NAc):
                q0, q1 = BCs[l, C, A], BCs[l, C + 1, A]
                q2, q3 = BCs[l, C, A + 1], BCs[l, C + 1, A + 1]
                lo = min(min(q0, q1), min(q2, q3))
                hi = max(max(q0, q1), max(q2, q3))
                w = ws[A] * QIs[l, C, A]
                tlo = (lo - x0) * inv_d
                thi = (hi - x0) * inv_d
                TLO[l, C, A] = tlo
                THI[l, C, A] = thi
                WB[l, C, A] = w
                SL[l, C, A] = w / (thi - tlo)
    nb = T.shape[1] - 1
    for i in range(ntheta - 1):
        for j in range(nphi - 1):
            for l in range(L):
                for a in range(r):
                    A = i * r + a
                    for c in range(r):
                        C = j * r + c
                        tlo = TLO[l, C, A]
                        thi = THI[l, C, A]
                        if thi - tlo < 1e-6:
                            t = 0.5 * (tlo + thi) if thi - tlo > 1e-9 else tlo
                            if t >= 0.0:
                                i0 = int(t)
                                if i0 < nb:
                                    w = WB[l, C, A]
                                    T[0, i0] += w
                                    T[0, i0 + 1] -= w
                            continue
                        if thi <= 0.0 or tlo >= nb:
                            continue
                        sl = SL[l, C, A]
                        _ramp_diff(T, 0, tlo, sl)
                        _ramp_diff(T, 0, thi, -sl)


@numba.njit(cache=True, nogil=True)
def _bin_octant(B, I, W, partner, ntheta, nphi, theta, phi, r, x0, dx, lwg, cw, logr, scale, stick, T):
    """2-D octant grid: bicubic Catmull-Rom (mirror symmetry at theta = 0, pi/2 and phi = 0, pi/2) where the
    4 x 4 neighbourhood is complete, bilinear otherwise; each sub-cell's field range is binned as a box.  The
    cubic is separable and the refined lattice is shared by neighbouring cells: the fields on all sub-cell
    corners and the intensities on all sub-cell centres are interpolated once per line (``_octant_lattice``),
    then the cells are binned in the order theta row, phi column, line."""
    L = B.shape[1]
    we = np.empty((r + 1, 4))
    wm = np.empty((r, 4))
    for s in range(r + 1):
        _catmull_w(s / r, we, s)
    for s in range(r):
        _catmull_w((s + 0.5) / r, wm, s)
    bc = np.empty((r + 1, r + 1))
    qi = np.empty((r, r))
    ia = np.empty((ntheta - 1, 4), np.int64)
    jc = np.empty((nphi - 1, 4), np.int64)
    _mirror_rows(ntheta, ia)
    _mirror_rows(nphi, jc)
    NA = (ntheta - 1) * r + 1
    NC = (nphi - 1) * r + 1
    TB = np.empty((nphi, NA))
    BCs = np.empty((L, NC, NA))
    QIs = np.empty((L, NC - 1, NA - 1))
    # per line: whether every knot carries it (then every cell of it is cubic)
    full = np.empty(L, np.bool_)
    for l in range(L):
        full[l] = True
        for k in range(ntheta * nphi):
            if B[k, l] != B[k, l]:
                full[l] = False
                break
        _octant_lattice(B, l, ntheta, nphi, r, we, ia, jc, False, TB, BCs[l])
        _octant_lattice(I, l, ntheta, nphi, r, wm, ia, jc, True, TB, QIs[l])
    # sub-cell solid-angle factors sin(theta_centre) dtheta of each theta row (the phi factor per cell)
    sth = np.empty((ntheta - 1, r))
    for i in range(ntheta - 1):
        t0, t1 = theta[i], theta[i + 1]
        for a in range(r):
            sth[i, a] = math.sin(t0 + (t1 - t0) * (a + 0.5) / r) * (t1 - t0)
    ws_row = np.empty(r)
    single = stick.shape[0] == 1 and dx < 0
    inv_d = 1.0 / (-dx) if dx < 0 else 1.0
    all_full = True
    for l in range(L):
        all_full = all_full and full[l]
    if single and all_full:
        _octant_boxes_full(BCs, QIs, sth, phi, ntheta, nphi, r, scale, x0, inv_d, T)
        return
    for i in range(ntheta - 1):
        t0, t1 = theta[i], theta[i + 1]
        for j in range(nphi - 1):
            p0, p1 = phi[j], phi[j + 1]
            for a in range(r):
                ws_row[a] = scale * (sth[i, a] * (p1 - p0) / (r * r))
            k00 = i * nphi + j
            k01 = i * nphi + j + 1
            k10 = (i + 1) * nphi + j
            k11 = (i + 1) * nphi + j + 1
            for l in range(L):
                b00, b01, b10, b11 = B[k00, l], B[k01, l], B[k10, l], B[k11, l]
                ok00, ok01, ok10, ok11 = b00 == b00, b01 == b01, b10 == b10, b11 == b11
                if not (ok00 or ok01 or ok10 or ok11):
                    continue
                if ok00 and ok01 and ok10 and ok11:
                    cubic = full[l]
                    if not cubic:
                        cubic = True
                        for a in range(4):
                            for c in range(4):
                                v = B[ia[i, a] * nphi + jc[j, c], l]
                                if v != v:
                                    cubic = False
                    if cubic:
                        _cell_boxes(stick, T, BCs[l], QIs[l], i * r, j * r, r, ws_row, single, inv_d, x0, dx,
                                    W[k00, l], W[k01, l], W[k10, l], W[k11, l], lwg, cw, logr)
                    else:
                        _bilinear_cell(b00, b01, b10, b11, I[k00, l], I[k01, l], I[k10, l], I[k11, l], bc, qi)
                        _cell_boxes(stick, T, bc, qi, 0, 0, r, ws_row, single, inv_d, x0, dx,
                                    W[k00, l], W[k01, l], W[k10, l], W[k11, l], lwg, cw, logr)
                else:
                    wgt = 0.25 * (math.cos(t0) - math.cos(t1)) * (p1 - p0)
                    if ok00:
                        _corner(stick, T, x0, dx, B, I, W, partner, k00, l, scale * wgt, lwg, cw, logr)
                    if ok01:
                        _corner(stick, T, x0, dx, B, I, W, partner, k01, l, scale * wgt, lwg, cw, logr)
                    if ok10:
                        _corner(stick, T, x0, dx, B, I, W, partner, k10, l, scale * wgt, lwg, cw, logr)
                    if ok11:
                        _corner(stick, T, x0, dx, B, I, W, partner, k11, l, scale * wgt, lwg, cw, logr)


@numba.njit(cache=True, nogil=True)
def powder_bin(B, I, W, partner, ntheta, nphi, theta, phi, refine, x0, dx, lwg, cw, scale, stick, T=None):
    """Interpolate knot values to a refined grid and bin each refined cell's field range.

    B, I, W: (ntheta * nphi, L) at knots theta[i] (x) phi[j], knot index i * nphi + j (NaN B = no line).
    nphi == 1: axial (1-D in theta); ntheta == nphi == 1: single orientation (isotropic/solution).
    cw: Gaussian FWHM of the width classes (geometric, ratio exp(logr)); stick (nclass, nbins) += ...
    dx < 0: box bins of width |dx| (EasySpin's projection), accumulated as first differences in T (nclass,
    nbins + 1; zeroed and used as scratch, allocated when None) and integrated into stick at the end;
    dx > 0: linear (hat) bins added directly.
    2-D cells with a missing corner fall back to the valid corners with a quarter of the cell weight each:
    spread from the corner's field to the coalescence point (midway to its partner root, ``partner[l]`` = the
    other resonance of the same level pair, -1 if none) when the partner is there too (a looping transition
    closing inside the cell), else as a point.  1-D cells where a looping transition closes (the line and its
    partner at one end, neither at the other) get the closing part of the loop (``_loop_close``); other 1-D
    cells with a missing end are left out, as the triangles of ``powder_bin_tri``: on six Cr3+ systems of the
    epr-oxides prior (S 3/2, axial D -1.2 .. -5.6 GHz, lw 1.2-2.6 mT, 50-450 mT), each against 181 knots
    binned the same way, the largest point error of the max-normalised spectrum at 11 / 13 / 31 knots went
    from 0.03-0.96 / 0.02-0.67 / 0.002-0.24 with the half-cell corner deposits to 0.03-0.39 / 0.02-0.42 /
    0.002-0.19 without them (measured before the loop closure and the knot ladder of ``physics.cw_spectrum``,
    which takes the Cr3 class of epr-oxides to 0.036 at most off 321 knots).
    """
    L = B.shape[1]
    nc = stick.shape[0]
    logr = math.log(cw[1] / cw[0]) if nc > 1 else 1.0
    if T is None:
        T = np.zeros((nc, stick.shape[1] + 1))
    else:
        T[:, :] = 0.0
    if ntheta == 1 and nphi == 1:
        for l in range(L):
            b = B[0, l]
            if b == b:
                _add_line(stick, T, x0, dx, b, b, scale * I[0, l], W[0, l], lwg, cw, logr)
    elif nphi == 1:
        _bin_axial(B, I, W, partner, ntheta, theta, refine, x0, dx, lwg, cw, logr, scale, stick, T)
    else:
        _bin_octant(B, I, W, partner, ntheta, nphi, theta, phi, refine, x0, dx, lwg, cw, logr, scale, stick, T)
    if dx < 0:
        integrate_diff(T, stick)


@numba.njit(cache=True, nogil=True)
def _tri_vertices(B, I, W, l, t, corners, vidx, vw, bary, vb, vi, vwid):
    """Field, intensity (clipped at 0) and width of line l at the refined vertices of triangle t: the cubic
    stencils where all their knots carry the line, else linear (barycentric) on the triangle's corners."""
    P = vb.shape[0]
    c0, c1, c2 = corners[t, 0], corners[t, 1], corners[t, 2]
    b0, b1, b2 = B[c0, l], B[c1, l], B[c2, l]
    i0, i1, i2 = I[c0, l], I[c1, l], I[c2, l]
    w0, w1, w2 = W[c0, l], W[c1, l], W[c2, l]
    cubic = True
    for p in range(P):
        sb = 0.0
        si = 0.0
        for q in range(16):
            k = vidx[t, p, q]
            wq = vw[t, p, q]
            sb += wq * B[k, l]
            si += wq * I[k, l]
        if sb != sb:
            cubic = False
            break
        vb[p] = sb
        vi[p] = si if si > 0.0 else 0.0
    for p in range(P):
        f0, f1, f2 = bary[p, 0], bary[p, 1], bary[p, 2]
        if not cubic:
            vb[p] = f0 * b0 + f1 * b1 + f2 * b2
            vi[p] = f0 * i0 + f1 * i1 + f2 * i2
        vwid[p] = f0 * w0 + f1 * w1 + f2 * w2


@numba.njit(cache=True, nogil=True)
def powder_bin_tri(B, I, W, corners, vidx, vw, bary, sub, subw, x0, dx, lwg, cw, scale, stick, T):
    """``powder_bin`` on the triangular octant grid of ``grids.tri_grid``.

    B, I, W (K, L) at the grid's knots (NaN B = no line); corners, vidx, vw, bary, sub, subw: the grid's tables.
    Each triangle's refined vertices get the line's field, intensity and width (``_tri_vertices``); each
    sub-triangle's field range [min, max] of its three vertices is binned as a box with weight
    scale * solid angle * mean vertex intensity.  Triangles where the line is missing at a corner (it leaves the
    field window, turns back in a looping transition, or is dropped as weak there) are left out: the part of
    such a triangle that holds the line shrinks as 1 / rows, while giving each valid corner a third of the solid
    angle at its own field and intensity (as the square grids' ``_corner`` does) put sharp spikes where a corner's
    line runs fast across the sweep or sits next to a loop's turning point (1 / |d nu / dB| large).  On three
    Fe3+ systems of the epr-oxides prior (S 5/2, D 6.5-12.5 GHz, E/D 0.26-0.31, lw 2.9-6.4 mT; 1024 points over
    50-450 mT, first harmonic) against a 385-row grid with the corner deposits, the largest point error of the
    max-normalised spectrum at 11 / 21 / 41 rows went from 0.30-1.0 / 0.12-0.26 / 0.07-0.12 with the deposits to
    0.03-0.06 / 0.014-0.058 / 0.011-0.023 without them (at 193 rows 0.011-0.018 -> 0.007-0.011); the two ways
    agree within 0.004-0.010 at 385 rows (a one-off measurement; ``test_tri_grid_partial_triangles_left_out``
    holds one of these systems on 11 and 21 rows to 0.08 of 97 rows).
    dx < 0: box bins of width |dx| as first differences in T (nclass, nbins + 1; zeroed here); dx > 0: hat bins.
    """
    L = B.shape[1]
    nc = stick.shape[0]
    logr = math.log(cw[1] / cw[0]) if nc > 1 else 1.0
    T[:, :] = 0.0
    P = bary.shape[0]
    ns = sub.shape[0]
    vb = np.empty(P)
    vi = np.empty(P)
    vwid = np.empty(P)
    single = nc == 1 and dx < 0
    d = -dx
    for t in range(corners.shape[0]):
        c0, c1, c2 = corners[t, 0], corners[t, 1], corners[t, 2]
        for l in range(L):
            ok0 = B[c0, l] == B[c0, l]
            ok1 = B[c1, l] == B[c1, l]
            ok2 = B[c2, l] == B[c2, l]
            if not (ok0 and ok1 and ok2):
                continue
            _tri_vertices(B, I, W, l, t, corners, vidx, vw, bary, vb, vi, vwid)
            for s in range(ns):
                p0, p1, p2 = sub[s, 0], sub[s, 1], sub[s, 2]
                q0, q1, q2 = vb[p0], vb[p1], vb[p2]
                lo = min(q0, min(q1, q2))
                hi = max(q0, max(q1, q2))
                wgt = scale * subw[t, s] * (vi[p0] + vi[p1] + vi[p2]) * (1.0 / 3.0)
                if single:
                    box_diff(T, 0, x0, d, lo, hi, wgt)
                else:
                    wid = (vwid[p0] + vwid[p1] + vwid[p2]) * (1.0 / 3.0)
                    _add_line(stick, T, x0, dx, lo, hi, wgt, wid, lwg, cw, logr)
    if dx < 0:
        integrate_diff(T, stick)


# --------------------------------------------------------------------------------------------- sparse DFT
@numba.njit(cache=True, nogil=True)
def count_nonzero_upto(a, limit):
    """min(number of non-zero entries of the 2-D array ``a``, ``limit``): the scan stops at ``limit``."""
    n = 0
    for c in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[c, j] != 0.0:
                n += 1
                if n >= limit:
                    return n
    return n


@numba.njit(cache=True, nogil=True)
def nonzero_rows(a, out):
    """out[c] = whether row c of the 2-D array ``a`` has a non-zero entry (the scan of a row stops at the first)."""
    for c in range(a.shape[0]):
        out[c] = False
        for j in range(a.shape[1]):
            if a[c, j] != 0.0:
                out[c] = True
                break


@numba.njit(cache=True, nogil=True)
def sparse_rfft(stick, nfft, out):
    """out[c, k] = sum_j stick[c, j] exp(-2 pi i j k / nfft) for k < out.shape[1] (the first terms of
    ``np.fft.rfft(stick, nfft)``), by phasor recurrence over the non-zero bins only (solution spectra)."""
    nc, nb = stick.shape
    nk = out.shape[1]
    for c in range(nc):
        for k in range(nk):
            out[c, k] = 0.0
        for j in range(nb):
            v = stick[c, j]
            if v != 0.0:
                ang = -2.0 * math.pi * j / nfft
                w = complex(math.cos(ang), math.sin(ang))
                z = complex(v, 0.0)
                for k in range(nk):
                    if k % 64 == 0:   # re-seed the phasor (rounding does not accumulate)
                        a = ang * k
                        z = complex(v * math.cos(a), v * math.sin(a))
                    out[c, k] += z
                    z *= w


# --------------------------------------------------------------------------------------------- line shape
@numba.njit(cache=True, nogil=True)
def fourier_lineshape(F, a, keeps, df, common, out):
    """out[k] = common[k] * sum_c F[c, k] exp(-a[c] (k df)^2), the sum over the classes with k < keeps[c]
    (Gaussian width classes in Fourier space times the shared Lorentzian/modulation/phase factor ``common``,
    needed for k < max(keeps)); out[k] = 0 beyond.  The Gaussians by the exact recurrence e_(k+1) = e_k r_k,
    r_(k+1) = r_k q with r_0 = exp(-a df^2), q = exp(-2 a df^2), re-seeded every 256 steps."""
    nc = F.shape[0]
    kmax = 0
    for c in range(nc):
        kmax = max(kmax, keeps[c])
    for k in range(out.shape[0]):
        out[k] = 0.0
    for c in range(nc):
        ac = a[c] * df * df
        q = math.exp(-2.0 * ac)
        e = 1.0
        r = 1.0
        for k in range(keeps[c]):
            if k % 256 == 0:
                e = math.exp(-ac * k * k)
                r = math.exp(-ac * (2 * k + 1))
            out[k] += F[c, k] * e
            e *= r
            r *= q
    for k in range(kmax):
        out[k] *= common[k]


# --------------------------------------------------------------------------------------------- direct lines
@numba.njit(cache=True, nogil=True)
def gauss_direct(B, I, W, scale, lwg, x0, dx, harmonic, area, out):
    """Add Gaussian lines (derivative ``harmonic`` 0/1/2 of unit-area Gaussians times ``area``) straight onto
    the output grid x0 + i dx: the lines at B[0, l] with weights scale * I[0, l] and FWHM sqrt(lwg^2 + W^2)
    (a single orientation, i.e. solution/isotropic spectra without modulation, Lorentzian or phase)."""
    n = out.shape[0]
    c = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    for l in range(B.shape[1]):
        b = B[0, l]
        if b != b:
            continue
        w = scale * I[0, l] * area
        fw = math.sqrt(lwg * lwg + W[0, l] * W[0, l])
        sig = fw * c
        inv2 = 1.0 / (sig * sig)
        norm = w / (sig * math.sqrt(2.0 * math.pi))
        i0 = max(int(math.floor((b - 8.0 * sig - x0) / dx)), 0)
        i1 = min(int(math.ceil((b + 8.0 * sig - x0) / dx)) + 1, n)
        for i in range(i0, i1):
            u = x0 + i * dx - b
            gv = norm * math.exp(-0.5 * u * u * inv2)
            if harmonic == 0:
                out[i] += gv
            elif harmonic == 1:
                out[i] -= u * inv2 * gv
            else:
                out[i] += (u * u * inv2 - 1.0) * inv2 * gv


# --------------------------------------------------------------------------------------------- nuisances
@numba.njit(cache=True, nogil=True)
def finish_spectrum(y, u, c0, c1, c2, bg_amp, bg_center, hw, hw3, bg_scale, out):
    """out = y / max|y| (y as is when it is all zero) + c0 + c1 u + c2 u^2 + bg_amp * bg, with bg the
    derivative of a Lorentzian of half width ``hw`` (mT; ``hw3`` = hw**3) centred at ``bg_center`` times
    ``bg_scale``: bg = -2 d hw^3 / (d^2 + hw^2)^2 * bg_scale, d = x - bg_center, passed as ``u`` and x through
    ``bg_center`` = NaN to skip it.  ``u``: (2, n), the reduced axis u in row 0 and the field x (mT) in row 1.
    The operations are those of the NumPy expression term by term, in the same order (same rounding)."""
    n = y.shape[0]
    m = 0.0
    for j in range(n):
        a = abs(y[j])
        if a > m or a != a:
            m = a
    for j in range(n):
        v = y[j] / m if m > 0 else y[j]
        uj = u[0, j]
        v = v + c0 + c1 * uj + c2 * uj * uj
        out[j] = v
    if bg_amp != 0:
        for j in range(n):
            d = u[1, j] - bg_center
            t = d * d + hw * hw
            out[j] = out[j] + bg_amp * (-2.0 * d * hw3 / (t * t) * bg_scale)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def end_baseline(x, y):
    """Remove in place from ``y`` the straight line through (median x, median y) of its first and of its last
    w = max(3, n // 20) points (what ``train.prepare`` does to a measured EPR spectrum, and the simulator's
    ``crop_window`` to a measured sub-window) and return max |y| after it.  The operations are those of the NumPy
    expression ``y - (ya + (yb - ya) * (x - xa) / (xb - xa))`` (same rounding; NumPy's medians), with NumPy's
    division semantics: a file too short for two distinct end windows (xa == xb) gives NaN, which ``prepare``
    refuses as a flat spectrum, not a ZeroDivisionError."""
    n = y.shape[0]
    w = max(3, n // 20)
    xa, xb = np.median(x[:w]), np.median(x[n - w:])
    ya, yb = np.median(y[:w]), np.median(y[n - w:])
    m = 0.0
    for j in range(n):
        v = y[j] - (ya + (yb - ya) * (x[j] - xa) / (xb - xa))
        y[j] = v
        a = abs(v)
        if a > m or a != a:
            m = a
    return m


# ------------------------------------------------------------------- exact electron spin, perturbative nucleus
@numba.njit(cache=True, nogil=True)
def electron_ops(S, D, E):
    """Zero-field splitting (nS x nS, MHz) and the electron spin matrices Sx, Sy, Sz (|mS> descending), complex."""
    nS = int(round(2 * S + 1))
    sx = np.zeros((nS, nS), np.complex128)
    sy = np.zeros((nS, nS), np.complex128)
    sz = np.zeros((nS, nS), np.complex128)
    for a in range(nS):
        sz[a, a] = S - a
        if a > 0:
            m = S - a
            c = math.sqrt(S * (S + 1) - m * (m + 1))
            sx[a - 1, a] = 0.5 * c
            sx[a, a - 1] = 0.5 * c
            sy[a - 1, a] = -0.5j * c
            sy[a, a - 1] = 0.5j * c
    zfs = D * (sz @ sz - S * (S + 1) / 3.0 * np.eye(nS)) + E * (sx @ sx - sy @ sy)
    return zfs, sx, sy, sz


@numba.njit(cache=True, nogil=True)
def _d2_from_eig(U, mu, cb, out, tmp):
    """out[j', j] = |<m'| exp(-i beta Iy) |m>|^2 with Iy = U diag(mu) U^H and cos(beta) = cb."""
    n = mu.shape[0]
    beta = math.acos(min(1.0, max(-1.0, cb)))
    for q in range(n):
        tmp[q] = complex(math.cos(beta * mu[q]), -math.sin(beta * mu[q]))
    for jp in range(n):
        for j in range(n):
            z = 0.0 + 0.0j
            for q in range(n):
                z += U[jp, q] * tmp[q] * U[j, q].conjugate()
            out[jp, j] = z.real * z.real + z.imag * z.imag


@numba.njit(cache=True, nogil=True)
def _hf_node(Bm, nx, ny, nz, Hz, Sx, Sy, Sz, g, A, I, gn, H, w, V, scratch, Qc, Zr, uc, pc, Sab, Gab,
             eel, del_, hf1, dhf1, hf2, prob, uvec, split):
    """One field node of ``hf_knots``: the electron levels (exact), their slopes, the hyperfine energies of each
    level and nuclear projection m (first order with its exact field derivative, second order) and the
    electron transition probabilities."""
    nS = Hz.shape[0]
    nI = int(round(2 * I + 1))
    gx, gy, gz = BMAGN * g[0] * nx, BMAGN * g[1] * ny, BMAGN * g[2] * nz
    for i in range(nS):
        for j in range(nS):
            H[i, j] = Hz[i, j] + Bm * (gx * Sx[i, j] + gy * Sy[i, j] + gz * Sz[i, j])
    herm_eigh(H, w, V, scratch, Qc, Zr, uc, pc)
    # <a|S_i|b> (i = x, y, z) and <a|G|b> with G = dH/dB
    for i in range(3):
        Sop = Sx if i == 0 else (Sy if i == 1 else Sz)
        for a in range(nS):
            for b in range(nS):
                s = 0.0 + 0.0j
                for p in range(nS):
                    vp = V[p, a].conjugate()
                    for q in range(nS):
                        if Sop[p, q] != 0.0:
                            s += vp * Sop[p, q] * V[q, b]
                Sab[i, a, b] = s
    for a in range(nS):
        for b in range(nS):
            Gab[a, b] = gx * Sab[0, a, b] + gy * Sab[1, a, b] + gz * Sab[2, a, b]
    II = I * (I + 1.0)
    nzc = gn * NMAGN
    # first order: h_a = A <S>_a - gn muN B n, the nuclear states quantised along u_a = sign(h_a.n) h_a / |h_a|
    # (m: the projection on u_a; the sign keeps m the same nuclear state on every level at high field)
    for a in range(nS):
        eel[a] = w[a]
        del_[a] = Gab[a, a].real
        hx = A[0] * Sab[0, a, a].real - nzc * Bm * nx
        hy = A[1] * Sab[1, a, a].real - nzc * Bm * ny
        hz = A[2] * Sab[2, a, a].real - nzc * Bm * nz
        hn = math.sqrt(hx * hx + hy * hy + hz * hz)
        sgn = 1.0 if hx * nx + hy * ny + hz * nz >= 0.0 else -1.0
        if hn > 0.0:
            ux, uy, uz = sgn * hx / hn, sgn * hy / hn, sgn * hz / hn
        else:
            ux, uy, uz = nx, ny, nz
        uvec[a, 0], uvec[a, 1], uvec[a, 2] = ux, uy, uz
        split[a] = sgn * hn
        # d<S_i>_a/dB = 2 Re sum_b <a|S_i|b><b|G|a> / (E_a - E_b) (first-order perturbation of |a>)
        dsx = 0.0
        dsy = 0.0
        dsz = 0.0
        for b in range(nS):
            de = w[a] - w[b]
            if b == a or de == 0.0:
                continue
            ga = Gab[b, a] / de
            dsx += 2.0 * (Sab[0, a, b] * ga).real
            dsy += 2.0 * (Sab[1, a, b] * ga).real
            dsz += 2.0 * (Sab[2, a, b] * ga).real
        dh = (A[0] * dsx - nzc * nx) * ux + (A[1] * dsy - nzc * ny) * uy + (A[2] * dsz - nzc * nz) * uz
        for j in range(nI):
            m = I - j
            hf1[a, j] = m * split[a]
            dhf1[a, j] = m * dh
    # second order in the hyperfine coupling between electron levels, v_i = A_i <a|S_i|b>:
    # sum_b sum_m' |<m|v.I|m'>|^2 / (E_(a,m) - E_(b,m')) with the first-order energies in the denominators
    # (v.I = v_u Iu + c+ I+ + c- I- in a frame x', y', u_a; m' = m, m + 1, m - 1)
    for a in range(nS):
        ux, uy, uz = uvec[a, 0], uvec[a, 1], uvec[a, 2]
        # x' normal to u (the axis of u's smallest component), y' = u x x'
        if abs(ux) <= abs(uy) and abs(ux) <= abs(uz):
            px, py, pz = 0.0, uz, -uy
        elif abs(uy) <= abs(uz):
            px, py, pz = -uz, 0.0, ux
        else:
            px, py, pz = uy, -ux, 0.0
        pn = math.sqrt(px * px + py * py + pz * pz)
        px, py, pz = px / pn, py / pn, pz / pn
        qx, qy, qz = uy * pz - uz * py, uz * px - ux * pz, ux * py - uy * px
        for j in range(nI):
            hf2[a, j] = 0.0
        for b in range(nS):
            if b == a:
                continue
            vx, vy, vz = A[0] * Sab[0, a, b], A[1] * Sab[1, a, b], A[2] * Sab[2, a, b]
            vu = vx * ux + vy * uy + vz * uz
            vp = vx * px + vy * py + vz * pz
            vq = vx * qx + vy * qy + vz * qz
            au = vu.real * vu.real + vu.imag * vu.imag
            cp = 0.5 * (vp - 1j * vq)          # coefficient of I+
            cm = 0.5 * (vp + 1j * vq)          # coefficient of I-
            ap = cp.real * cp.real + cp.imag * cp.imag
            am = cm.real * cm.real + cm.imag * cm.imag
            for j in range(nI):
                m = I - j
                ea = w[a] + m * split[a]
                s = 0.0
                den = ea - w[b] - m * split[b]
                if den != 0.0:
                    s += au * m * m / den
                if m < I:                       # <m|v.I|m+1> = c- sqrt(I(I+1) - m(m+1))
                    den = ea - w[b] - (m + 1.0) * split[b]
                    if den != 0.0:
                        s += am * (II - m * (m + 1.0)) / den
                if m > -I:                      # <m|v.I|m-1> = c+ sqrt(I(I+1) - m(m-1))
                    den = ea - w[b] - (m - 1.0) * split[b]
                    if den != 0.0:
                        s += ap * (II - m * (m - 1.0)) / den
                hf2[a, j] += s
    # perpendicular-mode electron transition probabilities 0.5 (|M|^2 - |n.M|^2), M_i = g_i <a|S_i|b>
    for a in range(nS):
        for b in range(a + 1, nS):
            mx = g[0] * Sab[0, a, b]
            my = g[1] * Sab[1, a, b]
            mz = g[2] * Sab[2, a, b]
            tot = abs(mx) ** 2 + abs(my) ** 2 + abs(mz) ** 2
            par = abs(nx * mx + ny * my + nz * mz) ** 2
            prob[a, b] = 0.5 * (tot - par)


@numba.njit(cache=True, nogil=True)
def hf_knots(nvec, Hz, Sx, Sy, Sz, I, g, A, gn, gstrain, mw, Bnodes, rel_threshold, Uy, muy, dmax, outB, outI,
             outW):
    """Resonance fields of an electron spin S with one nucleus I: the electron Hamiltonian (zero-field
    splitting ``Hz`` + Zeeman, nS x nS) diagonalised exactly on the field nodes, the hyperfine coupling
    (diagonal A, MHz) and the nuclear Zeeman term to second order in the electron eigenbasis, instead of
    diagonalising the nS (2I + 1) product space.  First order: m |h_a| with h_a = A<S>_a - gn muN B n, the
    nuclear states quantised along u_a = sign(h_a.n) h_a / |h_a|; second order: sum over the other electron
    levels b and m' = m, m +- 1 of |<m|v.I|m'>|^2 / (E_(a,m) - E_(b,m')), v_i = A_i <a|S_i|b>, with the
    first-order energies in the denominators (which carries the leading third-order term).

    Levels E_(a,m)(B) are Hermite-cubic between the nodes: electron slopes by Hellmann-Feynman, first-order
    hyperfine slopes from the field derivative of <S>_a (first-order perturbation of the eigenvectors), the
    second-order part's slope by finite differences over the nodes.  Transitions (a, m) -> (b, m'), a < b,
    |m' - m| <= dmax, with intensity P_ab |<m'_b|m_a>|^2 / |slope| (P_ab the electron transition probability,
    the overlap of nuclear states quantised along u_a and u_b from the rotation by their angle, Uy and muy the
    eigenvectors (columns) and eigenvalues of I_y; both interpolated linearly between nodes).  The admixture of
    other electron levels into the transition moments is not included, so the forbidden (m' != m) lines are
    approximate where the zero-field splitting tilts u_a against u_b.  Line index
    (((pair (2I + 1)) + j) (2 dmax + 1) + m' - m + dmax) R + r with j = I - m, r the slot (``_root_slot``),
    R = outB.shape[1] // (npairs (2I + 1) (2 dmax + 1)).  Lines weaker than rel_threshold * strongest are dropped
    (NaN field).  Sx, Sy, Sz from ``electron_ops``.
    """
    K = nvec.shape[0]
    nS = Hz.shape[0]
    nI = int(round(2 * I + 1))
    M = Bnodes.shape[0]
    npair = nS * (nS - 1) // 2
    nd = 2 * dmax + 1
    R = outB.shape[1] // (npair * nI * nd)
    full = (1 << R) - 1
    D2 = np.empty((M, npair, nI, nI))
    Uv = np.empty((M, nS, 3))
    tmpc = np.empty(nI, np.complex128)
    El = np.empty((M, nS, nI))
    dEl = np.empty((M, nS, nI))
    hf2 = np.empty((M, nS, nI))
    P = np.empty((M, nS, nS))
    eel = np.empty(nS)
    del_ = np.empty(nS)
    hf1 = np.empty((nS, nI))
    dhf1 = np.empty((nS, nI))
    H = np.empty((nS, nS), np.complex128)
    w = np.empty(nS)
    V = np.empty((nS, nS), np.complex128)
    scratch = np.empty(nS)
    Qc = np.empty((nS, nS), np.complex128)
    Zr = np.empty((nS, nS))
    uc = np.empty(nS, np.complex128)
    pc = np.empty(nS, np.complex128)
    Sab = np.empty((3, nS, nS), np.complex128)
    Gab = np.empty((nS, nS), np.complex128)
    uvec = np.empty((nS, 3))
    split = np.empty(nS)
    for k in range(K):
        nx, ny, nz = nvec[k, 0], nvec[k, 1], nvec[k, 2]
        gxn, gyn, gzn = g[0] * nx, g[1] * ny, g[2] * nz
        geff = math.sqrt(gxn * gxn + gyn * gyn + gzn * gzn)
        bw = math.sqrt((gxn * gstrain[0]) ** 2 + (gyn * gstrain[1]) ** 2 + (gzn * gstrain[2]) ** 2) / geff / geff
        for m in range(M):
            _hf_node(Bnodes[m], nx, ny, nz, Hz, Sx, Sy, Sz, g, A, I, gn, H, w, V, scratch, Qc, Zr, uc, pc, Sab,
                     Gab, eel, del_, hf1, dhf1, hf2[m], P[m], uvec, split)
            pr = 0
            for a in range(nS):
                for b in range(a + 1, nS):
                    cb = uvec[a, 0] * uvec[b, 0] + uvec[a, 1] * uvec[b, 1] + uvec[a, 2] * uvec[b, 2]
                    if dmax == 0 or cb >= 1.0 - 1e-15:
                        for jp in range(nI):
                            for j in range(nI):
                                D2[m, pr, jp, j] = 1.0 if jp == j else 0.0
                    else:
                        _d2_from_eig(Uy, muy, cb, D2[m, pr], tmpc)
                    pr += 1
            for a in range(nS):
                for j in range(nI):
                    El[m, a, j] = eel[a] + hf1[a, j] + hf2[m, a, j]
                    dEl[m, a, j] = del_[a] + dhf1[a, j]
        # slopes of the second-order part by finite differences (second order at the ends)
        if M >= 3:
            for m in range(M):
                if m == 0:
                    i0, i1, i2, c0, c1, c2 = 0, 1, 2, -1.5, 2.0, -0.5
                elif m == M - 1:
                    i0, i1, i2, c0, c1, c2 = M - 3, M - 2, M - 1, 0.5, -2.0, 1.5
                else:
                    i0, i1, i2, c0, c1, c2 = m - 1, m, m + 1, -0.5, 0.0, 0.5
                h = (Bnodes[M - 1] - Bnodes[0]) / (M - 1)
                for a in range(nS):
                    for j in range(nI):
                        dEl[m, a, j] += (c0 * hf2[i0, a, j] + c1 * hf2[i1, a, j] + c2 * hf2[i2, a, j]) / h
        elif M == 2:
            h = Bnodes[1] - Bnodes[0]
            for a in range(nS):
                for j in range(nI):
                    s = (hf2[1, a, j] - hf2[0, a, j]) / h
                    dEl[0, a, j] += s
                    dEl[1, a, j] += s
        for jj in range(outB.shape[1]):
            outB[k, jj] = np.nan
            outI[k, jj] = 0.0
            outW[k, jj] = 0.0
        pmax = 0.0
        pair = 0
        for a in range(nS):
            for b in range(a + 1, nS):
                for j in range(nI):
                    for dj in range(-dmax, dmax + 1):
                        jb = j + dj
                        if jb < 0 or jb >= nI:
                            continue
                        taken = 0
                        for m in range(M - 1):
                            if taken == full:
                                break
                            f0 = El[m, b, jb] - El[m, a, j] - mw
                            f1 = El[m + 1, b, jb] - El[m + 1, a, j] - mw
                            if (f0 <= 0.0 and f1 > 0.0) or (f0 >= 0.0 and f1 < 0.0):
                                Br, t, sl = _hermite_root(Bnodes[m], Bnodes[m + 1], f0, f1,
                                                          dEl[m, b, jb] - dEl[m, a, j],
                                                          dEl[m + 1, b, jb] - dEl[m + 1, a, j])
                                q = _root_slot(taken, sl, R) if sl != 0.0 else -1
                                if q >= 0:
                                    idx = ((pair * nI + j) * nd + dj + dmax) * R + q
                                    val = ((1.0 - t) * P[m, a, b] * D2[m, pair, jb, j]
                                           + t * P[m + 1, a, b] * D2[m + 1, pair, jb, j]) / abs(sl)
                                    outB[k, idx] = Br
                                    outI[k, idx] = val
                                    outW[k, idx] = Br * bw
                                    if val > pmax:
                                        pmax = val
                                    taken |= 1 << q
                pair += 1
        _drop_weak(k, pmax, rel_threshold, outB, outI)


# --------------------------------------------------------------------------------------------- fused S = 1/2
@numba.njit(cache=True, nogil=True)
def width_classes(Wmin, Wmax, lwg, dxc, ratio, max_classes):
    """Gaussian FWHM of the strain width classes: geometric from max(sqrt(lwg^2 + Wmin^2), dxc / 2) to
    sqrt(lwg^2 + Wmax^2) (the total widths of the narrowest and widest strain-broadened lines) with neighbouring
    ratio about ``ratio`` (2 .. ``max_classes`` classes), or the one class ``lwg`` when the largest strain width
    Wmax is below 1e-3 max(lwg, dxc).  (Where even the widest line is below dxc / 2 the classes run from
    max(lwg, dxc / 2) down to it; lines below the first class go into it.)"""
    if not Wmax > 1e-3 * max(lwg, dxc):
        out = np.empty(1)
        out[0] = lwg
        return out
    c_hi = math.sqrt(lwg ** 2 + Wmax ** 2)
    c_lo = max(math.sqrt(lwg ** 2 + Wmin ** 2), 0.5 * dxc)
    if not c_lo < c_hi:
        c_lo = max(lwg, 0.5 * dxc)
    ncls = min(max(2, int(math.ceil(math.log(c_hi / c_lo) / math.log(ratio))) + 1), max_classes)
    out = np.empty(ncls)
    q = c_hi / c_lo
    for c in range(ncls):
        out[c] = c_lo * q ** (c / (ncls - 1))
    return out


@numba.njit(cache=True, nogil=True)
def s12_powder_plain(nvec, g, gstrain, mw, ntheta, nphi, theta, phi, refine, x0, dx, lwg, dxc, ratio,
                     max_classes, scale, nb):
    """One S = 1/2 centre without nuclei on a product orientation grid in one call: ``s12_knots`` (its plain
    branch), the strain width classes (``width_classes`` of the knot widths; one class without strain)
    and ``powder_bin`` onto the columns c0 .. c1 - 1 of the nb-column grid that the lines can reach
    (``field_window``).  Returns (stick (nclass, c1 - c0), class widths, c0): what the caller's separate calls
    produce, without their per-call overhead."""
    K = nvec.shape[0]
    B = np.empty((K, 1))
    In = np.empty((K, 1))
    W = np.empty((K, 1))
    _s12_knots_plain(nvec, g, gstrain, 1.0, mw, B, In, W)
    Wmax = 0.0
    Wmin = np.inf
    if max(gstrain[0], gstrain[1], gstrain[2]) > 0.0:
        for k in range(K):
            Wmax = max(Wmax, W[k, 0])
            Wmin = min(Wmin, W[k, 0])
    cw = width_classes(Wmin, Wmax, lwg, dxc, ratio, max_classes)
    c0, c1 = field_window(B, x0, abs(dx), nb, 2)
    if c1 <= c0:
        c0, c1 = 0, 1
    stick = np.zeros((cw.shape[0], c1 - c0))
    T = np.empty((cw.shape[0], c1 - c0 + 1))
    partner = np.full(1, -1, dtype=np.int64)
    powder_bin(B, In, W, partner, ntheta, nphi, theta, phi, refine, x0 + c0 * abs(dx), dx, lwg, cw, scale, stick,
               T)
    return stick, cw, c0


@numba.njit(cache=True, nogil=True)
def fold_spectrum(X, nfft, sub, out):
    """The non-negative frequencies of the DFT of every ``sub``-th point of a real nfft-point signal from the
    signal's rfft ``X`` (nfft // 2 + 1 values): out[k] = sum_q X_full[k + q M], k = 0 .. M // 2, M = nfft // sub
    (nfft a multiple of sub), X_full the full Hermitian spectrum (X_full[nfft - j] = conj X[j]).  Then
    irfft(out, M) / sub = irfft(X, nfft)[::sub]: the output points only, from an FFT sub times shorter."""
    M = nfft // sub
    h = M // 2
    nf = X.shape[0]
    for k in range(h + 1):
        out[k] = 0.0
    for q in range(sub):
        base = q * M
        for k in range(h + 1):
            j = base + k
            if j >= nfft:
                break
            if j < nf:
                out[k] += X[j]
            else:
                out[k] += X[nfft - j].conjugate()


@numba.njit(cache=True, nogil=True)
def occupied_range(a, ncol):
    """(first, last) column among the first ``ncol`` of the 2-D array ``a`` with a non-zero entry in any row;
    (-1, -1) if all are zero.  Each row is scanned from both ends up to its first non-zero entry only (or the
    bounds found in the rows before)."""
    ncol = min(ncol, a.shape[1])
    lo = ncol
    hi = -1
    for c in range(a.shape[0]):
        for j in range(lo):
            if a[c, j] != 0.0:
                lo = j
                break
        for j in range(ncol - 1, hi, -1):
            if a[c, j] != 0.0:
                hi = j
                break
    if hi < 0:
        return -1, -1
    return lo, hi


# --------------------------------------------------------------------------------------------- nuisances
@numba.njit(cache=True, nogil=True)
def pink_spectrum(v, out):
    """out[k] = (v[k] + i v[h + k]) / sqrt(k) for k = 1 .. h - 1 and out[0] = 0, h = out.shape[0]: the 1/f
    amplitude spectrum of ``simulator.pink_noise`` from 2 h standard normal draws (real parts, then imaginary)."""
    h = out.shape[0]
    out[0] = 0.0
    for k in range(1, h):
        out[k] = complex(v[k], v[h + k]) / math.sqrt(k)


@numba.njit(cache=True, nogil=True)
def unit_std(y):
    """y /= its (population) standard deviation, in place, when that is > 0."""
    n = y.shape[0]
    s = 0.0
    for i in range(n):
        s += y[i]
    mu = s / n
    q = 0.0
    for i in range(n):
        d = y[i] - mu
        q += d * d
    sd = math.sqrt(q / n)
    if sd > 0.0:
        for i in range(n):
            y[i] /= sd
