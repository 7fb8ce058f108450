"""VAE/CVAE augmentation of a scarce measured set of spectra: ``simtrain augment``.

The protocol was proposed for Raman spectra of multicomponent aqueous solutions (ion concentrations from spectra,
a few thousand measured spectra); here it runs on any corpus or recipe.

Protocol (per cross-validation fold of the "experimental" set):

1. per-target regressors (one MLP per target, hidden 64-32-16, Adam lr 1e-3: the reference
   solution of that protocol)
   trained on the experimental training part;
2. a VAE (``in -> 256 -> 2 x latent``, decoder ``latent -> 256 -> out``, loss MSE + beta KL) trained on it;
3. ``ratio x n_train`` spectra generated from the prior;
4. generated spectra labelled with the step-1 regressors;
5. regressors retrained on experimental + generated and scored on the fold's test part.

CVAE variant: the decoder also receives the (standardised) targets, and spectra are generated at chosen
conditions, labelled by those conditions; strategies for choosing them: ``train`` (resample the training targets),
``kde`` (a Gaussian KDE of the training targets), ``grid`` (a regular grid over the training range, per target
quantile-spaced for > 3 targets).  The report gives per-target MAE as mean +- std over k folds for exp-only, +VAE and
+CVAE (each strategy), sweeps over latent size and generated/experimental ratio (open questions of the protocol),
and figures: examples, per-channel mean/std bands of real vs generated, nearest real neighbours of generated spectra.

The "experimental" set is a corpus store (``--data STORE``) or a recipe simulated on the fly (``--data peaks-demo``),
of which ``--n`` rows stand in for a measured set.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..core import supervised, train
from ..core import vae as vae_objective
from ..data import kfold_splits
from ..models import MLP
from ..models.vae import VAE

# --------------------------------------------------------------------------------------------- data


def load_spectra(source: str, n: int, offset: int = 0, seed: int | None = None, overrides: dict | None = None) -> dict:
    """``n`` rows (from ``offset``) of a corpus store path, or of a recipe simulated on the fly (``seed`` overrides
    the recipe seed, ``overrides`` maps dotted recipe fields to values, e.g. ``{"config.axis_max": 1450}``).
    Returns x (n, L) float32, y (n, T) float32 (NaN = not applicable), names, the axis coordinates of a 1-D axis
    (``axis``, else None), source."""
    p = Path(source)
    if p.exists() and p.is_dir():
        import simgen.corpus as corpus
        if overrides:
            raise ValueError(f"--data {source}: recipe overrides ({', '.join(overrides)}) apply to recipes, not to "
                             "a built store")
        c = corpus.open(p)
        if c.n < offset + n:
            raise ValueError(f"--data {source}: store has {c.n} rows, {offset + n} requested")
        x = np.asarray(c.x[offset:offset + n], dtype=np.float32)
        y = np.asarray(c.y[offset:offset + n], dtype=np.float32)
        ax = c.axis.coords[0] if c.axis.ndim == 1 else None
        return {"x": x.reshape(n, -1), "y": y, "names": list(c.param_names), "source": str(p), "axis": ax}
    import simgen
    from simgen.corpus import simulate_rows
    r = simgen.load_recipe(source, overrides=overrides or None)
    sim = r.build()
    params, out = simulate_rows(sim, r.seed if seed is None else int(seed), offset, offset + n)
    x = np.asarray(out["x"], dtype=np.float32).reshape(n, -1)
    return {"x": x, "y": sim.targets_array(params).astype(np.float32), "names": list(sim.param_names),
            "source": source, "axis": sim.axis.coords[0] if sim.axis.ndim == 1 else None}


def parse_set(items) -> dict:
    """``["config.axis_max=1450", "params.read_noise=0"]`` -> ``{dotted field: YAML-parsed value}``."""
    import yaml
    out = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"--set {it!r}: expected FIELD=VALUE, e.g. config.axis_max=1450")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


# --------------------------------------------------------------------------------------------- regressors


class Regressor:
    """The reference inverse network on in-memory arrays: :class:`train.models.MLP` (one 64-32-16 network per
    target by default, or one shared network), inputs standardised per channel (or by one global scalar) and
    targets per target, trained by :func:`train.core.train` on the masked (NaN-aware, optionally sample-weighted)
    MSE with a cosine learning-rate schedule."""

    def __init__(self, hidden=(64, 32, 16), per_target=True, epochs=150, lr=1e-3, batch=64, weight_decay=0.0,
                 seed=0, noise=0.0, x_norm="channel", activation="relu", device="cpu"):
        self.x_norm, self.activation, self.device = x_norm, activation, device
        self.hidden, self.per_target, self.epochs, self.lr, self.batch = hidden, per_target, epochs, lr, batch
        self.weight_decay, self.seed, self.noise = weight_decay, seed, noise

    def standardise(self, x, y):
        x = np.asarray(x, np.float32)
        if self.x_norm == "global":  # one scalar: low-variance channels do not amplify small input changes
            self.xm, self.xs = np.float32(x.mean()), np.float32(x.std() + 1e-12)
        else:
            self.xm, self.xs = x.mean(0), x.std(0) + 1e-6 * (x.std() + 1e-12)
        self.ym, self.ys = np.nanmean(y, 0), np.nanstd(y, 0) + 1e-12

    def build(self, n_in: int, n_targets: int):
        torch.manual_seed(self.seed)
        self.model = MLP((n_in,), n_targets, 0, hidden=self.hidden, per_target=self.per_target,
                         activation=self.activation)
        return self.model

    def fit(self, x, y, sample_weight=None):
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        self.standardise(x, y)
        data = {"x": torch.as_tensor((x - self.xm) / self.xs), "y": torch.as_tensor((y - self.ym) / self.ys)}
        if sample_weight is not None:
            data["w"] = torch.as_tensor(sample_weight, dtype=torch.float32)
        self.build(x.shape[1], y.shape[1])
        train(self.model, data, supervised(noise=self.noise), epochs=self.epochs, batch=self.batch, lr=self.lr,
              weight_decay=self.weight_decay, schedule="cosine", seed=self.seed, device=self.device)
        return self

    @torch.no_grad()
    def predict(self, x):
        X = torch.as_tensor((np.asarray(x, np.float32) - self.xm) / self.xs).to(self.device)
        return self.model(X)["reg"].cpu().numpy() * self.ys + self.ym


def mae(y_true, y_pred) -> np.ndarray:
    """Per-target MAE ignoring NaN targets."""
    return np.nanmean(np.abs(np.asarray(y_pred) - np.asarray(y_true)), axis=0)


# --------------------------------------------------------------------------------------------- VAEs


def fit_vae(x, cond=None, latent=128, hidden=256, epochs=300, lr=1e-3, beta=1.0, batch=64, seed=0, device="cpu"):
    """Train the MLP (C)VAE (``in -> hidden -> 2 x latent``; the decoder also gets ``cond`` when given) on
    per-channel standardised spectra ``x`` (n, L) with ``MSE + beta KL``, beta ramped over the first quarter of
    the epochs.  Returns ``(model, mean, std)`` of the standardisation."""
    torch.manual_seed(seed)
    x = np.asarray(x, np.float32)
    m, s = x.mean(0), x.std(0) + 1e-6 * (x.std() + 1e-12)
    data = {"x": torch.as_tensor((x - m) / s)}
    if cond is not None:
        data["cond"] = torch.as_tensor(np.asarray(cond, np.float32))
    model = VAE(x.shape[1], latent=latent, hidden=hidden, n_cond=0 if cond is None else data["cond"].shape[1])
    train(model, data, vae_objective(beta, warmup=0.25, per="epoch"), epochs=epochs, batch=batch, lr=lr, seed=seed,
          device=device)
    return model.cpu(), m, s


def choose_conditions(y_train: np.ndarray, n: int, strategy: str, rng: np.random.Generator) -> np.ndarray:
    """Conditions (targets) at which the CVAE generates: 'train' | 'kde' | 'grid'."""
    y = y_train[np.all(np.isfinite(y_train), axis=1)]
    T = y.shape[1]
    if strategy == "train":
        return y[rng.integers(0, len(y), n)]
    if strategy == "kde":
        from scipy.stats import gaussian_kde
        lo, hi = y.min(0), y.max(0)
        kde = gaussian_kde(y.T)
        s = kde.resample(n * 2, seed=rng).T
        s = s[np.all((s >= lo) & (s <= hi), axis=1)]  # stay in the physical/training range
        while len(s) < n:
            s = np.concatenate([s, y[rng.integers(0, len(y), n - len(s))]])
        return s[:n]
    if strategy == "grid":
        k = max(2, int(np.ceil(n ** (1.0 / T))))
        axes = [np.quantile(y[:, j], np.linspace(0.02, 0.98, k)) for j in range(T)]
        g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, T)
        return g[rng.permutation(len(g))[:n]] if len(g) >= n else g[rng.integers(0, len(g), n)]
    raise ValueError(f"CVAE strategy '{strategy}' is not one of 'train', 'kde', 'grid'")


def generate_vae(vae, m, s, n, cond=None, seed=0):
    torch.manual_seed(seed)
    c = None if cond is None else torch.as_tensor(np.asarray(cond, np.float32))
    return vae.sample(n, c).numpy() * s + m


# --------------------------------------------------------------------------------------------- protocol


def kfold(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train rows, test rows)`` of ``k`` folds over ``n`` rows (:func:`train.data.kfold_splits`, single-row
    blocks, no inner validation set)."""
    return [(sp["train"].rows, sp["test"].rows)
            for sp in kfold_splits(n, 1, k, seed=seed, inner_val=0.0, block_rows=1)]


def run_fold(x, y, tr, te, *, latent, ratio, strategies, cfg, seed, want=("exp", "vae", "cvae"), keep=None):
    """One fold: returns {method: per-target MAE}; ``keep`` (dict) receives generated spectra for figures."""
    res = {}
    reg_kw = dict(epochs=cfg["reg_epochs"], lr=1e-3, batch=cfg["batch"], seed=seed, weight_decay=cfg["wd"])
    base = Regressor(**reg_kw).fit(x[tr], y[tr])
    res["exp"] = mae(y[te], base.predict(x[te]))
    n_gen = int(round(ratio * len(tr)))
    if "vae" in want and n_gen > 0:
        vae, m, s = fit_vae(x[tr], latent=latent, epochs=cfg["vae_epochs"], beta=cfg["beta"], seed=seed)
        xg = generate_vae(vae, m, s, n_gen, seed=seed + 1)
        yg = base.predict(xg)  # step 4: label with the step-1 regressors
        r = Regressor(**reg_kw).fit(np.concatenate([x[tr], xg]), np.concatenate([y[tr], yg]))
        res["vae"] = mae(y[te], r.predict(x[te]))
        if keep is not None:
            keep["vae"] = xg
    if "cvae" in want and n_gen > 0:
        ym, ys = np.nanmean(y[tr], 0), np.nanstd(y[tr], 0) + 1e-12
        ytr = np.nan_to_num((y[tr] - ym) / ys)
        cvae, m, s = fit_vae(x[tr], cond=ytr, latent=latent, epochs=cfg["vae_epochs"], beta=cfg["beta"], seed=seed)
        for st in strategies:
            yc = choose_conditions(y[tr], n_gen, st, np.random.default_rng(seed + 2))
            xg = generate_vae(cvae, m, s, n_gen, cond=(yc - ym) / ys, seed=seed + 3)
            r = Regressor(**reg_kw).fit(np.concatenate([x[tr], xg]), np.concatenate([y[tr], yc]))
            res[f"cvae_{st}"] = mae(y[te], r.predict(x[te]))
            if keep is not None:
                keep[f"cvae_{st}"] = (xg, yc)
    return res


def summarise(per_fold: list[dict]) -> dict:
    out = {}
    for k in per_fold[0]:
        a = np.stack([f[k] for f in per_fold])
        out[k] = {"mean": a.mean(0).tolist(), "std": a.std(0, ddof=1 if len(a) > 1 else 0).tolist()}
    return out


def figures(x, xg, out: Path, axis=None, tag="vae"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    u = np.arange(x.shape[1]) if axis is None else axis
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    for i in range(4):
        ax[0].plot(u, x[i], color="C0", lw=0.8, alpha=0.8, label="real" if i == 0 else None)
        ax[0].plot(u, xg[i], color="C3", lw=0.8, alpha=0.8, label="generated" if i == 0 else None)
    ax[0].set_title("examples")
    ax[0].legend(fontsize=7)
    for arr, c, lab in ((x, "C0", "real"), (xg, "C3", "generated")):
        mu, sd = arr.mean(0), arr.std(0)
        ax[1].plot(u, mu, color=c, label=lab)
        ax[1].fill_between(u, mu - sd, mu + sd, color=c, alpha=0.25)
    ax[1].set_title("per-channel mean +- std")
    ax[1].legend(fontsize=7)
    d = ((xg[:3, None, :] - x[None]) ** 2).sum(-1)
    for i in range(3):
        j = int(np.argmin(d[i]))
        off = 1.2 * i * (np.abs(x).max() or 1)
        ax[2].plot(u, xg[i] + off, color="C3", lw=0.9, label="generated" if i == 0 else None)
        ax[2].plot(u, x[j] + off, color="k", lw=0.7, ls="--", label="nearest real" if i == 0 else None)
    ax[2].set_title("generated vs nearest real neighbour")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"augment_{tag}.png", dpi=100)
    plt.close(fig)


def verdict(per_fold: list[dict]) -> dict:
    """Does augmentation lower the error?  Per fold and method, the mean over targets of MAE(method) /
    MAE(experimental only); PASS when some method's mean ratio over folds is below 1, FAIL (with the reason)
    when none is, or when an error is not finite."""
    ratios = {}
    for k in per_fold[0]:
        if k == "exp":
            continue
        r = np.array([np.mean(np.asarray(f[k]) / np.maximum(np.asarray(f["exp"]), 1e-30)) for f in per_fold])
        ratios[k] = {"mean": float(r.mean()), "std": float(r.std(ddof=1)) if len(r) > 1 else 0.0}
    bad = [k for k, f in ((k, f) for f in per_fold for k in f) if not np.all(np.isfinite(f[k]))]
    if bad:
        return {"verdict": "FAIL", "reason": f"non-finite errors for {', '.join(sorted(set(bad)))}",
                "ratio_to_exp": ratios}
    if not ratios:
        return {"verdict": "FAIL", "reason": "no augmentation method was run (ratio 0?)", "ratio_to_exp": ratios}
    best = min(ratios, key=lambda k: ratios[k]["mean"])
    b = ratios[best]
    txt = (f"{best}: MAE / experimental-only MAE {b['mean']:.3f} +- {b['std']:.3f} over {len(per_fold)} folds "
           "(mean over targets)")
    if b["mean"] < 1.0:
        return {"verdict": "PASS", "reason": "augmentation lowers the error; best " + txt, "ratio_to_exp": ratios}
    return {"verdict": "FAIL", "reason": "no augmentation lowers the error; best " + txt, "ratio_to_exp": ratios}


def _fmt(s, names):
    return "  ".join(f"{n}={m:.4g}+-{d:.2g}" for n, m, d in zip(names, s["mean"], s["std"]))


def run(args) -> dict:
    t0 = time.time()
    torch.set_num_threads(max(1, int(args.threads)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = load_spectra(args.data, args.n, offset=args.offset, seed=args.seed_data, overrides=parse_set(args.set))
    x, y, names, axis = d["x"], d["y"], d["names"], d.get("axis")
    if args.bin > 1:
        L = x.shape[1] // args.bin * args.bin
        x = x[:, :L].reshape(len(x), -1, args.bin).mean(-1)
        axis = None if axis is None else axis[:L].reshape(-1, args.bin).mean(-1)
    cfg = {"reg_epochs": args.reg_epochs, "vae_epochs": args.vae_epochs, "beta": args.beta, "batch": args.batch,
           "wd": args.weight_decay}
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    folds = kfold(len(x), args.folds, args.seed)
    print(f"augment: {len(x)} 'experimental' spectra of {x.shape[1]} channels from {args.data}; targets "
          f"{', '.join(names)}; {args.folds} folds; latent {args.latent}, gen/exp ratio {args.ratio}", flush=True)
    per_fold, keep = [], {}
    for i, (tr, te) in enumerate(folds):
        per_fold.append(run_fold(x, y, tr, te, latent=args.latent, ratio=args.ratio, strategies=strategies,
                                 cfg=cfg, seed=args.seed + i, keep=keep if i == 0 else None))
        print(f"  fold {i + 1}/{args.folds} done ({time.time() - t0:.0f} s)", flush=True)
    main = summarise(per_fold)
    report = {"data": args.data, "n": len(x), "targets": names, "folds": args.folds, "latent": args.latent,
              "ratio": args.ratio, "main": main, "per_fold": [{k: v.tolist() for k, v in f.items()} for f in per_fold],
              "sweeps": {}, "target_std": np.nanstd(y, 0).tolist(), "set": parse_set(args.set), **verdict(per_fold)}
    print("per-target MAE, mean +- std over folds:")
    for k, s in main.items():
        print(f"  {k:12s} {_fmt(s, names)}")
    if "vae" in keep:
        figures(x[folds[0][0]], keep["vae"], out, axis=axis, tag="vae")
    for st in strategies:
        if f"cvae_{st}" in keep:
            figures(x[folds[0][0]], keep[f"cvae_{st}"][0], out, axis=axis, tag=f"cvae_{st}")
    sweep_folds = folds[:args.sweep_folds]
    for kind, values in (("latent", args.sweep_latent), ("ratio", args.sweep_ratio)):
        vals = [float(v) if kind == "ratio" else int(v) for v in values.split(",") if v.strip()]
        for v in vals:
            kw = {"latent": args.latent, "ratio": args.ratio, **{kind: v}}
            pf = [run_fold(x, y, tr, te, strategies=strategies[:1], cfg=cfg, seed=args.seed + i, **kw)
                  for i, (tr, te) in enumerate(sweep_folds)]
            report["sweeps"].setdefault(kind, {})[str(v)] = summarise(pf)
            s = report["sweeps"][kind][str(v)]
            print(f"  sweep {kind}={v}: " + " | ".join(f"{k}: {_fmt(s[k], names)}" for k in s if k != "exp"),
                  flush=True)
    report["seconds"] = time.time() - t0
    print(f"verdict: {report['verdict']}: {report['reason']}")
    (out / "augment_report.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out}/augment_report.json and figures ({time.time() - t0:.0f} s)")
    return report


def add_arguments(p):
    p.add_argument("--data", default="peaks-demo", help="corpus store or recipe standing in for the measured set")
    p.add_argument("--n", type=int, default=300, help="rows used as the 'experimental' set")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--seed-data", type=int, default=None, help="recipe seed override (recipe sources)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="recipe override (recipe sources; repeatable), e.g. --set config.axis_max=1450")
    p.add_argument("--bin", type=int, default=4, help="average adjacent channels (1 = keep all)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--ratio", type=float, default=1.0, help="generated / experimental training spectra")
    p.add_argument("--strategies", default="train,kde,grid")
    p.add_argument("--reg-epochs", type=int, default=150)
    p.add_argument("--vae-epochs", type=int, default=300)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--sweep-latent", default="8,32,128")
    p.add_argument("--sweep-ratio", default="0.5,2,4")
    p.add_argument("--sweep-folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/augment")


def _cli(args) -> int:
    run(args)
    return 0


def register_cli(subparsers):
    p = subparsers.add_parser("augment", help="VAE/CVAE augmentation of a scarce measured set",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_cli)
    return p

