"""prepare(): measured files on a model's axis with the simulator's conventions; refusals name file and ranges."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simgen.recipe import load_recipe
from simgen.simulator import Axis
from train.measurements import Measurement, MeasurementError, read
from train.modalities.exelfs import identify_eels_edges
from train.prepare import prepare, rebin

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _d(*parts):
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present (../shared/data)")
    return p


def test_rebin_against_slow_bin_average():
    x = np.linspace(0, 10, 2001)
    y = np.sin(3 * x) + x
    xn = np.linspace(1, 9, 41)
    got = rebin(x, y, xn)
    h = (xn[1] - xn[0]) / 2
    slow = []
    for c in xn:  # mean of the linear interpolant over the bin, by a fine trapezoid rule
        t = np.linspace(c - h, c + h, 4001)
        slow.append(np.trapezoid(np.interp(t, x, y), t) / (2 * h))
    np.testing.assert_allclose(got, slow, atol=1e-6)
    coarse = rebin(xn, np.sin(xn), x[(x >= 1) & (x <= 9)])  # coarser data: linear interpolation
    np.testing.assert_allclose(coarse, np.interp(x[(x >= 1) & (x <= 9)], xn, np.sin(xn)))


def test_epr_frequency_rescale_keeps_g():
    # a line at g = 2.0 measured at 9.0 GHz lies at h nu / (g muB) = 321.5 mT; a model whose mw_freq prior is
    # 9.3-9.9 GHz gets the field scaled by 9.3/9.0, the line moves to g = 2.0 at 9.3 GHz (332.2 mT)
    rec = load_recipe("epr-oxides", overrides={"config.field_min": 300.0, "config.field_max": 360.0,
                                               "config.n_points": 1201,
                                               "params.mw_freq": {"uniform": [9.3, 9.9]}})
    B = np.linspace(310, 335, 2001)
    b0 = 9.0e3 / (13.996244936 * 2.0)
    y = -(B - b0) * np.exp(-((B - b0) / 0.3) ** 2)
    m = Measurement(B, y, "field", "mT", "", "epr", {"mw_frequency_GHz": 9.0, "source": "mem.DSC"})
    p = prepare(m, rec)
    assert p.info["field_scale"] == pytest.approx(9.3 / 9.0)
    Bm = p.axis.coords[0]
    zero = Bm[np.argmax(p.x[0])] + Bm[np.argmin(p.x[0])]
    g = 9.3e3 / (13.996244936 * zero / 2)
    assert g == pytest.approx(2.0, abs=2e-4)  # half the 0.05 mT grid step
    assert np.max(np.abs(p.x)) == pytest.approx(1.0, abs=0.02)


def test_epr_refusals():
    rec = load_recipe("epr-oxides")
    B = np.linspace(600, 620, 500)
    m = Measurement(B, np.sin(B), "field", "mT", "", "epr", {"mw_frequency_GHz": 9.5, "source": "far.DSC"})
    with pytest.raises(MeasurementError, match=r"far\.DSC: out of domain: field 600-620 mT .*does not overlap the model's axis 50-450"):
        prepare(m, rec)
    B = np.linspace(330, 340, 500)
    y = np.linspace(-1, 1, 500) + 0.01 * np.sin(B)   # never returns to the baseline
    m = Measurement(B, np.exp(-((B - 339.9) / 0.05) ** 2) - np.exp(-((B - 330.1) / 0.05) ** 2), "field", "mT", "",
                    "epr", {"mw_frequency_GHz": 9.5, "source": "edge.DSC"})
    with pytest.raises(MeasurementError, match=r"edge\.DSC: .*narrower than the model's axis 50-450 mT"):
        prepare(m, rec)


@pytest.mark.shared_data
def test_xafs_cu_foil_chi_matches_simulator_at_literature_values():
    """Prepared chi(k) k^2 of the Cu foil (RT) against the exafs simulator at the Larch-fit parameters
    (S0^2 0.93, correlated Debye 315 K, 295 K; data README): R-factor 0.042 measured (dE0 scanned); 0.08 allows
    for the AUTOBK-like background's differences from Larch's."""
    rec = load_recipe("exafs-3d-metals")
    sim = rec.build()
    p = prepare(read(_d("xafs", "XASLIB_Cu_cu_metal_rt.xdi")), sim)
    assert p.x.shape == (1, len(sim.axis.coords[0]))
    assert 8975 < p.info["e0_eV"] < 8986
    best = 1.0
    for de in np.arange(-10, 10.1, 2.0):
        y = sim.simulate({"label": sim.classes.index("Cu_K_fcc"), "material": "Cu_K_fcc", "T": 295.0,
                          "theta_D": 315.0, "s02": 0.93, "dE0": de, "noise": 0.0, "strain": 0.0})[0]
        best = min(best, float(np.sum((p.x[0] - y) ** 2) / np.sum(p.x[0] ** 2)))
    assert best < 0.08


@pytest.mark.shared_data
def test_xafs_refuses_short_k_range():
    rec = load_recipe("exafs-3d-metals", overrides={"config.k_max": 19.0})
    with pytest.raises(MeasurementError, match=r"XASLIB_Fe_Fe_metal_rt_01\.xdi: k 0-1[45]\.\d+ 1/A .*does not cover "
                       r"the model's axis k 3-19 1/A"):
        prepare(read(_d("xafs", "XASLIB_Fe_Fe_metal_rt_01.xdi")), rec)


@pytest.mark.shared_data
def test_eels_sto_edges_and_window():
    m = read(_d("eels", "pyTEMlib_EELS_STO.dm3"))
    labels = [e["label"] for e in identify_eels_edges(m)]
    assert labels[:2] == ["Ti L2,3", "O K"]
    rec = load_recipe("exelfs-ti-oxides")
    p = prepare(m, rec)
    assert p.x.max() == pytest.approx(1.0) and p.x.shape == (1, 1401)
    # starting 40 eV above the model's 400 eV: the pre-edge power law is extrapolated (exponent near 2.36)
    cut = Measurement(m.axis[m.axis >= 440], m.values[m.axis >= 440], "energy_loss", "eV", "counts", "exelfs",
                      {"source": "cut.dm3"})
    with pytest.raises(MeasurementError, match="cut.dm3: energy loss 440-861.75 eV starts 40.0 eV after .*edge"):
        prepare(cut, rec)  # the Ti L edge lies within 35 eV of the start: no extrapolation
    cut2 = Measurement(m.axis[m.axis >= 410], m.values[m.axis >= 410], "energy_loss", "eV", "counts", "exelfs",
                       {"source": "cut2.dm3"})
    p2 = prepare(cut2, rec)
    assert 1.5 < p2.info["power_law_r"] < 4.0
    np.testing.assert_allclose(p2.x[0][p.axis.coords[0] > 420], p.x[0][p.axis.coords[0] > 420], rtol=0.02)


@pytest.mark.shared_data
def test_pdf_grid_and_refusal():
    m = read(_d("pdf", "diffpy.cmi", "ch03NiModelling", "Ni.gr"))
    rec = load_recipe("pdf-bulk")
    p = prepare(m, rec)
    r = p.axis.coords[0]
    np.testing.assert_allclose(p.x[0], np.interp(r, m.axis, m.values), atol=1e-5)  # same 0.01 grid
    # a crystal's G(r) ending before the axis: G = 0 past its end, with a warning (the lattice comes from the
    # refinement on the measured range); below 15 A it is refused
    short = Measurement(m.axis[m.axis < 20], m.values[m.axis < 20], "r", "A", "1/A^2", "pdf", {"source": "s.gr"})
    ps = prepare(short, rec)
    assert "measured to 19.99 A" in ps.info["warning"] and np.all(ps.x[0][r > 20] == 0.0)
    np.testing.assert_allclose(ps.x[0][r < 19.9], p.x[0][r < 19.9])
    shorter = Measurement(m.axis[m.axis < 12], m.values[m.axis < 12], "r", "A", "1/A^2", "pdf", {"source": "s.gr"})
    with pytest.raises(MeasurementError, match=r"s\.gr: r \(A\) 0-11.99 ends before 15 A"):
        prepare(shorter, rec)
    late = Measurement(m.axis[m.axis > 2], m.values[m.axis > 2], "r", "A", "1/A^2", "pdf", {"source": "s.gr"})
    with pytest.raises(MeasurementError, match=r"s\.gr: r \(A\) 2.01-.* does not cover the model's axis 1-29.99"):
        prepare(late, rec)


def test_wrong_modality_refused():
    rec = load_recipe("pdf-bulk")
    m = Measurement(np.linspace(8900, 9500, 100), np.ones(100), "energy", "eV", "", "exafs", {"source": "a.xdi"})
    with pytest.raises(MeasurementError, match="a.xdi: a exafs measurement cannot feed a 'pdf' model"):
        prepare(m, rec)


def test_image_resample_and_tiles():
    ax = Axis.image(32, 32, 1.0)
    img = np.random.default_rng(0).random((100, 150)) + 1.0
    m = Measurement(np.arange(150) * 0.5, img, "image_x", "nm", "", "swelling", {"pixel_size_nm": 0.5, "source": "i.tif"})
    p = prepare(m, ax, modality="swelling")
    assert p.x.shape == (1 * (50 // 32) * (75 // 32), 32, 32)
    np.testing.assert_allclose(p.x.mean(axis=(1, 2)), 1.0, rtol=1e-6)
    small = Measurement(np.arange(40), np.ones((20, 40)), "image_x", "nm", "", "swelling",
                        {"pixel_size_nm": 1.0, "source": "s.tif"})
    with pytest.raises(MeasurementError, match=r"s\.tif: image 20x40 px .*smaller than one 32x32 tile"):
        prepare(small, ax, modality="swelling")
    nopx = Measurement(np.arange(40), np.ones((40, 40)), "image_x", "pixel", "", "swelling", {"source": "n.png"})
    with pytest.raises(MeasurementError, match="n.png: pixel size unknown"):
        prepare(nopx, ax, modality="swelling")


def _edge_file(e_edge, n=900, meta=None):
    e = np.linspace(e_edge - 200, e_edge + 900, n)
    mu = 0.1 + 1.0 / (1 + np.exp(-(e - e_edge) / 2.0)) + 0.02 * np.sin(0.05 * (e - e_edge)) * (e > e_edge)
    return Measurement(e, mu, "energy", "eV", "mu(E)", "exafs", {"source": "edge.xdi", **(meta or {})})


def test_exafs_domain_from_the_edge_energy():
    """The absorber and edge come from the file: an Au L3 foil is refused by an exafs-foils model (3d K edges),
    naming the edge it found, instead of being read as a 3d metal."""
    from train.modalities import OutOfDomain
    from train.modalities.exafs import EXAFSAdapter, model_edges
    from train.prepare import target_spec
    spec = target_spec(load_recipe("exafs-foils"))
    edges = model_edges(spec)
    assert ("Cu", "K") in edges and ("Zn", "K") in edges and len(edges) == 8
    with pytest.raises(OutOfDomain, match=r"edge.xdi: out of domain: Au L3 edge \(E0 119\d\d eV\); the model reads"):
        prepare(_edge_file(11919.0), spec)
    with pytest.raises(OutOfDomain, match="Ce L3 edge"):
        prepare(_edge_file(5723.0, meta={"element": "Ce", "edge": "L3"}), spec)
    m = _edge_file(8979.0)
    EXAFSAdapter().check_domain(m, spec)
    assert (m.meta["element"], m.meta["edge"]) == ("Cu", "K")
    allowed = EXAFSAdapter().allowed_classes(m, ["Ni_K_fcc", "Cu_K_fcc", "Zn_K_hcp"])
    assert allowed == [False, True, False]


def test_exafs_nearest_neighbour_shell_sums_split_subshells():
    from train.modalities.exafs import EXAFSAdapter
    names = ["N1", "R1", "N2", "R2", "N3", "R3"]
    hcp_zn = np.array([[[6, 2.665, 6, 2.913, 6, 3.9]]])   # split 6 + 6 within 10 %
    bcc_fe = np.array([[[8, 2.482, 6, 2.866, 12, 4.05]]])  # second shell 15 % out: a shell of its own
    d = EXAFSAdapter().derived(names, hcp_zn, {})
    assert d["N_nn"][0, 0] == 12 and d["R_nn"][0, 0] == pytest.approx((2.665 + 2.913) / 2)
    d = EXAFSAdapter().derived(names, bcc_fe, {})
    assert d["N_nn"][0, 0] == 8 and d["R_nn"][0, 0] == pytest.approx(2.482)


def test_option_of_another_modality_is_refused_by_name():
    """An EPR option given for a PDF model is an error naming the option and what the model takes (a ValueError,
    which the CLI prints in one line), not a TypeError traceback."""
    rec = load_recipe("pdf-fcc-metals")
    m = Measurement(np.linspace(0.5, 40, 800), np.ones(800), "r", "A", "", "pdf", {"source": "g.gr"})
    with pytest.raises(ValueError, match="mw_frequency_GHz do not apply to 'pdf' models"):
        prepare(m, rec, mw_frequency_GHz=9.5)
