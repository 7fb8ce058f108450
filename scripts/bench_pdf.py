#!/usr/bin/env python
"""Benchmark simgen.pdf against diffpy.srreal (when installed) and DebyeCalculator (CPU) side by side.

Cases: Ni bulk, TiO2 anatase bulk (X-ray, r 0.5-30 A step 0.01, Qmax 25, Qdamp 0.04, Uiso 0.005), and Au spherical
clusters of about 2, 3, 4, 6 nm (+ 10 nm, ~50k atoms, simgen only) for the time-vs-atom-count statement.
Prints times (median of repeats, compile excluded), ratios and agreement (max|dG|/max|G|).

    python scripts/bench_pdf.py [--quick]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from simgen.pdf.calculator import Model, PeriodicPairCache, pdf_from_model
from simgen.pdf.structures import phase_model, sphere_cut

KW = dict(rmin=0.5, rmax=30.0, rstep=0.01, qmax=25.0, qdamp=0.04, uiso=0.005)


def timeit(fn, repeat=5):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


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
    return lambda: np.asarray(calc(s)[1])


def debyecalc(model: Model):
    try:
        import torch
        from debyecalculator import DebyeCalculator
        import ase
    except ImportError:
        return None
    torch.set_num_threads(1)
    dmax = float(np.linalg.norm(model.positions.max(0) - model.positions.min(0))) + 1.0
    calc = DebyeCalculator(qmin=0.0, qmax=KW["qmax"], qdamp=KW["qdamp"], rmin=KW["rmin"], rmax=KW["rmax"],
                           rstep=KW["rstep"], qstep=min(math.pi / dmax, 0.05), biso=8 * math.pi ** 2 * KW["uiso"],
                           device="cpu", radiation_type="xray")
    at = ase.Atoms(model.symbols, positions=model.positions)
    return lambda: 2.0 * np.asarray(calc.gr(at)[1], dtype=float)     # it counts each pair once


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 10 nm (50k atoms) case")
    args = ap.parse_args()
    print("simgen.pdf benchmark (1 thread; medians; compile excluded)")
    print(f"{'case':28s} {'N':>7s} {'simgen ms':>10s} {'peer':>16s} {'peer ms':>10s} {'ratio':>7s} {'agree':>9s}")
    for name in ("Ni_fcc", "TiO2_anatase"):
        m = phase_model(name)
        cache = PeriodicPairCache(m, 45.0)
        t_fresh, (r, g) = timeit(lambda: pdf_from_model(m, **KW))
        t_cached, _ = timeit(lambda: pdf_from_model(m, cache=cache, cell=m.cell, **KW))
        peer = srreal_calc(m)
        if peer is not None:
            tp, gp = timeit(peer, 3)
            print(f"{name + ' bulk':28s} {len(m.symbols):7d} {t_fresh * 1e3:10.2f} {'srreal':>16s} {tp * 1e3:10.2f} "
                  f"{tp / t_fresh:7.1f} {rel(g, gp):9.1e}")
        else:
            print(f"{name + ' bulk':28s} {len(m.symbols):7d} {t_fresh * 1e3:10.2f} {'srreal absent':>16s}")
        print(f"{'  (pair cache reused)':28s} {'':7s} {t_cached * 1e3:10.2f}")
    sizes = [20, 30, 40, 60] + ([100] if not args.quick else [])
    rows = []
    for d in sizes:
        clus = sphere_cut(phase_model("Au_fcc"), float(d))
        n = len(clus.symbols)
        rep = 3 if n < 20000 else 1
        t_real, (r, g_real) = timeit(lambda: pdf_from_model(clus, method="real", **KW), rep)
        t_deb, (r, g_deb) = timeit(lambda: pdf_from_model(clus, method="debye", **KW), rep)
        rows.append((n, t_real, t_deb))
        line = f"Au {d / 10:.0f} nm real / debye       {n:7d} {t_real * 1e3:7.1f}/{t_deb * 1e3:<7.1f}"
        peers = []
        if d <= 60:
            sp = srreal_calc(clus)
            if sp is not None:
                tp, gp = timeit(sp, 1)
                peers.append(("srreal", tp, rel(g_real, gp)))
            dc = debyecalc(clus)
            if dc is not None:
                tp, gp = timeit(dc, 1)
                peers.append(("DebyeCalculator", tp, rel(g_deb, gp)))
        print(line)
        for nm, tp, ag in peers:
            best = min(t_real, t_deb)
            print(f"{'':28s} {'':7s} {best * 1e3:10.1f} {nm:>16s} {tp * 1e3:10.1f} {tp / best:7.1f} {ag:9.1e}")
    n = np.array([x[0] for x in rows], float)
    for j, lab in ((1, "real"), (2, "debye")):
        t = np.array([x[j] for x in rows])
        slope = np.polyfit(np.log(n[1:]), np.log(t[1:]), 1)[0]
        print(f"time ~ N^{slope:.2f} for the {lab} route (cell list: pairs within rmax, O(N) for N*density "
              f"beyond the rmax sphere, O(N^2) while the particle is smaller than rmax)")


if __name__ == "__main__":
    main()
