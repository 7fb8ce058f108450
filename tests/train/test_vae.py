"""VAE models (train/models/vae.py) and the nested-VAE measurement helpers (train/nested.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

# one thread: these tiny nets gain nothing from more, and shared CI cores are often oversubscribed
torch.set_num_threads(1)
import torch

from train.models import vae as V


def test_models_registry_and_doc000_defaults():
    assert {"vae", "cvae", "conv_vae", "conv_cvae", "image_vae", "image_cvae", "nested_vae"} <= set(V.MODELS)
    m = V.MODELS["vae"](2598)
    # the augmentation protocol: 2598 -> 256 -> 2 x 128; decoder 128 -> 256 -> 2598
    assert m.enc[0].in_features == 2598 and m.enc[0].out_features == 256
    assert m.mu.out_features == 128 and m.logvar.out_features == 128
    assert m.dec[0].in_features == 128 and m.dec[-1].out_features == 2598
    c = V.MODELS["cvae"](2598, n_cond=8)
    assert c.dec[0].in_features == 136  # 128 + 8 concentrations
    with pytest.raises(KeyError, match="unknown"):
        V.build("nope")


@pytest.mark.parametrize("name,args,kw,xshape", [
    ("vae", (300,), {"latent": 8}, (5, 300)),
    ("cvae", (300, 3), {"latent": 8}, (5, 300)),
    ("conv_vae", (301,), {"latent": 8}, (5, 301)),
    ("conv_cvae", (256, 3), {"latent": 8}, (5, 256)),
    ("image_vae", (128,), {"latent": 8, "channels": (4, 8)}, (5, 128, 128)),
    ("image_cvae", (128, 3), {"latent": 8, "channels": (4, 8)}, (5, 128, 128)),
])
def test_shapes_and_loss(name, args, kw, xshape):
    torch.manual_seed(0)
    m = V.build(name, *args, **kw)
    x = torch.randn(xshape)
    cond = torch.randn(xshape[0], m.n_cond) if m.n_cond else None
    out = m(x, cond)
    assert out["recon"].shape == x.shape
    ls = V.vae_loss(out, x, beta=1.0)
    assert torch.isfinite(ls["loss"]) and ls["kl"] >= 0
    ls["loss"].backward()
    s = m.sample(3, None if cond is None else cond[:3])
    assert s.shape == (3,) + xshape[1:]
    if m.n_cond:
        with pytest.raises(ValueError, match="cond"):
            m(x, None)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, lv = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    mp, lp = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    D = torch.distributions
    ref = D.kl_divergence(D.Normal(mu, (0.5 * lv).exp()), D.Normal(mp, (0.5 * lp).exp())).sum(1).mean()
    assert torch.allclose(V.kl_normal(mu, lv, mp, lp), ref, atol=1e-5)
    ref0 = D.kl_divergence(D.Normal(mu, (0.5 * lv).exp()), D.Normal(0.0, 1.0)).sum(1).mean()
    assert torch.allclose(V.kl_normal(mu, lv), ref0, atol=1e-5)


def test_mmd_separates_distributions():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g)
    assert abs(float(V.mmd_rbf(a, b))) < 0.02
    assert float(V.mmd_rbf(a, b + 2.0)) > 10 * abs(float(V.mmd_rbf(a, b)))


def test_vae_learns_a_low_dimensional_family():
    # spectra = Gaussian peaks at random positions: a trained VAE must reconstruct far better than the mean spectrum
    torch.manual_seed(0)
    u = torch.linspace(0, 1, 64)
    c = torch.rand(256, 1) * 0.6 + 0.2
    x = torch.exp(-0.5 * ((u - c) / 0.05) ** 2)
    m = V.VAE(64, latent=4, hidden=64)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(400):
        loss = V.vae_loss(m(x), x, beta=0.1)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        err = float(((m(x)["recon"] - x) ** 2).mean())
    base = float(((x - x.mean(0)) ** 2).mean())
    assert err < 0.25 * base


def test_nested_vae_parts():
    torch.manual_seed(0)
    m = V.NestedVAE(128, n_cont=2, n_classes=2, code=16, channels=(4, 8, 8, 8), out_ch=2)
    x = torch.randn(3, 128, 128)
    cond = torch.cat([torch.randn(3, 2), torch.eye(2)[[0, 1, 0]]], 1)
    out = m(x, cond)
    assert out["recon"].shape == (3, 2, 128, 128)
    ls = m.loss(out, x, cond, mask=torch.zeros(3, 128, 128))
    assert set(ls) >= {"loss", "mse", "bce", "kl", "cond"} and torch.isfinite(ls["loss"])
    ls["loss"].backward()
    assert m.generate(cond).shape == (3, 2, 128, 128)
    cont, logits = m.infer(x)
    assert cont.shape == (3, 2) and logits.shape == (3, 2)
    with pytest.raises(ValueError, match="divisible"):
        V.NestedVAE(100, n_cont=2)


def test_measure_mask_against_drawn_discs():
    from train.studies.nested import measure_mask
    n, px, t = 128, 1.5, 100.0
    yy, xx = np.mgrid[:n, :n]
    mask = np.zeros((1, n, n), bool)
    radii_px = [6.0, 10.0, 14.0]
    for (cy, cx), r in zip([(30, 30), (90, 40), (60, 95)], radii_px):
        mask[0] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    mask[0, 5, 120] = True  # a speck below min_px: ignored
    m = measure_mask(mask, px, t)
    d = np.sort(m["sizes"])
    # pixelised discs: equivalent diameter within 3 % of 2 r (tolerance: digitisation of a disc of r >= 6 px)
    np.testing.assert_allclose(d, 2 * np.array(radii_px) * px, rtol=0.03)
    foil = n * n * px ** 2 * t
    assert m["number_density"][0] == pytest.approx(3 / (foil * 1e-27))
    v = np.sum(np.pi * d ** 3 / 6)
    assert m["swelling"][0] == pytest.approx(100 * v / (foil - v))


def test_measure_mask_splits_touching_discs():
    from train.studies.nested import measure_mask
    from simgen.swelling.estimate import split_touching
    n, px, t = 128, 1.5, 100.0
    yy, xx = np.mgrid[:n, :n]
    mask = np.zeros((1, n, n), bool)
    r = 12.0
    for cy, cx in [(60, 40), (60, 62), (60, 84)]:  # a chain of three discs overlapping by 2 px each
        mask[0] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    lab, k = split_touching(mask[0])
    assert k == 3 and set(np.unique(lab)) == {0, 1, 2, 3}
    m = measure_mask(mask, px, t)
    # one merged region would read as a 39 px disc; split, each reads within 8 % of 2 r (the overlap is shared)
    np.testing.assert_allclose(m["sizes"], 2 * r * px, rtol=0.08)
    assert m["number_density"][0] == pytest.approx(3 / (n * n * px ** 2 * t * 1e-27))
    # a single convex blob (square, an octahedral void's projection) is not split
    sq = np.zeros((n, n), bool)
    sq[20:60, 30:70] = True
    assert split_touching(sq)[1] == 1


def test_nested_verdict_fails_a_degenerate_result():
    from train.studies.nested import verdict
    s = {"conditions_without_generated_voids": 8, "generated_max_void_probability": 0.48,
         "generated_pixel_std": 0.03, "simulated_pixel_std": 1.0,
         "inverse_temperature_mae_K": 43.0, "inverse_temperature_mae_K_mean_predictor": 45.0,
         "inverse_material_accuracy": 0.52, "inverse_material_chance": 0.5, "inverse_material_n": 64}
    for k, (g, r, m, b) in {"swelling": (1.0, 0.2, 1.0, 0.9), "number_density": (1.0, 0.1, 1.0, 0.8),
                            "mean_diameter": (1.0, 0.1, 1.0, 0.2)}.items():
        s.update({f"median_rel_err_{k}": g, f"median_rel_err_{k}_repeat": r, f"median_rel_err_{k}_mean_image": m,
                  f"median_rel_err_{k}_condition_blind": b})
    v = verdict(s, 8)
    assert v["verdict"] == "FAIL"
    for why in ("no voids", "near-constant", "mean-image baseline", "condition-blind baseline", "at chance"):
        assert why in v["reason"]
    # a result that beats both baselines and chance passes
    s.update({"conditions_without_generated_voids": 0, "generated_pixel_std": 0.8, "inverse_material_accuracy": 0.9,
              "median_rel_err_swelling": 0.3, "median_rel_err_number_density": 0.3, "median_rel_err_mean_diameter": 0.1})
    v = verdict(s, 8)
    assert v["verdict"] == "PASS", v["reason"]
