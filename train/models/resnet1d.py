"""``resnet1d``: ResNet-18/34 style with Conv1d, for spectra (the 1-D CNN route for EPR classification)."""
from __future__ import annotations

from .resnet import ResNet

__all__ = ["ResNet1d"]


class ResNet1d(ResNet):
    name = "resnet1d"

    def __init__(self, in_shape, n_targets: int = 0, n_classes: int = 0, depth: int = 18, width: int = 16,
                 **kw):
        super().__init__(in_shape, n_targets, n_classes, dim=1, depth=depth, width=width, **kw)
