"""Numba kernels of the ``swelling`` simulator: arrays in, outputs preallocated by the caller and filled in place.

Lengths in nm; pixel (row r, column j) is sampled at its centre ((j + 0.5) px, (r + 0.5) px).  Images are periodic
laterally (voids crossing an edge re-enter on the other side), matching the FFT used for the Fresnel transfer.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..fastmath import fast_exp


@nb.njit(cache=True, nogil=True)
def chord(dx, dy, cz, a, normals, h, thickness):
    """Length of the beam path (along z) at lateral offset (dx, dy) from a convex void centred at depth ``cz``,
    inside the foil [0, thickness].  Faces: normals[k] . (p - c) <= a h[k]; no faces means a sphere of radius a."""
    nf = normals.shape[0]
    if nf == 0:
        r2 = a * a - dx * dx - dy * dy
        if r2 <= 0.0:
            return 0.0
        half = math.sqrt(r2)
        lo = cz - half
        hi = cz + half
    else:
        lo = -1e300
        hi = 1e300
        for k in range(nf):
            s = a * h[k] - normals[k, 0] * dx - normals[k, 1] * dy
            nz = normals[k, 2]
            if abs(nz) < 1e-12:
                if s < 0.0:
                    return 0.0
            elif nz > 0.0:
                v = cz + s / nz
                if v < hi:
                    hi = v
            else:
                v = cz + s / nz
                if v > lo:
                    lo = v
        if hi <= lo:
            return 0.0
    if lo < 0.0:
        lo = 0.0
    if hi > thickness:
        hi = thickness
    return hi - lo if hi > lo else 0.0


@nb.njit(cache=True, nogil=True)
def _chord_row(s0, n0, inz, kind, cz, dx, thickness):
    """``chord`` of a polyhedron along one image row: s0[k] = a h[k] - n_y[k] dy for the row, inz[k] = 1/n_z[k],
    kind[k] = +1 / -1 / 0 for n_z > 0 / < 0 / ~ 0 (no division per pixel)."""
    lo = -1e300
    hi = 1e300
    for k in range(s0.shape[0]):
        s = s0[k] - n0[k] * dx
        if kind[k] == 0:
            if s < 0.0:
                return 0.0
        elif kind[k] > 0:
            v = cz + s * inz[k]
            if v < hi:
                hi = v
        else:
            v = cz + s * inz[k]
            if v > lo:
                lo = v
    if lo < 0.0:
        lo = 0.0
    if hi > thickness:
        hi = thickness
    return hi - lo if hi > lo else 0.0


@nb.njit(cache=True, nogil=True)
def render_voids(centres, scales, normals, h, circ, thickness, pixel, path, best, mask):
    """Project voids through the foil.

    ``path[r, j]`` += void chord (nm) through each void; ``mask[r, j]`` = 1 + index of the void with the longest
    chord at that pixel (0: none), ``best`` holds that chord (caller fills it with 0).  ``scales[i]`` is the face
    distance (sphere: radius) of void i; ``circ`` the circumradius over the face distance.  Only each void's
    bounding box is visited; polyhedra use per-row face terms and precomputed 1/n_z (``_chord_row``).
    """
    ny, nx = path.shape
    nf = normals.shape[0]
    n0 = np.empty(nf)
    inz = np.empty(nf)
    kind = np.empty(nf, np.int64)
    s0 = np.empty(nf)
    for k in range(nf):
        n0[k] = normals[k, 0]
        nz = normals[k, 2]
        if abs(nz) < 1e-12:
            kind[k] = 0
            inz[k] = 0.0
        else:
            kind[k] = 1 if nz > 0.0 else -1
            inz[k] = 1.0 / nz
    for i in range(centres.shape[0]):
        cx = centres[i, 0]
        cy = centres[i, 1]
        cz = centres[i, 2]
        a = scales[i]
        rc = a * circ
        if cz + rc < 0.0 or cz - rc > thickness:
            continue
        j0 = int(math.floor((cx - rc) / pixel - 0.5))
        j1 = int(math.ceil((cx + rc) / pixel - 0.5))
        r0 = int(math.floor((cy - rc) / pixel - 0.5))
        r1 = int(math.ceil((cy + rc) / pixel - 0.5))
        if j1 - j0 >= nx:
            j1 = j0 + nx - 1
        if r1 - r0 >= ny:
            r1 = r0 + ny - 1
        for r in range(r0, r1 + 1):
            dy = (r + 0.5) * pixel - cy
            rr = r % ny
            if nf > 0:
                for k in range(nf):
                    s0[k] = a * h[k] - normals[k, 1] * dy
            for j in range(j0, j1 + 1):
                dx = (j + 0.5) * pixel - cx
                if nf == 0:
                    c = chord(dx, dy, cz, a, normals, h, thickness)
                else:
                    c = _chord_row(s0, n0, inz, kind, cz, dx, thickness)
                if c > 0.0:
                    jj = j % nx
                    path[rr, jj] += c
                    if c > best[rr, jj]:
                        best[rr, jj] = c
                        mask[rr, jj] = i + 1


@nb.njit(cache=True, nogil=True)
def render_lines(p0, p1, width, strength, pixel, out):
    """Dislocation lines (segments p0[k] -> p1[k], nm): multiply ``out`` by 1 - s exp(-d^2 / (2 w^2)), d the
    distance of the pixel centre to the segment; periodic image."""
    ny, nx = out.shape
    for k in range(p0.shape[0]):
        ax = p0[k, 0]
        ay = p0[k, 1]
        bx = p1[k, 0]
        by = p1[k, 1]
        w = width[k]
        s = strength[k]
        ext = 3.0 * w
        ex = bx - ax
        ey = by - ay
        l2 = ex * ex + ey * ey
        j0 = int(math.floor((min(ax, bx) - ext) / pixel - 0.5))
        j1 = int(math.ceil((max(ax, bx) + ext) / pixel - 0.5))
        r0 = int(math.floor((min(ay, by) - ext) / pixel - 0.5))
        r1 = int(math.ceil((max(ay, by) + ext) / pixel - 0.5))
        if j1 - j0 >= nx:
            j1 = j0 + nx - 1
        if r1 - r0 >= ny:
            r1 = r0 + ny - 1
        inv = 1.0 / (2.0 * w * w)
        for r in range(r0, r1 + 1):
            y = (r + 0.5) * pixel
            for j in range(j0, j1 + 1):
                x = (j + 0.5) * pixel
                t = ((x - ax) * ex + (y - ay) * ey) / l2 if l2 > 0.0 else 0.0
                if t < 0.0:
                    t = 0.0
                elif t > 1.0:
                    t = 1.0
                qx = ax + t * ex - x
                qy = ay + t * ey - y
                d2 = qx * qx + qy * qy
                if d2 < ext * ext:
                    out[r % ny, j % nx] *= 1.0 - s * math.exp(-d2 * inv)


@nb.njit(cache=True, nogil=True)
def exit_wave(path, ar, ai, psi):
    """psi = exp((ar + i ai) path) (complex64), computed only where the path is non-zero (1 elsewhere)."""
    ny, nx = path.shape
    for r in range(ny):
        for j in range(nx):
            L = path[r, j]
            if L == 0.0:
                psi[r, j] = 1.0
            else:
                m = math.exp(ar * L)
                psi[r, j] = complex(m * math.cos(ai * L), m * math.sin(ai * L))


@nb.njit(cache=True, nogil=True)
def fresnel(spec, fy, fx, c):
    """spec *= exp(-i c (fy^2 + fx^2)) in place (c = pi lambda defocus): the phase factor is separable, so it is
    the product of a row and a column phasor (2 n cos/sin pairs instead of n^2)."""
    ny, nx = spec.shape
    py = np.empty(ny, np.complex128)
    px = np.empty(nx, np.complex128)
    for r in range(ny):
        ph = -c * fy[r] * fy[r]
        py[r] = complex(math.cos(ph), math.sin(ph))
    for j in range(nx):
        ph = -c * fx[j] * fx[j]
        px[j] = complex(math.cos(ph), math.sin(ph))
    for r in range(ny):
        a = py[r]
        for j in range(nx):
            spec[r, j] *= a * px[j]


@nb.njit(cache=True, nogil=True)
def gaussian_mtf(spec, fy, fx, s2):
    """spec *= exp(-2 pi^2 s2 q^2) in place (s2 = blur sigma^2), as a product of row and column factors."""
    ny, nx = spec.shape
    k = -2.0 * math.pi * math.pi * s2
    ey = np.empty(ny)
    ex = np.empty(nx)
    for r in range(ny):
        ey[r] = math.exp(k * fy[r] * fy[r])
    for j in range(nx):
        ex[j] = math.exp(k * fx[j] * fx[j])
    for r in range(ny):
        a = ey[r]
        for j in range(nx):
            spec[r, j] *= a * ex[j]


@nb.njit(cache=True, nogil=True, fastmath=True)
def _wave_row(amp, cy, sy, cx, sx, r, acc):
    """acc[j] = sum_w amp[w] (cy[w, r] cx[w, j] - sy[w, r] sx[w, j]): one row of a sum of plane waves."""
    nx = acc.shape[0]
    for j in range(nx):
        acc[j] = 0.0
    for w in range(amp.shape[0]):
        a = amp[w] * cy[w, r]
        b = amp[w] * sy[w, r]
        for j in range(nx):
            acc[j] += a * cx[w, j] - b * sx[w, j]


@nb.njit(cache=True, nogil=True, fastmath=True)
def modulate_waves(wave, ta, tcy, tsy, tcx, tsx, tcoef, ba, bcy, bsy, bcx, bsx, bc, inv_w2, out):
    """``modulate`` with both smooth fields given as sums of plane waves cos(ky y + kx x + ph) = cy cx - sy sx
    (amplitudes ta, ba; per wave the row factors cy, sy (k, ny) and column factors cx, sx (k, nx)): the fields
    are formed one row at a time, with no image-sized temporaries.  exp by ``fast_exp`` (relative 1e-13)."""
    ny, nx = out.shape
    tr = np.empty(nx)
    br = np.empty(nx)
    for r in range(ny):
        _wave_row(ta, tcy, tsy, tcx, tsx, r, tr)
        _wave_row(ba, bcy, bsy, bcx, bsx, r, br)
        for j in range(nx):
            w = wave[r, j]
            b = br[j]
            out[r, j] = (w.real * w.real + w.imag * w.imag) * fast_exp(-tcoef * tr[j]) \
                * (1.0 - bc * fast_exp(-b * b * inv_w2))


@nb.njit(cache=True, nogil=True)
def shot_noise(inten, gauss, counts, out):
    """out = (I + sqrt(I mean / counts) g) / mean, I clipped at 0: Gaussian approximation of Poisson noise at
    ``counts`` electrons per pixel on average, normalised to unit mean."""
    ny, nx = inten.shape
    s = 0.0
    for r in range(ny):
        for j in range(nx):
            v = inten[r, j]
            if v < 0.0:
                v = 0.0
                inten[r, j] = 0.0
            s += v
    mean = s / (ny * nx)
    if mean <= 0.0:
        mean = 1.0
    for r in range(ny):
        for j in range(nx):
            v = inten[r, j] / mean
            out[r, j] = v + math.sqrt(v / counts) * gauss[r, j]
