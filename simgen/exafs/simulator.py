"""``exafs`` (chi(k) or mu(E)) and ``exelfs`` (EELS I(E)) simulators built on FEFF10 path tables.

Every sample: a material (FEFF path set of one absorber/edge in one structure) whose paths are rescaled by an
isotropic strain, thinned by nanoparticle size (Calvin et al., J. Appl. Phys. 94, 778 (2003):
N(R)/N_bulk = 1 - 3/4 (R/D) + 1/16 (R/D)^3) and vacancies, with sigma^2 from the correlated Debye model
(T, theta_D) plus static disorder, and a first-shell third cumulant: a thermal part from the anharmonicity of
the pair potential plus a free part (``c3``).  The first three single-scattering shells (N1..3, R1..3,
sigma2_1..3) are labels: NaN (the default) means "from the structure"; a finite value overrides that shell.

Thermal third cumulant: for a pair potential (1/2) k0 x^2 + k3 x^3 in the Einstein model, Frenkel & Rehr
(Phys. Rev. B 48, 585 (1993)) give sigma^2 = sigma0^2 (1 + z)/(1 - z) and
C3 = -2 (k3/k0) sigma0^4 (1 + 10 z + z^2)/(1 - z)^2 (z = exp(-theta_E/T), sigma0^2 the zero-point value).
Eliminating z, C3 = kappa (3 sigma^4 - 2 sigma0^4) with kappa = -2 k3/k0 (for a Morse potential kappa is its
exponent a; Girifalco & Weizer, Phys. Rev. 114, 687 (1959): 1.36-1.57 1/A for Cu, Ni, Fe, Cr, Mo, W): zero-point
C3 at T -> 0, the classical -6 (k3/k0) sigma^4 at high T.  ``anharmonicity`` is kappa; sigma^2 and sigma0^2 are
the first shell's correlated-Debye values at T and at T -> 0.
"""
from __future__ import annotations

import collections
import functools
import math
import threading

import numpy as np
from scipy.signal import fftconvolve

from .. import catalogs
from ..errors import ParameterError, RecipeError
from ..simulator import Axis, Field, Simulator
from . import kernels
from .debye import PathDebye
from .edges import edge_energy, eels_onset
from .tables import available_tables, load_pathset

__all__ = ["EXAFSSimulator", "EXELFSSimulator", "ETOK", "chi_of_paths"]

#: 2 m_e / hbar^2 in 1/(A^2 eV) (CODATA 2018)
ETOK = 2 * 9.1093837015e-31 * 1.602176634e-19 / 1.054571817e-34 ** 2 * 1e-20

TABLES = tuple(available_tables())
SHELL_KEYS = tuple(f"{q}{i}" for i in (1, 2, 3) for q in ("N", "R", "sigma2_"))
NAN = float("nan")


def _shell_fields():
    out = {}
    for i in (1, 2, 3):
        out[f"N{i}"] = Field(units="", low=0.0, high=200.0, default=NAN,
                             doc=f"coordination number of shell {i} (NaN: from the structure)")
        out[f"R{i}"] = Field(units="A", low=0.0, low_open=True, high=10.0, default=NAN,
                             doc=f"distance of shell {i} (NaN: from the structure)")
        out[f"sigma2_{i}"] = Field(units="A^2", low=0.0, high=0.1, default=NAN,
                                   doc=f"Debye-Waller factor of shell {i} (NaN: correlated Debye + static)")
    return out


STRUCT_PARAMS = {
    "material": Field(kind="category", choices=TABLES, default="Cu_K_fcc", target=False,
                      doc="FEFF path table (absorber_edge_structure)"),
    "s02": Field(units="", low=0.3, high=1.5, default=0.9, doc="amplitude reduction factor S0^2"),
    "dE0": Field(units="eV", low=-30.0, high=30.0, default=0.0, doc="edge-energy shift"),
    "T": Field(units="K", low=1.0, high=3000.0, default=295.0, doc="temperature"),
    "theta_D": Field(units="K", low=30.0, high=3000.0, default=315.0, doc="correlated Debye temperature"),
    "strain": Field(units="", low=-0.2, high=0.2, default=0.0, doc="isotropic fractional change of distances"),
    "sigma2_static": Field(units="A^2", low=0.0, high=0.05, default=0.0, doc="static disorder added per path"),
    "np_diameter": Field(units="A", low=0.0, high=1e5, default=0.0,
                         doc="nanoparticle diameter (0: bulk) thinning N(R) (Calvin 2003)"),
    "vacancy": Field(units="", low=0.0, high=0.9, default=0.0, doc="fraction of missing neighbours"),
    "c3": Field(units="A^3", low=-0.01, high=0.01, default=0.0,
                doc="third cumulant of the first shell, added to the thermal one of ``anharmonicity``"),
    "anharmonicity": Field(units="1/A", low=0.0, high=10.0, default=0.0,
                           doc="kappa = -2 k3/k0 of the first-shell pair potential (Morse: its exponent): adds the "
                               "thermal third cumulant kappa (3 sigma^4 - 2 sigma0^4) (Frenkel & Rehr 1993)"),
    **_shell_fields(),
}


@functools.lru_cache(maxsize=64)
def _debye_for(key: str) -> PathDebye:
    ps = load_pathset(key)
    return PathDebye([ps.path_atoms(j) for j in range(ps.npath)], ps.rnrmav_bohr)


@functools.lru_cache(maxsize=256)
def _selection(key: str, rmax: float):
    """Paths of table ``key`` up to rmax: (pathset, idx, positions in idx of the first 3 single-scattering
    shells, reff, degen, nleg - 1); cached, so a sample only does arithmetic."""
    ps = load_pathset(key)
    idx = np.flatnonzero(ps.reff <= rmax + 1e-6)
    pos = {int(j): m for m, j in enumerate(idx)}
    ss = tuple(pos[int(j)] for j in ps.single_scattering if int(j) in pos)[:3]
    reff, degen, nleg = ps.reff[idx].copy(), ps.degen[idx].copy(), ps.nleg[idx].astype(np.float64)
    for a in (idx, reff, degen, nleg):
        a.flags.writeable = False
    return ps, idx, ss, reff, degen, nleg - 1.0


_TAB_CACHE: "collections.OrderedDict" = collections.OrderedDict()
_TAB_CACHE_SIZE = 32
_TAB_LOCK = threading.Lock()
_TAB_LAST: list = [None]


def path_columns(k, ps, table_idx, e0=0.0) -> np.ndarray:
    """Spline values of paths ``table_idx`` of ``ps`` at q(k, e0) as the columns of ``kernels.path_tables``
    (shape (npath, kernels.NTAB, len(k))), cached per (table, paths, k grid, e0): repeated calls on the same
    grid and E0 (fits, benchmarks, a corpus with a fixed E0) only combine them with the path parameters."""
    if type(k) is not np.ndarray or k.dtype != np.float64 or not k.flags.c_contiguous:
        k = np.ascontiguousarray(k, dtype=np.float64)
    if type(table_idx) is not np.ndarray or table_idx.dtype != np.int64:
        table_idx = np.ascontiguousarray(table_idx, dtype=np.int64)
    nk = k.shape[0]
    e0 = float(e0)
    kb = k.tobytes()
    ib = table_idx.tobytes()
    last = _TAB_LAST[0]          # the last (ps, paths, grid, e0) looked up: one tuple, read at once
    if last is not None and last[0] is ps and last[3] == e0 and last[1] == ib and last[2] == kb:
        return last[4]
    # the dict key holds the grid's ends only (hashing all of k would cost more than the lookup saves); the
    # entry keeps the whole grid, compared byte for byte on a hit
    key = (id(ps), ib, nk, float(k[0]) if nk else 0.0, float(k[-1]) if nk else 0.0, e0)
    with _TAB_LOCK:
        hit = _TAB_CACHE.get(key)
        if hit is not None and hit[0] is ps and hit[1] == kb:
            _TAB_CACHE.move_to_end(key)
            _TAB_LAST[0] = (ps, ib, kb, e0, hit[2])
            return hit[2]
    tab = np.empty((len(table_idx), kernels.NTAB, nk))
    kernels.path_tables(k, ps.knots, ps.nknots, ps.coefs, table_idx, e0, ETOK, np.empty((2, nk)),
                        np.empty(nk, dtype=np.int64), tab)
    tab.flags.writeable = False
    with _TAB_LOCK:
        _TAB_CACHE[key] = (ps, kb, tab)
        _TAB_CACHE.move_to_end(key)
        _TAB_LAST[0] = (ps, ib, kb, e0, tab)
        if len(_TAB_CACHE) > _TAB_CACHE_SIZE:
            _TAB_CACHE.popitem(last=False)
    return tab


def chi_of_paths(k, ps, table_idx, degen, reff, dr, sigma2, c3=None, c4=None, s02=1.0, e0=0.0, cache=True):
    """chi(k) of the given paths of path set ``ps``.

    Parameters
    ----------
    k : (nk,) array, 1/A — wavenumbers from the edge at E0 + ``e0``.
    ps : PathSet; table_idx : (npath,) int — paths of ``ps`` used.
    degen, reff (A), dr (A), sigma2 (A^2), c3 (A^3), c4 (A^4) : (npath,) arrays (c3, c4 default 0).
    s02 : float; e0 : float, eV — shift of the energy origin.
    cache : bool — evaluate the splines once per (table, paths, k, e0) and keep them (``path_columns``);
        False evaluates them in the same pass, which is faster when every call has its own e0 or k grid.

    Returns
    -------
    (nk,) float64 chi(k).
    """
    n = len(table_idx)
    out = np.zeros(len(k))
    if not cache:
        nk = len(k)
        kernels.chi_paths(np.ascontiguousarray(k, dtype=np.float64), ps.knots, ps.nknots, ps.coefs,
                          np.ascontiguousarray(table_idx, dtype=np.int64), _vec(degen, n), _vec(reff, n),
                          _vec(dr, n), _vec(sigma2, n), _vec(c3, n), _vec(c4, n), float(s02), float(e0), ETOK,
                          np.empty((7, nk)), np.empty(nk, dtype=np.int64), out)
        return out
    tab = path_columns(k, ps, table_idx, e0)
    kernels.chi_tabulated(tab, _vec(degen, n), _vec(reff, n), _vec(dr, n), _vec(sigma2, n), _vec(c3, n),
                          _vec(c4, n), float(s02), out)
    return out


_F64 = np.dtype(np.float64)


def _vec(v, n):
    """``v`` as a float64 array of length n (a scalar is repeated; None means zeros)."""
    if type(v) is np.ndarray and v.dtype is _F64 and v.ndim == 1 and v.shape[0] == n:
        return v
    if v is None:
        return _zeros(n)
    if type(v) is not np.ndarray or v.dtype != np.float64:
        v = np.asarray(v, dtype=np.float64)
    if v.shape != (n,):
        v = np.full(n, v) if v.ndim == 0 else np.broadcast_to(v, (n,)).copy()
    return v


@functools.lru_cache(maxsize=64)
def _zeros(n):
    z = np.zeros(n)
    z.flags.writeable = False
    return z


class _ShellMixin:
    """Path list of one sample from the structure and the shell overrides."""

    def _check_materials(self, allowed=TABLES):
        mats = self.config.get("materials") or []
        for m in mats:
            if m not in allowed:
                raise RecipeError("config.materials", m, "FEFF tables: " + ", ".join(allowed))

    def prepare_params(self, params, rng=None):
        params = dict(params)
        n = 1
        for v in params.values():
            if np.ndim(v) == 1:
                n = max(n, len(v))
        shell = {}
        for key in SHELL_KEYS:
            spec = self.PARAMS[key]
            v = params.pop(key, NAN)
            try:
                arr = np.atleast_1d(np.asarray(v, dtype=np.float64))
            except (TypeError, ValueError):
                raise ParameterError(key, v, spec.expected() + " or NaN", self.name) from None
            fin = np.isfinite(arr)
            bad = fin & ~spec.in_range(np.where(fin, arr, 1.0))
            bad |= np.isinf(arr)
            if bad.any():
                raise ParameterError(key, float(arr[np.flatnonzero(bad)[0]]), spec.expected() + " (or NaN: from "
                                     "the structure)", self.name)
            shell[key] = arr
        p = super().prepare_params({**params, **{k: 0.01 for k in SHELL_KEYS}}, rng)
        n = self.n_of(p)
        for key, arr in shell.items():
            if len(arr) not in (1, n):
                raise ParameterError(key, f"array of length {len(arr)}", f"length {n} like the others", self.name)
            p[key] = np.broadcast_to(arr, (n,)).astype(np.float64).copy()
        return p

    def _paths(self, p, i, key):
        """(pathset, idx, degen, reff, dr, sigma2, c3, shells (9 realized labels))."""
        ps, idx, ss, reff, degen, nleg_m1 = _selection(key, float(self.config["rmax"]))
        strain = p["strain"][i]
        dr = reff * strain
        N = degen.copy()
        D = p["np_diameter"][i]
        if D > 0:
            x = np.minimum((reff + dr) / D, 2.0)
            N *= np.minimum(np.maximum(1.0 - 0.75 * x + x ** 3 / 16.0, 0.0), 1.0) * (x < 2.0)
        vac = p["vacancy"][i]
        if vac > 0:
            N *= (1.0 - vac) ** nleg_m1
        debye = _debye_for(key)
        dyn = debye(p["T"][i], p["theta_D"][i])[idx]
        s2 = dyn + p["sigma2_static"][i] * (nleg_m1 + 1) / 2.0
        c3 = np.zeros(len(idx))
        shells = np.full(9, NAN)
        kappa = p["anharmonicity"][i]
        for s, jj in enumerate(ss):
            if s == 0:
                c3[jj] = p["c3"][i]
                if kappa > 0:
                    zp = debye(0.0, p["theta_D"][i])[idx][jj]           # zero-point sigma^2 (T -> 0)
                    c3[jj] += kappa * (3.0 * dyn[jj] ** 2 - 2.0 * zp ** 2)
            nv, rv, sv = p[f"N{s + 1}"][i], p[f"R{s + 1}"][i], p[f"sigma2_{s + 1}"][i]
            if nv == nv:            # finite (not NaN): override
                N[jj] = nv
            if rv == rv:
                dr[jj] = rv - reff[jj]
            if sv == sv:
                s2[jj] = sv
            shells[3 * s:3 * s + 3] = (N[jj], reff[jj] + dr[jj], s2[jj])
        return ps, idx, N, reff, dr, s2, c3, shells

    def derive_params(self, params, rng):
        n = len(params["seed"])
        for i in range(n):
            key = self._label_table(params, i)
            *_, shells = self._paths(params, i, key)
            for s, name in enumerate(SHELL_KEYS):
                if not np.isfinite(params[name][i]):
                    params[name][i] = shells[s]

    def _material(self, p, i):
        return self.PARAMS["material"].choices[int(p["material"][i])]

    def _label_table(self, p, i):
        """FEFF table whose first shells are the labels."""
        return self._material(p, i)


class EXAFSSimulator(_ShellMixin, Simulator):
    name = "exafs"
    # 3: exp and sin of the path sums take their integer part as a float (simgen.fastmath._round_bits): the
    #    same polynomials, last-bit differences in chi from the compiler's new operation order
    version = "3"
    description = "EXAFS chi(k)*k^w or normalised mu(E) from FEFF10 path tables (correlated Debye sigma^2)"
    x_name, x_units = "signal", "chi(k)*k^k_weight (A^-k_weight) or edge-step-normalised mu(E)"

    CONFIG = {
        "output": Field(kind="category", choices=("chi", "mu"), default="chi",
                        doc="chi: chi(k)*k^k_weight on a k grid; mu: absorption on E - E_edge"),
        "k_min": Field(units="1/A", low=0.0, high=25.0, default=3.0, doc="first k"),
        "k_max": Field(units="1/A", low=0.5, high=20.0, default=12.0, doc="last k (FEFF tables end at 20)"),
        "k_step": Field(units="1/A", low=0.001, high=1.0, default=0.05, doc="k spacing"),
        "k_weight": Field(kind="int", low=0, high=3, default=2, doc="chi is multiplied by k^k_weight"),
        "e_min": Field(units="eV", default=-100.0, doc="first energy relative to the tabulated edge"),
        "e_max": Field(units="eV", default=800.0, doc="last energy relative to the tabulated edge"),
        "e_step": Field(units="eV", low=0.01, high=50.0, default=1.0, doc="energy spacing"),
        "rmax": Field(units="A", low=1.0, high=8.0, default=6.0, doc="longest path (reff) included"),
        "materials": Field(kind="list", default=None, doc="restrict to these FEFF tables (checked)"),
    }
    PARAMS = {
        **STRUCT_PARAMS,
        "noise": Field(units="", low=0.0, high=2.0, default=0.0, doc="Gaussian noise std / rms of the signal"),
        "bkg_residual": Field(units="", low=0.0, high=1.0, default=0.0,
                              doc="chi output: rms of a smooth residual with R < 1 A (what a spline background "
                                  "removal leaves: 3 random cosines cos(2kr + phase), r in 0-1 A) / rms of the "
                                  "signal"),
        "edge_width": Field(units="eV", low=0.1, high=30.0, default=2.0, doc="mu: FWHM of the arctan edge step"),
        "pre_slope": Field(units="1/keV", low=-5.0, high=5.0, default=0.0, doc="mu: pre-edge slope"),
        "post1": Field(units="1/keV", low=-5.0, high=5.0, default=0.0, doc="mu: linear post-edge background"),
        "post2": Field(units="1/keV^2", low=-5.0, high=5.0, default=0.0, doc="mu: quadratic post-edge background"),
        "wl_height": Field(units="", low=0.0, high=5.0, default=0.0, doc="mu: white-line height / edge jump"),
        "wl_width": Field(units="eV", low=0.1, high=50.0, default=5.0, doc="mu: white-line FWHM"),
    }

    def setup(self):
        c = self.config
        self._check_materials()
        if c["output"] == "chi":
            if c["k_max"] <= c["k_min"]:
                raise RecipeError("config.k_max", c["k_max"], f"a value above k_min ({c['k_min']})")
            n = int(round((c["k_max"] - c["k_min"]) / c["k_step"])) + 1
            self._axis = Axis.linear("k", "1/A", c["k_min"], c["k_min"] + (n - 1) * c["k_step"], n, "wavenumber")
        else:
            if not (c["e_min"] < 0.0 < c["e_max"]):
                raise RecipeError("config.e_min" if c["e_min"] >= 0 else "config.e_max",
                                  c["e_min"] if c["e_min"] >= 0 else c["e_max"],
                                  "an energy grid that contains the edge (e_min < 0 < e_max, relative to it)")
            n = int(round((c["e_max"] - c["e_min"]) / c["e_step"])) + 1
            self._axis = Axis.linear("energy", "eV", c["e_min"], c["e_min"] + (n - 1) * c["e_step"], n,
                                     "energy relative to the tabulated edge")

    @property
    def axis(self):
        return self._axis

    def simulate(self, params, rng=None):
        return self.simulate_outputs(params, rng)["x"]

    def simulate_outputs(self, params, rng=None):
        p = self.prepare_params(params, rng)
        n = self.n_of(p)
        x = self._axis.coords[0]
        out = np.empty((n, len(x)), dtype=np.float32)
        real = {k: np.empty(n) for k in SHELL_KEYS}
        xk = x ** self.config["k_weight"]
        for i in range(n):
            key = self._material(p, i)
            if self.config["materials"] and key not in self.config["materials"]:
                raise ParameterError("material", key, "one of config.materials: "
                                     + ", ".join(self.config["materials"]), self.name)
            ps, idx, N, reff, dr, s2, c3, shells = self._paths(p, i, key)
            for s, name in enumerate(SHELL_KEYS):
                real[name][i] = shells[s]
            if self.config["output"] == "chi":
                chi = chi_of_paths(x, ps, idx, N, reff, dr, s2, c3, None, p["s02"][i], p["dE0"][i],
                                   cache=False)
                y = chi * xk
            else:
                e = x
                above = e > p["dE0"][i] + 1e-6
                chi_e = np.zeros(len(e))
                if above.any():
                    kk = np.sqrt(ETOK * (e[above] - p["dE0"][i]))     # photoelectron k from the shifted edge
                    chi_e[above] = chi_of_paths(kk, ps, idx, N, reff, dr, s2, c3, None, p["s02"][i], 0.0,
                                                cache=False)
                y = np.empty(len(e))
                kernels.mu_from_chi(e, p["dE0"][i], chi_e, 0.0, p["pre_slope"][i], 1.0, p["edge_width"][i],
                                    p["post1"][i], p["post2"][i], p["wl_height"][i], p["wl_width"][i], y)
            rng_i = None
            rms = math.sqrt(float(y @ y) / len(y))
            if p["bkg_residual"][i] > 0 and self.config["output"] == "chi":
                rng_i = self.sample_rng(p, i)
                r, ph, c = rng_i.uniform(0.0, 1.0, 3), rng_i.uniform(0.0, 2 * np.pi, 3), rng_i.standard_normal(3)
                res = (c[:, None] * np.cos(2.0 * np.outer(r, x) + ph[:, None])).sum(axis=0)
                y = y + res * (p["bkg_residual"][i] * rms / max(math.sqrt(float(res @ res) / len(res)), 1e-12))
            if p["noise"][i] > 0:
                scale = rms if self.config["output"] == "chi" else 0.01
                rng_i = self.sample_rng(p, i) if rng_i is None else rng_i
                y = y + rng_i.standard_normal(len(y)) * p["noise"][i] * scale
            out[i] = y
        return {"x": out, "params": real}


# ---------------------------------------------------------------------------------------------------- EXELFS
def plural_scattering_kernel(t, ep, gp, step):
    """Plural-scattering kernel on 0..min(6 ep + 10 gp, 200 eV): the Poisson series
    sum_n exp(-t) t^n / n! P^(*n) of a Lorentzian bulk plasmon P (energy ep, FWHM gp, eV) for thickness t/lambda,
    zero loss a delta, summed to all orders at once as IFFT(exp(t (FFT(P) - 1))) on a grid 4x longer (no
    wrap-around); normalised to unit sum over the window."""
    m = int(min(6 * ep + 10 * gp, 200.0) / step) + 1
    e = np.arange(m) * step
    plas = 1.0 / (1.0 + 4.0 * ((e - ep) / gp) ** 2)
    plas /= plas.sum()
    L = 1 << int(math.ceil(math.log2(4 * m)))
    tot = np.fft.irfft(np.exp(t * (np.fft.rfft(plas, L) - 1.0)), L)[:m]
    return tot / tot.sum()


@functools.lru_cache(maxsize=4)
def _eels_systems():
    import yaml
    with open(catalogs.find("exafs/eels_systems.yaml")) as fh:
        return yaml.safe_load(fh)["systems"]


EELS_SYSTEMS = tuple(sorted(_eels_systems()))


class EXELFSSimulator(_ShellMixin, Simulator):
    name = "exelfs"
    version = "3"                       # 3: as EXAFSSimulator's 3 (the EXELFS uses the same path sums)
    description = ("core-loss EELS I(E): power-law background, edges (onsets from xraydb + solid offsets), L3/L2 "
                   "with spin-orbit split and branching, white lines, EXELFS from FEFF10 paths, resolution, "
                   "plural scattering (t/lambda), Poisson noise")
    x_name, x_units = "intensity", "counts (normalised)"

    CONFIG = {
        "e_min": Field(units="eV", low=1.0, default=400.0, doc="first energy loss"),
        "e_max": Field(units="eV", low=2.0, default=750.0, doc="last energy loss"),
        "e_step": Field(units="eV", low=0.01, high=10.0, default=0.5, doc="energy-loss spacing"),
        "rmax": Field(units="A", low=1.0, high=8.0, default=5.0, doc="longest path (reff) included"),
        "materials": Field(kind="list", default=None, doc="restrict to these systems (checked)"),
        "normalize": Field(kind="bool", default=True, doc="divide each spectrum by its maximum"),
    }
    PARAMS = {
        **{k: v for k, v in STRUCT_PARAMS.items() if k != "material"},
        "material": Field(kind="category", choices=EELS_SYSTEMS, default=EELS_SYSTEMS[0], target=False,
                          doc="system of eels_systems.yaml (structure with its edges)"),
        "bg_r": Field(units="", low=1.0, high=6.0, default=3.0, doc="power-law exponent of A*E^-r"),
        "bg_ratio": Field(units="", low=0.0, high=1e4, default=5.0,
                          doc="background / first-edge jump just below the first onset"),
        "edge_width": Field(units="eV", low=0.1, high=20.0, default=1.5, doc="FWHM of each edge step"),
        "decay": Field(units="", low=0.0, high=6.0, default=1.5, doc="post-edge decay exponent (E/onset)^-decay"),
        "branching": Field(units="", low=0.2, high=5.0, default=2.0, doc="L3:L2 intensity ratio"),
        "wl_height": Field(units="", low=0.0, high=20.0, default=3.0, doc="L2,3 white-line height / edge jump"),
        "wl_width": Field(units="eV", low=0.2, high=10.0, default=1.5, doc="white-line FWHM"),
        "fs_scale": Field(units="", low=0.0, high=3.0, default=1.0, doc="EXELFS amplitude scale"),
        "resolution": Field(units="eV", low=0.0, high=5.0, default=0.8, doc="Gaussian energy resolution FWHM"),
        "thickness": Field(units="t/lambda", low=0.0, high=3.0, default=0.3, doc="relative thickness"),
        "plasmon_E": Field(units="eV", low=5.0, high=40.0, default=22.0, doc="bulk plasmon energy"),
        "plasmon_width": Field(units="eV", low=0.5, high=20.0, default=6.0, doc="bulk plasmon FWHM"),
        "counts": Field(units="counts", low=0.0, high=1e9, default=0.0,
                        doc="expected counts at the spectrum maximum for Poisson noise (0: none)"),
    }

    def setup(self):
        c = self.config
        self._check_materials(EELS_SYSTEMS)
        if c["e_max"] <= c["e_min"]:
            raise RecipeError("config.e_max", c["e_max"], f"a value above e_min ({c['e_min']})")
        n = int(round((c["e_max"] - c["e_min"]) / c["e_step"])) + 1
        self._axis = Axis.linear("energy_loss", "eV", c["e_min"], c["e_min"] + (n - 1) * c["e_step"], n,
                                 "energy loss")
        lo, hi = self._axis.coords[0][0], self._axis.coords[0][-1]
        for name in (c["materials"] or EELS_SYSTEMS):
            sysd = _eels_systems()[name]
            onsets = [eels_onset(ed["element"], ed["edge"]) for ed in sysd["edges"]]
            if not any(lo < o < hi for o in onsets):
                raise RecipeError("config.e_min", c["e_min"], f"an energy-loss grid containing an edge of {name} "
                                  f"(onsets {', '.join(f'{o:.1f}' for o in onsets)} eV)")

    @property
    def axis(self):
        return self._axis

    def simulate(self, params, rng=None):
        return self.simulate_outputs(params, rng)["x"]

    def _label_table(self, p, i):
        return _eels_systems()[self._material(p, i)]["edges"][0]["table"]

    def _low_loss_kernel(self, t, ep, gp, step):
        return plural_scattering_kernel(t, ep, gp, step)

    def simulate_outputs(self, params, rng=None):
        p = self.prepare_params(params, rng)
        n = self.n_of(p)
        e = self._axis.coords[0]
        step = e[1] - e[0]
        out = np.empty((n, len(e)), dtype=np.float32)
        real = {k: np.empty(n) for k in SHELL_KEYS}
        for i in range(n):
            sysname = self._material(p, i)
            if self.config["materials"] and sysname not in self.config["materials"]:
                raise ParameterError("material", sysname, "one of config.materials", self.name)
            sysd = _eels_systems()[sysname]
            edges_sig = np.zeros(len(e))
            first_onset = None
            for j, ed in enumerate(sysd["edges"]):
                onset = eels_onset(ed["element"], ed["edge"]) + p["dE0"][i]
                ps, idx, N, reff, dr, s2, c3, shells = self._paths(p, i, ed["table"])
                if j == 0:
                    for s, name in enumerate(SHELL_KEYS):
                        real[name][i] = shells[s]
                    first_onset = onset
                chi_e = np.zeros(len(e))
                above = e > onset + 1e-6
                if above.any():
                    kk = np.sqrt(ETOK * (e[above] - onset))
                    chi_e[above] = chi_of_paths(kk, ps, idx, N, reff, dr, s2, c3, None, p["s02"][i], 0.0,
                                                cache=False)
                    chi_e *= p["fs_scale"][i]
                weight = float(ed.get("weight", 1.0))
                wl = 0.0
                if ed["edge"] in ("L3", "L2"):
                    b = p["branching"][i]
                    weight *= b / (1.0 + b) if ed["edge"] == "L3" else 1.0 / (1.0 + b)
                    wl = p["wl_height"][i]
                kernels.eels_edge(e, onset, p["edge_width"][i], p["decay"][i], chi_e, wl, p["wl_width"][i],
                                  weight, edges_sig)
            # plural scattering of the core-loss edges
            if p["thickness"][i] > 0:
                ker = self._low_loss_kernel(p["thickness"][i], p["plasmon_E"][i], p["plasmon_width"][i], step)
                edges_sig = fftconvolve(edges_sig, ker)[:len(e)]      # causal: intensity moves to higher loss
            # power-law background anchored below the first onset
            e_ref = max(first_onset - 5.0, e[0])
            bg = p["bg_ratio"][i] * (e / e_ref) ** (-p["bg_r"][i])
            y = bg + edges_sig
            fw = p["resolution"][i]
            if fw > 0:
                sig = fw / 2.3548 / step
                half = int(4 * sig) + 1
                g = np.exp(-0.5 * (np.arange(-half, half + 1) / sig) ** 2)
                g /= g.sum()
                conv = np.empty(len(e))
                kernels.convolve_same(y, g, half, conv)
                # edge correction: renormalise where the kernel leaves the grid
                w = np.empty(len(e))
                kernels.convolve_same(np.ones(len(e)), g, half, w)
                y = conv / w
            if p["counts"][i] > 0:
                lam = np.maximum(y / y.max(), 0.0) * p["counts"][i]     # FFT round-off can leave -1e-17
                y = self.sample_rng(p, i).poisson(lam).astype(np.float64)
            if self.config["normalize"]:
                y = y / max(float(np.max(y)), 1e-30)
            out[i] = y
        return {"x": out, "params": real}
