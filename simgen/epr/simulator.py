"""``epr``: CW EPR spectra of paramagnetic centres (powder or solution) with instrument nuisances.

One sample = one centre (S, g, one nucleus species with ``n_equiv`` equivalent nuclei, A, D, E/D, widths,
strains) optionally mixed with a second centre from ``catalogs/epr/centres.yaml`` (``mix_centre``,
``mix_weight``), measured with a drawn microwave frequency, field offset, modulation amplitude, harmonic and
microwave phase, then max-normalised; a broad background line, a quadratic baseline, white and 1/f noise are
added after normalisation (in units of the clean spectrum's maximum).

Targets that do not apply are NaN in the realized parameters (A without nucleus, D and E/D for S = 1/2).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import yaml

from .. import catalogs
from ..errors import ParameterError, RecipeError
from ..simulator import Axis, Field, Simulator
from .kernels import BMAGN, end_baseline, finish_spectrum, pink_spectrum, unit_std
from .physics import Experiment, Options, SpinSystem, _irfft, cw_spectrum, nuclei

__all__ = ["EPRSimulator", "centres", "centre_system", "crop_window", "pink_noise"]


@functools.lru_cache(maxsize=None)
def _centres_file():
    with open(catalogs.find("epr/centres.yaml")) as f:
        return yaml.safe_load(f)["centres"]


def centres() -> dict:
    """The centre catalog ``{id: {...}}`` (catalogs/epr/centres.yaml)."""
    return dict(_centres_file())


def centre_system(cid: str, **overrides) -> SpinSystem:
    """A :class:`SpinSystem` with a catalog centre's values (``overrides`` replace fields)."""
    tab = _centres_file()
    if cid not in tab:
        raise ParameterError("centre", cid, "one of " + ", ".join(tab))
    c = tab[cid]
    D = float(c.get("D", 0.0))
    kw = dict(S=float(c["S"]), g=c["g"], nucleus=c.get("nucleus"), A=c.get("A", 0.0), D=D,
              E=D * float(c.get("E_over_D", 0.0)), lw=float(c.get("lw", 0.5)))
    kw.update(overrides)
    return SpinSystem(**kw)


def _nucleus_choices():
    tab = nuclei()
    from .physics import _nuclei_table
    return ("none", *tab, *_nuclei_table()["elements"])


def _centre_choices():
    return ("none", *_centres_file())


def _f(units, low=None, high=None, default=0.0, doc="", target=False, kind="float", **kw):
    return Field(units=units, kind=kind, low=low, high=high, default=default, doc=doc, target=target, **kw)


class EPRSimulator(Simulator):
    name = "epr"
    # 2: derivative spectra transformed only over the occupied columns (Options.fft_window), coarser grid
    #    refinement for large zero-field splitting, pink noise through the kernels: same draws, other bytes
    # 3: S > 1/2 on the octant grid with the fewest nested rows that converge the spectrum (Options.powder_tol);
    #    exact-route field intervals halved knot by knot away from high field (Options.node_adaptive)
    # 4: stick spectra over the grid columns their lines reach (kernels.field_window), exact zeros past the last
    #    line (the FFT window no longer runs to the grid's end on rounding), strain width classes over the total
    #    widths present (kernels.width_classes: 10-100x closer to per-line widths) and an FFT window covering 6
    #    widths of the widest class; A_strain on the exact routes (it was dropped there)
    # 5: octant-grid triangles and 1-D (axial) cells where a line is missing at a corner are left out
    #    (kernels.powder_bin_tri, kernels.powder_bin): the corner deposits made spikes of up to the spectrum's
    #    maximum in S > 1/2 spectra (Fe3+, Cr3+)
    # 6: looping-transition roots keep their branch slot from knot to knot (kernels._root_slot); axial S > 1/2
    #    on a knot ladder doubled up to n_theta_zfs_max until two grids agree
    # 7: 1-D cells where a looping transition closes get the loop's closing part (kernels._loop_close)
    version = "7"
    description = "CW EPR (field-swept, EasySpin conventions) of one centre + optional second centre, with nuisances"
    x_name, x_units = "signal", "normalised (max |clean spectrum| = 1)"

    CONFIG = {
        "field_min": Field(units="mT", low=0.0, default=250.0, doc="first field of the sweep"),
        "field_max": Field(units="mT", low=0.0, low_open=True, default=450.0, doc="last field of the sweep"),
        "n_points": Field(kind="int", low=16, high=65536, default=1024, doc="points of the field axis"),
        "n_theta": Field(kind="int", low=5, high=361, default=19, doc="orientation knots 0..90 deg, S = 1/2 "
                         "closed-form route (convergence setting)"),
        "n_theta_exact": Field(kind="int", low=5, high=361, default=19, doc="orientation knots, exact route S = 1/2"),
        "n_theta_zfs": Field(kind="int", low=5, high=361, default=13,
                             doc="orientation knots, S > 1/2 (axial: with its halvings, the first rungs of the "
                                 "knot ladder that n_theta_zfs_max continues)"),
        "n_theta_zfs_max": Field(kind="int", low=0, high=721, default=97,
                                 doc="most orientation knots, S > 1/2 axial: the knots go on from n_theta_zfs, "
                                 "intervals halved, until two grids agree (0 = n_theta_zfs only)"),
        "n_theta_zfs_rhombic": Field(kind="int", low=5, high=361, default=21,
                                     doc="orientation knots, S > 1/2 with rhombic tensors (octant grid)"),
        "refine": Field(kind="int", low=1, high=64, default=4, doc="interpolation factor between knots, 1-D grids"),
        "refine_2d": Field(kind="int", low=1, high=64, default=3,
                           doc="interpolation factor between knots, 2-D (rhombic) grids"),
        "method": Field(kind="category", choices=("auto", "perturb", "exact"), default="auto",
                        doc="S = 1/2 hyperfine: second order, exact diagonalisation, or auto"),
    }

    PARAMS = {
        # spin system
        "S": _f("", 0.5, 3.5, 0.5, "electron spin (half-integer)"),
        "symmetry": Field(kind="category", choices=("iso", "axial", "rhombic"), default="rhombic",
                          doc="iso: g_y = g_z = g_x (and A); axial: g_y = g_x (and A_y = A_x)", target=False),
        "g_x": _f("", 0.0, 20.0, 2.0023, "principal g (perpendicular for axial)", True, low_open=True),
        "g_y": _f("", 0.0, 20.0, 2.0023, "principal g", True, low_open=True),
        "g_z": _f("", 0.0, 20.0, 2.0023, "principal g (parallel for axial)", True, low_open=True),
        "nucleus": Field(kind="category", choices=_nucleus_choices(), default="none",
                         doc="hyperfine nucleus: isotope (63Cu) or element (Cu = natural mixture)", target=False),
        "n_equiv": _f("", 1, 6, 1, "equivalent nuclei", kind="int"),
        "A_x": _f("MHz", -5000.0, 5000.0, 0.0, "hyperfine principal value (reference isotope)", True),
        "A_y": _f("MHz", -5000.0, 5000.0, 0.0, "hyperfine principal value", True),
        "A_z": _f("MHz", -5000.0, 5000.0, 0.0, "hyperfine principal value", True),
        "D": _f("MHz", -200000.0, 200000.0, 0.0, "axial zero-field splitting (S > 1/2)", True),
        "E_over_D": _f("", 0.0, 1.0 / 3.0 + 1e-9, 0.0, "rhombicity E/D", True),
        # broadening
        "lw": _f("mT", 0.0, 200.0, 0.5, "Gaussian FWHM", True),
        "lw_lorentz": _f("mT", 0.0, 200.0, 0.0, "Lorentzian FWHM (Voigt with lw)"),
        "g_strain": _f("", 0.0, 1.0, 0.0, "FWHM of the g distribution (each principal value)"),
        "A_strain": _f("MHz", 0.0, 2000.0, 0.0, "FWHM of the A distribution"),
        # experiment
        "mw_freq": _f("GHz", 0.1, 400.0, 9.5, "microwave frequency"),
        "field_offset": _f("mT", -50.0, 50.0, 0.0, "recorded field minus true field"),
        "mod_amp": _f("mT", 0.0, 50.0, 0.0, "peak-to-peak field-modulation amplitude"),
        "harmonic": _f("", 0, 2, 1, "detection harmonic (1 = first derivative)", kind="int"),
        "mw_phase": _f("rad", -math.pi, math.pi, 0.0, "microwave phase (0 = absorption)"),
        "sweep_points": _f("", 0, 65536, 0, "instrument points over the window, resampled to the axis "
                           "(0 = the axis itself)", kind="int"),
        # mixture
        "mix_centre": Field(kind="category", choices=_centre_choices(), default="none",
                            doc="second centre from catalogs/epr/centres.yaml", target=False),
        "mix_weight": _f("", 0.0, 1.0, 0.0, "double-integral weight of the second centre"),
        # after normalisation (units of max |clean signal|)
        "bg_amp": _f("", -10.0, 10.0, 0.0, "amplitude of a broad background line (derivative of a Lorentzian)"),
        "bg_center": _f("mT", -1e4, 1e4, 300.0, "centre of the background line"),
        "bg_width": _f("mT", 0.0, 1e4, 100.0, "FWHM of the background line", low_open=True),
        "baseline_c0": _f("", -10.0, 10.0, 0.0, "baseline offset"),
        "baseline_c1": _f("", -10.0, 10.0, 0.0, "baseline slope over the window (end minus centre)"),
        "baseline_c2": _f("", -10.0, 10.0, 0.0, "baseline curvature over the window"),
        "noise_white": _f("", 0.0, 10.0, 0.0, "standard deviation of white noise"),
        "noise_pink": _f("", 0.0, 10.0, 0.0, "standard deviation of 1/f noise"),
        # measured sub-window (what train.prepare does to a file narrower than the axis)
        "crop_below": _f("mT", 0.0, 1e4, 0.0, "the measured window starts this far below the resonance field of "
                         "g_iso (0 = the whole axis); outside it the spectrum is 0, inside it the linear baseline "
                         "through the end 5 % medians is removed and max |y| = 1, as train.prepare does"),
        "crop_above": _f("mT", 0.0, 1e4, 0.0, "the measured window ends this far above the resonance field of "
                         "g_iso (0 = the whole axis)"),
    }

    def setup(self):
        c = self.config
        if c["field_max"] <= c["field_min"]:
            raise RecipeError("config.field_max", c["field_max"], f"a value above field_min ({c['field_min']})")
        self._axis = Axis.linear("field", "mT", c["field_min"], c["field_max"], c["n_points"], "magnetic field")
        self._opt = Options(method=c["method"], n_theta=c["n_theta"], n_theta_exact=c["n_theta_exact"],
                            n_theta_zfs=c["n_theta_zfs"], n_theta_zfs_rhombic=c["n_theta_zfs_rhombic"],
                            n_theta_zfs_max=c["n_theta_zfs_max"],
                            refine=c["refine"], refine_2d=c["refine_2d"])

    @property
    def axis(self) -> Axis:
        return self._axis

    # ------------------------------------------------------------------ parameters
    def derive_params(self, params, rng):
        self._tie(params)

    def _tie(self, p):
        """Apply the symmetry ties (axial: y = x; iso: y = z = x) in place."""
        sym = np.asarray(p["symmetry"])
        for pre in ("g_", "A_"):
            iso = sym == 0
            ax = sym == 1
            p[pre + "y"] = np.where(iso | ax, p[pre + "x"], p[pre + "y"])
            p[pre + "z"] = np.where(iso, p[pre + "x"], p[pre + "z"])

    def realized(self, p):
        """Parameters as written to the corpus: symmetry ties applied, NaN where not applicable."""
        out = {k: np.array(v, dtype=np.float64, copy=True) for k, v in p.items() if k != "seed"}
        self._tie(out)
        nonuc = np.asarray(p["nucleus"]) == 0
        for k in ("A_x", "A_y", "A_z"):
            out[k][nonuc] = np.nan
        s12 = np.asarray(p["S"]) == 0.5
        out["D"][s12] = np.nan
        out["E_over_D"][s12] = np.nan
        return out

    def _system(self, p, i, cols=None) -> SpinSystem:
        p = cols if cols is not None else p     # the parameter columns as Python lists (simulate_outputs)
        S = float(p["S"][i])
        S2 = 2 * S
        if abs(S2 - round(S2)) > 1e-9 or round(S2) % 2 != 1:
            raise ParameterError("S", S, "a half-integer electron spin (1/2, 3/2, 5/2, 7/2)", self.name)
        nuc = self.PARAMS["nucleus"].choices[int(p["nucleus"][i])]
        D = float(p["D"][i]) if S > 0.5 else 0.0
        return SpinSystem(
            S=S, g=[p["g_x"][i], p["g_y"][i], p["g_z"][i]], nucleus=None if nuc == "none" else nuc,
            A=[p["A_x"][i], p["A_y"][i], p["A_z"][i]], n_equiv=int(p["n_equiv"][i]), D=D,
            E=D * float(p["E_over_D"][i]), lw=float(p["lw"][i]), lwL=float(p["lw_lorentz"][i]),
            g_strain=float(p["g_strain"][i]), A_strain=float(p["A_strain"][i]))

    # ------------------------------------------------------------------ simulation
    def simulate(self, params, rng=None) -> np.ndarray:
        return self.simulate_outputs(params, rng)["x"]

    def simulate_outputs(self, params, rng=None):
        p = self.prepare_params(params, rng)
        self._tie(p)
        n = self.n_of(p)
        x = self._axis.coords[0]
        out = np.empty((n, len(x)), dtype=np.float32)
        ctx = self._batch_context(p, x)
        for i in range(n):
            out[i] = self._one(p, i, x, ctx)
        return {"x": out, "params": self.realized(p)}

    @staticmethod
    def _batch_context(p, x):
        """What every spectrum of a batch shares, made once: the reduced axis u and the field x (the rows of one
        array for ``finish_spectrum``), the resampled instrument axes by point count (filled on use), the
        parameter columns as Python scalars and an output buffer."""
        u = (x - 0.5 * (x[0] + x[-1])) / (0.5 * (x[-1] - x[0]))
        return {"ux": np.ascontiguousarray(np.stack([u, x])), "xs": {},
                "cols": {k: np.asarray(v).tolist() for k, v in p.items()}, "y": np.empty(len(x))}

    def _one(self, p, i, x, ctx=None):
        if ctx is None:
            ctx = self._batch_context(p, x)
        c = ctx["cols"]
        sysm = self._system(p, i, c)
        if sysm.lw == 0 and sysm.lwL == 0:
            raise ParameterError("lw", 0.0, "lw > 0 or lw_lorentz > 0", self.name)
        systems = [sysm]
        mix = self.PARAMS["mix_centre"].choices[int(c["mix_centre"][i])]
        w2 = float(c["mix_weight"][i])
        if mix != "none" and w2 > 0:
            sysm.weight = 1.0 - w2
            systems.append(centre_system(mix, weight=w2))
        npts = int(c["sweep_points"][i])
        if npts >= 16:
            xs = ctx["xs"].get(npts)
            if xs is None:
                xs = ctx["xs"][npts] = np.linspace(x[0], x[-1], npts)
        else:
            xs = x
        exp = Experiment(xs, mw_freq=float(c["mw_freq"][i]), harmonic=int(c["harmonic"][i]),
                         mod_amp=float(c["mod_amp"][i]), mw_phase=float(c["mw_phase"][i]))
        y = cw_spectrum(systems, exp, self._opt, field_offset=float(c["field_offset"][i]))
        if xs is not x:
            y = np.interp(x, xs, y)
        # normalisation, baseline and background line in one pass (kernels.finish_spectrum: the operations of
        # y / max|y| + c0 + c1 u + c2 u^2 + bg_amp * bg in NumPy's order)
        hw = 0.5 * p["bg_width"][i]
        yo = ctx["y"]
        # derivative of a Lorentzian, scaled to max |.| = 1 (the extremum at d = hw/sqrt(3) is 9/(8 sqrt 3))
        finish_spectrum(y, ctx["ux"], float(c["baseline_c0"][i]), float(c["baseline_c1"][i]),
                        float(c["baseline_c2"][i]), float(c["bg_amp"][i]), float(c["bg_center"][i]), float(hw),
                        float(hw ** 3), _BG_SCALE, yo)
        y = yo
        sw, sp = float(c["noise_white"][i]), float(c["noise_pink"][i])
        if sw > 0 or sp > 0:
            r = self.sample_rng(p, i)
            if sw > 0:
                y = y + sw * r.standard_normal(len(x))
            if sp > 0:
                y = y + sp * pink_noise(len(x), r)
        cb, ca = float(c["crop_below"][i]), float(c["crop_above"][i])
        if cb > 0 or ca > 0:
            g_iso = (p["g_x"][i] + p["g_y"][i] + p["g_z"][i]) / 3.0
            b0 = float(p["mw_freq"][i]) * 1e3 / (g_iso * BMAGN) + float(p["field_offset"][i])
            y = crop_window(x, y, b0 - cb if cb > 0 else -np.inf, b0 + ca if ca > 0 else np.inf)
        return y


_BG_SCALE = 8 * math.sqrt(3) / 9


def crop_window(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``y`` as measured over [lo, hi] only and put on the whole axis like ``train.prepare``: the linear baseline
    through the medians of the end 5 % (at least 3 points) of the window removed, divided by max |y| in the
    window, 0 outside.  Windows with fewer than 16 points or covering the whole axis leave ``y`` as it is."""
    i0 = int(np.searchsorted(x, lo, side="left"))
    i1 = int(np.searchsorted(x, hi, side="right"))
    if i1 - i0 < 16 or (i0 == 0 and i1 == len(x)):
        return y
    ys = np.array(y[i0:i1], dtype=np.float64)
    m = end_baseline(np.ascontiguousarray(x[i0:i1], dtype=np.float64), ys)
    out = np.zeros_like(y)
    out[i0:i1] = ys / m if m > 0 else ys
    return out


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1/f noise (power spectrum ~ 1/f) of length n: complex normal amplitudes / sqrt(k) (the
    draws: n // 2 + 1 real parts, then as many imaginary parts), no DC, inverse FFT, divided by the standard
    deviation (``kernels.pink_spectrum``, ``kernels.unit_std``)."""
    h = n // 2 + 1
    spec = np.empty(h, dtype=np.complex128)
    pink_spectrum(rng.standard_normal(2 * h), spec)
    y = _irfft(spec, n)
    unit_std(y)
    return y
