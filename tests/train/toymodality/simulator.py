"""Toy simulator ``ringdown``: a damped cosine s(t) = exp(-t/tau) cos(2 pi f t) on a time axis in ms."""
from __future__ import annotations

import numpy as np

from simgen.simulator import Axis, Field, Simulator


class RingdownSimulator(Simulator):
    name = "ringdown"
    version = "1"
    description = "damped cosine on a time axis (test-only modality)"
    x_name, x_units = "signal", "arb. units"

    CONFIG = {
        "n_points": Field(kind="int", low=8, high=100_000, default=128, doc="samples"),
        "t_max": Field(units="ms", low=0.0, low_open=True, default=10.0, doc="last time"),
    }
    PARAMS = {
        "freq": Field(units="kHz", low=0.0, low_open=True, doc="oscillation frequency"),
        "tau": Field(units="ms", low=0.0, low_open=True, doc="decay time"),
        "noise": Field(units="arb. units", low=0.0, default=0.0, doc="white noise"),
    }

    def setup(self):
        c = self.config
        self._axis = Axis.linear("time", "ms", 0.0, c["t_max"], c["n_points"], "time")

    @property
    def axis(self) -> Axis:
        return self._axis

    def simulate(self, params, rng=None) -> np.ndarray:
        p = self.prepare_params(params, rng)
        t = self._axis.coords[0]
        out = np.empty((self.n_of(p), len(t)), np.float32)
        for i in range(len(out)):
            s = np.exp(-t / p["tau"][i]) * np.cos(2 * np.pi * p["freq"][i] * t)
            if p["noise"][i] > 0:
                s = s + self.sample_rng(p, i).standard_normal(len(t)) * p["noise"][i]
            out[i] = s
        return out
