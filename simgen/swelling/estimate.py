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

__all__ = ["tem_estimate", "measure_masks", "split_touching", "void_labels", "predicted_ratio", "TRUNCATION_COEFF"]

TRUNCATION_COEFF = 3.0 * math.pi / 16.0


def split_touching(mask: np.ndarray, min_sep_px: int = 3) -> tuple[np.ndarray, int]:
    """Label the voids of one binary mask, splitting touching or overlapping projections.

    A watershed of the distance transform grown from its local maxima (plateaus merged; maxima closer than
    ``min_sep_px`` pixels or lower than 1.5 px are not seeds; every connected region gets at least one seed), as is
    done to count overlapping particles in micrographs.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        Void pixels.
    min_sep_px : int
        Smallest distance (pixels) between two seeds.

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        0 = matrix, 1..count = voids.
    count : int
    """
    from scipy import ndimage
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32), 0
    dist = ndimage.distance_transform_edt(mask)
    peaks = (dist == ndimage.maximum_filter(dist, size=2 * min_sep_px + 1)) & (dist >= 1.5)
    seeds, k = ndimage.label(peaks, structure=np.ones((3, 3)))
    comp, kc = ndimage.label(mask)
    has = np.zeros(kc + 1, bool)
    has[np.unique(comp[seeds > 0])] = True
    for r in np.flatnonzero(~has[1:]) + 1:  # thin regions may have no peak >= 1.5 px
        yx = np.argwhere(comp == r)[0]
        k += 1
        seeds[yx[0], yx[1]] = k
    return _flood(-dist, seeds.astype(np.int32), mask), k


def _flood(level: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Meyer's priority flood: grow the seeded ``labels`` over ``mask`` in order of increasing ``level``."""
    import heapq
    h, w = mask.shape
    lab = labels.copy()
    heap = [(level[y, x], 0, y, x) for y, x in zip(*np.nonzero(lab))]
    heapq.heapify(heap)
    order = 1
    while heap:
        _, _, y, x = heapq.heappop(heap)
        for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and lab[yy, xx] == 0:
                lab[yy, xx] = lab[y, x]
                heapq.heappush(heap, (level[yy, xx], order, yy, xx))
                order += 1
    return lab


def void_labels(mask: np.ndarray, instance: bool = True, split: bool = False) -> np.ndarray:
    """Instance labels (0 = matrix) of a 2-D mask: the ids themselves (``instance``), connected components
    (8-connectivity; overlapping voids merge as in a thresholded micrograph) or, with ``split``, connected regions
    with touching projections separated (:func:`split_touching`)."""
    m = np.asarray(mask)
    if instance:
        return m
    if split:
        return split_touching(m > 0)[0]
    from scipy import ndimage
    return ndimage.label(m > 0, structure=np.ones((3, 3)))[0]


def tem_estimate(mask: np.ndarray, pixel_size: float, thickness: float, instance: bool = True,
                 min_pixels: int = 1, split: bool = False) -> dict:
    """Swelling, number density, mean diameter and count from one 2-D void mask, as measured on a micrograph.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Instance ids (0 = matrix) when ``instance``; otherwise binary (non-zero = void).
    pixel_size : float
        nm per pixel.
    thickness : float
        Foil thickness (nm).
    instance : bool
        ``mask`` holds instance ids; otherwise see ``split``.
    min_pixels : int
        Regions smaller than this (pixels) are not counted.
    split : bool
        Binary masks only: separate touching projections (:func:`split_touching`) instead of merging connected
        pixels (8-connectivity) into one void.

    Returns
    -------
    dict
        ``swelling`` (%), ``number_density`` (m^-3), ``mean_diameter`` (nm, NaN without voids), ``count`` and
        ``diameters`` (nm, shape (count,)).
    """
    m = void_labels(mask, instance, split)
    areas = np.bincount(np.asarray(m).ravel())[1:]
    areas = areas[areas >= min_pixels] * pixel_size ** 2
    d = 2.0 * np.sqrt(areas / math.pi)
    vol = float(np.sum(math.pi * d ** 3 / 6.0))
    foil = m.shape[0] * m.shape[1] * pixel_size ** 2 * thickness
    return {"swelling": 100.0 * vol / max(foil - vol, 1e-9), "number_density": len(d) / (foil * 1e-27),
            "mean_diameter": float(d.mean()) if len(d) else float("nan"), "count": int(len(d)), "diameters": d}


def measure_masks(masks: np.ndarray, pixel_size: float, thickness: float, min_pixels: int = 4) -> dict:
    """:func:`tem_estimate` of a stack of binary masks (touching projections split, regions of at least
    ``min_pixels`` pixels).

    Parameters
    ----------
    masks : ndarray of bool, shape (n, H, W)
    pixel_size, thickness : float
        nm per pixel; foil thickness (nm).

    Returns
    -------
    dict
        Per image (shape (n,)): ``swelling`` (%), ``number_density`` (m^-3), ``mean_diameter`` (nm, NaN for an
        image without voids), ``count``; ``sizes``: the pooled diameters (nm) of all images.
    """
    masks = np.asarray(masks, bool)
    est = [tem_estimate(m, pixel_size, thickness, instance=False, min_pixels=min_pixels, split=True) for m in masks]
    out = {k: np.array([e[k] for e in est], dtype=float) for k in ("swelling", "number_density", "mean_diameter",
                                                                    "count")}
    out["sizes"] = np.concatenate([e["diameters"] for e in est]) if est else np.zeros(0)
    return out


def predicted_ratio(diameters: np.ndarray, thickness: float, sphericity: float = 1.0) -> float:
    """Predicted estimate/true swelling ratio without overlap: facet factor x truncation factor."""
    d = np.asarray(diameters, dtype=np.float64)
    if len(d) == 0:
        return 1.0
    trunc = 1.0 + TRUNCATION_COEFF * float(np.sum(d ** 4)) / (thickness * float(np.sum(d ** 3)))
    return sphericity ** -1.5 * trunc
