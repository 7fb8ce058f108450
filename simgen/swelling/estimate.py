"""The standard TEM swelling estimate from a void mask, and the bias it carries.

Estimate (e.g. Jacobs et al., Sci. Rep. 13, 5178 (2023)): each visible void i gets the diameter of the disc of its
projected area, ``d_i = 2 sqrt(A_i / pi)``; ``S = 100 sum(pi d_i^3 / 6) / (A t - sum(pi d_i^3 / 6))`` with image
area ``A`` and foil thickness ``t``; ``N_v = n / (A t)``.

Known biases against the true (bulk) swelling, predicted by :func:`predicted_ratio`:

* truncation by the foil surfaces: voids centred up to a radius outside the foil still show, as smaller discs.
  For spheres the estimate is raised by ``1 + (3 pi / 16) E[d^4] / (t E[d^3])`` (integrate the visible cap disc
  ``pi (r^2 - h^2)`` over the outside depth h of the centre: each surface adds ``(3 pi / 16) r`` of equivalent
  thickness per void);
* facets: a convex void projects on average ``S_surf / 4`` (Cauchy), more than its equal-volume sphere, so faceted
  voids read too large by ``sphericity^-3/2`` on orientation average (octahedron ~1.29, cube ~1.39, rhombic
  dodecahedron ~1.16);
* overlap: voids hidden behind others lose projected area (instance masks) or merge (binary masks); this lowers the
  estimate roughly in proportion to the projected area fraction ``phi`` covered (tested bound: the ratio stays
  within ``predicted_ratio * [1 - 1.5 phi - 0.1, 1 + 0.1]``, see tests/simgen/test_swelling.py).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["tem_estimate", "predicted_ratio", "TRUNCATION_COEFF"]

TRUNCATION_COEFF = 3.0 * math.pi / 16.0


def tem_estimate(mask: np.ndarray, pixel_size: float, thickness: float, instance: bool = True,
                 min_pixels: int = 1) -> dict:
    """Swelling (%), number density (m^-3), mean diameter (nm) and count from a 2-D mask.

    ``instance``: ``mask`` holds instance ids (0 = matrix); otherwise it is binary and connected components
    (8-connectivity) become the voids, so overlapping voids merge as they do in a thresholded micrograph."""
    m = np.asarray(mask)
    if not instance:
        from scipy import ndimage
        m, _ = ndimage.label(m > 0, structure=np.ones((3, 3)))
    areas = np.bincount(m.ravel())[1:]
    areas = areas[areas >= min_pixels] * pixel_size ** 2
    d = 2.0 * np.sqrt(areas / math.pi)
    vol = float(np.sum(math.pi * d ** 3 / 6.0))
    foil = m.shape[0] * m.shape[1] * pixel_size ** 2 * thickness
    return {"swelling": 100.0 * vol / (foil - vol), "number_density": len(d) / (foil * 1e-27),
            "mean_diameter": float(d.mean()) if len(d) else float("nan"), "count": int(len(d))}


def predicted_ratio(diameters: np.ndarray, thickness: float, sphericity: float = 1.0) -> float:
    """Predicted estimate/true swelling ratio without overlap: facet factor x truncation factor."""
    d = np.asarray(diameters, dtype=np.float64)
    if len(d) == 0:
        return 1.0
    trunc = 1.0 + TRUNCATION_COEFF * float(np.sum(d ** 4)) / (thickness * float(np.sum(d ** 3)))
    return sphericity ** -1.5 * trunc
