#!/usr/bin/env python
"""Copy the parts of ../shared/refs/exafs that tests/simgen/test_exafs.py uses into small golden files here.

Run from the repository root:  python tests/data/exafs/make_golden.py
Each output stays below 50 kB (float64 where a 1e-3 comparison needs it, float32 otherwise; the exspy spectrum
every second point).  See README.md for what produced the originals.
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFS = HERE.parents[2].parent / "shared" / "refs" / "exafs"

PATH_KEYS = ("path_nleg", "path_degen", "path_reff", "path_sigma2", "path_s02", "path_deltar", "path_file")


def main():
    out = {}
    for name in ("cu_1shell_feff8", "cu_multishell_feff8", "tio2_multishell_feff8"):
        d = np.load(REFS / f"{name}.npz")
        out[name] = {"k": d["k"], "chi": d["chi"], **{k: d[k] for k in PATH_KEYS}}
    d = np.load(REFS / "feff_amp_phase.npz")
    out["feff_amp_phase"] = {k: d[k] for k in d.files if k.startswith("CuCu_feff8__")}
    d = np.load(REFS / "feff_onepath_Rscan.npz")
    out["feff_onepath_Rscan"] = {"k": d["k"], "R": d["R"], "amp": d["amp"].astype(np.float32)}
    for edge in ("L3", "L2"):
        d = np.load(REFS / f"tio2_exelfs_feff10_{edge}.npz")
        out[f"tio2_exelfs_feff10_{edge}"] = {k: d[k] for k in ("energy_loss_eV", "total", "atomic_bg",
                                                                "fine_struct")}
    d = np.load(REFS / "exspy_tio2_coreloss.npz")
    out["exspy_tio2_coreloss"] = {"energy_eV": d["energy_eV"][::2],
                                  **{k: d[k][::2].astype(np.float32) for k in ("edge_Ti_L3", "edge_O_K",
                                                                               "background", "total")},
                                  "params": d["params"]}
    for name, arrays in out.items():
        f = HERE / f"{name}.npz"
        np.savez_compressed(f, **arrays)
        size = f.stat().st_size
        assert size <= 50_000, (f, size)
        print(f"{f.name:34s} {size / 1000:6.1f} kB")


if __name__ == "__main__":
    main()
