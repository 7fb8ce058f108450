"""Closing the simulation-to-measurement gap with a domain VAE: ``simtrain adapt``.

Inputs: a large labelled simulated corpus (``--sim``: store or recipe) and a small measured set (``--measured``:
store of spectra, labels optional) -- or, for the benchmark, ``--benchmark DISTORTION``: the measured set is the same
recipe simulated with another seed and passed through an instrument distortion (:mod:`train.distortions`) that the
method is not told about.

Method (trVAE-like, Lotfollahi et al., Bioinformatics 36, i610 (2020); UNIT, Liu et al., NeurIPS 2017):

0. instrument match (:func:`match_instrument`, on by default, ``--no-calibrate`` skips it): the axis offset and the
   extra resolution of the measured instrument are fitted from the unlabelled spectra -- the derivatives of the
   mean measured and mean simulated spectra, the latter blurred and moved over a grid -- the measured spectra are
   moved back onto the simulated axis and the simulations blurred to the measured resolution.  Band positions are
   known physics, so the offset is identifiable here even though a latent-distribution match cannot see it (left
   to the networks, it mixes with the composition-dependent band shifts and the instrument background);
1. a :class:`train.models.vae.DomainVAE` -- encoder and decoder both receive the domain (0 = simulated, 1 =
   measured) -- is trained on simulated spectra and the *unlabelled* measured spectra with
   ``MSE + beta KL + lambda MMD(z_sim, z_meas)``; the MMD term aligns the two latent distributions so the code holds
   what the domains share (the physics) and the decoder's domain input carries the instrument;
2. every simulated spectrum is translated: ``x_adapt = x_sim + D(z, measured) - D(z, simulated)`` with
   ``z = E(x_sim, simulated)`` (the residual form keeps detail the decoder misses; the decoder's own errors cancel in
   the difference) and keeps its simulated labels; white noise of the per-channel std the measured set has beyond
   the simulated one (:func:`residual_noise`, from the reconstruction residuals of both domains) is added, since a
   deterministic map cannot add noise;
3. the inverse network trained on the adapted corpus -- once step 0 has put both domains on one axis, the
   translated copies together with the calibrated simulations (``--mix-raw``; the translation does not keep band
   areas exactly, and a label shared by a spectrum and its translation tells the network what to ignore; before
   calibration the two may differ in band positions the labels depend on, so the default mixes only after it) --
   also sees the unlabelled measured spectra: an MLP whose penultimate features are aligned between simulated and
   measured inputs (``gamma (MMD + CORAL)``, :class:`AlignedRegressor`; inputs standardised on the measured set).  The translation moves the inputs, the
   alignment makes the features blind to what the translation left unmatched;
4. the references: a plain MLP trained on raw simulations (tested on the uncalibrated measured spectra) and -- the
   bound the gap is measured against -- on the measured pool with its labels (only where labels exist: in the
   benchmark, or when the measured store has them); all are scored on the labelled measured test rows.
   ``--ablation`` adds each half alone (calibrated simulations + aligned inverse net; adapted corpus + plain MLP).

Reported (on the measured test set): per-target MAE and the mean of MAE / (target std) over targets ("nMAE") for
raw-sim, adapted and measured-only training, the error cut ``1 - adapted / raw`` and the gap closed
``(raw - adapted) / (raw - measured_only)``.  ``--seeds`` repeats the whole run to show the spread.

Limits, stated: what unlabelled data cannot identify stays open -- a pure axis offset of spectra whose parameter
prior is translation-invariant looks, in distribution, like no offset at all; so does a change of intensity scale
that the label prior's amplitude range can absorb.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from .. import core
from ..distortions import DISTORTIONS, describe, distort
from ..models.vae import DomainVAE
from .augment import Regressor, load_spectra, mae, parse_set


def fit_domain_vae(xs, xt, *, latent=32, hidden=(512, 256), epochs=60, batch=128, lr=1e-3, beta=0.5, lam=10.0,
                   arch="mlp", seed=0, log=None, ys=None, alpha=0.0, device="cpu"):
    """Train the domain VAE on standardised simulated ``xs`` and measured ``xt`` (n, L) arrays
    (:func:`train.core.domain_vae`: reconstruction + ``beta`` KL + ``lam`` MMD of the latent means, both warmed up
    over the first 30 % of the steps; one-cycle learning rate; every step draws ``batch`` rows of each domain).
    With simulated labels ``ys`` (standardised, NaN allowed) and ``alpha`` > 0 a linear head reads the labels from
    the simulated codes, so the aligned latent carries the labels in the same way in both domains."""
    torch.manual_seed(seed)
    data = {"src": {"x": torch.as_tensor(xs, dtype=torch.float32)},
            "tgt": {"x": torch.as_tensor(xt, dtype=torch.float32)}}
    model = DomainVAE(data["src"]["x"].shape[1], latent=latent, hidden=hidden, arch=arch)
    head = None
    if ys is not None and alpha > 0:
        data["src"]["y"] = torch.as_tensor(ys, dtype=torch.float32)
        head = torch.nn.Linear(latent, data["src"]["y"].shape[1])
    core.train(model, data, core.domain_vae(beta, lam, alpha, head, warmup=0.3), epochs=epochs, batch=batch, lr=lr,
               schedule="onecycle", draw=True, seed=seed, device=device,
               extra_params=head.parameters() if head is not None else (),
               log=(lambda m: log("    domain VAE" + m[1:])) if log else None)
    return model.cpu()


def translate(model, xs, residual=True, batch=1024, draws=1, seed=0):
    """Translate simulated spectra to the measured domain: the posterior mean code, plus ``draws - 1`` copies
    from codes drawn from q(z|x) (more varied measured-like versions of each simulated spectrum)."""
    out = []
    torch.manual_seed(seed)
    with torch.no_grad():
        for k in range(draws):
            for s in range(0, len(xs), batch):
                x = torch.as_tensor(xs[s:s + batch], dtype=torch.float32)
                if k == 0:
                    out.append(model.translate(x, 0, 1, residual=residual).numpy())
                    continue
                mu, logvar = model.encode(x, 0)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                o = model.decode(z, 1)
                out.append((x + o - model.decode(z, 0) if residual else o).numpy())
    return np.concatenate(out)


def residual_noise(model, xs, xt, batch=1024):
    """Per-channel std of the noise the measured domain has beyond the simulated one: the domain VAE's
    reconstruction residuals ``x - D(E(x, d), d)`` of each domain hold its noise (plus what the decoder misses,
    common to both); ``sqrt(max(0, var_meas - var_sim))`` per channel is what a deterministic translation cannot
    add.  Returns ``(L,)`` (zeros where the measured spectra are not noisier)."""
    def resid(x, d):
        out = []
        with torch.no_grad():
            for s in range(0, len(x), batch):
                xb = torch.as_tensor(x[s:s + batch], dtype=torch.float32)
                mu, _ = model.encode(xb, d)
                out.append((xb - model.decode(mu, d)).numpy())
        return np.concatenate(out)
    rs, rt = resid(xs, 0), resid(xt, 1)
    return np.sqrt(np.clip(rt.var(0) - rs.var(0), 0.0, None))


class AlignedRegressor(Regressor):
    """Inverse MLP trained on labelled (adapted) simulations that also sees the *unlabelled* measured spectra:
    ``masked MSE(source labels) + gamma * [MMD + CORAL](features_source, features_measured)`` on its penultimate
    features (deep domain alignment: Long et al., ICML 2015; Sun & Saenko, ECCV 2016 workshops;
    :func:`train.core.aligned`).  Inputs are standardised with one scalar mean/std computed on the measured set.
    This acts on what the domain VAE's translation leaves unmatched; the two are complementary (translation moves
    inputs, alignment makes the features blind to what is left)."""

    def __init__(self, hidden=(128, 64), epochs=150, lr=1e-3, batch=128, seed=0, weight_decay=1e-5, gamma=1.0,
                 device="cpu"):
        super().__init__(hidden=tuple(hidden), per_target=False, epochs=epochs, lr=lr, batch=batch,
                         weight_decay=weight_decay, seed=seed, x_norm="global", activation="gelu", device=device)
        self.gamma = gamma

    def fit(self, xs, ys, xt):
        xs, ys, xt = (np.asarray(a, np.float32) for a in (xs, ys, xt))
        self.standardise(xt, ys)
        data = {"src": {"x": torch.as_tensor((xs - self.xm) / self.xs),
                        "y": torch.as_tensor((ys - self.ym) / self.ys)},
                "tgt": {"x": torch.as_tensor((xt - self.xm) / self.xs)}}
        self.build(xs.shape[1], ys.shape[1])
        core.train(self.model, data, core.aligned(self.gamma, warmup=0.2), epochs=self.epochs, batch=self.batch,
                   lr=self.lr, weight_decay=self.weight_decay, schedule="cosine-step", draw=True, seed=self.seed,
                   device=self.device)
        return self


def shift_channels(x, lag):
    """Move spectra ``x`` (n, L) by ``-lag`` channels (linear interpolation, edge values held): undoes an axis
    offset of ``+lag`` channels.  Returns float32 (n, L)."""
    x = np.asarray(x, dtype=np.float64)
    if lag == 0:
        return x.astype(np.float32)
    u = np.arange(x.shape[1], dtype=float)
    return np.stack([np.interp(u + lag, u, r) for r in x]).astype(np.float32)


def broaden_channels(x, sigma):
    """Gaussian smoothing of spectra ``x`` (n, L) along the axis, standard deviation ``sigma`` channels (edges
    held).  Returns float32 (n, L)."""
    from scipy.ndimage import gaussian_filter1d
    x = np.asarray(x, dtype=np.float64)
    return (gaussian_filter1d(x, sigma, axis=1, mode="nearest") if sigma > 0 else x).astype(np.float32)


def match_instrument(xs, xt, *, max_shift=0.05, max_sigma=0.015, shift_step=0.1, sigma_step=0.25, window=7,
                     max_misfit=0.1):
    """Axis calibration of a measured set against the simulations: the axis offset and the extra Gaussian
    resolution of the measured instrument, from the unlabelled spectra.

    The first derivatives (Savitzky-Golay, ``window`` channels, quadratic) of the per-channel mean spectra are
    compared -- a derivative is blind to offsets and nearly blind to smooth backgrounds, and the mean of many
    mixtures carries the bands at their known positions, so unlike a translation-invariant prior the offset is
    identifiable.  The simulated mean derivative, blurred by ``sigma`` and moved by ``lag``, is least-squares scaled
    onto the measured one over a grid (``lag`` within ``+-max_shift`` x L in ``shift_step`` channels, ``sigma`` in
    [0, ``max_sigma`` x L] in ``sigma_step`` channels, the fit over the channels no lag moves past the edges);
    the best pair wins.  ``misfit`` is its residual sum of squares over the measured derivative's.

    Parameters
    ----------
    xs, xt : (n_s, L), (n_t, L) arrays
        Simulated and measured spectra on the same channels.

    Returns
    -------
    dict with ``lag`` (channels; measured = simulated moved by ``+lag``), ``sigma`` (channels: blur the simulations
    by it to match the measured resolution), ``misfit``, and ``apply`` (False when the spectra are too short for
    the fit, or the best misfit exceeds ``max_misfit``: no structure at known positions to calibrate on).
    """
    from scipy.signal import savgol_filter
    L = int(np.shape(xs)[1])
    out = {"lag": 0.0, "sigma": 0.0, "misfit": float("nan"), "apply": False}
    m = int(np.ceil(max_shift * L)) + 2
    if L < max(4 * window, 2 * m + 2 * window):
        return out
    ms = np.asarray(xs, np.float64).mean(0)
    dt = savgol_filter(np.asarray(xt, np.float64).mean(0), window, 2, deriv=1)[m:-m]
    u = np.arange(L, dtype=float)
    lags = np.arange(-max_shift * L, max_shift * L + shift_step / 2, shift_step)
    best = (np.inf, 0.0, 0.0)
    for sig in np.arange(0.0, max_sigma * L + sigma_step / 2, sigma_step):
        ds = savgol_filter(broaden_channels(ms[None], sig)[0].astype(np.float64), window, 2, deriv=1)
        for lag in lags:
            a = np.interp(u - lag, u, ds)[m:-m]
            aa = a @ a
            if aa <= 0:
                continue
            e = float(np.sum((dt - (a @ dt) / aa * a) ** 2) / max(dt @ dt, 1e-300))
            if e < best[0]:
                best = (e, float(lag), float(sig))
    out.update(misfit=best[0], lag=best[1], sigma=best[2], apply=bool(best[0] <= max_misfit))
    return out


def nmae(y, pred, scale):
    return float(np.nanmean(mae(y, pred) / scale))


def rmse(y, pred) -> np.ndarray:
    """Per-target root-mean-square error ignoring NaN targets."""
    return np.sqrt(np.nanmean((np.asarray(pred) - np.asarray(y)) ** 2, axis=0))


def _score(y, p, scale) -> dict:
    return {"mae": mae(y, p).tolist(), "nmae": nmae(y, p, scale), "rmse": rmse(y, p).tolist()}


def adapt_once(sim: dict, meas: dict, *, n_test: int, cfg: dict, seed: int, log=print) -> dict:
    """One run; ``sim``/``meas`` hold x, y (meas y may be None).  Measured rows: [:n_test] test, rest the pool."""
    xs, ys = sim["x"], sim["y"]
    xt_test, yt_test = meas["x"][:n_test], meas["y"][:n_test]
    xt_pool = meas["x"][n_test:]
    yt_pool = None if meas.get("y_pool_hidden") is None else meas["y_pool_hidden"]
    x_oracle = meas.get("x_oracle")
    raw_xs, raw_test = xs, xt_test  # the raw-simulation reference sees neither calibration nor adaptation
    cal = {"apply": False}
    if cfg.get("calibrate", True):  # axis offset and resolution of the measured instrument, from unlabelled spectra
        cal = match_instrument(xs, xt_pool)
        log(f"  instrument match: lag {cal['lag']:+.2f} channels, extra blur sigma {cal['sigma']:.2f} channels, "
            f"misfit {cal['misfit']:.3g} ({'applied' if cal['apply'] else 'not applied'})")
        if cal["apply"]:
            xt_test, xt_pool = shift_channels(xt_test, cal["lag"]), shift_channels(xt_pool, cal["lag"])
            if x_oracle is not None:  # measured-domain spectra: the same axis correction
                x_oracle = shift_channels(x_oracle, cal["lag"])
            xs = broaden_channels(xs, cal["sigma"])
    # one scalar standardisation from the simulated corpus: keeps relative shapes and the measured offsets visible
    m, s = float(xs.mean()), float(xs.std() + 1e-12)
    std = lambda a: (a - m) / s
    t0 = time.time()
    dev = cfg.get("device", "cpu")
    dv = fit_domain_vae(std(xs), std(xt_pool), latent=cfg["latent"], hidden=cfg["hidden"], epochs=cfg["vae_epochs"],
                        beta=cfg["beta"], lam=cfg["lam"], arch=cfg["arch"], seed=seed, log=log, device=dev,
                        ys=(ys - np.nanmean(ys, 0)) / (np.nanstd(ys, 0) + 1e-12), alpha=cfg.get("alpha", 0.0))
    draws = int(cfg.get("draws", 1))
    xa = translate(dv, std(xs), residual=cfg["residual"], draws=draws, seed=seed)
    if cfg.get("noise_match", True):  # the measured domain's extra noise, which a deterministic map cannot add
        extra = residual_noise(dv, std(xs), std(xt_pool))
        xa = xa + extra[None] * np.random.default_rng(seed + 7).standard_normal(xa.shape).astype(xa.dtype)
        log(f"  extra measured noise (std, standardised units): median {np.median(extra):.3g}")
    xa = xa * s + m
    log(f"  domain VAE trained and corpus translated in {time.time() - t0:.0f} s")
    reg = lambda: Regressor(hidden=cfg["reg_hidden"], per_target=False, epochs=cfg["reg_epochs"], lr=1e-3,
                            batch=128, seed=seed, weight_decay=1e-5,
                            x_norm=cfg.get("x_norm", "global"), device=dev)
    scale = np.nanstd(yt_test, 0) + 1e-12
    res = {}
    gamma = float(cfg.get("gamma", 0.0))
    ya = np.concatenate([ys] * draws)
    mix = cfg.get("mix_raw")  # None: auto -- only once the instrument match has put both domains on one axis
    if mix is None:
        mix = bool(cal["apply"])
    res["mixed_raw"] = bool(mix)
    if mix:  # the calibrated simulations ride along with their translated copies
        xa_tr, ya_tr = np.concatenate([xa, xs]), np.concatenate([ya, ys])
    else:
        xa_tr, ya_tr = xa, ya
    arms = {"raw_sim": (raw_xs, ys, False), "adapted": (xa_tr, ya_tr, gamma > 0)}
    if cfg.get("ablation"):  # what each half does alone: alignment of the inverse net without the VAE, and back
        arms["raw_aligned"] = (xs, ys, True)
        arms["adapted_plain"] = (xa_tr, ya_tr, False)
    for name, (xtr, ytr, aligned) in arms.items():
        if aligned:
            r = AlignedRegressor(hidden=cfg["reg_hidden"], epochs=cfg["reg_epochs"], seed=seed,
                                 gamma=max(gamma, 1e-9), device=dev).fit(xtr, ytr, xt_pool)
        else:
            r = reg().fit(xtr, ytr)
        p = r.predict(raw_test if name == "raw_sim" else xt_test)
        res[name] = _score(yt_test, p, scale)
    res["instrument_match"] = {k: (bool(v) if k == "apply" else float(v)) for k, v in cal.items()}
    if x_oracle is not None:  # benchmark only: the simulated corpus through the true, hidden distortion
        r = reg().fit(x_oracle, ys)
        p = r.predict(xt_test)
        res["oracle"] = _score(yt_test, p, scale)
    if yt_pool is not None:
        r = reg().fit(xt_pool, yt_pool)
        p = r.predict(xt_test)
        res["measured_only"] = _score(yt_test, p, scale)
    # the mean predictor: every test spectrum gets the test set's mean concentration (its RMSE is the labels' std)
    res["mean_predictor"] = _score(yt_test, np.broadcast_to(np.nanmean(yt_test, 0), yt_test.shape), scale)
    raw, ad = res["raw_sim"]["nmae"], res["adapted"]["nmae"]
    res["error_cut"] = 1.0 - ad / raw
    if "measured_only" in res:
        mo = res["measured_only"]["nmae"]
        res["gap_closed"] = (raw - ad) / (raw - mo) if raw > mo else float("nan")
    if "oracle" in res:
        orc = res["oracle"]["nmae"]
        res["oracle_gap"] = 1.0 - orc / raw
        res["gap_closed_oracle"] = (raw - ad) / (raw - orc) if raw - orc > 0.02 * raw else float("nan")
    return res, xa[:len(xs)]


CUT_MIN = 0.30  # acceptance: the adapted corpus cuts the raw-simulation error by at least this fraction


def verdict(summ: dict) -> dict:
    """PASS when the mean error cut ``1 - adapted/raw`` (nMAE on the labelled measured test set) reaches
    ``CUT_MIN``; FAIL with the reason otherwise (a non-finite error included), naming the oracle bound when the
    benchmark's hidden distortion allows less."""
    cut = summ["error_cut"]["mean"]
    vals = [summ[k]["nmae_mean"] for k in ("raw_sim", "adapted")]
    if not (np.isfinite(cut) and all(np.isfinite(vals))):
        return {"verdict": "FAIL", "reason": f"non-finite error (raw {vals[0]}, adapted {vals[1]})"}
    txt = (f"error cut 1 - adapted/raw = {cut:.3f} (nMAE {vals[1]:.4f} vs {vals[0]:.4f} for raw simulations; "
           f"needs >= {CUT_MIN:.2f})")
    if cut >= CUT_MIN:
        return {"verdict": "PASS", "reason": txt}
    bound = summ.get("oracle_gap", {}).get("mean")
    if bound is not None and bound < CUT_MIN:
        txt += f"; the oracle bound for this distortion is {bound:.3f}, below the requirement"
    return {"verdict": "FAIL", "reason": txt}


RMSE_RATIO_MAX = 0.5  # per target: RMSE of the adapted network at most this fraction of the mean predictor's


def rmse_vs_mean(runs: list[dict], names: list[str]) -> dict:
    """Per target, RMSE(adapted) / RMSE(mean predictor) over the seeds (mean, std, max); ``pass`` when every
    target's worst seed stays at or below ``RMSE_RATIO_MAX``, with the reason naming the targets that do not."""
    r = np.array([np.asarray(x["adapted"]["rmse"]) / np.maximum(np.asarray(x["mean_predictor"]["rmse"]), 1e-30)
                  for x in runs])
    per = {n: {"mean": float(r[:, j].mean()), "std": float(r[:, j].std()), "max": float(r[:, j].max())}
           for j, n in enumerate(names)}
    bad = [n for n in names if not (per[n]["max"] <= RMSE_RATIO_MAX)]
    ok = not bad
    why = (f"every target's RMSE is at most {RMSE_RATIO_MAX:g} x the mean predictor's on every seed" if ok else
           f"above {RMSE_RATIO_MAX:g} x the mean predictor's RMSE on some seed: " + ", ".join(
               f"{n} ({per[n]['max']:.2f})" for n in bad))
    return {"per_target": per, "max_ratio": RMSE_RATIO_MAX, "pass": ok, "reason": why, "seeds": len(runs)}


def _figure(xs, xa, xt, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.4))
    for i in range(3):
        ax[0].plot(xs[i] + i * 2.5, "C0", lw=0.8, label="simulated" if i == 0 else None)
        ax[0].plot(xa[i] + i * 2.5, "C3", lw=0.8, label="adapted" if i == 0 else None)
    ax[0].legend(fontsize=7)
    ax[0].set_title("simulated spectra and their adapted versions (same labels)")
    for arr, c, lab in ((xs, "C0", "simulated"), (xa, "C3", "adapted"), (xt, "k", "measured")):
        mu, sd = arr.mean(0), arr.std(0)
        ax[1].plot(mu, color=c, label=lab, lw=1)
        ax[1].fill_between(np.arange(len(mu)), mu - sd, mu + sd, color=c, alpha=0.15)
    ax[1].legend(fontsize=7)
    ax[1].set_title("per-channel mean +- std")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bin(x, k):
    if k <= 1:
        return x
    L = x.shape[1] // k * k
    return x[:, :L].reshape(len(x), -1, k).mean(-1)


def run(args) -> dict:
    t0 = time.time()
    torch.set_num_threads(max(1, int(args.threads)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.draws < 1:
        raise SystemExit(f"simtrain adapt: --draws is {args.draws}; expected an integer >= 1 (translated copies "
                         "per simulated spectrum)")
    cfg = {"latent": args.latent, "hidden": tuple(int(h) for h in args.hidden.split(",")),
           "vae_epochs": args.vae_epochs, "beta": args.beta, "lam": args.lam, "arch": args.arch,
           "residual": not args.no_residual, "reg_epochs": args.reg_epochs,
           "reg_hidden": tuple(int(h) for h in args.reg_hidden.split(",")), "x_norm": args.x_norm,
           "alpha": args.alpha, "draws": args.draws, "gamma": args.gamma, "mix_raw": args.mix_raw, "calibrate": args.calibrate,
           "ablation": args.ablation, "noise_match": not args.no_noise_match, "device": args.device}
    over = parse_set(args.set)
    sim = load_spectra(args.sim, args.n_sim, overrides=over)
    names = sim["names"]
    n_meas = args.n_test + args.n_measured
    if args.benchmark:
        src = args.measured or args.sim
        clean = load_spectra(src, n_meas, seed=args.measured_seed, overrides=over)
        rng = np.random.default_rng(args.measured_seed)
        meas = {"x": distort(clean["x"], args.benchmark, rng), "y": clean["y"][:args.n_test],
                "y_pool_hidden": clean["y"][args.n_test:],
                # the reachable bound: the labelled simulations themselves through the hidden distortion
                "x_oracle": distort(sim["x"], args.benchmark, np.random.default_rng(args.measured_seed + 1))}
        what = f"benchmark distortion '{args.benchmark}' ({describe(args.benchmark)})"
    else:
        if not args.measured:
            raise SystemExit("simtrain adapt: give --measured STORE or --benchmark DISTORTION")
        is_store = Path(args.measured).is_dir()
        # a recipe is simulated with the measured seed: never the rows of the simulated corpus
        m = load_spectra(args.measured, n_meas, seed=None if is_store else args.measured_seed,
                         overrides=parse_set(args.measured_set) or None)
        if not np.isfinite(m["y"][:args.n_test]).any():
            raise SystemExit(f"--measured {args.measured}: the first {args.n_test} rows (test) carry no labels")
        meas = {"x": m["x"], "y": m["y"][:args.n_test],
                "y_pool_hidden": m["y"][args.n_test:] if np.isfinite(m["y"][args.n_test:]).any() else None}
        what = f"measured set {args.measured}"
    sim["x"], meas["x"] = _bin(sim["x"], args.bin), _bin(meas["x"], args.bin)
    if meas.get("x_oracle") is not None:
        meas["x_oracle"] = _bin(meas["x_oracle"], args.bin)
    print(f"adapt: {len(sim['x'])} simulated spectra ({args.sim}), {args.n_measured} unlabelled measured + "
          f"{args.n_test} labelled test, {sim['x'].shape[1]} channels; {what}", flush=True)
    runs = []
    for k in range(args.seeds):
        res, xa = adapt_once(sim, meas, n_test=args.n_test, cfg=cfg, seed=args.seed + k,
                             log=(lambda *a: print(*a, flush=True)) if args.verbose else (lambda *a: None))
        runs.append(res)
        line = (f"  seed {args.seed + k}: nMAE raw-sim {res['raw_sim']['nmae']:.4f}  adapted "
                f"{res['adapted']['nmae']:.4f}")
        if "measured_only" in res:
            line += f"  measured-only {res['measured_only']['nmae']:.4f}  gap closed {res['gap_closed']:.2f}"
        im = res["instrument_match"]
        if im["apply"]:
            line += f"  [axis lag {im['lag']:+.1f} ch, blur {im['sigma']:.2f} ch]"
        print(line + f"  error cut {res['error_cut']:.2f}  ({time.time() - t0:.0f} s)", flush=True)
        if k == 0:
            _figure(sim["x"][:2000], xa[:2000], meas["x"][args.n_test:], out / "adapt.png")
    summ = {}
    for key in ("raw_sim", "adapted", "measured_only", "oracle", "raw_aligned", "adapted_plain", "mean_predictor"):
        if key in runs[0]:
            a = np.array([r[key]["mae"] for r in runs])
            b = np.array([r[key]["nmae"] for r in runs])
            c = np.array([r[key]["rmse"] for r in runs])
            summ[key] = {"mae_mean": a.mean(0).tolist(), "mae_std": a.std(0).tolist(), "nmae_mean": float(b.mean()),
                         "nmae_std": float(b.std()), "rmse_mean": c.mean(0).tolist(), "rmse_std": c.std(0).tolist()}
    for key in ("error_cut", "gap_closed", "oracle_gap", "gap_closed_oracle"):
        if key in runs[0]:
            a = np.array([r[key] for r in runs])
            summ[key] = {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min())}
    print(f"\nresult on the measured test set ({args.n_test} spectra), mean +- std over {args.seeds} seed(s):")
    print(f"  {'training':14s} " + " ".join(f"{n:>16s}" for n in names) + f" {'nMAE':>16s}")
    for key, s in summ.items():
        if key in ("error_cut", "gap_closed", "oracle_gap", "gap_closed_oracle"):
            continue
        print(f"  {key:14s} " + " ".join(f"{m:9.4g}+-{d:<6.2g}" for m, d in zip(s["mae_mean"], s["mae_std"]))
              + f" {s['nmae_mean']:9.4f}+-{s['nmae_std']:<6.3f}")
    print(f"  error cut (1 - adapted/raw): {summ['error_cut']['mean']:.3f} +- {summ['error_cut']['std']:.3f} "
          f"(min {summ['error_cut']['min']:.3f})  [acceptance: >= 0.30]")
    if "gap_closed" in summ:
        print(f"  gap closed (raw-adapted)/(raw-measured_only): {summ['gap_closed']['mean']:.3f} +- "
              f"{summ['gap_closed']['std']:.3f}")
    if "oracle_gap" in summ:
        print(f"  oracle (sims through the true distortion) cuts the raw error by {summ['oracle_gap']['mean']:.3f}; "
              f"adapted closes {summ['gap_closed_oracle']['mean']:.3f} of that gap")
    rvm = rmse_vs_mean(runs, names)
    print(f"\nRMSE per target (target units), mean +- std over {args.seeds} seed(s); ratio = adapted / mean "
          f"predictor (needs <= {RMSE_RATIO_MAX:g} on every seed):")
    print(f"  {'target':8s} {'adapted':>16s} {'raw_sim':>16s} {'mean predictor':>16s} {'ratio':>14s}")
    for j, n in enumerate(names):
        cells = [f"{summ[k]['rmse_mean'][j]:9.4g}+-{summ[k]['rmse_std'][j]:<6.2g}"
                 for k in ("adapted", "raw_sim", "mean_predictor")]
        r = rvm["per_target"][n]
        print(f"  {n:8s} " + " ".join(cells) + f" {r['mean']:7.3f}+-{r['std']:<5.2g}"
              + ("" if r["max"] <= RMSE_RATIO_MAX else "  above"))
    print(f"  {rvm['reason']}")
    rep = {"config": {k: v for k, v in vars(args).items() if k != "func"}, "targets": names, "summary": summ,
           "runs": runs, "what": what, "rmse_vs_mean": rvm, **verdict(summ)}
    print(f"verdict: {rep['verdict']}: {rep['reason']}")
    (out / "adapt_report.json").write_text(json.dumps(rep, indent=1))
    print(f"wrote {out}/adapt_report.json, adapt.png ({time.time() - t0:.0f} s)")
    return rep


def add_arguments(p):
    p.add_argument("--sim", default="peaks-demo", help="simulated corpus: store path or recipe name")
    p.add_argument("--measured", default=None, help="measured spectra: a store, or a recipe simulated with "
                   "--measured-seed and --measured-set (another instrument); benchmark: the clean source, default --sim")
    p.add_argument("--benchmark", default=None, metavar="DISTORTION",
                   help="make the measured set by a hidden distortion: " + ", ".join(DISTORTIONS)
                   + " or 'op=v,...'")
    p.add_argument("--measured-seed", type=int, default=777, help="seed of the benchmark's measured set")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override of the simulated recipe, also used for the benchmark's measured set (repeatable), "
                        "e.g. --set config.axis_max=1450 --set config.normalise=max")
    p.add_argument("--measured-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override of a --measured recipe (repeatable): another instrument simulated, e.g. "
                        "--measured-set params.resolution=12")
    p.add_argument("--n-sim", type=int, default=1500)
    p.add_argument("--n-measured", type=int, default=400, help="unlabelled measured spectra")
    p.add_argument("--n-test", type=int, default=300, help="labelled measured spectra for testing only")
    p.add_argument("--bin", type=int, default=8, help="average adjacent channels (1 = keep all)")
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--hidden", default="256,128")
    p.add_argument("--arch", default="mlp", choices=["mlp", "conv"])
    p.add_argument("--vae-epochs", type=int, default=60)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--lam", type=float, default=10.0, help="weight of the latent MMD alignment")
    p.add_argument("--alpha", type=float, default=0.0, help="weight of the label head on simulated codes")
    p.add_argument("--draws", type=int, default=3,
                   help="translated copies per simulated spectrum: the mean code, then codes drawn from q(z|x)")
    p.add_argument("--no-residual", action="store_true", help="translate as D(z, measured) alone")
    p.add_argument("--no-noise-match", action="store_true",
                   help="do not add the measured set's extra per-channel noise (from the domain VAE's "
                        "reconstruction residuals) to the translated spectra")
    p.add_argument("--reg-epochs", type=int, default=150)
    p.add_argument("--reg-hidden", default="128,64")
    p.add_argument("--x-norm", default="global", choices=["global", "channel"],
                   help="inverse-network input standardisation: one scalar (default) or per channel")
    p.add_argument("--gamma", type=float, default=6.0,
                   help="weight of the inverse net's feature alignment (MMD + CORAL) to the unlabelled measured "
                        "spectra when training on the adapted corpus (0 = plain MLP)")
    p.add_argument("--mix-raw", action=argparse.BooleanOptionalAction, default=None,
                   help="train the adapted inverse net on the translated and the untranslated simulations together, "
                        "so that it learns to ignore what the translation changes (default: when the instrument "
                        "match was applied; before it, raw and measured axes may differ in ways the labels depend on)")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                   help="calibrate the measured axis offset and resolution against the simulations from the unlabelled "
                        "spectra first (match_instrument; skipped when the mean spectra show no common structure)")
    p.add_argument("--ablation", action="store_true",
                   help="also report raw sims + aligned inverse net (no VAE) and adapted + plain inverse net")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="training device: cpu, cuda, cuda:N")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--out", default="runs/adapt")


def _cli(args) -> int:
    run(args)
    return 0


def register_cli(subparsers):
    p = subparsers.add_parser("adapt", help="domain-VAE adaptation of a simulated corpus to measured spectra",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_cli)
    return p

