"""simtrain validate end to end on a tiny run trained on the 'peaks' simulator, and the table logic."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import yaml

from train.modalities.epr import MUB_MHZ_PER_MT
from train.validate import check_reference, check_series, check_value, derived_quantities, format_table, \
    register_cli, validate


@pytest.fixture(scope="module")
def peaks_run(tmp_path_factory):
    import simgen.corpus
    from simgen.recipe import load_recipe
    from train.fit import FitConfig, fit
    d = tmp_path_factory.mktemp("peaks")
    rec = load_recipe("peaks-demo", overrides={"config.n_points": 128})
    simgen.corpus.build(rec, 512, d / "store.zarr", chunk_rows=128, scheduler="synchronous")
    run = fit(FitConfig(store=str(d / "store.zarr"), task="both", model="mlp",
                        model_kw={"hidden": [64, 64], "dropout": 0.1}, epochs=20, batch_size=64, lr=3e-3,
                        out=str(d / "run"), progress=False, device="cpu"), log=lambda *a, **k: None)
    return run, rec


def test_validate_end_to_end(peaks_run, tmp_path):
    run, rec = peaks_run
    sim = rec.build()
    truth = {"center": 40.0, "width": 6.0, "amplitude": 1.5, "eta": 0.1, "offset": 0.0, "slope": 0.0,
             "noise": 0.01, "label": 0}
    y = sim.simulate(truth)[0]
    x = sim.axis.coords[0]
    f = tmp_path / "peak.txt"
    np.savetxt(f, np.c_[x, y])
    ref = tmp_path / "ref.yaml"
    ref.write_text(yaml.safe_dump({"files": {"peak.txt": {"class": "gaussian", "values": {
        "center": {"value": 40.0, "tol": 8.0}, "width": {"value": 6.0, "tol_rel": 0.9},
        "nonexistent": {"value": 1.0, "tol": 1.0}}}}}))
    rep = validate(run, [f], reference=ref, out=tmp_path / "val", mc=10)
    res = rep["results"][0]
    assert res["uncertainty"].startswith("mc-dropout")
    assert res["values"]["center"]["unc"] > 0
    assert abs(res["values"]["center"]["value"] - 40.0) < 8.0  # 20 epochs on 400 rows: a coarse model
    assert (tmp_path / "val" / "figures" / "peak.txt.png").stat().st_size > 1000
    assert "overlay_error" not in res
    q = {r["quantity"]: r for r in rep["rows"]}
    assert q["center"]["ok"] and q["nonexistent"]["ok"] is None and "class" in q
    assert "center" in rep["table"] and (tmp_path / "val" / "table.txt").exists()


def test_cli_registration_and_run(peaks_run, tmp_path, capsys):
    run, rec = peaks_run
    sim = rec.build()
    y = sim.simulate({"center": 60.0, "width": 4.0, "amplitude": 1.0, "label": 1, "noise": 0.0})[0]
    f = tmp_path / "p.csv"
    np.savetxt(f, np.c_[sim.axis.coords[0], y], delimiter=",")
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    register_cli(sub)
    args = ap.parse_args(["validate", str(run.path), str(f), "--no-reference", "--mc", "5"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "p.csv" in out and "center" in out


def test_wrong_axis_refused(peaks_run, tmp_path):
    from train.measurements import MeasurementError
    run, _ = peaks_run
    f = tmp_path / "short.txt"
    np.savetxt(f, np.c_[np.linspace(10, 50, 100), np.zeros(100)])
    with pytest.raises(MeasurementError, match=r"short\.txt: x 10-50 does not cover the model's axis 0-100"):
        validate(run, [f], reference=False)


def test_check_value_and_series_logic():
    assert check_value(2.56, {"value": 2.55, "tol": 0.02}) == pytest.approx((0.01, 0.02, True))
    d, t, ok = check_value(0.0112, {"value": 0.0089, "tol_rel": 0.25})
    assert not ok and t == pytest.approx(0.002225)
    assert check_value(-8.5, {"value": 8.7, "tol_rel": 0.05, "abs": True})[2]
    res = [{"file": f, "values": {"sigma2_1": {"value": v, "unc": None}}}
           for f, v in [("a", 0.004), ("b", 0.0042), ("c", 0.009)]]
    ref = {"series": {"s": {"quantity": "sigma2_1", "files": ["a", "b", "c"], "values": [10, 50, 295]}}}
    assert check_series(res, ref)[0]["ok"]
    res[1]["values"]["sigma2_1"]["value"] = 0.003
    assert not check_series(res, ref)[0]["ok"]
    rows = check_reference({"file": "a", "values": {}, "class": "x", "class_prob": 0.9,
                            "edges": [{"label": "Ti L2,3"}]}, {"class": "x", "edges": ["Ti L2,3", "O K"]})
    assert [r["ok"] for r in rows] == [True, True, False]
    assert "FAIL" in format_table(rows) and "PASS" in format_table(rows)


def test_epr_derived_quantities():
    # TEMPO: g 2.0060, a 1.5665 mT -> A = a g muB/h = 43.98 MHz; a field scale s multiplies apparent A by s
    names = ["g_x", "g_y", "g_z", "A_x", "A_y", "A_z"]
    A = 1.5665 * MUB_MHZ_PER_MT * 2.006
    s = np.array([[[2.006, 2.006, 2.006, A * 1.02, A * 1.02, A * 1.02]]])
    d = derived_quantities(names, s, {"field_scale": 1.02})
    assert d["g_iso"][0, 0] == pytest.approx(2.006)
    assert d["a_iso_mT"][0, 0] == pytest.approx(1.5665)


def test_reference_catalog_is_consistent():
    from simgen import catalogs
    from train.validate import load_reference
    ref = load_reference(catalogs.find("validation/reference-values.yaml"))
    f = ref["files"]
    assert f["XASLIB_Cu_cu_metal_rt.xdi"]["values"]["R1"] == {**f["XASLIB_Cu_cu_metal_rt.xdi"]["values"]["R1"],
                                                               "value": 2.55, "tol": 0.02}
    assert f["Ni.gr"]["values"]["a"]["tol_rel"] == 0.003
    assert f["pyTEMlib_EELS_STO.dm3"]["edges"] == ["Ti L2,3", "O K"]
    for entry in f.values():
        for q, spec in (entry.get("values") or {}).items():
            assert "value" in spec and ("tol" in spec or "tol_rel" in spec), q
