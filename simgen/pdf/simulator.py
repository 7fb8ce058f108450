"""``pdf``: reduced pair distribution functions G(r) of crystals and nanoparticles (diffpy.srreal conventions).

Per sample: pick a phase (the class label, or ``config.phase``), strain its cell, then either
* ``shape: bulk`` - the periodic crystal (pairs enumerated and binned in one pass under the strained cell), with vacancies/substitutions as mean-field occupancies/mixed scatterers and rattle as
  extra isotropic static displacement (U_eff = Uiso + rattle^2);
* ``shape: sphere_envelope`` - the bulk G(r) times the shape factor of a sphere of ``diameter`` (srreal's
  spherical envelope; few ms), or with ``size_sigma`` > 0 of a log-normal ensemble of spheres whose
  volume-weighted mean diameter is ``diameter`` (real powders are polydisperse: their G(r) reaches past the
  mean size);
* ``shape: sphere | icosahedron | decahedron | octahedron`` - an explicit cluster (a spherical cut of the strained
  crystal, or ASE's fcc clusters closest in volume-equivalent diameter) with explicit random vacancies,
  substitutions and rattle, computed from its pair histogram (or the Debye route with ``config.method: debye``).
Targets written per sample include the realized lattice length ``a`` (A) and, for clusters, the realized
volume-equivalent ``diameter`` (A).  Noise: white Gaussian with standard deviation ``noise * max|G|``, plus
band-limited noise (``noise_band * max|G|``, see :func:`band_noise`) like that of a measured G(r).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError, RecipeError
from ..simulator import Axis, Field, Simulator
from .calculator import Model, make_grid, pdf_from_model, polydisperse_envelope
from .scattering import check_element, scattering_factor
from .structures import (apply_substitution, apply_vacancies, equivalent_diameter, fcc_cluster, list_phases,
                         phase_model, rattle, sphere_cut, strained_cell)

SHAPES = ("bulk", "sphere_envelope", "sphere", "icosahedron", "decahedron", "octahedron")


def band_noise(n: int, rstep: float, qmax: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-std noise on an r grid of ``n`` points as measured G(r) carries it: the counting noise of
    F(Q) = Q[S(Q) - 1] has a std growing ~ Q up to Qmax, and G(r) is its sine transform, so the noise is a sum of
    sin(Q r) with amplitudes ~ Q for Q < Qmax -- in band with the structure and flat in r (white point noise, by
    contrast, sits mostly above Qmax where a network can filter it out).  Built on a 2n grid (no wrap-around)."""
    m = 2 * n
    spec = np.fft.rfft(rng.standard_normal(m))
    q = 2.0 * np.pi * np.fft.rfftfreq(m, rstep)
    spec *= np.where(q < qmax, q / qmax, 0.0)
    out = np.fft.irfft(spec, m)[:n]
    sd = out.std()
    return out / sd if sd > 0 else out


class PDFSimulator(Simulator):
    name = "pdf"
    version = "1"
    description = "reduced PDF G(r) of crystals and nanoparticles (diffpy.srreal conventions)"
    x_name, x_units = "G", "1/A^2"

    CONFIG = {
        "rmin": Field(units="A", low=0.0, default=1.0, doc="first r point"),
        "rmax": Field(units="A", low=0.0, low_open=True, default=30.0, doc="r range end (exclusive)"),
        "rstep": Field(units="A", low=0.0, low_open=True, high=1.0, default=0.01, doc="r step"),
        "radiation": Field(kind="category", choices=("xray", "neutron"), default="xray", doc="scattering factors"),
        "phase": Field(kind="str", default="Ni_fcc", doc="catalog phase used when the recipe has no label"),
        "method": Field(kind="category", choices=("real", "debye"), default="real",
                        doc="route for explicit clusters: real-space Gaussians or Debye F(Q)"),
        "substitution_host": Field(kind="str", default="", doc="element replaced by `substitution`"),
        "substitution_dopant": Field(kind="str", default="", doc="element put in its place"),
        "vacancy_element": Field(kind="str", default="", doc="element whose sites get vacancies (empty: all)"),
        "max_strain": Field(units="", low=0.0, high=0.5, default=0.1, doc="largest |strain| accepted"),
    }
    PARAMS = {
        "shape": Field(kind="category", choices=SHAPES, default="bulk", doc="bulk crystal or particle shape"),
        "a": Field(units="A", low=0.0, default=0.0,
                   doc="realized first lattice length after strain (derived; any value given is ignored)"),
        "diameter": Field(units="A", low=0.0, high=1000.0, default=0.0,
                          doc="particle diameter (volume-equivalent for polyhedra; ignored for bulk)"),
        "size_sigma": Field(units="", low=0.0, high=1.0, default=0.0,
                            doc="log-normal spread (std of ln D) of the particle sizes, sphere_envelope only; "
                                "diameter is then the volume-weighted mean <D^4>/<D^3>"),
        "strain_iso": Field(units="", low=-0.5, high=0.5, default=0.0, doc="isotropic strain"),
        "strain_a": Field(units="", low=-0.5, high=0.5, default=0.0, doc="extra strain along a"),
        "strain_b": Field(units="", low=-0.5, high=0.5, default=0.0, doc="extra strain along b"),
        "strain_c": Field(units="", low=-0.5, high=0.5, default=0.0, doc="extra strain along c"),
        "uiso": Field(units="A^2", low=0.0, high=0.2, default=0.005, doc="isotropic ADP of every atom"),
        "delta1": Field(units="A", low=0.0, high=5.0, default=0.0, doc="linear correlated-motion sharpening"),
        "delta2": Field(units="A^2", low=0.0, high=20.0, default=0.0, doc="quadratic correlated-motion sharpening"),
        "qbroad": Field(units="1/A", low=0.0, high=0.2, default=0.0, doc="Q-resolution peak broadening"),
        "qdamp": Field(units="1/A", low=0.0, high=0.3, default=0.04, doc="Q-resolution damping envelope"),
        "qmin": Field(units="1/A", low=0.0, high=5.0, default=0.0, doc="low-Q cutoff of F(Q)"),
        "qmax": Field(units="1/A", low=1.0, high=100.0, default=25.0, doc="termination of F(Q)"),
        "scale": Field(units="", low=0.0, default=1.0, doc="scale factor"),
        "rattle": Field(units="A", low=0.0, high=0.5, default=0.0, doc="static random displacement (per axis)"),
        "vacancy": Field(units="", low=0.0, high=0.5, default=0.0, doc="fraction of vacant sites"),
        "substitution": Field(units="", low=0.0, high=1.0, default=0.0, doc="fraction of host atoms substituted"),
        "noise": Field(units="", low=0.0, high=1.0, default=0.0, doc="Gaussian noise std relative to max|G|"),
        "noise_band": Field(units="", low=0.0, high=1.0, default=0.0,
                            doc="band-limited noise std relative to max|G|: counting noise of F(Q) (std ~ Q, "
                                "Q < qmax) carried into G(r), in band with the signal and flat in r"),
    }

    # ------------------------------------------------------------------ setup
    def setup(self):
        c = self.config
        if c["rmax"] <= c["rmin"]:
            raise RecipeError("config.rmax", c["rmax"], f"a value above rmin ({c['rmin']} A)")
        phases = list(self.classes) if self.classes else [c["phase"]]
        known = list_phases()
        for ph in phases:
            if ph not in known:
                where = "label.classes" if self.classes else "config.phase"
                import difflib
                close = difflib.get_close_matches(ph, known, n=1)
                raise RecipeError(where, ph, "a catalog phase: " + ", ".join(known),
                                  hint=f"did you mean '{close[0]}'?" if close else "")
        for key in ("substitution_host", "substitution_dopant", "vacancy_element"):
            if c[key]:
                try:
                    check_element(c[key], c["radiation"], f"config.{key}")
                except ParameterError:
                    raise RecipeError(f"config.{key}", c[key], "an element symbol") from None
        self._phases = phases
        g = make_grid(c["rmin"], c["rmax"], c["rstep"], 0.0, 25.0, 0.005)
        self._axis = Axis(("r",), (g.r,), ("A",), ("r",))

    @property
    def axis(self) -> Axis:
        return self._axis

    # ------------------------------------------------------------------ helpers
    def _phase_name(self, p, i) -> str:
        if self.classes:
            return self._phases[int(p["label"][i])]
        return self._phases[0]

    def derive_params(self, params, rng):
        n = len(params["seed"])
        a = np.zeros(n)
        for i in range(n):
            m = phase_model(self._phase_name(params, i))
            a[i] = np.linalg.norm(m.cell[0]) * (1 + params["strain_iso"][i]) * (1 + params["strain_a"][i])
        params["a"] = a

    # ------------------------------------------------------------------ simulation
    def simulate(self, params, rng=None):
        return self.simulate_outputs(params, rng)["x"]

    def simulate_outputs(self, params, rng=None):
        p = self.prepare_params(params, rng)
        n = self.n_of(p)
        c = self.config
        out = np.empty((n, self._axis.shape[0]), dtype=np.float32)
        a_real = np.zeros(n)
        d_real = np.zeros(n)
        for i in range(n):
            g, a_real[i], d_real[i] = self._one(p, i)
            if p["noise"][i] > 0 or p["noise_band"][i] > 0:
                rg = self.sample_rng(p, i)
                gmax = np.abs(g).max()
                if p["noise"][i] > 0:
                    g = g + rg.standard_normal(len(g)) * p["noise"][i] * gmax
                if p["noise_band"][i] > 0:
                    g = g + band_noise(len(g), c["rstep"], float(p["qmax"][i]), rg) * p["noise_band"][i] * gmax
            out[i] = g
        return {"x": out, "params": {"a": a_real, "diameter": d_real}}

    def _one(self, p, i):
        c = self.config
        name = self._phase_name(p, i)
        model = phase_model(name)
        shape = self.category(p, "shape", i)
        aniso = (p["strain_a"][i], p["strain_b"][i], p["strain_c"][i])
        cell = strained_cell(model.cell, p["strain_iso"][i], aniso)
        a_real = float(np.linalg.norm(cell[0]))
        if max(abs(p["strain_iso"][i]), *map(abs, aniso)) > c["max_strain"] + 1e-12:
            raise ParameterError("strain_iso", float(p["strain_iso"][i]),
                                 f"strains within config.max_strain ({c['max_strain']})", self.name)
        if p["qmin"][i] >= p["qmax"][i]:
            raise ParameterError("qmin", float(p["qmin"][i]), f"a value below qmax ({p['qmax'][i]:g})", self.name)
        kw = dict(radiation=c["radiation"], rmin=c["rmin"], rmax=c["rmax"], rstep=c["rstep"], qmin=p["qmin"][i],
                  qmax=p["qmax"][i], qdamp=p["qdamp"][i], qbroad=p["qbroad"][i], delta1=p["delta1"][i],
                  delta2=p["delta2"][i], scale=p["scale"][i])
        host, dop = c["substitution_host"], c["substitution_dopant"]
        diam = float(p["diameter"][i])
        if shape in ("bulk", "sphere_envelope"):
            if shape == "sphere_envelope" and not diam > 0:
                raise ParameterError("diameter", diam, "a positive diameter (A) for shape sphere_envelope",
                                     self.name)
            occ = model.occupancy.copy()
            if p["vacancy"][i] > 0:
                sel = np.ones(len(occ), bool) if not c["vacancy_element"] else \
                    np.array([s == c["vacancy_element"] for s in model.symbols])
                occ[sel] *= 1 - p["vacancy"][i]
            sf = np.array([scattering_factor(s, c["radiation"]) for s in model.symbols])
            if p["substitution"][i] > 0 and host and dop:
                x = p["substitution"][i]
                hs = np.array([s == host for s in model.symbols])
                sf[hs] = (1 - x) * sf[hs] + x * scattering_factor(dop, c["radiation"])
            m = model if np.array_equal(occ, model.occupancy) else \
                Model(model.symbols, model.positions, model.cell, occ, None, model.name)
            u = p["uiso"][i] + p["rattle"][i] ** 2
            sig = float(p["size_sigma"][i]) if shape == "sphere_envelope" else 0.0
            r, g = pdf_from_model(m, uiso=u, cell=cell, sf_override=sf,
                                  spdiameter=diam if (shape == "sphere_envelope" and sig == 0) else 0.0, **kw)
            if sig > 0:   # size distribution: the envelope multiplies the terminated G(r), as in finish()
                g = g * polydisperse_envelope(r, diam, sig)
            return g, a_real, (diam if shape == "sphere_envelope" else 0.0)
        if not diam > 0:
            raise ParameterError("diameter", diam, f"a positive diameter (A) for shape {shape}", self.name)
        rng = self.sample_rng(p, i)
        rng_struct = np.random.default_rng(rng.integers(0, 2**63 - 1))
        rho = len(model.symbols) / abs(np.linalg.det(cell))
        if shape == "sphere":
            clus = sphere_cut(model, diam, cell=cell)
            pos, sym = clus.positions, clus.symbols
            d_real = diam
        else:
            els = set(model.symbols)
            if len(els) != 1 or len(model.symbols) != 4:
                raise ParameterError("shape", shape, f"'sphere' or 'sphere_envelope' for phase {name} "
                                     "(ASE polyhedra are built for fcc metals only)", self.name)
            pos, _ = fcc_cluster(shape, model.symbols[0], float(np.linalg.norm(model.cell[0])), diam)
            pos = pos * (1 + p["strain_iso"][i])
            sym = [model.symbols[0]] * len(pos)
            d_real = equivalent_diameter(len(pos), rho)
        if p["substitution"][i] > 0 and host and dop:
            sym = apply_substitution(sym, host, dop, p["substitution"][i], rng_struct)
        if p["vacancy"][i] > 0:
            cand = None if not c["vacancy_element"] else \
                np.flatnonzero(np.array(sym, dtype=object) == c["vacancy_element"])
            keep = apply_vacancies(len(sym), p["vacancy"][i], rng_struct, cand)
            pos = pos[keep]
            sym = [s for s, k in zip(sym, keep) if k]
        pos = rattle(pos, p["rattle"][i], rng_struct)
        clus = Model(sym, pos, None, None, None, f"{name} {shape}")
        rho_np = len(sym) / (math.pi / 6 * d_real ** 3)
        r, g = pdf_from_model(clus, uiso=p["uiso"][i], method=c["method"], cluster_baseline=(rho_np, d_real), **kw)
        return g, a_real, d_real
