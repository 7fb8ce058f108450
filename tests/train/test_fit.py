"""train.fit / train.run / train.metrics on tiny corpora (few epochs)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import simgen.corpus as sc
from simgen.recipe import load_recipe

from train.fit import FitConfig, cross_validate, fit, format_cv, masked_loss
from train.metrics import aggregate_folds, classification_metrics, regression_metrics
from train.models import ShapeError
from train.run import RunError, load_run, resolve_device

from _train_fixtures import tiny_recipe as _tiny_recipe


def tiny_recipe(**kw):
    return _tiny_recipe(**{**dict(points=64, seed=11), **kw})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "peaks.zarr"
    sc.build(tiny_recipe(), 1200, path, chunk_rows=100, progress=False, scheduler="synchronous")
    return str(path)


def _cfg(store, out, **kw):
    base = dict(store=store, task="regress:center", model="mlp", epochs=15, batch_size=64, device="cpu",
                progress=False, out=str(out), seed=0)
    base.update(kw)
    return FitConfig(**base)


# ------------------------------------------------------------------------------------------------ metrics
def test_regression_metrics_match_sklearn_and_mask_nan():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    rng = np.random.default_rng(0)
    t = rng.normal(size=(100, 2))
    p = t + rng.normal(scale=0.3, size=t.shape)
    t[::5, 1] = np.nan
    m = regression_metrics(t, p, ["a", "b"])
    ok = np.isfinite(t[:, 1])
    assert m["b"]["n"] == ok.sum()
    assert m["b"]["r2"] == pytest.approx(r2_score(t[ok, 1], p[ok, 1]))
    assert m["b"]["mae"] == pytest.approx(mean_absolute_error(t[ok, 1], p[ok, 1]))
    assert m["a"]["rmse"] == pytest.approx(np.sqrt(mean_squared_error(t[:, 0], p[:, 0])))
    # predicting the mean scores R2 = 0
    assert regression_metrics(t[:, :1], np.full((100, 1), t[:, 0].mean()), ["a"])["a"]["r2"] == pytest.approx(0)


def test_classification_metrics_match_sklearn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.7, lab, rng.integers(0, 4, 300))
    m = classification_metrics(lab, pred, ["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(accuracy_score(lab, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(lab, pred, average="macro"))
    assert m["confusion"] == confusion_matrix(lab, pred).tolist()


def test_aggregate_folds_mean_std():
    folds = [{"regression": {"a": {"r2": v}}} for v in (0.9, 0.8, 0.7)]
    s = aggregate_folds(folds)["regression"]["a"]["r2"]
    assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1)


def test_masked_loss_ignores_nan_targets():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = torch.tensor([[0.0, float("nan")], [1.0, 2.0]])
    loss, parts = masked_loss({"reg": pred}, {"y": y})
    assert float(loss.detach()) == pytest.approx((1 + 4 + 4) / 3)
    loss.backward()
    assert pred.grad[0, 1] == 0 and torch.isfinite(pred.grad).all()


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


# ------------------------------------------------------------------------------------------------ fit
def test_fit_beats_mean_and_run_roundtrip(store, tmp_path):
    run = fit(_cfg(store, tmp_path / "run", task="both:center"))
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["regression"]["center"]["r2"] > 0.9  # far better than predicting the mean (R2 = 0)
    assert m["regression"]["center"]["mae"] < 0.5 * m["regression"]["center"]["mean_mae"]
    assert "classification" in m and len(m["classification"]["confusion"]) == 2
    for f in ("config.json", "model.pt", "normalisers.npz", "axis.json", "versions.json", "history.json",
              "figures/learning_curves.png", "figures/parity.png", "figures/confusion.png", "checkpoints/last.pt"):
        assert (tmp_path / "run" / f).exists(), f
    loaded = load_run(tmp_path / "run")
    c = sc.open(store)
    x = c.x[:50]
    a, b = run.predict(x), loaded.predict(x)
    np.testing.assert_allclose(a["center"], b["center"], rtol=1e-5)
    assert a["class_probs"].shape == (50, 2) and set(a["class"]) <= {"gaussian", "lorentzian"}
    np.testing.assert_allclose(a["class_probs"].sum(1), 1, rtol=1e-5)
    assert loaded.predict(x[0])["center"].shape == (1,)
    with pytest.raises(ShapeError, match=r"expects samples of shape \(64,\).*\(63,\)"):
        loaded.predict(x[:, :63])
    ev = loaded.evaluate(store)
    assert ev["regression"]["center"]["r2"] > 0.9
    with pytest.raises(RunError, match="already holds a trained model"):
        fit(_cfg(store, tmp_path / "run"))


def test_early_stopping_and_resume(store, tmp_path):
    # lr = 0: the validation loss never improves after the first epoch -> stop after 1 + patience epochs
    run = fit(_cfg(store, tmp_path / "stop", lr=0.0, epochs=20, patience=2, lr_schedule="none"))
    assert run.metrics["early_stopped"] and run.metrics["epochs_run"] == 3 and run.metrics["best_epoch"] == 0
    # resume: 2 epochs, then continue the same run to 4; the first epochs are kept, not redone
    first = fit(_cfg(store, tmp_path / "res", epochs=2))
    again = fit(_cfg(store, tmp_path / "res", epochs=4, resume=True))
    assert [h["epoch"] for h in again.history] == [0, 1, 2, 3]
    assert again.history[:2] == first.history


def test_cross_validate_reports_spread(store, tmp_path):
    res = cross_validate(_cfg(store, tmp_path / "cv", epochs=4, val=0.1), k=3, log=lambda *a: None)
    assert len(res["folds"]) == 3
    r2 = res["summary"]["regression"]["center"]["r2"]
    assert len(r2["folds"]) == 3 and np.isfinite(r2["std"]) and r2["mean"] > 0.5
    assert "±" in format_cv(res)
    assert (tmp_path / "cv" / "cv.json").exists() and (tmp_path / "cv" / "fold2" / "model.pt").exists()


def test_baseline_and_resnet_and_simulated(store, tmp_path):
    rb = fit(_cfg(store, tmp_path / "rf", model="baseline-rf", task="both:center,width",
                  model_kw={"n_estimators": 40}))
    assert rb.metrics["regression"]["center"]["r2"] > 0.9
    assert load_run(tmp_path / "rf").predict(sc.open(store).x[:3])["center"].shape == (3,)
    rr = fit(_cfg(store, tmp_path / "resnet", model="resnet1d", epochs=2, model_kw={"width": 4},
                  cache="stream"))
    assert rr.metrics["epochs_run"] == 2 and np.isfinite(rr.metrics["regression"]["center"]["r2"])
    rs = fit(_cfg(store, tmp_path / "sim", simulate=True, epochs=2, batches_per_epoch=5))
    assert rs.metrics["epochs_run"] == 2 and rs.history[0]["samples_per_s"] > 0


# ------------------------------------------------------------------------------------------------ augmentation
def test_dihedral_augmentation_is_the_symmetry_group_of_the_square():
    """Every augmented batch is one of the 8 symmetries of the square applied to the whole batch, all 8 occur,
    a symmetry-invariant statistic (sum of squares per image) is kept, and spectra are refused by name."""
    from train.fit import augment_batch
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    group = []
    for t in (False, True):
        base = x.transpose(-1, -2) if t else x
        group += [torch.rot90(base, k, dims=(-2, -1)) for k in range(4)]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        y = augment_batch(x, "dihedral", rng)
        idx = [i for i, g in enumerate(group) if torch.equal(y, g)]
        assert len(idx) == 1
        seen.add(idx[0])
        assert torch.allclose((y ** 2).sum((1, 2)), (x ** 2).sum((1, 2)))
    assert seen == set(range(8))
    assert torch.equal(augment_batch(x, "none", rng), x)
    with pytest.raises(ValueError, match="dihedral"):
        augment_batch(torch.zeros(4, 64), "dihedral", rng)
    with pytest.raises(ValueError, match="rotate"):
        augment_batch(x, "rotate", rng)


def test_fit_refuses_dihedral_augmentation_of_spectra(store, tmp_path):
    with pytest.raises(ValueError, match="augment 'dihedral'.*square images.*\\(64,\\)"):
        fit(_cfg(store, tmp_path / "aug", augment="dihedral", epochs=1))


def test_misfit_augmentation_adds_bounded_differences_of_other_samples():
    """misfit: each row becomes x_i + eps_i (x_j - x_k) with eps_i in [0, MISFIT_MAX] and j, k other rows of the
    batch: for rows that are constants c_i, the change of row i is a constant bounded by MISFIT_MAX * spread."""
    from train.fit import MISFIT_MAX, augment_batch
    c = torch.arange(16, dtype=torch.float32)
    x = c[:, None].repeat(1, 50)
    y = augment_batch(x, "misfit", np.random.default_rng(0))
    d = y - x
    assert torch.allclose(d, d[:, :1].expand_as(d))                 # the change of a row is c_j - c_k, scaled
    assert d.abs().max() <= MISFIT_MAX * 15 + 1e-6 and d.abs().max() > 0
    z = augment_batch(torch.zeros(8, 4, 4), "misfit", np.random.default_rng(1))   # works for images too
    assert torch.equal(z, torch.zeros(8, 4, 4))


def test_core_batches_and_loop():
    import torch
    from train import core
    x = torch.arange(10.0)[:, None]
    perm = core.array_batches({"x": x}, 4)
    seen = torch.cat([b["x"] for b in perm(0, torch.Generator().manual_seed(0))])
    assert perm.steps == 3 and sorted(seen[:, 0].tolist()) == list(range(10))  # one epoch = every row once
    draw = core.array_batches({"src": {"x": x}, "tgt": {"x": x[:3]}}, 4, draw=True)
    bs = list(draw(0, torch.Generator().manual_seed(0)))
    assert draw.steps == 3 and all(b["src"]["x"].shape == (4, 1) and b["tgt"]["x"].max() < 3 for b in bs)
    # the loop fits y = 2x with the supervised objective; early stopping restores the best epoch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1, 1))
    wrap = lambda m: (lambda xb: {"reg": m(xb)})  # noqa: E731
    obj = core.supervised()
    tr = core.train(model, {"x": x / 10, "y": 2 * x / 10}, lambda m, b, c: obj(wrap(m), b, c), epochs=200, batch=5,
                    lr=3e-2)
    assert tr.history[-1]["train_loss"] < 1e-3 < tr.history[0]["train_loss"]
    with pytest.raises(ValueError, match="lr_schedule 'bogus'"):
        core.Trainer(model, obj, core.TrainOptions(schedule="bogus"))
