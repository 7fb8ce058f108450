"""The corpus engine: layout, reproducibility whatever the workers/chunking/interruption, resume, refusal."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import zarr

import simgen.corpus as corpus
from simgen.errors import StoreError
from simgen.recipe import load_recipe

RECIPE = "peaks-demo"


def small(**over):
    return load_recipe(RECIPE, overrides={"config.n_points": 128, **over})


def test_store_layout_and_xarray(tmp_path):
    store = tmp_path / "c.zarr"
    s = corpus.build(small(), 100, store, chunk_rows=32, scheduler="synchronous", progress=False)
    assert s.complete and s.n_chunks == 4 and s.rows_built == 100
    c = corpus.open(store)
    assert c.complete and c.missing_chunks() == [] and c.verify() == []
    assert c.x.shape == (100, 128) and c.x.dtype == np.float32
    assert c.param_names == ("center", "width", "amplitude") and c.classes == ("gaussian", "lorentzian")
    ds = xr.open_zarr(store)
    assert ds["x"].dims == ("sample", "position")
    assert ds["position"].attrs["units"] == "arb."
    assert list(ds["param"].values) == ["center", "width", "amplitude"]
    assert ds["y"].dims == ("sample", "param")
    assert ds.attrs["simgen"]["recipe"]["simulator"] == "peaks"
    assert set(ds.attrs["simgen"]["versions"]) >= {"numpy", "zarr", "dask"}
    np.testing.assert_array_equal(ds["x"].values, c.x[...])
    # the stored targets are the drawn parameters
    params_all = list(c.params_all)
    np.testing.assert_array_equal(c.y[:, 1], c.params[:, params_all.index("width")].astype(np.float32))


def test_bytes_independent_of_chunking_and_size(tmp_path):
    a = corpus.build(small(), 70, tmp_path / "a.zarr", chunk_rows=16, scheduler="threads", progress=False)
    b = corpus.build(small(), 100, tmp_path / "b.zarr", chunk_rows=48, scheduler="synchronous", progress=False)
    assert a.complete and b.complete
    xa, xb = corpus.open(a.store).x[...], corpus.open(b.store).x[:70]
    assert xa.tobytes() == xb.tobytes()
    # and equal to rows simulated directly
    params, out = corpus.simulate_rows(small().build(), small().seed, 20, 30)
    assert out["x"].tobytes() == xa[20:30].tobytes()


def test_distributed_one_and_two_workers_identical(tmp_path):
    from distributed import Client, LocalCluster
    digests = []
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as cluster, Client(cluster) as client:
            s = corpus.build(small(), 200, tmp_path / f"w{workers}.zarr", chunk_rows=32, client=client,
                             progress=False)
        assert s.complete
        digests.append(corpus.content_digest(s.store))
    assert digests[0] == digests[1]


def test_resume_only_builds_missing_chunks_and_repairs_partial_writes(tmp_path):
    store = tmp_path / "r.zarr"
    ref = corpus.build(small(), 96, tmp_path / "ref.zarr", chunk_rows=16, scheduler="synchronous", progress=False)
    corpus.build(small(), 96, store, chunk_rows=16, scheduler="synchronous", progress=False)
    # simulate an interrupted build: chunk 2 half-written and not recorded, chunk 4 never written
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    g["x"][32:40] = 123.0
    g["_chunk_crc32"][2] = -1
    g["_chunk_crc32"][4] = -1
    meta = dict(g.attrs["simgen"]); meta["complete"] = False; g.attrs["simgen"] = meta
    assert not corpus.open(store).complete and corpus.open(store).missing_chunks() == [2, 4]
    s = corpus.build(small(), 96, store, chunk_rows=16, scheduler="synchronous", progress=False)
    assert s.chunks_built == 2 and s.complete
    assert corpus.content_digest(store) == corpus.content_digest(ref.store)


def test_corruption_detected(tmp_path):
    store = tmp_path / "k.zarr"
    corpus.build(small(), 64, store, chunk_rows=16, scheduler="synchronous", progress=False)
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    g["x"][20] = 0.0
    assert corpus.open(store).verify() == [1]


def test_store_from_other_recipe_refused_unless_overwrite(tmp_path):
    store = tmp_path / "o.zarr"
    corpus.build(small(), 32, store, chunk_rows=16, scheduler="synchronous", progress=False)
    with pytest.raises(StoreError, match="another recipe"):
        corpus.build(small(seed=4), 32, store, chunk_rows=16, scheduler="synchronous", progress=False)
    with pytest.raises(StoreError, match="n=32"):
        corpus.build(small(), 48, store, chunk_rows=16, scheduler="synchronous", progress=False)
    s = corpus.build(small(seed=4), 32, store, chunk_rows=16, scheduler="synchronous", progress=False,
                     overwrite=True)
    assert s.complete and corpus.open(store).meta["seed"] == 4
    other = tmp_path / "not_a_corpus"
    other.mkdir()
    (other / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(StoreError, match="not a simgen corpus"):
        corpus.build(small(), 32, other, chunk_rows=16, scheduler="synchronous", progress=False)


def test_open_rejects_non_corpus(tmp_path):
    with pytest.raises(StoreError, match="not found"):
        corpus.open(tmp_path / "nope.zarr")


def test_sigkill_half_way_then_resume_is_byte_identical(tmp_path):
    """Kill `simgen generate` with SIGKILL mid-build, re-run it, compare with an uninterrupted build."""
    args = ["peaks-demo", "--n", "6000", "--chunk-rows", "16", "--workers", "0", "--quiet",
            "--set", "config.n_points=512"]
    ref = tmp_path / "ref.zarr"
    killed = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "simgen.cli", "generate"]
    assert subprocess.run(cmd + args + ["--out", str(ref)], capture_output=True).returncode == 0
    proc = subprocess.Popen(cmd + args + ["--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    n_chunks = 6000 // 16
    done = 0
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.05)
        try:
            done = int((zarr.open_group(killed, mode="r", use_consolidated=False)["_chunk_crc32"][:] >= 0).sum())
        except Exception:
            continue
        if done >= 20:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    c = corpus.open(killed)
    assert not c.complete and 0 < len(c.missing_chunks()) < n_chunks, "the kill did not land half-way"
    out = subprocess.run([sys.executable, "-m", "simgen.cli", "info", str(killed)], capture_output=True, text=True)
    assert out.returncode == 1 and "INCOMPLETE" in out.stdout
    assert subprocess.run(cmd + args + ["--out", str(killed)], capture_output=True).returncode == 0
    assert corpus.open(killed).complete
    assert corpus.content_digest(killed) == corpus.content_digest(ref)
