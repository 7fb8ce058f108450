"""Powder-grid convergence of one class of an EPR recipe: its spectra (noise off, every other nuisance as drawn)
on the recipe's grid and on finer grids, each against a fine reference grid.

    python scripts/epr_grid_convergence.py --recipe epr-oxides --label Fe3_rhombic --n 6 --rows 13,21,49 --ref 97
    python scripts/epr_grid_convergence.py --label Cr3 --n 8 --rows recipe,11,21 --ref 321

Prints, per grid, the CPU time per spectrum and, over the systems, the max-normalised nRMS (the spectra are
max |y| = 1, so this is the RMS difference) and the largest point difference |dy| (a ripple that a small nRMS
hides: most of a wide sweep is flat).  ``--rows`` sets ``Options.n_theta_zfs_rhombic`` and
``n_theta_zfs`` with ``powder_tol`` 0 (exactly that many octant rows or axial knots); ``recipe`` in the list is
the recipe's own grid (with its adaptive rows and knot ladder).  S > 1/2 classes only feel the count (rows on the
octant grid, knots on the axial one); S = 1/2 classes are left as the recipe has them.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from simgen.recipe import load_recipe


def spectra(rec, q, **opt):
    sim = rec.build()
    if opt:
        sim._opt = dataclasses.replace(sim._opt, **opt)
    sim.simulate_outputs({k: v[:1] for k, v in q.items()})          # compile outside the timing
    t0 = time.process_time()
    y = sim.simulate_outputs(q)["x"].astype(np.float64)
    return y, (time.process_time() - t0) / len(y)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="epr-oxides")
    ap.add_argument("--label", default="Fe3_rhombic", help="class of the recipe's label")
    ap.add_argument("--n", type=int, default=6, help="systems drawn from the class")
    ap.add_argument("--rows", default="recipe,21,49", help="grids to check: 'recipe' or row (knot) counts")
    ap.add_argument("--ref", type=int, default=97, help="rows (knots) of the reference grid")
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args(argv)
    grids = [r.strip() for r in a.rows.split(",")]
    bad = [r for r in grids if r != "recipe" and not (r.isdigit() and int(r) >= 2)]
    if bad or a.ref < 2 or a.n < 1:
        ap.error(f"--rows {a.rows!r} / --ref {a.ref} / --n {a.n}: expected 'recipe' or row counts >= 2, a "
                 "reference of >= 2 rows and at least one system")
    rec = load_recipe(a.recipe)
    if rec.label is None or a.label not in rec.label.classes:
        ap.error(f"--label {a.label!r}: expected one of {list(rec.label.classes) if rec.label else []}")
    p = rec.build().sample_params(max(200, 60 * a.n), np.random.default_rng(a.seed))
    idx = np.nonzero(np.asarray(p["label"]) == list(rec.label.classes).index(a.label))[0][:a.n]
    if len(idx) == 0:
        ap.error(f"--label {a.label!r}: no system of that class in the draw")
    q = {k: np.array(np.asarray(v)[idx]) for k, v in p.items()}
    for k in ("noise_white", "noise_pink"):
        q[k][:] = 0.0
    ref, tref = spectra(rec, q, n_theta_zfs_rhombic=a.ref, n_theta_zfs=a.ref, powder_tol=0.0)
    print(f"{a.recipe} / {a.label}: {len(idx)} systems, reference {a.ref} rows ({tref * 1e3:.1f} ms per spectrum)")
    print(f"{'grid':>8} {'ms':>8} {'nRMS median':>12} {'nRMS max':>9} {'|dy| median':>12} {'|dy| max':>9}")
    for r in grids:
        y, t = spectra(rec, q) if r == "recipe" else \
            spectra(rec, q, n_theta_zfs_rhombic=int(r), n_theta_zfs=int(r), powder_tol=0.0)
        d = y - ref
        e = np.sqrt(np.mean(d * d, axis=1))
        m = np.abs(d).max(axis=1)
        print(f"{r:>8} {t * 1e3:8.2f} {np.median(e):12.2e} {e.max():9.2e} {np.median(m):12.3f} {m.max():9.3f}")


if __name__ == "__main__":
    main()
