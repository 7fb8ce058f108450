"""``cnn2d``: a 2-D residual CNN for images (micrographs, or spectra after the Morlet CWT).

Default: a light ResNet-10 layout (one basic block per stage, width 16); ``depth=18``/``34`` give the ResNet-18/34
layouts used on wavelet images of EPR spectra in published classification work.
"""
from __future__ import annotations

from .resnet import ResNet

__all__ = ["CNN2d"]


class CNN2d(ResNet):
    name = "cnn2d"

    def __init__(self, in_shape, n_targets: int = 0, n_classes: int = 0, depth: int = 10, width: int = 16,
                 **kw):
        super().__init__(in_shape, n_targets, n_classes, dim=2, depth=depth, width=width, **kw)
