"""train.data: tasks, splits, normalisers, the chunk-aware loader and on-the-fly simulation (tiny corpora)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

import simgen.corpus as sc
from simgen.errors import StoreError
from simgen.recipe import load_recipe

from train.data import (ChunkShuffleLoader, CorpusDataset, Normalisers, SimulatedDataset, TaskError,
                        XNormaliser, YNormaliser, block_rows_for, fit_normalisers, holdout_split, kfold_splits, open_store,
                        parse_task)

from _train_fixtures import tiny_recipe as _tiny_recipe


def tiny_recipe(**kw):
    return _tiny_recipe(**{**dict(points=64, seed=7), **kw})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "peaks.zarr"
    sc.build(tiny_recipe(), 480, path, chunk_rows=64, progress=False, scheduler="synchronous")
    return str(path)


@pytest.fixture(scope="module")
def store_nolabel(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "nolabel.zarr"
    sc.build(tiny_recipe(label=False), 64, path, chunk_rows=32, progress=False, scheduler="synchronous")
    return str(path)


# ------------------------------------------------------------------------------------------------ task
def test_parse_task(store, store_nolabel):
    c = sc.open(store)
    t = parse_task("regress:width,center", c)
    assert t.targets == ("width", "center") and not t.classify and t.target_units == ("arb.", "arb.")
    assert parse_task("regress", c).targets == ("center", "width", "amplitude")
    t = parse_task("both:center", c)
    assert t.targets == ("center",) and t.classify and t.classes == ("gaussian", "lorentzian")
    t = parse_task("classify", c)
    assert t.targets == () and t.classify
    with pytest.raises(TaskError, match=r"unknown target 'centre'.*center, width, amplitude"):
        parse_task("regress:centre", c)
    with pytest.raises(TaskError, match="expected one of"):
        parse_task("regression", c)
    with pytest.raises(TaskError, match="no class label"):
        parse_task("classify", sc.open(store_nolabel))


# ------------------------------------------------------------------------------------------------ splits
def test_holdout_split_partitions_and_is_seeded():
    s = holdout_split(1000, 100, val=0.1, test=0.2, seed=3)
    allrows = np.concatenate([s[k].rows for k in ("train", "val", "test")])
    assert np.array_equal(np.sort(allrows), np.arange(1000))
    assert abs(len(s["test"]) - 200) <= 20 and abs(len(s["val"]) - 100) <= 20
    s2 = holdout_split(1000, 100, val=0.1, test=0.2, seed=3)
    assert all(np.array_equal(s[k].rows, s2[k].rows) for k in s)
    s3 = holdout_split(1000, 100, val=0.1, test=0.2, seed=4)
    assert not np.array_equal(s["test"].rows, s3["test"].rows)
    # blocks never straddle a chunk: each block is contiguous within one chunk
    b = block_rows_for(1000, 100)
    assert 100 % b == 0 and 1000 // b >= 50
    assert block_rows_for(100_000, 512) == 512  # enough chunks: whole chunks


def test_kfold_splits():
    folds = kfold_splits(960, 64, k=4, seed=1)
    tests = np.concatenate([f["test"].rows for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(960))  # the test folds partition the corpus
    for f in folds:
        parts = [set(f[k].rows.tolist()) for k in ("train", "val", "test")]
        assert sum(map(len, parts)) == 960 and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    with pytest.raises(ValueError, match="too small"):
        kfold_splits(10, 10, k=5, block_rows=5)


# ------------------------------------------------------------------------------------------------ normalisers
def test_normalisers_fit_on_train_split_only(store):
    c = sc.open(store)
    task = parse_task("regress", c)
    sp = holdout_split(c.n, c.chunk_rows, val=0.2, test=0.2, seed=0)
    norm = fit_normalisers(c, sp["train"].rows, task, x_mode="channel")
    x, y = c.x[:][sp["train"].rows], c.y[:][sp["train"].rows]
    np.testing.assert_allclose(norm.x.mean, x.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.x.std, x.std(0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(norm.y.mean, y.mean(0), rtol=1e-5)
    assert not np.allclose(norm.y.mean, c.y[:].mean(0), rtol=1e-6)  # the held-out rows are not used
    g = XNormaliser("global").partial_fit(x).finish()
    np.testing.assert_allclose([g.mean[0], g.std[0]], [x.mean(), x.std()], rtol=1e-4)


def test_y_normaliser_is_nan_aware():
    rng = np.random.default_rng(0)
    y = rng.normal(3, 2, (200, 2))
    y[::3, 1] = np.nan
    yn = YNormaliser(("a", "b")).partial_fit(y[:100]).partial_fit(y[100:]).finish()
    np.testing.assert_allclose(yn.mean, np.nanmean(y, 0))
    np.testing.assert_allclose(yn.std, np.nanstd(y, 0))
    z = yn.transform(y)
    assert np.array_equal(np.isnan(z), np.isnan(y))
    np.testing.assert_allclose(yn.inverse(z), y, rtol=1e-5)


def test_y_normaliser_per_class(tmp_path, store):
    """Class-conditional standardisation: per-class mean/std (NaN-aware), constant targets of a class keep unit
    scale, inverse with the class restores the values, save/load keeps it, and a missing label is refused."""
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 3, 600)
    centre = np.array([[40.0, 2.006], [-243.0, 2.0], [0.0, 2.15]])
    spread = np.array([[4.0, 0.001], [8.0, 0.002], [0.0, 0.02]])
    y = centre[lab] + spread[lab] * rng.normal(size=(600, 2))
    y[np.where(lab == 1)[0][::4], 1] = np.nan
    yn = YNormaliser(("A", "g"), n_classes=3)
    yn.partial_fit(y[:250], lab[:250]).partial_fit(y[250:], lab[250:]).finish()
    for c in range(3):
        np.testing.assert_allclose(yn.class_mean[c], np.nanmean(y[lab == c], 0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(yn.class_std[0], np.nanstd(y[lab == 0], 0), rtol=1e-6)
    assert yn.class_std[2, 0] == 1.0                      # A = 0 for every class-2 row
    z = yn.transform(y, lab)
    for c in range(2):
        np.testing.assert_allclose(np.nanstd(z[lab == c], 0), 1.0, rtol=1e-4)
    np.testing.assert_allclose(yn.inverse(z, lab), y, rtol=1e-5)
    with pytest.raises(TaskError, match="needs the class"):
        yn.transform(y)
    c = sc.open(store)
    task = parse_task("both", c)
    sp = holdout_split(c.n, c.chunk_rows, val=0.2, test=0.2, seed=0)
    norm = fit_normalisers(c, sp["train"].rows, task, x_mode="channel", y_mode="class")
    norm.save(tmp_path / "n.npz")
    back = Normalisers.load(tmp_path / "n.npz")
    assert back.y.by_class and np.array_equal(back.y.class_std, norm.y.class_std)
    with pytest.raises(TaskError, match="both"):
        fit_normalisers(c, sp["train"].rows, parse_task("regress", c), y_mode="class")


# ------------------------------------------------------------------------------------------------ loaders
def _rows_of_epoch(loader, c):
    """Recover the store rows of each batch by matching the raw y (unique floats) back to rows."""
    ally = c.y[:]
    key = {tuple(np.round(r, 5)): i for i, r in enumerate(ally)}
    rows, batches = [], []
    for b in loader:
        r = [key[tuple(np.round(v, 5))] for v in b["y"].numpy()]
        rows += r
        batches.append(r)
    return rows, batches


@pytest.mark.parametrize("workers", [0, 2])
def test_chunk_loader_epoch_covers_split_once(store, workers):
    c = sc.open(store)
    task = parse_task("both", c)
    sp = holdout_split(c.n, c.chunk_rows, val=0.2, test=0.2, seed=0)
    ds = CorpusDataset(store, split=sp["train"], task=task, normaliser=None)
    ld = ChunkShuffleLoader(ds, batch_size=32, seed=1, num_workers=workers, mix_chunks=2)
    rows, batches = _rows_of_epoch(ld, c)
    assert sorted(rows) == sp["train"].rows.tolist()
    # chunk-aware: a batch touches the mix_chunks chunks of its block (plus those of the rows carried over)
    assert max(len({r // c.chunk_rows for r in b}) for b in batches) <= 4
    ld.set_epoch(1)
    rows1, _ = _rows_of_epoch(ld, c)
    assert sorted(rows1) == sorted(rows) and rows1 != rows  # a new order each epoch
    b = next(iter(ld))
    assert b["x"].dtype == torch.float32 and b["label"].dtype == torch.int64 and b["x"].shape[1:] == (64,)


def test_dataset_item_is_normalised_row(store):
    c = sc.open(store)
    task = parse_task("regress:width", c)
    norm = fit_normalisers(c, np.arange(c.n), task, x_mode="global")
    ds = CorpusDataset(store, task=task, normaliser=norm)
    item = ds[77]
    np.testing.assert_allclose(item["x"].numpy(), (c.x[77] - norm.x.mean[0]) / norm.x.std[0], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(item["y"].numpy(), (c.y[77, 1] - norm.y.mean) / norm.y.std, rtol=1e-5)


def test_simulated_dataset_reproduces_store_rows(store):
    c = sc.open(store)
    sim = SimulatedDataset(c.recipe, task="both", batch_size=16, start=0, stop=40, rows_per_block=20,
                           shuffle=False)
    got = list(sim)
    x = torch.cat([b["x"] for b in got]).numpy()
    y = torch.cat([b["y"] for b in got]).numpy()
    lab = torch.cat([b["label"] for b in got]).numpy()
    np.testing.assert_array_equal(x, c.x[:40])
    np.testing.assert_array_equal(y, c.y[:40])
    np.testing.assert_array_equal(lab, c.label[:40])
    one = sim[5]
    np.testing.assert_array_equal(one["x"].numpy(), c.x[5])
    fresh = SimulatedDataset(c.recipe, task="regress", batch_size=8, start=c.n, stop=c.n + 8)
    assert not np.allclose(next(iter(fresh))["x"].numpy()[:, :5], c.x[:8, :5])


# ------------------------------------------------------------------------------------------------ bad stores
def test_incomplete_and_corrupted_store(tmp_path):
    path = tmp_path / "broken.zarr"
    sc.build(tiny_recipe(), 64, path, chunk_rows=32, progress=False, scheduler="synchronous")
    open_store(path, verify=True)  # intact
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    x = g["x"][0:32]
    x[3, 5] += 1.0
    g["x"][0:32] = x
    with pytest.raises(StoreError, match=r"broken\.zarr.*corrupted.*\[0\]"):
        open_store(path, verify=True)
    g["_chunk_crc32"][1] = -1
    with pytest.raises(StoreError, match=r"broken\.zarr.*incomplete"):
        CorpusDataset(path)


def test_y_normaliser_log_targets():
    rng = np.random.default_rng(2)
    y = np.stack([rng.normal(0, 1, 300), 10 ** rng.uniform(-7, -5, 300)], 1)
    yn = YNormaliser(("a", "rate"), log=["rate"]).partial_fit(y).finish()
    z = yn.transform(y)
    np.testing.assert_allclose(z[:, 1].std(), 1, rtol=1e-3)  # standardised on the log scale
    np.testing.assert_allclose(yn.mean[1], np.log10(y[:, 1]).mean())
    np.testing.assert_allclose(yn.inverse(z), y, rtol=1e-4)
    with pytest.raises(TaskError, match="'nope'"):
        YNormaliser(("a",), log=["nope"])
    with pytest.raises(TaskError, match="log target 'a'.*<= 0"):
        YNormaliser(("a",), log=["a"]).partial_fit(y[:, :1])
