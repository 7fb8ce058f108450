"""``peaks``: one pseudo-Voigt peak on a sloped baseline with Gaussian noise.

The smallest complete modality, kept as the template for new ones:

1. declare ``CONFIG`` (axis settings) and ``PARAMS`` (per-sample parameters, units, valid ranges);
2. build the axis in ``setup``;
3. in ``simulate``: ``prepare_params`` (broadcast/validate), draw per-sample randomness from
   ``sample_rng(p, i)``, call a Numba kernel that fills a preallocated float32 array;
4. register the class in ``simgen/registry.py`` (or through the ``simgen.simulators`` entry point);
5. test it by subclassing ``simgen.testing.SimulatorContract``, and check its kernel against a slow NumPy version.
"""
from __future__ import annotations

import numpy as np

from ..simulator import Axis, Field, Simulator
from . import kernels


class PeaksSimulator(Simulator):
    name = "peaks"
    version = "1"
    description = "one pseudo-Voigt peak on a sloped baseline with Gaussian noise (example modality)"
    x_name, x_units = "intensity", "arb. units"

    CONFIG = {
        "n_points": Field(kind="int", low=2, high=1_000_000, default=1024, doc="points on the axis"),
        "x_min": Field(units="arb.", default=0.0, doc="first axis value"),
        "x_max": Field(units="arb.", default=100.0, doc="last axis value"),
    }
    PARAMS = {
        "center": Field(units="arb.", doc="peak position"),
        "width": Field(units="arb.", low=0.0, low_open=True, doc="full width at half maximum"),
        "amplitude": Field(units="arb. units", low=0.0, default=1.0, doc="peak height"),
        "eta": Field(units="", low=0.0, high=1.0, default=0.0, doc="Lorentzian fraction of the pseudo-Voigt"),
        "offset": Field(units="arb. units", default=0.0, doc="baseline offset"),
        "slope": Field(units="arb. units/arb.", default=0.0, doc="baseline slope"),
        "noise": Field(units="arb. units", low=0.0, default=0.0, doc="standard deviation of white noise"),
    }

    def setup(self):
        c = self.config
        if c["x_max"] <= c["x_min"]:
            from ..errors import RecipeError
            raise RecipeError("config.x_max", c["x_max"], f"a value above x_min ({c['x_min']})")
        self._axis = Axis.linear("position", "arb.", c["x_min"], c["x_max"], c["n_points"], "position")

    @property
    def axis(self) -> Axis:
        return self._axis

    def simulate(self, params, rng=None) -> np.ndarray:
        p = self.prepare_params(params, rng)
        n = self.n_of(p)
        x = self._axis.coords[0]
        noise = np.zeros((n, len(x)), dtype=np.float64)
        for i in range(n):
            if p["noise"][i] > 0:
                noise[i] = self.sample_rng(p, i).standard_normal(len(x)) * p["noise"][i]
        out = np.empty((n, len(x)), dtype=np.float32)
        kernels.pseudo_voigt_batch(x, p["center"], p["width"], p["amplitude"], p["eta"], p["offset"],
                                   p["slope"], noise, out)
        return out
