"""Morlet continuous wavelet transform in torch: spectra -> (scale x position) images.

Published 1-D CNNs on EPR spectra only worked after a Morlet CWT (scales 1-128) into images.  We use the real Morlet
wavelet of PyWavelets' ``morl`` convention, psi(t) = exp(-t^2/2) cos(5 t), sampled at t = n / s for scale ``s``
(in samples), truncated at |t| <= 8 and normalised by 1/sqrt(s):

    W[s, b] = sum_n x[n] psi((n - b) / s) / sqrt(s)

computed as an exact linear correlation through a zero-padded real FFT (length >= 2 L - 1, so nothing wraps).
Small scales (s < ~1.6) are above the Nyquist frequency and alias, exactly as the direct sum does.
The result can be pooled to a fixed image size (``out_size``) and taken as magnitude.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .base import InverseModel, ShapeError

__all__ = ["MorletCWT", "morlet", "CWTModel", "default_scales"]

OMEGA0 = 5.0
SUPPORT = 8.0


def morlet(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t * t) * np.cos(OMEGA0 * t)


def default_scales(n_scales: int = 128, low: float = 1.0, high: float = 128.0, spacing: str = "linear"):
    if spacing == "linear":
        return np.linspace(low, high, int(n_scales))
    if spacing == "log":
        return np.geomspace(low, high, int(n_scales))
    raise ValueError(f"cwt spacing '{spacing}': expected 'linear' or 'log'")


class MorletCWT(nn.Module):
    """(B, L) -> (B, S, L) real Morlet CWT coefficients (or ``out_size`` after adaptive average pooling)."""

    def __init__(self, length: int, scales=None, out_size: tuple[int, int] | None = None,
                 magnitude: bool = False):
        super().__init__()
        self.length = int(length)
        scales = default_scales() if scales is None else np.asarray(scales, dtype=np.float64)
        if np.any(scales <= 0):
            raise ValueError(f"cwt scales: got {scales.min()}; expected positive scales")
        self.scales = tuple(float(s) for s in scales)
        L = self.length
        n_fft = 1 << math.ceil(math.log2(2 * L - 1)) if L > 1 else 2
        self.n_fft = n_fft
        ker = np.zeros((len(scales), n_fft), dtype=np.float64)
        for i, s in enumerate(scales):
            h = int(min(math.floor(SUPPORT * s), L - 1))
            t = np.arange(-h, h + 1)
            k = morlet(t / s) / math.sqrt(s)
            ker[i, t % n_fft] = k  # correlation: W[b] = sum_n x[n] k[n - b]
        # correlation theorem: W = irfft(conj(K) * X)
        self.register_buffer("kernel_ft", torch.from_numpy(np.conj(np.fft.rfft(ker, axis=1))).to(torch.complex64),
                             persistent=False)
        self.out_size = tuple(out_size) if out_size else None
        self.magnitude = magnitude

    @property
    def out_shape(self) -> tuple[int, int]:
        return self.out_size or (len(self.scales), self.length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.length:
            raise ShapeError(f"cwt expects spectra of {self.length} points; got {x.shape[-1]}")
        X = torch.fft.rfft(x.float(), n=self.n_fft, dim=-1)
        W = torch.fft.irfft(X.unsqueeze(-2) * self.kernel_ft, n=self.n_fft, dim=-1)[..., :self.length]
        if self.magnitude:
            W = W.abs()
        if self.out_size is not None and tuple(W.shape[-2:]) != self.out_size:
            W = F.adaptive_avg_pool2d(W, self.out_size)
        return W


class CWTModel(InverseModel):
    """A 1-D input model: Morlet CWT -> per-image standardisation -> a 2-D model (``inner``)."""

    input_ndim = 1

    def __init__(self, in_shape, n_targets: int, n_classes: int, inner_factory, n_scales: int = 128,
                 scale_range=(1.0, 128.0), spacing: str = "linear", out_size=(64, 128), magnitude: bool = True,
                 standardise: bool = True):
        self.name = f"cwt+{getattr(inner_factory, 'name', 'model')}"
        super().__init__(in_shape, n_targets, n_classes)
        out_size = tuple(out_size) if out_size else None
        self.cwt = MorletCWT(self.in_shape[0], default_scales(n_scales, *scale_range, spacing), out_size,
                             magnitude)
        self.standardise = standardise
        self.inner = inner_factory(self.cwt.out_shape, n_targets, n_classes)

    def forward_checked(self, x):
        img = self.cwt(x)
        if self.standardise:
            m = img.mean(dim=(-2, -1), keepdim=True)
            s = img.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
            img = (img - m) / s
        return self.inner(img)
