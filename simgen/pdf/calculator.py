"""PDF engine with diffpy.srreal's conventions (PDFCalculator and DebyePDFCalculator of srreal 1.4).

G(r) = R(r)/r - 4 pi rho0 r.  Each ordered pair i != j adds a unit-area Gaussian centred at its distance d and
scaled by f_i f_j / (N <f>^2 d) to R(r)/r, with sigma^2 = (U_i + U_j)(1 - delta1/d - delta2/d^2 + Qbroad^2 d^2).
R/r is computed on srreal's extended grid (the output range widened by 6 termination ripples, 12 pi/Qmax), sine
transformed on a zero-padded power-of-two grid (Q step pi/(Npad*rstep)), F(Q) is zeroed below Qmin and at or
above Qmax (so Qmax 25 acts as 24.93 for rmax 30, rstep 0.01), transformed back, the baseline -4 pi rho0 r is
added and the envelopes scale * exp(-(Qdamp r)^2/2) * spherical(r/d) are applied.

Two routes for finite clusters: ``method='real'`` (pair histogram + Gaussians, srreal's PDFCalculator) and
``method='debye'`` (pair histogram -> Debye F(Q) with Q-dependent X-ray form factors -> sine transform, srreal's
DebyePDFCalculator).  Both keep memory O(N + bins): pairs are binned on the fly from a cell list
(:func:`cluster_histogram`: float32 distances, atoms sorted by cell and z, counts per type pair; weights, 1/d
and the Gaussian (or sin(Qd)/d) are applied per bin, not per pair).  Anisotropic ADPs (``uani``, Cartesian U per
site) use srreal's bond msd n.(U_i + U_j).n with one Gaussian per pair (real-space route only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import scipy.fft

from ..errors import ParameterError
from . import kernels
from .scattering import check_element, scattering_factor
from .structures import Model, as_model, check_uani

__all__ = ["Grid", "make_grid", "Model", "PeriodicPairCache", "compute_pdf", "pdf_from_model",
           "PEAKPRECISION", "spherical_envelope"]

PEAKPRECISION = 3.33e-6          # srreal's default peak precision (GaussianProfile cut)
DEBYEPRECISION = 1e-6            # srreal's DebyePDFCalculator default
MAXEXTENSION = 10.0              # srreal's default maxextension (A)
PARALLEL_MIN_PAIRS = 2_000_000    # below this, threads cost more than they save
_TOFWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _halfboundrel(eps: float) -> float:
    return math.sqrt(-math.log(max(eps, 2.2e-16)) / (4 * math.log(2.0)))


def _eps_eq(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-7 * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class Grid:
    """All integer grid bookkeeping of one calculation (srreal's PDFCalculator rules)."""

    rstep: float
    k_lo: int           # output r = k*rstep for k_lo <= k < k_hi
    k_hi: int
    kext_lo: int        # extended grid (termination ripples)
    kext_hi: int
    rcalc_lo: float     # pairs with rcalc_lo <= d <= rcalc_hi contribute
    rcalc_hi: float
    npad: int
    qstep: float
    nqmin: int
    nqmax: int
    qmax_eff: float

    @property
    def r(self) -> np.ndarray:
        return np.arange(self.k_lo, self.k_hi) * self.rstep

    @property
    def r_ext(self) -> np.ndarray:
        return np.arange(self.kext_lo, self.kext_hi) * self.rstep


def make_grid(rmin: float, rmax: float, rstep: float, qmin: float, qmax: float, max_uii: float,
              maxextension: float = MAXEXTENSION, precision: float = PEAKPRECISION) -> Grid:
    if not (rstep > 0):
        raise ParameterError("rstep", rstep, "a positive step in A")
    if rmin < 0:
        raise ParameterError("rmin", rmin, "a non-negative number in A")
    if not rmax > rmin:
        raise ParameterError("rmax", rmax, f"a value above rmin ({rmin} A)")
    if qmin < 0:
        raise ParameterError("qmin", qmin, "a non-negative number in 1/A")
    if qmax < 0:
        raise ParameterError("qmax", qmax, "a non-negative number in 1/A (0 means no termination)")
    qmax_eff = min(qmax if qmax > 0 else math.inf, math.pi / rstep)
    if qmin >= qmax_eff:
        raise ParameterError("qmin", qmin, f"a value below qmax ({qmax_eff:g} 1/A)")
    ext_rip = 12 * math.pi / qmax_eff
    ext_tail = _halfboundrel(precision) * _TOFWHM * math.sqrt(2 * max(max_uii, 0.0))
    tot = ext_rip + ext_tail
    if tot > maxextension:
        sc = maxextension / tot
        ext_rip *= sc
        ext_tail *= sc
        tot = maxextension
    k_lo = int(math.ceil(rmin / rstep))
    if _eps_eq(rmin, (k_lo - 1) * rstep):
        k_lo -= 1
    k_hi = int(math.ceil(rmax / rstep))
    kext_lo = max(int((rmin - ext_rip) / rstep), 0)
    kext_hi = int(math.ceil((rmax + ext_rip) / rstep))
    kc_lo = max(int((rmin - tot) / rstep), 0)
    kc_hi = int(math.ceil((rmax + tot) / rstep))
    npad = 1 << int(math.ceil(math.log2(kext_hi)))
    qstep = math.pi / (npad * rstep)
    nqmin = int(math.ceil(qmin / qstep))
    if _eps_eq(qmin, (nqmin - 1) * qstep):
        nqmin -= 1
    nqmax = int(math.ceil(qmax_eff / qstep))
    return Grid(rstep, k_lo, k_hi, kext_lo, kext_hi, kc_lo * rstep, kc_hi * rstep, npad, qstep, nqmin, nqmax,
                qmax_eff)


def spherical_envelope(r: np.ndarray, diameter: float) -> np.ndarray:
    """Shape factor of a sphere of ``diameter`` (A): 1 - 1.5x + 0.5x^3, x = r/d, zero beyond d."""
    if diameter <= 0:
        return np.ones_like(r)
    x = r / diameter
    return np.where(x <= 1.0, 1.0 - 1.5 * x + 0.5 * x ** 3, 0.0)


_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(32)


def polydisperse_envelope(r: np.ndarray, diameter: float, sigma: float) -> np.ndarray:
    """Shape factor of an ensemble of spheres with log-normal diameters (log-std ``sigma``).

    Each sphere contributes pairs in proportion to its number of atoms, so the ensemble's factor is the
    D^3-weighted mean of :func:`spherical_envelope`.  ``diameter`` is the volume-weighted mean diameter
    <D^4>/<D^3> = D_median exp(3.5 sigma^2): the size a single-sphere envelope fitted to such a G(r) returns
    (on the diffpy.cmi Pt nanoparticles, fits with sigma 0-0.4 all give 37.3-38.7 A, while the median falls from
    37 to 22 A).  32-node Gauss-Hermite quadrature in ln D; sigma = 0 is the single sphere."""
    if sigma <= 0 or diameter <= 0:
        return spherical_envelope(r, diameter)
    med = diameter * math.exp(-3.5 * sigma * sigma)
    d = med * np.exp(sigma * _HERMITE_NODES)
    w = _HERMITE_WEIGHTS * d ** 3
    out = np.zeros_like(np.asarray(r, dtype=float))
    for wk, dk in zip(w, d):
        out += wk * spherical_envelope(r, dk)
    return out / w.sum()


def terminate(rr_ext: np.ndarray, grid: Grid) -> np.ndarray:
    """Fourier filter R/r on the extended grid: keep Qmin <= Q < Qmax (srreal's fftgtof/fftftog)."""
    if grid.nqmin <= 0 and grid.nqmax >= grid.npad:
        return rr_ext.copy()
    g = np.zeros(grid.npad)
    g[grid.kext_lo:grid.kext_hi] = rr_ext
    f = np.zeros(grid.npad)
    f[1:] = 0.5 * grid.rstep * scipy.fft.dst(g[1:], type=1)
    f[:max(grid.nqmin, 0)] = 0.0
    f[grid.nqmax:] = 0.0
    out = np.zeros(grid.npad)
    out[1:] = (grid.qstep / math.pi) * scipy.fft.dst(f[1:], type=1)
    return out[grid.kext_lo:grid.kext_hi]


def finish(rr_ext: np.ndarray, grid: Grid, rho0: float, qdamp: float, scale: float, spdiameter: float,
           shape_diameter: float = 0.0) -> np.ndarray:
    """Termination, baseline and envelopes; returns G on the output grid.

    ``shape_diameter`` > 0 makes the baseline that of a finite particle, -4 pi rho0 r gamma(r) with the sphere
    shape factor gamma (used for explicit clusters, as in a measured nanoparticle G(r) whose small-angle
    scattering has been removed)."""
    r = grid.r_ext
    base = 4 * math.pi * rho0 * r
    if shape_diameter > 0:
        base = base * spherical_envelope(r, shape_diameter)
    # srreal 1.4: the baseline is subtracted before the band-pass filter (F(Q) is the transform of G)
    g = terminate(rr_ext - base, grid)
    env = scale * (np.exp(-0.5 * (qdamp * r) ** 2) if qdamp > 0 else 1.0)
    g = g * env * spherical_envelope(r, spdiameter)
    return g[grid.k_lo - grid.kext_lo:grid.k_hi - grid.kext_lo]


def _uiso_per_site(model: Model, uiso) -> np.ndarray:
    n = len(model.symbols)
    if uiso is None:
        if model.uiso is None:
            raise ParameterError("uiso", None, "Uiso in A^2: a number, a dict element -> number or one per atom")
        u = model.uiso
    elif isinstance(uiso, Mapping):
        try:
            u = np.array([float(uiso[s]) for s in model.symbols])
        except KeyError as exc:
            raise ParameterError("uiso", dict(uiso), f"a value for every element (missing {exc.args[0]})") from None
    else:
        u = np.broadcast_to(np.asarray(uiso, dtype=np.float64), (n,)).copy()
    u = np.asarray(u, dtype=np.float64)
    if (u < 0).any() or not np.isfinite(u).all():
        raise ParameterError("uiso", float(u[~(np.isfinite(u) & (u >= 0))][0]), "a non-negative number in A^2")
    return u


def _types(model: Model, u: np.ndarray, radiation: str):
    """Atom types = distinct (element, U) in order of first appearance; returns type index per site, type
    elements, type U.  Vectorised (np.unique) so that 50,000-atom clusters cost no Python loop per atom."""
    if len(model.symbols) <= 256:           # small cells: a dict is faster than np.unique's setup
        els = [check_element(s, radiation, "structure.symbols") for s in model.symbols]
        keys = list(zip(els, np.round(u, 12)))
        uniq = list(dict.fromkeys(keys))
        idx = {k: i for i, k in enumerate(uniq)}
        typ = np.array([idx[k] for k in keys], dtype=np.int64)
        return typ, [k[0] for k in uniq], np.array([k[1] for k in uniq], dtype=np.float64)
    sym_u, sym_inv = np.unique(np.asarray(model.symbols, dtype=object).astype(str), return_inverse=True)
    el_u = np.array([check_element(s, radiation, "structure.symbols") for s in sym_u], dtype=object)
    el_id = np.unique(el_u.astype(str), return_inverse=True)[1][sym_inv.reshape(-1)]
    ur = np.round(u, 12)
    u_u, u_inv = np.unique(ur, return_inverse=True)
    key = el_id.astype(np.int64) * len(u_u) + u_inv.reshape(-1)
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")     # renumber by first appearance
    typ = rank[inv.reshape(-1)].astype(np.int64)
    order = np.sort(first)
    return typ, [str(el_u[sym_inv.reshape(-1)[i]]) for i in order], ur[order].astype(np.float64)


def typ_first(typ: np.ndarray, nt: int) -> np.ndarray:
    """Index of the first site of each type."""
    first = np.full(nt, -1, dtype=np.int64)
    t_u, idx = np.unique(typ, return_index=True)
    first[t_u] = idx
    return first


def _hbin(rstep: float) -> float:
    return min(rstep / 8.0, 0.002)


def _nrep(cell: np.ndarray, rcut: float) -> np.ndarray:
    """Lattice translations needed along each cell vector to reach every pair within rcut."""
    widths = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)   # plane spacings
    return np.ceil(rcut / widths).astype(np.int64) + 1


class PeriodicPairCache:
    """Neighbour structure of one periodic phase, built once; distances under any strain are recomputed
    analytically from the cached fractional separations (d = |dfrac @ cell'|).  Used by the anisotropic-ADP
    route (one Gaussian per pair); isotropic ADPs are binned by an enumerating pass instead.

    ``rcut`` is the largest distance needed in the *unstrained* cell; build it with a margin for the largest
    strain you will apply (pairs are looked up again whenever a strained query needs more).
    """

    def __init__(self, model: Model, rcut: float):
        if not model.periodic:
            raise ParameterError("structure", model.name, "a periodic structure (a cell) for the pair cache")
        self.cell0 = model.cell.copy()
        frac = np.ascontiguousarray(model.frac)
        self.frac = frac
        nrep = _nrep(self.cell0, rcut)
        n = kernels.count_periodic_pairs(frac, self.cell0, rcut, nrep)
        self.pi = np.empty(n, dtype=np.int64)
        self.pj = np.empty(n, dtype=np.int64)
        self.dfrac = np.empty((n, 3))
        kernels.fill_periodic_pairs(frac, self.cell0, rcut, nrep, self.pi, self.pj, self.dfrac)
        self.rcut = float(rcut)
        self.nsites = frac.shape[0]

    def covers(self, cell: np.ndarray, rneed: float) -> bool:
        # the smallest singular value bounds how much a strained cell can shrink distances
        m = np.linalg.solve(self.cell0, cell)     # cell = cell0 @ m
        smin = np.linalg.svd(m, compute_uv=False).min()
        return rneed <= self.rcut * smin * (1 - 1e-12)


def _min_periodic_distance(model: Model) -> float:
    cache = PeriodicPairCache(model, 0.6)
    if len(cache.pi) == 0:
        return math.inf
    v = cache.dfrac @ model.cell
    return float(np.sqrt((v * v).sum(1)).min())


def check_overlaps(model: Model, min_distance: float = 0.5) -> None:
    """Reject structures with two atoms closer than ``min_distance`` (A), naming the distance."""
    if model.periodic:
        dmin = _min_periodic_distance(model)
    else:
        dmin = kernels.min_distance(model.positions, 0.6)
    if dmin < min_distance:
        raise ParameterError("structure", f"{model.name or 'structure'}: atoms {dmin:.3g} A apart",
                             f"no overlapping atoms (all distances >= {min_distance} A)")


# --------------------------------------------------------------------------------------- cluster pair histogram
def cluster_histogram(positions: np.ndarray, typ: np.ndarray, ntype: int, rlo: float, rhi: float, h: float,
                      threads: int | None = None) -> np.ndarray:
    """Linear-binned counts of ordered pairs i != j with rlo <= d_ij <= rhi, one row per type pair.

    Returns ``hist`` (ntype*ntype, int(rhi/h)+3); row ta*ntype+tb.  A cell list (cells of rhi/4, float32
    coordinates centred on the cluster) visits only pairs of cells within rhi, and inside a row of cells only the
    atoms within the z window the lateral gap allows, so time is O(N * neighbours within rhi) and memory
    O(N + cells + bins).  ``threads`` > 1 runs the numba-parallel variant (atoms sorted by cell and type) over
    that many threads (each with its own histogram) when there are more than PARALLEL_MIN_PAIRS candidate pairs;
    the default is the serial kernel.
    """
    pos = np.asarray(positions, dtype=np.float64)
    typ = np.asarray(typ, dtype=np.int64)
    n = pos.shape[0]
    nb = int(rhi / h) + 3
    hist = np.zeros((ntype * ntype, nb))
    if n < 2:
        return hist
    lo = pos.min(0)
    hi = pos.max(0)
    ext = float((hi - lo).max())
    cs = max(rhi / 4.0, ext / 128.0, 1e-3)
    reach = int(math.ceil(rhi / cs - 1e-9))
    dims = np.maximum(1, ((hi - lo) / cs).astype(np.int64) + 1)
    ci = np.minimum(((pos - lo) / cs).astype(np.int64), dims - 1)
    cid = (ci[:, 0] * dims[1] + ci[:, 1]) * dims[2] + ci[:, 2]
    ncell = int(dims.prod())
    if threads is None or threads <= 1:
        # serial: one pass over rows of cells, atoms sorted by cell and by z inside a cell (so a row of cells
        # along z is one z-sorted run)
        order = np.lexsort((pos[:, 2], cid))
        cstart = np.zeros(ncell + 1, dtype=np.int64)
        np.cumsum(np.bincount(cid, minlength=ncell), out=cstart[1:])
        p = (pos[order] - 0.5 * (lo + hi)).astype(np.float32)
        xs, ys, zs = (np.ascontiguousarray(p[:, k]) for k in range(3))
        # scratch tail for the pairs out of [rlo, rhi]: wide enough for the farthest visited pair (cells whose
        # nearest points are within rhi: d <= rhi + 2 sqrt(3) cs, and never past the box diagonal)
        dvis = min(float(np.linalg.norm(hi - lo)), rhi + 2.0 * math.sqrt(3.0) * cs) + 2.0 * h
        ntail = int(dvis / h) + int(max(rlo, 0.0) / h) + 8
        flat = np.zeros(ntype * ntype * nb + ntail)
        kernels.hist_cluster_rows(xs, ys, zs, np.ascontiguousarray(typ[order]), cstart, dims, ntype, reach, cs,
                                  rlo, rhi, h, nb, flat)
        hist[:] = flat[:ntype * ntype * nb].reshape(ntype * ntype, nb)
        return _ordered(hist, ntype)
    key = cid * ntype + typ
    order = np.argsort(key, kind="stable")
    nseg = ncell * ntype
    seg = np.zeros(nseg + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=nseg), out=seg[1:])
    p = (pos[order] - 0.5 * (lo + hi)).astype(np.float32)
    xs, ys, zs = (np.ascontiguousarray(p[:, k]) for k in range(3))
    npairs = kernels.cluster_cell_pairs(seg, dims, ntype, reach, cs, rhi, np.empty((0, 3), dtype=np.int64))
    pairs = np.empty((npairs, 3), dtype=np.int64)
    kernels.cluster_cell_pairs(seg, dims, ntype, reach, cs, rhi, pairs)
    if threads is not None and threads > 1 and npairs > 1 and pairs[:, 2].sum() > PARALLEL_MIN_PAIRS:
        import numba
        cost = np.cumsum(pairs[:, 2].astype(np.float64))
        nchunk = min(int(threads), npairs)
        bounds = np.searchsorted(cost, cost[-1] * np.arange(1, nchunk) / nchunk, side="right")
        bounds = np.unique(np.concatenate([[0], bounds, [npairs]])).astype(np.int64)
        hist_t = np.zeros((len(bounds) - 1, ntype * ntype, nb))
        old = numba.get_num_threads()
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
        try:
            kernels.hist_cluster_cells_parallel(xs, ys, zs, seg, ntype, pairs, bounds, rlo, rhi, h, hist_t)
        finally:
            numba.set_num_threads(old)
        hist += hist_t.sum(0)
    else:
        kernels.hist_cluster_cells(xs, ys, zs, seg, ntype, pairs, 0, npairs, rlo, rhi, h, hist)
    return _ordered(hist, ntype)


def _ordered(hist: np.ndarray, ntype: int) -> np.ndarray:
    """Unordered pairs counted once in row (min, max) -> ordered pairs (both rows), in place."""
    for ta in range(ntype):
        hist[ta * ntype + ta] *= 2.0
        for tb in range(ta + 1, ntype):
            hist[tb * ntype + ta] = hist[ta * ntype + tb]
    return hist


# ------------------------------------------------------------------------------------------------- main entry
def compute_pdf(structure, *, radiation: str = "xray", rmin: float = 0.5, rmax: float = 30.0, rstep: float = 0.01,
                qmin: float = 0.0, qmax: float = 25.0, qdamp: float = 0.04, qbroad: float = 0.0,
                delta1: float = 0.0, delta2: float = 0.0, scale: float = 1.0, uiso=0.005,
                spdiameter: float = 0.0, method: str = "real", periodic: bool | None = None,
                check: bool = True, cache: PeriodicPairCache | None = None, uani=None, threads: int | None = None):
    """G(r) of a structure with diffpy.srreal's conventions.

    Parameters
    ----------
    structure : ase.Atoms, Model, catalog structure name or CIF path
        Periodic crystals use the cell; finite clusters (``periodic=False`` or no cell) use their atoms.
    radiation : {'xray', 'neutron'}
        X-ray form factors f(0) (real route) / f(Q) (Debye route), or neutron scattering lengths.
    rmin, rmax, rstep : float, A
        The r grid, ``arange(rmin, rmax + rstep/2, rstep)``.
    qmin, qmax : float, 1/A
        Termination (Qmax) and low-Q cut (Qmin; 0 for none).
    qdamp, qbroad : float, 1/A
        Instrumental Gaussian damping exp(-(qdamp r)^2 / 2) and Q-resolution peak broadening.
    delta1, delta2 : float, A and A^2
        Correlated-motion peak sharpening (1/r and 1/r^2 terms).
    scale : float
        Overall scale factor.
    uiso : float, dict or array, A^2
        Isotropic ADPs: one value, element -> value, or one per atom; None uses the structure's own
        (``Model.uiso``/``uani``, ase arrays ``'uiso'``/``'uani'``).
    spdiameter : float, A
        Diameter of a spherical-particle envelope (0: none).
    method : {'real', 'debye'}
        Real-space Gaussian peaks (periodic or finite), or the Debye equation for finite clusters.
    periodic : bool, optional
        Force the periodic or the cluster route (default: from the structure).
    check : bool
        Validate the arguments (names the argument and value on error).
    cache : PeriodicPairCache, optional
        Re-use the pair enumeration of an unchanged structure (fits, strained series) with anisotropic ADPs;
        isotropic ADPs bin the pairs in one enumerating pass, which is faster than reading cached pairs.
    uani : array, A^2, optional
        Cartesian anisotropic U, (3, 3) or (n, 3, 3) (real-space route).
    threads : int, optional
        See :func:`pdf_from_model`.

    Returns
    -------
    r : ndarray, shape ``(nr,)``, A
    G : ndarray, shape ``(nr,)``, 1/A^2
    """
    model = as_model(structure, periodic=periodic)
    if check:
        check_overlaps(model)
    return pdf_from_model(model, radiation=radiation, rmin=rmin, rmax=rmax, rstep=rstep, qmin=qmin, qmax=qmax,
                          qdamp=qdamp, qbroad=qbroad, delta1=delta1, delta2=delta2, scale=scale, uiso=uiso,
                          spdiameter=spdiameter, method=method, cache=cache, uani=uani, threads=threads)


def pdf_from_model(model: Model, *, radiation="xray", rmin=0.5, rmax=30.0, rstep=0.01, qmin=0.0, qmax=25.0,
                   qdamp=0.04, qbroad=0.0, delta1=0.0, delta2=0.0, scale=1.0, uiso=0.005, spdiameter=0.0,
                   method="real", cache: PeriodicPairCache | None = None, cell: np.ndarray | None = None,
                   sf_override: np.ndarray | None = None, cluster_baseline: tuple | None = None,
                   threads: int | None = None, uani=None):
    """G(r) of ``model``.  For a finite cluster, ``cluster_baseline=(rho0, diameter)`` subtracts the particle
    baseline 4 pi rho0 r gamma_sphere(r; diameter) (srreal's non-periodic G has none: the default).
    ``threads`` > 1: numba-parallel pair histogram for finite clusters (serial by default).
    Anisotropic ADPs: ``uani`` = Cartesian U (3x3 for every atom or (n, 3, 3), A^2), or ``uiso=None`` with a
    model that carries ``uani`` (e.g. from a CIF with aniso_U via :func:`structures.model_from_cif`); then each
    pair's sigma^2 uses n.(U_i + U_j).n along its bond (real-space route only)."""
    if method not in ("real", "debye"):
        raise ParameterError("method", method, "'real' or 'debye'")
    if radiation not in ("xray", "neutron"):
        raise ParameterError("radiation", radiation, "'xray' or 'neutron'")
    for nm, v in (("qdamp", qdamp), ("qbroad", qbroad), ("spdiameter", spdiameter)):
        if not (v >= 0):
            raise ParameterError(nm, v, "a non-negative number")
    if uani is None and uiso is None and model.uani is not None:
        uani = model.uani
    if uani is not None:
        uani = check_uani(uani, len(model.symbols), "uani")
        if method != "real":
            raise ParameterError("method", method, "'real' with anisotropic ADPs (uani)")
        uiso = np.trace(uani, axis1=1, axis2=2) / 3.0          # U_eq: types and scattering factors only
    u = _uiso_per_site(model, uiso)
    if method == "debye":
        if model.periodic:
            raise ParameterError("method", "debye", "'real' for a periodic structure (the Debye route needs a "
                                 "finite cluster)")
        return _debye(model, u, radiation, rmin, rmax, rstep, qmin, qmax, qdamp, qbroad, delta1, delta2, scale,
                      spdiameter, cluster_baseline, threads)
    umax = float(u.max()) if uani is None else float(np.linalg.eigvalsh(uani).max())
    grid = make_grid(rmin, rmax, rstep, qmin, qmax, umax)
    typ, tel, tu = _types(model, u, radiation)
    nt = len(tel)
    occ = model.occupancy
    if sf_override is not None:
        sf_site = np.asarray(sf_override, float) * occ
    else:
        sf_t = np.array([scattering_factor(e, radiation) for e in tel], dtype=np.float64)
        sf_site = sf_t[typ] * occ
    totocc = float(occ.sum())
    sfavg = float(sf_site.sum() / totocc)
    norm = 1.0 / (totocc * sfavg * sfavg) if totocc * sfavg != 0 else 0.0
    h = _hbin(rstep)
    nb = int(grid.rcalc_hi / h) + 3
    hist = np.zeros((nt * nt, nb))
    msd = (tu[:, None] + tu[None, :]).reshape(-1).copy()
    if model.periodic:
        c = np.ascontiguousarray(model.cell if cell is None else np.asarray(cell, dtype=np.float64))
        rho0 = totocc / abs(np.linalg.det(c))
        sfc = np.ascontiguousarray(sf_site, dtype=np.float64)
        if uani is not None:
            if cache is None or not cache.covers(c, grid.rcalc_hi):
                cache = PeriodicPairCache(Model(model.symbols, model.positions, model.cell, model.occupancy),
                                          grid.rcalc_hi * 1.05 / max(1e-3, _shrink(model.cell, c)))
            pw = sf_site[cache.pi] * sf_site[cache.pj] * norm
            return grid.r, _aniso_periodic(cache, pw, c, uani, grid, delta1, delta2, qbroad,
                                           rho0, qdamp, scale, spdiameter)
        # one pass that enumerates the unordered pairs within rcalc_hi and bins them: faster than streaming the
        # cached pairs (which reach the cache's larger cutoff) for every phase of the catalog, so the cache only
        # serves anisotropic ADPs
        kernels.hist_periodic_fused(np.ascontiguousarray(model.frac), c, _nrep(c, grid.rcalc_hi), typ, sfc, norm,
                                    nt, grid.rcalc_lo, grid.rcalc_hi, h, True, hist)
    elif uani is not None:
        rho0, shape_d = (0.0, 0.0) if cluster_baseline is None else map(float, cluster_baseline)
        rr = np.zeros(grid.kext_hi - grid.kext_lo)
        kernels.gauss_cluster_aniso(model.positions, sf_site * math.sqrt(norm), uani, grid.rcalc_lo,
                                    grid.rcalc_hi, float(delta1), float(delta2), float(qbroad),
                                    _halfboundrel(PEAKPRECISION), rstep, grid.kext_lo, rr)
        return grid.r, finish(rr, grid, rho0, qdamp, scale, spdiameter, shape_d)
    else:
        # per-type weights: f_a f_b * norm, with occupancy folded into the per-atom sf -> types carry occupancy
        # only if uniform; general case uses per-site types
        if np.allclose(sf_site, sf_site[typ_first(typ, nt)][typ]):
            wt = np.outer(sf_site[typ_first(typ, nt)], sf_site[typ_first(typ, nt)]) * norm
            cnt = cluster_histogram(model.positions, typ, nt, grid.rcalc_lo, grid.rcalc_hi, h, threads)
            rb = np.arange(nb) * h
            rinv = np.divide(1.0, rb, out=np.zeros(nb), where=rb > 0)   # 1/d per bin: O((h/d)^2) from 1/d per pair
            hist = cnt * wt.reshape(-1, 1) * rinv
        else:  # pragma: no cover - mixed occupancies inside one type (rare): one type per site
            raise ParameterError("occupancy", "varies within one element/U type",
                                 "the same occupancy for atoms of one element and Uiso in a cluster")
        rho0 = 0.0
    shape_d = 0.0
    if cluster_baseline is not None and not model.periodic:
        rho0, shape_d = float(cluster_baseline[0]), float(cluster_baseline[1])
    rr = np.zeros(grid.kext_hi - grid.kext_lo)
    kernels.gauss_sum(hist, h, msd, float(delta1), float(delta2), float(qbroad),
                      _halfboundrel(PEAKPRECISION), rstep, grid.kext_lo, rr)
    return grid.r, finish(rr, grid, rho0, qdamp, scale, spdiameter, shape_d)




def _aniso_periodic(cache, pw, cell, uani, grid, delta1, delta2, qbroad, rho0, qdamp, scale, spdiameter):
    rr = np.zeros(grid.kext_hi - grid.kext_lo)
    kernels.gauss_periodic_aniso(cache.dfrac, cache.pi, cache.pj, pw, cell, uani, grid.rcalc_lo, grid.rcalc_hi,
                                 float(delta1), float(delta2), float(qbroad), _halfboundrel(PEAKPRECISION),
                                 grid.rstep, grid.kext_lo, rr)
    return finish(rr, grid, rho0, qdamp, scale, spdiameter)


def _shrink(cell0: np.ndarray, cell: np.ndarray) -> float:
    m = np.linalg.solve(cell0, cell)
    return float(np.linalg.svd(m, compute_uv=False).min())


# ------------------------------------------------------------------------------------------------ Debye route
def debye_fq(model: Model, u: np.ndarray, radiation: str, q: np.ndarray, rlo: float, rhi: float, delta1=0.0,
             delta2=0.0, qbroad=0.0, h: float = 0.001, threads: int | None = None) -> np.ndarray:
    """F(Q) = Q[S(Q)-1] of a finite cluster from the Debye equation over pairs with rlo <= d <= rhi.

    F(Q) = sum_{i!=j} f_i(Q) f_j(Q) sin(Q d)/d exp(-sigma_ij^2 Q^2/2) / (N <f(Q)>^2), sigma as in real space.
    Pairs are binned (width ``h``, linear weights) per element/U type pair, so the cost is O(N*neighbours)
    for the histogram plus O(types^2 * bins * nQ) for the sum, and memory is O(N + bins).
    """
    typ, tel, tu = _types(model, u, radiation)
    nt = len(tel)
    occ = model.occupancy
    first = typ_first(typ, nt)
    occ_t = occ[first]
    if not np.allclose(occ, occ_t[typ]):
        raise ParameterError("occupancy", "varies within one element/U type",
                             "the same occupancy for atoms of one element and Uiso in a cluster")
    wt = np.outer(occ_t, occ_t)
    hist = cluster_histogram(model.positions, typ, nt, rlo, rhi, h, threads) * wt.reshape(-1, 1)
    msd = (tu[:, None] + tu[None, :]).reshape(-1).copy()
    part = np.zeros((nt * nt, len(q)))
    kernels.debye_partial(hist, h, msd, float(delta1), float(delta2), float(qbroad), np.ascontiguousarray(q), part)
    f = np.array([np.broadcast_to(scattering_factor(e, radiation, q), q.shape) for e in tel])   # (nt, nq)
    count_t = np.bincount(typ, minlength=nt).astype(float)
    totocc = float((count_t * occ_t).sum())
    favg = (count_t * occ_t) @ f / totocc
    num = np.einsum("an,bn,abn->n", f, f, part.reshape(nt, nt, -1))
    return num / (totocc * favg * favg)


def sine_nodes(fq: np.ndarray, padlen: int, nodes: np.ndarray) -> np.ndarray:
    """sum_k fq[k] sin(2 pi k n / padlen) at the integer ``nodes`` n, by one FFT of length ``padlen``.

    With Q_k = k dQ and r_n = n * 2 pi / (padlen dQ) this is the sine transform sum_k F(Q_k) sin(Q_k r_n) on
    srreal's padded r grid (len(fq) <= padlen)."""
    spec = np.fft.rfft(np.asarray(fq, dtype=np.float64), padlen)
    m = np.asarray(nodes) % padlen
    half = padlen // 2
    # rfft holds n <= padlen/2; the rest follow from sin(2 pi k (padlen - n)/padlen) = -sin(2 pi k n/padlen)
    return np.where(m <= half, -spec.imag[np.minimum(m, half)], spec.imag[np.minimum(padlen - m, half)])


def _debye(model, u, radiation, rmin, rmax, rstep, qmin, qmax, qdamp, qbroad, delta1, delta2, scale, spdiameter,
           cluster_baseline=None, threads=None):
    if qmax <= 0:
        raise ParameterError("qmax", qmax, "a positive Qmax (1/A) for the Debye route")
    grid = make_grid(rmin, rmax, rstep, qmin, qmax, float(u.max()), precision=DEBYEPRECISION)
    # srreal's DebyePDFCalculator: extension = ripples + tails (not rounded to steps), Q step = pi / rcalchi
    ext = min(12 * math.pi / qmax + _halfboundrel(DEBYEPRECISION) * _TOFWHM * math.sqrt(2 * float(u.max())),
              MAXEXTENSION)
    rlo = max(rmin - ext, 0.0)
    rhi = rmax + ext
    qstep = math.pi / rhi if qmax * rhi / math.pi > 4 else qmax / 4
    nq = int(math.ceil(qmax / qstep))
    q = np.arange(nq) * qstep
    fq = debye_fq(model, u, radiation, q, rlo, rhi, delta1, delta2, qbroad, threads=threads)
    nqmin = int(math.ceil(qmin / qstep))
    if _eps_eq(qmin, (nqmin - 1) * qstep):
        nqmin -= 1
    fq[:max(nqmin, 0)] = 0.0
    r = grid.r
    # srreal evaluates the sine transform on a padded grid (step 2 pi / (padlen qstep)) and interpolates
    # linearly onto r; we do the same so results agree with DebyePDFCalculator to rounding.
    nfromdr = int(2 * math.pi / rstep / qstep)
    padlen = 2 ** (int(math.floor(math.log2(max(nq, nfromdr)))) + 1)
    drpad = 2 * math.pi / (padlen * qstep)
    x = r / drpad
    ilo = x.astype(np.int64)
    wt = x - ilo
    nodes = np.arange(ilo.min(), ilo.max() + 2)
    gn = sine_nodes(fq, padlen, nodes) * ((2.0 / math.pi) * qstep)
    g = (1.0 - wt) * gn[ilo - nodes[0]] + wt * gn[ilo + 1 - nodes[0]]
    if cluster_baseline is not None:
        # the particle baseline is smooth: subtract it after termination (its band-limited form differs
        # only at r below ~2 pi/Qmax)
        g = g - 4 * math.pi * cluster_baseline[0] * r * spherical_envelope(r, cluster_baseline[1])
    env = scale * (np.exp(-0.5 * (qdamp * r) ** 2) if qdamp > 0 else 1.0)
    return r, g * env * spherical_envelope(r, spdiameter)
