"""Swelling adapter: TEM micrographs (.tif/.png/.jpg through tifffile/pillow, .dm3/.dm4/.hspy through
rosettasciio) and their preparation for an image model.

Preparation (simulator ``swelling``, image_y/image_x in nm): resampled to the model's pixel size (Gaussian
anti-aliasing when shrinking), cut into non-overlapping tiles of the model's shape, each divided by its mean
(unit-mean intensity like the simulator).  Options: ``pixel_size_nm`` (when the file has no calibration),
``max_tiles``.
"""
from __future__ import annotations

import numpy as np

from ..measurements import Measurement
from ..measurements.rsc import read_dm, read_hspy, read_image
from ..prepare import Prepared, TargetSpec, refuse
from . import Adapter

__all__ = ["prepare_micrograph", "SwellingAdapter"]


def prepare_micrograph(m: Measurement, spec: TargetSpec, pixel_size_nm=None, max_tiles: int | None = None) -> Prepared:
    from scipy import ndimage
    axis = spec.axis
    if m.values.ndim != 2:
        refuse(m, f"values of shape {m.values.shape}: the model expects 2-D images")
    ny, nx = axis.shape
    px_model = float(axis.coords[1][1] - axis.coords[1][0])
    px = pixel_size_nm if pixel_size_nm is not None else m.meta.get("pixel_size_nm")
    if px is None:
        refuse(m, "pixel size unknown (no calibration in the file): pass pixel_size_nm")
    img = m.values.astype(float)
    f = float(px) / px_model
    info: dict = {"pixel_size_nm": float(px), "model_pixel_nm": px_model, "zoom": f, "steps": []}
    if abs(f - 1.0) > 1e-3:
        if f < 1.0:  # shrinking: anti-alias first
            img = ndimage.gaussian_filter(img, sigma=max(0.0, (1.0 / f - 1.0) / 2.0))
        img = ndimage.zoom(img, f, order=1)
        info["steps"].append(f"resampled x{f:.4f} to {px_model:g} nm/pixel")
    H, W = img.shape
    if H < ny or W < nx:
        refuse(m, f"image {m.values.shape[0]}x{m.values.shape[1]} px at {px:g} nm is {H}x{W} px at the model's "
                f"{px_model:g} nm: smaller than one {ny}x{nx} tile")
    tiles = []
    for i in range(0, H - ny + 1, ny):
        for j in range(0, W - nx + 1, nx):
            t = img[i:i + ny, j:j + nx]
            mu = t.mean()
            if not mu > 0:
                refuse(m, f"tile at ({i}, {j}) has non-positive mean intensity {mu:g}")
            tiles.append(t / mu)
            if max_tiles and len(tiles) >= max_tiles:
                break
        if max_tiles and len(tiles) >= max_tiles:
            break
    info["n_tiles"] = len(tiles)
    info["steps"].append(f"{len(tiles)} tile(s) of {ny}x{nx}, each divided by its mean")
    return Prepared(np.stack(tiles).astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ adapter
class SwellingAdapter(Adapter):
    """Micrographs for the ``swelling`` simulator's image models."""

    name = "swelling"
    axis_dims = ("image_y",)
    formats = {".tif": read_image, ".tiff": read_image, ".png": read_image, ".jpg": read_image,
               ".jpeg": read_image, ".dm3": read_dm, ".dm4": read_dm, ".hspy": read_hspy}
    data_dirs = ("images", "micrographs")

    def prepare(self, m, spec, pixel_size_nm=None, max_tiles=None):
        return prepare_micrograph(m, spec, pixel_size_nm, max_tiles)
