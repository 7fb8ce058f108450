"""PDF simulator: srreal references, kernels against slow NumPy twins, bad input, contract, real data.

Tolerances: srreal references max|dG|/max|G| <= 1e-3 (the issue's acceptance; we measure 2e-5 for the
real-space route and 6e-4 against srreal's DebyePDFCalculator, whose own real/Debye difference is 6.5e-4).
Kernels against NumPy: 1e-10 relative (same arithmetic, different order).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from simgen.errors import ParameterError, RecipeError
from simgen.pdf import kernels
from simgen.pdf.calculator import Model, PeriodicPairCache, compute_pdf, make_grid, pdf_from_model
from simgen.pdf.structures import phase_model, sphere_cut, strained_cell
from simgen.testing import SimulatorContract

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFS = SHARED / "refs" / "pdf"
DATA = SHARED / "data" / "pdf"

REF_FILES = sorted(p.name for p in REFS.glob("*PDFCalculator*.npz")) if REFS.is_dir() else []


def _ref_case(name):
    d = np.load(REFS / name)
    p = json.loads(str(d["params_json"]))
    periodic = p["periodic"]
    m = Model(list(d["symbols"]), d["xyz_cart"], d["cell"] if periodic else None)
    kw = dict(radiation=p["radiation"], rmin=p["rmin"], rmax=p["rmax"], rstep=p["rstep"], qmin=p["qmin"],
              qmax=p["qmax"] if p["qmax"] < 300 else 0.0, qdamp=p["qdamp"], qbroad=p["qbroad"],
              delta1=p["delta1"], delta2=p["delta2"], scale=p["scale"], uiso=p["uiso"],
              spdiameter=p.get("spdiameter", 0.0),
              method="debye" if "DebyePDF" in p["calculator"] else "real")
    return m, kw, d["r"], d["G"]


@pytest.mark.skipif(not REF_FILES, reason="../shared/refs/pdf not present")
@pytest.mark.parametrize("name", REF_FILES)
def test_against_srreal(name):
    m, kw, rref, gref = _ref_case(name)
    r, g = pdf_from_model(m, **kw)
    assert len(r) == len(rref) and np.allclose(r, rref, atol=1e-9)
    assert np.abs(g - gref).max() / np.abs(gref).max() <= 1e-3


@pytest.mark.skipif(not REFS.is_dir(), reason="../shared/refs/pdf not present")
def test_against_debyecalculator_half_convention():
    d = np.load(REFS / "Au_3nm_cluster_DebyeCalculator_xray.npz")
    m = Model(list(d["symbols"]), d["xyz_cart"], None)
    r, g = pdf_from_model(m, method="debye", rmin=0.5, rmax=30.0, rstep=0.01, qmax=25, qdamp=0.04, uiso=0.005)
    gdc = 2.0 * np.asarray(d["G"], float)     # DebyeCalculator counts each pair once
    n = min(len(g), len(gdc))
    assert np.abs(g[:n] - gdc[:n]).max() / np.abs(gdc).max() < 5e-3


# ---------------------------------------------------------------------------------------- kernels vs NumPy
def _np_pairs(pos):
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    iu = ~np.eye(len(pos), dtype=bool)
    return d, iu


def _np_hist(dist, w, h, nb):
    hist = np.zeros(nb)
    u = dist / h
    k = u.astype(int)
    t = u - k
    np.add.at(hist, k, w * (1 - t))
    np.add.at(hist, k + 1, w * t)
    return hist


def test_hist_cluster_matches_numpy():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 12, size=(150, 3))
    typ = rng.integers(0, 2, size=150)
    wt = np.array([[1.0, 2.0], [2.0, 4.0]])
    h, rlo, rhi = 0.01, 0.5, 7.0
    nb = int(rhi / h) + 3
    hist = np.zeros((4, nb))
    kernels.hist_cluster(pos, typ, wt, 2, rlo, rhi, h, True, hist)
    d, off = _np_pairs(pos)
    for ta in range(2):
        for tb in range(2):
            sel = off & (typ[:, None] == ta) & (typ[None, :] == tb) & (d >= rlo) & (d <= rhi)
            ref = _np_hist(d[sel], wt[ta, tb] / d[sel], h, nb)
            assert np.allclose(hist[ta * 2 + tb], ref, rtol=1e-10, atol=1e-12)


def test_periodic_pairs_match_bruteforce():
    m = phase_model("TiO2_anatase")
    cache = PeriodicPairCache(m, 8.0)
    d_cache = np.sort(np.linalg.norm(cache.dfrac @ m.cell, axis=1))
    # brute force over a 7x7x3 supercell
    frac = m.frac
    shifts = np.stack(np.meshgrid(np.arange(-3, 4), np.arange(-3, 4), np.arange(-2, 3), indexing="ij"),
                      -1).reshape(-1, 3)
    allpos = ((frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)) @ m.cell
    d = np.linalg.norm(allpos[None, :, :] - (frac @ m.cell)[:, None, :], axis=-1).ravel()
    d = np.sort(d[(d > 0) & (d <= 8.0)])
    assert len(d) == len(d_cache) and np.allclose(d, d_cache, atol=1e-9)


def test_gauss_sum_matches_numpy():
    h, rstep = 0.001, 0.01
    hist = np.zeros((1, 5000))
    hist[0, [2500, 2501, 3333]] = [0.7, 0.3, 1.2]
    msd = np.array([0.01])
    out = np.zeros(600)
    kernels.gauss_sum(hist, h, msd, 0.2, 1.5, 0.01, 10.0, rstep, 0, out)
    r = np.arange(600) * rstep
    ref = np.zeros(600)
    for b in (2500, 2501, 3333):
        rb = b * h
        s2 = 0.01 * (1 - 0.2 / rb - 1.5 / rb ** 2 + (0.01 * rb) ** 2)
        ref += hist[0, b] * np.exp(-(r - rb) ** 2 / (2 * s2)) / np.sqrt(2 * np.pi * s2)
    assert np.allclose(out, ref, rtol=1e-9, atol=1e-12)


def test_debye_partial_matches_numpy():
    h = 0.002
    hist = np.zeros((1, 4000))
    hist[0, [1200, 2000, 3999]] = [2.0, 1.0, 0.5]
    q = np.arange(300) * 0.08
    out = np.zeros((1, 300))
    kernels.debye_partial(hist, h, np.array([0.01]), 0.0, 1.0, 0.02, q, out)
    ref = np.zeros(300)
    for b in (1200, 2000, 3999):
        rb = b * h
        s2 = 0.01 * (1 - 1.0 / rb ** 2 + (0.02 * rb) ** 2)
        ref += hist[0, b] * np.sin(q * rb) / rb * np.exp(-0.5 * s2 * q * q)
    assert np.allclose(out[0], ref, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------- physics checks
def test_debye_route_equals_real_route_for_cluster():
    m = sphere_cut(phase_model("Au_fcc"), 18.0)
    kw = dict(rmin=1.0, rmax=20.0, rstep=0.01, qmax=25.0, qdamp=0.03, uiso=0.006, delta2=1.0)
    _, g1 = pdf_from_model(m, method="real", **kw)
    _, g2 = pdf_from_model(m, method="debye", **kw)
    assert np.abs(g1 - g2).max() / np.abs(g1).max() < 1e-3


def test_debye_route_two_elements_uses_f_of_q():
    m = sphere_cut(phase_model("CdSe_zincblende"), 14.0)
    kw = dict(rmin=1.0, rmax=15.0, rstep=0.01, qmax=20.0, qdamp=0.0, uiso=0.008)
    _, g1 = pdf_from_model(m, method="real", **kw)
    _, g2 = pdf_from_model(m, method="debye", **kw)
    _, g3 = pdf_from_model(m, method="debye", radiation="neutron", **kw)
    _, g4 = pdf_from_model(m, method="real", radiation="neutron", **kw)
    rel = np.abs(g1 - g2).max() / np.abs(g1).max()
    assert 1e-3 < rel < 0.1                                        # f(Q) weights differ from f(0) weights
    assert np.abs(g3 - g4).max() / np.abs(g4).max() < 1e-3        # neutron lengths do not depend on Q


def test_strained_cache_equals_fresh_structure():
    m = phase_model("TiO2_rutile")
    cell = strained_cell(m.cell, 0.02, (0.01, -0.005, 0.003))
    cache = PeriodicPairCache(m, 45.0)
    _, g1 = pdf_from_model(m, cell=cell, cache=cache, rmin=1, rmax=20, uiso=0.006)
    fresh = Model(m.symbols, m.frac @ cell, cell)
    _, g2 = pdf_from_model(fresh, rmin=1, rmax=20, uiso=0.006)
    assert np.allclose(g1, g2, atol=1e-10 * np.abs(g2).max())


def test_spherical_cut_tends_to_envelope():
    bulk = phase_model("Pt_fcc")
    kw = dict(rmin=1.0, rmax=30.0, rstep=0.02, qmax=25.0, qdamp=0.04, uiso=0.006)
    _, genv = pdf_from_model(bulk, spdiameter=40.0, **kw)
    clus = sphere_cut(bulk, 40.0)
    rho = len(clus.symbols) / (math.pi / 6 * 40.0 ** 3)
    _, gclu = pdf_from_model(clus, cluster_baseline=(rho, 40.0), **kw)
    assert np.abs(genv - gclu).max() / np.abs(genv).max() < 0.1   # same shape-factor physics, different atoms


# ---------------------------------------------------------------------------------------- bad input
def test_bad_input_rejected_by_name():
    import ase
    with pytest.raises(ParameterError, match="structure"):
        compute_pdf(ase.Atoms())
    with pytest.raises(ParameterError, match="structure"):
        compute_pdf(ase.Atoms("Ni2", positions=[[0, 0, 0], [0.1, 0, 0]]))
    with pytest.raises(ParameterError, match="rmax"):
        compute_pdf("Ni_fcc", rmin=10.0, rmax=5.0)
    with pytest.raises(ParameterError, match="Xx"):
        compute_pdf(Model(["Xx"], [[0, 0, 0]], np.eye(3) * 3))
    with pytest.raises(ParameterError, match="structure"):
        compute_pdf("No_such_phase")
    with pytest.raises(ParameterError, match="uiso"):
        compute_pdf("Ni_fcc", uiso=-0.1)
    with pytest.raises(RecipeError, match="rmax"):
        from simgen import load_recipe
        load_recipe({"simulator": "pdf", "config": {"rmin": 5.0, "rmax": 2.0}}).build()


# ---------------------------------------------------------------------------------------- contract
class TestPDFBulkContract(SimulatorContract):
    recipe = "pdf-bulk"
    n = 3
    invalid_params = [("uiso", -0.01), ("qdamp", -0.1), ("strain_iso", 0.3), ("noise", 2.0)]


class TestPDFNanoContract(SimulatorContract):
    recipe = "pdf-nanoparticles"
    n = 3
    invalid_params = [("diameter", -5.0), ("qmax", 0.5)]


def test_nanoparticle_shapes_and_targets():
    from simgen import load_recipe
    sim = load_recipe("pdf-nanoparticles").build()
    out = sim.simulate_outputs({"label": "Pt_fcc", "shape": ["sphere", "icosahedron", "octahedron",
                                                             "sphere_envelope"],
                                "diameter": 25.0, "seed": np.arange(4)})
    d = out["params"]["diameter"]
    assert np.all(np.abs(d - 25.0) < 6.0) and d[0] == 25.0
    assert np.allclose(out["params"]["a"], 3.9242)
    assert np.isfinite(out["x"]).all()


# ---------------------------------------------------------------------------------------- real data
@pytest.mark.shared_data
@pytest.mark.skipif(not (DATA / "diffpy.cmi").is_dir(), reason="../shared/data/pdf not present")
def test_refine_ni_and_pt():
    from simgen.pdf.refine import read_gr, refine
    r, g = read_gr(DATA / "diffpy.cmi/ch03NiModelling/Ni.gr")
    ni = refine("Ni_fcc", r, g, rmin=1.5, rmax=50, fixed={"qmax": 25.0, "qmin": 0.5},
                free={"a": 3.52, "scale": 1.0, "uiso": 0.005, "delta2": 2.0, "qdamp": 0.04, "qbroad": 0.01})
    assert abs(ni.values["a"] - 3.5246) < 0.002
    assert ni.rw <= 0.04
    r, g = read_gr(DATA / "diffpy.cmi/ch03NiModelling/Pt-nanoparticles.gr")
    pt = refine("Pt_fcc", r, g, rmin=1.5, rmax=50,
                fixed={"qmax": 25.0, "qmin": 0.1, "qdamp": ni.values["qdamp"], "qbroad": ni.values["qbroad"]},
                free={"a": 3.92, "scale": 0.5, "uiso": 0.006, "delta2": 2.0, "spdiameter": 40.0})
    assert abs(pt.values["a"] - 3.925) < 0.005
    assert abs(pt.values["spdiameter"] - 37.0) < 3.0


@pytest.mark.shared_data
@pytest.mark.skipif(not (DATA / "diffpy.cmi").is_dir(), reason="../shared/data/pdf not present")
def test_cdse_cluster_rw_reported(capsys):
    from simgen.pdf.refine import read_gr, refine
    d = DATA / "diffpy.cmi/ch11ClusterXYZ"
    r, g = read_gr(d / "CdSe.gr")
    fit = refine(str(d / "CdSe.xyz"), r, g, rmin=1.5, rmax=20.0, method="debye",
                 fixed={"qmin": 1.0, "qmax": 20.0, "qdamp": 0.06},
                 free={"a": 1.0, "scale": 1.0, "uiso": 0.01, "delta2": 5.0})
    print(f"CdSe Cd56Se35 Rw = {fit.rw:.3f} ({fit.values})")
    assert fit.rw < 0.5     # a 91-atom model of a real cluster: reported, loosely bounded
