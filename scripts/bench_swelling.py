"""Benchmark: porespy's polydisperse_spheres (binary 2-D image) vs simgen's swelling simulator (TEM Fresnel
contrast + instance mask + labels) at 512^2, side by side on one core.  Prints CPU time per image (best of
``--repeat`` batches of ``--n`` images, first call excluded), the ratio and the goal.

    python scripts/bench_swelling.py [--n 5] [--repeat 3]
"""
from __future__ import annotations

import bench_common  # noqa: F401  (first: one thread everywhere)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import simgen  # noqa: E402


def best(fn, n, repeat):
    ts = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        ts.append((time.process_time() - t) / n)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5, help="images per batch")
    ap.add_argument("--repeat", type=int, default=3, help="batches (the best is kept)")
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    print(bench_common.pin())
    sim = simgen.load_recipe("swelling-steels", overrides={"config.image_size": a.size}).build()
    params = sim.sample_params(a.n, np.random.default_rng(1))
    sim.simulate_outputs({k: v[:1] for k, v in params.items()})  # compile
    out = sim.simulate_outputs(params)
    nvoid = np.mean([len(np.unique(m)) - 1 for m in out["mask"]])
    try:
        import porespy as ps
        from scipy.stats import lognorm
    except ImportError:
        ours = best(lambda: sim.simulate_outputs(params), a.n, a.repeat)
        print("porespy not installed (pip install porespy into the venv, extra 'peers'): ours only")
        print(f"simgen swelling {a.size}^2: {ours * 1e3:.1f} ms/image ({nvoid:.0f} voids)")
        return
    dist = lognorm(s=0.35, scale=8.0)  # radii in px, like ours at 1 nm/px
    ps.generators.polydisperse_spheres(shape=[a.size, a.size], porosity=0.8, dist=dist, r_min=2, seed=0)

    def peer():
        for k in range(a.n):
            ps.generators.polydisperse_spheres(shape=[a.size, a.size], porosity=0.8, dist=dist, r_min=2, seed=k)
    # interleaved, so both see the same load
    to, tp = [], []
    for _ in range(a.repeat):
        to.append(best(lambda: sim.simulate_outputs(params), a.n, 1))
        tp.append(best(peer, a.n, 1))
    ours, theirs = min(to), min(tp)
    goal = bench_common.GOALS["micrograph"]
    print(f"porespy {ps.__version__} polydisperse_spheres {a.size}^2 (binary only): {theirs * 1e3:.1f} ms/image")
    print(f"simgen swelling {a.size}^2 (TEM contrast + mask + labels, {nvoid:.0f} voids/image): "
          f"{ours * 1e3:.1f} ms/image")
    print(f"ratio porespy/simgen (CPU time, one core, best of {a.repeat}): {theirs / ours:.1f}x   "
          f"{bench_common.verdict(theirs / ours, goal)}")


if __name__ == "__main__":
    main()
