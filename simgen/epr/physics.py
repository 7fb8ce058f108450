"""CW EPR spectrum of one spin system: orientation grid, resonance kernels, line shape in Fourier space.

Conventions follow EasySpin's ``pepper``: couplings (A, D, E) in MHz, widths in mT FWHM, ``lw`` Gaussian and
``lwL`` Lorentzian (a Voigt when both are set), microwave frequency in GHz, harmonic 0/1/2 (1 = first
derivative), ``mod_amp`` peak-to-peak in mT (pseudo-modulation), ``mw_phase`` in rad (0 = absorption).
Temperature is infinite (equal level populations), as in EasySpin's default.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import yaml
from scipy.special import j0, j1

from .. import catalogs
from ..errors import ParameterError
from . import grids, kernels

__all__ = ["SpinSystem", "Experiment", "Options", "nuclei", "isotopologues", "cw_spectrum"]


@functools.lru_cache(maxsize=None)
def _nuclei_table():
    with open(catalogs.find("epr/nuclei.yaml")) as f:
        return yaml.safe_load(f)


def nuclei() -> dict:
    """``{isotope: {I, gn, abundance}}`` from ``catalogs/epr/nuclei.yaml``."""
    return dict(_nuclei_table()["isotopes"])


@functools.lru_cache(maxsize=256)
def _isotopologues(nucleus):
    return tuple(isotopologues(nucleus))


def isotopologues(nucleus: str | None, field_name: str = "nucleus") -> list[tuple[float, float, float, float]]:
    """``[(abundance fraction, I, gn, A scale), ...]`` for an isotope ('63Cu') or a natural element ('Cu').

    The A scale is gn / gn(reference isotope); a non-magnetic remainder appears as I = 0.
    """
    if nucleus in (None, "", "none"):
        return [(1.0, 0.0, 0.0, 0.0)]
    tab = _nuclei_table()
    iso, el = tab["isotopes"], tab["elements"]
    if nucleus in iso:
        d = iso[nucleus]
        return [(1.0, float(d["I"]), float(d["gn"]), 1.0)]
    if nucleus in el:
        ref = iso[el[nucleus][0]]
        out = []
        for name in el[nucleus]:
            d = iso[name]
            out.append((d["abundance"] / 100.0, float(d["I"]), float(d["gn"]), d["gn"] / ref["gn"]))
        rest = 1.0 - sum(o[0] for o in out)
        if rest > 1e-6:
            out.append((rest, 0.0, 0.0, 0.0))
        return out
    raise ParameterError(field_name, nucleus, "a magnetic isotope (e.g. 63Cu, 14N) or element (Cu, Ti) from "
                         "catalogs/epr/nuclei.yaml: " + ", ".join([*iso, *el]))


def _tup3(v, name):
    """Three principal values as a tuple of float (a scalar is repeated)."""
    if isinstance(v, (int, float)):
        return (float(v),) * 3
    if type(v) in (list, tuple) and len(v) == 3:     # the common case, without the generator below
        return (float(v[0]), float(v[1]), float(v[2]))
    try:
        t = tuple(float(u) for u in v)
    except TypeError:
        return (float(v),) * 3
    if len(t) != 3:
        raise ParameterError(name, v, "a number or three principal values [x, y, z]")
    return t


def _vec3(v, name):
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return np.full(3, float(a))
    if a.shape != (3,):
        raise ParameterError(name, v, "a number or three principal values [x, y, z]")
    return a.copy()


@dataclass
class SpinSystem:
    """One paramagnetic centre (tensors collinear, principal axes x, y, z)."""

    S: float = 0.5
    g: object = 2.0023
    nucleus: str | None = None
    A: object = 0.0            # MHz, for the reference isotope
    n_equiv: int = 1           # equivalent nuclei (perturbative route only)
    D: float = 0.0             # MHz
    E: float = 0.0             # MHz
    lw: float = 0.5            # Gaussian FWHM, mT
    lwL: float = 0.0           # Lorentzian FWHM, mT
    g_strain: object = 0.0     # FWHM of g along x, y, z
    A_strain: float = 0.0      # FWHM of A, MHz (width grows with |m_I|)
    weight: float = 1.0

    def check(self, prefix: str = "") -> None:
        self.prepared(prefix)

    def prepared(self, prefix: str = ""):
        """Validate and return ``(S, g, A, g_strain, isotopologues)`` (g, A, g_strain as 3-tuples of float)."""
        S = float(self.S)
        S2 = 2 * S
        if not (S2 >= 1 - 1e-9 and abs(S2 - round(S2)) < 1e-9 and round(S2) % 2 == 1):
            raise ParameterError(prefix + "S", self.S, "a half-integer electron spin 1/2, 3/2, 5/2, 7/2 (Kramers)")
        if S > 3.5:
            raise ParameterError(prefix + "S", self.S, "S <= 7/2")
        g = _tup3(self.g, "g")
        for ax, gi in zip("xyz", g):
            if not (gi > 0 and math.isfinite(gi)):
                raise ParameterError(prefix + f"g_{ax}", float(gi), "g > 0")
        lw, lwL = float(self.lw), float(self.lwL)
        if not (lw >= 0 and math.isfinite(lw)):
            raise ParameterError(prefix + "lw", self.lw, "a Gaussian FWHM >= 0 mT")
        if not (lwL >= 0 and math.isfinite(lwL)):
            raise ParameterError(prefix + "lwL", self.lwL, "a Lorentzian FWHM >= 0 mT")
        if lw == 0 and lwL == 0:
            raise ParameterError(prefix + "lw", self.lw, "lw > 0 or lwL > 0 (some line width)")
        gs = _tup3(self.g_strain, "g_strain")
        if min(gs) < 0:
            raise ParameterError(prefix + "g_strain", self.g_strain, "FWHM >= 0")
        if self.A_strain < 0:
            raise ParameterError(prefix + "A_strain", self.A_strain, "FWHM >= 0 MHz")
        nuc = self.nucleus if self.nucleus not in ("", "none") else None
        try:
            isos = _isotopologues(nuc)
        except ParameterError:
            isotopologues(nuc, prefix + "nucleus")
            raise
        if int(self.n_equiv) != self.n_equiv or self.n_equiv < 1:
            raise ParameterError(prefix + "n_equiv", self.n_equiv, "an integer >= 1")
        A = _tup3(self.A, "A") if nuc is not None else (0.0, 0.0, 0.0)
        return S, g, A, gs, isos


@dataclass
class Experiment:
    field: np.ndarray                 # mT, uniform
    mw_freq: float = 9.5              # GHz
    harmonic: int = 1
    mod_amp: float = 0.0              # mT peak-to-peak
    mw_phase: float = 0.0             # rad


@dataclass
class Options:
    method: str = "auto"              # auto | perturb | exact
    n_theta: int = 19                 # orientation knots over 0..90 deg, S = 1/2 closed form (convergence)
    refine: int = 4                   # interpolation factor between knots, axial grids (EasySpin: 4)
    refine_2d: int = 3                # the same on 2-D (rhombic) grids: 9 instead of 16 sub-cells per cell; on
    #                                   case b of refs/epr nRMS goes from 3.8e-4 to 4.7e-4 and the time down by 1/3
    refine_zfs: int = 2               # ... for S > 1/2 with |D| + 3|E| >= the microwave quantum: there the knot
    #                                   interpolation error dominates; 2 and 3 give the same error vs a 61-row
    #                                   grid within 1 % on 8 systems (S 3/2 .. 7/2, zfs / h nu 0.95 .. 3.2) and
    #                                   case f of refs/epr (1.21e-3), 4 instead of 9 sub-cells (below, 2 doubled
    #                                   the error of some: 3 is kept there); with octant triangles missing a
    #                                   line left out (simulator version 5) 2 is 13 % worse than 3 on D 9000,
    #                                   E 2700 MHz (2.75e-3 vs 2.44e-3 nRMS), both below powder_tol
    exact_threshold: float = 0.03     # auto: exact when max|A| I / nu exceeds this (S = 1/2)
    rel_threshold: float = 1e-4       # drop exact-route lines weaker than this fraction
    width_ratio: float = 1.06         # ratio of neighbouring Gaussian-width classes (strains)
    n_nodes: int = 0                  # field nodes of the exact route (0 = automatic)
    quintic: bool = True              # S = 1/2 exact route: curvature-augmented (quintic) level interpolation
    direct_iso: bool = True           # isotropic Gaussian lines without modulation/phase: direct line shapes
    n_theta_exact: int = 19           # knots of the exact route for S = 1/2 (0 = n_theta)
    n_theta_zfs: int = 13             # knots of the exact route for S > 1/2 (0 = n_theta_exact)
    n_theta_zfs_rhombic: int = 21     # ... on the 2-D (octant) grid (partial-line cells dominate the error); with
    #                                   powder_tol the most rows of a nested ladder (grids.row_ladder: 6, 11, 21)
    powder_tol: float = 1e-2          # S > 1/2 on the octant grid: the rows are the first of the ladder whose
    #                                   spectrum differs from the next coarser one's by at most this nRMS (max-
    #                                   normalised; that difference overestimated the error vs a 97-row grid on
    #                                   7 of 7 Fe3+ systems, D 9-30 GHz, measured with simulator version 4's
    #                                   corner deposits, not again since); the finer grids reuse the coarser knots.
    #                                   0 = always n_theta_zfs_rhombic rows.  On the 1-D (axial) grid the
    #                                   same test runs on the knot ladder n_theta_zfs / 2, n_theta_zfs, and on
    #                                   by halving the intervals up to n_theta_zfs_max knots: Cr3+ (D -1.8 to
    #                                   -5.3 GHz) and Mn2+ (|D| 300-800 MHz) in epr-oxides were 4e-3 .. 1.7e-2
    #                                   nRMS (0.03-0.19 in a point) off 321 / 81 knots on the fixed 11
    #                                   (scripts/epr_grid_convergence.py)
    n_theta_zfs_max: int = 97         # the most knots of that axial ladder (0: n_theta_zfs, fixed)
    max_oversample: int = 4           # at most this many computation points per output step
    max_width_classes: int = 12       # Gaussian-width classes for strain broadening (FFT per class)
    max_roots: int = 2                # resonances kept per level pair (looping transitions)
    tri_grid: str = "exact"           # rhombic grids as triangular octant knots (grids.tri_grid, the pole one
    #                                   knot, n (n+1)/2 knots instead of n^2): "exact" route only, "all", "none"
    hyperfine: str = "auto"           # S > 1/2 with a nucleus: "auto" = the electron spin exactly and the
    #                                   hyperfine coupling to second order (kernels.hf_knots) where
    #                                   max|A| I < hf_threshold * nu and |D| + 3|E| <= hf_zfs_max * nu;
    #                                   "exact" = the full product space always
    hf_threshold: float = 0.08
    hf_zfs_max: float = 0.01          # (the forbidden-line intensities miss the admixture of other electron
    #                                   levels, an error growing with D A: nRMS vs the product space <= 6e-3 for
    #                                   Mn2+ at X band up to this limit, 1e-2 .. 4e-2 at |D| = 300 .. 800 MHz)
    hf_forbidden: int = 1             # hf route: nuclear |delta m| <= this (tilted nuclear quantisation axes)
    node_tol: float = 0.05            # exact route away from high field, automatic node count: intervals between
    #                                   field nodes are halved, knot by knot, until the cubic and the quintic
    #                                   level interpolants agree on every line above 1 % within this fraction of
    #                                   the widest line width (lw, lwL) (0 = the fixed count)
    node_depth: int = 6               # ... at most this many halvings of a start interval
    node_extra: int = 96              # ... and this many added nodes per knot
    node_adaptive: str = "local"      # "local": the halving above; "global": one node count for all knots, doubled
    #                                   until the fields of probe knots move by less than node_tol widths
    fft_window: bool = True           # derivative spectra: transform only the grid columns with sticks and a
    #                                   margin (cw_spectrum) when that is under 60 % of the grid
    binning: str = "easyspin"         # "easyspin": box bins [x_i, x_i+1) on the output step, as EasySpin's
                                      # projection (puts lines dx/2 low); "hat": unbiased linear binning


@functools.lru_cache(maxsize=64)
def _grid(sym: str, n_theta: int):
    if sym == "iso":
        th, ph = np.array([0.0]), np.array([0.0])
    elif sym == "axial":
        th, ph = np.linspace(0, np.pi / 2, n_theta), np.array([0.0])
    else:
        th = np.linspace(0, np.pi / 2, n_theta)
        ph = np.linspace(0, np.pi / 2, max(3, n_theta))
    T, P = np.meshgrid(th, ph, indexing="ij")
    nvec = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], axis=-1).reshape(-1, 3)
    return th, ph, np.ascontiguousarray(nvec)


def _symmetry(S, g, A, gs, D, E, has_nuc: bool) -> str:
    """'iso', 'axial' (x = y) or 'rhombic' from the principal values (tuples)."""
    if not has_nuc:
        A = (0.0, 0.0, 0.0)
    zfs = S > 0.5 and (D != 0 or E != 0)
    if (g[0] == g[1] == g[2] and A[0] == A[1] == A[2] and gs[0] == gs[1] == gs[2] and not zfs):
        return "iso"
    if g[0] == g[1] and A[0] == A[1] and gs[0] == gs[1] and E == 0:
        return "axial"
    return "rhombic"


@functools.lru_cache(maxsize=256)
def _isotopologue_sets(isos, n_equiv: int):
    """``[(fraction, ((I, gn, A scale), ...)), ...]``: every way to fill ``n_equiv`` equivalent sites with the
    isotopes of ``isos`` (multinomial weights); non-magnetic isotopes are left out of the nuclei tuple."""
    n = max(int(n_equiv), 1)
    out = []
    for combo in itertools.combinations_with_replacement(range(len(isos)), n):
        counts = np.bincount(combo, minlength=len(isos))
        w = math.factorial(n)
        for c, e in zip(counts, isos):
            w = w / math.factorial(int(c)) * e[0] ** int(c)
        nucs = tuple((isos[k][1], isos[k][2], isos[k][3]) for k in combo if isos[k][1] > 0)
        out.append((w, nucs))
    return out


@functools.lru_cache(maxsize=256)
def _mcombos(Is):
    """Nuclear m of every line (rows) for nuclei of spins ``Is``."""
    if not Is:
        return np.zeros((1, 0))
    out = np.array(list(itertools.product(*[np.arange(-I, I + 0.5) for I in Is])),
                   dtype=np.float64).reshape(-1, len(Is))
    out.flags.writeable = False
    return out


def _knots_for(sys: SpinSystem, entry, mw_mhz, nvec, Bext, opt: Options, prep=None, method=None, nodes=None,
               info=None, probe_nvec=None):
    """(B, I, W, partner) knot arrays of one isotopologue ``(fraction, ((I, gn, A scale), ...))``.

    Exact route: ``nodes`` fixes the field-node count (else automatic, converged on knots drawn from
    ``probe_nvec``, default ``nvec``); the count used is written to ``info["n_nodes"]`` when info is a dict."""
    frac, nucs = entry
    _, gt, At, gst, _ = prep if prep is not None else sys.prepared()
    g = np.array(gt)
    gs = np.array(gst)
    A0 = np.array(At)
    if method is None:
        method = opt.method
        big = max((max(abs(a * sc) for a in At) * I for I, _, sc in nucs), default=0.0)
        if method == "auto":
            method = "exact" if (sys.S > 0.5 or (len(nucs) == 1 and big / mw_mhz > opt.exact_threshold)) \
                else "perturb"
        if sys.S > 0.5:
            method = "exact"
    if len(nucs) > 1:
        if sys.S > 0.5:
            raise ParameterError("n_equiv", len(nucs), "1 for S > 1/2 (equivalent nuclei use the S = 1/2 "
                                 "perturbative route)")
        method = "perturb"
    if method == "perturb":
        combos = _mcombos(tuple(I for I, _, _ in nucs))
        if nucs:
            Aall = np.array([[a * sc for a in At] for _, _, sc in nucs], dtype=np.float64).reshape(-1, 3)
            Ival = np.array([I for I, _, _ in nucs], dtype=np.float64)
            astr = np.full(len(nucs), float(sys.A_strain))
        else:
            Aall, Ival, astr = np.empty((0, 3)), np.empty(0), np.empty(0)
        L = combos.shape[0]
        cw = _ones(L)
        K = nvec.shape[0]
        B = np.empty((K, L))
        In = np.empty((K, L))
        W = np.empty((K, L))
        kernels.s12_knots(nvec, g, gs, Aall, Ival, combos, cw, astr, mw_mhz, B, In, W)
        return B, In, W, _partners(L, 1), frac / L
    I, gn, ascale = nucs[0] if nucs else (0.0, 0.0, 0.0)
    A = A0 * ascale
    lo, hi = Bext
    zfs = abs(sys.D) + 3 * abs(sys.E)
    high_field = zfs < 0.15 * mw_mhz
    Amax = max(abs(a) for a in A)
    # S > 1/2 with a nucleus, small zero-field splitting: the electron spin exactly, the hyperfine coupling to
    # second order (kernels.hf_knots) instead of the nS (2I + 1) product space
    hf_pert = (sys.S > 0.5 and I > 0 and opt.hyperfine == "auto" and zfs <= opt.hf_zfs_max * mw_mhz
               and Amax * I < opt.hf_threshold * mw_mhz)
    # exact: one nucleus (or none)
    if hf_pert:
        H0, Sx, Sy, Sz = kernels.electron_ops(float(sys.S), float(sys.D), float(sys.E))
        N = H0.shape[0] * int(round(2 * I + 1))
    else:
        H0, Gx, Gy, Gz, _, _, _ = kernels.build_ops(float(sys.S), float(I), g, A, float(gn),
                                                    float(sys.D), float(sys.E))
        N = H0.shape[0]
    if high_field:
        # high-field regime: all allowed lines lie within the fine-structure + hyperfine spread of g ~ gmin..gmax
        spread = (2 * sys.S - 1) * zfs + 1.2 * I * Amax + 0.05 * mw_mhz
        b_lo = (mw_mhz - 1.3 * spread) / (max(gt) * kernels.BMAGN)
        b_hi = (mw_mhz + 1.3 * spread) / (min(gt) * kernels.BMAGN)
        lo, hi = max(lo, b_lo), min(hi, b_hi)
        if hi <= lo:
            lo, hi = Bext
    span = hi - lo
    # levels are smooth in B except where the zero-field splitting (total spread ~ (|D| + 3|E|)(S^2 - 1/4)) is
    # comparable with the microwave quantum (anticrossings, looping transitions): more nodes there
    r = zfs * (sys.S ** 2 - 0.25) / mw_mhz
    extra = 20.0 * r / (1.0 + r * r) if (r > 0.3 and not high_field) else 0.0
    quintic = bool(opt.quintic) and sys.S == 0.5 and high_field
    if quintic:
        # S = 1/2 at high field: levels are smooth, with curvatures (quintic Hermite) two nodes per 400 mT
        n_nodes = opt.n_nodes or int(min(max(2 + span / 400.0, 2), 24))
    else:
        n_nodes = opt.n_nodes or int(min(max(3 + span / (250.0 if sys.S == 0.5 else 150.0) + extra, 3), 24))
    b0, b1 = max(lo, 0.5), max(hi, 1.0)
    if hf_pert:
        nS = H0.shape[0]
        dmax = int(opt.hf_forbidden)
        L = nS * (nS - 1) // 2 * int(round(2 * I + 1)) * (2 * dmax + 1) * opt.max_roots
        Uy, muy = _iy_eig(float(I))
    else:
        L = N * (N - 1) // 2 * opt.max_roots

    # away from high field a looping transition can open and close between two nodes: its two roots are taken
    # from the cubic interpolant's dip below zero
    dips = not high_field and not quintic

    # away from high field, automatic node count: the start nodes are halved where the levels are not resolved
    # (kernels.exact_knots_adaptive), knot by knot
    adaptive = not opt.n_nodes and not quintic and not high_field and opt.node_tol > 0 and not hf_pert
    wl = max(float(sys.lw), float(sys.lwL))
    if opt.node_adaptive not in ("local", "global"):
        raise ParameterError("node_adaptive", opt.node_adaptive, '"local" or "global"')
    if adaptive:
        for name in ("node_depth", "node_extra"):
            v = getattr(opt, name)
            if int(v) != v or v < 0:
                raise ParameterError(name, v, "an integer >= 0")

    def run(nv, nn, Ah=None, fixed=False):
        """Knot arrays on nn field nodes (the start nodes of the adaptive route unless ``fixed``); ``Ah``: other
        hyperfine principal values than A (the A-strain differences below)."""
        Bn = np.array([b0 + (b1 - b0) * j / (nn - 1) for j in range(nn)])
        out = tuple(np.empty((nv.shape[0], L)) for _ in range(3))
        if hf_pert:
            kernels.hf_knots(nv, H0, Sx, Sy, Sz, float(I), g, A if Ah is None else Ah, float(gn), gs, mw_mhz, Bn,
                             opt.rel_threshold, Uy, muy, dmax, *out)
            return out
        ops = (H0, Gx, Gy, Gz) if Ah is None else kernels.build_ops(float(sys.S), float(I), g, Ah, float(gn),
                                                                    float(sys.D), float(sys.E))[:4]
        if adaptive and not fixed:
            kernels.exact_knots_adaptive(nv, *ops, float(sys.S), float(I), g, float(gn), gs, mw_mhz, Bn,
                                         opt.rel_threshold, *out, opt.node_tol * wl, int(opt.node_depth),
                                         int(opt.node_extra))
        else:
            kernels.exact_knots(nv, *ops, float(sys.S), float(I), g, float(gn), gs, mw_mhz, Bn,
                                opt.rel_threshold, *out, quintic, dips)
        return out

    if nodes is not None:
        n_nodes = int(nodes)
    elif adaptive and opt.node_adaptive == "global":
        adaptive = False
        n_nodes = _converged_nodes(run, nvec if probe_nvec is None else probe_nvec, n_nodes, opt.node_tol * wl,
                                   _partners(L, opt.max_roots) if opt.max_roots == 2 else None, 4.0 * wl)
    if info is not None:
        info["n_nodes"] = n_nodes
    B, In, W = run(nvec, n_nodes)
    if I > 0 and sys.A_strain > 0:
        nn = n_nodes if not adaptive else min(4 * n_nodes, 193)
        B0 = B if (not adaptive or sys.S == 0.5) else run(nvec, nn, fixed=True)[0]
        W = _a_strain_widths(run, nvec, nn, B0, W, A, g, float(I), float(sys.S), mw_mhz, float(sys.A_strain))
    # lines without any resonance stay in (NaN fields are skipped by powder_bin); partner = the other root of
    # the same level pair (line index pair * R + r)
    return B, In, W, _partners(L, opt.max_roots), frac / (2 * I + 1)


def _a_strain_widths(run, nvec, nn, B, W, A, g, I, S, mw_mhz, A_strain):
    """Line widths (mT) of the exact routes with the A strain added in quadrature to the g-strain widths W:
    |m_I| A_strain / (dnu/dB) for a Gaussian FWHM ``A_strain`` (MHz) of the hyperfine values, the definition of
    the second-order route (kernels.s12_knots) and of EasySpin's field-swept simulations.

    S = 1/2: each line takes the A-strain width of the nearest line of the second-order route at its knot (the
    line of the same m_I: the two routes' fields differ by far less than the hyperfine spacing).  S > 1/2: with
    all of A scaled by 1 + lambda a line's field moves by B1 lambda + B2 (2 lambda + lambda^2) + ..., B1 = m_I K
    / (dnu/dB) the first-order hyperfine shift (K: the hyperfine value along the field's direction in the g
    frame) and B2 the second-order one, so B1 = B'(0) - B''(0) up to third order; both from central differences
    (lambda = +-1e-2) of runs on the same nn fixed field nodes (B: the fields of the run with A), and W_A =
    |B1| A_strain / K.  Lines missing in any run, and orientations with K = 0, get none."""
    A = np.asarray(A, dtype=np.float64)
    if S == 0.5:
        Bp = np.empty((nvec.shape[0], int(round(2 * I + 1))))
        Ip, Wp = np.empty_like(Bp), np.empty_like(Bp)
        kernels.s12_knots(nvec, np.asarray(g, dtype=np.float64), np.zeros(3), A[None, :], np.array([float(I)]),
                          _mcombos((float(I),)), _ones(Bp.shape[1]), np.array([A_strain]), mw_mhz, Bp, Ip, Wp)
        with np.errstate(invalid="ignore"):
            near = np.argmin(np.abs(np.nan_to_num(B, nan=np.inf)[:, :, None] - np.nan_to_num(Bp, nan=-np.inf)[:, None, :]),
                             axis=2)
        wa = np.take_along_axis(Wp, near, axis=1)
    else:
        lam = 1e-2
        Bp = run(nvec, nn, A * (1.0 + lam), fixed=True)[0]
        Bm = run(nvec, nn, A * (1.0 - lam), fixed=True)[0]
        b1 = (Bp - Bm) / (2.0 * lam) - (Bp - 2.0 * B + Bm) / (lam * lam)
        gn = nvec * np.asarray(g)[None, :]
        K = np.sqrt(((gn * A[None, :]) ** 2).sum(axis=1)) / np.sqrt((gn * gn).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            wa = np.abs(b1) * (A_strain / K)[:, None]
    wa = np.where(np.isfinite(wa) & np.isfinite(B), wa, 0.0)
    return np.sqrt(W * W + wa * wa)


def _converged_nodes(run, nvec, n0, tol, partner=None, near_mT=0.0, n_probe=None, n_max=193):
    """Field-node count at which the resonance fields have converged: on ``n_probe`` knots spread over the grid
    (default: one in sixteen, 3 to 6),
    the node count is doubled (n -> 2n - 1, nested nodes) until every line above 1 % of its knot's strongest
    appears in both runs and moves by less than ``tol`` mT; returns the coarser count of that comparison (the
    starting count ``n0`` where it has already converged; at most ``n_max``).  Lines whose partner root
    (``partner[l]``, -1 if none) lies within ``near_mT`` mT are left out of the comparison."""
    K = nvec.shape[0]
    if n_probe is None:
        n_probe = min(max(3, K // 16), 6)
    pv = nvec[np.unique(np.linspace(0, K - 1, min(n_probe, K)).round().astype(np.int64))]
    n = n0
    B0, I0, _ = run(pv, n)
    while n < n_max:
        n2 = 2 * n - 1
        B1, I1, _ = run(pv, n2)
        strong = ((I0 > 0.01 * I0.max(axis=1, keepdims=True)) | (I1 > 0.01 * I1.max(axis=1, keepdims=True)))
        if partner is not None:
            # the two roots of a looping transition close to coalescence move fast with any change of the
            # levels (the field goes as the square root of the distance to tangency) while their lines merge
            # into one (binned up to the coalescence point): left out
            near = np.zeros_like(strong)
            for Bx in (B0, B1):
                with np.errstate(invalid="ignore"):
                    near |= np.abs(Bx - Bx[:, partner]) < near_mT
            strong &= ~near
        both = np.isfinite(B0) & np.isfinite(B1)
        if not np.any(strong & ~both) and not np.any(np.abs(B1 - B0)[strong & both] > tol):
            return n
        n, B0, I0 = n2, B1, I1
    return n


@functools.lru_cache(maxsize=16)
def _iy_eig(I):
    """Eigenvalues and eigenvectors (columns) of the nuclear I_y (|m> descending), for the overlaps of nuclear
    states quantised along two axes (``kernels.hf_knots``)."""
    n = int(round(2 * I + 1))
    m = I - np.arange(n)
    sp = np.zeros((n, n))
    for k in range(1, n):
        sp[k - 1, k] = math.sqrt(I * (I + 1) - m[k] * (m[k] + 1))
    mu, U = np.linalg.eigh((sp - sp.T) / 2j)
    U = np.ascontiguousarray(U)
    for a in (mu, U):
        a.flags.writeable = False
    return U, mu


@functools.lru_cache(maxsize=256)
def _ones(L):
    out = np.ones(L)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=256)
def _partners(L, R):
    out = np.arange(L, dtype=np.int64) ^ 1 if R == 2 else np.full(L, -1, dtype=np.int64)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=1024)
def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast pocketfft sizes)."""
    best = 1 << int(math.ceil(math.log2(n)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


@functools.lru_cache(maxsize=64)
def _freqs(nfft: int, d: float):
    f = np.fft.rfftfreq(nfft, d)
    return f, f * f


@functools.lru_cache(maxsize=64)
def _common_factor_cached(nfft, d, gam, harmonic, mod_amp, mw_phase, kmax=None):
    """``_common_factor`` on the first ``kmax`` (all when None) frequencies of an nfft-point rfft of step d."""
    out = _common_factor(_freqs(nfft, d)[0][:kmax], gam, harmonic, mod_amp, mw_phase)
    out.flags.writeable = False
    return out


def _common_factor(f, gam, harmonic, mod_amp, mw_phase):
    """Fourier-space factor shared by all Gaussian classes: Lorentzian, harmonic/modulation, phase."""
    out = np.exp(-np.pi * gam * np.abs(f)) if gam > 0 else np.ones_like(f)
    out = out.astype(np.complex128)
    if mod_amp > 0:
        z = np.pi * f * mod_amp
        if harmonic == 0:
            J = j0(z)
        elif harmonic == 1:
            J = j1(z)
        else:  # J2 = 2 J1 / z - J0 (J2 ~ z^2 / 8 near 0)
            J0, J1 = j0(z), j1(z)
            with np.errstate(divide="ignore", invalid="ignore"):
                J = np.where(np.abs(z) > 1e-3, 2.0 * J1 / np.where(z == 0, 1.0, z) - J0, z * z / 8.0)
        if harmonic > 0:
            out *= (2.0 * (1j ** harmonic) / (mod_amp / 2.0) ** harmonic) * J
        else:
            out *= J
    elif harmonic > 0:
        out *= (2j * np.pi * f) ** harmonic
    if mw_phase != 0:
        out *= np.exp(-1j * mw_phase)
    return out


def _scipy_rfft_rows(a, nfft):
    return scipy.fft.rfft(a, nfft, axis=1)


def _scipy_irfft(a, nfft):
    return scipy.fft.irfft(a, nfft)


def _fft_pair():
    """(rfft of the rows of a 2-D array zero-padded to nfft, irfft of a 1-D array to nfft points): SciPy's
    pocketfft called without the ``scipy.fft`` front end (its argument handling costs as much as a 1280-point
    transform), after checking on a test array that it returns exactly what ``scipy.fft`` returns; else
    ``scipy.fft`` itself."""
    try:
        from scipy.fft._pocketfft import pypocketfft as pp

        def rfft_rows(a, nfft):
            if a.shape[1] != nfft:
                t = np.zeros((a.shape[0], nfft))
                t[:, :a.shape[1]] = a
                a = t
            return pp.r2c(a, (1,), True, 0, None, 1)

        def irfft(a, nfft):            # a: the nfft // 2 + 1 non-negative frequencies
            return pp.c2r(a, (0,), nfft, False, 2, None, 1)

        x = np.random.default_rng(7).standard_normal((2, 45))
        F = rfft_rows(x, 60)
        if np.array_equal(F, _scipy_rfft_rows(x, 60)) and np.array_equal(irfft(F[1], 60), _scipy_irfft(F[1], 60)):
            return rfft_rows, irfft
    except Exception:       # a SciPy without this private module or with another signature
        pass
    return _scipy_rfft_rows, _scipy_irfft


_rfft_rows, _irfft = _fft_pair()
_DEFAULT_OPTIONS = Options()
_SQ2LN2 = 2.0 * math.sqrt(2.0 * math.log(2.0))
_SQ20 = math.sqrt(20.0)


def cw_spectrum(systems, exp: Experiment, opt: Options | None = None, field_offset: float = 0.0) -> np.ndarray:
    """CW EPR spectrum of one or several spin systems.

    Parameters
    ----------
    systems : SpinSystem or sequence of SpinSystem
        Each with its g (principal values), nuclei and hyperfine A (MHz), zero-field splitting D/E (MHz), line
        widths ``lw`` (Gaussian) and ``lwL`` (Lorentzian, mT, peak-to-peak), strains and ``weight``; the spectra
        are summed with those weights.
    exp : Experiment
        Field axis ``field`` (mT, uniform), microwave frequency ``mw_freq`` (GHz), harmonic (0: absorption, 1: first
        derivative, ...), modulation amplitude ``mod_amp`` (mT, peak-to-peak) and phase ``mw_phase`` (rad).
    opt : Options, optional
        Powder grid sizes, binning, oversampling and the exact-diagonalisation switches (defaults suit corpora).
    field_offset : float, mT
        The recorded field is the true field plus this offset.

    Returns
    -------
    ndarray, float64, shape ``(len(exp.field),)``
        The spectrum on ``exp.field`` (arbitrary units; not normalised).
    """
    opt = opt or _DEFAULT_OPTIONS
    if isinstance(systems, SpinSystem):
        systems = (systems,)
    preps = [s.prepared() for s in systems]
    x = exp.field
    n = len(x)
    x0, x1 = float(x[0]), float(x[-1])
    dx = (x1 - x0) / (n - 1)
    mw_mhz = float(exp.mw_freq) * 1e3
    if len(systems) == 1:
        wmin = wmax = max(systems[0].lw, systems[0].lwL)
    else:
        wmin = min(max(s.lw, s.lwL) for s in systems)
        wmax = max(max(s.lw, s.lwL) for s in systems)
    sub = min(max(1, int(math.ceil(dx / (wmin / 5.0)))), opt.max_oversample)
    dxc = dx / sub
    margin = max(6.0 * wmax, 3.0 * exp.mod_amp, 20 * dx)
    m = int(math.ceil(margin / dxc))
    xc0 = x0 - field_offset - m * dxc
    nb = (n - 1) * sub + 1 + 2 * m
    Bext = (xc0, xc0 + (nb - 1) * dxc)
    # the computation grid extended below by up to sub - 1 points so that m is a multiple of sub (the output
    # points are every sub-th from index 0 on: the folded inverse FFT at the end); Bext (the exact route's
    # field range) stays as it was
    pad = -m % sub
    m, xc0, nb = m + pad, xc0 - pad * dxc, nb + pad
    gaussian = exp.mw_phase == 0 and all(s.lwL == 0 for s in systems)
    nfft = _nfft_for(nb, m, gaussian)
    total = None
    nt_exact = opt.n_theta_exact or opt.n_theta
    # solution (isotropic) spectra of Gaussian lines without modulation or phase: the line shapes are evaluated
    # directly on the output grid (no stick spectrum, no FFT); same normalisation as the FFT route
    direct = (exp.mod_amp == 0 and exp.mw_phase == 0 and int(exp.harmonic) in (0, 1, 2)
              and all(s.lwL == 0 for s in systems) and opt.direct_iso)
    ydir = np.zeros(n) if direct else None
    used_direct = False
    work = []                                        # (stick, class widths, lw, lwL) of each FFT-route system
    for s, (S, g, A, gs, isos) in zip(systems, preps):
        has_nuc = any(e[1] > 0 for e in isos)
        sym = _symmetry(S, g, A, gs, s.D, s.E, has_nuc)
        sets = _isotopologue_sets(isos, int(s.n_equiv) if has_nuc else 1)
        big = max(max(abs(a) for a in A) * abs(e[3]) * e[1] for e in isos) if has_nuc else 0.0
        exact = S > 0.5 or (int(s.n_equiv) == 1 and (opt.method == "exact" or (
            opt.method == "auto" and has_nuc and big / mw_mhz > opt.exact_threshold)))
        if S > 0.5:
            nt = (opt.n_theta_zfs or nt_exact) if sym != "rhombic" else max(opt.n_theta_zfs, opt.n_theta_zfs_rhombic)
        else:
            nt = nt_exact if exact else opt.n_theta
        rf = int(opt.refine) if sym == "axial" else int(opt.refine_2d)
        if S > 0.5 and sym == "rhombic" and abs(s.D) + 3 * abs(s.E) >= mw_mhz:
            rf = min(rf, int(opt.refine_zfs))
        tri = None
        if sym == "rhombic" and (opt.tri_grid == "all" or (opt.tri_grid == "exact" and exact)):
            tri = grids.tri_grid(nt, rf)
            th = ph = None
            nvec = tri.nvec
        else:
            th, ph, nvec = _grid(sym, nt)
        if opt.binning == "easyspin" and sym != "iso":
            xb0, dxb = xc0, -dxc
        else:
            xb0, dxb = xc0, dxc
        lwg = float(s.lw)
        if S == 0.5 and not has_nuc and not exact and tri is None and not (direct and sym == "iso"):
            # one line per orientation (no nucleus, closed form): knots, width classes and binning in one call
            stick, cw, c0 = kernels.s12_powder_plain(nvec, np.array(g), np.array(gs), mw_mhz, len(th), len(ph), th,
                                                     ph, rf, xb0, dxb, lwg, dxc, float(opt.width_ratio),
                                                     int(opt.max_width_classes), float(s.weight), nb)
        else:
            prep = (S, g, A, gs, isos)
            ladder = [nt]
            if S > 0.5 and opt.powder_tol > 0 and tri is not None:
                ladder = grids.row_ladder(nt)
            elif S > 0.5 and opt.powder_tol > 0 and sym == "axial":
                ladder = grids.row_ladder(nt, n_max=int(opt.n_theta_zfs_max))
            if len(ladder) >= 3:                      # (on two grids the finer one is always taken)
                stick, cw, c0 = _adaptive_rows(s, sets, prep, ladder, rf, mw_mhz, Bext, opt, xb0, dxb, lwg, dxc,
                                               nb, int(exp.harmonic), tri is None)
                work.append((stick, c0, cw, lwg, float(s.lwL)))
                continue
            parts = [_knots_for(s, e, mw_mhz, nvec, Bext, opt, prep) for e in sets]
            if direct and sym == "iso":
                used_direct = True
                for B, In, W, partner, psc in parts:
                    kernels.gauss_direct(B, In, W, float(s.weight) * psc, float(s.lw), x0 - field_offset, dx,
                                         int(exp.harmonic), dxc, ydir)
                continue
            if tri is not None:
                stick, cw, c0 = _bin_parts(parts, s, gs, xb0, dxb, lwg, dxc, nb, opt, tri=tri)
            else:
                stick, cw, c0 = _bin_parts(parts, s, gs, xb0, dxb, lwg, dxc, nb, opt, th=th, ph=ph, rf=rf)
        work.append((stick, c0, cw, lwg, float(s.lwL)))
    if not work:
        return ydir
    # derivative spectra: the transform covers the columns with sticks (every system's) and m (Gaussian lines)
    # or 4 m (Lorentzian or dispersion) more on each side, and at least 6 FWHM of the widest strain class, when
    # that is under 60 % of the grid: narrow lines on a wide sweep need a short FFT.  Gaussian lines are zero
    # beyond m (6 line widths) from their sticks (as the whole-grid transform assumes; strain-broadened classes
    # beyond 6 of their widths); the first-harmonic Lorentzian and dispersion tails beyond 4 m (>= 24 widths) are
    # below (HWHM / x)^2 ~ 4e-4 of the line's peak and left out (the whole-grid transform folds tails from
    # 2 m on back onto the spectrum instead).  Lines narrower than the grid step ring (their Gaussian is cut at
    # the Nyquist frequency): the whole-grid transform spreads that ringing, ~1e-3 of the maximum, over the
    # whole sweep, the window keeps it inside (zero beyond: the exact spectrum there)
    lo, hi = nb, -1
    for stick, c0, _, _, _ in work:
        a, b = kernels.occupied_range(stick, stick.shape[1])
        if b >= 0:
            lo, hi = min(lo, c0 + a), max(hi, c0 + b)
    s0, s1 = 0, nb
    if hi >= 0 and int(exp.harmonic) >= 1 and opt.fft_window:
        wcls = max(max(float(cw[0]), float(cw[-1])) for _, _, cw, _, _ in work)    # (the classes are monotonic)
        wpad = max(m if gaussian else 4 * m, int(math.ceil(6.0 * wcls / dxc)))
        w0 = max(0, lo - wpad) // sub * sub          # m is a multiple of sub: output points stay on the grid
        w1 = min(nb, hi + 1 + wpad)
        if w1 - w0 < 0.6 * nb:
            s0, s1 = w0, w1
            nfft = _nfft_for(s1 - s0, m, gaussian)
    nf = nfft // 2 + 1
    df = 1.0 / (nfft * dxc)
    for stick, c0, cw, lwg, lwL in work:
        # the columns s0 .. s1 - 1 of the grid, zero-padded to the FFT length (a stick covers c0 onwards)
        st = np.zeros((stick.shape[0], max(nfft, s1 - s0)))
        a, b = max(c0, s0), min(c0 + stick.shape[1], s1)
        if b > a:
            st[:, a - s0:b - s0] = stick[:, a - c0:b - c0]
        stick = st
        # exp(-2 (pi sig f)^2) < exp(-40) ~ 4e-18 beyond f = sqrt(20) / (pi sig): the rest is zero
        if len(cw) == 1:
            # the same numbers as the array expressions below, in Python floats
            sg = lwg / _SQ2LN2
            kmax = min(nf, int(_SQ20 / (math.pi * sg) / df) + 2) if sg > 0 else nf
            ps = math.pi * sg
            a_cls = np.array([2.0 * (ps * ps)])
            keeps_cls = np.array([kmax], dtype=np.int64)
        else:
            sigs = cw / _SQ2LN2
            keeps = [min(nf, int(_SQ20 / (math.pi * sg) / df) + 2) if sg > 0 else nf for sg in sigs.tolist()]
            kmax = max(keeps)
            a_cls = 2.0 * (math.pi * sigs) ** 2
            keeps_cls = np.array(keeps, dtype=np.int64)
        # few sticks (solution spectra): direct DFT of the non-zero bins up to the Gaussian cut-off; the count
        # stops as soon as it decides (nnz * kmax >= 4 nfft)
        nnz = kernels.count_nonzero_upto(stick, (4 * nfft) // kmax + 1)
        if nnz * kmax < 4 * nfft:
            F = np.empty((len(cw), kmax), dtype=np.complex128)
            kernels.sparse_rfft(stick, nfft, F)
        else:
            # width classes no line fell into (most of them in corpora: near-isotropic strains put every line
            # in the top classes) are left out of the FFT; their terms in the sum over classes are exact zeros
            if len(cw) == 1:              # nnz > 0: the one class is used
                used = None
            else:
                used = np.empty(len(cw), dtype=np.bool_)
                kernels.nonzero_rows(stick, used)
            if used is None or used.all():
                F = _rfft_rows(stick, nfft)
            else:
                F = _rfft_rows(stick[used], nfft)
                a_cls, keeps_cls = a_cls[used], keeps_cls[used]
                kmax = int(keeps_cls.max())     # the shared factor is needed up to the used classes' cut-off
        # the shared factor only where some class is not yet negligible (its Bessel functions are the cost)
        common = _common_factor_cached(nfft, dxc, lwL, int(exp.harmonic), float(exp.mod_amp),
                                       float(exp.mw_phase), kmax)
        acc = np.empty(nf, dtype=np.complex128)
        kernels.fourier_lineshape(F, a_cls, keeps_cls, df, common, acc)
        if total is None:
            total = acc
        else:
            total += acc
    # output point i is grid column m + i sub; the transform starts at column s0 (a multiple of sub)
    if sub > 1 and nfft % sub == 0:
        # the output points only: the spectrum folded onto nfft / sub frequencies (kernels.fold_spectrum)
        M = nfft // sub
        Z = np.empty(M // 2 + 1, dtype=np.complex128)
        kernels.fold_spectrum(total, nfft, sub, Z)
        z = _irfft(Z, M)
        z *= 1.0 / sub
    else:
        z = _irfft(total, nfft)[::sub]
    if s0 == 0 and s1 == nb:
        y = np.ascontiguousarray(z[m // sub:m // sub + n])
    else:
        y = np.zeros(n)
        i0 = (s0 - m) // sub                          # output index of the window's first column
        i_lo, i_hi = max(0, i0), min(n, i0 + (s1 - s0 + sub - 1) // sub)
        y[i_lo:i_hi] = z[i_lo - i0:i_hi - i0]
    return y + ydir if used_direct else y


def _classes(parts, s: SpinSystem, gs, lwg, dxc, opt: Options):
    """Gaussian-width classes for the strain widths W of the knot arrays ``parts``."""
    Wmax, Wmin = 0.0, math.inf
    if max(gs) > 0 or s.A_strain > 0:             # W (strain widths) is 0 without strains
        for B, _, W, _, _ in parts:
            Wl = W[np.isfinite(B)]                    # W is 0 (not NaN) where there is no line
            if Wl.size:
                Wmax, Wmin = max(Wmax, float(Wl.max())), min(Wmin, float(Wl.min()))
    return kernels.width_classes(Wmin, Wmax, lwg, dxc, float(opt.width_ratio), int(opt.max_width_classes))


def _window(parts, xb0, dxc, nb):
    """Grid columns [c0, c1) that the lines of the knot arrays ``parts`` can reach (``kernels.field_window``)."""
    c0, c1 = nb, 0
    for B, _, _, _, _ in parts:
        if B.size:
            a, b = kernels.field_window(B, xb0, dxc, nb, 2)
            c0, c1 = min(c0, a), max(c1, b)
    return (c0, c1) if c1 > c0 else (0, 1)


def _bin_parts(parts, s: SpinSystem, gs, xb0, dxb, lwg, dxc, nb, opt: Options, tri=None, th=None, ph=None, rf=1):
    """Stick spectrum (width classes x the columns c0 .. c1 - 1 of the nb-column grid that its lines reach) of
    the knot arrays ``parts`` on the octant grid ``tri``, or without one on the theta x phi grid ``th``, ``ph``
    (one phi: the 1-D axial grid) refined ``rf`` times; returns (stick, class widths, c0)."""
    cw = _classes(parts, s, gs, lwg, dxc, opt)
    c0, c1 = _window(parts, xb0, dxc, nb)
    stick = np.zeros((len(cw), c1 - c0))
    Tscr = np.empty((len(cw), c1 - c0 + 1))
    for B, In, W, partner, psc in parts:
        if not B.shape[1]:
            continue
        if tri is not None:
            kernels.powder_bin_tri(B, In, W, tri.corners, tri.vidx, tri.vw, tri.bary, tri.sub, tri.subw,
                                   xb0 + c0 * dxc, dxb, lwg, cw, float(s.weight) * psc, stick, Tscr)
        else:
            kernels.powder_bin(B, In, W, partner, len(th), len(ph), th, ph, rf, xb0 + c0 * dxc, dxb, lwg,
                               cw, float(s.weight) * psc, stick, Tscr)
    return stick, cw, c0


def _preview(stick, c0, nb, cw, lwL, harmonic, dxc):
    """The stick spectrum (columns from c0 of the nb-column grid) broadened by its classes' Gaussians (Lorentzian
    width as a Gaussian where wider) and differentiated ``harmonic`` times on the whole grid, max-normalised:
    what ``_adaptive_rows`` compares between grids."""
    nfft = _fast_len(nb)
    f = np.arange(nfft // 2 + 1) / (nfft * dxc)
    full = np.zeros((stick.shape[0], nfft))
    full[:, c0:c0 + stick.shape[1]] = stick
    F = _rfft_rows(full, nfft)
    sig = np.maximum(np.asarray(cw, dtype=np.float64), lwL) / _SQ2LN2
    acc = (F * np.exp(-2.0 * (np.pi * sig[:, None] * f[None, :]) ** 2)).sum(axis=0)
    if harmonic:
        acc *= (2j * np.pi * f) ** harmonic
    y = _irfft(acc, nfft)[:nb]
    mx = np.abs(y).max()
    return y / mx if mx > 0 else y


def _adaptive_rows(s: SpinSystem, sets, prep, ladder, rf, mw_mhz, Bext, opt: Options, xb0, dxb, lwg, dxc, nb,
                   harmonic, axial=False):
    """Stick spectrum of an S > 1/2 centre on the octant grid (``axial``: the 1-D theta grid) with the fewest
    rows (knots) of the nested ``ladder`` (e.g. 6, 11, 21) whose broadened spectrum differs from the next
    coarser one's by at most ``opt.powder_tol`` nRMS; each finer grid computes only its new knots
    (grids.nested_knots; on the 1-D grid knot i of n is knot 2 i of 2 n - 1).  The start field-node count (or,
    with node_adaptive="global", the count converged on probe knots of the finest grid) is fixed once and used
    on every grid."""
    gs = prep[3]

    def nvec_of(n):
        return _grid("axial", n)[2] if axial else grids.tri_grid(n, rf).nvec

    nodes = []
    parts = None
    prev = None
    for level, n in enumerate(ladder):
        nvec = nvec_of(n)
        if parts is None:
            parts = []
            for e in sets:
                info = {}
                parts.append(_knots_for(s, e, mw_mhz, nvec, Bext, opt, prep, info=info,
                                        probe_nvec=nvec_of(ladder[-1])))
                nodes.append(info.get("n_nodes"))
        else:
            old = 2 * np.arange(ladder[level - 1]) if axial else grids.nested_knots(ladder[level - 1])
            new = np.ones(nvec.shape[0], dtype=bool)
            new[old] = False
            nv = np.ascontiguousarray(nvec[new])
            grown = []
            for (B, In, W, partner, psc), e, nn in zip(parts, sets, nodes):
                Bn, Inn, Wn, _, _ = _knots_for(s, e, mw_mhz, nv, Bext, opt, prep, nodes=nn)
                out = []
                for a, b in ((B, Bn), (In, Inn), (W, Wn)):
                    c = np.empty((nvec.shape[0], a.shape[1]))
                    c[old] = a
                    c[new] = b
                    out.append(c)
                grown.append((*out, partner, psc))
            parts = grown
        if axial:
            th, ph, _ = _grid("axial", n)
            stick, cw, c0 = _bin_parts(parts, s, gs, xb0, dxb, lwg, dxc, nb, opt, th=th, ph=ph, rf=rf)
        else:
            stick, cw, c0 = _bin_parts(parts, s, gs, xb0, dxb, lwg, dxc, nb, opt, tri=grids.tri_grid(n, rf))
        if level == len(ladder) - 1:
            return stick, cw, c0
        y = _preview(stick, c0, nb, cw, float(s.lwL), harmonic, dxc)
        if prev is not None and math.sqrt(float(np.mean((y - prev) ** 2))) <= opt.powder_tol:
            return stick, cw, c0
        prev = y


def _nfft_for(nb, m, gaussian):
    """FFT length for nb grid columns: Gaussian lines (also modulated, any harmonic) are zero beyond the margin
    m, no wrap-around when nfft >= nb (outputs m .. nb - m only see sticks within m); Lorentzian and dispersion
    tails: padded by a further 2 m (a power of two)."""
    if gaussian:
        return _fast_len(nb)
    return 1 << int(math.ceil(math.log2(nb + 2 * m)))


def from_easyspin(Sys: dict, Exp: dict) -> tuple[SpinSystem, Experiment]:
    """Translate EasySpin-style ``Sys``/``Exp`` dicts (S, g, Nucs, A, D, lw, gStrain, AStrain; mwFreq, Range, nPoints,
    Harmonic, ModAmp, mwPhase) into a :class:`SpinSystem` and :class:`Experiment` (one nucleus species)."""
    lw = Sys.get("lw", 0.0)
    lwG, lwL = (float(lw), 0.0) if np.ndim(lw) == 0 else (float(lw[0]), float(lw[1]))
    D = Sys.get("D", 0.0)
    D, E = (float(D), 0.0) if np.ndim(D) == 0 else (float(D[0]), float(D[1]))
    nuc = Sys.get("Nucs") or None
    As = np.atleast_1d(np.asarray(Sys.get("AStrain", 0.0), dtype=np.float64))
    if As.size and not np.all(As == As[0]):
        raise ParameterError("AStrain", Sys["AStrain"], "one FWHM for all principal values (A_strain is a scalar)")
    sysm = SpinSystem(S=float(Sys.get("S", 0.5)), g=Sys["g"], nucleus=nuc, A=Sys.get("A", 0.0) if nuc else 0.0,
                      D=D, E=E, lw=lwG, lwL=lwL, g_strain=Sys.get("gStrain", 0.0),
                      A_strain=float(As[0]) if (nuc and As.size) else 0.0)
    x = np.linspace(Exp["Range"][0], Exp["Range"][1], int(Exp.get("nPoints", 1024)))
    exp = Experiment(x, float(Exp["mwFreq"]), int(Exp.get("Harmonic", 1)), float(Exp.get("ModAmp", 0.0)),
                     float(Exp.get("mwPhase", 0.0)))
    return sysm, exp
