"""ResNet-18/34-style networks with Conv1d (spectra) or Conv2d (images), basic blocks, global average pooling
and regression/classification heads (He et al. 2016, "Deep residual learning", table 1: 18 = [2,2,2,2],
34 = [3,4,6,3] basic blocks)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Heads, InverseModel

__all__ = ["ResNet", "BasicBlock", "DEPTHS"]

DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
N_GATES = 4  # gate maps of ``pool="gated"``


class BasicBlock(nn.Module):
    def __init__(self, dim: int, c_in: int, c_out: int, stride: int, kernel: int):
        super().__init__()
        Conv = nn.Conv1d if dim == 1 else nn.Conv2d
        BN = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        pad = kernel // 2
        self.c1 = Conv(c_in, c_out, kernel, stride=stride, padding=pad, bias=False)
        self.b1 = BN(c_out)
        self.c2 = Conv(c_out, c_out, kernel, stride=1, padding=pad, bias=False)
        self.b2 = BN(c_out)
        self.short = None
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(Conv(c_in, c_out, 1, stride=stride, bias=False), BN(c_out))

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        h = self.b2(self.c2(h))
        return torch.relu(h + (x if self.short is None else self.short(x)))


class ResNet(InverseModel):
    """``dim``-D ResNet: stem conv (kernel ``stem_kernel``, stride 2) + max-pool, four stages of basic blocks
    with ``width``, 2x, 4x, 8x channels (stride 2 from stage 2 on), global average pooling, heads."""

    name = "resnet"

    def __init__(self, in_shape, n_targets: int = 0, n_classes: int = 0, dim: int = 1, depth: int = 18,
                 width: int = 16, kernel: int | None = None, stem_kernel: int | None = None,
                 head_hidden: int = 0, dropout: float = 0.0, in_channels: int = 1, pool: str = "avg"):
        self.input_ndim = dim + (1 if in_channels > 1 else 0)
        super().__init__(in_shape, n_targets, n_classes)
        if depth not in DEPTHS:
            raise ValueError(f"resnet depth {depth}: expected one of {sorted(DEPTHS)}")
        if pool not in ("avg", "gated"):
            raise ValueError(f"resnet pool '{pool}': expected 'avg' or 'gated'")
        self.dim, self.in_channels = dim, in_channels
        kernel = kernel or (7 if dim == 1 else 3)
        stem_kernel = stem_kernel or (15 if dim == 1 else 7)
        Conv = nn.Conv1d if dim == 1 else nn.Conv2d
        BN = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        Pool = nn.MaxPool1d if dim == 1 else nn.MaxPool2d
        self.stem = nn.Sequential(Conv(in_channels, width, stem_kernel, stride=2, padding=stem_kernel // 2,
                                       bias=False), BN(width), nn.ReLU(), Pool(3, stride=2, padding=1))
        blocks, c = [], width
        for s, nblk in enumerate(DEPTHS[depth]):
            c_out = width * 2 ** s
            for b in range(nblk):
                blocks.append(BasicBlock(dim, c, c_out, 2 if (b == 0 and s > 0) else 1, kernel))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
        # gated: also the gate-weighted mean of the features, sum(g f) / sum(g), with g = softplus(1x1 conv):
        # a mean *per object* (voids, peaks) rather than per area, which a head on area means alone cannot form
        self.gate = Conv(c, N_GATES, 1) if pool == "gated" else None
        n_feat = c * (1 + N_GATES) if pool == "gated" else c
        self.heads = Heads(n_feat, self.n_targets, self.n_classes, hidden=head_hidden, dropout=dropout)

    def forward_checked(self, x):
        if self.in_channels == 1:
            x = x.unsqueeze(1)
        f = self.blocks(self.stem(x))
        h = self.pool(f).flatten(1)
        if self.gate is not None:
            g = nn.functional.softplus(self.gate(f)).flatten(2) + 1e-6  # (B, N_GATES, S)
            fs = f.flatten(2)  # (B, C, S)
            gm = torch.einsum("bks,bcs->bkc", g, fs) / g.sum(-1, keepdim=True)
            h = torch.cat([h, gm.flatten(1)], 1)
        return self.heads(h)
