"""PDF kernels and helpers against slow, obvious NumPy versions (serial cell-list histogram, FFT sine sum)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simgen.pdf.calculator import cluster_histogram, sine_nodes
from simgen.pdf.structures import phase_model, sphere_cut


def _np_hist_all_pairs(pos, typ, ntype, rlo, rhi, h):
    """Every ordered pair i != j, linear binning, one row per type pair, with the kernel's float32 arithmetic
    (coordinates centred on the box and rounded to float32, u = d/h in float32), so the bins agree to rounding
    of the float64 sums; also returns the float64 distances."""
    nb = int(rhi / h) + 3
    p = (pos - 0.5 * (pos.min(0) + pos.max(0))).astype(np.float32)
    dv = p[:, None, :] - p[None, :, :]
    u32 = np.sqrt(dv[..., 0] * dv[..., 0] + dv[..., 1] * dv[..., 1] + dv[..., 2] * dv[..., 2]) * np.float32(1.0 / h)
    lo32, hi32 = np.float32(rlo / h), np.float32(min(rhi / h, nb - 2.0))
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    out = np.zeros((ntype * ntype, nb))
    off = ~np.eye(len(pos), dtype=bool)
    for ta in range(ntype):
        for tb in range(ntype):
            sel = off & (typ[:, None] == ta) & (typ[None, :] == tb) & (u32 >= lo32) & (u32 <= hi32)
            u = u32[sel]
            k = u.astype(int)
            t = (u - k.astype(np.float32)).astype(np.float64)
            np.add.at(out[ta * ntype + tb], k, 1 - t)
            np.add.at(out[ta * ntype + tb], k + 1, t)
    return out, d


@pytest.mark.parametrize("case", ["one-type lattice", "two types, long box", "far window rlo"])
def test_serial_cluster_histogram_matches_numpy(case):
    """The serial kernel (rows of cells, z windows, pairs out of range sent to a scratch tail) against all pairs.

    The lattice cluster has many pairs at equal z and equal distance (ties at the window edges); the long box
    (60 A along z, rhi 9 A) makes the z windows prune; rlo > 0 exercises the low-side scratch shift."""
    rng = np.random.default_rng(11)
    if case == "one-type lattice":
        m = sphere_cut(phase_model("Au_fcc"), 22.0)
        pos = m.positions
        typ = np.zeros(len(pos), dtype=np.int64)
        nt, rlo, rhi, h = 1, 0.0, 12.0, 0.001
    elif case == "two types, long box":
        pos = rng.uniform([-8, -8, -30], [8, 8, 30], size=(900, 3))
        typ = rng.integers(0, 2, size=900)
        nt, rlo, rhi, h = 2, 0.0, 9.0, 0.005
    else:
        pos = rng.uniform(-10, 10, size=(600, 3))
        typ = rng.integers(0, 3, size=600)
        nt, rlo, rhi, h = 3, 6.0, 11.0, 0.004
    got = cluster_histogram(pos, typ, nt, rlo, rhi, h)
    ref, d = _np_hist_all_pairs(pos, typ, nt, rlo, rhi, h)
    assert got.shape == ref.shape
    assert np.allclose(got, ref, rtol=1e-12, atol=1e-9)
    # and against float64 distances: every pair in range once (none of the scratch tail), first moment
    sel = (d >= rlo) & (d <= rhi) & ~np.eye(len(pos), dtype=bool)
    npairs = sel.sum()
    assert npairs > 1000 and abs(got.sum() - npairs) <= 1e-9 * npairs
    rb = np.arange(ref.shape[1]) * h
    assert abs(got.sum(0) @ rb - d[sel].sum()) <= 1e-6 * d[sel].sum()


def test_serial_cluster_histogram_empty_and_tiny():
    assert cluster_histogram(np.zeros((1, 3)), np.zeros(1, dtype=np.int64), 1, 0.0, 5.0, 0.01).sum() == 0
    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.5]])
    got = cluster_histogram(pos, np.zeros(2, dtype=np.int64), 1, 0.0, 5.0, 0.01)
    assert got.sum() == pytest.approx(2.0) and got[0, 250] == pytest.approx(2.0, abs=1e-4)
    # a pair beyond rhi lands nowhere (in the discarded scratch tail)
    far = cluster_histogram(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 7.0]]), np.zeros(2, dtype=np.int64), 1, 0.0, 5.0,
                            0.01)
    assert far.sum() == 0


@pytest.mark.parametrize("padlen, nq", [(1024, 255), (64, 40)])
def test_sine_nodes_matches_numpy(padlen, nq):
    fq = np.random.default_rng(3).normal(size=nq)
    nodes = np.arange(0, padlen + 17)                 # past padlen / 2 and past one period
    got = sine_nodes(fq, padlen, nodes)
    ref = np.sin(2 * math.pi * np.outer(nodes, np.arange(nq)) / padlen) @ fq
    assert np.allclose(got, ref, rtol=0, atol=1e-10 * np.abs(fq).sum())


@pytest.mark.parametrize("n", list(range(0, 14)) + [127])
def test_gauss_run_matches_numpy(n):
    """The four interleaved Gaussian recurrences against g_i = g r^i c^(i(i-1)/2) (every remainder 0-3)."""
    from simgen.pdf import kernels
    s2, dr, x0, amp = 0.011, 0.01, -0.55, 1.7
    g = amp * math.exp(-x0 * x0 / (2 * s2))
    ratio = math.exp(-(2 * x0 * dr + dr * dr) / (2 * s2))
    cmul = math.exp(-dr * dr / s2)
    out = np.full(n + 7, 0.25)
    kernels._gauss_run(out, 3, n, g, ratio, cmul)
    x = x0 + np.arange(n) * dr
    ref = np.full(n + 7, 0.25)
    ref[3:3 + n] += amp * np.exp(-x * x / (2 * s2))
    assert np.allclose(out, ref, rtol=1e-12, atol=1e-15)
