#!/usr/bin/env python
"""Benchmark simgen.pdf against diffpy.srreal (when installed) and DebyeCalculator (CPU) side by side.

Cases: Ni bulk, TiO2 anatase bulk (X-ray, r 0.5-30 A step 0.01, Qmax 25, Qdamp 0.04, Uiso 0.005), and Au spherical
clusters of 2, 3, 4, 6.4 nm (+ 8 and 10 nm, 16k and 31k atoms, simgen only) for the time-vs-atom-count statement.
Prints times (best of repeats, compile excluded), ratios (peer / simgen) with the goals, and agreement
(max|dG|/max|G|) of the timed simgen route against the peer.  srreal runs its BASIC evaluator (its OPTIMIZED one
only updates what changed since the previous call, so repeated calls on one structure would time nothing).
The process is pinned to one core with one thread in every pool (scripts/bench_common.py).  DebyeCalculator 1.1.1: device='cpu', its defaults otherwise (float32,
pair_sum='grid', all N(N-1)/2 pairs), num_threads=1 and torch.set_num_threads(1) for the single-core rows.

    python scripts/bench_pdf.py [--quick] [--clock cpu|wall] [--threads N]

The default clock is process CPU time (the machine this was written on is shared); ``--threads N`` adds rows with
the numba-parallel histogram (``pdf_from_model(..., threads=N)``) against DebyeCalculator with N threads (use
``--clock wall`` for those).
"""
from __future__ import annotations

import bench_common  # noqa: F401  (first: one thread everywhere)

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from simgen.pdf.calculator import Model, pdf_from_model  # noqa: E402
from simgen.pdf.structures import phase_model, sphere_cut  # noqa: E402

KW = dict(rmin=0.5, rmax=30.0, rstep=0.01, qmax=25.0, qdamp=0.04, uiso=0.005)


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = time.process_time


def timeit(fn, repeat=5):
    """Best (minimum) time of ``repeat`` calls after one untimed call, and the last output."""
    fn()
    ts = []
    for _ in range(repeat):
        t = _clock()
        out = fn()
        ts.append(_clock() - t)
    return float(np.min(ts)), out


def rel(a, b):
    n = min(len(a), len(b))
    return float(np.abs(a[:n] - b[:n]).max() / np.abs(b[:n]).max())


def srreal_calc(model: Model, kind="PDFCalculator"):
    try:
        from diffpy.srreal.pdfcalculator import DebyePDFCalculator, PDFCalculator
        from diffpy.structure import Atom, Lattice, Structure
    except ImportError:
        return None
    if model.periodic:
        s = Structure(lattice=Lattice(*__import__("ase").geometry.cell_to_cellpar(model.cell)))
        xyz = model.frac
    else:
        s = Structure()
        xyz = model.positions
    for el, x in zip(model.symbols, xyz):
        a = Atom(el, x)
        a.Uisoequiv = KW["uiso"]
        s.append(a)
    calc = (PDFCalculator if kind == "PDFCalculator" else DebyePDFCalculator)()
    for k in ("rmin", "rmax", "rstep", "qmax", "qdamp"):
        setattr(calc, k, KW[k])
    calc.evaluatortype = "BASIC"          # full recalculation on every call (OPTIMIZED skips unchanged work)
    run = lambda: np.asarray(calc(s)[1])  # noqa: E731
    run.evaluator = calc.evaluatortype
    return run


def debyecalc(model: Model, threads: int = 1):
    """DebyeCalculator 1.1.1 on the CPU: float32, pair_sum='grid' (its default), all N(N-1)/2 pairs, Biso from
    Uiso, ``threads`` torch threads (1 = single core, the fair comparison with our serial kernels)."""
    try:
        import torch
        from debyecalculator import DebyeCalculator
        import ase
    except ImportError:
        return None
    torch.set_num_threads(threads)
    dmax = float(np.linalg.norm(model.positions.max(0) - model.positions.min(0))) + 1.0
    calc = DebyeCalculator(qmin=0.0, qmax=KW["qmax"], qdamp=KW["qdamp"], rmin=KW["rmin"], rmax=KW["rmax"],
                           rstep=KW["rstep"], qstep=min(math.pi / dmax, 0.05), biso=8 * math.pi ** 2 * KW["uiso"],
                           device="cpu", radiation_type="xray", num_threads=threads)
    at = ase.Atoms(model.symbols, positions=model.positions)
    return lambda: 2.0 * np.asarray(calc.gr(at)[1], dtype=float)     # it counts each pair once


def main():
    global _clock
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 8 and 10 nm (16k, 31k atoms) cases")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: process time (robust on a shared machine; counts all threads); wall: elapsed")
    ap.add_argument("--threads", type=int, default=0,
                    help="also time the numba-parallel histogram and DebyeCalculator with this many threads")
    args = ap.parse_args()
    _clock = CLOCK[args.clock]
    if args.threads <= 1:
        print(bench_common.pin())
        bench_common.torch_one_thread()
    else:
        print("threaded rows requested: not pinned to one core")
    print(f"simgen.pdf benchmark ({args.clock} time, best of repeats, compile excluded; single thread unless "
          f"marked)")
    print(f"{'case':28s} {'N':>7s} {'simgen ms':>10s} {'peer':>16s} {'peer ms':>10s} {'ratio':>7s} {'agree':>9s}")
    for name in ("Ni_fcc", "TiO2_anatase"):
        m = phase_model(name)
        t_fresh, (r, g) = timeit(lambda: pdf_from_model(m, **KW))
        peer = srreal_calc(m)
        if peer is not None:
            tp, gp = timeit(peer, 3)
            print(f"{name + ' bulk':28s} {len(m.symbols):7d} {t_fresh * 1e3:10.2f} {'srreal ' + peer.evaluator:>16s} "
                  f"{tp * 1e3:10.2f} {tp / t_fresh:7.1f} {rel(g, gp):9.1e}   "
                  + (bench_common.verdict(tp / t_fresh, bench_common.GOALS["pdf_bulk"]) if name == "Ni_fcc" else ""))
        else:
            print(f"{name + ' bulk':28s} {len(m.symbols):7d} {t_fresh * 1e3:10.2f} {'srreal':>16s}   "
                  f"diffpy.srreal not importable here: ratio (goal >= {bench_common.GOALS['pdf_bulk']:g}x srreal "
                  f"BASIC) not measured")
    sizes = [20, 30, 40, 64] + ([80, 100] if not args.quick else [])
    rows = []
    for d in sizes:
        clus = sphere_cut(phase_model("Au_fcc"), float(d))
        n = len(clus.symbols)
        rep = 5 if n < 10000 else 2
        t_real, (r, g_real) = timeit(lambda: pdf_from_model(clus, method="real", **KW), rep)
        t_deb, (r, g_deb) = timeit(lambda: pdf_from_model(clus, method="debye", **KW), rep)
        rows.append((n, t_real, t_deb))
        print(f"Au {d / 10:.1f} nm real / debye route  {n:7d} {t_real * 1e3:7.1f}/{t_deb * 1e3:<7.1f}")
        if d <= 64:
            sp = srreal_calc(clus)
            if sp is not None:
                tp, gp = timeit(sp, 1)
                print(f"{'  real route':28s} {'':7s} {t_real * 1e3:10.1f} {'srreal':>16s} {tp * 1e3:10.1f} "
                      f"{tp / t_real:7.1f} {rel(g_real, gp):9.1e}")
            dc = debyecalc(clus, 1)
            if dc is not None:
                tp, gp = timeit(dc, 3)
                for lab, t, g in (("real", t_real, g_real), ("debye", t_deb, g_deb)):
                    print(f"{'  ' + lab + ' route':28s} {'':7s} {t * 1e3:10.1f} {'DebyeCalculator':>16s} "
                          f"{tp * 1e3:10.1f} {tp / t:7.1f} {rel(g, gp):9.1e}   "
                          + (bench_common.verdict(tp / t, bench_common.GOALS["pdf_au64"]) if d == 64 else ""))
        if args.threads > 1:
            tr, (r, gp_) = timeit(lambda: pdf_from_model(clus, method="real", threads=args.threads, **KW), rep)
            line = f"{'  real, %d threads' % args.threads:28s} {'':7s} {tr * 1e3:10.1f}"
            dc = debyecalc(clus, args.threads) if d <= 64 else None
            if dc is not None:
                tp, gp = timeit(dc, 3)
                line += f" {'DebyeCalc %d thr' % args.threads:>16s} {tp * 1e3:10.1f} {tp / tr:7.1f} {rel(gp_, gp):9.1e}"
            print(line)
    n = np.array([x[0] for x in rows], float)
    for j, lab in ((1, "real"), (2, "debye")):
        t = np.array([x[j] for x in rows])
        slope = np.polyfit(np.log(n), np.log(t), 1)[0]
        local = " ".join(f"{math.log(t[k + 1] / t[k]) / math.log(n[k + 1] / n[k]):.2f}" for k in range(len(n) - 1))
        print(f"{lab} route: time ~ N^{slope:.2f} over {sizes[0] / 10:.0f}-{sizes[-1] / 10:.0f} nm "
              f"(local exponents {local})")
    print("cell list: pairs within rmax+extension only -> O(N^2) while the particle is smaller than that range, "
          "tending to O(N) for larger particles")
    if _clock is time.process_time:
        print("(cpu clock: sums all threads of this process, so threaded rows show total CPU, not elapsed time)")


if __name__ == "__main__":
    main()
