#!/usr/bin/env python
"""Corpus engine overhead and scaling, measured in one run.

1. raw disk write rate: large sequential writes + fsync into the output directory;
2. the example simulator's own rate with no I/O (same worker processes, chunks simulated and dropped);
3. the corpus write rate for >= 2 GB uncompressed (simgen.corpus.build on a local dask.distributed cluster);
   engine ratio = corpus rate / min(disk rate, simulator rate)   (goal >= 0.7);
4. a compute-bound recipe (EPR powder spectra if available, else a large peaks spectrum; ``--recipe`` picks
   others, e.g. pdf-bulk or swelling-steels) with 1 and 2 workers: samples/s, samples per worker CPU-second (what
   one core delivers, whatever else runs on the machine) and the speed-up 2-worker / 1-worker (goal >= 1.8 on an
   otherwise idle 2-core machine).

Usage: python scripts/bench_corpus.py [--gb 2.0] [--dir /tmp/simgen-bench] [--workers 2]
       python scripts/bench_corpus.py --compute-only --recipe pdf-bulk --recipe swelling-steels [--compute-workers 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def disk_rate(directory: Path, total_bytes: int = 2 * 2**30, block: int = 64 * 2**20) -> float:
    buf = np.random.default_rng(0).bytes(block)
    path = directory / "disk-bench.bin"
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        written = 0
        while written < total_bytes:
            f.write(buf)
            written += block
        f.flush()
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return written / dt


def _simulate_only(recipe_dict, digest, n, chunk_rows, k):
    from simgen.corpus import _chunk_arrays, _pin_threads, _simulator_for, simulate_rows
    _pin_threads()
    sim = _simulator_for(recipe_dict, digest)
    start, stop = k * chunk_rows, min(n, (k + 1) * chunk_rows)
    params, outputs = simulate_rows(sim, int(recipe_dict["seed"]), start, stop)
    arrays = _chunk_arrays(sim, params, outputs)
    return sum(a.nbytes for a in arrays.values())


def simulator_rate(client, recipe, n, chunk_rows) -> tuple[float, float]:
    """(samples/s, bytes/s) of simulation alone, over the same chunks and workers as the build."""
    rd, dg = recipe.to_dict(), recipe.digest()
    n_chunks = -(-n // chunk_rows)
    # warm the workers (numba compile, simulator construction)
    client.gather(client.map(_simulate_only, [rd] * 2, [dg] * 2, [2 * chunk_rows] * 2, [chunk_rows] * 2, [0, 1],
                             pure=False))
    t0 = time.perf_counter()
    futs = client.map(_simulate_only, [rd] * n_chunks, [dg] * n_chunks, [n] * n_chunks, [chunk_rows] * n_chunks,
                      list(range(n_chunks)), pure=False)
    nbytes = sum(client.gather(futs))
    dt = time.perf_counter() - t0
    return n / dt, nbytes / dt


def cluster(workers):
    from simgen.cli import _start_cluster
    return _start_cluster(workers)


def main():
    from simgen import corpus
    from simgen.recipe import load_recipe

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0, help="uncompressed corpus size for the write test")
    ap.add_argument("--dir", default=None, help="directory for the stores (default: a temp dir)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--compute-n", type=int, default=None, help="samples for the compute-bound test")
    ap.add_argument("--compute-only", action="store_true", help="only the 1- vs 2-worker compute-bound test")
    ap.add_argument("--recipe", action="append", default=None,
                    help="recipe(s) for the compute-bound test (repeatable; default epr-oxides)")
    ap.add_argument("--compute-workers", default="1,2",
                    help="worker counts for the compute-bound test, comma-separated (default 1,2)")
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="simgen-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"bench directory {base}, {args.workers} workers, {os.cpu_count()} cores")

    if not args.compute_only:
        io_bound(args, base)
    for name in (args.recipe or [None]):
        compute_bound(args, base, name)
    if args.dir is None:
        shutil.rmtree(base, ignore_errors=True)


def io_bound(args, base):
    from simgen import corpus
    from simgen.recipe import load_recipe

    d = disk_rate(base)
    print(f"[1] disk: sequential write + fsync        {d / 1e9:6.2f} GB/s")

    recipe = load_recipe("peaks-demo")
    sample_bytes = 1024 * 4 + 3 * 4 + 7 * 8 + 2
    n = int(args.gb * 1e9 / sample_bytes) + 1
    chunk_rows = corpus.default_chunk_rows(sample_bytes, n)
    client, lc = cluster(args.workers)
    try:
        s_rate, s_bytes = simulator_rate(client, recipe, n, chunk_rows)
        print(f"[2] simulator alone (no I/O)              {s_rate:,.0f} samples/s = {s_bytes / 1e9:6.2f} GB/s")
        store = base / "peaks.zarr"
        shutil.rmtree(store, ignore_errors=True)
        summary = corpus.build(recipe, n, store, client=client, progress=False)
    finally:
        client.close()
        lc.close()
    c_bytes = summary.bytes_written / summary.seconds
    print(f"[3] corpus build, {summary.bytes_written / 1e9:.2f} GB uncompressed in {summary.n_chunks} chunks: "
          f"{summary.samples_per_s:,.0f} samples/s = {c_bytes / 1e9:6.2f} GB/s")
    bound = min(d, s_bytes)
    print(f"    engine ratio corpus / min(disk, simulator) = {c_bytes / bound:.2f}   (goal >= 0.7)")
    shutil.rmtree(store, ignore_errors=True)


def _cpu_seconds() -> float:
    """User + system CPU time of the calling (worker) process so far."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def compute_bound(args, base, recipe_name=None):
    from simgen import corpus
    from simgen.recipe import load_recipe

    if recipe_name:
        heavy = load_recipe(recipe_name)
        name = recipe_name
    else:
        try:
            heavy = load_recipe("epr-oxides")
            name = "epr-oxides"
        except Exception:
            heavy = load_recipe("peaks-demo", overrides={"config.n_points": 200_000})
            name = "peaks-demo with 200k points"
    sim = heavy.build()
    corpus.simulate_rows(sim, heavy.seed, 0, 16)  # compile
    t0 = time.perf_counter()
    corpus.simulate_rows(sim, heavy.seed, 16, 48)
    per = (time.perf_counter() - t0) / 32
    rows = 64  # ~0.1-0.5 s tasks: the per-task scheduling and store-opening cost stays small
    n_c = args.compute_n or max(4 * rows, int(30.0 / max(per, 1e-6)) // rows * rows)  # ~30 s on one worker
    workers = [int(w) for w in str(args.compute_workers).split(",") if w.strip()]
    rates = {}
    for w in workers:
        client, lc = cluster(w)
        try:
            store = base / f"heavy{w}.zarr"
            shutil.rmtree(store, ignore_errors=True)
            corpus.build(heavy, 32, base / "warm.zarr", chunk_rows=16, client=client, progress=False,
                         overwrite=True)
            cpu0 = sum(client.run(_cpu_seconds).values())
            s = corpus.build(heavy, n_c, store, chunk_rows=rows, client=client, progress=False)
            cpu = sum(client.run(_cpu_seconds).values()) - cpu0
            rates[w] = s.samples_per_s
            print(f"[4] compute-bound ({name}), {w} worker(s): {s.samples_per_s:,.1f} samples/s "
                  f"({n_c} samples); {n_c / max(cpu, 1e-9):,.1f} samples per worker CPU-second "
                  f"({cpu:.1f} CPU-s in the workers: unaffected by other jobs taking the cores)")
        finally:
            client.close()
            lc.close()
            shutil.rmtree(base / f"heavy{w}.zarr", ignore_errors=True)
    if 1 in rates and 2 in rates:
        print(f"    speed-up 2 workers / 1 worker = {rates[2] / rates[1]:.2f}   (goal >= 1.8; needs an idle machine)")


if __name__ == "__main__":
    main()
