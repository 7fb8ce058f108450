"""Physics refinement after the network for PDF models (``PDFAdapter.refine``): the network's most probable phases
are refined against the G(r) and the lowest Rw wins; a structure type none of the phases describes is refused.

Reference: the G(r) of a strained catalog phase computed by the simulator itself (an analytic truth for the
lattice length: the refined ``a`` must return the strained cell's a within 0.05 %), and the diffpy.cmi Ni G(r)
(a = 3.5238 A, NBS Circular 539) within the benchmark's 0.3 %.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from simgen.pdf.calculator import compute_pdf
from simgen.pdf.structures import Model, phase_model
from simgen.recipe import load_recipe
from train.measurements import Measurement, read
from train.modalities import OutOfDomain, get
from train.prepare import target_spec

PHASES = ["Ni_fcc", "ZnS_zincblende", "Si_diamond", "NaCl_rocksalt", "Fe_bcc"]


def _strained_g(phase: str, strain: float, noise: float = 0.01, seed: int = 0):
    m = phase_model(phase)
    s = 1.0 + strain
    model = Model(m.symbols, m.positions * s, m.cell * s, m.occupancy)
    r, g = compute_pdf(model, rmin=0.01, rmax=32.0, rstep=0.01, qmax=24.0, qmin=0.5, qdamp=0.04, qbroad=0.01,
                       delta2=2.0, uiso=0.006, scale=0.7)
    g = g + noise * np.abs(g).max() * np.random.default_rng(seed).normal(size=g.shape)
    a = float(np.linalg.norm(m.cell[0])) * s
    return Measurement(r, g, "r", "A", "1/A^2", "pdf", {"source": f"{phase}.gr", "qmax": 24.0, "qmin": 0.5,
                                                         "radiation": "xray"}), a


def _spec_and_run(classes):
    spec = target_spec(load_recipe("pdf-bulk"))
    run = SimpleNamespace(task=SimpleNamespace(classes=list(classes), targets=["a", "uiso", "delta2"]))
    spec.run = run
    return spec, run


def _result(classes, probs: dict, a_net: float):
    p = {c: probs.get(c, 0.0) for c in classes}
    top = max(p, key=p.get)
    return {"values": {"a": {"value": a_net, "unc": None}, "uiso": {"value": 0.008, "unc": None},
                       "delta2": {"value": 1.0, "unc": None}}, "class": top, "class_prob": p[top], "class_probs": p}


def test_refinement_picks_the_phase_that_fits_and_returns_its_lattice_length():
    ad = get("pdf")
    m, a_true = _strained_g("Si_diamond", 0.012)
    spec, run = _spec_and_run(PHASES)
    # the network ranks the look-alike zincblende first and misreads a by 2 %
    res = _result(PHASES, {"ZnS_zincblende": 0.6, "Si_diamond": 0.3, "Ni_fcc": 0.1}, a_true * 1.02)
    before = copy.deepcopy(res["values"])
    ad.refine(m, None, res, run, spec)
    assert res["refined"]["phase"] == "Si_diamond" and res["class"] == "Si_diamond"
    assert res["network_class"] == "ZnS_zincblende"
    assert res["values"]["a"]["value"] == pytest.approx(a_true, rel=5e-4)
    assert res["network"] == before                      # the network's own reading stays visible
    assert res["refined"]["rw"] < 0.1
    assert res["refined"]["rw_by_phase"]["Ni_fcc"] > ad.max_rw


def test_structure_type_outside_the_phases_is_refused_with_the_fit():
    ad = get("pdf")
    m, _ = _strained_g("TiO2_rutile", 0.0)
    spec, run = _spec_and_run(PHASES)
    res = _result(PHASES, {"Ni_fcc": 0.5, "Fe_bcc": 0.3, "NaCl_rocksalt": 0.2}, 3.6)
    with pytest.raises(OutOfDomain, match=r"TiO2_rutile\.gr: out of domain: no phase of the model describes it: "
                                          r"best refined Rw 0\.\d+ > 0\.35"):
        ad.refine(m, None, res, run, spec)


def test_stated_composition_restricts_or_refuses():
    ad = get("pdf")
    spec, run = _spec_and_run(PHASES)
    m = Measurement(np.linspace(0, 30, 3001), np.zeros(3001), "r", "A", "1/A^2", "pdf",
                    {"source": "x.gr", "composition": "Zn S"})
    assert ad.allowed_classes(m, PHASES) == [False, True, False, False, False]
    ad.check_domain(m, spec)                              # ZnS is a phase of the model
    m.meta["composition"] = "Cd Se"
    with pytest.raises(OutOfDomain, match=r"composition 'Cd Se': no phase of the model has these elements"):
        ad.check_domain(m, spec)


@pytest.mark.shared_data
def test_measured_ni_refines_within_the_benchmark_tolerance(shared):
    m = read(shared("data", "pdf", "diffpy.cmi", "ch03NiModelling", "Ni.gr"))
    ad = get("pdf")
    spec, run = _spec_and_run(PHASES)
    res = _result(PHASES, {"Ni_fcc": 0.7, "Fe_bcc": 0.3}, 3.60)
    ad.refine(m, None, res, run, spec)
    assert res["class"] == "Ni_fcc"
    assert res["values"]["a"]["value"] == pytest.approx(3.5238, rel=0.003)
    assert res["refined"]["qmax"] == 25.0 and res["refined"]["rw"] < 0.1


def test_bulk_recipe_holds_every_catalog_phase():
    """Files are refused when their structure type is outside the model's phases, so the bulk recipe must hold
    every phase of catalogs/pdf/structures."""
    from simgen.pdf.structures import list_phases
    assert sorted(load_recipe("pdf-bulk").label.classes) == sorted(list_phases())


def _truncated(m: Measurement, rmax: float) -> Measurement:
    k = np.asarray(m.axis) <= rmax
    return Measurement(np.asarray(m.axis)[k], np.asarray(m.values)[k], m.axis_name, m.units, m.value_units,
                       m.modality, dict(m.meta))


def test_crystal_file_shorter_than_the_axis_is_refined_on_its_range():
    """A crystal's G(r) measured to 20 A for a model whose axis runs to 30 A: G = 0 past the file's end for the
    network, a warning, and the lattice length from the refinement on the measured range (within 0.05 % of the
    strained cell, as on the whole range); shorter than 15 A, or for a model that predicts a particle diameter,
    the file is refused with the reason; a short file nothing refines is refused, not read by the network."""
    ad = get("pdf")
    full, a_true = _strained_g("Si_diamond", 0.012)
    m = _truncated(full, 20.0)
    spec, run = _spec_and_run(PHASES)
    prep = ad.prepare(m, spec)
    r = spec.axis.coords[0]
    assert prep.info["r_measured_max"] == pytest.approx(20.0, abs=0.011)
    assert "measured to 20" in prep.info["warning"]
    assert np.all(prep.x[0][r > 20.0 + 1e-9] == 0.0) and np.any(prep.x[0][(r > 15) & (r < 20)] != 0.0)
    res = _result(PHASES, {"ZnS_zincblende": 0.6, "Si_diamond": 0.3, "Ni_fcc": 0.1}, a_true * 1.02)
    ad.refine(m, prep, res, run, spec)
    assert res["refined"]["phase"] == "Si_diamond"
    assert res["values"]["a"]["value"] == pytest.approx(a_true, rel=5e-4)
    assert res["refined"]["r_range_A"][1] == pytest.approx(20.0, abs=0.011)
    with pytest.raises(Exception, match=r"ends before 15 A"):
        ad.prepare(_truncated(full, 12.0), spec)
    np_spec = target_spec(load_recipe("pdf-nanoparticles"))
    with pytest.raises(Exception, match=r"does not cover the model's axis"):
        ad.prepare(_truncated(full, 20.0), np_spec)
    rutile = _truncated(_strained_g("TiO2_rutile", 0.0)[0], 20.0)
    prep = ad.prepare(rutile, spec)
    with pytest.raises(OutOfDomain, match="no phase of the model describes it"):
        ad.refine(rutile, prep, _result(PHASES, {"Ni_fcc": 1.0}, 3.6), run, spec)
    with pytest.raises(OutOfDomain, match="nothing to refine"):
        ad.refine(m, prep, {"values": {}}, run, spec)
