"""Domain adaptation on real measured XAFS spectra: ``python -m train.studies.adapt_real``.

The method of :mod:`train.studies.adapt` (domain VAE translating the simulated corpus towards the measured domain,
then an inverse network aligned to the unlabelled measured spectra) with, as the measured pool, the real XAFS files
of the validation manifest (catalogs/validation/manifest.yaml) that the simulated corpus's model reads:

* every manifest XAFS file present in the download cache (or ../shared/data) is read and prepared exactly as the
  benchmark does (``simgen.exafs.background.measured_chi`` onto the corpus's k grid);
* a file enters the pool only when the model choice of :meth:`train.modalities.exafs.EXAFSAdapter.choose_model`
  sends it to the corpus's model (its absorber and edge in the corpus; nearer the corpus's first-shell |chi(R)|
  peak than the other models' -- by default ``exafs-oxides`` beside ``exafs-foils``), never by its known values;
* the pool holds the files of every split **unlabelled** (a user's pile of measurements); the labelled score uses
  the known first-shell values (users' N_nn, R_nn: split sub-shells summed) of the ``--split`` files only
  (default ``dev``); known values of other splits are never read.

Reported over ``--seeds`` seeds: MAE of N_nn and R_nn on the labelled files for the network trained on the raw
simulations, the adapted one, the mean of the labelled files (``mean_predictor`` of :func:`adapt.adapt_once`) and
the prior mean of the corpus (the benchmark's mean predictor).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

from . import adapt

TARGETS = ("N_nn", "R_nn")
KNOWN = {"N_nn": "N1", "R_nn": "R1"}


def measured_pool(spec, others: dict, split: str = "dev", manifest=None, log=print) -> dict:
    """Prepared real XAFS files the corpus's model reads.

    Parameters
    ----------
    spec : TargetSpec — the corpus's model (recipe and axis).
    others : dict name -> TargetSpec — the other models a file may belong to (the model choice).
    split : str — the split whose known values label the scored files.

    Returns
    -------
    dict with ``x_lab`` (n_lab, L), ``y_lab`` (n_lab, 2: N_nn, R_nn), ``lab_files``, ``x_pool`` (n_pool, L) of
    every split, ``pool_files`` and ``skipped`` (file -> reason).
    """
    from ..measurements import MeasurementError, read
    from ..measurements.datasets import entry_path, manifest_files
    from ..modalities import OutOfDomain, get
    from ..modalities.exafs import prepare_exafs
    adapter = get("exafs")
    specs = {"corpus": spec, **others}
    x_lab, y_lab, lab_files, x_pool, pool_files, skipped = [], [], [], [], [], {}
    for e, _ in manifest_files(None, present=False, path=manifest):
        if e.get("modality") != "exafs":
            continue
        path = entry_path(e)
        if path is None:
            skipped[e["id"]] = "not downloaded"
            continue
        try:
            m = read(path, **(e.get("read") or {}))
            name, _ = adapter.choose_model(copy.deepcopy(m), specs)
            if name != "corpus":
                skipped[e["id"]] = f"read by the {name} model"
                continue
            x = prepare_exafs(m, spec).x[0]
        except (OutOfDomain, MeasurementError) as exc:
            skipped[e["id"]] = str(getattr(exc, "why", None) or getattr(exc, "what", exc))
            continue
        x_pool.append(x)
        pool_files.append(e["id"])
        if e.get("split") == split:          # only this split's known values are read
            known = e.get("known") or {}
            y = [float(known[KNOWN[t]]["value"]) if isinstance((known.get(KNOWN[t]) or {}).get("value"),
                                                                 (int, float)) else np.nan for t in TARGETS]
            if np.isfinite(y).all():
                x_lab.append(x)
                y_lab.append(y)
                lab_files.append(e["id"])
    log(f"[adapt-real] pool: {len(pool_files)} measured files (all splits, unlabelled); labelled {split}: "
        f"{len(lab_files)}; skipped {len(skipped)}")
    return {"x_lab": np.array(x_lab, np.float32), "y_lab": np.array(y_lab), "lab_files": lab_files,
            "x_pool": np.array(x_pool, np.float32), "pool_files": pool_files, "skipped": skipped}


def simulated(store, n: int) -> dict:
    """The first ``n`` spectra of a corpus with the users' first shell (N_nn, R_nn) as labels, and the corpus's
    prior mean of both."""
    import simgen.corpus
    from ..modalities import get
    c = simgen.corpus.open(store)
    names = list(c.param_names)
    y_all = np.asarray(c.y[:], np.float64)
    der_all = get("exafs").derived(names, y_all[None], {})
    prior_mean = {t: float(np.nanmean(der_all[t])) for t in TARGETS}
    x = np.asarray(c.x[:n], np.float32)
    y = np.stack([der_all[t][0, :n] for t in TARGETS], axis=1)
    return {"x": x, "y": y, "names": list(TARGETS), "prior_mean": prior_mean, "recipe": c.recipe}


def adapt_real(store, others=("exafs-oxides",), split="dev", n_sim=4000, seeds=3, bin_=2, cfg=None,
               manifest=None, out=None, log=print) -> dict:
    """Run the adaptation on real spectra (see the module docstring); returns the per-seed scores and the
    summary (MAE mean and std over seeds per training arm and target)."""
    from simgen.recipe import load_recipe
    from ..prepare import target_spec
    t0 = time.time()
    sim = simulated(store, n_sim)
    spec = target_spec(sim["recipe"])
    pool = measured_pool(spec, {o: target_spec(load_recipe(o)) for o in others}, split, manifest, log)
    if len(pool["lab_files"]) == 0:
        # no measured files here (neither ../shared/data nor the download cache) or none the model reads: a study
        # with nothing to score says so instead of failing the job
        why = (f"no labelled '{split}' file is read by the corpus's model ({len(pool['pool_files'])} in the pool; "
               f"skipped: {len(pool['skipped'])}, e.g. " + "; ".join(f"{k}: {v}" for k, v in
                                                                   list(pool["skipped"].items())[:3]) + ")")
        log(f"[adapt-real] skipped: {why}")
        rep = {"skipped": why, "store": str(store), "split": split, "skipped_files": pool["skipped"]}
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "adapt_real.json").write_text(json.dumps(rep, indent=1, default=float))
        return rep
    n_test = len(pool["lab_files"])
    meas = {"x": adapt._bin(np.concatenate([pool["x_lab"], pool["x_pool"]]), bin_), "y": pool["y_lab"],
            "y_pool_hidden": None}
    sim_b = {"x": adapt._bin(sim["x"], bin_), "y": sim["y"]}
    p = argparse.ArgumentParser()
    adapt.add_arguments(p)
    d = p.parse_args([])
    c = {"latent": d.latent, "hidden": tuple(int(h) for h in d.hidden.split(",")), "vae_epochs": d.vae_epochs,
         "beta": d.beta, "lam": d.lam, "arch": d.arch, "residual": True, "reg_epochs": d.reg_epochs,
         "reg_hidden": tuple(int(h) for h in d.reg_hidden.split(",")), "x_norm": d.x_norm, "alpha": d.alpha,
         "draws": d.draws, "gamma": d.gamma, "mix_raw": False, "ablation": False, "noise_match": True,
         "device": "cpu"}
    c.update(cfg or {})
    runs = []
    y_true = pool["y_lab"]
    prior = np.array([sim["prior_mean"][t] for t in TARGETS])
    prior_mae = np.abs(prior[None] - y_true).mean(0)
    for k in range(seeds):
        res, _ = adapt.adapt_once(sim_b, meas, n_test=n_test, cfg=c, seed=k, log=lambda *a: None)
        runs.append(res)
        log(f"[adapt-real] seed {k}: MAE raw-sim " + ", ".join(f"{t} {v:.4g}" for t, v in
                                                              zip(TARGETS, res["raw_sim"]["mae"]))
            + "; adapted " + ", ".join(f"{t} {v:.4g}" for t, v in zip(TARGETS, res["adapted"]["mae"]))
            + f" ({time.time() - t0:.0f} s)")
    summ = {}
    for arm in [a for a in ("raw_sim", "adapted", "raw_aligned", "adapted_plain", "mean_predictor") if a in runs[0]]:
        a = np.array([r[arm]["mae"] for r in runs])
        summ[arm] = {"mae_mean": a.mean(0).tolist(), "mae_std": a.std(0).tolist()}
    summ["prior_mean"] = {"mae_mean": prior_mae.tolist(), "mae_std": [0.0, 0.0]}
    lines = [f"MAE on {n_test} labelled '{split}' files ({', '.join(sorted(set(pool['lab_files'])))}), pool "
             f"{len(pool['pool_files'])} unlabelled files, {len(sim['x'])} simulated spectra, {seeds} seeds",
             f"{'training':22s} " + " ".join(f"{t:>20s}" for t in TARGETS)]
    label = {"raw_sim": "raw simulations", "adapted": "adapted (VAE + aligned)",
             "raw_aligned": "raw sims + aligned net", "adapted_plain": "VAE-adapted + plain net",
             "mean_predictor": "mean of the labelled", "prior_mean": "prior mean (corpus)"}
    for arm, s in summ.items():
        lines.append(f"{label[arm]:22s} " + " ".join(f"{m:10.4g} +- {sd:<7.2g}" for m, sd in
                                                     zip(s["mae_mean"], s["mae_std"])))
    table = "\n".join(lines)
    log(table)
    raw, ad = np.asarray(summ["raw_sim"]["mae_mean"]), np.asarray(summ["adapted"]["mae_mean"])
    why = ", ".join(f"{t} MAE {a:.4g} adapted vs {r:.4g} raw" for t, a, r in zip(TARGETS, ad, raw))
    helps = bool(np.all(np.isfinite(ad)) and np.all(ad < raw))
    verdict = {"verdict": "PASS" if helps else "FAIL",
               "reason": f"adaptation on real spectra {'lowers' if helps else 'does not lower'} the error of every "
                         f"target ({why}; {seeds} seeds, labelled '{split}' files)"}
    rep = {**verdict, "store": str(store), "split": split, "targets": list(TARGETS),
           "labelled_files": pool["lab_files"],
           "pool_files": pool["pool_files"], "skipped": pool["skipped"], "config": {k: (list(v) if isinstance(
               v, tuple) else v) for k, v in c.items()}, "n_sim": len(sim["x"]), "bin": bin_, "seeds": seeds,
           "runs": runs, "summary": summ, "table": table}
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "adapt_real.json").write_text(json.dumps(rep, indent=1, default=float))
    return rep


def _add_arguments(p) -> None:
    p.add_argument("store", help="simulated XAFS corpus (from `simgen generate`, e.g. of exafs-foils)")
    p.add_argument("--others", default="exafs-oxides",
                   help="comma-separated recipes of the other models a measured file may belong to")
    p.add_argument("--split", default="dev", choices=["dev", "test"], help="split whose known values are scored")
    p.add_argument("--n-sim", type=int, default=4000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--bin", type=int, default=2, help="average adjacent k points")
    p.add_argument("--vae-epochs", type=int, default=None)
    p.add_argument("--reg-epochs", type=int, default=None)
    p.add_argument("--ablation", action="store_true",
                   help="also each half alone: raw sims + aligned inverse net, VAE-adapted sims + plain net")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--manifest", default=None)
    p.add_argument("--out", default=None)


def _run(a) -> int:
    import torch
    torch.set_num_threads(max(1, a.threads))
    cfg = {k: v for k, v in (("vae_epochs", a.vae_epochs), ("reg_epochs", a.reg_epochs)) if v is not None}
    cfg["ablation"] = a.ablation
    adapt_real(a.store, tuple(o for o in a.others.split(",") if o), a.split, a.n_sim, a.seeds, a.bin, cfg,
               a.manifest, a.out)
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("adapt-real", help="domain adaptation on the real XAFS spectra of the manifest "
                                                 "(unlabelled pool), scored on the labelled files of a split")
    _add_arguments(p)
    p.set_defaults(func=_run)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.studies.adapt_real", description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    return _run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
