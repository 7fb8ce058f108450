"""Nested VAE (document 003) on swelling micrographs: conditions <-> micrograph, with measured checks.

``simtrain nested`` (or ``python -m train.nested``):

1. simulates a training set with the ``swelling`` simulator (recipe ``swelling-steels`` at ``--size`` pixels,
   default 128 x 1.5 nm; nuisances that change the *population* -- foil thickness, dose rate, helium -- are fixed so
   that the conditions are exactly (temperature, dose, material), as in document 003); the grey micrograph is
   standardised and the void mask (``outputs["mask"] > 0``) is a second decoder channel;
2. trains :class:`train.models.vae.NestedVAE` (image -> Z -> conditions; conditions -> p(Z|c) -> image);
3. **conditions -> micrographs**: at a grid of held-out conditions, draws ``--per-cond`` micrographs from the
   simulator and from the VAE, *measures* both the same way (:func:`measure_mask`: connected void regions of the
   mask, equivalent-circle diameters, swelling = sum(pi d^3/6) / (foil volume - void volume), number density =
   voids / foil volume) and reports per condition the relative error of mean swelling, number density and mean
   diameter, and the Wasserstein-1 distance between the size distributions, next to the noise floor (the same
   distance between two independent simulator draws at that condition) and a scale (the distance between the
   simulator at that condition and at the farthest other grid condition of the material);
4. **micrographs -> conditions**: encodes held-out simulator micrographs and reports temperature/dose MAE and
   material accuracy, next to the error of always predicting the training mean;
5. writes ``report.json``, ``nested_grid.png`` (generated micrographs across temperature x dose, simulator beside
   them) and ``model.pt`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.stats import wasserstein_distance

from ..models.vae import NestedVAE

FIXED = {"params.thickness": 100.0, "params.dose_rate": 1.0e-6, "params.helium": 1.0}


def swelling_simulator(size: int = 128, pixel: float = 1.5, recipe: str = "swelling-steels"):
    import simgen
    over = {"config.image_size": int(size), "config.pixel_size": float(pixel), **FIXED}
    return simgen.load_recipe(recipe, over).build()


def simulate(sim, params: dict, seed: int) -> dict:
    """Simulate at explicit params (dict of arrays incl. 'label' and 'seed')."""
    out = sim.simulate_outputs(params, np.random.default_rng(seed))
    return {"x": out["x"], "mask": out["mask"] > 0, "labels": out["params"]}


def conditions_grid(sim) -> list[dict]:
    """Held-out evaluation conditions: 2 temperatures x 2 doses per material, inside each material's prior."""
    grid = {"316_ss": ([700.0, 800.0], [20.0, 50.0]), "fecr_fm": ([700.0, 780.0], [80.0, 170.0])}
    out = []
    for li, m in enumerate(sim.classes):
        temps, doses = grid.get(m, ([700.0, 800.0], [20.0, 50.0]))
        for t in temps:
            for d in doses:
                out.append({"material": m, "label": li, "temperature": t, "dose": d})
    return out


def params_at(c: dict, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"label": np.full(n, c["label"]), "temperature": np.full(n, c["temperature"]),
            "dose": np.full(n, c["dose"]), "seed": rng.integers(0, 2 ** 63 - 1, n)}


def split_touching(mask: np.ndarray, min_sep_px: int = 3) -> tuple[np.ndarray, int]:
    """Label the voids of one binary mask, splitting touching/overlapping projections: a watershed of the distance
    transform from its local maxima (plateaus merged; maxima closer than ``min_sep_px`` or lower than 1.5 px are not
    seeds), as is done to count overlapping particles in micrographs.  Returns ``(labels, count)``."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32), 0
    dist = ndimage.distance_transform_edt(mask)
    peaks = (dist == ndimage.maximum_filter(dist, size=2 * min_sep_px + 1)) & (dist >= 1.5)
    seeds, k = ndimage.label(peaks, structure=np.ones((3, 3)))
    comp, kc = ndimage.label(mask)
    # every connected region gets at least one seed (thin regions may have no peak >= 1.5 px)
    has = np.zeros(kc + 1, bool)
    has[np.unique(comp[seeds > 0])] = True
    for r in np.flatnonzero(~has[1:]) + 1:
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


def measure_mask(mask: np.ndarray, pixel_nm: float, thickness_nm: float = FIXED["params.thickness"],
                 min_px: int = 4) -> dict:
    """Measure voids in binary masks (n, H, W): touching projections split (:func:`split_touching`), then
    equivalent-circle diameters (nm) of regions of at least ``min_px`` pixels; per image swelling (%) =
    100 sum(pi d^3 / 6) / (A t - sum), number density (m^-3) = N / (A t) with A the field area and t the foil
    thickness.  Returns per-image arrays and the pooled diameters."""
    mask = np.asarray(mask, bool)
    n, h, w = mask.shape
    foil = h * w * pixel_nm ** 2 * thickness_nm
    sw, nd, md, sizes = [], [], [], []
    for i in range(n):
        lab, k = split_touching(mask[i])
        area = np.bincount(lab.ravel(), minlength=k + 1)[1:]
        area = area[area >= min_px]
        d = 2.0 * np.sqrt(area / np.pi) * pixel_nm
        v = float(np.sum(np.pi * d ** 3 / 6.0))
        sw.append(100.0 * v / max(foil - v, 1e-9))
        nd.append(len(d) / (foil * 1e-27))
        md.append(float(d.mean()) if len(d) else np.nan)
        sizes.append(d)
    return {"swelling": np.array(sw), "number_density": np.array(nd), "mean_diameter": np.array(md),
            "sizes": np.concatenate(sizes) if sizes else np.zeros(0)}


class Standardiser:
    def __init__(self, sim, x_train, params_train):
        self.x_mean, self.x_std = float(x_train.mean()), float(x_train.std() + 1e-6)
        self.t = (float(params_train["temperature"].mean()), float(params_train["temperature"].std() + 1e-6))
        self.d = (float(params_train["dose"].mean()), float(params_train["dose"].std() + 1e-6))
        self.n_classes = len(sim.classes)

    def images(self, x):
        return torch.as_tensor((x - self.x_mean) / self.x_std, dtype=torch.float32)

    def cond(self, temperature, dose, label):
        temperature, dose = np.asarray(temperature, float), np.asarray(dose, float)
        c = [(temperature - self.t[0]) / self.t[1], (dose - self.d[0]) / self.d[1]]
        oh = np.eye(max(self.n_classes, 1))[np.asarray(label, int)] if self.n_classes else np.zeros((len(dose), 0))
        return torch.as_tensor(np.column_stack(c + [oh]), dtype=torch.float32)

    def uncond(self, cont):
        cont = np.asarray(cont)
        return cont[:, 0] * self.t[1] + self.t[0], cont[:, 1] * self.d[1] + self.d[0]


def make_training_set(sim, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    p = sim.sample_params(n, rng)
    out = simulate(sim, p, seed + 1)
    return {"x": out["x"], "mask": out["mask"], "temperature": p["temperature"], "dose": p["dose"],
            "label": p["label"] if "label" in p else np.zeros(n, int)}


def train_nested(data: dict, std: Standardiser, *, size: int, epochs: int, batch: int = 32, lr: float = 1e-3,
                 beta: float = 1.0, gamma: float = 1.0, code: int = 32, channels=(8, 16, 32, 64), seed: int = 0,
                 device: str = "cpu", log=print) -> NestedVAE:
    torch.manual_seed(seed)
    model = NestedVAE(size, n_cont=2, n_classes=std.n_classes, code=code, channels=channels, in_ch=1,
                      out_ch=2).to(device)
    X = std.images(data["x"])
    M = torch.as_tensor(data["mask"], dtype=torch.float32)
    C = std.cond(data["temperature"], data["dose"], data["label"])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    n = len(X)
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        tot = {}
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            xb, mb, cb = X[idx].to(device), M[idx].to(device), C[idx].to(device)
            # random flips/transposes: micrographs have no preferred orientation
            if torch.rand(1, generator=g).item() < 0.5:
                xb, mb = xb.flip(-1), mb.flip(-1)
            if torch.rand(1, generator=g).item() < 0.5:
                xb, mb = xb.transpose(-1, -2), mb.transpose(-1, -2)
            out = model(xb, cb)
            ls = model.loss(out, xb, cb, beta=beta * min(1.0, (ep + 1) / max(1, epochs // 3)), gamma=gamma,
                            mask=mb)
            opt.zero_grad()
            ls["loss"].backward()
            opt.step()
            for k, v in ls.items():
                tot[k] = tot.get(k, 0.0) + float(v.detach()) * len(idx) / n
        sched.step()
        log(f"  nested epoch {ep + 1}/{epochs}: " + " ".join(f"{k}={v:.4g}" for k, v in tot.items()))
    model.eval()
    return model


def _rel(a, b):
    return float(abs(a - b) / max(abs(b), 1e-12))


def evaluate(model: NestedVAE, sim, std: Standardiser, *, per_cond: int = 16, seed: int = 7,
             device: str = "cpu") -> dict:
    px = float(sim.config["pixel_size"])
    grid = conditions_grid(sim)
    rows = []
    rec_t, rec_d, rec_ok, base_t, base_d = [], [], [], [], []
    for j, c in enumerate(grid):
        a = simulate(sim, params_at(c, per_cond, seed + 100 * j), seed + 100 * j + 1)
        b = simulate(sim, params_at(c, per_cond, seed + 100 * j + 50), seed + 100 * j + 51)
        cond = std.cond(np.full(per_cond, c["temperature"]), np.full(per_cond, c["dose"]),
                        np.full(per_cond, c["label"]))
        torch.manual_seed(seed + j)
        gen = model.generate(cond.to(device)).cpu().numpy()
        gmask = gen[:, 1] > 0.0
        ms, mb, mg = measure_mask(a["mask"], px), measure_mask(b["mask"], px), measure_mask(gmask, px)
        truth = {k: float(np.nanmean(a["labels"][k])) for k in ("swelling", "number_density", "mean_diameter")}
        row = {**c, "n": per_cond, "simulator_labels": truth}
        for k in ("swelling", "number_density", "mean_diameter"):
            row[k] = {"simulator": float(np.nanmean(ms[k])), "simulator_repeat": float(np.nanmean(mb[k])),
                      "generated": float(np.nanmean(mg[k])) if np.isfinite(mg[k]).any() else float("nan"),
                      "rel_err": _rel(np.nanmean(mg[k]) if np.isfinite(mg[k]).any() else 0.0, np.nanmean(ms[k])),
                      "rel_err_repeat": _rel(np.nanmean(mb[k]), np.nanmean(ms[k]))}
        w = lambda u, v: float(wasserstein_distance(u, v)) if len(u) and len(v) else float("nan")
        row["sizes"] = {"n_sim": int(len(ms["sizes"])), "n_gen": int(len(mg["sizes"])),
                        "w1_gen_nm": w(mg["sizes"], ms["sizes"]), "w1_repeat_nm": w(mb["sizes"], ms["sizes"])}
        rows.append(row)
        # inverse: micrographs -> conditions
        cont, logits = model.infer(std.images(a["x"]).to(device))
        t_hat, d_hat = std.uncond(cont.cpu().numpy())
        rec_t.append(np.abs(t_hat - c["temperature"]))
        rec_d.append(np.abs(d_hat - c["dose"]))
        base_t.append(np.abs(std.t[0] - c["temperature"]) * np.ones(per_cond))
        base_d.append(np.abs(std.d[0] - c["dose"]) * np.ones(per_cond))
        if std.n_classes:
            rec_ok.append(logits.argmax(1).cpu().numpy() == c["label"])
    # size-distribution scale: simulator at this condition vs the farthest other condition of the material
    for r in rows:
        others = [o for o in rows if o is not r and o["material"] == r["material"]]
        if others:
            far = max(others, key=lambda o: abs(o["temperature"] - r["temperature"]) / 100
                      + abs(o["dose"] - r["dose"]) / 50)
            r["sizes"]["w1_other_condition_nm"] = abs(far["mean_diameter"]["simulator"]
                                                      - r["mean_diameter"]["simulator"])
    summary = {
        "median_rel_err_swelling": float(np.nanmedian([r["swelling"]["rel_err"] for r in rows])),
        "median_rel_err_swelling_repeat": float(np.nanmedian([r["swelling"]["rel_err_repeat"] for r in rows])),
        "median_rel_err_number_density": float(np.nanmedian([r["number_density"]["rel_err"] for r in rows])),
        "median_rel_err_number_density_repeat": float(np.nanmedian([r["number_density"]["rel_err_repeat"]
                                                                    for r in rows])),
        "median_rel_err_mean_diameter": float(np.nanmedian([r["mean_diameter"]["rel_err"] for r in rows])),
        "median_rel_err_mean_diameter_repeat": float(np.nanmedian([r["mean_diameter"]["rel_err_repeat"]
                                                                   for r in rows])),
        "median_w1_sizes_nm": float(np.nanmedian([r["sizes"]["w1_gen_nm"] for r in rows])),
        "median_w1_sizes_repeat_nm": float(np.nanmedian([r["sizes"]["w1_repeat_nm"] for r in rows])),
        "inverse_temperature_mae_K": float(np.mean(np.concatenate(rec_t))),
        "inverse_temperature_mae_K_mean_predictor": float(np.mean(np.concatenate(base_t))),
        "inverse_dose_mae_dpa": float(np.mean(np.concatenate(rec_d))),
        "inverse_dose_mae_dpa_mean_predictor": float(np.mean(np.concatenate(base_d))),
    }
    if rec_ok:
        summary["inverse_material_accuracy"] = float(np.mean(np.concatenate(rec_ok)))
    return {"conditions": rows, "summary": summary}


def figure(model: NestedVAE, sim, std: Standardiser, path, material: int = 0, seed: int = 3, device="cpu"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    temps = [650.0, 725.0, 800.0, 860.0] if sim.classes[material] != "fecr_fm" else [650.0, 700.0, 760.0, 810.0]
    doses = [5.0, 20.0, 40.0, 60.0] if sim.classes[material] != "fecr_fm" else [40.0, 90.0, 140.0, 190.0]
    fig, axes = plt.subplots(len(doses), 2 * len(temps), figsize=(2 * len(temps) * 1.6, len(doses) * 1.7))
    for i, d in enumerate(doses):
        cond = std.cond(np.array(temps), np.full(len(temps), d), np.full(len(temps), material))
        torch.manual_seed(seed + i)
        gen = model.generate(cond.to(device)).cpu().numpy()[:, 0] * std.x_std + std.x_mean
        real = simulate(sim, {"label": np.full(len(temps), material), "temperature": np.array(temps),
                              "dose": np.full(len(temps), d), "seed": np.arange(len(temps)) + 1000 * i}, i)["x"]
        for j, t in enumerate(temps):
            for k, (img, tag) in enumerate(((gen[j], "VAE"), (real[j], "sim"))):
                ax = axes[i, 2 * j + k]
                ax.imshow(img, cmap="gray", vmin=0.6, vmax=1.4)
                ax.set_xticks([]), ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"{tag} {t:.0f} K", fontsize=7)
                if j == 0 and k == 0:
                    ax.set_ylabel(f"{d:g} dpa", fontsize=7)
    fig.suptitle(f"nested VAE ({sim.classes[material]}): generated (VAE) vs simulated (sim), "
                 "temperature across, dose down", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> dict:
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, int(args.threads)))
    sim = swelling_simulator(args.size, args.pixel, args.recipe)
    print(f"simulating {args.n_train} training micrographs ({args.size}^2, {args.pixel} nm/px) ...", flush=True)
    data = make_training_set(sim, args.n_train, args.seed)
    std = Standardiser(sim, data["x"], data)
    print(f"  done in {time.time() - t0:.0f} s; training nested VAE for {args.epochs} epochs", flush=True)
    model = train_nested(data, std, size=args.size, epochs=args.epochs, batch=args.batch, lr=args.lr,
                         beta=args.beta, gamma=args.gamma, code=args.code, seed=args.seed, device=args.device)
    rep = evaluate(model, sim, std, per_cond=args.per_cond, seed=args.seed + 11, device=args.device)
    rep["config"] = {k: v for k, v in vars(args).items() if k != "func"}
    rep["metric"] = ("per held-out condition: simulator vs generated micrographs measured identically from the "
                     "void mask (connected regions >= 4 px, equivalent-circle diameters); relative error of means; "
                     "Wasserstein-1 distance (nm) of pooled void diameters; '_repeat' = a second independent "
                     "simulator draw (noise floor)")
    figure(model, sim, std, out / "nested_grid.png", device=args.device)
    torch.save({"state": model.state_dict(), "x_mean": std.x_mean, "x_std": std.x_std, "t": std.t, "d": std.d,
                "classes": list(sim.classes)}, out / "model.pt")
    (out / "report.json").write_text(json.dumps(rep, indent=1, default=float))
    s = rep["summary"]
    print("nested VAE: conditions -> micrographs (median over held-out conditions; simulator repeat = noise floor)")
    for k in ("swelling", "number_density", "mean_diameter"):
        print(f"  rel. error of mean {k:15s}: generated {s['median_rel_err_' + k]:.3f}   "
              f"simulator repeat {s['median_rel_err_' + k + '_repeat']:.3f}")
    print(f"  W1 of void diameters (nm):          generated {s['median_w1_sizes_nm']:.2f}   "
          f"simulator repeat {s['median_w1_sizes_repeat_nm']:.2f}")
    print("micrographs -> conditions:")
    print(f"  temperature MAE {s['inverse_temperature_mae_K']:.1f} K (mean predictor "
          f"{s['inverse_temperature_mae_K_mean_predictor']:.1f} K)")
    print(f"  dose MAE {s['inverse_dose_mae_dpa']:.1f} dpa (mean predictor "
          f"{s['inverse_dose_mae_dpa_mean_predictor']:.1f} dpa)")
    if "inverse_material_accuracy" in s:
        print(f"  material accuracy {s['inverse_material_accuracy']:.3f}")
    print(f"wrote {out}/report.json, nested_grid.png, model.pt ({time.time() - t0:.0f} s)")
    return rep


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--recipe", default="swelling-steels")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (>= 128)")
    p.add_argument("--pixel", type=float, default=1.5, help="pixel size (nm)")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--code", type=int, default=32)
    p.add_argument("--per-cond", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/nested")


def _cli(args) -> int:
    run(args)
    return 0


def register_cli(subparsers):
    p = subparsers.add_parser("nested", help="nested VAE (document 003): conditions <-> swelling micrographs",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_cli)
    return p

