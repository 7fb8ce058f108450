"""validate() and the simtrain validate/predict commands with Measurements and reading options."""
from __future__ import annotations

import numpy as np
import pytest

from train.measurements import Measurement


@pytest.fixture(scope="module")
def peaks_run(tmp_path_factory):
    import simgen.corpus
    from simgen.recipe import load_recipe
    from train.fit import FitConfig, fit
    d = tmp_path_factory.mktemp("peaks")
    rec = load_recipe("peaks-demo", overrides={"config.n_points": 128})
    simgen.corpus.build(rec, 256, d / "store.zarr", chunk_rows=128, scheduler="synchronous")
    run = fit(FitConfig(store=str(d / "store.zarr"), task="regress", model="mlp", model_kw={"hidden": [32]},
                        epochs=3, batch_size=64, out=str(d / "run"), progress=False, device="cpu"),
              log=lambda *a, **k: None)
    return run, rec


def _peak(rec):
    sim = rec.build()
    y = sim.simulate({"center": 40.0, "width": 6.0, "amplitude": 1.0, "noise": 0.0, "label": 0})[0]
    return sim.axis.coords[0], y


def test_validate_takes_measurements(peaks_run):
    from train.validate import validate
    run, rec = peaks_run
    x, y = _peak(rec)
    m = Measurement(x, y, "x", "", "", None, {"source": "in-memory.txt"})
    rep = validate(run, [m], reference=False, mc=1, overlay=False)
    assert rep["results"][0]["file"] == "in-memory.txt" and "center" in rep["results"][0]["values"]


def test_cli_columns_and_predict_on_a_measured_file(peaks_run, tmp_path, capsys):
    from train.cli import main
    run, rec = peaks_run
    x, y = _peak(rec)
    f = tmp_path / "named.txt"
    # point index first: only --columns makes it readable
    np.savetxt(f, np.c_[np.arange(len(x)), x, y], header="n a b", comments="# ")
    assert main(["validate", str(run.path), str(f), "--no-reference", "--no-overlay", "--mc", "1"]) == 2
    assert "point index" in capsys.readouterr().err
    assert main(["validate", str(run.path), str(f), "--no-reference", "--no-overlay", "--mc", "1",
                 "--columns", "a,b"]) == 0
    assert "named.txt" in capsys.readouterr().out
    assert main(["predict", str(run.path), str(f), "--columns", "2,3", "--device", "cpu"]) == 0
    assert "center" in capsys.readouterr().out
