"""``mlp``: the reference regressor for spectra: one small MLP per target (hidden 64-32-16, one output each).

This is the per-ion protocol used for Raman spectra of multicomponent solutions in the project's source material
(one separate network per ion concentration, Adam, learning rate 1e-3).  ``per_target=True`` (the default) builds
one subnetwork per regression target plus one for the class logits; ``per_target=False`` shares one trunk with both
heads (:meth:`MLP.features` gives the trunk's output, e.g. for feature alignment).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import Heads, InverseModel

__all__ = ["MLP"]


def _stack(n_in: int, hidden, n_out: int, dropout: float, act) -> nn.Sequential:
    layers, prev = [], n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), act()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


class MLP(InverseModel):
    name = "mlp"
    input_ndim = None

    def __init__(self, in_shape, n_targets: int = 0, n_classes: int = 0, hidden=(64, 32, 16),
                 per_target: bool = True, dropout: float = 0.0, activation: str = "relu"):
        super().__init__(in_shape, n_targets, n_classes)
        n_in = math.prod(self.in_shape)
        act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}[activation]
        hidden = tuple(int(h) for h in hidden)
        self.per_target = per_target
        self.act = act()
        if per_target:
            self.nets = nn.ModuleList([_stack(n_in, hidden, 1, dropout, act) for _ in range(self.n_targets)])
            self.cls_net = _stack(n_in, hidden, self.n_classes, dropout, act) if self.n_classes else None
        else:
            self.trunk = _stack(n_in, hidden[:-1], hidden[-1], dropout, act)
            self.heads = Heads(hidden[-1], self.n_targets, self.n_classes)

    def forward_checked(self, x):
        h = x.reshape(len(x), -1)
        if self.per_target:
            out = {}
            if self.n_targets:
                out["reg"] = torch.cat([net(h) for net in self.nets], dim=1)
            if self.cls_net is not None:
                out["logits"] = self.cls_net(h)
            return out
        return self.heads(self.features(x))

    def features(self, x):
        """Shared-trunk features ``(B, hidden[-1])`` (``per_target=False`` only)."""
        if self.per_target:
            raise ValueError("model 'mlp': features() needs per_target=False (one shared trunk)")
        return self.act(self.trunk(x.reshape(len(x), -1)))
