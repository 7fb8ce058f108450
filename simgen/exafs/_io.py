"""Minimal readers of XAFS column files (XDI and plain 'energy mu' .xmu/.dat) -> (energy eV, mu)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_xafs_columns"]


def read_xafs_columns(path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Energy (eV) and mu(E) from an XDI or '#'-commented column file.

    XDI: uses 'Column.N: energy' and the first of mutrans / mu / mufluor / xmu; or ln(i0/itrans) when only
    i0 and itrans are given.  Plain files: column 1 energy, column 2 mu.  Returns (energy, mu, header dict).
    """
    path = Path(path)
    header: dict = {}
    cols: dict = {}
    lines = path.read_text(errors="replace").splitlines()
    for ln in lines:
        if not ln.startswith("#"):
            continue
        body = ln.lstrip("#%").strip()
        if ":" in body:
            key, _, val = body.partition(":")
            header[key.strip()] = val.strip()
            if key.strip().lower().startswith("column."):
                try:
                    cols[val.split()[0].lower()] = int(key.strip().split(".")[1]) - 1
                except (ValueError, IndexError):
                    pass
    data = np.loadtxt([ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")], ndmin=2)
    if data.shape[1] < 2:
        raise ValueError(f"{path}: expected at least two numeric columns (energy, mu); got {data.shape[1]}")
    ie = cols.get("energy", 0)
    for name in ("mutrans", "mu", "mufluor", "xmu", "mutrans_norm"):
        if name in cols:
            mu = data[:, cols[name]]
            break
    else:
        if "i0" in cols and "itrans" in cols:
            mu = np.log(data[:, cols["i0"]] / data[:, cols["itrans"]])
        else:
            mu = data[:, 1]
    e = data[:, ie]
    order = np.argsort(e)
    return e[order], mu[order], header
