"""Training: Adam (lr 1e-3 by default), early stopping, checkpoints and resume, evaluation, k-fold CV.

``fit(FitConfig(store=..., task="regress:center", model="mlp")) -> Run`` trains on the training split, stops
when the validation loss has not improved for ``patience`` epochs, keeps the best epoch's weights, evaluates on
the test split and writes the run directory (see :mod:`train.run`).  ``cross_validate(config, k)`` repeats that
over k folds and reports mean +- std of every metric (small spectroscopic sets show strong split-to-split
variance, so a spread is always reported).

Loss: mean squared error on standardised targets, NaN targets masked (not applicable to that sample), plus
``class_weight`` x cross-entropy when classifying.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from .data import (ChunkShuffleLoader, CorpusDataset, InMemoryLoader, Normalisers, SimulatedDataset, Task,
                   fit_normalisers, holdout_split, kfold_splits, open_store, parse_task)
from .core import Trainer, TrainOptions, masked_loss, supervised
from .models import available_models, get_model, is_baseline, is_inverse_model
from .run import Run, RunError, evaluation_metrics, resolve_device, versions, write_json

__all__ = ["FitConfig", "fit", "cross_validate", "masked_loss", "format_metrics", "format_cv"]

CACHE_BYTES = 512 * 2**20


@dataclass
class FitConfig:
    store: str
    task: str = "regress"
    model: str = "mlp"
    model_kw: dict = field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    lr_schedule: str = "plateau"      # plateau | cosine | none
    val: float = 0.1
    test: float = 0.1
    seed: int = 0
    x_norm: str | None = None         # channel | global | none; None: channel for mlp, global for conv nets
    log_targets: list = field(default_factory=list)  # targets learnt as log10 (positive, spanning decades)
    augment: str = "none"             # none | dihedral (images: 90 deg rotations/flips) | misfit (see augment_batch)
    y_norm: str = "global"            # global | class (targets standardised per class; tasks that also classify)
    device: str = "auto"
    threads: int | None = None         # torch intra-op threads (None: torch's default)
    num_workers: int = 0
    mix_chunks: int = 2
    cache: str = "auto"               # auto (in memory below 512 MiB) | memory | stream
    simulate: bool = False            # train on fresh simulated rows (past the store's end), validate on the store
    batches_per_epoch: int | None = None
    class_weight: float = 1.0
    max_train_rows: int | None = None  # baseline: subsample the training split (forests are slow)
    out: str | None = None
    resume: bool = False
    progress: bool = True
    verify: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FitConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


AUGMENTS = ("none", "dihedral", "misfit")
MISFIT_MAX = 0.1


def augment_batch(x: torch.Tensor, kind: str, rng: np.random.Generator) -> torch.Tensor:
    """Label-preserving augmentation of a training batch.  ``dihedral``: one of the 8 symmetries of the square
    (rotation by k * 90 deg, optional transpose) on the last two axes, for micrographs whose labels (swelling,
    number density, sizes, conditions) do not depend on the image's orientation.  ``misfit``: each sample plus up
    to MISFIT_MAX times the difference of two other samples of the batch (any input shape)."""
    if kind == "none":
        return x
    if kind == "misfit":
        # model-error augmentation: a measurement never matches the simulator exactly (the Pt nanoparticle G(r)
        # leaves Rw 0.10 against its best fit, a residual shaped like G(r) itself, at every r).  Each sample gets
        # eps * (x_j - x_k) of two other samples of the batch, eps ~ U(0, MISFIT_MAX) -- contamination shaped like
        # the data, which the labels must not follow.
        n = x.shape[0]
        j = torch.from_numpy(rng.permutation(n)).to(x.device)
        k = torch.from_numpy(rng.permutation(n)).to(x.device)
        eps = torch.from_numpy(rng.uniform(0.0, MISFIT_MAX, n).astype(np.float32)).to(x.device)
        return x + eps.view(-1, *([1] * (x.ndim - 1))) * (x[j] - x[k])
    if kind == "dihedral":
        if x.ndim < 3 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"augment 'dihedral': needs square images (batch, n, n); got a batch of shape "
                             f"{tuple(x.shape)}")
        k, tr = int(rng.integers(4)), bool(rng.integers(2))
        if tr:
            x = x.transpose(-1, -2)
        return torch.rot90(x, k, dims=(-2, -1)) if k else x
    raise ValueError(f"augment '{kind}': expected one of {', '.join(AUGMENTS)}")


def _augmenter(kind: str):
    """The batch transform of ``kind`` for :func:`train.core.supervised` (None for 'none')."""
    if kind == "none":
        return None
    return lambda x, rng: augment_batch(x, kind, rng)


def _default_x_norm(model: str, model_kw: dict) -> str:
    return "channel" if model == "mlp" and not model_kw.get("cwt") else "global"


def _default_out(cfg: FitConfig) -> Path:
    stem = Path(str(cfg.store).rstrip("/")).name.replace(".zarr", "")
    return Path("runs") / f"{stem}-{cfg.model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _loader(corpus, rows, task, norm, cfg: FitConfig, shuffle: bool, seed: int, in_shape, device=None):
    nbytes = len(rows) * int(np.prod(in_shape)) * 4
    memory = cfg.cache == "memory" or (cfg.cache == "auto" and nbytes <= CACHE_BYTES)
    ds = CorpusDataset(corpus.store, split=rows, task=task, normaliser=norm)
    if memory:
        arr = ds.read_rows(rows)
        return InMemoryLoader(arr["x"], arr["y"] if task.targets else None, arr.get("label"), task, norm,
                              cfg.batch_size, shuffle, seed, device=device)
    return ChunkShuffleLoader(ds, cfg.batch_size, shuffle=shuffle, seed=seed, num_workers=cfg.num_workers,
                              mix_chunks=cfg.mix_chunks, pin_memory=torch.cuda.is_available())


def _predict_loader(model, loader, norm: Normalisers, task: Task, device):
    model.eval()
    yt, yp, lab, probs, losses, ns = [], [], [], [], [], []
    with torch.no_grad():
        for batch in loader:
            b = _to(batch, device)
            out = model(b["x"])
            loss, _ = masked_loss(out, b)
            losses.append(float(loss))
            ns.append(len(b["x"]))
            if "reg" in out:
                lt = lp = None
                if norm.y.by_class:   # true rows back with their class, predictions with the predicted one
                    lt = batch["label"].cpu().numpy()
                    lp = out["logits"].argmax(1).cpu().numpy()
                yp.append(norm.y.inverse(out["reg"].float().cpu().numpy(), lp))
                yt.append(norm.y.inverse(batch["y"].cpu().numpy(), lt))
            if "logits" in out:
                probs.append(torch.softmax(out["logits"].float(), 1).cpu().numpy())
                lab.append(batch["label"].cpu().numpy())
    cat = lambda a: np.concatenate(a) if a else None  # noqa: E731
    loss = float(np.average(losses, weights=ns)) if ns else float("nan")
    return loss, cat(yt), cat(yp), cat(lab), cat(probs)


def _prepare_out(cfg: FitConfig) -> Path:
    out = Path(cfg.out) if cfg.out else _default_out(cfg)
    if (out / "model.pt").exists() or (out / "model.pkl").exists():
        if not cfg.resume:
            raise RunError(f"run directory '{out}' already holds a trained model; choose another --out "
                           "(or --resume to continue its training)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def fit(config: FitConfig | dict, splits: dict | None = None, log=print) -> Run:
    """Train an inverse network on a corpus store and write its run directory.

    Parameters
    ----------
    config : FitConfig or dict
        The store, task (``regress[:targets]``, ``classify`` or ``both``), model and options, training settings
        (epochs, batch size, learning rate and schedule, patience, normalisation, augmentation, seed, device,
        threads) and the output directory (see :class:`FitConfig`).
    splits : dict, optional
        Row indices ``{"train", "val", "test"}``; default a chunk-aware hold-out split from ``config.seed``.
    log : callable
        Where progress lines go (one per epoch when no progress bar is shown).

    Returns
    -------
    Run
        Weights, normalisers, axis, task, history and test metrics; everything ``predict`` needs is also in the
        run directory.

    Raises
    ------
    TaskError, StoreError
        A task naming unknown targets, or a store that is incomplete or fails its chunk CRCs (named).
    """
    cfg = config if isinstance(config, FitConfig) else FitConfig.from_dict(config)
    corpus = open_store(cfg.store, verify=True)  # complete and every chunk's CRC-32 checked before training
    task = parse_task(cfg.task, corpus)
    in_shape = tuple(corpus.x.shape[1:])
    n_cls = len(task.classes) if task.classify else 0
    if cfg.model not in available_models():
        raise KeyError(f"model '{cfg.model}': unknown; expected one of {', '.join(available_models())}")
    if not is_inverse_model(cfg.model):
        inv = [m for m in available_models() if is_inverse_model(m)]
        raise ValueError(f"model '{cfg.model}' is not a regression/classification network (a generative model?); "
                         f"fit trains one of {', '.join(inv)}")
    if cfg.augment not in AUGMENTS:
        raise ValueError(f"augment '{cfg.augment}': expected one of {', '.join(AUGMENTS)}")
    if cfg.augment == "dihedral" and (len(in_shape) != 2 or in_shape[0] != in_shape[1]):
        raise ValueError(f"augment 'dihedral': needs a corpus of square images; this one's samples have shape "
                         f"{in_shape}")
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if splits is None:
        splits = holdout_split(corpus.n, corpus.chunk_rows, val=cfg.val, test=cfg.test, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = None if is_baseline(cfg.model) else get_model(cfg.model, in_shape, len(task.targets), n_cls,
                                                          **cfg.model_kw)  # shape errors before any file
    out = _prepare_out(cfg)
    x_norm = cfg.x_norm or _default_x_norm(cfg.model, cfg.model_kw)
    run_cfg = {**cfg.to_dict(), "out": str(out), "x_norm": x_norm, "store": str(corpus.store),
               "split_sizes": {k: len(v) for k, v in splits.items()}}
    # the recipe travels with the run, so prediction/validation never needs the store again
    (out / "recipe.yaml").write_text(corpus.recipe.to_yaml())
    write_json(out / "versions.json", {**versions(), "recipe_digest": corpus.meta.get("recipe_digest"),
                                       "simulator": corpus.simulator_name,
                                       "simulator_version": corpus.meta.get("simulator_version"),
                                       "store_created": corpus.meta.get("created")})
    if (out / "normalisers.npz").exists() and cfg.resume:
        norm = Normalisers.load(out / "normalisers.npz")
    else:
        norm = fit_normalisers(corpus, splits["train"].rows, task, x_mode=x_norm,
                               log_targets=cfg.log_targets, y_mode=cfg.y_norm)
        norm.save(out / "normalisers.npz")
    eval_split = "test" if len(splits.get("test", ())) else "val"

    if is_baseline(cfg.model):
        return _fit_baseline(cfg, corpus, task, splits, norm, out, run_cfg, in_shape, eval_split, log)

    model = model.to(device)
    trainer = Trainer(model, supervised(cfg.class_weight, augment=_augmenter(cfg.augment)),
                      TrainOptions(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                   schedule=cfg.lr_schedule, patience=cfg.patience, restore_best=True,
                                   seed=cfg.seed, device=device))
    opt, sched = trainer.opt, trainer.sched

    if cfg.simulate:
        train_loader = SimulatedDataset(corpus.recipe, task, norm, cfg.batch_size, start=corpus.n,
                                        seed=corpus.meta["seed"], rows_per_block=max(cfg.batch_size * 4, 1024))
        if cfg.num_workers > 0:
            sim_ds = train_loader
            train_loader = torch.utils.data.DataLoader(sim_ds, batch_size=None, num_workers=cfg.num_workers)
            train_loader.set_epoch = sim_ds.set_epoch  # type: ignore[attr-defined]
        per_epoch = cfg.batches_per_epoch or max(1, len(splits["train"]) // cfg.batch_size)
    else:
        train_loader = _loader(corpus, splits["train"].rows, task, norm, cfg, True, cfg.seed, in_shape, device)
        per_epoch = cfg.batches_per_epoch
    val_loader = (_loader(corpus, splits["val"].rows, task, norm, cfg, False, cfg.seed, in_shape, device)
                  if len(splits.get("val", ())) else None)

    history: list[dict] = []
    start_epoch, best_val, best_epoch, bad = 0, math.inf, -1, 0
    best_state = None
    ckdir = out / "checkpoints"
    ckdir.mkdir(exist_ok=True)
    if cfg.resume and (ckdir / "last.pt").exists():
        from .run import safe_torch_load
        ck = safe_torch_load(ckdir / "last.pt", "checkpoint")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if sched is not None and ck.get("sched") is not None:
            sched.load_state_dict(ck["sched"])
        history, best_val, best_epoch, bad = ck["history"], ck["best_val"], ck["best_epoch"], ck["bad"]
        best_state = ck["best_state"]
        start_epoch = ck["epoch"] + 1
        log(f"resuming {out} at epoch {start_epoch} (best so far: epoch {best_epoch}, val loss {best_val:.4g})")

    trainer.restore(history, best_val, best_epoch, bad, best_state, epoch=start_epoch)
    trainer.steps_per_epoch = per_epoch
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs, initial=start_epoch, unit="epoch", desc=f"simtrain {cfg.model}",
                   dynamic_ncols=True)

    def train_batches(epoch, g):
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        return train_loader

    def validate():
        rec = {}
        if val_loader is not None:
            vl, yt, yp, lab, pr = _predict_loader(model, val_loader, norm, task, device)
            rec["val_loss"] = vl
            if lab is not None:
                rec["val_accuracy"] = float((pr.argmax(1) == lab).mean())
        return rec

    def on_epoch(tr, rec):
        if tr.best_epoch == rec["epoch"]:
            torch.save(tr.best_state, ckdir / "best.pt")
        torch.save({"epoch": rec["epoch"], "model": model.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict() if sched is not None else None, "history": tr.history,
                    "best_val": tr.best_val, "best_epoch": tr.best_epoch, "bad": tr.bad,
                    "best_state": tr.best_state, "config": run_cfg}, ckdir / "last.pt.tmp")
        (ckdir / "last.pt.tmp").replace(ckdir / "last.pt")
        # progress a log file or a watcher can read (one line per epoch; progress.json for heartbeats)
        (out / "progress.json").write_text(json.dumps({"epoch": rec["epoch"] + 1, "epochs": cfg.epochs,
                                                       "seconds": round(time.perf_counter() - t_fit0, 2)}))
        if bar is None:
            log(f"  epoch {rec['epoch'] + 1}/{cfg.epochs}: train loss {rec['train_loss']:.4g}"
                + (f", val loss {rec['val_loss']:.4g}" if rec.get("val_loss") is not None else "")
                + f" ({time.perf_counter() - t_fit0:.0f} s)")
        if bar is not None:
            bar.set_postfix(train=f"{rec['train_loss']:.4g}", val=f"{rec.get('val_loss', float('nan')):.4g}",
                            best=tr.best_epoch)
            bar.update(1)

    t_fit0 = time.perf_counter()
    trainer.fit(train_batches, validate=validate if val_loader is not None else None, on_epoch=on_epoch)
    if bar is not None:
        bar.close()
    history, best_epoch, best_val, stopped = trainer.history, trainer.best_epoch, trainer.best_val, trainer.stopped
    t_train, n_seen = trainer.seconds, trainer.n_seen

    ev_loader = _loader(corpus, splits[eval_split].rows, task, norm, cfg, False, cfg.seed, in_shape)
    _, yt, yp, lab, pr = _predict_loader(model, ev_loader, norm, task, device)
    metrics = evaluation_metrics(task, yt, yp, lab, pr, figures_dir=out / "figures")
    metrics.update({"split": eval_split, "n": len(splits[eval_split]), "best_epoch": best_epoch,
                    "epochs_run": len(history), "early_stopped": stopped, "best_val_loss": best_val,
                    "device": str(device), "train_seconds": t_train,
                    "train_samples_per_s": n_seen / t_train if t_train > 0 else None})
    if history:
        from .figures import learning_curves
        learning_curves(history, out / "figures" / "learning_curves.png")
    run = Run(out, run_cfg, task, corpus.axis, norm, model, in_shape, history, metrics, device)
    run.save()
    return run


def _fit_baseline(cfg, corpus, task, splits, norm, out, run_cfg, in_shape, eval_split, log) -> Run:
    from .models.baseline import BaselineModel
    ds = CorpusDataset(corpus.store, split=splits["train"].rows, task=task)
    rows = splits["train"].rows
    if cfg.max_train_rows and len(rows) > cfg.max_train_rows:
        rows = np.sort(np.random.default_rng(cfg.seed).choice(rows, cfg.max_train_rows, replace=False))
    tr = ds.read_rows(rows)
    kind = cfg.model.split("-")[1]
    t0 = time.perf_counter()
    model = BaselineModel(kind, seed=cfg.seed, **cfg.model_kw)
    model.fit(tr["x"], tr["y"] if task.targets else None, tr.get("label"),
              coord=corpus.axis.coords[0] if len(in_shape) == 1 else None, n_classes=len(task.classes))
    t_train = time.perf_counter() - t0
    run = Run(out, run_cfg, task, corpus.axis, norm, model, in_shape, [], {}, "cpu")
    ev = ds.read_rows(splits[eval_split].rows)
    pred = run.predict_arrays(ev["x"])
    metrics = evaluation_metrics(task, ev["y"] if task.targets else None, pred.get("reg"), ev.get("label"),
                                 pred.get("probs"), figures_dir=out / "figures")
    metrics.update({"split": eval_split, "n": len(splits[eval_split]), "train_seconds": t_train,
                    "train_rows": int(len(rows)), "device": "cpu"})
    run.metrics = metrics
    run.save()
    return run


# ------------------------------------------------------------------------------------------------ CV
def cross_validate(config: FitConfig | dict, k: int = 5, log=print) -> dict:
    """k-fold cross-validation: fold i is tested on block group i (an inner validation split of the rest steers
    early stopping).  Returns ``{"folds": [metrics...], "summary": mean/std of every metric}`` and writes
    ``OUT/cv.json`` with fold runs in ``OUT/fold<i>``."""
    from .metrics import aggregate_folds
    cfg = config if isinstance(config, FitConfig) else FitConfig.from_dict(config)
    corpus = open_store(cfg.store, verify=cfg.verify)
    parse_task(cfg.task, corpus)  # fail early on a bad task
    out = Path(cfg.out) if cfg.out else _default_out(cfg).with_name(_default_out(cfg).name + "-cv")
    out.mkdir(parents=True, exist_ok=True)
    folds = kfold_splits(corpus.n, corpus.chunk_rows, k, seed=cfg.seed, inner_val=cfg.val or 0.1)
    results = []
    for i, sp in enumerate(folds):
        fcfg = dataclasses.replace(cfg, out=str(out / f"fold{i}"))
        run = fit(fcfg, splits=sp, log=log)
        m = {key: run.metrics[key] for key in ("regression", "classification") if key in run.metrics}
        results.append(m)
        log(f"fold {i + 1}/{k}: {format_metrics(run.metrics, one_line=True)}")
    summary = aggregate_folds(results)
    res = {"k": k, "config": cfg.to_dict(), "folds": results, "summary": summary}
    write_json(out / "cv.json", res)
    return res


# ------------------------------------------------------------------------------------------------ text
def format_metrics(m: dict, one_line: bool = False) -> str:
    parts = []
    for t, v in m.get("regression", {}).items():
        parts.append(f"{t}: R2={v['r2']:.4f} MAE={v['mae']:.4g} RMSE={v['rmse']:.4g}")
    c = m.get("classification")
    if c:
        parts.append(f"class: accuracy={c['accuracy']:.4f} macro_F1={c['macro_f1']:.4f}")
    return ("; " if one_line else "\n").join(parts)


def format_cv(res: dict) -> str:
    s = res["summary"]
    lines = [f"{res['k']}-fold cross-validation (mean ± std over folds)"]
    for t, v in s.get("regression", {}).items():
        lines.append(f"  {t}: R2 = {v['r2']['mean']:.4f} ± {v['r2']['std']:.4f}   MAE = {v['mae']['mean']:.4g} ± "
                     f"{v['mae']['std']:.4g}   RMSE = {v['rmse']['mean']:.4g} ± {v['rmse']['std']:.4g}")
    c = s.get("classification")
    if c:
        lines.append(f"  class: accuracy = {c['accuracy']['mean']:.4f} ± {c['accuracy']['std']:.4f}   macro F1 = "
                     f"{c['macro_f1']['mean']:.4f} ± {c['macro_f1']['std']:.4f}")
    return "\n".join(lines)
