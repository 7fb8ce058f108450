"""Tests of the ``solutions`` simulator: the contract, every Numba kernel against a slow NumPy version, each physical
effect against a hand calculation, compositions, bad input, and the recipes' corpora.

Tolerances (stated once):
- kernels vs NumPy: 1e-12 relative (same algebra in float64); the Lorentzian tail cut at ``lorentz_cut`` FWHM
  bounds the truncation error by 1/(1 + 4 cut^2) of a band's height;
- speciation: mass-action residuals |ln(Q/K)| <= 1e-8 and mass balance 1e-12 relative (the solver's
  tolerance is 1e-10); hand-solved pair fractions 1e-6 relative;
- spectra in float32: 1e-5 relative; peak positions located by a parabola through the top three points of a
  0.01 cm-1 grid: 0.02 cm-1 (the neighbouring bands' slopes move the apex by less);
- noise statistics from ~10^4 pixels: 10 %.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from simgen import corpus, load_recipe
from simgen.errors import ParameterError, RecipeError
from simgen.solutions import chemistry, kernels
from simgen.solutions.simulator import CONC_PARAMS, SolutionsSimulator, standard_area
from simgen.solutions.tables import species_table
from simgen.testing import SimulatorContract

T = species_table()
RECIPES = ["solutions-000-raman", "solutions-000-uvvis", "solutions-nitrate-sulfate-raman",
           "solutions-transition-metals-uvvis"]


# ------------------------------------------------------------------------------------------------ contract
class TestSolutions000RamanContract(SimulatorContract):
    recipe = "solutions-000-raman"
    invalid_params = [("c_zn", -1.0), ("exposure", 0.0), ("resolution", -1.0), ("strength_spread", 5.0)]


class TestSolutions000UVContract(SimulatorContract):
    recipe = "solutions-000-uvvis"
    invalid_params = [("path_cm", 0.0), ("stray_light", 0.5), ("c_cu", -0.1)]


class TestSolutionsNitrateSulfateContract(SimulatorContract):
    recipe = "solutions-nitrate-sulfate-raman"
    invalid_params = [("c_no3", -0.5), ("cosmic_rate", -1.0)]


class TestSolutionsTransitionMetalsContract(SimulatorContract):
    recipe = "solutions-transition-metals-uvvis"
    invalid_params = [("bandwidth_nm", -1.0), ("c_co", 100.0)]


# ------------------------------------------------------------------------------------------------ helpers
def sim_of(measurement="raman", **config):
    """A simulator with every nuisance at its default (no noise), ions given directly."""
    cfg = {"measurement": measurement, "composition": "ions", **config}
    if measurement == "raman":
        cfg.setdefault("shot_noise", False)
    return SolutionsSimulator(cfg)


def one(sim, **params):
    return sim.simulate({k: np.atleast_1d(v) for k, v in params.items()})[0].astype(np.float64)


def pv_slow(x, c, w, eta):
    d2 = ((x - c) / w) ** 2
    return (1 - eta) * np.exp(-4 * np.log(2) * d2) + eta / (1 + 4 * d2)


def apex(x, y):
    k = int(np.argmax(y))
    a, b, c = y[k - 1], y[k], y[k + 1]
    return x[k] + 0.5 * (x[1] - x[0]) * (a - c) / (a - 2 * b + c)


# ------------------------------------------------------------------------------------------------ kernels
def test_band_sum_matches_numpy():
    rng = np.random.default_rng(3)
    x = np.linspace(100, 2000, 1501)
    n, B = 4, 9
    pos = rng.uniform(50, 2100, (n, B))
    fwhm = rng.uniform(3, 300, (n, B))
    eta = rng.uniform(0, 1, B)
    eta[:3] = [0.0, 1.0, 0.5]
    h = rng.uniform(0, 2, (n, B))
    h[0, 2] = 0.0
    ref = np.stack([sum(h[i, k] * pv_slow(x, pos[i, k], fwhm[i, k], eta[k]) for k in range(B)) for i in range(n)])
    out = np.empty((n, len(x)))
    kernels.band_sum(x, pos, fwhm, eta, h, 1e9, out)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    cut = 30.0
    kernels.band_sum(x, pos, fwhm, eta, h, cut, out)
    assert np.max(np.abs(out - ref)) <= h.sum(axis=1).max() / (1 + 4 * cut ** 2)


def gauss_smooth_slow(y, s):
    if s <= 0.05:
        return y.copy()
    K = min(int(math.ceil(4 * s)), len(y) - 1)
    k = np.arange(-K, K + 1)
    w = np.exp(-0.5 * (k / s) ** 2)
    out = np.empty_like(y)
    for j in range(len(y)):
        sel = (j + k >= 0) & (j + k < len(y))
        out[j] = np.sum(w[sel] * y[j + k[sel]]) / np.sum(w[sel])
    return out


def test_gauss_smooth_matches_numpy_and_keeps_area():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(4, 300))
    s = np.array([0.0, 0.7, 3.3, 12.0])
    out = np.empty_like(y)
    kernels.gauss_smooth(y, s, out)
    for i in range(4):
        np.testing.assert_allclose(out[i], gauss_smooth_slow(y[i], s[i]), rtol=1e-12, atol=1e-12)
    # a narrow line far from the ends keeps its area and its width adds in quadrature (Gaussian case)
    x = np.arange(2000.0)
    line = np.exp(-0.5 * ((x - 1000) / 4.0) ** 2)[None, :]
    o = np.empty_like(line)
    kernels.gauss_smooth(line, np.array([3.0]), o)
    assert abs(o.sum() - line.sum()) < 1e-9 * line.sum()
    var = np.sum(o[0] * (x - 1000) ** 2) / o.sum()
    assert abs(var - (16.0 + 9.0)) < 0.02  # the 4-sigma cut removes ~0.1 % of the kernel's variance


def test_transmit_measure_matches_numpy():
    rng = np.random.default_rng(5)
    A = rng.uniform(-0.1, 7, (3, 200))
    s = np.array([0.0, 2.0, 5.0])
    stray = np.array([0.0, 1e-3, 0.05])
    noise = rng.normal(0, 1e-3, (3, 200))
    out, tmp = np.empty_like(A), np.empty_like(A)
    kernels.transmit_measure(A, s, stray, noise, 4.0, tmp, out)
    for i in range(3):
        t = gauss_smooth_slow(10.0 ** -A[i], s[i])
        t = (t + stray[i]) / (1 + stray[i]) + noise[i]
        ref = -np.log10(np.maximum(t, 1e-4))
        np.testing.assert_allclose(out[i], ref, rtol=1e-12, atol=1e-12)
    assert out.max() <= 4.0 + 1e-12


def _equilibrium_residuals(m, A=T.activity_A):
    """max |ln(Q/K)| over the reactions whose species are all present, from the definition (NumPy)."""
    worst = 0.0
    lg = np.log(10) * chemistry.davies_log10_gamma(T.charge, 0.5 * np.sum(T.charge ** 2 * m), A, T.davies_b,
                                                   T.davies_I_max)
    for r in range(len(T.logK)):
        sp = T.nu[r] != 0
        if np.all(m[sp] > 0):
            worst = max(worst, abs(T.nu[r, sp] @ (np.log(m[sp]) + lg[sp]) - T.logK[r] * np.log(10)))
    return worst


@pytest.mark.parametrize("recipe", ["solutions-000-raman", "solutions-nitrate-sulfate-raman",
                                    "solutions-transition-metals-uvvis"])
def test_speciation_kernel_satisfies_mass_action_and_balance(recipe):
    sim = load_recipe(recipe).build()
    p = sim.sample_params(64, np.random.default_rng(8))
    ch = sim.composition(sim.prepare_params(p))
    m = ch["molal"]
    assert np.all(m >= 0)
    m0 = np.zeros_like(m)
    m0[:, :len(T.components)] = chemistry.convert(T, ch["totals"], sim.config["units"])[0]
    null = np.linalg.svd(T.nu)[2][np.linalg.matrix_rank(T.nu):].T  # conserved combinations: nu @ w = 0
    assert np.abs((m - m0) @ null).max() <= 1e-12 * max(1.0, np.abs(m0 @ null).max())
    for i in range(len(m)):
        assert _equilibrium_residuals(m[i]) <= 1e-8
    np.testing.assert_allclose(ch["ionic"], 0.5 * (m * T.charge ** 2).sum(axis=1), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ chemistry
def _pair_by_hand(m, logK, zc, za, davies):
    """1:1 pair M + L <-> ML from total m (mol/kg) by bisection, with the Davies I iterated to self-consistency."""
    K = 10.0 ** logK
    I = 0.5 * (zc ** 2 + za ** 2) * m
    for _ in range(200):
        g = 10 ** (-T.activity_A * (zc ** 2 + za ** 2 - (zc + za) ** 2)
                   * (math.sqrt(min(I, 1.0)) / (1 + math.sqrt(min(I, 1.0))) - 0.3 * min(I, 1.0))) if davies else 1.0
        # x / ((m - x)^2) = K * g  where g = gamma_M gamma_L / gamma_ML
        lo, hi = 0.0, m
        for _ in range(200):
            x = 0.5 * (lo + hi)
            if x / (m - x) ** 2 > K * g:
                hi = x
            else:
                lo = x
        I_new = 0.5 * (zc ** 2 + za ** 2) * (m - x) + 0.5 * (zc + za) ** 2 * x
        if abs(I_new - I) < 1e-15:
            break
        I = I_new
    return x, I


@pytest.mark.parametrize("m", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("activity", ["ideal", "davies"])
def test_znso4_pair_fraction_by_hand(m, activity):
    sim = sim_of(units="mol/kg", activity=activity, balance_cation="none", balance_anion="none")
    ch = sim.composition(sim.prepare_params({"c_zn": m, "c_so4": m}))
    x = ch["molal"][0, T.index("znso4")]
    ref, I = _pair_by_hand(m, 2.34, 2, -2, activity == "davies")
    if activity == "ideal":  # closed form of x = K (m - x)^2
        K = 10 ** 2.34
        assert abs(ref - ((2 * K * m + 1) - math.sqrt(4 * K * m + 1)) / (2 * K)) < 1e-12
    assert abs(x - ref) <= 1e-6 * ref
    assert abs(ch["ionic"][0] - I) <= 1e-6 * I
    assert abs(ch["molal"][0, T.index("zn")] - (m - ref)) <= 1e-6 * m


def test_no_pairing_leaves_ions_free():
    sim = sim_of(units="mol/kg", ion_pairing=False)
    ch = sim.composition(sim.prepare_params({"c_zn": 0.3, "c_so4": 0.3}))
    assert ch["molal"][0, T.index("znso4")] == 0
    assert abs(ch["ionic"][0] - 0.5 * (4 * 0.3 + 4 * 0.3)) < 1e-12


def test_molality_molarity_and_water_by_hand():
    # 1 mol/kg NaCl: V = 1000/0.99705 + (-1.2 + 17.8) cm3 per kg of water
    vsol = 1000 / 0.99705 - 1.2 + 17.8
    sim = sim_of(units="mol/kg")
    ch = sim.composition(sim.prepare_params({"c_na": 1.0, "c_cl": 1.0}))
    assert abs(ch["kgw"][0] - 1000 / vsol) < 1e-12
    assert abs(ch["c_water"][0] - 55.508 * 1000 / vsol) < 1e-10
    assert abs(ch["molar"][0, T.index("na")] - 1000 / vsol) < 1e-12
    # and back: the same solution given in mol/L has 1 mol/kg
    sim_l = sim_of(units="mol/L")
    ch_l = sim_l.composition(sim_l.prepare_params({"c_na": 1000 / vsol, "c_cl": 1000 / vsol}))
    assert abs(ch_l["molal"][0, T.index("na")] - 1.0) < 1e-12
    # switched off: water stays at the pure-water value
    sim0 = sim_of(units="mol/kg", solute_volume=False)
    assert abs(sim0.composition(sim0.prepare_params({"c_na": 1.0, "c_cl": 1.0}))["c_water"][0]
               - 55.508 * 0.99705) < 1e-10


def test_counter_ion_balance_and_refusal():
    sim = sim_of()
    out = sim.simulate_outputs({"c_zn": 0.1})
    assert abs(out["params"]["c_cl"][0] - 0.2) < 1e-15
    out = sim.simulate_outputs({"c_so4": 0.1})
    assert abs(out["params"]["c_h"][0] - 0.2) < 1e-15
    strict = sim_of(balance_anion="none")
    with pytest.raises(ParameterError, match="c_zn"):
        strict.simulate({"c_zn": 0.1})


@pytest.mark.parametrize("recipe", [r for r in RECIPES])
def test_drawn_compositions_are_electroneutral_and_within_limits(recipe):
    sim = load_recipe(recipe).build()
    p = sim.sample_params(400, np.random.default_rng(11))
    conc = np.stack([p[k] for k in CONC_PARAMS], axis=1)
    q = chemistry.charge_imbalance(T, conc)
    assert np.all(np.abs(q) <= 1e-12 * (1 + np.abs(conc).sum(axis=1)))
    for key, lim in (sim.config["limits"] or {}).items():
        assert p[key].max() <= lim
    if sim.config["max_ionic_strength"]:
        assert np.all(0.5 * conc @ T.charge[:len(T.components)] ** 2 <= sim.config["max_ionic_strength"])
    # the simulator adds no counter-ion to them
    out = sim.simulate_outputs({k: v[:5] for k, v in p.items()})
    for k in CONC_PARAMS:
        np.testing.assert_array_equal(out["params"][k], p[k][:5])


def test_salt_presence_gives_subsets():
    sim = load_recipe("solutions-000-raman").build()
    p = sim.sample_params(300, np.random.default_rng(2))
    zero = np.mean(p["salt_zinc_sulfate"] == 0)
    assert 0.3 < zero < 0.7  # presence 0.5 (redraws of violating rows do not change it much)
    ions = sim.ions_from_salts({"iron3_sulfate": 0.1, "nitric_acid": 0.05})
    assert ions["c_fe"][0] == pytest.approx(0.2) and ions["c_so4"][0] == pytest.approx(0.3)
    assert ions["c_h"][0] == pytest.approx(0.05) and ions["c_no3"][0] == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------------ Raman physics
def test_sulfate_nu1_shift_and_width_with_ionic_strength():
    # 0.5 mol/kg Na2SO4, no pairing: I = 0.5 (2 x 0.5 x 1 + 0.5 x 4) = 1.5 mol/kg
    cfg = dict(units="mol/kg", ion_pairing=False, axis_min=950.0, axis_max=1010.0, n_points=6001)
    y = one(sim_of(**cfg), c_na=1.0, c_so4=0.5)
    x = np.linspace(950, 1010, 6001)
    assert abs(apex(x, y) - (981.4 + 0.35 * 1.5)) < 0.02
    y0 = one(sim_of(band_shifts=False, **cfg), c_na=1.0, c_so4=0.5)
    assert abs(apex(x, y0) - 981.4) < 0.02
    pos, fwhm = chemistry.band_params(T.raman, np.array([1.5]), True)
    k = T.raman.label.index("SO4 2-: nu1")
    assert pos[0, k] == pytest.approx(981.4 + 0.35 * 1.5) and fwhm[0, k] == pytest.approx(7.7 + 0.9 * 1.5)


def test_contact_pair_band_by_hand():
    # ZnSO4 0.5 mol/kg: the contact share (10 %) of the pairs scatters at 995 cm-1
    sim = sim_of(units="mol/kg")
    p = sim.prepare_params({"c_zn": 0.5, "c_so4": 0.5})
    ch = sim.composition(p)
    pos, fwhm, area = sim.band_state(p, ch, T.raman)
    k = T.raman.label.index("ZnSO4(aq) (contact): nu1 (contact pair)")
    pair = ch["molar"][0, T.index("znso4")]
    assert area[0, k] == pytest.approx(pair * 0.90 * 0.10, rel=1e-12)
    free = T.raman.label.index("SO4 2-: nu1")
    inherited = [j for j, lab in enumerate(T.raman.label) if lab == "ZnSO4(aq): nu1"]
    assert area[0, free] == pytest.approx(ch["molar"][0, T.index("so4")] * 0.90, rel=1e-12)
    assert area[0, inherited[0]] == pytest.approx(pair * 0.90 * 0.90, rel=1e-12)
    # total sulfate nu1 intensity is conserved by pairing (same cross sections); only its shape changes
    assert area[0, [free, inherited[0], k]].sum() == pytest.approx(ch["molar"][0, [T.index("so4"),
                                                                    T.index("znso4")]].sum() * 0.90, rel=1e-12)


def test_water_band_redistribution_by_hand():
    # 1 mol/kg NaClO4: f = 0.12 (ClO4-) + 0 (Na+) of the 3230 cm-1 component moves to 3420 cm-1
    sim = sim_of(units="mol/kg", ion_pairing=False)
    p = sim.prepare_params({"c_na": 1.0, "c_clo4": 1.0})
    ch = sim.composition(p)
    _, _, area = sim.band_state(p, ch, T.raman)
    ks, kw = (T.raman.role == 1), (T.raman.role == 2)
    cw = ch["c_water"][0]
    assert area[0, ks].sum() == pytest.approx(cw * 0.55 * (1 - 0.12), rel=1e-12)
    assert area[0, kw].sum() == pytest.approx(cw * (0.70 + 0.12 * 0.55), rel=1e-12)
    sim_off = sim_of(units="mol/kg", ion_pairing=False, water_effects=False)
    _, _, area0 = sim_off.band_state(p, sim_off.composition(p), T.raman)
    assert area0[0, ks].sum() == pytest.approx(cw * 0.55, rel=1e-12)


def test_calibration_offset_and_stretch_move_bands():
    x = np.linspace(900, 1100, 20001)
    cfg = dict(axis_min=900.0, axis_max=1100.0, n_points=20001, ion_pairing=False, band_shifts=False)
    base = dict(c_na=0.5, c_clo4=0.5)
    y = one(sim_of(**cfg), **base, shift_offset=2.5)
    assert abs(apex(x, y) - (934.0 + 2.5)) < 0.02
    # stretch: +s at the high end, -s at the low end, linear between: at 934, u = (934 - 1000) / 100
    y = one(sim_of(**cfg), **base, shift_stretch=3.0)
    assert abs(apex(x, y) - (934.0 + 3.0 * (934 - 1000) / 100)) < 0.02


def test_thermal_factor_by_hand():
    cfg = dict(axis_min=300.0, axis_max=1200.0, n_points=901)
    comp = dict(c_na=0.5, c_so4=0.25)
    y298 = one(sim_of(**cfg), **comp)
    y350 = one(sim_of(temperature_K=350.0, **cfg), **comp)
    x = np.linspace(300, 1200, 901)
    B = lambda nu, t: 1.0 / (-np.expm1(-1.4387769 * nu / t))  # noqa: E731
    np.testing.assert_allclose(y350 / y298, B(x, 350.0) / B(x, 298.15), rtol=1e-5)
    y785 = one(sim_of(laser_nm=785.0, **cfg), **comp)
    nl, n0 = 1e7 / 785, 1e7 / 532
    np.testing.assert_allclose(y785 / y298, nl * (nl - x) ** 3 / (n0 * (n0 - x) ** 3), rtol=1e-5)


def test_exposure_response_fluorescence_offset_by_hand():
    cfg = dict(axis_min=800.0, axis_max=1200.0, n_points=401)
    comp = dict(c_na=1.0, c_no3=1.0)
    x = np.linspace(800, 1200, 401)
    y1 = one(sim_of(**cfg), **comp, exposure=1000.0)
    y2 = one(sim_of(**cfg), **comp, exposure=3000.0)
    np.testing.assert_allclose(y2, 3 * y1, rtol=1e-6)
    u = (x - 1000) / 200
    yr = one(sim_of(**cfg), **comp, response_c1=0.2, response_c2=-0.1)
    np.testing.assert_allclose(yr, y1 * (1 + 0.2 * u - 0.1 * u * u), rtol=1e-5)
    yf = one(sim_of(**cfg), **comp, fluor_amp=0.5, fluor_center=1000.0, fluor_width=300.0, offset=0.1)
    add = y1.max() * (0.5 * np.exp(-0.5 * ((x - 1000) / 300) ** 2) + 0.1)
    np.testing.assert_allclose(yf, y1 + add, rtol=1e-5)


def test_exposure_is_pure_water_oh_peak_counts():
    sim = sim_of(axis_min=2500.0, axis_max=3900.0, n_points=1401, solute_volume=False)
    y = one(sim, exposure=5000.0)
    assert y.max() == pytest.approx(5000.0, rel=1e-3)  # 1 cm-1 grid vs the 0.5 cm-1 reference grid


def test_shot_read_noise_and_cosmic_rays():
    cfg = dict(axis_min=1500.0, axis_max=1800.0, n_points=3001)
    clean = one(sim_of(**cfg), exposure=2e4)
    noisy = SolutionsSimulator({"composition": "ions", **cfg}).simulate(
        {"exposure": 2e4, "seed": np.arange(4)}).astype(np.float64)
    r = (noisy - clean) / np.sqrt(clean)
    assert abs(r.var() - 1.0) < 0.1
    rn = sim_of(**cfg).simulate({"exposure": 2e4, "read_noise": 30.0, "seed": np.arange(4)}) - clean
    assert abs(rn.std() - 30.0) < 3.0
    spikes = sim_of(**cfg).simulate({"exposure": 2e4, "cosmic_rate": 5.0, "cosmic_amp": 1.0,
                                     "seed": np.arange(20)}) - clean
    n_spiky = np.sum(spikes > 0.05 * clean.max(), axis=1)
    assert n_spiky.mean() > 2.0 and n_spiky.max() <= 40
    assert np.all(sim_of(**cfg).simulate({"exposure": 2e4, "seed": np.arange(3)}) - clean == 0)


def test_resolution_broadens_but_keeps_area():
    cfg = dict(axis_min=850.0, axis_max=1250.0, n_points=4001, ion_pairing=False, band_shifts=False)
    comp = dict(c_na=1.0, c_no3=1.0)
    y0 = one(sim_of(**cfg), **comp)
    y1 = one(sim_of(**cfg), **comp, resolution=8.0)
    sel = slice(1500, 2500)  # 1000-1100 cm-1, far from the axis ends
    assert y1[sel].sum() == pytest.approx(y0[sel].sum(), rel=2e-3)
    assert y1.max() < 0.7 * y0.max()


def test_internal_standard_normalisation_by_hand():
    # perchlorate as internal standard: normalised nitrate nu1 area = c_NO3 0.95 / (c_ClO4 1.00)
    cfg = dict(axis_min=850.0, axis_max=1150.0, n_points=3001, ion_pairing=False, band_shifts=False,
               water_effects=False, normalise="standard", standard_window=[894.0, 974.0])
    x = np.linspace(850, 1150, 3001)
    y = one(sim_of(**cfg), c_na=0.8, c_clo4=0.2, c_no3=0.6)
    i0, i1 = np.searchsorted(x, 1007.5), np.searchsorted(x, 1087.5, side="right")
    ratio = standard_area(x, y[None, :], i0, i1)[0]
    assert ratio == pytest.approx(0.6 * 0.95 / (0.2 * 1.00), rel=0.02)
    y10 = one(sim_of(**cfg), c_na=0.8, c_clo4=0.2, c_no3=0.6, exposure=1e4)
    np.testing.assert_allclose(y10, y, rtol=1e-5)
    ym = one(sim_of(**{**cfg, "normalise": "max"}), c_na=0.8, c_clo4=0.2, c_no3=0.6)
    assert ym.max() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ UV-vis physics
def _co_absorbance_by_hand(lam, c, path):
    """Beer-Lambert of c mol/L Co(NO3)2: the Co2+ d-d bands and nitrate's n->pi* tail (Gaussians in 1/lambda)."""
    A = np.zeros_like(lam)
    for key, conc in (("co", c), ("no3", 2 * c)):
        for k in np.flatnonzero(T.uvvis.species == T.index(key)):
            A += conc * T.uvvis.strength[k] * np.exp(
                -4 * np.log(2) * ((1e7 / lam - T.uvvis.pos[k]) / T.uvvis.fwhm[k]) ** 2)
    return A * path


def test_diluted_solution_absorbance_by_hand():
    cfg = dict(axis_min=450.0, axis_max=650.0, n_points=201)
    lam = np.linspace(450, 650, 201)
    sim = sim_of("uvvis", **cfg)
    a2 = one(sim, c_co=0.2, c_no3=0.4)
    a1 = one(sim, c_co=0.1, c_no3=0.2)  # the same solution diluted twofold
    np.testing.assert_allclose(a2, _co_absorbance_by_hand(lam, 0.2, 1.0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a1, a2 / 2, rtol=1e-5, atol=1e-7)
    assert a2[np.searchsorted(lam, 512)] == pytest.approx(0.2 * 4.8 + 0.2 * 2.2 * math.exp(
        -4 * math.log(2) * ((1e7 / 512 - 1e7 / 465) / 2500) ** 2), rel=1e-3)
    # Beer-Lambert: path length
    a_5 = one(sim, c_co=0.2, c_no3=0.4, path_cm=0.5)
    np.testing.assert_allclose(a_5, a2 / 2, rtol=1e-5, atol=1e-7)


def test_stray_light_and_saturation_by_hand():
    cfg = dict(axis_min=450.0, axis_max=650.0, n_points=201, a_max=3.0)
    lam = np.linspace(450, 650, 201)
    sim = sim_of("uvvis", **cfg)
    true = _co_absorbance_by_hand(lam, 2.0, 1.0)  # up to ~ 10: far beyond the detector
    s = 1e-3
    a = one(sim, c_co=2.0, c_no3=4.0, stray_light=s)
    ref = np.minimum(-np.log10((10 ** -true + s) / (1 + s)), 3.0)
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-6)
    a0 = one(sim, c_co=2.0, c_no3=4.0)
    assert a0.max() == pytest.approx(3.0)


def test_water_blank_and_displacement():
    cfg = dict(axis_min=900.0, axis_max=1050.0, n_points=151)
    sim_w = sim_of("uvvis", units="mol/kg", **cfg)
    sim_a = sim_of("uvvis", units="mol/kg", blank="air", **cfg)
    assert np.all(one(sim_w) == 0)  # pure water against a water blank
    pure = one(sim_a)
    assert pure[np.searchsorted(np.linspace(900, 1050, 151), 970)] == pytest.approx(
        0.0081 * 55.508 * 0.99705, rel=1e-4)
    # 2 mol/kg NaNO3 displaces water: the 970 nm band goes negative against the water blank
    a = one(sim_w, c_na=2.0, c_no3=2.0)
    vsol = 1000 / 0.99705 + 2 * (-1.2 + 29.0)
    dcw = 55.508 * 1000 / vsol - 55.508 * 0.99705
    assert a[70] == pytest.approx(0.0081 * dcw, rel=1e-3)


def test_wavelength_offset_moves_bands():
    cfg = dict(axis_min=450.0, axis_max=650.0, n_points=20001)
    lam = np.linspace(450, 650, 20001)
    sim = sim_of("uvvis", **cfg)
    a = one(sim, c_cr=0.1, c_no3=0.3, wavelength_offset=1.5)
    a0 = one(sim, c_cr=0.1, c_no3=0.3)
    k = lam > 520
    assert abs(apex(lam[k], a[k]) - apex(lam[k], a0[k]) - 1.5) < 0.05


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_recipes_are_refused_by_name():
    base = {"simulator": "solutions", "seed": 1, "config": {"measurement": "raman"}}
    with pytest.raises(RecipeError, match="params.path_cm"):
        load_recipe({**base, "params": {"path_cm": {"uniform": [0.1, 1.0]}}})
    with pytest.raises(RecipeError, match="params.c_zn"):
        load_recipe({**base, "config": {"composition": "salts"}, "params": {"c_zn": {"uniform": [0, 1]}}})
    with pytest.raises(RecipeError, match="params.salt_zinc_sulfate"):
        load_recipe({**base, "params": {"salt_zinc_sulfate": {"uniform": [0, 1]}}})
    with pytest.raises(RecipeError, match="config.limits.c_xx"):
        load_recipe({**base, "config": {"limits": {"c_xx": 1.0}}})
    with pytest.raises(RecipeError, match="config.salt_presence.table_salt"):
        load_recipe({**base, "config": {"composition": "salts", "salt_presence": {"table_salt": 0.5}}})
    with pytest.raises(RecipeError, match="config.standard_window"):
        load_recipe({**base, "config": {"normalise": "standard", "standard_window": [100.0, 5000.0]}})
    with pytest.raises(RecipeError, match="config.axis_max"):
        load_recipe({**base, "config": {"axis_min": 900.0, "axis_max": 800.0}})
    with pytest.raises(RecipeError, match="config.limits"):  # limits no draw can meet
        load_recipe({**base, "config": {"composition": "salts", "limits": {"c_zn": 0.1}, "max_draws": 3},
                     "params": {"salt_zinc_sulfate": {"uniform": [0.5, 1.0]}}}).build().sample_params(
            5, np.random.default_rng(0))


def test_too_concentrated_is_refused():
    with pytest.raises(ParameterError, match="c_no3"):
        sim_of().simulate({"c_no3": 30.0, "c_na": 30.0})


# ------------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_builds_a_corpus_byte_identically(recipe, tmp_path):
    rec = load_recipe(recipe)
    sim = rec.build()
    assert sim.param_names and all(p.startswith("c_") for p in sim.param_names)
    digests = []
    for k in range(2):
        store = tmp_path / f"c{k}.zarr"
        corpus.build(rec, 6, store, chunk_rows=4, progress=False, scheduler="synchronous")
        digests.append(corpus.content_digest(store))
    assert digests[0] == digests[1]
    c = corpus.open(tmp_path / "c0.zarr")
    assert c is not None
    if recipe == "solutions-000-raman":
        assert sim.axis.shape == (2598,)
        assert list(sim.param_names) == ["c_zn", "c_cu", "c_li", "c_fe", "c_ni", "c_nh4", "c_so4", "c_no3"]
