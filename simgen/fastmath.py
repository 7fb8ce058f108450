"""Polynomial exp and sin for Numba kernels, shared by the modalities (EXAFS paths, micrograph contrast).

Both are plain arithmetic, so LLVM vectorises loops that call them (AVX2, no SVML needed); accuracy is tested
against numpy in tests/simgen/test_exafs.py.
"""
from __future__ import annotations

import math

import numba as nb

__all__ = ["fast_exp", "fast_sin"]

_TWO_PI_HI = 6.283185307179586
_TWO_PI_LO = 2.4492935982947064e-16
_INV_TWO_PI = 0.15915494309189535
_PI = 3.141592653589793
_HALF_PI = 1.5707963267948966


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def fast_sin(x):
    """sin(x): reduced to [-pi, pi] (2 pi in two parts), folded to [-pi/2, pi/2] by sin(pi - y) = sin(y), then
    the Taylor series to y^21 (truncation < 3e-16); absolute error ~ 1e-15 + |x| * 2e-16."""
    n = math.floor(x * _INV_TWO_PI + 0.5)
    y = (x - n * _TWO_PI_HI) - n * _TWO_PI_LO
    y = _PI - y if y > _HALF_PI else y
    y = -_PI - y if y < -_HALF_PI else y
    z = y * y
    z2 = z * z
    z4 = z2 * z2
    z8 = z4 * z4
    p01 = 1.0 + -0.16666666666666666 * z
    p23 = 0.008333333333333333 + -0.0001984126984126984 * z
    p45 = 2.7557319223985893e-06 + -2.505210838544172e-08 * z
    p67 = 1.6059043836821613e-10 + -7.647163731819816e-13 * z
    p89 = 2.8114572543455206e-15 + -8.22063524662433e-18 * z
    p03 = p01 + p23 * z2
    p47 = p45 + p67 * z2
    p8a = p89 + 1.9572941063391263e-20 * z2
    return y * ((p03 + p47 * z4) + p8a * z8)


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def fast_exp(x):
    """exp(x) for x in [-80, 80] (clamped there: exp(-80) ~ 2e-35 is nothing next to any EXAFS term): Taylor
    series of exp(x/256) to degree 12 (truncation < 1e-16), squared eight times; relative error < 1e-13."""
    x = min(max(x, -80.0), 80.0)
    y = x * 0.00390625
    y2 = y * y
    y4 = y2 * y2
    y8 = y4 * y4
    p01 = 1.0 + 1.0 * y
    p23 = 0.5 + 0.16666666666666666 * y
    p45 = 0.041666666666666664 + 0.008333333333333333 * y
    p67 = 0.001388888888888889 + 0.0001984126984126984 * y
    p89 = 2.48015873015873e-05 + 2.7557319223985893e-06 * y
    pab = 2.755731922398589e-07 + 2.505210838544172e-08 * y
    p03 = p01 + p23 * y2
    p47 = p45 + p67 * y2
    p8b = p89 + pab * y2
    s = (p03 + p47 * y4) + (p8b + 2.08767569878681e-09 * y4) * y8
    s = s * s
    s = s * s
    s = s * s
    s = s * s
    s = s * s
    s = s * s
    s = s * s
    return s * s
