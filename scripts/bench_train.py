#!/usr/bin/env python
"""Loader vs training throughput (samples/s) for a 1-D and a 2-D corpus, and their ratio.

The loader must sustain >= 5x what training consumes, so the model, not the data, sets the pace.

* 1-D: the ``peaks-demo`` recipe (1024-point spectra); models ``mlp`` (the 64-32-16 per-target regressor) and
  ``resnet1d`` (ResNet-18, width 16).
* 2-D: the ``swelling-steels`` recipe at 128 x 128 px (1.5 nm pixels) when the swelling simulator is available,
  else a tiny Gaussian-blob image simulator defined here; model ``cnn2d``.

"loader alone" iterates :class:`train.data.ChunkShuffleLoader` (chunk-block reads, in-memory shuffle,
normalisation, tensors) over the training split without a model; "training alone" runs forward/backward/Adam
steps on batches already in memory.  For reference the script also times random-row batches read straight from
Zarr (``--random-rows``), the access pattern the chunk loader replaces.

    python scripts/bench_train.py [--workdir /tmp/simtrain-bench] [--workers 0 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import simgen.corpus as sc
from simgen.recipe import load_recipe
from simgen.simulator import Axis, Field, Simulator

from train.data import (ChunkShuffleLoader, CorpusDataset, fit_normalisers, holdout_split, parse_task)
from train.models import get_model
from train.run import resolve_device


class BlobImages(Simulator):
    """Fallback 2-D test simulator: one Gaussian blob per image plus noise (bench only)."""

    name, version, description = "bench-blobs", "1", "Gaussian blob images (bench fallback)"
    x_name, x_units = "intensity", "arb."
    CONFIG = {"size": Field(kind="int", low=8, high=1024, default=128)}
    PARAMS = {"cx": Field(units="px"), "cy": Field(units="px"), "sigma": Field(units="px", low=0.0, low_open=True),
              "noise": Field(units="arb.", low=0.0, default=0.05)}

    def setup(self):
        n = self.config["size"]
        self._axis = Axis.image(n, n, 1.0, "px")

    @property
    def axis(self):
        return self._axis

    def simulate(self, params, rng=None):
        p = self.prepare_params(params, rng)
        n = self.n_of(p)
        size = self.config["size"]
        g = np.arange(size, dtype=np.float64)
        out = np.empty((n, size, size), dtype=np.float32)
        for i in range(n):
            r2 = (g[None, :] - p["cx"][i]) ** 2 + (g[:, None] - p["cy"][i]) ** 2
            out[i] = np.exp(-0.5 * r2 / p["sigma"][i] ** 2) + self.sample_rng(p, i).normal(0, p["noise"][i],
                                                                                            (size, size))
        return out


def blob_recipe(size=128):
    from simgen import registry
    registry.register("bench-blobs", BlobImages)
    h = size - 1
    return {"simulator": "bench-blobs", "seed": 3, "config": {"size": size},
            "params": {"cx": {"uniform": [0.2 * h, 0.8 * h]}, "cy": {"uniform": [0.2 * h, 0.8 * h]},
                       "sigma": {"uniform": [2.0, 10.0]}, "noise": {"uniform": [0.01, 0.1]}},
            "targets": ["cx", "cy", "sigma"]}


def image_recipe():
    try:
        d = load_recipe("swelling-steels").to_dict()
        d["config"]["image_size"] = 128
        d["config"]["pixel_size"] = 1.5
        load_recipe(d).build()
        return d, "swelling-steels (128 x 128 px, 1.5 nm)"
    except Exception as exc:  # simulator not landed / broken: fall back to the script's own
        print(f"  (swelling unavailable: {str(exc)[:100]}; using the bench's blob images)")
        return blob_recipe(), "bench-blobs (128 x 128 px)"


def ensure_store(recipe, n, path: Path) -> str:
    try:
        c = sc.open(path)
        if c.complete and c.n == n:
            return str(path)
    except Exception:
        pass
    t = time.perf_counter()
    s = sc.build(recipe, n, path, overwrite=True, progress=False, scheduler="threads")
    print(f"  built {path.name}: {s.n} samples in {time.perf_counter() - t:.1f} s (chunk_rows {s.chunk_rows})")
    return str(path)


def bench_loader(store, task, norm, rows, batch, workers, seconds, mix_chunks=2):
    ds = CorpusDataset(store, split=rows, task=task, normaliser=norm)
    ld = ChunkShuffleLoader(ds, batch_size=batch, seed=0, num_workers=workers, mix_chunks=mix_chunks)
    n, epoch = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ld.set_epoch(epoch)
        for b in ld:
            n += len(b["x"])
            if time.perf_counter() - t0 > seconds:
                break
        epoch += 1
    return n / (time.perf_counter() - t0)


def bench_random_rows(store, batch, n_batches=5):
    c = sc.open(store)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        idx = np.sort(rng.choice(c.n, batch, replace=False))
        c.x.get_orthogonal_selection((idx,) + (slice(None),) * (c.x.ndim - 1))
    return n_batches * batch / (time.perf_counter() - t0)


def bench_training(model_name, in_shape, task, batches, device, seconds, **kw):
    torch.manual_seed(0)
    m = get_model(model_name, in_shape, len(task.targets), len(task.classes) if task.classify else 0, **kw)
    m.to(device).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    from train.fit import masked_loss

    def step(b):
        loss, _ = masked_loss(m(b["x"]), b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(batches[0])  # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, i = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = batches[i % len(batches)]
        step(b)
        n += len(b["x"])
        i += 1
        if device.type == "cuda" and i % 10 == 0:
            torch.cuda.synchronize()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def case(label, recipe, n, path, task_spec, models, args, device):
    print(f"\n== {label}")
    store = ensure_store(recipe, n, path)
    c = sc.open(store)
    task = parse_task(task_spec, c)
    sp = holdout_split(c.n, c.chunk_rows, val=0.1, test=0.1, seed=0)
    norm = fit_normalisers(c, sp["train"].rows, task, x_mode="global")
    in_shape = tuple(c.x.shape[1:])
    print(f"  store: n={c.n}, sample {in_shape}, chunk_rows={c.chunk_rows}, batch {args.batch}")
    rates = {}
    for w in args.workers:
        rates[w] = bench_loader(store, task, norm, sp["train"], args.batch, w, args.seconds)
        print(f"  loader alone (ChunkShuffleLoader, {w} workers): {rates[w]:12,.0f} samples/s "
              f"({rates[w] / args.batch:,.0f} batches/s)")
    if args.random_rows:
        rr = bench_random_rows(store, args.batch)
        print(f"  random rows from Zarr (reference):          {rr:12,.0f} samples/s ({rr / args.batch:,.1f} batches/s)")
    best_w = max(rates, key=rates.get)
    ds = CorpusDataset(store, split=sp["train"], task=task, normaliser=norm)
    batches = []
    for b in ChunkShuffleLoader(ds, batch_size=args.batch, seed=1):
        batches.append(b)
        if len(batches) >= 8:
            break
    out = []
    for name, kw in models:
        tr = bench_training(name, in_shape, task, batches, device, args.seconds, **kw)
        ratio = rates[best_w] / tr
        verdict = "OK" if ratio >= 5 else "BELOW 5x"
        print(f"  training alone ({name} {kw or ''}, {device}): {tr:12,.0f} samples/s -> loader/training = "
              f"{ratio:,.1f}x [{verdict}]")
        out.append((label, name, rates[best_w], tr, ratio))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=os.environ.get("SIMTRAIN_BENCH_DIR", "/tmp/simtrain-bench"))
    ap.add_argument("--n1d", type=int, default=20000)
    ap.add_argument("--n2d", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for training (default: torch's)")
    ap.add_argument("--random-rows", action="store_true", help="also time random-row batches from Zarr")
    ap.add_argument("--skip-2d", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    print(f"simtrain bench: torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"{os.cpu_count()} cores")
    results = case("1-D: peaks-demo (1024 points)", "peaks-demo", args.n1d, wd / "peaks-demo.zarr", "both",
                   [("mlp", {}), ("resnet1d", {})], args, device)
    if not args.skip_2d:
        rec, label = image_recipe()
        tag = "swelling" if rec.get("simulator") == "swelling" else "blobs"
        results += case(f"2-D: {label}", rec, args.n2d, wd / f"{tag}-128.zarr", "regress", [("cnn2d", {})], args,
                        device)
    print("\nsummary (loader samples/s, training samples/s, ratio):")
    for label, name, lr, tr, ratio in results:
        print(f"  {label.split(':')[0]:4s} {name:9s} loader {lr:11,.0f}  training {tr:10,.0f}  ratio {ratio:7.1f}x"
              f"  {'OK' if ratio >= 5 else 'BELOW 5x'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
