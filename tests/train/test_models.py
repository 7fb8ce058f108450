"""train.models: registry, shapes, per-target MLP, ResNet layouts, Morlet CWT against a direct sum, baseline."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from train.models import MODELS, ShapeError, available_models, get_model
from train.models.baseline import BaselineModel, feature_names, peak_features
from train.models.cwt import MorletCWT, morlet
from train.models.resnet import BasicBlock

def test_registry_names_and_unknown():
    for name in ("mlp", "resnet1d", "cnn2d", "cwt-cnn2d"):
        assert name in MODELS
    assert {"baseline-rf", "baseline-gb"} <= set(available_models())
    with pytest.raises(KeyError, match=r"model 'resnet99'.*mlp"):
        get_model("resnet99", (64,), 1)


@pytest.mark.skipif(importlib.util.find_spec("train.models.vae") is None, reason="train.models.vae not written yet")
def test_registry_includes_vae_models():
    import train.models.vae as vae
    available_models()
    assert set(getattr(vae, "MODELS", {})) <= set(MODELS)


@pytest.mark.parametrize("name,shape,kw", [
    ("mlp", (64,), {}), ("mlp", (16, 16), {"per_target": False}), ("resnet1d", (128,), {"width": 4}),
    ("cnn2d", (32, 32), {"width": 4}),
    ("cwt-cnn2d", (64,), {"width": 4, "n_scales": 16, "out_size": (16, 32)}),
    ("resnet1d", (128,), {"width": 4, "head_hidden": 8}),
    ("cnn2d", (32, 32), {"width": 4, "pool": "gated", "head_hidden": 8}),
])
def test_output_shapes_and_gradients(name, shape, kw):
    m = get_model(name, shape, n_targets=3, n_classes=4, **kw)
    x = torch.randn(5, *shape)
    out = m(x)
    assert out["reg"].shape == (5, 3) and out["logits"].shape == (5, 4)
    (out["reg"].sum() + out["logits"].sum()).backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    only_reg = get_model(name, shape, n_targets=2, n_classes=0, **kw)(x)
    assert set(only_reg) == {"reg"}


def test_mlp_is_document_000_per_target_regressor():
    m = get_model("mlp", (2598,), n_targets=8)
    # one 2598-64-32-16-1 network per target (the per-ion regressor protocol)
    per = (2598 * 64 + 64) + (64 * 32 + 32) + (32 * 16 + 16) + (16 + 1)
    assert len(m.nets) == 8 and sum(p.numel() for p in m.parameters()) == 8 * per
    x = torch.randn(3, 2598)
    # target j depends only on its own network
    with torch.no_grad():
        base = m(x)["reg"].clone()
        for p in m.nets[2].parameters():
            p.add_(0.1)
        new = m(x)["reg"]
    assert torch.allclose(base[:, [0, 1, 3]], new[:, [0, 1, 3]]) and not torch.allclose(base[:, 2], new[:, 2])
    wide = get_model("mlp", (100,), n_targets=1, hidden=(128, 8))
    assert [l.out_features for l in wide.nets[0] if isinstance(l, torch.nn.Linear)] == [128, 8, 1]


def test_resnet_depths():
    count = lambda m: sum(isinstance(b, BasicBlock) for b in m.modules())  # noqa: E731
    assert count(get_model("resnet1d", (256,), 1, width=4)) == 8           # ResNet-18: [2,2,2,2]
    assert count(get_model("resnet1d", (256,), 1, depth=34, width=4)) == 16  # ResNet-34: [3,4,6,3]
    assert count(get_model("cnn2d", (32, 32), 1, width=4, depth=18)) == 8


def test_gated_pool_is_a_weighted_mean_per_object():
    m = get_model("cnn2d", (32, 32), 1, width=4, pool="gated").eval()
    x = torch.randn(2, 32, 32)
    seen = {}
    m.heads.register_forward_pre_hook(lambda mod, a: seen.setdefault("h", a[0]))
    with torch.no_grad():
        m(x)
        f = m.blocks(m.stem(x.unsqueeze(1)))  # (B, C, h, w)
        g = torch.nn.functional.softplus(m.gate(f)) + 1e-6  # (B, 4, h, w)
    h = seen["h"]
    c = f.shape[1]
    assert h.shape == (2, 5 * c)
    assert torch.allclose(h[:, :c], f.mean((2, 3)), atol=1e-6)
    for b in range(2):
        for k in range(4):  # slow, obvious: sum over pixels of gate * feature / sum of gate
            want = torch.stack([(g[b, k] * f[b, j]).sum() / g[b, k].sum() for j in range(c)])
            assert torch.allclose(h[b, c + k * c: c + (k + 1) * c], want, atol=1e-5)
    with pytest.raises(ValueError, match="pool 'max'.*'avg' or 'gated'"):
        get_model("cnn2d", (32, 32), 1, pool="max")


def test_shape_errors_name_the_shapes():
    with pytest.raises(ShapeError, match=r"'cnn2d' takes 2-D.*\(128,\)"):
        get_model("cnn2d", (128,), 1)
    with pytest.raises(ShapeError, match=r"'resnet1d' takes 1-D.*\(8, 8\)"):
        get_model("resnet1d", (8, 8), 1)
    m = get_model("mlp", (64,), 1)
    with pytest.raises(ShapeError, match=r"expects input samples of shape \(64,\); got \(65,\)"):
        m(torch.zeros(2, 65))
    with pytest.raises(ShapeError, match="spectra"):
        get_model("cnn2d", (8, 8), 1, cwt=True)


# ------------------------------------------------------------------------------------------------ CWT
def _cwt_direct(x, scales):
    """Slow, obvious reference: W[s, b] = sum_n x[n] psi((n - b) / s) / sqrt(s), |n - b| <= min(8 s, L - 1)."""
    L = len(x)
    out = np.zeros((len(scales), L))
    n = np.arange(L)
    for i, s in enumerate(scales):
        h = min(math.floor(8 * s), L - 1)
        for b in range(L):
            d = n - b
            ok = np.abs(d) <= h
            out[i, b] = np.sum(x[ok] * morlet(d[ok] / s)) / math.sqrt(s)
    return out


def test_cwt_matches_direct_sum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 96))
    scales = [1.0, 2.5, 7.0, 30.0, 128.0]
    cwt = MorletCWT(96, scales)
    got = cwt(torch.from_numpy(x).float()).numpy()
    for k in range(2):
        ref = _cwt_direct(x[k], scales)
        # float32 FFT of length 256: absolute error ~1e-5 of the coefficient scale
        np.testing.assert_allclose(got[k], ref, atol=2e-4 * np.abs(ref).max())


def test_cwt_of_cosine_peaks_at_matching_scale():
    # analytic: for x = cos(w t) the Morlet (w0 = 5) response is largest at s = w0 / w
    L = 1024
    t = np.arange(L)
    scales = np.linspace(1, 128, 128)
    cwt = MorletCWT(L, scales, magnitude=True)
    for period in (20.0, 60.0):
        w = 2 * np.pi / period
        W = cwt(torch.from_numpy(np.cos(w * t)).float()[None])[0].numpy()
        s_best = scales[np.argmax(W[:, 400:600].mean(1))]
        assert abs(s_best - 5.0 / w) <= 0.05 * 5.0 / w + 1.0


def test_cwt_pooling_output_size():
    cwt = MorletCWT(200, np.arange(1, 129), out_size=(32, 50), magnitude=True)
    assert cwt(torch.randn(3, 200)).shape == (3, 32, 50)
    assert cwt.out_shape == (32, 50)


# ------------------------------------------------------------------------------------------------ baseline
def _gauss(x, c, w):
    return np.exp(-0.5 * ((x - c) / w) ** 2)


def test_peak_features_find_known_peaks():
    coord = np.linspace(0, 100, 501)
    one = _gauss(coord, 30, 2.0)
    two = _gauss(coord, 20, 1.5) + 0.6 * _gauss(coord, 70, 3.0)
    f = peak_features(np.stack([one, two]), coord)
    names = feature_names()
    col = {n: i for i, n in enumerate(names)}
    assert f.shape == (2, len(names))
    assert f[0, col["n_peaks_prom0.1"]] == 1 and f[1, col["n_peaks_prom0.1"]] == 2
    assert abs(f[0, col["peak0_pos"]] - 30) < 0.25
    assert abs(f[0, col["peak0_width"]] - 2.3548 * 2.0) < 0.3  # FWHM of a Gaussian = 2.3548 sigma
    assert abs(f[1, col["peak1_pos"]] - 70) < 0.25
    assert peak_features(np.zeros((2, 8, 8))).shape[0] == 2


def test_baseline_learns_peak_position():
    rng = np.random.default_rng(1)
    coord = np.linspace(0, 100, 256)
    c = rng.uniform(15, 85, 300)
    w = rng.uniform(1, 5, 300)
    x = _gauss(coord[None], c[:, None], w[:, None]) + rng.normal(0, 0.02, (300, 256))
    lab = (w > 3).astype(int)
    y = np.stack([c, w], 1)
    y[::4, 1] = np.nan  # NaN targets are left out of that target's fit
    m = BaselineModel("rf", n_estimators=50).fit(x[:200], y[:200], lab[:200], coord=coord)
    p = m.predict(x[200:])
    r2 = 1 - np.sum((p["reg"][:, 0] - c[200:]) ** 2) / np.sum((c[200:] - c[200:].mean()) ** 2)
    assert r2 > 0.98
    assert (p["probs"].argmax(1) == lab[200:]).mean() > 0.85
    gb = BaselineModel("gb", n_estimators=50).fit(x[:200], y[:200, :1], None, coord=coord)
    assert gb.predict(x[200:])["reg"].shape == (100, 1)
