"""Numba kernels of the example ``peaks`` simulator (arrays in, output filled in place)."""
from __future__ import annotations

import math

import numba as nb


@nb.njit(cache=True, nogil=True)
def pseudo_voigt_batch(x, center, fwhm, amplitude, eta, offset, slope, noise, out):
    """out[i, j] = amplitude·[(1-η)·G + η·L](x_j; center, fwhm) + offset + slope·(x_j - x_0) + noise[i, j].

    G and L are unit-height Gaussian and Lorentzian profiles with full width at half maximum ``fwhm``.
    """
    n, m = out.shape
    four_ln2 = 4.0 * math.log(2.0)
    x0 = x[0]
    for i in range(n):
        c = center[i]
        inv_w2 = 1.0 / (fwhm[i] * fwhm[i])
        a = amplitude[i]
        e = eta[i]
        for j in range(m):
            d2 = (x[j] - c) * (x[j] - c) * inv_w2
            g = math.exp(-four_ln2 * d2)
            lor = 1.0 / (1.0 + 4.0 * d2)
            out[i, j] = a * ((1.0 - e) * g + e * lor) + offset[i] + slope[i] * (x[j] - x0) + noise[i, j]
