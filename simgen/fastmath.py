"""Polynomial exp and sin for Numba kernels, shared by the modalities (EXAFS paths, micrograph contrast).

All are plain arithmetic, so LLVM vectorises loops that call them (AVX2, no SVML needed); accuracy is tested
against numpy in tests/simgen/test_exafs.py and tests/simgen/test_kernels_exafs.py.  ``exp_scaled`` and
``sin_reduced`` set exponent and sign on the float's bits and take fewer operations than ``fast_exp`` and
``fast_sin`` (the EXAFS path sums use them).
"""
from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["fast_exp", "fast_sin", "exp_scaled", "sin_reduced"]

_TWO_PI_HI = 6.283185307179586
_TWO_PI_LO = 2.4492935982947064e-16
_INV_TWO_PI = 0.15915494309189535
_PI = 3.141592653589793
_HALF_PI = 1.5707963267948966


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def fast_sin(x):
    """sin(x): reduced to [-pi, pi] (2 pi in two parts), folded to [-pi/2, pi/2] by sin(pi - y) = sin(y), then
    the Taylor series to y^21 (truncation < 3e-16); absolute error ~ 1e-15 + |x| * 2e-16."""
    n = np.floor(x * _INV_TWO_PI + 0.5)          # a float: no int64 round trip (see ``_round_bits``)
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


@intrinsic
def _bits_to_float(typingctx, x):
    """The float64 whose IEEE-754 bits are the int64 ``x`` (an LLVM bitcast; vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@intrinsic
def _float_to_bits(typingctx, x):
    """The int64 holding the IEEE-754 bits of the float64 ``x`` (an LLVM bitcast; vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


# n + 1.5 * 2^52 for an integer-valued float n with |n| < 2^51 is exact, and the low bits of its IEEE-754 pattern
# hold n (two's complement). AVX2 has no packed float64 -> int64 conversion, so an ``int(n)`` (or Numba's
# ``math.floor``, which returns an int64) splits the vector loop into four scalar conversions there and back;
# this float add and one bitcast stay in the vector registers.
_SHIFT = 6755399441055744.0


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _round_bits(n):
    """int64 whose low bits are the integer-valued float ``n`` (|n| < 2^51): enough for a shift into the exponent
    field (low 11 bits) or the sign bit (the lowest bit, n's parity)."""
    return _float_to_bits(n + _SHIFT)


# Cody-Waite splits: the high parts have 21+ trailing zero bits, so n * HI is exact for the n that occur
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.9082149292705877e-10
_PI_HI = 3.1415926534682512
_PI_LO = 1.2154201013012384e-10


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def exp_scaled(x):
    """exp(x) for x in [-700, 700] (clamped there) as 2^n exp(r), n = round(x / ln 2), |r| <= ln 2 / 2: a
    degree-11 least-squares (near-minimax) polynomial for exp(r) (relative error 2.2e-16 on that interval), 2^n
    from its exponent bits; relative error < 1e-15 (tested against numpy).  Fewer operations than ``fast_exp``
    (no repeated squaring), the cost that counts in the tabulated chi loop."""
    x = min(max(x, -700.0), 700.0)
    n = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p01 = 1.0 + r
    p23 = 0.5000000000000019 + 0.16666666666666702 * r
    p45 = 0.04166666666648808 + 0.008333333333309526 * r
    p67 = 0.0013888888952318045 + 0.00019841269909219843 * r
    p89 = 2.480148547921643e-05 + 2.755722495611072e-06 * r
    pab = 2.7632640675430235e-07 + 2.5114870219497476e-08 * r
    p = (p01 + p23 * r2) + (p45 + p67 * r2) * r4 + (p89 + pab * r2) * r8
    # exponent field: the low 11 bits of (n + 1023); the bits above, shifted past bit 63, are dropped
    return p * _bits_to_float((_round_bits(n) + 1023) << 52)


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def sin_reduced(x):
    """sin(x): x = n pi + y with |y| <= pi/2 (pi in two parts), sin(x) = (-1)^n sin(y), the sign set on the bits;
    sin(y) by a degree-17 least-squares (near-minimax) odd polynomial (absolute error 3.3e-16 on [-pi/2, pi/2]);
    absolute error ~5e-16 + |x| 1e-16 for |x| < 1e6 (the split of pi is exact there; tested against numpy).  No
    branch or fold, fewer operations than ``fast_sin``."""
    n = np.floor(x * 0.3183098861837907 + 0.5)
    y = (x - n * _PI_HI) - n * _PI_LO
    z = y * y
    z2 = z * z
    z4 = z2 * z2
    z8 = z4 * z4
    p01 = 1.0 + -0.16666666666666666 * z
    p23 = 0.008333333333333186 + -0.0001984126984120872 * z
    p45 = 2.755731921123654e-06 + -2.5052106891168703e-08 * z
    p67 = 1.6058940907182887e-10 + -7.643027273612204e-13 * z
    s = y * ((p01 + p23 * z2) + (p45 + p67 * z2) * z4 + 2.7215821926997076e-15 * z8)
    return _bits_to_float(_float_to_bits(s) ^ (_round_bits(n) << 63))
