"""Run directories execute no code when loaded: baselines are arrays, weights are read with weights_only=True,
and a hostile or damaged file is refused with one line naming it; predictions never turn NaN silently."""
from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import simgen.corpus as sc
from train.cli import main as simtrain
from train.fit import FitConfig, fit
from train.models.baseline import BaselineModel, load_baseline, save_baseline
from train.run import RunError, load_run

from _train_fixtures import tiny_recipe

MARK = "simgen-test-hostile-code-ran"


class _Evil:
    """Unpickling this runs a shell command that writes a marker file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.path)],))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sec") / "peaks.zarr"
    sc.build(tiny_recipe(points=32, seed=3), 400, path, chunk_rows=100, progress=False, scheduler="synchronous")
    return str(path)


def _fit(store, out, model, **kw):
    cfg = dict(store=store, task="both:center,width", model=model, epochs=2, batch_size=64, device="cpu",
               progress=False, out=str(out), seed=0)
    cfg.update(kw)
    return fit(FitConfig(**cfg))


@pytest.mark.parametrize("kind", ["rf", "gb"])
def test_baseline_arrays_predict_exactly_what_sklearn_did(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 48)).cumsum(1)
    y = np.stack([x[:, 10], x[:, 30] ** 2], 1)
    y[::7, 1] = np.nan  # not applicable rows are left out of that target's regressor
    lab = (x[:, 5] > 0).astype(int) + (x[:, 20] > 1)
    m = BaselineModel(kind, n_estimators=25).fit(x[:180], y[:180], lab[:180], n_classes=3)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        save_baseline(m, f"{d}/m.npz")
        loaded = load_baseline(f"{d}/m.npz")
    a, b = m.predict(x[180:]), loaded.predict(x[180:])
    assert set(a) == set(b) == {"reg", "probs"}
    np.testing.assert_array_equal(a["reg"], b["reg"])
    np.testing.assert_allclose(a["probs"], b["probs"], rtol=0, atol=1e-12)


def test_baseline_run_has_no_pickle_and_a_planted_pickle_is_refused(store, tmp_path, capsys):
    run = _fit(store, tmp_path / "rf", "baseline-rf", model_kw={"n_estimators": 20})
    files = {p.name for p in (tmp_path / "rf").iterdir()}
    assert "model.npz" in files and "model.pkl" not in files
    x = sc.open(store).x[:4]
    np.testing.assert_array_equal(load_run(tmp_path / "rf").predict(x)["center"], run.predict(x)["center"])
    # a hostile run directory: the arrays replaced by a pickle that would run a command
    marker = tmp_path / MARK
    (tmp_path / "rf" / "model.npz").unlink()
    (tmp_path / "rf" / "model.pkl").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(RunError, match=r"model\.pkl'?: refused: a pickle can execute code"):
        load_run(tmp_path / "rf")
    np.save(tmp_path / "x.npy", x)
    assert simtrain(["predict", str(tmp_path / "rf"), str(tmp_path / "x.npy"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.pkl" in err and "Traceback" not in err
    # an object array smuggled into model.npz is not unpickled either
    np.savez(tmp_path / "rf" / "model.npz", __desc__=np.array([_Evil(marker)], dtype=object))
    with pytest.raises(RunError, match=r"model\.npz: not a stored baseline model"):
        load_run(tmp_path / "rf")
    assert not marker.exists()


def test_hostile_weights_and_checkpoint_are_refused_by_name(store, tmp_path, capsys):
    _fit(store, tmp_path / "mlp", "mlp")
    marker = tmp_path / MARK
    torch.save({"w": _Evil(marker)}, tmp_path / "mlp" / "model.pt")  # torch.save pickles the object
    with pytest.raises(RunError, match=r"model file '.*model\.pt': refused: not a plain tensor file"):
        load_run(tmp_path / "mlp")
    np.save(tmp_path / "x.npy", sc.open(store).x[:2])
    assert simtrain(["predict", str(tmp_path / "mlp"), str(tmp_path / "x.npy"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.pt" in err and "Traceback" not in err
    # resuming a fit from a hostile checkpoint
    torch.save({"epoch": 0, "model": _Evil(marker)}, tmp_path / "mlp" / "checkpoints" / "last.pt")
    with pytest.raises(RunError, match=r"checkpoint '.*last\.pt': refused"):
        _fit(store, tmp_path / "mlp", "mlp", epochs=3, resume=True)
    # garbage instead of weights
    (tmp_path / "mlp" / "model.pt").write_bytes(b"\x00not a torch file")
    with pytest.raises(RunError, match="model.pt"):
        load_run(tmp_path / "mlp")
    assert not marker.exists()


def test_resume_from_a_genuine_checkpoint_with_weights_only(store, tmp_path):
    _fit(store, tmp_path / "ok", "mlp", epochs=2)
    run = _fit(store, tmp_path / "ok", "mlp", epochs=3, resume=True)
    assert run.metrics["epochs_run"] == 3


def test_predict_refuses_non_finite_input_by_row(store, tmp_path, capsys):
    _fit(store, tmp_path / "p", "mlp")
    run = load_run(tmp_path / "p")
    x = sc.open(store).x[:5].copy()
    x[1, 3] = np.nan
    x[4, 0] = np.inf
    with pytest.raises(RunError, match=r"2 sample\(s\) hold NaN or inf \(rows \[1, 4\]\)"):
        run.predict(x)
    big = sc.open(store).x[:2].astype(np.float64) * 1e300  # overflows float32
    with pytest.raises(RunError, match="NaN or inf"):
        run.predict(big)
    np.save(tmp_path / "bad.npy", x)
    assert simtrain(["predict", str(tmp_path / "p"), str(tmp_path / "bad.npy"), "--device", "cpu"]) == 2
    assert "rows [1, 4]" in capsys.readouterr().err
    out = run.predict(sc.open(store).x[:5])
    assert all(np.isfinite(v).all() for k, v in out.items() if k != "class")


def test_fit_refuses_a_corrupt_store(tmp_path):
    path = str(tmp_path / "c.zarr")
    sc.build(tiny_recipe(points=32, seed=4), 200, path, chunk_rows=100, progress=False, scheduler="synchronous")
    import zarr
    g = zarr.open_group(path, mode="r+", use_consolidated=False)
    x = g["x"][100:200]
    x[7, 3] += 1.0
    g["x"][100:200] = x
    r = subprocess.run([sys.executable, "-m", "train.cli", "fit", path, "--epochs", "1", "--device", "cpu",
                        "--out", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"store '{path}': corrupted: chunk(s) [1]" in r.stderr and "simgen repair" in r.stderr
    assert not (tmp_path / "run" / "model.pt").exists()
