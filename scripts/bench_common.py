"""Shared set-up of the ``bench_*.py`` scripts: one core, one thread everywhere, and the goals they are held to.

Import this module first (before numpy, numba, torch or a peer code): the thread-count variables only take effect
in libraries that have not started yet.  ``pin()`` then restricts the process to one core, limits BLAS/OpenMP
pools (threadpoolctl), numba and torch to one thread, so that ours and the peer (porespy, DebyeCalculator, larch,
pyeasyspin) are both measured on one core side by side.
"""
from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS", "TBB_NUM_THREADS")
for _v in THREAD_VARS:
    os.environ[_v] = "1"

# ratio goals (peer time / ours, one core, best of repeats), with the command that prints each
GOALS = {
    "epr_b": 1000.0,        # S = 1/2 rhombic superoxide vs pyeasyspin (scripts/bench_epr.py)
    "epr_f": 100.0,         # S = 5/2 rhombic Fe3+ vs pyeasyspin
    "pdf_bulk": 50.0,       # Ni bulk vs diffpy.srreal PDFCalculator, BASIC evaluator (scripts/bench_pdf.py)
    "pdf_au64": 10.0,       # Au 6.4 nm (here the 6 nm cut) vs DebyeCalculator on the CPU, one thread
    "exafs_23": 500.0,      # 23 paths vs larch ff2chi (scripts/bench_exafs.py)
    "micrograph": 10.0,     # 512^2 micrograph vs porespy polydisperse_spheres (scripts/bench_swelling.py)
    "epr_recipe": 2000.0,   # epr-oxides spectra per second per core (absolute, not a ratio)
}


def pin(core: int | None = None) -> str:
    """Run this process on one core with one thread in every pool; returns a one-line description."""
    msg = []
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        c = cpus[0] if core is None else core
        os.sched_setaffinity(0, {c})
        msg.append(f"pinned to core {c} of {len(cpus)}")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
        msg.append("threadpoolctl 1")
    except ImportError:
        pass
    try:
        import numba
        numba.set_num_threads(1)
        msg.append("numba 1 thread")
    except (ImportError, ValueError):
        pass
    return ", ".join(msg) + "; " + " ".join(f"{v}=1" for v in THREAD_VARS[:4]) + "\n" + machine()


def machine() -> str:
    """One line naming the hardware and the numerical stack the ratios were measured on: the same code runs 3-5x
    slower on a 2 GHz Zen 1 core than on a recent Xeon while a peer moves less, so a ratio means little without
    it.  CPU model, clock and SIMD level from /proc/cpuinfo and numba's host CPU name where available."""
    import platform
    model, mhz, flags = None, None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = val.strip()
                elif key == "cpu MHz" and mhz is None:
                    try:
                        mhz = float(val)
                    except ValueError:
                        pass
                elif key == "flags" and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    simd = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse4_2" if "sse4_2" in flags else "?"
    parts = [f"cpu: {model or platform.processor() or platform.machine()}"]
    try:
        import numba
        import numpy
        import llvmlite.binding as llvm
        parts.append(f"llvm target {llvm.get_host_cpu_name()}")
        vers = f"numpy {numpy.__version__}, numba {numba.__version__}"
    except ImportError:
        vers = ""
    if mhz:
        parts.append(f"{mhz / 1e3:.2f} GHz")
    parts.append(f"widest SIMD {simd}")
    parts.append(f"{os.cpu_count()} logical CPUs")
    return ", ".join(parts) + (f"; {vers}; python {platform.python_version()}" if vers else "")


def torch_one_thread() -> None:
    """torch intra- and inter-op pools to one thread (call before its first parallel op)."""
    import torch
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:          # already set or already used: the intra-op count is what matters
        pass


def verdict(ratio: float, goal: float) -> str:
    return f"goal >= {goal:g}x: {'met' if ratio >= goal else 'NOT met'}"
