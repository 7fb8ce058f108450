"""Tests of the exafs / exelfs simulators.

References (../shared/refs/exafs, xraylarch 2026.3.1 with FEFF8L; feff10-rs 0.2.4), tolerances:
- chi(k) from the FEFF8 table in feff_amp_phase.npz vs larch ff2chi (cu_1shell_feff8): 1e-3 relative to max|chi|
  (the acceptance figure; measured 4e-15: same equation, same spline);
- chi(k) from our FEFF10 tables vs larch+FEFF8L (cu_1shell, cu_multishell, tio2_multishell): 3 % (FEFF10 and
  FEFF8L potentials differ slightly; measured 0.7 % for Cu);
- correlated Debye sigma^2 vs larch sigma2_debye (same paths): 1e-5 relative for Cu (same Norman radius),
  1e-3 for rutile (FEFF10's Norman radius differs from FEFF8L's);
- Cu foil sigma^2 series (../shared/data/README.md: 10/50/150/295 K fits): 15 % (the acceptance figure);
- EXELFS (feff10-rs 0.2.4 EELS card, rutile Ti L3 and L2): k^2-weighted cosine >= 0.95 (k 2.5-6) / 0.92 (2.5-8),
  amplitude 15 %, |chi(R)| peaks within 0.05 A; exspy hydrogenic TiO2 core loss: onsets within 1 eV, O K / Ti L
  jump ratio 25 %;
- measured_chi round trip (simulated mu -> chi): R-factor < 0.003; real Cu / Fe foils fitted inside the
  exafs-3d-metals priors with R1 within 0.02 A (the real-data validation's targets).
The peer references are read from ../shared/refs/exafs, or from the golden copies in tests/data/exafs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simgen.errors import ParameterError, RecipeError
from simgen.exafs import ETOK, EXAFSSimulator, EXELFSSimulator, chi_of_paths, kernels
from simgen.exafs.debye import PathDebye, sigma2_correlated_debye, sigma2_path
from simgen.exafs.edges import edge_energy, eels_onset
from simgen.exafs.tables import PathSet, load_pathset
from simgen.testing import SimulatorContract

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFS = SHARED / "refs" / "exafs"
DATA = SHARED / "data" / "xafs"
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "exafs"      # small copies (README there)


def _ref(name):
    """../shared/refs/exafs/<name> when present, else the golden copy in tests/data/exafs."""
    for p in (REFS / name, GOLDEN / name):
        if p.exists():
            return np.load(p)
    pytest.skip(f"reference {name} absent from {REFS} and {GOLDEN}")


def _maxrel(a, b, mask):
    return float(np.max(np.abs(a[mask] - b[mask])) / np.max(np.abs(b[mask])))


# ------------------------------------------------------------------ kernel vs slow numpy
def _chi_numpy(k, ps, idx, N, reff, dr, s2, c3, c4, s02, e0):
    """Slow, obvious complex-numpy version of the EXAFS equation (larch feffdat convention)."""
    from scipy.interpolate import CubicSpline
    out = np.zeros(len(k))
    for j, t in enumerate(idx):
        kn = ps.knots[t, :ps.nknots[t]]
        en = k * k - e0 * ETOK
        en = np.where(np.abs(en) < 1e-10, 1e-10, en)
        q = np.sign(en) * np.sqrt(np.abs(en))
        amp, pha, rep, lam = (CubicSpline(kn, np.polyval(ps.coefs[t, c, 0], 0) * 0 + _vals(ps, t, c))(q)
                              for c in range(4))
        p = rep + 1j / lam
        pp = p * p
        cc = np.exp(-2 * reff[j] * p.imag - 2 * pp * (s2[j] - pp * c4[j] / 3)
                    + 1j * (2 * q * reff[j] + pha + 2 * p * (dr[j] - 2 * s2[j] / reff[j] - 2 * pp * c3[j] / 3)))
        out += (N[j] * s02 * amp * cc / (q * (reff[j] + dr[j]) ** 2)).imag
    return out


def _vals(ps, t, c):
    """Table values at the knots recovered from the spline pieces (c0 of each piece + the last end)."""
    nk = ps.nknots[t]
    cf = ps.coefs[t, c, :nk - 1]
    h = ps.knots[t, nk - 1] - ps.knots[t, nk - 2]
    last = ((cf[-1, 0] * h + cf[-1, 1]) * h + cf[-1, 2]) * h + cf[-1, 3]
    return np.r_[cf[:, 3], last]


def test_chi_kernel_matches_numpy():
    ps = load_pathset("Ti_K_rutile")
    rng = np.random.default_rng(3)
    idx = np.arange(6)
    N = rng.uniform(1, 8, 6)
    reff = ps.reff[idx]
    dr = rng.uniform(-0.1, 0.1, 6)
    s2 = rng.uniform(0.002, 0.02, 6)
    c3 = rng.uniform(-1e-3, 1e-3, 6)
    c4 = rng.uniform(0, 1e-4, 6)
    k = np.arange(0.5, 18, 0.07)
    for e0 in (0.0, 7.5, -4.0):
        slow = _chi_numpy(k, ps, idx, N, reff, dr, s2, c3, c4, 0.85, e0)
        for cache in (True, False):          # tabulated columns (cached) and the one-pass kernel
            fast = chi_of_paths(k, ps, idx, N, reff, dr, s2, c3, c4, 0.85, e0, cache=cache)
            assert np.allclose(fast, slow, rtol=1e-9, atol=1e-12)
        z = np.zeros(6)                      # the short loop taken when c3 = c4 = 0
        assert np.allclose(chi_of_paths(k, ps, idx, N, reff, dr, s2, z, z, 0.85, e0),
                           _chi_numpy(k, ps, idx, N, reff, dr, s2, z, z, 0.85, e0), rtol=1e-9, atol=1e-12)


def test_path_columns_cached_per_grid_and_e0():
    """The spline columns are reused for the same (table, paths, k, e0) and recomputed when any changes;
    new parameters on cached columns give the same chi as a fresh evaluation."""
    from simgen.exafs.simulator import path_columns
    ps = load_pathset("Cu_K_fcc")
    k = np.arange(0.0, 20.0, 0.05)
    a = path_columns(k, ps, [0, 1, 2], 0.0)
    assert path_columns(k.copy(), ps, np.array([0, 1, 2]), 0.0) is a
    assert path_columns(k, ps, [0, 1, 2], 1.0) is not a
    assert path_columns(k[:-1], ps, [0, 1, 2], 0.0) is not a
    assert path_columns(k, ps, [0, 1, 3], 0.0) is not a
    assert not a.flags.writeable
    args = (ps, [0, 1, 2], ps.degen[:3], ps.reff[:3])
    for s2 in (0.003, 0.011):
        c = chi_of_paths(k, *args, [0.01, 0.0, -0.02], [s2] * 3, s02=0.9)
        d = chi_of_paths(k, *args, [0.01, 0.0, -0.02], [s2] * 3, s02=0.9, cache=False)
        assert np.allclose(c, d, rtol=1e-12, atol=1e-14)


def test_mu_and_eels_kernels_match_numpy():
    e = np.linspace(-50, 300, 351)
    chi = 0.1 * np.sin(e / 10) * (e > 0)
    out = np.empty_like(e)
    kernels.mu_from_chi(e, 1.0, chi, 0.1, 0.2, 1.3, 2.0, 0.3, -0.1, 0.5, 4.0, out)
    x = e - 1.0
    ref = (0.1 + 0.2 * x / 1000 + 1.3 * ((0.5 + np.arctan(2 * x / 2.0) / np.pi) * (1 + 0.3 * x / 1000 - 0.1
           * (x / 1000) ** 2) * (1 + chi) + 0.5 / (1 + 4 * (x / 4.0) ** 2)))
    assert np.allclose(out, ref, rtol=1e-12)
    ee = np.linspace(400, 700, 301)
    acc = np.zeros_like(ee)
    kernels.eels_edge(ee, 456.0, 1.5, 2.0, np.zeros_like(ee), 3.0, 1.2, 0.7, acc)
    ref = 0.7 * ((0.5 + np.arctan(2 * (ee - 456) / 1.5) / np.pi) * (ee / 456) ** -2.0
                 + 3.0 / (1 + 4 * ((ee - 456) / 1.2) ** 2))
    assert np.allclose(acc, ref, rtol=1e-12)
    a = np.random.default_rng(0).normal(size=50)
    g = np.array([0.2, 0.5, 0.3])
    conv = np.empty(50)
    kernels.convolve_same(a, g, 1, conv)
    assert np.allclose(conv, np.convolve(a, g, mode="same"))


def test_fast_exp_sin_match_numpy():
    """The polynomial exp/sin of the vectorised chi kernel vs numpy: exp relative 1e-12 on [-80, 5] (clamped
    below -80, where exp < 2e-35), sin absolute 1e-13 for |x| < 300 (2kR + phase stays below ~250)."""
    import numba

    @numba.njit
    def ev(x, y, z):
        for i in range(x.shape[0]):
            y[i] = kernels.fast_exp(x[i])
            z[i] = kernels.fast_sin(x[i] * 3.7)
    x = np.linspace(-80.0, 5.0, 100_001)
    y, z = np.empty_like(x), np.empty_like(x)
    ev(x, y, z)
    assert np.max(np.abs(y / np.exp(x) - 1)) < 1e-12
    assert np.max(np.abs(z - np.sin(3.7 * x))) < 1e-13
    y2, z2 = np.empty(2), np.empty(2)
    ev(np.array([-500.0, -1e4]), y2, z2)
    assert np.all(y2 < 1e-34) and np.all(y2 >= 0)


def test_chi_kernel_tables_on_different_grids():
    """Paths whose tables have different k knots (the kernel re-locates q per table) vs numpy."""
    a, b = load_pathset("Cu_K_fcc"), load_pathset("Ti_K_rutile")
    cols = lambda ps, j: [_vals(ps, j, c) for c in range(4)]   # noqa: E731
    ka = a.knots[0, :a.nknots[0]]
    kb = np.r_[b.knots[0, :b.nknots[0] - 5], np.linspace(15.5, 20.0, 7)]
    colsb = [np.interp(kb, b.knots[0, :b.nknots[0]], v) for v in cols(b, 0)]
    ps = PathSet.from_arrays("mix", "X", "K", [ka, kb], [cols(a, 0), colsb], [2, 2], [12.0, 6.0],
                             [a.reff[0], b.reff[0]])
    k = np.arange(1.0, 17.0, 0.05)
    args = ([0, 1], [12.0, 6.0], ps.reff, [0.01, -0.02], [0.006, 0.004], [0.0, 2e-4], [0.0, 0.0], 0.9, 2.5)
    assert np.allclose(chi_of_paths(k, ps, *args), _chi_numpy(k, ps, *args), rtol=1e-9, atol=1e-12)


def test_plural_scattering_kernel_matches_direct_poisson_series():
    """FFT form (all orders at once) vs the obvious series of explicit convolutions to order 60: 1e-12."""
    import math
    from simgen.exafs.simulator import plural_scattering_kernel
    for t, ep, gp, step in ((0.3, 22.0, 6.0, 0.25), (3.0, 8.0, 3.0, 0.25), (1.0, 30.0, 10.0, 0.5)):
        ker = plural_scattering_kernel(t, ep, gp, step)
        m = len(ker)
        e = np.arange(m) * step
        plas = 1 / (1 + 4 * ((e - ep) / gp) ** 2)
        plas /= plas.sum()
        term = np.zeros(m)
        term[0] = 1.0
        tot = term * math.exp(-t)
        for n in range(1, 60):
            term = np.convolve(term, plas)[:m]
            tot += math.exp(-t) * t ** n / math.factorial(n) * term
        assert np.allclose(ker, tot / tot.sum(), rtol=0, atol=1e-12 * tot.max())
        assert ker.sum() == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------ peer references
def test_cu_1shell_feff8_table_matches_larch_1e3():
    ap, r1 = _ref("feff_amp_phase.npz"), _ref("cu_1shell_feff8.npz")
    p = "CuCu_feff8__"
    ps = PathSet.from_arrays("cu8", "Cu", "K", [ap[p + "k"]], [[ap[p + c] for c in ("amp", "pha", "real_p", "lam")]],
                             [2], [12.0], [float(ap[p + "reff"])])
    k = r1["k"]
    chi = chi_of_paths(k, ps, [0], [12.0], [2.5527], [0.0], [0.0086], s02=0.9, e0=0.0)
    chi[0] = 2 * chi[1] - chi[2]          # larch's k = 0 extrapolation
    assert _maxrel(chi, r1["chi"], k >= 0) < 1e-3


@pytest.mark.parametrize("case,key,tol", [("cu_1shell_feff8.npz", "Cu_K_fcc", 0.03),
                                          ("cu_multishell_feff8.npz", "Cu_K_fcc", 0.03),
                                          ("tio2_multishell_feff8.npz", "Ti_K_rutile", 0.05)])
def test_feff10_tables_match_larch_feff8(case, key, tol):
    r = _ref(case)
    ps = load_pathset(key)
    idx = []
    for nleg, reff, deg in zip(r["path_nleg"], r["path_reff"], r["path_degen"]):
        cand = [j for j in range(ps.npath) if ps.nleg[j] == nleg and abs(ps.reff[j] - reff) < 2e-3
                and abs(ps.degen[j] - deg) < 1e-6 and j not in idx]
        assert cand, f"FEFF10 table {key} lacks path nleg={nleg} reff={reff} N={deg}"
        idx.append(cand[0])
    k = r["k"]
    chi = chi_of_paths(k, ps, idx, r["path_degen"], r["path_reff"], r["path_deltar"], r["path_sigma2"],
                       s02=float(r["path_s02"][0]), e0=0.0)
    m = (k >= 3) & (k <= 18)
    assert _maxrel(chi, r["chi"], m) < tol


def test_correlated_debye_matches_larch():
    r = _ref("cu_multishell_feff8.npz")
    ps = load_pathset("Cu_K_fcc")
    rs_feff8 = 2.6345        # FEFF8L's rnrmav for this input (feff0001.dat header)
    for j in range(len(r["path_reff"])):
        s2 = sigma2_path(*ps.path_atoms(j), 300.0, 315.0, rs_feff8)
        assert s2 == pytest.approx(r["path_sigma2"][j], rel=1e-5)
    rt = _ref("tio2_multishell_feff8.npz")
    pt = load_pathset("Ti_K_rutile")
    for j in range(3):
        s2 = sigma2_path(*pt.path_atoms(j), 300.0, 700.0, pt.rnrmav_bohr)
        assert s2 == pytest.approx(rt["path_sigma2"][j], rel=1e-3)
    # fast matrix form == direct path sum; SS formula == path formula
    fast = PathDebye([pt.path_atoms(j) for j in range(pt.npath)], pt.rnrmav_bohr)(120.0, 450.0)
    slow = [sigma2_path(*pt.path_atoms(j), 120.0, 450.0, pt.rnrmav_bohr) for j in range(pt.npath)]
    assert np.allclose(fast, slow, rtol=1e-5)
    assert sigma2_correlated_debye(120.0, 450.0, pt.reff[0], "Ti", "O", pt.rnrmav_bohr) == \
        pytest.approx(slow[0], rel=1e-4)   # reff is rounded to 1e-4 A in feff.dat


def test_cu_sigma2_temperature_series_within_15pc():
    # Larch first-shell fits of Cu foil (../shared/data/README.md)
    measured = {10: 0.00371, 50: 0.00380, 150: 0.00542, 295: 0.00891}
    ps = load_pathset("Cu_K_fcc")
    for T, s2m in measured.items():
        s2 = sigma2_correlated_debye(T, 315.0, ps.reff[0], "Cu", "Cu", ps.rnrmav_bohr)
        assert abs(s2 / s2m - 1) < 0.15, (T, s2, s2m)


def test_one_table_holds_across_R_window():
    """feff_onepath_Rscan: one table per pair is within ~1.5 % in amplitude for k >= 6 over +-0.1 A."""
    r = _ref("feff_onepath_Rscan.npz")
    k = r["k"]
    i0 = int(np.argmin(np.abs(r["R"] - 2.5527)))
    m = (k >= 6) & (k <= 16)
    for i, R in enumerate(r["R"]):
        if abs(R - 2.5527) <= 0.11:
            assert np.max(np.abs(r["amp"][i][m] / r["amp"][i0][m] - 1)) < 0.015


# ------------------------------------------------------------------ structure and shells
def test_shells_from_atoms_match_feff_paths():
    from ase.build import bulk
    from simgen.exafs.shells import shells_from_atoms
    sh = shells_from_atoms(bulk("Cu", "fcc", a=3.61), "Cu", 4.5)
    ps = load_pathset("Cu_K_fcc")
    ss = ps.single_scattering[:3]
    assert [n for _, n, _ in sh] == [int(ps.degen[j]) for j in ss] == [12, 6, 24]
    assert np.allclose([r for r, _, _ in sh], ps.reff[ss], atol=1e-3)
    with pytest.raises(ParameterError, match="absorber"):
        shells_from_atoms(bulk("Cu", "fcc", a=3.61), "Fe", 4.5)


def test_shell_labels_and_overrides():
    sim = EXAFSSimulator({})
    out = sim.simulate_outputs({"material": "Cu_K_fcc", "T": 295.0, "theta_D": 315.0, "strain": 0.01})
    pr = out["params"]
    assert pr["N1"][0] == 12 and pr["N2"][0] == 6 and pr["N3"][0] == 24
    assert pr["R1"][0] == pytest.approx(2.5527 * 1.01)
    assert pr["sigma2_1"][0] == pytest.approx(0.00891, rel=0.02)
    # nanoparticle of 20 A: N1 = 12 (1 - 3/4 x + x^3/16), x = R/D
    x = 2.5527 / 20
    out = sim.simulate_outputs({"material": "Cu_K_fcc", "np_diameter": 20.0})
    assert out["params"]["N1"][0] == pytest.approx(12 * (1 - 0.75 * x + x ** 3 / 16))
    # explicit shell values override the structure and change the spectrum
    a = sim.simulate({"material": "Cu_K_fcc"})
    b = sim.simulate({"material": "Cu_K_fcc", "N1": 8.0, "R1": 2.6, "sigma2_1": 0.012})
    o = sim.simulate_outputs({"material": "Cu_K_fcc", "N1": 8.0, "R1": 2.6, "sigma2_1": 0.012})["params"]
    assert (o["N1"][0], o["R1"][0], o["sigma2_1"][0]) == (8.0, 2.6, 0.012)
    assert not np.allclose(a, b)
    # sigma^2 rises with T and damps high k
    lo = sim.simulate({"material": "Cu_K_fcc", "T": 10.0})[0]
    hi = sim.simulate({"material": "Cu_K_fcc", "T": 600.0})[0]
    kk = sim.axis.coords[0]
    assert np.abs(hi[kk > 9]).max() < np.abs(lo[kk > 9]).max()


def test_mu_output_has_unit_edge_step_and_oscillations():
    sim = EXAFSSimulator({"output": "mu", "e_min": -100.0, "e_max": 800.0, "e_step": 1.0})
    y = sim.simulate({"material": "Fe_K_bcc", "dE0": 3.0})[0].astype(float)
    e = sim.axis.coords[0]
    assert abs(y[e < -50]).max() < 0.05
    post = y[(e > 300)]
    assert abs(post.mean() - 1.0) < 0.05 and post.std() > 1e-3
    half = e[np.argmin(np.abs(y[:200] - 0.5))]
    assert abs(half - 3.0) < 1.5
    # an edge moved below the tabulated one (dE0 < 0): finite everywhere, half height at dE0
    y = sim.simulate({"material": "Fe_K_bcc", "dE0": -6.0})[0].astype(float)
    assert np.all(np.isfinite(y))
    assert abs(e[np.argmin(np.abs(y[:200] - 0.5))] + 6.0) < 1.5


# ------------------------------------------------------------------ real Cu foil
def test_real_cu_foil_r_factor():
    f = DATA / "XASLIB_Cu_cu_metal_rt.xdi"
    if not f.exists():
        pytest.skip(f"{f} absent")
    from scipy.optimize import least_squares
    from simgen.exafs.background import autobk, r_factor
    from train.measurements import read
    m = read(f)
    e, mu = m.axis, m.values
    bk = autobk(e, mu, rbkg=1.0, kweight=2)
    sim = EXAFSSimulator({"k_min": 3.0, "k_max": 12.0})
    k = sim.axis.coords[0]
    d = np.interp(k, bk.k, bk.chi) * k ** 2

    def res(x):   # only S0^2 and dE0 are adjusted; shells fcc Cu a = 3.615 A, 295 K, theta_D 315 K
        return sim.simulate({"material": "Cu_K_fcc", "T": 295.0, "theta_D": 315.0, "strain": 3.615 / 3.61 - 1,
                             "s02": x[0], "dE0": x[1]})[0] - d
    fit = least_squares(res, [0.9, 0.0], bounds=([0.5, -15.0], [1.2, 15.0]))
    R = r_factor(d, d + fit.fun)
    print(f"Cu foil RT: R-factor {R:.4f} with S0^2 {fit.x[0]:.3f}, dE0 {fit.x[1]:.2f} eV")
    assert R < 0.08           # measured 0.043
    assert 0.75 < fit.x[0] < 1.0


# ------------------------------------------------------------------ EXELFS
def test_eels_onsets_and_bad_edges():
    assert eels_onset("O", "K") == pytest.approx(532.0, abs=0.1)
    assert eels_onset("Ti", "L3") == pytest.approx(456.0, abs=0.1)
    assert edge_energy("Cu", "K") == pytest.approx(8979.0, abs=1.0)
    with pytest.raises(ParameterError, match="element"):
        edge_energy("Xx", "K")
    with pytest.raises(ParameterError, match="edge"):
        edge_energy("O", "M5")
    with pytest.raises(ParameterError, match="edge"):
        edge_energy("Cu", "Q7")


def test_exelfs_edges_branching_and_noise():
    sim = EXELFSSimulator({"e_min": 420.0, "e_max": 600.0, "e_step": 0.25})
    e = sim.axis.coords[0]
    base = dict(material="TiO2_rutile", bg_ratio=0.01, thickness=0.0, resolution=0.3, wl_height=4.0,
                wl_width=1.0, fs_scale=0.0)
    y = sim.simulate(base)[0]
    # white lines at L3 = 456 and L2 = 456 + (460.2 - 453.8 - 0.4) eV, L3 stronger with branching 2
    i3 = np.argmax(np.where(np.abs(e - 456) < 2, y, 0))
    i2 = np.argmax(np.where(np.abs(e - 462.0) < 2, y, 0))
    assert abs(e[i3] - 456.0) < 0.5 and abs(e[i2] - 462.0) < 0.5 and y[i3] > y[i2]
    # O K onset near 532 eV
    d = np.gradient(y, e)
    assert abs(e[(e > 520) & (e < 545)][np.argmax(d[(e > 520) & (e < 545)])] - 532.0) < 1.5
    # plural scattering moves intensity to higher loss; Poisson noise is reproducible per seed
    thick = sim.simulate({**base, "thickness": 1.0})[0]
    assert np.sum(thick * e) / np.sum(thick) > np.sum(y * e) / np.sum(y)
    a = sim.simulate({**base, "counts": 1e3, "seed": 5})
    b = sim.simulate({**base, "counts": 1e3, "seed": 5})
    assert a.tobytes() == b.tobytes()


def test_bad_config_rejected_by_name():
    with pytest.raises(RecipeError, match="config.e_min"):
        EXAFSSimulator({"output": "mu", "e_min": 10.0, "e_max": 500.0})
    with pytest.raises(RecipeError, match="config.e_min"):
        EXELFSSimulator({"e_min": 1000.0, "e_max": 1200.0})
    with pytest.raises(RecipeError, match="config.materials"):
        EXAFSSimulator({"materials": ["Unobtainium_K"]})
    sim = EXAFSSimulator({})
    for name, bad in (("R1", 0.0), ("R2", -1.0), ("N1", -0.5), ("sigma2_1", -0.01)):
        with pytest.raises(ParameterError, match=name):
            sim.simulate({"material": "Cu_K_fcc", name: bad})


# ------------------------------------------------------------------ golden copies
def test_golden_copies_match_shared_refs():
    if not REFS.exists():
        pytest.skip(f"{REFS} absent: only the golden copies are available")
    files = sorted(GOLDEN.glob("*.npz"))
    assert len(files) >= 8
    for g in files:
        assert g.stat().st_size <= 50_000, g
        ref = np.load(REFS / g.name)
        gold = np.load(g)
        step = 2 if g.name.startswith("exspy") else 1
        for key in gold.files:
            a, b = gold[key], ref[key]
            if a.dtype.kind in "fc":
                b = b[::step] if (b.ndim == 1 and step > 1) else b
                assert np.allclose(a, b, rtol=1e-6, atol=0), (g.name, key)
            else:
                assert np.array_equal(a, b), (g.name, key)


# ------------------------------------------------------------------ EXELFS vs FEFF10 and exspy
def _smooth(k, y, rbkg):
    """Least-squares cubic spline in k with knots pi/rbkg apart (the AUTOBK-like background of background.py)."""
    from scipy.interpolate import make_lsq_spline
    m = k >= 1.0
    kk = k[m]
    inner = np.linspace(kk[0], kk[-1], max(int(2 * rbkg * (kk[-1] - kk[0]) / np.pi) + 1, 2))[1:-1]
    t = np.r_[[kk[0]] * 4, inner, [kk[-1]] * 4]
    out = np.full(len(k), np.nan)
    out[m] = make_lsq_spline(kk, y[m], t, k=3)(kk)
    return out


def _ft_peak(k, chi, kmin, kmax, rlo, rhi, dk=0.05, nfft=2048):
    kg = np.arange(0.0, 20.0 + dk / 2, dk)
    c = np.interp(kg, k, np.nan_to_num(chi))
    w = np.clip(np.minimum(kg - kmin + 0.5, kmax + 0.5 - kg), 0.0, 1.0)
    mag = np.abs(np.fft.fft(c * kg ** 2 * w, nfft)[:nfft // 2])
    r = np.pi / (dk * nfft) * np.arange(nfft // 2)
    m = (r >= rlo) & (r < rhi)
    return r[m][np.argmax(mag[m])], mag[m].max()


@pytest.mark.parametrize("edge,table", [("L3", "Ti_L3_rutile"), ("L2", "Ti_L2_rutile")])
def test_exelfs_fine_structure_matches_feff10_eels(edge, table):
    """Rutile Ti L3 / L2 EXELFS of our FEFF10 path tables vs FEFF10's own EELS calculation
    (tio2_exelfs_feff10_<edge>: 200 keV, beta 10 mrad, T = 0, S0^2 0.983).

    The reference fine structure is chi = total / mu0 - 1 with mu0 the AUTOBK-like spline (rbkg 0.8 A) of its
    total, ours passes through the same spline removal; FEFF's grid starts at its E0 with k = 0.  Tolerances, over
    k 2.5-6 1/A (Ti L EXELFS stops at the O K edge 76 eV = k 4.5 past Ti L3) and 2.5-8: k^2-weighted cosine
    similarity >= 0.95 / 0.92, rms amplitude within 15 %, |chi(R)| peaks of Ti-O (1.6 A) and Ti-Ti/O (3.0 A) at
    the same R within 0.05 A (measured: cos 0.976 / 0.947, amplitude 1.08 / 0.98, peaks equal).  Above k ~ 8 the
    FEFF10 EELS output (its EELS prefactor and atomic background) departs from the XAS-like chi: not compared.
    """
    d = _ref(f"tio2_exelfs_feff10_{edge}.npz")
    e = d["energy_loss_eV"]
    k = np.sqrt(ETOK * np.maximum(e - e[0], 0.0))
    assert np.allclose(np.diff(k[k > 1]), 0.05, atol=2e-3)          # FEFF's k grid from E0
    ref = d["total"] / _smooth(k, d["total"], 0.8) - 1.0
    ps = load_pathset(table)
    assert ps.edge == edge
    j = np.arange(ps.npath)
    chi = chi_of_paths(k, ps, j, ps.degen, ps.reff, np.zeros(ps.npath), np.zeros(ps.npath), s02=0.983)
    ours = chi - _smooth(k, chi, 0.8)
    for (lo, hi), cmin in (((2.5, 6.0), 0.95), ((2.5, 8.0), 0.92)):
        m = (k >= lo) & (k <= hi)
        a, b = ours[m] * k[m] ** 2, ref[m] * k[m] ** 2
        assert a @ b / np.sqrt((a @ a) * (b @ b)) > cmin, (lo, hi)
        assert abs(np.sqrt((a @ a) / (b @ b)) - 1.0) < 0.15, (lo, hi)
    for rlo, rhi in ((1.0, 2.3), (2.3, 3.6)):
        assert abs(_ft_peak(k, ours, 2.5, 8.0, rlo, rhi)[0] - _ft_peak(k, ref, 2.5, 8.0, rlo, rhi)[0]) < 0.05


def test_exelfs_l2_and_l3_fine_structures_agree_in_feff10():
    """FEFF10's L2 and L3 fine structures are the same function of k from each onset (same final states), which
    is why each edge's EXELFS is the path sum of its own table with k from its own onset: chi_L2 vs chi_L3
    within 5 % of max over k 2.5-10, and our two tables within 5 % (measured 2.7 %, at k 2.5: the L2 core hole is
    shorter-lived, 0.37 vs 0.24 eV, which shortens the mean free path) but not identical."""
    d3, d2 = _ref("tio2_exelfs_feff10_L3.npz"), _ref("tio2_exelfs_feff10_L2.npz")
    k3 = np.sqrt(ETOK * np.maximum(d3["energy_loss_eV"] - d3["energy_loss_eV"][0], 0))
    k2 = np.sqrt(ETOK * np.maximum(d2["energy_loss_eV"] - d2["energy_loss_eV"][0], 0))
    c3 = d3["total"] / _smooth(k3, d3["total"], 0.8) - 1
    c2 = np.interp(k3, k2, d2["total"] / _smooth(k2, d2["total"], 0.8) - 1)
    m = (k3 >= 2.5) & (k3 <= 10)
    assert np.max(np.abs(c3[m] - c2[m])) / np.max(np.abs(c3[m])) < 0.05
    p3, p2 = load_pathset("Ti_L3_rutile"), load_pathset("Ti_L2_rutile")
    k = np.arange(2.5, 12, 0.05)
    a = chi_of_paths(k, p3, np.arange(p3.npath), p3.degen, p3.reff, np.zeros(p3.npath), np.full(p3.npath, .004))
    b = chi_of_paths(k, p2, np.arange(p2.npath), p2.degen, p2.reff, np.zeros(p2.npath), np.full(p2.npath, .004))
    assert np.max(np.abs(a - b)) / np.max(np.abs(a)) < 0.05
    assert not np.array_equal(a, b)


def test_exelfs_onsets_and_edge_ratio_vs_exspy():
    """Overall core-loss shape vs exspy's hydrogenic TiO2 model (exspy_tio2_coreloss: power law r = 3, Ti L3 at
    456 and O K at 532 eV): edge onsets (steepest rise) within 1.0 eV; with our decay 3 (exspy's edges fall as
    E^-3.0 and E^-4.1, inside the recipe prior 0.5-4.5) the O K jump over the Ti L2,3 intensity just below O K
    within 25 % of exspy's (measured 0.79 vs 0.78)."""
    x = _ref("exspy_tio2_coreloss.npz")
    ex = x["energy_eV"].astype(float)
    sim = EXELFSSimulator({"e_min": 400.0, "e_max": 700.0, "e_step": 0.25})
    e = sim.axis.coords[0]
    y = sim.simulate(dict(material="TiO2_rutile", bg_ratio=1e-6, thickness=0.0, resolution=0.25, wl_height=0.0,
                          fs_scale=0.0, decay=3.0, edge_width=0.5, counts=0.0))[0].astype(float)

    def onset(en, sig, lo, hi):
        m = (en > lo) & (en < hi)
        return en[m][np.argmax(np.gradient(sig, en)[m])]
    ti_x, o_x = x["edge_Ti_L3"].astype(float), x["edge_O_K"].astype(float)
    assert abs(onset(e, y, 440, 470) - onset(ex, ti_x, 440, 470)) <= 1.0
    assert abs(onset(e, y, 520, 545) - onset(ex, o_x, 520, 545)) <= 1.0
    at = lambda en, sig, v: float(np.interp(v, en, sig))      # noqa: E731
    ratio_x = at(ex, o_x, 537.0) / at(ex, ti_x, 530.0)
    ratio_s = (at(e, y, 537.0) - at(e, y, 530.0) * (537.0 / 530.0) ** -3.0) / at(e, y, 530.0)
    assert abs(ratio_s / ratio_x - 1.0) < 0.25, (ratio_s, ratio_x)
    # both models: power-law background r = 3 before the first edge
    bg = x["background"].astype(float)
    m = (ex > 390) & (ex < 450)
    assert np.polyfit(np.log(ex[m]), np.log(bg[m]), 1)[0] == pytest.approx(-3.0, abs=0.05)


# ------------------------------------------------------------------ measured chi (train/ input) and the foil targets
def test_measured_chi_round_trip_from_simulated_mu():
    """mu(E) from the simulator's mu output (pre-edge slope, scale, offset, arctan edge) -> measured_chi ->
    equals the chi output at the same parameters with dE0 moved by the E0 that measured_chi found:
    R-factor < 0.003 for Cu and Fe foils (measured 0.0009 and 0.0004)."""
    from simgen.exafs.background import measured_chi, r_factor
    import simgen
    simc = simgen.load_recipe("exafs-3d-metals").build()
    simm = EXAFSSimulator({"output": "mu", "e_min": -200.0, "e_max": 1000.0, "e_step": 0.5})
    e = simm.axis.coords[0] + 8979.0
    for mat, d0 in (("Cu_K_fcc", 0.0), ("Fe_K_bcc", 4.0)):
        mu = simm.simulate({"material": mat, "dE0": d0, "edge_width": 2.0, "pre_slope": 0.3})[0] * 2.5 + 0.3
        y, bk = measured_chi(e, mu, simc, return_result=True)
        assert y.dtype == np.float32 and y.shape == simc.axis.shape
        assert abs(bk.e0 - 8979.0 - d0) < 1.0 and bk.edge_step == pytest.approx(2.5, rel=0.03)
        ref = simc.simulate({"label": mat, "material": mat, "dE0": d0 - (bk.e0 - 8979.0)})[0]
        assert r_factor(ref, y) < 0.003, mat
    with pytest.raises(ParameterError, match="energy"):
        measured_chi(e[:400], mu[:400], simc)             # data end before k_max
    with pytest.raises(RecipeError, match="config.output"):
        measured_chi(e, mu, simm)
    with pytest.raises(ParameterError, match="energy"):
        measured_chi(e, mu, simc, edge_energy=7112.0)   # Fe K edge asked for, Cu K data given
    assert measured_chi(e, mu, simc, edge_energy=8979.0 + 4.0).tobytes() == y.tobytes()


def test_thermal_third_cumulant():
    """anharmonicity kappa adds kappa (3 sigma^4 - 2 sigma0^4) to the first shell's C3 (sigma^2: its correlated-Debye
    value at T, sigma0^2 at T -> 0).  Checked against Frenkel & Rehr's Einstein-model form
    C3 = kappa sigma0^4 (1 + 10 z + z^2) / (1 - z)^2 with sigma^2 = sigma0^2 (1 + z) / (1 - z) (the identity the
    simulator's form rests on), its limits (zero point at T -> 0, the classical 3 kappa sigma^4 at high T), and the
    spectrum: the same chi as the explicit C3 in chi_of_paths; kappa = 0 keeps C3 = c3 as given."""
    s0 = 0.0031
    for z in (0.0, 0.01, 0.3, 0.7, 0.95):
        s2 = s0 * (1 + z) / (1 - z)
        assert 1.4 * (3 * s2 ** 2 - 2 * s0 ** 2) == pytest.approx(1.4 * s0 ** 2 * (1 + 10 * z + z * z) / (1 - z) ** 2,
                                                                   rel=1e-12)
    sim = EXAFSSimulator({})

    def first(T, kappa, c3=0.0):
        p = sim.prepare_params(dict(material="Cu_K_fcc", T=T, theta_D=315.0, anharmonicity=kappa, c3=c3))
        ps, idx, N, reff, dr, s2, c3v, shells = sim._paths(p, 0, "Cu_K_fcc")
        j = np.flatnonzero(np.abs(reff - reff.min()) < 1e-6)
        return c3v[j], s2[j], (ps, idx, N, reff, dr, s2, c3v)
    zero_point = first(1.0, 1.0)[1][0]                 # sigma^2 at 1 K: the zero-point value (theta_D / T = 315)
    for T in (5.0, 150.0, 300.0, 700.0):
        c3, s2, _ = first(T, 1.36)
        assert c3 == pytest.approx(1.36 * (3 * s2 ** 2 - 2 * zero_point ** 2), rel=1e-9)
    assert first(1.0, 1.36)[0][0] == pytest.approx(1.36 * zero_point ** 2, rel=1e-9)     # zero point
    c3, s2, _ = first(3000.0, 1.36)
    assert c3[0] == pytest.approx(3 * 1.36 * s2[0] ** 2, rel=0.01)                      # classical limit
    assert first(300.0, 0.0, c3=2e-4)[0][0] == 2e-4                                      # kappa 0: c3 as given
    assert first(300.0, 1.36, c3=2e-4)[0][0] == pytest.approx(2e-4 + first(300.0, 1.36)[0][0], rel=1e-12)
    # the spectrum carries that C3: chi of the paths with the C3 passed explicitly
    k = sim.axis.coords[0]
    ps, idx, N, reff, dr, s2, c3v = first(300.0, 1.36)[2]
    y = sim.simulate({"material": "Cu_K_fcc", "T": 300.0, "theta_D": 315.0, "anharmonicity": 1.36})[0]
    ref = chi_of_paths(k, ps, idx, N, reff, dr, s2, c3v, None, 0.9, 0.0) * k ** 2
    y0 = sim.simulate({"material": "Cu_K_fcc", "T": 300.0, "theta_D": 315.0})[0]
    assert np.allclose(y, ref, atol=1e-5 * np.abs(ref).max())
    assert np.abs(y - y0).max() > 1e-2 * np.abs(y0).max()


@pytest.mark.parametrize("fname,mat,T,theta,R1,s2_1", [
    ("XASLIB_Cu_cu_metal_rt.xdi", "Cu_K_fcc", 295.0, 315.0, 2.55, 0.0089),
    ("XASLIB_Fe_Fe_metal_rt_01.xdi", "Fe_K_bcc", 295.0, 460.0, 2.48, None)])
def test_real_foils_inside_recipe_priors(fname, mat, T, theta, R1, s2_1):
    """Issue 9's targets are learnable from exafs-3d-metals: the measured foil chi(k) k^2 (measured_chi) is fitted
    by the recipe's own simulator with every nuisance inside its prior, at R1 within 0.02 A of the crystal value,
    N1 at the bulk value, sigma2_1 within 25 % of 0.0089 (Cu) and R-factor < 0.1 (measured: Cu R1 2.550, s02 0.90,
    dE0 +5.4 eV, R 0.04; Fe R1 2.474, s02 0.78, dE0 +6.8 eV, R 0.055)."""
    f = DATA / fname
    if not f.exists():
        pytest.skip(f"{f} absent")
    from scipy.optimize import least_squares
    import simgen
    from simgen.exafs.background import measured_chi_file, r_factor
    rec = simgen.load_recipe("exafs-3d-metals")
    sim = rec.build()
    d = measured_chi_file(f, sim).astype(float)
    base = {"label": mat, "material": mat, "T": T, "theta_D": theta}

    def model(x):
        return sim.simulate({**base, "s02": x[0], "dE0": x[1], "strain": x[2], "sigma2_static": x[3]})[0]
    wide = ([0.3, -25.0, -0.1, 0.0], [1.5, 25.0, 0.1, 0.02])      # much wider than the priors
    fits = [least_squares(lambda x: model(x) - d, [0.9, de, st, 1e-3], bounds=wide)
            for st in (-0.02, 0.0, 0.02) for de in (0.0, 6.0)]
    fit = min(fits, key=lambda r: r.cost)
    out = sim.simulate_outputs({**base, "s02": fit.x[0], "dE0": fit.x[1], "strain": fit.x[2],
                                "sigma2_static": fit.x[3]})["params"]
    print(f"{fname}: R-factor {r_factor(d, d + fit.fun):.4f} s02 {fit.x[0]:.3f} dE0 {fit.x[1]:.2f} "
          f"R1 {out['R1'][0]:.4f} N1 {out['N1'][0]:.1f} sigma2_1 {out['sigma2_1'][0]:.5f}")
    assert r_factor(d, d + fit.fun) < 0.1
    assert abs(out["R1"][0] - R1) < 0.02
    if s2_1 is not None:
        assert abs(out["sigma2_1"][0] / s2_1 - 1) < 0.25
    pri = rec.params
    for name, v in (("s02", fit.x[0]), ("dE0", fit.x[1]), ("strain", fit.x[2]), ("sigma2_static", fit.x[3])):
        lo, hi = _prior_range(pri[name])
        assert lo - 1e-5 <= v <= hi + 1e-5, (name, v, lo, hi)
    lo, hi = _prior_range(rec.label.overrides[mat].get("theta_D", pri["theta_D"]))
    assert lo <= theta <= hi
    # white noise of the measured chi k^2 (|FT| at R 12-30 A, calibrated on simulated noise) inside the prior
    k = sim.axis.coords[0]
    w = np.hanning(len(k))

    def hi_r(y):
        F = np.fft.rfft(y * w, 4096)
        r = np.pi * np.fft.rfftfreq(4096, k[1] - k[0])
        return np.sqrt(np.mean(np.abs(F[(r > 12) & (r < 30)]) ** 2)) / np.sqrt(np.mean(y * y))
    cal = np.mean([hi_r(sim.simulate({**base, "noise": 0.02, "seed": s})[0].astype(float)) for s in range(8)]) / 0.02
    lo, hi = _prior_range(pri["noise"])
    print(f"   noise / rms ~ {hi_r(d) / cal:.3f} (prior {lo}-{hi})")      # measured: Cu 0.036, Fe 0.035
    assert lo <= hi_r(d) / cal <= hi


def _prior_range(prior):
    """[low, high] of a recipe prior (Uniform, LogUniform, TruncNormal: .low/.high; Fixed: .value)."""
    if hasattr(prior, "low") and hasattr(prior, "high"):
        return float(prior.low), float(prior.high)
    return float(prior.value), float(prior.value)


def test_bkg_residual_adds_low_R_only():
    sim = EXAFSSimulator({})
    base = {"material": "Cu_K_fcc", "seed": 3}
    a = sim.simulate(base)[0].astype(float)
    b = sim.simulate({**base, "bkg_residual": 0.05})[0].astype(float)
    r = b - a
    assert np.sqrt(np.mean(r * r)) / np.sqrt(np.mean(a * a)) == pytest.approx(0.05, rel=1e-3)
    k = sim.axis.coords[0]
    mag = np.abs(np.fft.rfft(r * np.hanning(len(k)), 2048))
    rr = np.pi * np.fft.rfftfreq(2048, k[1] - k[0])
    assert mag[rr < 1.3].sum() > 0.9 * mag.sum()
    assert sim.simulate({**base, "bkg_residual": 0.05})[0].tobytes() == b.astype(np.float32).tobytes()


class TestEXAFSContract(SimulatorContract):
    recipe = "exafs-3d-metals"
    invalid_params = [("R1", -1.0), ("N1", -1.0), ("T", 0.0), ("material", "Xx_K_fcc"), ("s02", 3.0)]
    n = 4


class TestEXELFSContract(SimulatorContract):
    recipe = "exelfs-ti-oxides"
    invalid_params = [("R1", 0.0), ("N1", -2.0), ("material", "Unknown"), ("thickness", -1.0)]
    n = 3


@pytest.mark.slow
def test_foil_targets_learnable_by_a_small_mlp():
    """End-to-end learnability of the foil targets from the exafs-3d-metals recipe: a small sklearn MLP (not
    the project's networks) trained on 30 000 simulated chi(k) k^2 reads the measured foils prepared by measured_chi.
    Measured in two runs (30k samples, 60 epochs): Cu RT N1 11.5 / 12.2, R1 2.560 / 2.572, sigma2_1 0.0081 /
    0.0089; Fe RT R1 2.463.  Asserted, with this crude model's run-to-run spread: Cu R1 2.55 +- 0.03, N1 12 +- 1.5,
    sigma2_1 within 25 % of 0.0089; Fe R1 2.48 +- 0.03 (the networks of the real-data validation must reach +-0.02).  ~13 min CPU."""
    cu, fe = DATA / "XASLIB_Cu_cu_metal_rt.xdi", DATA / "XASLIB_Fe_Fe_metal_rt_01.xdi"
    if not (cu.exists() and fe.exists()):
        pytest.skip(f"{DATA} foils absent")
    import simgen
    from sklearn.neural_network import MLPRegressor
    from simgen.exafs import measured_chi_file
    sim = simgen.load_recipe("exafs-3d-metals").build()
    p = sim.sample_params(30_000, np.random.default_rng(0))
    X = sim.simulate(p).astype(float)
    cols = [list(sim.targets).index(c) for c in ("N1", "R1", "sigma2_1")]
    Y = sim.targets_array(p).astype(float)[:, cols]
    ok = np.all(np.isfinite(Y), axis=1)
    X, Y = X[ok], Y[ok]
    xs, mu, sd = np.sqrt(np.mean(X ** 2)), Y.mean(0), Y.std(0)
    m = MLPRegressor(hidden_layer_sizes=(256, 128), max_iter=60, early_stopping=True, random_state=0,
                     batch_size=256).fit(X / xs, (Y - mu) / sd)
    read = lambda f: m.predict(measured_chi_file(f, sim).astype(float)[None] / xs)[0] * sd + mu   # noqa: E731
    n1, r1, s2 = read(cu)
    print(f"Cu foil: N1 {n1:.2f} R1 {r1:.4f} sigma2_1 {s2:.5f}")
    assert abs(r1 - 2.55) <= 0.03 and abs(n1 - 12) <= 1.5 and abs(s2 / 0.0089 - 1) <= 0.25
    _, r1, _ = read(fe)
    print(f"Fe foil: R1 {r1:.4f}")
    assert abs(r1 - 2.48) <= 0.03
