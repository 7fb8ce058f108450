"""First-shell refinement after the network for EXAFS models (``EXAFSAdapter.refine``,
``train.modalities.exafs_refine``).

Reference: noisy chi(k) k^2 spectra of catalog materials simulated by the simulator itself with a known first shell
(coordination thinned by vacancies, distance strained, sigma^2, E0 shift, S0^2 = 0.9, 3 % noise and a
background residual): the fit with S0^2 fixed at the true value must return N within 5 %, R within 0.005 A and
sigma^2 within 10 %; with S0^2 free in the prior range it keeps a consistent N and corrects one the measured
amplitude rules out (only when the F test finds the change significant); a spectrum of another structure is
rejected and the network's values stand; a shell simulated with c3 = 3e-4 A^3 is read with c3 within 0.6e-4 and R
within 0.004 A when c3 is free (a harmonic fit reads it > 0.01 A short); the refinement is off unless switched on.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from simgen.recipe import load_recipe
from train.measurements import Measurement
from train.modalities import get
from train.modalities.exafs import _plain_simulator
from train.modalities.exafs_refine import chik_float64, chir, f_test, fit_first_shells, kwindow
from train.prepare import Prepared, target_spec

TRUE = {  # material -> simulated first shell(s): N per sub-shell, strain, sigma2, dE0, T
    "Cu_K_fcc": dict(vacancy=0.12, strain=0.006, sigma2=0.0072, dE0=4.0, T=200.0),
    "Fe_K_bcc": dict(vacancy=0.05, strain=-0.008, sigma2=0.0050, dE0=7.0, T=295.0),
    "Ti_K_hcp": dict(vacancy=0.10, strain=0.004, sigma2=0.0080, dE0=5.5, T=295.0),
}
CU2O = dict(vacancy=0.0, strain=0.0, sigma2=0.0030, dE0=5.0, T=295.0)


def _spec(recipe="exafs-foils"):
    return target_spec(load_recipe(recipe))


def _simulate(material, noise=0.03, seed=3, recipe="exafs-foils", c3=0.0):
    spec = _spec(recipe)
    sim = _plain_simulator(spec)
    t = TRUE.get(material, CU2O)
    p = {"material": material, "s02": 0.9, "dE0": t["dE0"], "T": t["T"], "theta_D": 350.0, "strain": t["strain"],
         "vacancy": t["vacancy"], "sigma2_1": t["sigma2"], "noise": noise, "bkg_residual": 0.02, "seed": seed,
         "c3": c3}
    if material == "Ti_K_hcp":
        p["sigma2_2"] = t["sigma2"]      # the summed 6 + 6 shell shares one sigma^2, as the fit models it
    out = sim.simulate_outputs(p)
    shells = {q: float(v[0]) for q, v in out["params"].items()}
    return spec, sim, np.asarray(out["x"][0], float), shells


def _base(material):
    t = TRUE[material]
    return {"T": t["T"], "theta_D": 350.0}


@pytest.mark.parametrize("material", sorted(TRUE))
def test_fixed_s02_recovers_the_simulated_first_shell(material):
    spec, sim, y, shells = _simulate(material)
    k = spec.axis.coords[0]
    # start like a network that misreads N by 15 %, R by 0.03 A, sigma^2 by 40 % and E0 by 3 eV
    start = {"N1": shells["N1"] * 1.15, "R1": shells["R1"] + 0.03, "sigma2_1": shells["sigma2_1"] * 1.4,
             "dE0": TRUE[material]["dE0"] - 3.0}
    fit = fit_first_shells(sim, _base(material), material, k, y, start, s02=0.9)
    assert fit["accepted"], fit["why"]
    assert fit["rfactor"] < 0.01
    v = fit["values"]
    g = fit["group"]
    n_true = sum(shells[f"N{j}"] for j in g)
    r_true = sum(shells[f"N{j}"] * shells[f"R{j}"] for j in g) / n_true
    n_fit = sum(v[f"N{j}"] for j in g)
    r_fit = sum(v[f"N{j}"] * v[f"R{j}"] for j in g) / n_fit
    assert n_fit == pytest.approx(n_true, rel=0.05)
    assert r_fit == pytest.approx(r_true, abs=0.005)
    assert v["sigma2_1"] == pytest.approx(TRUE[material]["sigma2"], rel=0.10)
    assert v["dE0"] == pytest.approx(TRUE[material]["dE0"], abs=1.5)
    assert fit["group"] == ([1, 2] if material == "Ti_K_hcp" else [1])   # hcp 6 + 6 fitted as one shell
    assert fit["near"] == ([2] if material == "Fe_K_bcc" else [])          # bcc 8 + 6 overlap in chi(R)


def test_fit_does_not_depend_on_the_start():
    spec, sim, y, shells = _simulate("Fe_K_bcc")
    k = spec.axis.coords[0]
    outs = [fit_first_shells(sim, _base("Fe_K_bcc"), "Fe_K_bcc", k, y,
                             {"N1": n, "R1": r, "sigma2_1": s, "dE0": e}, s02=0.9)["values"]
            for n, r, s, e in [(6.0, 2.45, 0.003, 2.0), (9.0, 2.50, 0.009, 10.0)]]
    for q in ("N1", "R1", "sigma2_1", "dE0"):
        assert outs[0][q] == pytest.approx(outs[1][q], rel=1e-3, abs=1e-5)


def test_s02_range_keeps_a_consistent_n_and_corrects_an_impossible_one():
    spec, sim, y, shells = _simulate("Cu_K_fcc")
    k = spec.axis.coords[0]
    n_true = shells["N1"]                       # 12 (1 - 0.12) = 10.56 at S0^2 0.9: amplitude 9.5
    ok = fit_first_shells(sim, _base("Cu_K_fcc"), "Cu_K_fcc", k, y, {"N1": 1.1 * n_true}, s02=(0.7, 1.0))
    assert ok["n_from"] == "start" and ok["values"]["N1"] == pytest.approx(1.1 * n_true)
    assert ok["s02"] == pytest.approx(0.9 / 1.1, rel=0.04)     # the amplitude is N S0^2
    assert ok["values"]["R1"] == pytest.approx(shells["R1"], abs=0.005)
    # N = 16 would need S0^2 = 0.59 < 0.7: N is fitted with S0^2 at the bound 0.7
    bad = fit_first_shells(sim, _base("Cu_K_fcc"), "Cu_K_fcc", k, y, {"N1": 16.0}, s02=(0.7, 1.0))
    assert bad["n_from"] == "fit" and bad["s02"] == 0.7
    assert bad["values"]["N1"] == pytest.approx(n_true * 0.9 / 0.7, rel=0.05)
    assert bad["accepted"] and bad["n_test"]["significant"] and bad["n_test"]["F"] > bad["n_test"]["F_crit"]
    # the same misfit at a confidence no F reaches: the network's N stands, S0^2 stays on its bound
    kept = fit_first_shells(sim, _base("Cu_K_fcc"), "Cu_K_fcc", k, y, {"N1": 16.0}, s02=(0.7, 1.0),
                            n_confidence=1.0 - 1e-12)
    assert kept["n_from"] == "start" and kept["values"]["N1"] == pytest.approx(16.0) and kept["s02"] == 0.7
    assert kept["n_test"]["significant"] is False and kept["rfactor"] > bad["rfactor"]


def test_f_test():
    t = f_test(1.2, 1.0, 5.0)                     # F = (1.2 / 1.0 - 1) 5 = 1.0 < F(1, 5) 95 % quantile 6.61
    assert t["F"] == pytest.approx(1.0) and t["F_crit"] == pytest.approx(6.6079, abs=1e-3) and not t["significant"]
    assert f_test(3.0, 1.0, 5.0)["significant"]   # F = 10
    assert not f_test(3.0, 1.0, 0.0)["significant"]   # no independent points left


def test_third_cumulant_removes_the_harmonic_fits_r_bias():
    # an anharmonic nearest-neighbour shell (c3 = 3e-4 A^3, within the recipe's prior): a harmonic fit reads R low
    # by about 2 c3 k^2; with c3 free within the prior, the F test keeps it and R and c3 come back
    spec, sim, y, shells = _simulate("Cu_K_fcc", noise=0.01, c3=3e-4)
    k = spec.axis.coords[0]
    start = {"N1": shells["N1"], "R1": shells["R1"] + 0.02, "sigma2_1": 0.006, "dE0": 2.0}
    harm = fit_first_shells(sim, _base("Cu_K_fcc"), "Cu_K_fcc", k, y, start, s02=0.9, c3=0.0)
    anh = fit_first_shells(sim, _base("Cu_K_fcc"), "Cu_K_fcc", k, y, start, s02=0.9, c3=(-3e-4, 6e-4))
    assert harm["values"]["R1"] - shells["R1"] < -0.01 and harm["c3_test"] is None
    assert anh["c3_test"]["significant"] and not anh["c3_test"]["at_bound"]
    assert anh["c3"] == pytest.approx(3e-4, abs=0.6e-4) and anh["free"]["c3_nn"] == anh["c3"]
    assert anh["values"]["R1"] == pytest.approx(shells["R1"], abs=0.004)
    assert anh["accepted"] and anh["n_free"] == harm["n_free"] + 1
    # a harmonic shell: the free c3 is not significant and the harmonic fit stands
    spec, sim, y, shells = _simulate("Cu_K_fcc", noise=0.03)
    h0 = fit_first_shells(sim, _base("Cu_K_fcc"), "Cu_K_fcc", k, y, start, s02=0.9, c3=(-3e-4, 6e-4))
    assert h0["c3"] == 0.0 and not h0["c3_test"]["significant"] and "c3_nn" not in h0["free"]
    assert h0["values"]["R1"] == pytest.approx(shells["R1"], abs=0.005)


def test_transform_and_window():
    k = np.arange(3.0, 12.0001, 0.05)
    w = kwindow(k)
    assert w[0] == 0 and w[-1] == pytest.approx(0, abs=1e-12) and np.all(w[(k > 4.0) & (k < 11.0)] == 1.0)
    # one sine of distance 2.5 A peaks at R = 2.5 A in |chi(R)|
    r = np.arange(1.0, 4.0, 0.01)
    a = np.abs(chir(k, np.sin(2 * 2.5 * k), r))
    assert r[np.argmax(a)] == pytest.approx(2.5, abs=0.02)
    with pytest.raises(ValueError, match="expected equal 1-D arrays"):
        fit_first_shells(None, {}, "Cu_K_fcc", k, np.zeros(5), {})
    with pytest.raises(ValueError, match=r"s02 range .*expected 0 < low < high"):
        fit_first_shells(None, {}, "Cu_K_fcc", k, np.zeros_like(k), {}, s02=(1.0, 0.7))
    with pytest.raises(ValueError, match=r"c3 range .*expected low < high"):
        fit_first_shells(None, {}, "Cu_K_fcc", k, np.zeros_like(k), {}, c3=(6e-4, -3e-4))
    with pytest.raises(ValueError, match=r"n_confidence 1.5: expected a probability"):
        fit_first_shells(None, {}, "Cu_K_fcc", k, np.zeros_like(k), {}, n_confidence=1.5)


def test_float64_model_matches_the_simulator():
    spec = _spec()
    sim = _plain_simulator(spec)
    p = {"material": "Fe_K_bcc", "T": 200.0, "theta_D": 400.0, "s02": 0.8, "dE0": 3.0, "N1": 7.0, "R1": 2.47,
         "sigma2_1": 0.004, "strain": 0.01}
    assert np.allclose(chik_float64(sim, p), sim.simulate(p)[0], rtol=0, atol=1e-5)


def _adapter_case(material, net, recipe="exafs-foils", spectrum_of=None):
    spec, sim, y, shells = _simulate(spectrum_of or material, recipe=recipe)
    k = spec.axis.coords[0]
    m = Measurement(k, y, "k", "1/A", "", "exafs", {"source": "sim.xdi", "temperature_K": 295.0})
    prep = Prepared(y[None].astype(np.float32), spec.axis, m, {"e0_eV": 0.0})
    targets = list(load_recipe(recipe).targets)
    run = SimpleNamespace(task=SimpleNamespace(classes=[material], targets=targets))
    spec.run = run
    vals = {q: {"value": float(net.get(q, shells.get(q, 0.0))), "unc": None} for q in targets}
    ad = get("exafs")
    for q, v in ad.derived(targets, np.array([[[vals[t]["value"] for t in targets]]]), {}).items():
        vals[q] = {"value": float(v[0, 0]), "unc": None}
    return ad, m, prep, {"values": vals, "class": material}, run, spec, shells


@pytest.fixture
def refine_on(monkeypatch):
    """The refinement is off by default; these tests switch it on through the environment."""
    monkeypatch.setenv("SIMGEN_EXAFS_REFINE", "network")
    monkeypatch.delenv("SIMGEN_EXAFS_REFINE_C3", raising=False)


def test_refinement_off_by_default_and_switched_by_environment(monkeypatch):
    ad = get("exafs")
    monkeypatch.delenv("SIMGEN_EXAFS_REFINE", raising=False)
    monkeypatch.delenv("SIMGEN_EXAFS_REFINE_C3", raising=False)
    assert ad.s02_policy is None and ad.refine_policies() == ("off", "prior")
    ad2, m, prep, res, run, spec, _ = _adapter_case("Cu_K_fcc", {"N1": 11.0, "R1": 2.6, "sigma2_1": 0.008})
    before = copy.deepcopy(res["values"])
    ad2.refine(m, prep, res, run, spec)
    assert res["values"] == before and "refined" not in res         # off: the network's values, untouched
    monkeypatch.setenv("SIMGEN_EXAFS_REFINE", "fixed")
    monkeypatch.setenv("SIMGEN_EXAFS_REFINE_C3", "harmonic")
    assert ad.refine_policies() == ("fixed", "harmonic")
    monkeypatch.setattr(ad, "c3_policy", "prior")                  # the attribute wins over the environment
    assert ad.refine_policies() == ("fixed", "prior")
    monkeypatch.setenv("SIMGEN_EXAFS_REFINE", "always")
    with pytest.raises(ValueError, match=r"SIMGEN_EXAFS_REFINE\) 'always': expected 'network', 'fixed' or 'off'"):
        ad.refine_policies()


def test_adapter_refine_updates_r_and_keeps_the_network_reading(refine_on):
    ad, m, prep, res, run, spec, shells = _adapter_case("Ti_K_hcp", {"N1": 5.2, "N2": 5.4, "R1": 2.95, "R2": 3.0,
                                                                     "sigma2_1": 0.01, "dE0": 2.0})
    before = copy.deepcopy(res["values"])
    ad.refine(m, prep, res, run, spec)
    assert res["network"] == before
    assert res["refined"]["accepted"] and res["refined"]["group"] == [1, 2]
    r_true = (shells["N1"] * shells["R1"] + shells["N2"] * shells["R2"]) / (shells["N1"] + shells["N2"])
    assert res["values"]["R_nn"]["value"] == pytest.approx(r_true, abs=0.005)
    assert before["R_nn"]["value"] - r_true > 0.04                     # the network was off by > 0.04 A
    # S0^2 within the recipe's 0.7-1.0: the network's N_nn 10.6 is consistent with the amplitude and stays
    assert res["refined"]["n_from"] == "start"
    assert res["values"]["N_nn"]["value"] == pytest.approx(10.6, abs=1e-6)
    assert 0.7 <= res["refined"]["s02"] <= 1.0


def test_adapter_rejects_a_poor_fit_and_keeps_the_network_values(refine_on):
    # a Cu2O spectrum read as fcc Cu: no first-shell fit of the metal describes it
    ad, m, prep, res, run, spec, _ = _adapter_case("Cu_K_fcc", {"N1": 11.0, "R1": 2.55, "sigma2_1": 0.008},
                                                   spectrum_of="Cu_K_cu2o")
    before = copy.deepcopy(res["values"])
    ad.refine(m, prep, res, run, spec)
    assert res["values"] == before and "network" not in res
    assert res["refined"]["accepted"] is False and "R-factor" in res["refined"]["why"]
    assert "first-shell fit rejected" in res["warning"]


def test_c3_range_is_what_the_recipe_trained_at_the_temperature():
    """With c3_policy 'prior' the fit frees the first-shell C3 over the range the network was trained on at the
    sample's temperature: the recipe's c3 prior, plus anharmonicity x (3 sigma^4 - 2 sigma0^4) of the material's
    first shell where the recipe draws a thermal C3 (here exafs-foils with kappa 0.3..2.0 1/A and c3 +-1e-4): near
    zero at 10 K, up to a few 1e-4 A^3 at 300 K."""
    from train.modalities.exafs import _c3_range
    plain = _spec("exafs-foils")
    base = {"T": 300.0, "theta_D": 315.0}
    assert _c3_range(_plain_simulator(plain), plain, base, "Cu_K_fcc") == pytest.approx((-3e-4, 6e-4))
    spec = target_spec(load_recipe("exafs-foils", {"params.anharmonicity": {"uniform": [0.3, 2.0]},
                                                   "params.c3": {"uniform": [-1e-4, 1e-4]}}))
    sim = _plain_simulator(spec)
    ranges = {}
    for T in (10.0, 300.0):
        base = {"T": T, "theta_D": 315.0}
        p = sim.prepare_params({**base, "material": "Cu_K_fcc", "anharmonicity": 1.0})
        th = float(np.max(sim._paths(p, 0, "Cu_K_fcc")[6]))
        ranges[T] = _c3_range(sim, spec, base, "Cu_K_fcc")
        assert ranges[T] == pytest.approx((-1e-4 + 0.3 * th, 1e-4 + 2.0 * th), rel=1e-9)
    assert ranges[10.0][1] < 1.3e-4 and 3e-4 < ranges[300.0][1] < 8e-4
