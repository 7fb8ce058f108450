"""Benchmark: porespy's polydisperse_spheres (binary 2-D image) vs simgen's swelling simulator (TEM Fresnel
contrast + instance mask + labels) at 512^2, side by side.  Prints times per image and the ratio.

    .venv/bin/python scripts/bench_swelling.py [--n 10]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import simgen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    sim = simgen.load_recipe("swelling-steels", overrides={"config.image_size": a.size}).build()
    params = sim.sample_params(a.n, np.random.default_rng(1))
    sim.simulate_outputs({k: v[:1] for k, v in params.items()})  # compile
    t0 = time.perf_counter()
    out = sim.simulate_outputs(params)
    ours = (time.perf_counter() - t0) / a.n
    nvoid = np.mean([len(np.unique(m)) - 1 for m in out["mask"]])
    try:
        import porespy as ps
        from scipy.stats import lognorm
    except ImportError:
        print("porespy not installed (pip install porespy into the venv, extra 'peers'): ours only")
        print(f"simgen swelling {a.size}^2: {ours * 1e3:.1f} ms/image ({nvoid:.0f} voids)")
        return
    dist = lognorm(s=0.35, scale=8.0)  # radii in px, like ours at 1 nm/px
    ps.generators.polydisperse_spheres(shape=[a.size, a.size], porosity=0.8, dist=dist, r_min=2, seed=0)
    t0 = time.perf_counter()
    for k in range(a.n):
        ps.generators.polydisperse_spheres(shape=[a.size, a.size], porosity=0.8, dist=dist, r_min=2, seed=k)
    peer = (time.perf_counter() - t0) / a.n
    print(f"porespy {ps.__version__} polydisperse_spheres {a.size}^2 (binary only): {peer * 1e3:.1f} ms/image")
    print(f"simgen swelling {a.size}^2 (TEM contrast + mask + labels, {nvoid:.0f} voids/image): "
          f"{ours * 1e3:.1f} ms/image")
    print(f"ratio porespy/simgen: {peer / ours:.1f}x")


if __name__ == "__main__":
    main()
