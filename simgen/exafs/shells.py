"""Neighbour shells around an absorbing species of an ``ase.Atoms`` structure (periodic or cluster)."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["shells_from_atoms"]


def shells_from_atoms(atoms, absorber: str, rmax: float, tol: float = 0.02, site: int | None = None):
    """[(R, N, scatterer element)] by increasing R up to rmax around the first (or given) ``absorber`` site.

    Atoms closer than ``tol`` (A) in distance and of the same element form one shell.
    """
    if rmax <= 0:
        raise ParameterError("rmax", rmax, "a distance > 0 A")
    syms = atoms.get_chemical_symbols()
    if absorber not in syms:
        raise ParameterError("absorber", absorber, "an element of the structure: " + ", ".join(sorted(set(syms))))
    i0 = syms.index(absorber) if site is None else int(site)
    from ase.neighborlist import neighbor_list
    if any(atoms.pbc):
        ii, jj, dd = neighbor_list("ijd", atoms, float(rmax) + 1e-6)
        sel = ii == i0
        d, els = dd[sel], [syms[j] for j in jj[sel]]
    else:
        d = np.linalg.norm(atoms.positions - atoms.positions[i0], axis=1)
        keep = (d > 1e-6) & (d <= rmax + 1e-6)
        d, els = d[keep], [s for s, k in zip(syms, keep) if k]
    order = np.argsort(d, kind="stable")
    shells: list[list] = []
    for idx in order:
        r, el = float(d[idx]), els[idx]
        for sh in shells:
            if sh[2] == el and abs(sh[0] - r) <= tol:
                sh[0] = (sh[0] * sh[1] + r) / (sh[1] + 1)
                sh[1] += 1
                break
        else:
            shells.append([r, 1, el])
    return [(round(r, 5), int(n), el) for r, n, el in sorted(shells)]
