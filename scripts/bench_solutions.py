"""Benchmark: the ``solutions`` simulator against plain NumPy linear mixtures of the same bands, per recipe, on one
core.  Prints spectra per second and the ratio of costs (goal: the nonlinear physics at most 3x the linear mixture).

Four timings per recipe, all for the same drawn compositions:

* ``full``       simgen: speciation, composition-dependent bands, water effects and the recipe's instrument
                 (resolution, response, fluorescence, noise, normalisation / slit, stray light, saturation);
* ``physics``    simgen with every instrument nuisance at its neutral default (what the chemistry costs);
* ``linear/eval`` NumPy: the recipe's bands at their catalog positions and widths, evaluated for every spectrum
                 and weighted by the total ion concentrations (no pairing, shifts or instrument);
* ``linear/basis`` NumPy: the same linear mixture with the band basis evaluated once per batch and one matrix
                 product (the cheapest possible linear generator).

    .venv/bin/python scripts/bench_solutions.py [--n 512] [--recipes solutions-000-raman ...]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import simgen  # noqa: E402
from simgen.solutions.chemistry import area_to_height  # noqa: E402
from simgen.solutions.simulator import CONC_PARAMS, RAMAN_PARAMS, UV_PARAMS  # noqa: E402

RECIPES = ["solutions-000-raman", "solutions-000-uvvis", "solutions-nitrate-sulfate-raman",
           "solutions-transition-metals-uvvis"]


def linear_setup(sim):
    """Band rows of the component ions present in the recipe and of water, their x-grid and weights."""
    T = sim.table
    raman = sim.config["measurement"] == "raman"
    b = T.raman if raman else T.uvvis
    K = len(T.components)
    keep = (b.species < K) | (b.species == T.n_species)
    x = sim.axis.coords[0] if raman else 1e7 / sim.axis.coords[0]
    unit = b.strength * (area_to_height(b.fwhm, b.eta) if raman else 1.0)
    return x, b.species[keep], b.pos[keep], b.fwhm[keep], b.eta[keep], unit[keep]


def profiles(x, pos, fwhm, eta):
    d2 = ((x[None, :] - pos[:, None]) / fwhm[:, None]) ** 2
    return (1 - eta[:, None]) * np.exp(-4 * np.log(2) * d2) + eta[:, None] / (1 + 4 * d2)


def weights(sim, conc, species):
    n = len(conc)
    cw = np.full((n, 1), 55.508 * 0.99705)
    full = np.concatenate([conc, np.zeros((n, sim.table.n_species - conc.shape[1])), cw], axis=1)
    return full[:, species]


def linear_eval(sim, conc, setup):
    x, species, pos, fwhm, eta, unit = setup
    w = weights(sim, conc, species) * unit
    out = np.empty((len(conc), len(x)), dtype=np.float32)
    for i in range(len(conc)):
        on = w[i] != 0
        out[i] = w[i, on] @ profiles(x, pos[on], fwhm[on], eta[on])
    return out


def linear_basis(sim, conc, setup):
    x, species, pos, fwhm, eta, unit = setup
    basis = profiles(x, pos, fwhm, eta) * unit[:, None]
    return (weights(sim, conc, species) @ basis).astype(np.float32)


def timed(fn, reps):
    fn()  # compile / warm
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512, help="spectra per timed batch")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (the best is kept)")
    ap.add_argument("--recipes", nargs="*", default=RECIPES)
    a = ap.parse_args()
    try:
        import numba
        numba.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass
    print(f"one core, {a.n} spectra per batch, best of {a.reps}; spectra/s (higher is better)")
    print(f"{'recipe':36s} {'points':>6s} {'full':>9s} {'physics':>9s} {'lin/eval':>9s} {'lin/basis':>9s} "
          f"{'physics/eval':>12s} {'full/eval':>9s} {'physics/basis':>13s}")
    for name in a.recipes:
        sim = simgen.load_recipe(name).build()
        p = sim.sample_params(a.n, np.random.default_rng(7))
        neutral = dict(p)
        for k, spec in {**RAMAN_PARAMS, **UV_PARAMS}.items():
            neutral[k] = np.full(a.n, spec.default)
        conc = np.stack([p[k] for k in CONC_PARAMS], axis=1)
        setup = linear_setup(sim)
        t_full = timed(lambda: sim.simulate(p), a.reps) / a.n
        t_phys = timed(lambda: sim.simulate(neutral), a.reps) / a.n
        t_eval = timed(lambda: linear_eval(sim, conc, setup), a.reps) / a.n
        t_basis = timed(lambda: linear_basis(sim, conc, setup), a.reps) / a.n
        print(f"{name:36s} {sim.axis.shape[0]:6d} {1 / t_full:9.0f} {1 / t_phys:9.0f} {1 / t_eval:9.0f} "
              f"{1 / t_basis:9.0f} {t_phys / t_eval:12.2f} {t_full / t_eval:9.2f} {t_phys / t_basis:13.1f}")
    print("goal: physics/eval <= 3 (the nonlinear physics costs at most 3x evaluating the same bands linearly); "
          "physics/basis compares with a precomputed linear basis, which no composition-dependent band allows")


if __name__ == "__main__":
    main()
