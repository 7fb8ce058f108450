"""EPR validation model: physical sample classes, preparation of any sweep onto the model's axis, refusals out of
the domain, and the physics refinement of the network's reading."""
from __future__ import annotations

import numpy as np
import pytest

from simgen.epr.physics import Experiment, SpinSystem, cw_spectrum
from simgen.recipe import load_recipe
from train.measurements import Measurement, MeasurementError
from train.modalities import OutOfDomain, get
from train.modalities.epr import MUB_MHZ_PER_MT, gaussian_smooth, smoothing_width
from train.modalities.epr_refine import antisymmetry_centre, refine_epr
from train.prepare import prepare, target_spec


def _field(nu, g):
    return nu * 1e3 / (MUB_MHZ_PER_MT * g)


def _meas(B, y, nu=9.5, name="mem.DSC"):
    return Measurement(B, y, "field", "mT", "", "epr", {"mw_frequency_GHz": nu, "source": name})


def test_gaussian_smooth_against_direct_convolution():
    x = np.linspace(330.0, 350.0, 4001)          # step 0.005 <= fwhm / 8
    y = np.where(np.abs(x - 340.0) < 0.02, 1.0, 0.0) + 0.3 * np.sin(x)
    grid, got = gaussian_smooth(x, y, 0.35)
    np.testing.assert_allclose(grid, x, atol=1e-9)
    sig = 0.35 / (2 * np.sqrt(2 * np.log(2)))
    reach = np.ceil(4 * sig / 0.005) * 0.005 + 1e-9           # the kernel spans whole steps out to >= 4 sigma
    t = np.arange(-1000, 1001) * 0.005
    norm = np.exp(-0.5 * (t[np.abs(t) <= reach] / sig) ** 2).sum()
    slow = np.empty_like(x)
    for i, c in enumerate(x):  # unit-area Gaussian over the points within reach, zero beyond the ends
        k = np.exp(-0.5 * ((x - c) / sig) ** 2) * (np.abs(x - c) <= reach)
        slow[i] = np.sum(k * y) / norm
    np.testing.assert_allclose(got, slow, atol=1e-9)


def test_recipe_classes_span_literature_ranges():
    rec = load_recipe("epr-validation")
    sim = rec.build()
    assert set(sim.classes) == {"single_line", "radical_hf", "nitroxide", "Mn2", "Cu2_axial", "Cu2_exchange"}
    ov = rec.label.overrides
    g_single = rec.params["g_x"].support()
    assert g_single[0] <= 2.0026 and g_single[1] >= 2.0100     # BDPA .. sulfur/oxygen-rich radicals
    # a prior as wide as 3x the +-0.002 reading tolerance: a class mean cannot pass a standard by itself
    assert g_single[1] - g_single[0] >= 0.012
    g = 2.006
    a_lo, a_hi = (v / (MUB_MHZ_PER_MT * g) for v in ov["nitroxide"]["A_x"].support())
    assert a_lo <= 1.30 and a_hi >= 1.75                      # Fremy's salt .. TEMPO / DTBN in water
    lo, hi = ov["Cu2_axial"]["g_z"].support()
    assert lo <= 2.20 and hi >= 2.45
    lo, hi = ov["Cu2_axial"]["A_z"].support()
    assert lo <= 350 and hi >= 600
    # no file-specific setting: the sweep is the recipe's axis, no instrument point count
    assert "sweep_points" not in rec.params or rec.params["sweep_points"].support() == (0, 0)
    # every class's narrowest Gaussian width is the preparation's smoothing (>= one axis step)
    s = smoothing_width(target_spec(rec))
    assert s == pytest.approx(0.35)
    for c, o in ov.items():
        lw = o.get("lw", rec.params["lw"]).support()[0]
        assert lw >= s - 1e-12, c


def test_narrow_line_on_wide_sweep_matches_simulator():
    """A 0.05 mT line (BDPA-like) recorded on a 300 mT sweep at 9.8 GHz: after preparation it is the simulator's
    line with the Gaussian width in quadrature (sqrt(lw^2 + 0.35^2)) at the same g on the model's axis."""
    rec = load_recipe("epr-validation")
    sim = rec.build()
    B_model = sim.axis.coords[0]
    nu, g = 9.8, 2.0026
    B = np.linspace(200.0, 500.0, 12001)                       # 0.025 mT step: the line spans two points
    y = cw_spectrum(SpinSystem(g=g, lw=0.05), Experiment(B, mw_freq=nu))
    p = prepare(_meas(B, y, nu), rec)
    assert p.info["field_scale"] == pytest.approx(9.5 / nu)
    ref = cw_spectrum(SpinSystem(g=g, lw=float(np.hypot(0.05, 0.35))), Experiment(B_model, mw_freq=9.5))
    ref /= np.abs(ref).max()
    assert np.max(np.abs(p.x[0] - ref)) < 0.03
    # g from the zero crossing between the extrema stays within 0.0005 (the axis step is 0.156 mT = 0.0009 in g)
    i0, i1 = sorted((int(np.argmax(p.x[0])), int(np.argmin(p.x[0]))))
    seg = p.x[0][i0:i1 + 1]
    k = int(np.where(np.diff(np.sign(seg)) != 0)[0][0])
    b0 = B_model[i0 + k] - seg[k] * (B_model[1] - B_model[0]) / (seg[k + 1] - seg[k])
    assert 9.5e3 / (MUB_MHZ_PER_MT * b0) == pytest.approx(g, abs=5e-4)


def test_out_of_domain_field_frequency_and_step():
    rec = load_recipe("epr-validation")
    B = np.linspace(50.0, 450.0, 8001)
    y = cw_spectrum(SpinSystem(g=8.38, lw=2.0), Experiment(B, mw_freq=9.7))   # Er3+-like line at 83 mT
    with pytest.raises(OutOfDomain, match=r"er\.DSC: out of domain: the strongest feature at 8\d\.\d+ mT \(g 8\.\d+\)"):
        prepare(_meas(B, y, 9.7, "er.DSC"), rec)
    B = np.linspace(1200.0, 1240.0, 2001)
    y = cw_spectrum(SpinSystem(g=2.0, lw=0.5), Experiment(B, mw_freq=34.0))
    with pytest.raises(OutOfDomain, match=r"measured at 34 GHz; the model reads 7\.98-11 GHz"):
        prepare(_meas(B, y, 34.0, "q.DSC"), rec)
    B = np.linspace(0.0, 1000.0, 400)                          # 2.5 mT per point
    y = cw_spectrum(SpinSystem(g=2.0, lw=20.0), Experiment(B, mw_freq=9.5))
    with pytest.raises(OutOfDomain, match=r"field step 2\.5\d* mT"):
        prepare(_meas(B, y), rec)
    # an out-of-domain refusal is also a MeasurementError (callers that catch either see it)
    B = np.linspace(600.0, 620.0, 500)
    with pytest.raises(MeasurementError, match=r"does not overlap the model's axis 230-390 mT"):
        prepare(_meas(B, np.sin(B)), rec)


def test_antisymmetry_centre_of_a_multiplet():
    B = np.linspace(330.0, 350.0, 3001)
    g, nu = 2.0035, 9.5
    s = SpinSystem(g=g, nucleus="1H", n_equiv=4, A=[12.0] * 3, lw=0.08)
    y = cw_spectrum(s, Experiment(B, mw_freq=nu))
    y = y / np.abs(y).max() + 0.01 * np.random.default_rng(0).standard_normal(len(B))
    c, r = antisymmetry_centre(B, y, _field(nu, g) + 1.5, 3.0)
    assert c == pytest.approx(_field(nu, g), abs=0.01)
    assert r < 0.05


@pytest.mark.parametrize("case", ["nitroxide", "Mn2"])
def test_refinement_recovers_g_and_hyperfine(case):
    """Simulated spectra with noise, started 0.003 off in g and 10 % off in A: g back within 3e-4, |A| within 2 %."""
    rng = np.random.default_rng(1)
    nu = 9.43
    if case == "nitroxide":
        g, A, B = 2.0058, 45.0, np.linspace(330.0, 342.0, 2048)
        s = SpinSystem(g=g, nucleus="14N", A=[A] * 3, lw=0.12, lwL=0.05)
    else:
        # the central (+1/2 <-> -1/2) lines of Mn2+ are placed like the S = 1/2 lines of the same 55Mn coupling
        # (second order: -(a^2 / 2B)(I(I+1) - m^2) for both): the simulator's S = 1/2 route is the reference
        g, A, B = 2.0014, -243.0, np.linspace(310.0, 365.0, 2048)
        s = SpinSystem(S=0.5, g=g, nucleus="55Mn", A=[A] * 3, lw=0.15, lwL=0.05)
    y = cw_spectrum(s, Experiment(B, mw_freq=nu))
    y = y / np.abs(y).max() + 0.01 * rng.standard_normal(len(B)) + 0.02 * (B - B[0]) / (B[-1] - B[0])
    out = refine_epr(_meas(B, y, nu), case, g + 0.003, 1.1 * A, 9.5)
    assert out["g_iso"] == pytest.approx(g, abs=3e-4)
    assert abs(out["A_iso_MHz"]) == pytest.approx(abs(A), rel=0.02)
    assert out["a_iso_mT"] == pytest.approx(out["A_iso_MHz"] / (MUB_MHZ_PER_MT * out["g_iso"]))
    assert refine_epr(_meas(B, y, nu), "Cu2_axial", g, A, 9.5) is None   # not modelled: network values stay


def test_adapter_refine_keeps_network_values_and_axial_tie():
    ad = get("epr")
    # derived: a run learning g_x and g_z only reads g_iso with the axial tie g_y = g_x
    S = np.array([[[2.05, 2.35, 10.0, 500.0]]])
    d = ad.derived(["g_x", "g_z", "A_x", "A_z"], S, {"field_scale": 1.0})
    assert d["g_iso"][0, 0] == pytest.approx((2 * 2.05 + 2.35) / 3)
    assert d["A_iso_MHz"][0, 0] == pytest.approx((2 * 10.0 + 500.0) / 3)
    B = np.linspace(333.0, 343.0, 1500)
    y = cw_spectrum(SpinSystem(g=2.0030, lw=0.1), Experiment(B, mw_freq=9.5))
    rec = load_recipe("epr-validation")
    prep = prepare(_meas(B, y), rec)
    res = {"class": "single_line", "values": {"g_iso": {"value": 2.0050, "unc": None}}}
    ad.refine(prep.measurement, prep, res)
    assert res["network"]["g_iso"]["value"] == 2.0050
    assert res["values"]["g_iso"]["value"] == pytest.approx(2.0030, abs=2e-4)
    assert res["refined"]["method"] == "antisymmetry centre"


def test_refinement_rejects_a_pattern_that_does_not_fit():
    """A single line read as a nitroxide (a misclassification): the 14N fit explains little of it and is
    rejected, g comes from the antisymmetry centre and no hyperfine value is invented."""
    nu, g = 9.5, 2.0031
    B = np.linspace(335.0, 343.0, 1600)
    y = cw_spectrum(SpinSystem(g=g, lw=0.15, lwL=0.05), Experiment(B, mw_freq=nu))
    y = y / np.abs(y).max() + 0.005 * np.random.default_rng(2).standard_normal(len(B))
    out = refine_epr(_meas(B, y, nu), "nitroxide", 2.0050, 44.0, 9.5)
    assert "rejected" in out["refine"]["method"] and out["refine"]["fit_explained"] < 0.5
    assert "A_iso_MHz" not in out
    assert out["g_iso"] == pytest.approx(g, abs=2e-4)


def test_undersampled_line_is_flagged():
    """A 0.06 mT line recorded with 0.29 mT steps (each point the average over its step) is prepared with a
    warning that the file undersamples it; the same line at 0.02 mT steps is not."""
    from train.prepare import rebin
    rec = load_recipe("epr-validation")
    B = np.linspace(200.0, 500.0, 30001)
    y = cw_spectrum(SpinSystem(g=2.0055, lw=0.06), Experiment(B, mw_freq=9.5))
    for n, flagged in ((1024, True), (15001, False)):
        xn = np.linspace(200.0, 500.0, n)
        p = prepare(_meas(xn, rebin(B, y, xn)), rec)
        assert ("undersamples" in (p.info.get("warning") or "")) is flagged, n
