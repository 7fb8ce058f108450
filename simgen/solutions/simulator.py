"""``solutions``: Raman and UV-vis spectra of aqueous electrolyte mixtures.

One sample is one solution: concentrations ``c_<ion>`` of the component ions of ``catalogs/solutions/species.yaml``
(drawn directly, ``composition: ions``, or from salt amounts ``salt_<salt>``, ``composition: salts``, which makes
every composition electroneutral), measured either by Raman scattering (``measurement: raman``, Stokes-shift axis
in cm-1) or by UV-vis absorption (``measurement: uvvis``, wavelength axis in nm).

Physics beyond a linear mixture of band shapes, each switchable in the config:

* ``solute_volume``: concentrations are converted between molality and molarity with the ions' partial molar
  volumes; the water they displace lowers the water bands (and, against a water blank, gives negative water
  absorption);
* ``ion_pairing``: mass-action speciation (metal-sulfate and metal-nitrate pairs, HSO4-, carbonate and phosphate
  protonation, Fe3+ hydrolysis) with Davies activity coefficients (``activity``); contact pairs have their own
  bands (sulfate nu1 near 995 cm-1, bound-nitrate nu1/nu3), solvent-separated pairs scatter like free ions;
* ``band_shifts``: band positions and widths linear in the ionic strength (and sqrt(I));
* ``water_effects``: ions move O-H stretch intensity from the strongly to the weakly H-bonded component;
* Raman instrument: frequency and Bose-Einstein factors (``laser_nm``, ``temperature_K``), a smooth response
  curve, Gaussian resolution, wavenumber calibration error, fluorescence baseline, cosmic-ray spikes, shot and read
  noise, and normalisation (``normalise``: none, max, area, or an internal-standard band area);
* UV-vis instrument: Beer-Lambert with a path length, slit averaging of the transmittance, stray light,
  photometric noise and detector saturation (``a_max``), wavelength offset, scattering and offset baselines.

``simulate`` reads the ion concentrations ``c_*``; the ``salt_*`` parameters record how a composition was drawn.
To simulate chosen salt amounts, pass ``sim.ions_from_salts({...})``.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError, RecipeError
from ..priors import Fixed
from ..simulator import Axis, Field, Simulator
from . import chemistry, kernels
from .chemistry import MIN_WATER_KG_PER_L
from .tables import species_table

__all__ = ["SolutionsSimulator"]

_T = species_table()
COMPONENTS = _T.components
SALTS = tuple(_T.salts)
CONC_PARAMS = tuple(f"c_{k}" for k in COMPONENTS)
SALT_PARAMS = tuple(f"salt_{k}" for k in SALTS)
_CATIONS = tuple(k for i, k in enumerate(COMPONENTS) if _T.charge[i] > 0)
_ANIONS = tuple(k for i, k in enumerate(COMPONENTS) if _T.charge[i] < 0)

HC_K = 1.4387769  # second radiation constant hc/k, cm K
REF_LASER_NM = 532.0
REF_T = 298.15
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _f(units, low=None, high=None, default=0.0, doc="", **kw):
    return Field(units=units, low=low, high=high, default=default, doc=doc, target=False, **kw)


RAMAN_PARAMS = {
    "exposure": _f("counts", 0.0, 1e12, 1000.0, "counts at the peak of pure water's O-H stretch band (sets the "
                   "shot-noise level)", low_open=True),
    "resolution": _f("cm-1", 0.0, 200.0, 0.0, "FWHM of the Gaussian instrument function (0 = none)"),
    "shift_offset": _f("cm-1", -100.0, 100.0, 0.0, "wavenumber calibration error: recorded minus true shift"),
    "shift_stretch": _f("cm-1", -100.0, 100.0, 0.0, "calibration error growing linearly to the axis ends "
                        "(+ at the high end, - at the low end)"),
    "response_c1": _f("", -0.9, 0.9, 0.0, "instrument response 1 + c1 u + c2 u^2 over the axis (u = -1 .. 1)"),
    "response_c2": _f("", -0.9, 0.9, 0.0, "curvature of the instrument response"),
    "fluor_amp": _f("", 0.0, 1e3, 0.0, "fluorescence background height, relative to the clean spectrum's maximum"),
    "fluor_center": _f("cm-1", -1e5, 1e5, 3000.0, "centre of the (Gaussian) fluorescence background"),
    "fluor_width": _f("cm-1", 1.0, 1e6, 3000.0, "standard deviation of the fluorescence background"),
    "offset": _f("", -10.0, 10.0, 0.0, "constant offset, relative to the clean spectrum's maximum"),
    "cosmic_rate": _f("", 0.0, 100.0, 0.0, "mean number of cosmic-ray spikes per spectrum (Poisson)"),
    "cosmic_amp": _f("", 0.0, 1e3, 1.0, "mean spike height (exponential), relative to the clean maximum"),
    "read_noise": _f("counts", 0.0, 1e9, 0.0, "standard deviation of the detector read noise"),
}
UV_PARAMS = {
    "path_cm": _f("cm", 0.0, 100.0, 1.0, "optical path length", low_open=True),
    "bandwidth_nm": _f("nm", 0.0, 50.0, 0.0, "spectral bandwidth (FWHM of the slit function; 0 = none)"),
    "wavelength_offset": _f("nm", -20.0, 20.0, 0.0, "wavelength calibration error: recorded minus true"),
    "stray_light": _f("", 0.0, 0.2, 0.0, "stray-light fraction of the reference beam"),
    "photometric_noise": _f("", 0.0, 0.5, 0.0, "standard deviation of the transmittance noise"),
    "absorbance_offset": _f("", -2.0, 2.0, 0.0, "constant absorbance offset (cell mismatch)"),
    "scatter_amp": _f("", -2.0, 5.0, 0.0, "absorbance at 400 nm of a lambda^-4 scattering baseline"),
}
SHARED_PARAMS = {
    "strength_spread": _f("", 0.0, 2.0, 0.0, "relative spread (log-normal sigma) of each species' band strengths "
                          "(Raman cross sections or molar absorptivities), drawn per sample"),
}


class SolutionsSimulator(Simulator):
    name = "solutions"
    version = "1"
    description = ("Raman or UV-vis spectra of aqueous electrolyte mixtures: salts -> ions, speciation with "
                   "activities, concentration-dependent bands, instrument effects")

    CONFIG = {
        "measurement": Field(kind="category", choices=("raman", "uvvis"), default="raman",
                             doc="raman (Stokes shift axis, cm-1) or uvvis (absorbance on a wavelength axis, nm)"),
        "axis_min": Field(units="cm-1 | nm", low=0.0, low_open=True, default=None,
                          doc="first axis value (default 200 cm-1 / 200 nm)"),
        "axis_max": Field(units="cm-1 | nm", low=0.0, low_open=True, default=None,
                          doc="last axis value (default 4000 cm-1 / 1100 nm)"),
        "n_points": Field(kind="int", low=8, high=200_000, default=None,
                          doc="points on the axis (default 2598 Raman / 901 UV-vis)"),
        "units": Field(kind="category", choices=("mol/L", "mol/kg"), default="mol/L",
                       doc="units of every c_* and salt_* parameter"),
        "composition": Field(kind="category", choices=("ions", "salts"), default="ions",
                             doc="ions: priors on c_*; salts: priors on salt_*, the c_* follow (electroneutral)"),
        "salt_presence": Field(kind="any", default=1.0, doc="probability that a salt with a prior is in a "
                               "sample (else 0): one number for all, or a mapping <salt>: probability (others 1)"),
        "limits": Field(kind="any", default=None, doc="maximum of some c_* (mapping c_<ion>: value); salt draws "
                        "that exceed one are redrawn"),
        "max_ionic_strength": Field(low=0.0, default=0.0, doc="redraw salt compositions whose ionic strength "
                                    "(from the totals, in the concentration units) exceeds this (0 = no limit)"),
        "max_draws": Field(kind="int", low=1, high=1_000_000, default=1000, doc="redraw rounds before giving up"),
        "balance_cation": Field(kind="category", choices=("none", *_CATIONS), default="h",
                                doc="ion added to neutralise an excess of anion charge in given compositions"),
        "balance_anion": Field(kind="category", choices=("none", *_ANIONS), default="cl",
                               doc="ion added to neutralise an excess of cation charge in given compositions"),
        "solute_volume": Field(kind="bool", default=True, doc="count the solutes' partial molar volumes in the "
                               "molality <-> molarity conversion and the water concentration"),
        "ion_pairing": Field(kind="bool", default=True, doc="speciation by mass action (ion pairs, protonation, "
                             "hydrolysis)"),
        "activity": Field(kind="category", choices=("davies", "ideal"), default="davies",
                          doc="activity coefficients in the speciation"),
        "band_shifts": Field(kind="bool", default=True, doc="ionic-strength dependent band positions and widths"),
        "water_effects": Field(kind="bool", default=True, doc="ion-dependent O-H stretch redistribution"),
        "laser_nm": Field(units="nm", low=150.0, high=2000.0, default=532.0, doc="Raman excitation wavelength"),
        "temperature_K": Field(units="K", low=200.0, high=700.0, default=298.15,
                               doc="sample temperature (Bose-Einstein factor only)"),
        "thermal_factor": Field(kind="bool", default=True, doc="scale Raman intensities by the frequency and "
                                "Bose-Einstein factors relative to 532 nm and 298.15 K (the catalog's reference)"),
        "shot_noise": Field(kind="bool", default=True, doc="Poisson (Gaussian-approximated) noise of the counts"),
        "normalise": Field(kind="category", choices=("none", "max", "area", "standard"), default="none",
                           doc="Raman: divide by the maximum, the mean, or the area of the standard window"),
        "standard_window": Field(kind="list", default=[1550.0, 1750.0],
                                 doc="Raman internal-standard window [low, high] cm-1: its area above the straight "
                                 "line through its end values is the divisor (default: the water bend)"),
        "lorentz_cut": Field(low=10.0, high=1e5, default=200.0, doc="Lorentzian tails cut at this many FWHM"),
        "blank": Field(kind="category", choices=("water", "air"), default="water",
                       doc="UV-vis reference: pure water (its absorption cancels) or air"),
        "a_max": Field(low=0.5, high=12.0, default=5.0, doc="UV-vis: the largest absorbance the detector reports"),
    }

    PARAMS = {
        **{f"salt_{k}": Field(units="mol/L", low=0.0, high=30.0, default=0.0, target=False,
                              doc=f"amount of {v['formula']} (composition: salts)") for k, v in _T.salts.items()},
        **{f"c_{k}": Field(units="mol/L", low=0.0, high=60.0, default=0.0, target=True,
                           doc=f"total concentration of {_T.formula[k]} (free + bound)") for k in COMPONENTS},
        **SHARED_PARAMS, **RAMAN_PARAMS, **UV_PARAMS,
    }

    # ------------------------------------------------------------------ set-up
    def setup(self):
        c = self.config
        self.table = _T
        raman = c["measurement"] == "raman"
        lo = c["axis_min"] if c["axis_min"] is not None else 200.0
        hi = c["axis_max"] if c["axis_max"] is not None else (4000.0 if raman else 1100.0)
        npts = c["n_points"] if c["n_points"] is not None else (2598 if raman else 901)
        if hi <= lo:
            raise RecipeError("config.axis_max", hi, f"a value above axis_min ({lo})")
        if raman:
            if lo < 50.0:
                raise RecipeError("config.axis_min", lo, "a Raman shift of at least 50 cm-1")
            if 1e7 / c["laser_nm"] <= hi + 100.0:
                raise RecipeError("config.laser_nm", c["laser_nm"], f"an excitation above the axis: 1e7/laser_nm > "
                                  f"axis_max + 100 cm-1 ({hi + 100:g})")
            self._axis = Axis.linear("raman_shift", "cm-1", lo, hi, npts, "Raman shift")
        else:
            if lo < 150.0:
                raise RecipeError("config.axis_min", lo, "a wavelength of at least 150 nm")
            self._axis = Axis.linear("wavelength", "nm", lo, hi, npts, "wavelength")
        self.x_name, self.x_units = self._x_label()
        self._check_mode_priors()
        self._limits = self._parse_limits(c["limits"])
        self._presence = self._parse_presence(c["salt_presence"])
        x = self._axis.coords[0]
        self._x = x
        if raman:
            self._thermal = self._thermal_factor(x) if c["thermal_factor"] else np.ones_like(x)
            self._u = (x - 0.5 * (x[0] + x[-1])) / (0.5 * (x[-1] - x[0]))
            self._counts_per_unit = 1.0 / self._pure_water_peak()
            w = c["standard_window"]
            if c["normalise"] == "standard":
                ok = (isinstance(w, list) and len(w) == 2 and all(isinstance(v, (int, float)) for v in w)
                      and x[0] <= w[0] < w[1] <= x[-1])
                if not ok:
                    raise RecipeError("config.standard_window", w, f"[low, high] inside the axis "
                                      f"[{x[0]:g}, {x[-1]:g}] cm-1")
                self._std = (int(np.searchsorted(x, w[0])), int(np.searchsorted(x, w[1], side="right")))
                if self._std[1] - self._std[0] < 5:
                    raise RecipeError("config.standard_window", w, "a window covering at least 5 axis points")
        else:
            self._nu_rev = (1e7 / x)[::-1].copy()  # increasing wavenumbers
        bands = self._bands()
        self._hb = (np.flatnonzero(bands.role == 1), np.flatnonzero(bands.role == 2))
        self._volumes = _T.volume if c["solute_volume"] else np.zeros_like(_T.volume)

    @property
    def axis(self) -> Axis:
        return self._axis

    @property
    def param_units(self) -> tuple[str, ...]:
        u = self.config["units"]
        return tuple(u if t.startswith(("c_", "salt_")) else self.PARAMS[t].units for t in self.targets)

    def _x_label(self):
        if self.config["measurement"] == "uvvis":
            return "absorbance", "absorbance (log10, base-10)"
        return "intensity", {"none": "counts", "max": "normalised (max = 1)", "area": "normalised (mean = 1)",
                             "standard": "relative to the internal-standard band area (cm-1)"}[self.config["normalise"]]

    def _bands(self):
        return _T.raman if self.config["measurement"] == "raman" else _T.uvvis

    def _default_targets(self):
        if self.config.get("composition") == "salts":
            used = set()
            for s in SALTS:
                pr = self.priors.get(f"salt_{s}")
                if pr is not None and not (pr.is_fixed and _is_zero(pr)):
                    used.update(_T.salts[s]["ions"])
            return tuple(f"c_{k}" for k in COMPONENTS if k in used)
        return super()._default_targets()

    def _check_mode_priors(self):
        c = self.config
        other = UV_PARAMS if c["measurement"] == "raman" else RAMAN_PARAMS
        for pname, spec in other.items():
            pr = self.priors[pname]
            if not (isinstance(pr, Fixed) and pr.value == spec.default):
                raise RecipeError(f"params.{pname}", pr.to_dict(), f"no prior: it is not used by measurement "
                                  f"'{c['measurement']}'")
        salts_mode = c["composition"] == "salts"
        for pname in (CONC_PARAMS if salts_mode else SALT_PARAMS):
            pr = self.priors[pname]
            if not _is_zero(pr):
                what = ("no prior: with composition 'salts' the ion concentrations follow from the salt_* draws"
                        if salts_mode else "no prior: salt_* parameters are drawn only with composition 'salts'")
                raise RecipeError(f"params.{pname}", pr.to_dict(), what)

    def _parse_limits(self, raw):
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise RecipeError("config.limits", raw, "a mapping c_<ion>: maximum concentration")
        out = {}
        for k, v in raw.items():
            if k not in CONC_PARAMS:
                raise RecipeError(f"config.limits.{k}", v, "a concentration parameter: " + ", ".join(CONC_PARAMS))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise RecipeError(f"config.limits.{k}", v, "a positive number")
            out[CONC_PARAMS.index(k)] = float(v)
        return out

    def _parse_presence(self, raw):
        def prob(v, where):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise RecipeError(where, v, "a probability in [0, 1]")
            return float(v)
        if isinstance(raw, dict):
            out = {s: 1.0 for s in SALTS}
            for k, v in raw.items():
                if k not in _T.salts:
                    raise RecipeError(f"config.salt_presence.{k}", v, "a salt of the catalog: " + ", ".join(SALTS))
                out[k] = prob(v, f"config.salt_presence.{k}")
            return out
        v = prob(raw, "config.salt_presence")
        return {s: v for s in SALTS}

    def _thermal_factor(self, x):
        """Stokes intensity (photon counting) relative to the catalog's reference, 532 nm and 298.15 K:
        nu_L (nu_L - nu)^3 / (1 - exp(-hc nu / kT)) over the same at the reference (Long 2002)."""
        c = self.config
        nl, nl0 = 1e7 / c["laser_nm"], 1e7 / REF_LASER_NM
        freq = (nl * (nl - x) ** 3) / (nl0 * (nl0 - x) ** 3)
        bose = (-np.expm1(-HC_K * x / REF_T)) / (-np.expm1(-HC_K * x / c["temperature_K"]))
        return freq * bose

    def _pure_water_peak(self):
        """Peak height of pure water's O-H stretch (relative area per mol * mol/L per cm-1)."""
        b = _T.raman
        sel = b.species == _T.n_species
        xs = np.arange(2800.0, 3900.0, 0.5)
        cw0 = _T.water_molality * _T.water_density
        h = (cw0 * b.strength[sel] * chemistry.area_to_height(b.fwhm[sel], b.eta[sel]))[None, :]
        out = np.empty((1, len(xs)))
        kernels.band_sum(xs, b.pos[sel][None, :], b.fwhm[sel][None, :], b.eta[sel], h, 1e4, out)
        return float(out.max())

    # ------------------------------------------------------------------ compositions
    def derive_params(self, p, rng):
        if self.config["composition"] != "salts":
            return
        n = len(p["seed"])
        active = [s for s in SALTS if not _is_zero(self.priors[f"salt_{s}"])]
        pres = self._presence
        for s in active:
            if pres[s] < 1.0:
                p[f"salt_{s}"] = np.where(rng.random(n) < pres[s], p[f"salt_{s}"], 0.0)
        conc = self._salt_ions(p)
        bad = self._violations(conc)
        for _ in range(self.config["max_draws"]):
            if not bad.any():
                break
            rows = np.flatnonzero(bad)
            for s in active:
                v = self.priors[f"salt_{s}"].sample(len(rows), rng)
                if pres[s] < 1.0:
                    v = np.where(rng.random(len(rows)) < pres[s], v, 0.0)
                p[f"salt_{s}"][rows] = v
            conc[rows] = self._salt_ions({k: v[rows] for k, v in p.items() if k.startswith("salt_")})
            bad[rows] = self._violations(conc[rows])
        if bad.any():
            raise RecipeError("config.limits", self.config["limits"], f"salt priors that meet the limits and "
                              f"max_ionic_strength within max_draws={self.config['max_draws']} redraws")
        for j, k in enumerate(CONC_PARAMS):
            p[k] = conc[:, j].copy()

    def _salt_ions(self, p):
        return chemistry.ions_from_salts(_T, {s: p[f"salt_{s}"] for s in SALTS if f"salt_{s}" in p})

    def _violations(self, conc):
        bad = np.zeros(len(conc), dtype=bool)
        for j, lim in self._limits.items():
            bad |= conc[:, j] > lim
        imax = self.config["max_ionic_strength"]
        if imax > 0:
            bad |= 0.5 * (conc @ (_T.charge[:len(COMPONENTS)] ** 2)) > imax
        return bad

    def ions_from_salts(self, salts: dict) -> dict:
        """``{"c_<ion>": array}`` of the ion concentrations that salt amounts ``{"<salt>": value}`` give (same
        units), for ``simulate`` at chosen salt amounts."""
        for k in salts:
            if k not in _T.salts:
                raise ParameterError(k, salts[k], "a salt of the catalog: " + ", ".join(SALTS), self.name)
        arr = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in salts.items()}
        conc = chemistry.ions_from_salts(_T, arr)
        return {c: conc[:, j] for j, c in enumerate(CONC_PARAMS)}

    def _balance(self, conc):
        """Add the configured counter-ion where a composition is not electroneutral."""
        z = _T.charge[:len(COMPONENTS)]
        q = conc @ z
        scale = np.abs(conc) @ np.abs(z)
        tol = 1e-9 * scale + 1e-12
        for sign, key in ((1.0, self.config["balance_anion"]), (-1.0, self.config["balance_cation"])):
            rows = np.flatnonzero(sign * q > tol)
            if not len(rows):
                continue
            if key == "none":
                i = rows[0]
                raise ParameterError(CONC_PARAMS[int(np.argmax(conc[i] * np.abs(z)))], float(q[i]),
                                     "an electroneutral composition (net charge 0 mol/L; set config "
                                     f"balance_{'anion' if sign > 0 else 'cation'} to add a counter-ion)", self.name)
            j = COMPONENTS.index(key)
            conc[rows, j] += np.abs(q[rows]) / abs(z[j])
        return conc

    def composition(self, params) -> dict:
        """Chemistry of a batch: ``molal`` (n, S) species molalities, ``molar`` (n, S) mol/L, ``ionic`` (n,)
        mol/kg, ``kgw`` (n,) kg water per litre, ``c_water`` (n,) mol/L, ``totals`` (n, K) balanced c_*."""
        p = params
        n = self.n_of(p)
        conc = np.stack([np.asarray(p[k], dtype=np.float64) for k in CONC_PARAMS], axis=1).reshape(n, -1)
        conc = self._balance(conc.copy())
        units = self.config["units"]
        molal, kgw, cw = chemistry.convert(_T, conc, units, self._volumes)
        low = kgw < MIN_WATER_KG_PER_L
        if low.any():
            i = int(np.flatnonzero(low)[0])
            j = int(np.argmax(conc[i] * self._volumes))  # the ion taking the most volume
            raise ParameterError(CONC_PARAMS[j], float(conc[i, j]), f"a composition leaving at least "
                                 f"{MIN_WATER_KG_PER_L} kg of water per litre (this one leaves {kgw[i]:.3f})",
                                 self.name)
        ms, ionic = chemistry.speciate(_T, molal, self.config["ion_pairing"], self.config["activity"])
        return {"molal": ms, "molar": ms * kgw[:, None], "ionic": ionic, "kgw": kgw, "c_water": cw,
                "totals": conc}

    # ------------------------------------------------------------------ simulation
    def simulate(self, params, rng=None) -> np.ndarray:
        return self.simulate_outputs(params, rng)["x"]

    def simulate_outputs(self, params, rng=None):
        p = self.prepare_params(params, rng)
        n = self.n_of(p)
        chem = self.composition(p)
        rngs = _LazyRngs(self, p)
        bands = self._bands()
        G = _T.n_species + 1
        mult = np.ones((n, G))
        for i in range(n):
            s = p["strength_spread"][i]
            if s > 0:
                mult[i] = np.exp(s * rngs[i].standard_normal(G) - 0.5 * s * s)
        if self.config["measurement"] == "raman":
            x = self._raman(p, chem, bands, mult, rngs)
        else:
            x = self._uvvis(p, chem, bands, mult, rngs)
        realized = {k: chem["totals"][:, j] for j, k in enumerate(CONC_PARAMS)}
        return {"x": x.astype(np.float32), "params": realized}

    def band_state(self, p, chem, bands, mult=None):
        """Positions, widths (n, B) cm-1 and strengths x concentrations (n, B) of every band: Raman areas
        (relative cross section x mol/L) or UV-vis peak absorbances per cm of path (eps x mol/L)."""
        n = len(chem["ionic"])
        pos, fwhm = chemistry.band_params(bands, chem["ionic"], self.config["band_shifts"])
        cw = chem["c_water"]
        if self.config["measurement"] == "uvvis" and self.config["blank"] == "water":
            cw = cw - _T.water_molality * _T.water_density
        conc = np.concatenate([chem["molar"], cw[:, None]], axis=1)
        strength = np.broadcast_to(bands.strength, (n, len(bands))).copy()
        if mult is not None:
            strength *= mult[:, bands.group]
        amount = conc[:, bands.species] * strength
        ks, kw = self._hb
        if self.config["water_effects"] and len(ks) and len(kw):
            f = chemistry.water_hb_fraction(_T, chem["molal"])
            moved = amount[:, ks].sum(axis=1) * f
            amount[:, ks] *= (1.0 - f)[:, None]
            amount[:, kw[0]] += moved
        return pos, fwhm, amount

    def _raman(self, p, chem, bands, mult, rngs):
        x = self._x
        n, M = len(rngs), len(x)
        pos, fwhm, area = self.band_state(p, chem, bands, mult)
        half = 0.5 * (x[-1] - x[0])
        mid = 0.5 * (x[-1] + x[0])
        pos = pos + p["shift_offset"][:, None] + p["shift_stretch"][:, None] * (pos - mid) / half
        height = area * chemistry.area_to_height(fwhm, bands.eta)
        spec = np.empty((n, M))
        kernels.band_sum(x, pos, fwhm, bands.eta, height, self.config["lorentz_cut"], spec)
        u = self._u
        resp = np.maximum(1.0 + p["response_c1"][:, None] * u + p["response_c2"][:, None] * u * u, 0.05)
        spec *= self._thermal * resp
        res = p["resolution"]
        if np.any(res > 0):
            sm = np.empty_like(spec)
            kernels.gauss_smooth(spec, res / FWHM_PER_SIGMA / (x[1] - x[0]), sm)
            spec = sm
        top = spec.max(axis=1)
        fl = p["fluor_amp"][:, None] * np.exp(-0.5 * ((x - p["fluor_center"][:, None])
                                                      / p["fluor_width"][:, None]) ** 2)
        counts = (spec + top[:, None] * (fl + p["offset"][:, None])) * (self._counts_per_unit
                                                                        * p["exposure"])[:, None]
        shot = self.config["shot_noise"]
        for i in range(n):
            clean_max = counts[i].max()
            if shot:
                counts[i] += np.sqrt(np.maximum(counts[i], 0.0)) * rngs[i].standard_normal(M)
            if p["read_noise"][i] > 0:
                counts[i] += p["read_noise"][i] * rngs[i].standard_normal(M)
            if p["cosmic_rate"][i] > 0:
                r = rngs[i]
                k = r.poisson(p["cosmic_rate"][i])
                for _ in range(k):
                    j = int(r.integers(0, M))
                    a = p["cosmic_amp"][i] * max(clean_max, 1.0) * r.exponential()
                    counts[i, j] += a
                    if r.random() < 0.3 and j + 1 < M:
                        counts[i, j + 1] += 0.5 * a
        return self._normalise(counts)

    def _normalise(self, y):
        how = self.config["normalise"]
        if how == "none":
            return y
        if how == "max":
            d = y.max(axis=1)
        elif how == "area":
            d = y.mean(axis=1)
        else:
            d = standard_area(self._x, y, *self._std)
        d = np.where(np.abs(d) > 0, d, 1.0)
        return y / d[:, None]

    def _uvvis(self, p, chem, bands, mult, rngs):
        lam = self._x
        n, M = len(rngs), len(lam)
        pos, fwhm, amount = self.band_state(p, chem, bands, mult)
        # a band at true wavelength L is recorded at L + offset
        pos = 1e7 / (1e7 / pos + p["wavelength_offset"][:, None])
        height = amount * p["path_cm"][:, None]
        a_rev = np.empty((n, M))
        kernels.band_sum(self._nu_rev, pos, fwhm, bands.eta, height, self.config["lorentz_cut"], a_rev)
        A = a_rev[:, ::-1] + p["absorbance_offset"][:, None] + p["scatter_amp"][:, None] * (400.0 / lam) ** 4
        noise = np.zeros((n, M))
        for i in range(n):
            if p["photometric_noise"][i] > 0:
                noise[i] = p["photometric_noise"][i] * rngs[i].standard_normal(M)
        sigma = p["bandwidth_nm"] / FWHM_PER_SIGMA / (lam[1] - lam[0])
        out = np.empty((n, M))
        kernels.transmit_measure(np.ascontiguousarray(A), sigma, p["stray_light"], noise, self.config["a_max"],
                                 np.empty((n, M)), out)
        return out


class _LazyRngs:
    """Per-sample generators, made on first use (most neutral UV-vis samples need none)."""

    def __init__(self, sim, p):
        self._sim, self._p, self._r = sim, p, {}

    def __len__(self):
        return len(self._p["seed"])

    def __getitem__(self, i):
        r = self._r.get(i)
        if r is None:
            r = self._r[i] = self._sim.sample_rng(self._p, i)
        return r

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def standard_area(x, y, i0, i1):
    """Area (n,) of y[:, i0:i1] above the straight line through the window's end values (means of 3 points)."""
    xs, ys = x[i0:i1], y[:, i0:i1]
    xa, xb = xs[:3].mean(), xs[-3:].mean()
    ya, yb = ys[:, :3].mean(axis=1), ys[:, -3:].mean(axis=1)
    base = ya[:, None] + (yb - ya)[:, None] * (xs - xa) / (xb - xa)
    d = ys - base
    return np.sum(0.5 * (d[:, 1:] + d[:, :-1]) * np.diff(xs), axis=1)


def _is_zero(prior) -> bool:
    return isinstance(prior, Fixed) and isinstance(prior.value, (int, float)) and prior.value == 0
