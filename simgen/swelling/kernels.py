"""Numba kernels of the ``swelling`` simulator: arrays in, outputs preallocated by the caller and filled in place.

Lengths in nm; pixel (row r, column j) is sampled at its centre ((j + 0.5) px, (r + 0.5) px).  Images are periodic
laterally (voids crossing an edge re-enter on the other side), matching the FFT used for the Fresnel transfer.
"""
from __future__ import annotations

import math

import numba as nb


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
def render_voids(centres, scales, normals, h, circ, thickness, pixel, path, best, mask):
    """Project voids through the foil.

    ``path[r, j]`` += void chord (nm) through each void; ``mask[r, j]`` = 1 + index of the void with the longest
    chord at that pixel (0: none), ``best`` holds that chord (caller fills it with 0).  ``scales[i]`` is the face
    distance (sphere: radius) of void i; ``circ`` the circumradius over the face distance.
    """
    ny, nx = path.shape
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
            for j in range(j0, j1 + 1):
                dx = (j + 0.5) * pixel - cx
                c = chord(dx, dy, cz, a, normals, h, thickness)
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
    """spec *= exp(-i c (fy^2 + fx^2)) in place (c = pi lambda defocus)."""
    ny, nx = spec.shape
    for r in range(ny):
        qy = fy[r] * fy[r]
        for j in range(nx):
            ph = -c * (qy + fx[j] * fx[j])
            spec[r, j] *= complex(math.cos(ph), math.sin(ph))


@nb.njit(cache=True, nogil=True)
def gaussian_mtf(spec, fy, fx, s2):
    """spec *= exp(-2 pi^2 s2 q^2) in place (s2 = blur sigma^2)."""
    ny, nx = spec.shape
    k = -2.0 * math.pi * math.pi * s2
    for r in range(ny):
        qy = fy[r] * fy[r]
        for j in range(nx):
            spec[r, j] *= math.exp(k * (qy + fx[j] * fx[j]))


@nb.njit(cache=True, nogil=True)
def modulate(wave, tfield, tcoef, bfield, bc, inv_w2, out):
    """out = |wave|^2 exp(-tcoef tfield) (1 - bc exp(-bfield^2 inv_w2)): thickness variation and bend contours."""
    ny, nx = out.shape
    for r in range(ny):
        for j in range(nx):
            w = wave[r, j]
            b = bfield[r, j]
            out[r, j] = (w.real * w.real + w.imag * w.imag) * math.exp(-tcoef * tfield[r, j]) \
                * (1.0 - bc * math.exp(-b * b * inv_w2))


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
