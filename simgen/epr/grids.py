"""Triangular orientation grid of one octant of the unit sphere (rhombic powders).

Knots: ``n`` rows theta_i = i (pi/2) / (n - 1), i = 0 .. n - 1; row i holds i + 1 knots
phi_j = j (pi/2) / i (j = 0 .. i), so the pole theta = 0 is ONE knot (a theta x phi product grid repeats it
n times) and the knot spacing along each row is about the row spacing: n (n + 1) / 2 knots instead of n^2
(the layout of EasySpin's ``sphgrid`` for D2h symmetry; this module is our own construction).

In index coordinates (u, v) = (theta / dtheta, i phi / (pi/2)) the knots are the integer points of the triangle
0 <= v <= u <= n - 1, and the grid's triangles are the unit lattice triangles: between rows i and i + 1,
(i, j) (i+1, j) (i+1, j+1) for j = 0 .. i and (i, j) (i, j+1) (i+1, j+1) for j = 0 .. i - 1, (n - 1)^2 in all.
Each triangle is refined ``r`` times along its edges in (u, v) into r^2 sub-triangles; a refined vertex
(u, v) is the orientation theta = u dtheta, phi = (v / u) pi/2.  Values at refined vertices are interpolated
from the knots by Catmull-Rom cubics: along each of the four knot rows around u at the vertex's phi (knots of
row q evenly spaced in phi, mirror symmetric at phi = 0 and pi/2), then across the rows in theta (mirror
symmetric at theta = 0 and pi/2).  The sub-triangles' weights are their exact solid angles (the spherical
triangles with great-circle edges through the refined vertices tile the octant, whose edges phi = 0,
phi = pi/2 and theta = pi/2 are great circles), so the weights add up to pi/2.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TriGrid", "tri_grid", "knot_index", "solid_angle", "nested_knots", "row_ladder"]


def knot_index(i: int, j: int) -> int:
    """Index of knot (row i, position j) in the knot arrays."""
    return i * (i + 1) // 2 + j


def nested_knots(n: int) -> np.ndarray:
    """Indices in the knots of ``tri_grid(2 n - 1, .)`` of the knots of ``tri_grid(n, .)``: knot (i, j) of the
    coarse grid is knot (2 i, 2 j) of the fine one (the same theta and phi)."""
    return np.array([knot_index(2 * i, 2 * j) for i in range(n) for j in range(i + 1)], dtype=np.int64)


def row_ladder(n: int, n_min: int = 6, n_max: int = 0) -> list[int]:
    """Nested row (or knot) counts, ascending: n, (n + 1) / 2, ... while the count stays >= n_min, and above n
    2 n - 1, 4 n - 3, ... while the count stays <= n_max (each grid halves the intervals of the one before)."""
    out = [int(n)]
    while (out[-1] - 1) % 2 == 0 and (out[-1] - 1) // 2 + 1 >= n_min:
        out.append((out[-1] - 1) // 2 + 1)
    out = out[::-1]
    while out[-1] >= 2 and 2 * out[-1] - 1 <= n_max:
        out.append(2 * out[-1] - 1)
    return out


def solid_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Solid angle (sr) of the spherical triangles with unit-vector corners a, b, c (..., 3)
    (Van Oosterom & Strackee 1983: tan(Omega / 2) = |a . (b x c)| / (1 + a.b + b.c + c.a))."""
    num = np.abs(np.einsum("...i,...i->...", a, np.cross(b, c)))
    den = 1.0 + np.einsum("...i,...i->...", a, b) + np.einsum("...i,...i->...", b, c) \
        + np.einsum("...i,...i->...", c, a)
    return 2.0 * np.arctan2(num, den)


def _catmull_weights(t: float) -> tuple[float, float, float, float]:
    t2, t3 = t * t, t * t * t
    return (0.5 * (-t + 2 * t2 - t3), 0.5 * (2 - 5 * t2 + 3 * t3), 0.5 * (t + 4 * t2 - 3 * t3), 0.5 * (-t2 + t3))


def _mirror(q: int, top: int) -> int:
    """Reflect index q into 0 .. top at both ends."""
    if q < 0:
        q = -q
    if q > top:
        q = 2 * top - q
    return q


def _vertex_stencil(u: float, v: float, n: int) -> tuple[list[int], list[float]]:
    """Knot indices and weights (16, possibly repeated) of the cubic interpolant at index point (u, v)."""
    if u <= 1e-12:
        return [0] * 16, [1.0] + [0.0] * 15
    frac_phi = v / u                             # phi / (pi/2) in [0, 1]
    i0 = min(int(math.floor(u)), n - 2)
    wt = _catmull_weights(u - i0)
    idx, wts = [], []
    for a in range(4):
        q = _mirror(i0 - 1 + a, n - 1)
        if q == 0:
            idx += [0] * 4
            wts += [wt[a], 0.0, 0.0, 0.0]
            continue
        if q <= TRIG_ROWS:
            # few knots on the row: the cosine series sum_m c_m cos(2 m phi), m = 0 .. q, through all of them
            # (the even, pi-periodic phi dependence; exact for the cos 2 phi term that dominates near the pole)
            wp = _cosine_weights(q, frac_phi * (math.pi / 2))
            for c in range(4):
                idx.append(knot_index(q, min(c, q)))
                wts.append(wt[a] * wp[c] if c <= q else 0.0)
            continue
        s = frac_phi * q
        j0 = min(int(math.floor(s)), q - 1)
        wp = _catmull_weights(s - j0)
        for c in range(4):
            idx.append(knot_index(q, _mirror(j0 - 1 + c, q)))
            wts.append(wt[a] * wp[c])
    return idx, wts


TRIG_ROWS = 3   # rows with at most this index (<= 4 knots) are interpolated in phi by a cosine series


def _cosine_weights(q: int, phi: float) -> np.ndarray:
    """Weights of the q + 1 knots phi_j = j pi / (2 q) of the cosine-series interpolant at phi."""
    m = np.arange(q + 1)
    M = np.cos(np.outer(np.arange(q + 1), m) * math.pi / q)      # M[j, m] = cos(2 m phi_j)
    return np.linalg.solve(M.T, np.cos(2.0 * m * phi))


@dataclass(frozen=True)
class TriGrid:
    """Tables of the triangular octant grid with ``n`` rows refined ``r`` times (read-only arrays).

    nvec (K, 3): knot orientations, K = n (n + 1) / 2.  corners (T, 3): knot indices of each triangle,
    T = (n - 1)^2.  vidx, vw (T, P, 16): cubic stencil (knot index, weight) of the P = (r + 1)(r + 2) / 2
    refined vertices of each triangle; bary (P, 3): their barycentric coordinates on the corners (linear
    fallback); vvec (T, P, 3) their orientations.  sub (r^2, 3): local vertex indices of the sub-triangles;
    subw (T, r^2): their solid angles (sr).
    """

    n: int
    r: int
    nvec: np.ndarray
    corners: np.ndarray
    vidx: np.ndarray
    vw: np.ndarray
    bary: np.ndarray
    vvec: np.ndarray
    sub: np.ndarray
    subw: np.ndarray


def _local_lattice(r: int):
    """Refined vertices (a, b), a + b <= r, of a triangle and the r^2 sub-triangles as local vertex triples."""
    pts = [(a, b) for a in range(r + 1) for b in range(r + 1 - a)]
    where = {p: k for k, p in enumerate(pts)}
    sub = []
    for a in range(r):
        for b in range(r - a):
            sub.append((where[(a, b)], where[(a + 1, b)], where[(a, b + 1)]))
            if a + b + 2 <= r:
                sub.append((where[(a + 1, b)], where[(a + 1, b + 1)], where[(a, b + 1)]))
    return pts, np.array(sub, dtype=np.int64)


def _unit(u, v, dth):
    th = u * dth
    ph = (v / u) * (math.pi / 2) if u > 0 else 0.0
    return (math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th))


@functools.lru_cache(maxsize=32)
def tri_grid(n: int, r: int) -> TriGrid:
    """The triangular octant grid of ``n`` >= 2 rows refined ``r`` >= 1 times (cached)."""
    n, r = int(n), int(r)
    dth = (math.pi / 2) / (n - 1)
    knots = [(i, j) for i in range(n) for j in range(i + 1)]
    nvec = np.array([_unit(float(i), float(j), dth) for i, j in knots])
    tris = []
    for i in range(n - 1):
        for j in range(i + 1):
            tris.append(((i, j), (i + 1, j), (i + 1, j + 1)))
            if j < i:
                tris.append(((i, j), (i, j + 1), (i + 1, j + 1)))
    pts, sub = _local_lattice(r)
    T, P = len(tris), len(pts)
    corners = np.array([[knot_index(*c) for c in t] for t in tris], dtype=np.int64)
    vidx = np.empty((T, P, 16), dtype=np.int64)
    vw = np.empty((T, P, 16))
    vec = np.empty((T, P, 3))
    bary = np.array([(1.0 - (a + b) / r, a / r, b / r) for a, b in pts])
    for t, (c0, c1, c2) in enumerate(tris):
        for p, (a, b) in enumerate(pts):
            u = c0[0] + (a * (c1[0] - c0[0]) + b * (c2[0] - c0[0])) / r
            v = c0[1] + (a * (c1[1] - c0[1]) + b * (c2[1] - c0[1])) / r
            ii, ww = _vertex_stencil(u, v, n)
            vidx[t, p] = ii
            vw[t, p] = ww
            vec[t, p] = _unit(u, v, dth)
    subw = solid_angle(vec[:, sub[:, 0]], vec[:, sub[:, 1]], vec[:, sub[:, 2]])
    out = TriGrid(n, r, np.ascontiguousarray(nvec), corners, vidx, vw, bary, vec, sub, np.ascontiguousarray(subw))
    for a in (out.nvec, out.corners, out.vidx, out.vw, out.bary, out.vvec, out.sub, out.subw):
        a.flags.writeable = False
    return out
