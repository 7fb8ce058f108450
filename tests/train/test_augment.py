"""Document 000's augmentation protocol (train/augment.py)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

# one thread: these tiny nets gain nothing from more, and shared CI cores are often oversubscribed
torch.set_num_threads(1)

from train.studies import augment as A


def _data(n=120, L=48, seed=0):
    rng = np.random.default_rng(seed)
    u = np.linspace(0, 1, L)
    c = rng.uniform(0.2, 0.8, n)
    a = rng.uniform(0.5, 1.5, n)
    x = a[:, None] * np.exp(-0.5 * ((u - c[:, None]) / 0.06) ** 2) + 0.01 * rng.standard_normal((n, L))
    return x.astype(np.float32), np.column_stack([c, a]).astype(np.float32)


@pytest.mark.parametrize("strategy", ["train", "kde", "grid"])
def test_choose_conditions_stay_in_training_range(strategy):
    _, y = _data()
    c = A.choose_conditions(y, 50, strategy, np.random.default_rng(0))
    assert c.shape == (50, 2)
    assert np.all(c >= y.min(0) - 1e-9) and np.all(c <= y.max(0) + 1e-9)
    if strategy == "grid":
        assert len(np.unique(c[:, 0])) <= 8  # a regular grid, not resampled points
    with pytest.raises(ValueError, match="strategy 'bad'"):
        A.choose_conditions(y, 5, "bad", np.random.default_rng(0))


def test_regressor_beats_mean_and_masks_nan():
    x, y = _data(300)
    y = y.copy()
    y[::7, 1] = np.nan  # not applicable rows must not poison the fit
    r = A.Regressor(epochs=60, seed=0).fit(x[:200], y[:200])
    p = r.predict(x[200:])
    assert np.all(np.isfinite(p))
    err = A.mae(y[200:], p)
    base = A.mae(y[200:], np.broadcast_to(np.nanmean(y[:200], 0), p.shape))
    assert np.all(err < 0.5 * base)


def test_run_fold_all_methods():
    x, y = _data(100)
    tr, te = A.kfold(len(x), 4, 0)[0]
    cfg = {"reg_epochs": 10, "vae_epochs": 10, "beta": 1.0, "batch": 32, "wd": 0.0}
    keep = {}
    res = A.run_fold(x, y, tr, te, latent=8, ratio=1.0, strategies=["train", "grid"], cfg=cfg, seed=0, keep=keep)
    assert set(res) == {"exp", "vae", "cvae_train", "cvae_grid"}
    assert all(v.shape == (2,) and np.all(np.isfinite(v)) for v in res.values())
    assert keep["vae"].shape == (len(tr), x.shape[1])


def test_kfold_partitions():
    folds = A.kfold(23, 5, 1)
    te = np.concatenate([f[1] for f in folds])
    assert sorted(te.tolist()) == list(range(23))
    for tr, t in folds:
        assert not set(tr) & set(t)


def test_cli_end_to_end_on_recipe(tmp_path):
    p = argparse.ArgumentParser()
    A.add_arguments(p)
    args = p.parse_args(["--data", "peaks-demo", "--n", "60", "--folds", "2", "--bin", "16", "--latent", "8",
                         "--reg-epochs", "5", "--vae-epochs", "5", "--strategies", "kde", "--sweep-latent", "4",
                         "--sweep-ratio", "2", "--sweep-folds", "1", "--out", str(tmp_path)])
    rep = A.run(args)
    assert set(rep["main"]) == {"exp", "vae", "cvae_kde"}
    assert len(rep["main"]["exp"]["mean"]) == 3 and len(rep["main"]["exp"]["std"]) == 3
    assert set(rep["sweeps"]) == {"latent", "ratio"}
    assert (tmp_path / "augment_report.json").exists() and (tmp_path / "augment_vae.png").exists()
    assert rep["verdict"] in ("PASS", "FAIL") and rep["reason"]


def test_verdict_by_augmented_vs_experimental_error():
    exp = np.array([1.0, 2.0])
    better = [{"exp": exp, "vae": 0.8 * exp}, {"exp": exp, "vae": 0.9 * exp}]
    assert A.verdict(better)["verdict"] == "PASS"
    worse = [{"exp": exp, "vae": 1.2 * exp}, {"exp": exp, "vae": 1.1 * exp}]
    v = A.verdict(worse)
    assert v["verdict"] == "FAIL" and "no augmentation lowers the error" in v["reason"]
    v = A.verdict([{"exp": exp, "vae": np.array([np.nan, 1.0])}])
    assert v["verdict"] == "FAIL" and "non-finite" in v["reason"]
