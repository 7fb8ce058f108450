"""Instrument distortions for the sim-to-real benchmark of :mod:`train.studies.adapt`.

A "measured" set is made by simulating fresh spectra (another seed) and passing them through a distortion the
adaptation method is *not* told about.  Each distortion is a chain of operations on ``(n, L)`` spectra; amounts
are relative to the axis length (shifts, widths) or to the corpus signal scale (baselines), so the same names work
on any 1-D modality.  Operations:

``broaden=f``     Gaussian instrument response of FWHM ``f`` x axis length (unknown resolution).
``tail=f``        one-sided exponential response of decay length ``f`` x axis length (asymmetric line, detector lag).
``shift=f``       axis offset of ``f`` x axis length (calibration error); ``stretch=s`` axis scale about the centre.
``baseline=a``    a fixed smooth instrument background (cubic through random knots, fixed seed) of amplitude ``a`` x
                  the signal's 99th percentile, scaled per sample by ``1 + 0.3 N(0, 1)`` (drift).
``gain=a``        saturating detector response ``y = x / (1 + a |x| / s)`` (``s`` = signal 99th percentile).
``scale=c``       intensity calibration factor; ``noise=r`` extra white noise of ``r`` x signal scale.

Named distortions (``DISTORTIONS``); ``default`` is the one the method was developed against, the others check that
it generalises.  Any chain can also be given as a string ``"broaden=0.02,baseline=0.15,gain=0.3"``.
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import convolve1d

__all__ = ["DISTORTIONS", "parse", "distort", "describe"]

DISTORTIONS: dict[str, str] = {
    # developed against: unknown broadening + baseline + axis shift + gain nonlinearity
    "default": "broaden=0.03,baseline=0.15,shift=0.004,gain=0.4",
    "resolution": "broaden=0.05",
    "saturation": "gain=1.0,noise=0.02",
    "asymmetric": "tail=0.02,scale=0.8",
    "stretch": "stretch=1.03,broaden=0.015",
    "background": "baseline=0.4,scale=1.2",
    "mixed": "tail=0.01,broaden=0.02,baseline=0.25,gain=0.6,scale=0.9",
}

OPS = ("broaden", "tail", "shift", "stretch", "baseline", "gain", "scale", "noise")


def parse(spec: str) -> list[tuple[str, float]]:
    """``"name"`` from :data:`DISTORTIONS` or ``"op=value,op=value"`` -> list of (op, value)."""
    spec = DISTORTIONS.get(spec, spec)
    ops = []
    for part in filter(None, (s.strip() for s in spec.split(","))):
        if "=" not in part:
            raise ValueError(f"distortion '{spec}': item '{part}' is not 'op=value' nor a name of "
                             f"{', '.join(DISTORTIONS)}")
        k, v = (s.strip() for s in part.split("=", 1))
        if k not in OPS:
            raise ValueError(f"distortion '{spec}': operation '{k}' is not one of {', '.join(OPS)}")
        try:
            ops.append((k, float(v)))
        except ValueError:
            raise ValueError(f"distortion '{spec}': value of '{k}' is '{v}', expected a number") from None
    return ops


def describe(spec: str) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in parse(spec))


def _kernel_conv(x, kern):
    kern = kern / kern.sum()
    return convolve1d(x, kern[::-1], axis=1, mode="nearest")


def distort(x: np.ndarray, spec: str, rng: np.random.Generator | None = None, seed: int = 12345) -> np.ndarray:
    """Apply distortion ``spec`` to spectra ``x`` (n, L); per-sample randomness from ``rng``; the fixed instrument
    shapes (baseline curve) from ``seed``."""
    rng = rng or np.random.default_rng(0)
    x = np.asarray(x, dtype=np.float64).copy()
    n, L = x.shape
    scale = float(np.percentile(np.abs(x), 99)) or 1.0
    u = np.arange(L, dtype=float)
    for op, v in parse(spec):
        if op == "broaden":
            s = v * L / 2.3548
            half = int(np.ceil(4 * s)) + 1
            t = np.arange(-half, half + 1)
            x = _kernel_conv(x, np.exp(-0.5 * (t / max(s, 1e-9)) ** 2))
        elif op == "tail":
            tau = v * L
            t = np.arange(-int(np.ceil(6 * tau)) - 1, int(np.ceil(6 * tau)) + 2)
            x = _kernel_conv(x, np.where(t >= 0, np.exp(-t / max(tau, 1e-9)), 0.0))
        elif op in ("shift", "stretch"):
            src = u - v * L if op == "shift" else (u - (L - 1) / 2) / v + (L - 1) / 2
            x = np.stack([np.interp(src, u, row) for row in x])
        elif op == "baseline":
            g = np.random.default_rng(seed)
            knots = np.linspace(0, L - 1, 6)
            curve = CubicSpline(knots, g.uniform(-1, 1, 6))(u)
            curve = curve - curve.min()
            curve /= curve.max() or 1.0
            jitter = 1.0 + 0.3 * rng.standard_normal((n, 1))
            x = x + v * scale * jitter * curve[None]
        elif op == "gain":
            x = x / (1.0 + v * np.abs(x) / scale)
        elif op == "scale":
            x = x * v
        elif op == "noise":
            x = x + v * scale * rng.standard_normal(x.shape)
    return x.astype(np.float32)
