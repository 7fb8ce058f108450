"""Reliability of corpus stores: one writer per store, creation that survives a kill at any step, verify and
repair of damaged chunks, bad arguments named, cluster failures named, a resume key that holds the physics."""
from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

import simgen.corpus as corpus
from simgen import catalogs, registry
from simgen.cli import main
from simgen.errors import RecipeError, StoreError
from simgen.lease import LEASE_NAME, Lease, read_lease
from simgen.recipe import load_recipe
from simgen.simulator import Axis, Field, Simulator

CLI = [sys.executable, "-m", "simgen.cli"]


def small(**over):
    return load_recipe("peaks-demo", overrides={"config.n_points": 32, **over})


def quick(store, recipe=None, n=48, **kw):
    kw.setdefault("chunk_rows", 16)
    return corpus.build(recipe or small(), n, store, scheduler="synchronous", progress=False, **kw)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_lease(store, **fields):
    info = {"user": "someone", "host": socket.gethostname(), "pid": os.getpid(), "token": "feedbeef",
            "started": time.time(), "heartbeat": time.time(), "command": "simgen generate"}
    info.update(fields)
    os.makedirs(store, exist_ok=True)
    with open(os.path.join(store, LEASE_NAME), "w") as fh:
        json.dump(info, fh)


# ---------------------------------------------------------------------------------------------- 1. lease
def test_second_writer_refused_naming_the_holder_and_overwrite_never_touches_it(tmp_path):
    store = tmp_path / "s.zarr"
    quick(store)
    before = corpus.content_digest(store)
    with Lease(str(store)) as held:  # a live writer (this process) holds the store
        for kw in ({}, {"overwrite": True}):
            with pytest.raises(StoreError, match=rf"another simgen writer holds it: .*@{socket.gethostname()} "
                                                  rf"pid {os.getpid()}"):
                quick(store, small(seed=5), **kw)
        assert read_lease(str(store)).token == held.info.token
    assert corpus.content_digest(store) == before
    assert read_lease(str(store)) is None  # released


def test_stale_lease_dead_pid_is_taken_over_with_a_message(tmp_path, capsys):
    store = tmp_path / "d.zarr"
    write_lease(store, pid=dead_pid())
    s = quick(store)
    assert s.complete
    err = capsys.readouterr().err
    assert "taking over the stale writer lease" in err and "is dead" in err
    assert read_lease(str(store)) is None


def test_lease_heartbeat_age_and_other_host(tmp_path, capsys):
    store = tmp_path / "h.zarr"
    write_lease(store, host="elsewhere.example", pid=1, heartbeat=time.time())
    with pytest.raises(StoreError, match="elsewhere.example pid 1"):
        quick(store, lease_stale_s=60)
    write_lease(store, host="elsewhere.example", pid=1, heartbeat=time.time() - 5)
    assert quick(store, lease_stale_s=2).complete
    assert "no heartbeat for 5 s" in capsys.readouterr().err


def test_lease_renews_and_notices_a_takeover(tmp_path):
    store = str(tmp_path / "r.zarr")
    a = Lease(store, stale_after=0.5, heartbeat=0.05).acquire()
    t0 = read_lease(store).heartbeat
    time.sleep(0.3)
    assert read_lease(store).heartbeat > t0  # renewed in the background
    a.stop_heartbeat()
    time.sleep(0.6)
    b = Lease(store, stale_after=0.5, log=lambda m: None).acquire()  # a's heartbeat is stale: taken over
    with pytest.raises(StoreError, match="taken over"):
        a.check()
    a.release()  # must not remove b's lease
    assert read_lease(store).token == b.info.token
    b.release()


def test_lease_on_an_fsspec_object_store():
    pytest.importorskip("fsspec")
    store = f"memory://lease-test-{os.getpid()}/c.zarr"
    a = Lease(store).acquire()
    with pytest.raises(StoreError, match="another simgen writer"):
        Lease(store).acquire()
    assert read_lease(store).token == a.info.token
    a.release()
    assert read_lease(store) is None
    b = Lease(store).acquire()
    b.release()


def test_two_concurrent_generate_runs(tmp_path):
    """A build running in another process holds the store: a second `generate`, even with --overwrite and
    another seed, is refused by name, and the first completes untouched."""
    store = tmp_path / "c.zarr"
    args = ["generate", "peaks-demo", "--n", "4000", "--chunk-rows", "16", "--workers", "0", "--quiet",
            "--set", "config.n_points=256", "--out", str(store)]
    first = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while read_lease(str(store)) is None and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, "the first build ended before the second started"
    second = subprocess.run(CLI + args + ["--overwrite", "--set", "seed=9"], capture_output=True, text=True)
    assert second.returncode == 2 and "another simgen writer holds it" in second.stderr
    assert "Traceback" not in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    ref = quick(tmp_path / "ref.zarr", small(**{"config.n_points": 256}), n=4000)
    assert corpus.content_digest(store) == corpus.content_digest(ref.store)


# ---------------------------------------------------------------------------------------------- 2. creation
CREATION_STEPS = ["lease", "create:marker", "create:wiped", "create:group", "create:x", "create:y",
                  "create:params", "create:label", "create:axis", "create:names", "create:crc", "create:attrs",
                  "create:done", "chunk0:x", "chunk0:crc", "chunk2:y", "finalize:attrs", "finalize:consolidated"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    s = quick(tmp_path_factory.mktemp("ref") / "ref.zarr")
    return corpus.content_digest(s.store)


@pytest.mark.parametrize("step", CREATION_STEPS)
def test_crash_at_each_step_of_creation_then_rerun_is_byte_identical(tmp_path, monkeypatch, reference, step):
    store = tmp_path / "k.zarr"
    monkeypatch.setattr(corpus, "_CRASH_AT", step)
    with pytest.raises(corpus._InjectedCrash):
        quick(store)
    monkeypatch.setattr(corpus, "_CRASH_AT", None)
    # what is left never looks complete unless it is; `simgen info` names the state without a traceback
    try:
        c = corpus.open(store)
        assert c.complete is step.startswith("finalize")  # complete only when every chunk was written
    except StoreError as exc:
        assert "interrupted" in str(exc) or "not a simgen corpus" in str(exc) or "not found" in str(exc)
    assert main(["info", str(store)]) in (0, 1, 2)
    # the crashed writer left its lease behind (a killed process does): stale once its heartbeat is old
    lease = read_lease(str(store))
    assert lease is not None and lease.pid == os.getpid()
    write_lease(store, token=lease.token, heartbeat=time.time() - 100)
    s = quick(store, lease_stale_s=30)
    assert s.complete and corpus.open(store).verify() == []
    assert corpus.content_digest(store) == reference


@pytest.mark.parametrize("step", ["create:group", "create:x"])
def test_kill_during_creation_then_same_command_completes(tmp_path, step):
    """A real kill (os._exit, no clean-up) after zarr.json / x are written; the re-run of the same command
    takes over the dead writer's lease and completes the store byte-identically."""
    args = ["generate", "peaks-demo", "--n", "48", "--chunk-rows", "16", "--workers", "0", "--quiet",
            "--set", "config.n_points=32"]
    killed = tmp_path / "killed.zarr"
    env = {**os.environ, "SIMGEN_CRASH_AT": step}
    r = subprocess.run(CLI + args + ["--out", str(killed)], env=env, capture_output=True, text=True)
    assert r.returncode == 137
    r = subprocess.run(CLI + ["info", str(killed)], capture_output=True, text=True)
    assert r.returncode == 2 and "interrupted" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(CLI + args + ["--out", str(killed)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "taking over the stale writer lease" in r.stderr
    ref = quick(tmp_path / "ref.zarr")
    assert corpus.content_digest(killed) == corpus.content_digest(ref.store)


def test_foreign_directory_is_not_touched(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not a simgen corpus"):
        quick(d)
    assert sorted(os.listdir(d)) == ["notes.txt"]


# ---------------------------------------------------------------------------------------------- 3. verify/repair
def _damage(store):
    """Truncate chunk 1 of x, flip a byte of chunk 2 of x."""
    p1 = os.path.join(store, "x", "c", "1", "0")
    data = open(p1, "rb").read()
    open(p1, "wb").write(data[:100])
    p2 = os.path.join(store, "x", "c", "2", "0")
    data = bytearray(open(p2, "rb").read())
    data[40] ^= 0xFF
    open(p2, "wb").write(bytes(data))


def test_verify_reports_truncated_and_flipped_chunks_and_repair_rebuilds_them(tmp_path, capsys, reference):
    store = str(tmp_path / "v.zarr")
    quick(store)
    _damage(store)
    rep = corpus.open(store).verify_report()
    assert sorted(rep) == [1, 2] and "unreadable" in rep[1] and "CRC" in rep[2]
    assert main(["info", store, "--verify"]) == 1
    out = capsys.readouterr().out
    assert "2 bad chunks: [1, 2]" in out and "bad chunk  1: unreadable" in out and "simgen repair" in out
    assert main(["repair", store, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "chunk 1: unreadable" in out and "built 32 samples (2 chunks)" in out
    assert corpus.open(store).verify() == [] and corpus.content_digest(store) == reference
    assert main(["repair", store]) == 0 and "nothing to repair" in capsys.readouterr().out


def test_training_refuses_a_corrupt_store_by_name(tmp_path):
    pytest.importorskip("torch")
    from train.data import open_store
    store = str(tmp_path / "t.zarr")
    quick(store)
    open_store(store, verify=True)
    _damage(store)
    with pytest.raises(StoreError, match=r"t\.zarr': corrupted: chunk\(s\) \[1, 2\].*simgen repair"):
        open_store(store, verify=True)


# ---------------------------------------------------------------------------------------------- 5. arguments
def test_n_accepts_1e6_refuses_0_and_names_it(tmp_path, capsys):
    from simgen.cli import build_parser
    args = build_parser().parse_args(["generate", "peaks-demo", "--n", "1e6", "--out", "x"])
    assert args.n == 1_000_000
    for bad in ("0", "-3", "1.5", "abc", "nan"):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(["generate", "peaks-demo", "--n", bad, "--out", "x"])
        assert e.value.code == 2
        assert f"--n: got '{bad}'" in capsys.readouterr().err
    assert load_recipe("peaks-demo", overrides={"corpus.n": "1e6"}).corpus["n"] == 1_000_000
    with pytest.raises(RecipeError, match="corpus.n"):
        load_recipe("peaks-demo", overrides={"corpus.n": 0})
    with pytest.raises(StoreError, match="n: got 0"):
        corpus.build(small(), 0, tmp_path / "z.zarr", progress=False)


def test_store_larger_than_the_disk_is_refused_before_anything_is_written(tmp_path, capsys):
    store = tmp_path / "big.zarr"
    assert main(["generate", "peaks-demo", "--n", "1e12", "--chunk-rows", "1e6", "--out", str(store),
                 "--workers", "0", "--set", "config.n_points=32"]) == 2
    err = capsys.readouterr().err
    assert "n: got 1,000,000,000,000 samples" in err and "free at" in err
    assert not store.exists()
    assert main(["generate", "peaks-demo", "--n", "1e15", "--out", str(store), "--workers", "0"]) == 2
    assert "chunks" in capsys.readouterr().err and not store.exists()


def test_recipe_path_that_is_missing_or_a_directory_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "peaks-demo.yaml").mkdir()
    for arg, words in (("peaks-demo.yaml", "not a directory"), ("sub/peaks-demo.yaml", "no such file"),
                       (str(tmp_path / "peaks-demo"), "no such file")):
        assert main(["generate", arg, "--n", "16", "--out", "o.zarr", "--workers", "0"]) == 2
        err = capsys.readouterr().err
        assert arg in err and words in err, err
    assert not (tmp_path / "o.zarr").exists()
    with pytest.raises(RecipeError, match="catalog recipe 'peaks-demo' exists"):
        load_recipe("nowhere/peaks-demo.yaml")


def test_all_fixed_recipe_is_valid_and_builds(tmp_path):
    fixed = {"simulator": "peaks", "seed": 3, "config": {"n_points": 16},
             "params": {"center": 50.0, "width": 4.0, "amplitude": 1.0, "eta": 0.5, "noise": 0.01}}
    r = load_recipe(fixed)
    s = quick(tmp_path / "f.zarr", r, n=20)
    c = corpus.open(s.store)
    assert s.complete and c.param_names == () and c.y.shape == (20, 0) and c.verify() == []
    assert main(["info", s.store, "--verify"]) == 0


def test_relative_out_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = quick("rel.zarr", n=16)
    assert os.path.isabs(s.store) and s.store == str(tmp_path / "rel.zarr")


# ---------------------------------------------------------------------------------------------- 6. cluster
def test_no_live_worker_stops_the_build_and_leaves_it_resumable(tmp_path, reference):
    from distributed import Client, LocalCluster
    store = tmp_path / "w.zarr"
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        t0 = time.monotonic()
        with pytest.raises(StoreError, match=r"no Dask worker alive for 1 s.*resumable"):
            corpus.build(small(), 48, store, chunk_rows=16, client=client, progress=False, worker_timeout=1)
        assert time.monotonic() - t0 < 30
    assert not corpus.open(store).complete and read_lease(str(store)) is None
    assert quick(store).complete and corpus.content_digest(store) == reference


def test_store_not_visible_from_workers_is_refused(tmp_path):
    from distributed import Client, LocalCluster
    store = str(tmp_path / "vis.zarr")
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        lease = Lease(store).acquire()
        corpus._check_visible(client, store, lease)  # the same filesystem: visible
        real = lease.info.token
        lease.info.token = "not-what-workers-see"
        with pytest.raises(StoreError, match=r"not visible from worker\(s\) (tcp|inproc)://"):
            corpus._check_visible(client, store, lease)
        lease.info.token = real
        lease.release()


def test_unreachable_scheduler_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    r = subprocess.run(CLI + ["generate", "peaks-demo", "--n", "16", "--out", str(tmp_path / "u.zarr"),
                              "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("simgen: error:")]
    assert len(lines) == 1 and f"--scheduler tcp://127.0.0.1:{port}: cannot reach" in lines[0]


# ---------------------------------------------------------------------------------------------- resume key
@functools.lru_cache(maxsize=None)
def _toy_table():
    import yaml
    with open(catalogs.find("toy/table.yaml")) as fh:
        return yaml.safe_load(fh)


class ToySimulator(Simulator):
    """A one-parameter simulator whose output scale comes from a (cached) catalog table."""
    name = "toy-catalog"
    version = "1"
    CONFIG = {"n_points": Field(kind="int", low=2, high=64, default=8)}
    PARAMS = {"a": Field(units="arb.", low=0.0, high=10.0)}

    @property
    def axis(self):
        return Axis.linear("t", "s", 0, 1, self.config["n_points"])

    def simulate(self, params, rng=None):
        scale = float(_toy_table()["scale"])
        t = self.axis.coords[0]
        return (scale * params["a"][:, None] * t[None, :]).astype(np.float32)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    cat = tmp_path / "cat"
    (cat / "toy").mkdir(parents=True)
    (cat / "toy" / "table.yaml").write_text("scale: 2.0\n")
    monkeypatch.setattr(catalogs, "_user_dirs", [cat])
    registry.register("toy-catalog", ToySimulator)
    monkeypatch.setattr(ToySimulator, "version", "1")
    yield cat, load_recipe({"simulator": "toy-catalog", "seed": 1, "params": {"a": {"uniform": [0, 10]}}})
    registry._extra.pop("toy-catalog", None)


def test_resume_key_holds_catalog_digests_and_simulator_version(tmp_path, toy, monkeypatch, capsys):
    cat, recipe = toy
    store = str(tmp_path / "toy.zarr")
    _toy_table()  # cached before the build: the build must still see (and record) the file
    quick(store, recipe, n=32)
    meta = corpus.open(store).meta
    assert list(meta["catalog_files"]) == ["toy/table.yaml"] and meta["simulator_version"] == "1"
    assert main(["info", store]) == 0
    out = capsys.readouterr().out
    assert "simulator toy-catalog 1" in out and "catalog    toy/table.yaml sha256:" in out
    # an interrupted store with an unchanged catalog resumes
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    g["_chunk_crc32"][1] = -1
    assert quick(store, recipe, n=32).chunks_built == 1
    # a catalog change is refused by name, then --overwrite rebuilds
    g["_chunk_crc32"][1] = -1
    (cat / "toy" / "table.yaml").write_text("scale: 3.0\n")
    with pytest.raises(StoreError, match=r"physics changed.*catalog file 'toy/table.yaml' changed"):
        quick(store, recipe, n=32)
    s = quick(store, recipe, n=32, overwrite=True)
    assert s.complete and s.chunks_built == 2
    np.testing.assert_allclose(corpus.open(store).x[5], 3.0 * corpus.open(store).params[5, 0]
                               * np.linspace(0, 1, 8), rtol=1e-6)
    # a simulator version bump is refused by name
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    g["_chunk_crc32"][0] = -1
    monkeypatch.setattr(ToySimulator, "version", "2")
    with pytest.raises(StoreError, match=r"simulator 'toy-catalog' version 1 -> 2"):
        quick(store, recipe, n=32)


def test_real_modality_records_its_catalog_files():
    r = load_recipe("exelfs-ti-oxides")
    corpus._simulator_for(r.to_dict(), r.digest(), restart=True)
    used = corpus._catalog_used(r.digest())
    assert "exafs/eels_systems.yaml" in used and all(len(v) == 64 for v in used.values())


def test_store_without_catalog_digests_is_not_resumed(tmp_path):
    store = str(tmp_path / "old.zarr")
    quick(store)
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    meta = dict(g.attrs["simgen"])
    del meta["catalog_files"]
    g.attrs["simgen"] = meta
    g["_chunk_crc32"][0] = -1
    with pytest.raises(StoreError, match="records no catalog file digests"):
        quick(store)


# ---------------------------------------------------------------------------------------------- registry
def test_list_shows_a_plugin_that_fails_to_import(tmp_path, monkeypatch, capsys):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [simgen.simulators]
        brokensim = no_such_module_for_simgen_tests:Sim
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.available()["brokensim"].startswith("field 'simulator'")
    assert main(["list"]) == 1
    out = capsys.readouterr().out
    assert "brokensim" in out and "FAILED TO LOAD" in out and "ModuleNotFoundError" in out
    assert "peaks" in out and "peaks-demo" in out


def test_version_flags():
    r = subprocess.run(CLI + ["--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("simgen ")
    pytest.importorskip("torch")
    r = subprocess.run([sys.executable, "-m", "train.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("simtrain ")
