"""FEFF scattering tables (catalogs/exafs/feff10/*.npz) and their cubic-spline interpolants.

Each table file holds, for every scattering path FEFF found in one material (absorber, edge): nleg,
degeneracy, reff, leg atoms, and on FEFF's k grid |f_eff| (amp = mag*red_factor), phase (2 phc + phase),
mean free path lambda and real[p].  ``PathSet`` turns them into the piecewise-cubic coefficients the Numba
kernel evaluates (not-a-knot cubic spline, the interpolant of FITPACK's s=0 spline that larch uses).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from .. import catalogs

__all__ = ["PathSet", "load_pathset", "spline_coefficients", "available_tables", "COLUMNS"]

COLUMNS = ("amp", "pha", "real_p", "lam")


def spline_coefficients(k: np.ndarray, cols: list[np.ndarray]) -> np.ndarray:
    """(ncol, nk-1, 4) piecewise-cubic coefficients (c3, c2, c1, c0 about each knot) of not-a-knot splines."""
    out = np.empty((len(cols), len(k) - 1, 4))
    for c, y in enumerate(cols):
        out[c] = CubicSpline(k, y, bc_type="not-a-knot").c.T
    return out


@dataclass(eq=False)
class PathSet:
    """All scattering paths of one material/edge with their spline tables (arrays ready for the kernel)."""

    key: str
    absorber: str
    edge: str
    nleg: np.ndarray
    degen: np.ndarray
    reff: np.ndarray
    legs_xyz: np.ndarray      # (npath, maxleg, 3): absorber (origin) first, then the scatterers in path order
    legs_el: np.ndarray       # (npath, maxleg) element symbols ('' past nleg)
    rnrmav_bohr: float
    knots: np.ndarray         # (npath, nkmax)
    nknots: np.ndarray        # (npath,)
    coefs: np.ndarray         # (npath, 4, nkmax-1, 4)
    title: str = ""

    @property
    def npath(self) -> int:
        return len(self.reff)

    @property
    def single_scattering(self) -> np.ndarray:
        """Indices of the single-scattering paths, by increasing reff."""
        ss = np.flatnonzero(self.nleg == 2)
        return ss[np.argsort(self.reff[ss], kind="stable")]

    def path_atoms(self, j: int):
        """(xyz (nleg, 3), elements) of path j, absorber first."""
        n = int(self.nleg[j])
        return self.legs_xyz[j, :n], [str(e) for e in self.legs_el[j, :n]]

    def scatterer(self, j: int) -> str:
        return str(self.legs_el[j, 1])

    @classmethod
    def from_arrays(cls, key, absorber, edge, ks, cols_per_path, nleg, degen, reff, legs_xyz=None, legs_el=None,
                    rnrmav_bohr=np.nan, title=""):
        """Build from per-path arrays: ks[j] (k grid), cols_per_path[j] = (amp, pha, real_p, lam)."""
        npath = len(ks)
        nkmax = max(len(k) for k in ks)
        knots = np.full((npath, nkmax), np.inf)
        nknots = np.zeros(npath, dtype=np.int64)
        coefs = np.zeros((npath, 4, nkmax - 1, 4))
        for j, (k, cols) in enumerate(zip(ks, cols_per_path)):
            k = np.asarray(k, dtype=np.float64)
            knots[j, :len(k)] = k
            nknots[j] = len(k)
            coefs[j, :, :len(k) - 1] = spline_coefficients(k, [np.asarray(c, dtype=np.float64) for c in cols])
        maxleg = int(max(nleg))
        if legs_xyz is None:
            legs_xyz = np.zeros((npath, maxleg, 3))
        if legs_el is None:
            legs_el = np.full((npath, maxleg), "", dtype="<U2")
        return cls(key, absorber, edge, np.asarray(nleg, dtype=np.int64), np.asarray(degen, dtype=np.float64),
                   np.asarray(reff, dtype=np.float64), np.asarray(legs_xyz, dtype=np.float64),
                   np.asarray(legs_el), float(rnrmav_bohr), knots, nknots, coefs, title)


def available_tables() -> list[str]:
    d = catalogs.find("exafs/feff10")
    return sorted(p.stem for p in d.glob("*.npz"))


@functools.lru_cache(maxsize=64)
def load_pathset(key: str) -> PathSet:
    """The FEFF10 path set of catalog table ``key`` (e.g. ``Cu_K_fcc``)."""
    try:
        path = catalogs.find(f"exafs/feff10/{key}.npz")
    except FileNotFoundError:
        raise KeyError(f"FEFF table '{key}': not in catalogs/exafs/feff10 (available: "
                       f"{', '.join(available_tables())})") from None
    d = np.load(path)
    ks, cols = [], []
    for j in range(len(d["reff"])):
        k = d["k"][j].astype(np.float64)
        ok = np.isfinite(k)
        ks.append(np.round(k[ok], 4))
        cols.append([d[c][j][ok].astype(np.float64) for c in COLUMNS])
    return PathSet.from_arrays(key, str(d["absorber"]), str(d["edge"]), ks, cols, d["nleg"], d["degen"], d["reff"],
                               d["legs_xyz"], d["legs_el"], float(d["rnrmav_bohr"]), str(d["title"]))
