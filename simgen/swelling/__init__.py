"""Void swelling in irradiated metals: conditions -> void population -> TEM micrograph, mask and labels.

* :mod:`.model`     -- the documented model (material, T, dose, dose rate, He) -> population;
* :mod:`.kernels`   -- Numba projection of voids and clutter;
* :mod:`.simulator` -- :class:`SwellingSimulator` (registry name ``swelling``);
* :mod:`.estimate`  -- the standard TEM swelling estimate from a mask, and its predicted bias;
* :mod:`.plot`      -- a panel of images across temperature and dose.
"""
from .simulator import SwellingSimulator

__all__ = ["SwellingSimulator"]
