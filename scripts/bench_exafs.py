#!/usr/bin/env python
"""Benchmark: simgen's chi(k) (``simgen.exafs.chi_of_paths``) vs larch's ``ff2chi`` on 1, 14 and 23 paths.

Both sides are timed the way ../shared/refs/exafs/make_refs.py timed ff2chi (timings.json): k from 0 to 20 1/A
in 0.05 steps (401 points), median over ``--repeat`` repeats of the mean time of ``inner`` calls (50 for one
path, whose sigma2 and deltaR are redrawn at every call; 10 for the Cu multishell, 14 paths up to 5.2 A, and the
rutile Ti K multishell, 23 paths up to 4.2 A, with the sigma2 of the reference files).  simgen uses the same
paths (matched by nleg, reff, degeneracy) from its FEFF10 tables.

With xraylarch importable (optional ``peers`` extra, or ``--larch-path DIR`` holding ``pip install --no-deps
--target DIR xraylarch lmfit asteval pyshortcuts dill``), FEFF8L is run once on the reference inputs
(../shared/refs/exafs/feff_inputs) into ``--feff-dir`` and ff2chi is timed side by side, interleaved with ours,
under the same load.  Otherwise the larch medians stored in timings.json are used, and the output says so.
Also printed: the min over repeats (less sensitive to other processes on a shared machine), the time with
dE0 != 0, and the time of a whole ``simulate()`` sample of the exafs-3d-metals recipe.

The process runs on one core with one thread in every pool (scripts/bench_common.py).  The goal line compares
the best (min) times of both codes.

Usage: python scripts/bench_exafs.py [--repeat 7] [--clock cpu|wall] [--larch-path /tmp/larch_peer]
       [--feff-dir /tmp/simgen_feff8]
"""
from __future__ import annotations

import bench_common  # noqa: F401  (first: one thread everywhere)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REFS = Path(__file__).resolve().parents[2] / "shared" / "refs" / "exafs"
KMAX, KSTEP = 20.0, 0.05


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = time.process_time


def timed(fn, repeat, inner):
    """(median, min) over ``repeat`` of the mean time of ``inner`` calls (make_refs.py's median_time), on the
    clock chosen with ``--clock`` (process CPU time by default: both codes run single-threaded on one core, and
    CPU time is what other jobs on a shared machine disturb least)."""
    ts = []
    for _ in range(repeat):
        t0 = _clock()
        for _ in range(inner):
            fn()
        ts.append((_clock() - t0) / inner)
    return statistics.median(ts), min(ts)


def match_paths(ps, ref):
    idx = []
    for nleg, reff, deg in zip(ref["path_nleg"], ref["path_reff"], ref["path_degen"]):
        cand = [j for j in range(ps.npath) if ps.nleg[j] == nleg and abs(ps.reff[j] - reff) < 2e-3
                and abs(ps.degen[j] - deg) < 1e-6 and j not in idx]
        if not cand:
            raise SystemExit(f"{ps.key}: no FEFF10 path nleg={nleg} reff={reff} N={deg}")
        idx.append(cand[0])
    return np.array(idx)


def larch_cases(feff_dir: Path):
    """Larch path lists like make_refs.py's (None when larch or FEFF8L cannot be run)."""
    try:
        from larch.xafs import feff8l, feffpath, ff2chi  # noqa: F401
    except Exception as exc:           # noqa: BLE001 - any import failure means: no side-by-side run
        print(f"# larch not importable ({type(exc).__name__}: {exc})")
        return None
    from larch.xafs import feff8l, feffpath
    out = {}
    for name, inp in (("cu", "cu_feff8.inp"), ("tio2", "tio2_feff8.inp")):
        d = feff_dir / name
        if not list(d.glob("feff0*.dat")):
            d.mkdir(parents=True, exist_ok=True)
            (d / "feff.inp").write_text((REFS / "feff_inputs" / inp).read_text())
            t0 = time.perf_counter()
            feff8l(folder=str(d), feffinp="feff.inp", verbose=False)
            print(f"# ran FEFF8L on {inp} in {time.perf_counter() - t0:.1f} s -> {d}")
        out[name] = d
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--larch-path", default=None, help="directory to put on sys.path for xraylarch")
    ap.add_argument("--feff-dir", default="/tmp/simgen_bench_feff8", help="where FEFF8L runs are kept")
    ap.add_argument("--no-larch", action="store_true", help="use timings.json even if larch imports")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: process time (default; robust on a shared machine); wall: elapsed (timings.json's)")
    a = ap.parse_args()
    global _clock
    _clock = CLOCK[a.clock]
    print(bench_common.pin())
    if a.larch_path:
        sys.path.insert(0, a.larch_path)

    from simgen.exafs import chi_of_paths
    from simgen.exafs.tables import load_pathset

    k = np.arange(0.0, KMAX + KSTEP / 2, KSTEP)
    stored = json.loads((REFS / "timings.json").read_text()) if (REFS / "timings.json").exists() else {}
    refs = {name: np.load(REFS / f"{name}_feff8.npz") for name in ("cu_multishell", "tio2_multishell")
            if (REFS / f"{name}_feff8.npz").exists()}
    if len(refs) < 2:
        raise SystemExit(f"needs {REFS}/cu_multishell_feff8.npz and tio2_multishell_feff8.npz")
    dirs = None if a.no_larch else larch_cases(Path(a.feff_dir))

    rng = np.random.default_rng(0)
    cases = []
    # --- 1 path: Cu-Cu first shell, sigma2 and deltaR redrawn each call
    cu = load_pathset("Cu_K_fcc")
    j1 = int(cu.single_scattering[0])

    def ours_1():
        chi_of_paths(k, cu, [j1], [12.0], [cu.reff[j1]], [rng.uniform(-0.1, 0.1)], [rng.uniform(0.002, 0.015)],
                     s02=0.9, e0=0.0)
    larch_1 = None
    if dirs:
        from larch.xafs import feffpath, ff2chi
        f1 = sorted(dirs["cu"].glob("feff0001.dat"))[0]
        p1 = feffpath(str(f1), degen=12, s02=0.9, e0=0.0, sigma2=0.0086, deltar=0.0)

        def larch_1():
            p1.sigma2 = float(rng.uniform(0.002, 0.015))
            p1.deltar = float(rng.uniform(-0.1, 0.1))
            return ff2chi([p1], kmax=KMAX, kstep=KSTEP)
    cases.append(("1 path Cu-Cu", ours_1, larch_1, "ff2chi_1path_s", 50, None))
    # --- 14 / 23 paths
    for name, key, tkey in (("cu_multishell", "Cu_K_fcc", "ff2chi_cu_multishell_s"),
                            ("tio2_multishell", "Ti_K_rutile", "ff2chi_tio2_multishell_s")):
        r = refs[name]
        ps = load_pathset(key)
        idx = match_paths(ps, r)
        args = (ps, idx, r["path_degen"].astype(float), r["path_reff"].astype(float),
                r["path_deltar"].astype(float), r["path_sigma2"].astype(float))

        def ours_n(args=args):
            return chi_of_paths(k, *args, s02=0.9, e0=0.0)

        def ours_e0(args=args):
            return chi_of_paths(k, *args, s02=0.9, e0=3.7)
        larch_n = None
        if dirs:
            from larch.xafs import feffpath, ff2chi
            paths = []
            folder = dirs["cu" if key.startswith("Cu") else "tio2"]
            for fname, s2 in zip(r["path_file"], r["path_sigma2"]):
                paths.append(feffpath(str(folder / Path(str(fname)).name), s02=0.9, e0=0.0, deltar=0.0,
                                      sigma2=float(s2)))

            def larch_n(paths=paths):
                return ff2chi(paths, kmax=KMAX, kstep=KSTEP)
            g = larch_n()
            dev = np.max(np.abs(ours_n() - g.chi)[(g.k >= 3) & (g.k <= 18)]) / np.max(np.abs(g.chi[g.k >= 3]))
            print(f"# {name}: simgen (FEFF10 tables) vs larch ff2chi (FEFF8L here): max |dchi| / max|chi| "
                  f"(k 3-18) = {dev:.4f}")
        cases.append((f"{len(idx)} paths {name}", ours_n, larch_n, tkey, 10, ours_e0))

    print(f"\nk 0-{KMAX:g} step {KSTEP} ({len(k)} points); {a.clock} time, median of {a.repeat} repeats "
          f"(min in brackets)")
    print(f"{'case':26s} {'simgen us':>17s} {'dE0=3.7 us':>11s} {'larch ff2chi us':>20s} {'ratio':>7s} "
          f"{'ratio(min)':>10s}  larch source")
    for label, ours, larch_fn, tkey, inner, ours_e0 in cases:
        ours()
        tl = None
        if larch_fn is not None:
            larch_fn()
            # interleave the two so that both see the same load
            mo, ml = [], []
            for _ in range(a.repeat):
                mo.append(timed(ours, 1, inner * 20)[0])
                ml.append(timed(larch_fn, 1, inner)[0])
            to, to_min = statistics.median(mo), min(mo)
            tl, tl_min = statistics.median(ml), min(ml)
            src = "run here, side by side"
        else:
            to, to_min = timed(ours, a.repeat, inner * 20)
            if tkey in stored:
                tl = stored[tkey]["median_s"]
                tl_min = min(stored[tkey]["samples_s"])
                src = f"timings.json (larch {stored.get('larch', '?')}, {stored.get('machine', '')})"
            else:
                src = "n/a"
        te = f"{timed(ours_e0, a.repeat, inner * 20)[0] * 1e6:11.1f}" if ours_e0 else f"{'':>11s}"
        if tl:
            goal = (bench_common.verdict(tl_min / to_min, bench_common.GOALS["exafs_23"]) + " (min/min); "
                    if label.startswith("23 ") else "")
            print(f"{label:26s} {to * 1e6:8.1f} ({to_min * 1e6:6.1f}) {te} {tl * 1e6:10.0f} ({tl_min * 1e6:7.0f}) "
                  f"{tl / to:6.0f}x {tl_min / to_min:9.0f}x  {goal}{src}")
        else:
            print(f"{label:26s} {to * 1e6:8.1f} ({to_min * 1e6:6.1f}) {te} {'-':>20s}  {src}")

    # whole simulated samples (structure -> paths -> Debye sigma2 -> chi -> k^2, noise) for context
    import simgen
    sim = simgen.load_recipe("exafs-3d-metals").build()
    p = sim.sample_params(64, np.random.default_rng(1))
    sim.simulate(p)
    t, tmin = timed(lambda: sim.simulate(p), max(3, a.repeat // 2), 1)
    print(f"\nexafs-3d-metals simulate(): {t / 64 * 1e6:.0f} us per sample (min {tmin / 64 * 1e6:.0f}), "
          f"{len(sim.axis.coords[0])} k points, all paths up to rmax {sim.config['rmax']} A")


if __name__ == "__main__":
    main()
