"""Adapter of the ``peaks`` example simulator: plain numeric columns (axis, values) rebinned onto the axis.

It is also the template of a minimal adapter: a name, the axis it prepares for and the default preparation.
"""
from __future__ import annotations

from ..measurements.columns import read_columns
from . import Adapter

__all__ = ["PeaksAdapter"]


class PeaksAdapter(Adapter):
    """Peaks on a generic x axis: any 1-D measurement with matching units is rebinned onto the model's axis."""

    name = "peaks"
    axis_dims = ("x",)
    formats = {".txt": read_columns, ".csv": read_columns}
