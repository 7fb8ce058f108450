"""Common surface of the inverse networks: ``model(x) -> {"reg": (B, T), "logits": (B, C)}``.

Every model is built as ``Model(in_shape, n_targets, n_classes, **options)``; ``in_shape`` is the shape of one
sample (the store's axis shape: ``(n_points,)`` for spectra, ``(ny, nx)`` for images).  Inputs of another shape
raise :class:`ShapeError` naming both shapes.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ShapeError", "InverseModel", "Heads"]


class ShapeError(ValueError):
    """Model and input shapes do not match."""


class Heads(nn.Module):
    """Regression head (``n_targets`` outputs) and classification head (``n_classes`` logits) on a feature
    vector; ``hidden`` > 0 adds one hidden layer to each head."""

    def __init__(self, in_features: int, n_targets: int, n_classes: int, hidden: int = 0, dropout: float = 0.0):
        super().__init__()

        def head(n_out):
            if hidden > 0:
                return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, n_out))
            return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_out))

        self.reg = head(n_targets) if n_targets > 0 else None
        self.cls = head(n_classes) if n_classes > 0 else None

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if self.reg is not None:
            out["reg"] = self.reg(h)
        if self.cls is not None:
            out["logits"] = self.cls(h)
        return out


class InverseModel(nn.Module):
    """Base class: checks the input shape, then calls :meth:`forward_checked`."""

    #: number of axis dimensions the model accepts (None: any)
    input_ndim: int | None = None
    name = "model"

    def __init__(self, in_shape, n_targets: int = 0, n_classes: int = 0):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.n_targets, self.n_classes = int(n_targets), int(n_classes)
        if self.n_targets <= 0 and self.n_classes <= 0:
            raise ValueError(f"model '{self.name}': needs regression targets or classes (got neither)")
        if self.input_ndim is not None and len(self.in_shape) != self.input_ndim:
            kind = {1: "1-D inputs (spectra)", 2: "2-D inputs (images)"}[self.input_ndim]
            hint = " (use cwt=True to turn spectra into images)" if self.input_ndim == 2 else ""
            raise ShapeError(f"model '{self.name}' takes {kind}; the data has samples of shape {self.in_shape}"
                             f"{hint}")

    def check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.in_shape:
            raise ShapeError(f"model '{self.name}' expects input samples of shape {self.in_shape}; got "
                             f"{tuple(x.shape[1:])} (batch shape {tuple(x.shape)})")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        return self.forward_checked(x)

    def forward_checked(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError
