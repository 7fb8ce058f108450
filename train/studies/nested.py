"""Nested VAE on swelling micrographs: irradiation conditions <-> micrograph, with measured checks.

The nested layout (micrograph encoder -> code Z -> parameter encoder; parameter decoder -> Z -> micrograph decoder)
follows a published VAE that maps irradiation conditions to binarised 32 x 32 swelling micrographs and back; here it
is variational, grey-level and at >= 128 pixels.  ``simtrain nested``:

1. simulates a training set with the ``swelling`` simulator (recipe ``swelling-steels`` at ``--size`` pixels,
   default 128 x 1.5 nm; nuisances that change the *population* -- foil thickness, dose rate, helium -- are fixed so
   that the conditions are exactly (temperature, dose, material)); the grey micrograph is
   standardised and the void mask (``outputs["mask"] > 0``) is a second decoder channel;
2. trains :class:`train.models.vae.NestedVAE` (image -> Z -> conditions; conditions -> p(Z|c) -> image);
3. **conditions -> micrographs**: at a grid of held-out conditions, draws ``--per-cond`` micrographs from the
   simulator and from the VAE, *measures* both the same way (:func:`simgen.swelling.estimate.measure_masks`: void
   regions of the mask, touching projections split, equivalent-circle diameters, swelling = sum(pi d^3/6) / (foil
   volume - void volume), number density = voids / foil volume) and reports per condition the relative error of mean
   swelling, number density and mean diameter, and the Wasserstein-1 distance between the size distributions, next
   to the noise floor (the same distance between two independent simulator draws at that condition) and a scale (the
   distance between the simulator at that condition and at the farthest other grid condition of the material);
4. **micrographs -> conditions**: encodes held-out simulator micrographs and reports temperature/dose MAE and
   material accuracy, next to the error of always predicting the training mean;
5. judges the result (``verdict``: PASS or FAIL with the reason): the generated statistics must beat two
   baselines measured the same way -- the *mean image* (the pixelwise mean training micrograph and mask, what a
   model that learnt nothing beyond the average produces) and the *condition-blind* training average of each
   statistic -- and the inverse direction must beat the mean predictor and chance; a degenerate result (no
   generated voids, near-constant images, NaN) is a FAIL whatever the numbers;
6. writes ``report.json``, ``nested_grid.png`` (generated micrographs across temperature x dose, simulator beside
   them) and ``model.pt`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from simgen.swelling.estimate import measure_masks

from .. import core
from ..fit import augment_batch
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
    """Held-out evaluation conditions: 2 temperatures x 2 doses per material, inside each material's prior (the
    recipe's per-class ranges: 316 SS 0-30 dpa, F/M Fe-Cr 20-120 dpa and 623-823 K)."""
    grid = {"316_ss": ([700.0, 800.0], [8.0, 24.0]), "fecr_fm": ([700.0, 780.0], [50.0, 100.0])}
    out = []
    for li, m in enumerate(sim.classes):
        temps, doses = grid.get(m, ([700.0, 800.0], [8.0, 24.0]))
        for t in temps:
            for d in doses:
                out.append({"material": m, "label": li, "temperature": t, "dose": d})
    return out


def params_at(c: dict, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"label": np.full(n, c["label"]), "temperature": np.full(n, c["temperature"]),
            "dose": np.full(n, c["dose"]), "seed": rng.integers(0, 2 ** 63 - 1, n)}


def measure_mask(mask: np.ndarray, pixel_nm: float, thickness_nm: float = FIXED["params.thickness"],
                 min_px: int = 4) -> dict:
    """The study's measurement of binary masks (n, H, W): :func:`simgen.swelling.estimate.measure_masks` at the
    study's fixed foil thickness."""
    return measure_masks(mask, pixel_nm, thickness_nm, min_pixels=min_px)


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
                 beta: float = 1.0, gamma: float = 1.0, code: int = 32, channels=(8, 16, 32, 64),
                 mask_weight: float = 1.0, seed: int = 0, device: str = "cpu", log=print) -> NestedVAE:
    """Train the nested VAE on ``data`` (x, mask, temperature, dose, label) with :func:`train.core.nested`: grey
    MSE + ``mask_weight`` BCE of the mask channel + ``beta`` KL to the conditional prior (warmed up over the first
    third of the epochs) + ``gamma`` condition loss; random dihedral transforms (micrographs have no preferred
    orientation); cosine learning rate."""
    torch.manual_seed(seed)
    model = NestedVAE(size, n_cont=2, n_classes=std.n_classes, code=code, channels=channels, in_ch=1,
                      out_ch=2)
    arrays = {"x": std.images(data["x"]), "mask": torch.as_tensor(data["mask"], dtype=torch.float32),
              "cond": std.cond(data["temperature"], data["dose"], data["label"])}
    dihedral = lambda t, rng: augment_batch(t, "dihedral", rng)  # noqa: E731
    core.train(model, arrays, core.nested(beta, gamma, warmup=1 / 3, augment=dihedral, mask_weight=mask_weight),
               epochs=epochs, batch=batch, lr=lr, schedule="cosine", seed=seed, device=device,
               log=(lambda m: log("  nested" + m[1:])) if log else None)
    return model


STATS = ("swelling", "number_density", "mean_diameter")


def _rel(a, b):
    """Relative error of ``a`` against ``b``; an estimate that does not exist (NaN: no voids measured) is 1."""
    if not np.isfinite(a):
        return 1.0
    return float(abs(a - b) / max(abs(b), 1e-12))


def _mean(v) -> float:
    v = np.asarray(v, float)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def _w1(u, v) -> float:
    return float(wasserstein_distance(u, v)) if len(u) and len(v) else float("nan")


def evaluate(model: NestedVAE, sim, std: Standardiser, *, per_cond: int = 16, seed: int = 7,
             device: str = "cpu", train: dict | None = None) -> dict:
    """Both directions at the held-out grid (:func:`conditions_grid`), with the noise floor (a second simulator
    draw), the mean-image and condition-blind baselines (from the training set ``train``) and a verdict."""
    px = float(sim.config["pixel_size"])
    grid = conditions_grid(sim)
    rows = []
    rec_t, rec_d, rec_ok, base_t, base_d = [], [], [], [], []
    gen_std, sim_std, p_max = [], [], []
    base = None
    if train is not None:
        mt = measure_mask(train["mask"], px)
        mean_mask = np.asarray(train["mask"], float).mean(0) > 0.5  # the mean image's mask, every condition alike
        mi = measure_mask(np.broadcast_to(mean_mask, (per_cond,) + mean_mask.shape), px)
        base = {"mean_image": {k: _mean(mi[k]) for k in STATS}, "condition_blind": {k: _mean(mt[k]) for k in STATS},
                "mean_image_sizes": mi["sizes"], "blind_sizes": mt["sizes"]}
    for j, c in enumerate(grid):
        a = simulate(sim, params_at(c, per_cond, seed + 100 * j), seed + 100 * j + 1)
        b = simulate(sim, params_at(c, per_cond, seed + 100 * j + 50), seed + 100 * j + 51)
        cond = std.cond(np.full(per_cond, c["temperature"]), np.full(per_cond, c["dose"]),
                        np.full(per_cond, c["label"]))
        torch.manual_seed(seed + j)
        gen = model.generate(cond.to(device)).cpu().numpy()
        gmask = gen[:, 1] > 0.0  # void probability > 1/2
        gen_std.append(float(gen[:, 0].std()))
        sim_std.append(float(std.images(a["x"]).numpy().std()))
        p_max.append(float(1.0 / (1.0 + np.exp(-gen[:, 1].max()))))
        ms, mb, mg = measure_mask(a["mask"], px), measure_mask(b["mask"], px), measure_mask(gmask, px)
        truth = {k: float(np.nanmean(a["labels"][k])) for k in STATS}
        row = {**c, "n": per_cond, "simulator_labels": truth}
        for k in STATS:
            ref = _mean(ms[k])
            row[k] = {"simulator": ref, "simulator_repeat": _mean(mb[k]), "generated": _mean(mg[k]),
                      "rel_err": _rel(_mean(mg[k]), ref), "rel_err_repeat": _rel(_mean(mb[k]), ref)}
            if base is not None:
                row[k]["rel_err_mean_image"] = _rel(base["mean_image"][k], ref)
                row[k]["rel_err_condition_blind"] = _rel(base["condition_blind"][k], ref)
        row["sizes"] = {"n_sim": int(len(ms["sizes"])), "n_gen": int(len(mg["sizes"])),
                        "w1_gen_nm": _w1(mg["sizes"], ms["sizes"]), "w1_repeat_nm": _w1(mb["sizes"], ms["sizes"])}
        if base is not None:
            row["sizes"]["w1_mean_image_nm"] = _w1(base["mean_image_sizes"], ms["sizes"])
            row["sizes"]["w1_condition_blind_nm"] = _w1(base["blind_sizes"], ms["sizes"])
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
    med = lambda key, sub: float(np.median([r[key][sub] for r in rows]))  # noqa: E731
    fin_med = lambda v: float(np.median(v)) if np.isfinite(v).all() else float("nan")  # noqa: E731
    summary = {}
    for k in STATS:
        summary[f"median_rel_err_{k}"] = med(k, "rel_err")
        summary[f"median_rel_err_{k}_repeat"] = med(k, "rel_err_repeat")
        if base is not None:
            summary[f"median_rel_err_{k}_mean_image"] = med(k, "rel_err_mean_image")
            summary[f"median_rel_err_{k}_condition_blind"] = med(k, "rel_err_condition_blind")
    for sub in ("w1_gen_nm", "w1_repeat_nm", "w1_mean_image_nm", "w1_condition_blind_nm"):
        if sub in rows[0]["sizes"]:
            name = {"w1_gen_nm": "median_w1_sizes_nm"}.get(sub, "median_w1_sizes_" + sub[3:])
            summary[name] = fin_med(np.array([r["sizes"][sub] for r in rows]))
    summary.update({
        "generated_pixel_std": float(np.mean(gen_std)), "simulated_pixel_std": float(np.mean(sim_std)),
        "generated_max_void_probability": float(np.max(p_max)),
        "conditions_without_generated_voids": int(sum(r["sizes"]["n_gen"] == 0 for r in rows)),
        "inverse_temperature_mae_K": float(np.mean(np.concatenate(rec_t))),
        "inverse_temperature_mae_K_mean_predictor": float(np.mean(np.concatenate(base_t))),
        "inverse_dose_mae_dpa": float(np.mean(np.concatenate(rec_d))),
        "inverse_dose_mae_dpa_mean_predictor": float(np.mean(np.concatenate(base_d))),
    })
    if rec_ok:
        ok = np.concatenate(rec_ok)
        summary["inverse_material_accuracy"] = float(np.mean(ok))
        summary["inverse_material_chance"] = 1.0 / std.n_classes
        summary["inverse_material_n"] = int(len(ok))
    rep = {"conditions": rows, "summary": summary}
    rep.update(verdict(summary, n_conditions=len(rows)))
    return rep


def verdict(s: dict, n_conditions: int) -> dict:
    """PASS only if the micrographs are not degenerate, their measured statistics beat both baselines (median
    relative error over the held-out conditions, summed over swelling, number density and mean diameter) and the
    inverse direction beats the mean predictor (temperature) and chance (material, by two binomial standard
    errors).  Returns ``{"verdict", "reason", "checks"}``."""
    fails, checks = [], {}
    if s["conditions_without_generated_voids"] > 0:
        fails.append(f"no voids in the generated micrographs at {s['conditions_without_generated_voids']} of "
                     f"{n_conditions} conditions (largest void probability of the mask channel "
                     f"{s['generated_max_void_probability']:.2f}, the threshold is 0.5)")
    # a decoded micrograph is the conditional mean, smoother than a noisy simulated one, but not flat
    if s["generated_pixel_std"] < 0.1 * s["simulated_pixel_std"]:
        fails.append(f"near-constant generated micrographs (pixel std {s['generated_pixel_std']:.3f} against "
                     f"{s['simulated_pixel_std']:.3f} for the simulator, standardised units)")
    gen = sum(s[f"median_rel_err_{k}"] for k in STATS)
    checks["generated_rel_err_sum"] = gen
    checks["noise_floor_rel_err_sum"] = sum(s[f"median_rel_err_{k}_repeat"] for k in STATS)
    for b in ("mean_image", "condition_blind"):
        if f"median_rel_err_swelling_{b}" in s:
            ref = sum(s[f"median_rel_err_{k}_{b}"] for k in STATS)
            checks[f"{b}_rel_err_sum"] = ref
            if not gen < ref:
                fails.append(f"generated statistics do not beat the {b.replace('_', '-')} baseline (median relative "
                             f"errors summed over swelling, number density, mean diameter: {gen:.3f} vs {ref:.3f})")
    if not s["inverse_temperature_mae_K"] < s["inverse_temperature_mae_K_mean_predictor"]:
        fails.append(f"inverse temperature MAE {s['inverse_temperature_mae_K']:.1f} K does not beat the mean "
                     f"predictor ({s['inverse_temperature_mae_K_mean_predictor']:.1f} K)")
    if "inverse_material_accuracy" in s:
        p0, n = s["inverse_material_chance"], s["inverse_material_n"]
        bar = p0 + 2.0 * np.sqrt(p0 * (1 - p0) / n)
        checks["material_accuracy_needed"] = float(bar)
        if not s["inverse_material_accuracy"] > bar:
            fails.append(f"material accuracy {s['inverse_material_accuracy']:.3f} is at chance ({p0:.2f}; needs > "
                         f"{bar:.3f} with {n} images)")
    if fails:
        return {"verdict": "FAIL", "reason": "; ".join(fails), "checks": checks}
    return {"verdict": "PASS", "checks": checks,
            "reason": (f"generated statistics beat the baselines (summed median relative error {gen:.3f}; mean "
                       f"image {checks.get('mean_image_rel_err_sum', float('nan')):.3f}, condition-blind "
                       f"{checks.get('condition_blind_rel_err_sum', float('nan')):.3f}; noise floor "
                       f"{checks['noise_floor_rel_err_sum']:.3f}) and the inverse direction beats the mean "
                       "predictor and chance")}


def figure(model: NestedVAE, sim, std: Standardiser, path, material: int = 0, seed: int = 3, device="cpu"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    temps = [650.0, 725.0, 800.0, 860.0] if sim.classes[material] != "fecr_fm" else [650.0, 700.0, 760.0, 810.0]
    doses = [3.0, 10.0, 20.0, 28.0] if sim.classes[material] != "fecr_fm" else [30.0, 60.0, 90.0, 115.0]
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
                         beta=args.beta, gamma=args.gamma, code=args.code, mask_weight=args.mask_weight,
                         seed=args.seed, device=args.device)
    rep = evaluate(model, sim, std, per_cond=args.per_cond, seed=args.seed + 11, device=args.device, train=data)
    rep["config"] = {k: v for k, v in vars(args).items() if k != "func"}
    steps = args.epochs * -(-args.n_train // args.batch)
    rep["optimiser_steps"] = steps
    if rep["verdict"] == "FAIL" and ("no voids" in rep["reason"] or "near-constant" in rep["reason"]):
        rep["reason"] += (f"; the model took {steps} optimiser steps ({args.n_train} images x {args.epochs} epochs, "
                          f"batch {args.batch}), likely too few to learn beyond the mean image (400 images x 30 "
                          "epochs at batch 16 passed in testing)")
    rep["metric"] = ("per held-out condition: simulator vs generated micrographs measured identically from the "
                     "void mask (regions >= 4 px, touching projections split, equivalent-circle diameters); relative "
                     "error of means (1 where no voids were measured); Wasserstein-1 distance (nm) of pooled void "
                     "diameters; '_repeat' = a second independent simulator draw (noise floor); '_mean_image' = the "
                     "pixelwise mean training micrograph and mask; '_condition_blind' = the training average of each "
                     "statistic")
    figure(model, sim, std, out / "nested_grid.png", device=args.device)
    torch.save({"state": model.state_dict(), "x_mean": std.x_mean, "x_std": std.x_std, "t": std.t, "d": std.d,
                "classes": list(sim.classes)}, out / "model.pt")
    (out / "report.json").write_text(json.dumps(rep, indent=1, default=float))
    s = rep["summary"]
    print("nested VAE: conditions -> micrographs (median over held-out conditions; simulator repeat = noise floor)")
    for k in STATS:
        print(f"  rel. error of mean {k:15s}: generated {s['median_rel_err_' + k]:.3f}   simulator repeat "
              f"{s['median_rel_err_' + k + '_repeat']:.3f}   mean image {s['median_rel_err_' + k + '_mean_image']:.3f}"
              f"   condition-blind {s['median_rel_err_' + k + '_condition_blind']:.3f}")
    print(f"  W1 of void diameters (nm):          generated {s['median_w1_sizes_nm']:.2f}   "
          f"simulator repeat {s['median_w1_sizes_repeat_nm']:.2f}   condition-blind "
          f"{s['median_w1_sizes_condition_blind_nm']:.2f}")
    print("micrographs -> conditions:")
    print(f"  temperature MAE {s['inverse_temperature_mae_K']:.1f} K (mean predictor "
          f"{s['inverse_temperature_mae_K_mean_predictor']:.1f} K)")
    print(f"  dose MAE {s['inverse_dose_mae_dpa']:.1f} dpa (mean predictor "
          f"{s['inverse_dose_mae_dpa_mean_predictor']:.1f} dpa)")
    if "inverse_material_accuracy" in s:
        print(f"  material accuracy {s['inverse_material_accuracy']:.3f} (chance {s['inverse_material_chance']:.2f})")
    print(f"verdict: {rep['verdict']}: {rep['reason']}")
    print(f"wrote {out}/report.json, nested_grid.png, model.pt ({time.time() - t0:.0f} s)")
    return rep


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--recipe", default="swelling-steels")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (>= 128)")
    p.add_argument("--pixel", type=float, default=1.5, help="pixel size (nm)")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--code", type=int, default=32)
    p.add_argument("--mask-weight", type=float, default=5.0, help="weight of the void-mask channel's BCE")
    p.add_argument("--per-cond", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/nested")


def _cli(args) -> int:
    run(args)
    return 0


def register_cli(subparsers):
    p = subparsers.add_parser("nested", help="nested VAE: irradiation conditions <-> swelling micrographs",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_cli)
    return p

