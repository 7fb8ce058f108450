"""EXAFS kernels and the tabulated-column cache against slow, obvious NumPy versions."""
from __future__ import annotations

import numba
import numpy as np

from simgen.exafs import chi_of_paths, kernels
from simgen.exafs.simulator import ETOK, path_columns
from simgen.exafs.tables import load_pathset


@numba.njit
def _eval(x, y, z):
    for i in range(x.shape[0]):
        y[i] = kernels.exp_scaled(x[i])
        z[i] = kernels.sin_reduced(x[i])


def test_exp_scaled_and_sin_reduced_match_numpy():
    """exp relative 1e-15 on [-700, 700] (clamped outside), sin absolute 1e-15 for |x| <= 1200 (2kR + phase of
    the longest paths stays below ~300), including near multiples of pi and odd/even/negative half-turns."""
    x = np.linspace(-700.0, 700.0, 1_400_001)
    y, z = np.empty_like(x), np.empty_like(x)
    _eval(x, y, z)
    assert np.max(np.abs(y / np.exp(x) - 1.0)) < 1e-15
    xs = np.r_[np.linspace(-1200.0, 1200.0, 1_000_001), np.arange(-380, 381) * np.pi,
               np.arange(-380, 381) * np.pi + 1e-9, np.arange(-380, 381) * np.pi + np.pi / 2]
    ys, zs = np.empty_like(xs), np.empty_like(xs)
    _eval(xs, ys, zs)
    assert np.max(np.abs(zs - np.sin(xs))) < 1e-15
    big = np.array([-1e4, -800.0, 1e4])
    yb, zb = np.empty(3), np.empty(3)
    _eval(big, yb, zb)
    assert abs(yb[0] / np.exp(-700.0) - 1) < 1e-15 and abs(yb[2] / np.exp(700.0) - 1) < 1e-15   # clamped


def test_tabulated_columns_match_numpy():
    """The four columns per path (+ shared 2q) against the splines evaluated with NumPy at q(k, e0)."""
    from scipy.interpolate import PPoly
    ps = load_pathset("Ti_K_rutile")
    idx = np.array([0, 3, 5])
    k = np.arange(0.3, 17.0, 0.05)
    e0 = 2.5
    tab = path_columns(k, ps, idx, e0)
    en = k * k - e0 * ETOK
    q = np.sign(en) * np.sqrt(np.abs(en))
    for row, t in enumerate(idx):
        nk = ps.nknots[t]
        kn = ps.knots[t, :nk]
        vals = [PPoly(ps.coefs[t, c, :nk - 1].T, kn)(q) for c in range(4)]
        assert np.allclose(tab[row, kernels.T_AMP], vals[0] / q, rtol=1e-9)
        assert np.allclose(tab[row, kernels.T_PHA], vals[1], rtol=1e-9)
        assert np.allclose(tab[row, kernels.T_RP2], 2 * vals[2], rtol=1e-9)
        assert np.allclose(tab[row, kernels.T_G2], -2 / vals[3], rtol=1e-9)
        assert np.allclose(tab[row, kernels.T_Q2], 2 * q, rtol=1e-9)


def test_path_columns_memo_sees_in_place_changes():
    """The last-lookup memo compares the grid and path list byte for byte: an array changed in place between
    two calls gets new columns (and the chi that goes with them)."""
    ps = load_pathset("Cu_K_fcc")
    k = np.arange(0.0, 20.0, 0.05)
    idx = np.array([0, 1, 2])
    a = path_columns(k, ps, idx, 0.0)
    assert path_columns(k, ps, idx, 0.0) is a
    k[5] += 0.01
    b = path_columns(k, ps, idx, 0.0)
    assert b is not a and not np.array_equal(a[:, kernels.T_Q2], b[:, kernels.T_Q2])
    idx[2] = 3
    c = path_columns(k, ps, idx, 0.0)
    assert c is not b
    args = (ps, idx, ps.degen[idx], ps.reff[idx], [0.01, 0.0, -0.02], [0.004, 0.006, 0.008])
    assert np.allclose(chi_of_paths(k, *args, s02=0.9), chi_of_paths(k, *args, s02=0.9, cache=False),
                       rtol=1e-12, atol=1e-14)
