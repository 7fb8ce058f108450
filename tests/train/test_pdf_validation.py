"""PDF real-data preparation: the diffpy.cmi Ni and Pt-nanoparticle G(r) files on the PDF recipes' r grids.

Checks that prepare() keeps the simulator's conventions (point-sampled G(r) on the model's grid, no shift of r, the
experimental scale inside the recipe's ``scale`` prior) by comparing the prepared measurement with the simulator
at the independent srreal fit values of ../shared/data/README.md (Ni: a 3.5246 A, Uiso 0.0059, delta2 1.96,
Qdamp 0.045, Rw 0.029; Pt: spherical particle ~37 A, a ~3.925 A).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from simgen.recipe import load_recipe
from train.measurements import Measurement, MeasurementError, read
from train.prepare import prepare

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CH03 = SHARED / "pdf" / "diffpy.cmi" / "ch03NiModelling"

pytestmark = pytest.mark.shared_data


def _gr(name: str) -> Measurement:
    p = CH03 / name
    if not p.exists():
        pytest.skip(f"{p} not present (../shared/data)")
    return read(p)


def _scale_rw(sim_g, meas):
    """Least-squares scale of the simulation onto the measurement and the resulting Rw."""
    a = float(np.dot(sim_g, meas) / np.dot(sim_g, sim_g))
    rw = float(np.sqrt(np.sum((meas - a * sim_g) ** 2) / np.sum(meas ** 2)))
    return a, rw


def _sim_params(over: dict) -> dict:
    p = {"strain_a": 0.0, "strain_b": 0.0, "strain_c": 0.0, "rattle": 0.0, "vacancy": 0.0, "noise": 0.0,
         "scale": 1.0}
    p.update(over)
    return p


def test_ni_gr_point_sampled_on_recipe_grid():
    m = _gr("Ni.gr")
    rec = load_recipe("pdf-fcc-metals")
    p = prepare(m, rec)
    r = p.axis.coords[0]
    assert r[0] == pytest.approx(1.5) and r[1] - r[0] == pytest.approx(0.02)
    assert p.x.shape == (1, len(r)) and p.x.dtype == np.float32
    # the 0.02 A grid points are points of the file's 0.01 A grid: values are the measured ones, not bin averages
    idx = np.searchsorted(m.axis, r - 1e-6)
    np.testing.assert_allclose(m.axis[idx], r, atol=1e-6)
    np.testing.assert_allclose(p.x[0], m.values[idx], rtol=1e-6, atol=1e-6)
    assert p.info["qmax_measured"] == 25.0 and p.info["qmin_measured"] == 0.5
    assert "warning" not in p.info  # Qmin/Qmax of the file lie inside the recipe's priors


def test_prepared_ni_matches_simulator_at_srreal_fit():
    m = _gr("Ni.gr")
    rec = load_recipe("pdf-fcc-metals")
    sim = rec.build()
    meas = prepare(m, sim).x[0].astype(float)
    a0 = 3.524  # catalog Ni_fcc
    base = dict(label=sim.classes.index("Ni_fcc"), shape="bulk", uiso=0.00587, delta2=1.96, qdamp=0.0453,
                qbroad=0.0168, qmin=0.5, qmax=25.0)
    rws = {}
    for a in (3.5146, 3.5196, 3.5246, 3.5296, 3.5346):
        g = sim.simulate(_sim_params(dict(base, strain_iso=a / a0 - 1)))[0].astype(float)
        scale, rw = _scale_rw(g, meas)
        rws[a] = (rw, scale)
    best = min(rws, key=lambda k: rws[k][0])
    assert best == 3.5246, rws          # no r shift/stretch introduced by the preparation
    rw, scale = rws[3.5246]
    assert rw < 0.05, rws                # srreal's fit reached Rw 0.029 over 1.5-50 A
    lo, hi = rec.params["scale"].support()
    assert lo < scale < hi, f"measured scale {scale:.3f} outside the recipe's scale prior {lo}-{hi}"


def test_prepared_pt_nanoparticles_match_spherical_envelope():
    m = _gr("Pt-nanoparticles.gr")
    rec = load_recipe("pdf-nanoparticles")
    sim = rec.build()
    p = prepare(m, sim)
    meas = p.x[0].astype(float)
    assert p.axis.coords[0][0] == pytest.approx(1.5)
    assert "warning" not in p.info
    a0 = 3.9242  # catalog Pt_fcc
    base = dict(label=sim.classes.index("Pt_fcc"), shape="sphere_envelope", strain_iso=3.925 / a0 - 1,
                uiso=0.0089, delta2=3.5, qdamp=0.0453, qbroad=0.0168, qmin=0.1, qmax=25.0)
    rws = {}
    for d in (25.0, 31.0, 37.0, 45.0, 55.0):
        g = sim.simulate(_sim_params(dict(base, diameter=d)))[0].astype(float)
        rws[d] = _scale_rw(g, meas)
    best = min(rws, key=lambda k: rws[k][1])
    assert best == 37.0, rws
    scale, rw = rws[37.0]
    assert rw < 0.15, rws
    lo, hi = rec.params["scale"].support()
    assert lo < scale < hi, f"measured scale {scale:.3f} outside the recipe's scale prior {lo}-{hi}"


def test_pdf_refusals_name_the_file():
    m = _gr("Pt-nanoparticles.gr")
    rec = load_recipe("pdf-nanoparticles")
    short = Measurement(m.axis[m.axis < 30], m.values[m.axis < 30], "r", "A", "1/A^2", "pdf", {"source": "short.gr"})
    with pytest.raises(MeasurementError, match=r"short\.gr: r \(A\) 0-29.99 does not cover the model's axis 1.5-44.98"):
        prepare(short, rec)
    bad = m.values.copy()
    bad[100] = np.nan
    with pytest.raises(MeasurementError, match=r"nan\.gr: 1 non-finite G\(r\) values"):
        prepare(Measurement(m.axis, bad, "r", "A", "1/A^2", "pdf", {"source": "nan.gr"}), rec)
    hi_q = Measurement(m.axis, m.values, "r", "A", "1/A^2", "pdf", {"source": "q.gr", "qmax": 45.0})
    assert "qmax 45 1/A lies outside the recipe's 14-40" in prepare(hi_q, rec).info["warning"]


def test_scaled_gr_is_out_of_domain_not_a_number(tmp_path, shared):
    """A G(r) scaled by 1e6 (other units) is refused as out of domain; by 1e39 it is refused at reading (float32
    overflow); neither gives a number."""
    from train.measurements import MeasurementError, read
    from train.modalities import OutOfDomain
    src = shared("data", "pdf", "diffpy.cmi", "ch03NiModelling", "Ni.gr")
    rec = load_recipe("pdf-fcc-metals")
    import simgen.corpus
    from train.fit import FitConfig, fit
    from train.validate import predict_measurement
    simgen.corpus.build(rec, 256, tmp_path / "s.zarr", chunk_rows=128, scheduler="synchronous")
    run = fit(FitConfig(store=str(tmp_path / "s.zarr"), task="regress", model="mlp", epochs=1, out=str(tmp_path / "r"),
                        progress=False, device="cpu"), log=lambda *a, **k: None)
    m = read(src)
    predict_measurement(run, m, mc=1)                              # the file as it is: a prediction
    for factor, err in ((1e6, OutOfDomain), (1e39, MeasurementError)):
        f = tmp_path / f"x{factor:g}.gr"
        f.write_text("\n".join(f"{r:.4f} {g * factor:.6g}" for r, g in zip(m.axis, m.values)))
        with pytest.raises(err, match=re.escape(f"x{factor:g}.gr")):
            predict_measurement(run, read(f), mc=1)
