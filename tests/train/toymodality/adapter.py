"""Adapter of the toy ``ringdown`` modality: a '.ring' format (a 'rate_kHz = R' header line, then one value per
line), preparation onto the model's time axis, a domain check on the sampling rate, and a derived period."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from train.measurements import Measurement, MeasurementError
from train.modalities import Adapter, OutOfDomain
from train.prepare import Prepared, covers, rebin


def read_ring(path) -> Measurement:
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("rate_kHz"):
        raise MeasurementError(path, "first line must be 'rate_kHz = R'")
    rate = float(lines[0].split("=")[1])
    y = np.array([float(v) for v in lines[1:] if v.strip()])
    t = np.arange(len(y)) / rate
    return Measurement(t, y, "time", "ms", "arb. units", "ringdown", {"rate_kHz": rate})


class RingdownAdapter(Adapter):
    name = "ringdown"
    axis_dims = ("time",)
    formats = {".ring": read_ring}
    data_dirs = ("ringdown",)
    acceptance = {"ringdown": ["sample.ring"]}

    def check_domain(self, m, spec):
        step = float(spec.axis.coords[0][1] - spec.axis.coords[0][0])
        if 1.0 / m.meta["rate_kHz"] > 2 * step:
            raise OutOfDomain(m.source, f"sampled every {1 / m.meta['rate_kHz']:g} ms, coarser than twice the "
                              f"model's step {step:g} ms")

    def prepare(self, m, spec):
        t = spec.axis.coords[0]
        covers(m, m.axis, t, "time (ms)")
        y = rebin(m.axis, m.values, t)
        return Prepared(y[None].astype(np.float32), spec.axis, m, {"steps": ["rebinned"]})

    def derived(self, names, samples, info):
        return {"period_ms": 1.0 / samples[..., list(names).index("freq")]} if "freq" in names else {}
