"""The one training loop of the project, and the objectives it optimises.

Every network in ``train`` -- the inverse networks of :func:`train.fit.fit`, the per-target regressors, VAEs and
CVAEs of the augmentation study, the domain VAE and feature-aligned regressor of the adaptation study and the nested
VAE of the swelling study -- is trained by :class:`Trainer`: Adam, an optional learning-rate schedule, seeded
batches, a device, early stopping on a monitored loss with the best weights kept, and a per-epoch callback
(checkpoints, progress).  What differs between them is the *objective*, a callable
``objective(model, batch, ctx) -> (loss, parts)``; the ones used by the project are built here:

* :func:`supervised` -- masked (NaN-aware, optionally sample-weighted) MSE on standardised targets plus
  ``class_weight`` x cross-entropy, with optional input noise or a label-preserving batch augmentation;
* :func:`vae` -- reconstruction MSE + ``beta`` x KL (per input value), ``beta`` ramped up over a warm-up
  fraction of training; conditional when the batch carries ``cond``;
* :func:`domain_vae` -- the VAE loss on two domains plus ``lam`` x MMD between their latent means (alignment),
  optionally ``alpha`` x a label head on the source codes;
* :func:`aligned` -- supervised loss on the source plus ``gamma`` x (MMD + CORAL) between the source and target
  features of the network (deep domain alignment);
* :func:`nested` -- the nested VAE's image reconstruction, mask BCE, KL to the conditional prior and condition
  loss.

Batches come from :func:`array_batches` (in-memory tensors, grouped as ``{"src": {...}, "tgt": {...}}`` when a
step needs rows of several sets) or from any iterable of batch dicts (the corpus loaders of :mod:`train.data`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TrainOptions", "Trainer", "Context", "train", "array_batches", "steps_per_epoch", "masked_loss",
           "supervised", "vae", "domain_vae", "aligned", "nested", "coral", "ramp", "SCHEDULES"]

SCHEDULES = ("none", "cosine", "cosine-step", "onecycle", "plateau")


@dataclass
class TrainOptions:
    """Options of :class:`Trainer`.

    Parameters
    ----------
    epochs : int
        Passes over the training data (an epoch of :func:`array_batches` with ``draw=True`` is
        ``ceil(n_max / batch)`` steps).
    lr, weight_decay : float
        Adam learning rate and L2 weight decay.
    schedule : str
        ``none``; ``cosine`` (cosine annealing over the epochs, stepped per epoch); ``cosine-step`` (over every
        optimiser step); ``onecycle`` (one-cycle with peak ``lr``, per step); ``plateau`` (halve the rate when the
        monitored loss stalls for ``max(2, patience // 3)`` epochs).
    patience : int or None
        Early stopping: stop after this many epochs without improvement of the monitored loss (validation loss when
        a validation callback is given, else the training loss).  None: run every epoch.
    restore_best : bool
        Load the best epoch's weights at the end (else keep the last ones).
    seed : int
        Seeds ``torch.manual_seed`` (initialisation happens before the trainer exists; seed that separately) and
        the batch generator ``ctx.g`` of objectives.
    device : str or torch.device
        Where batches are moved before the objective sees them.
    """

    epochs: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "none"
    patience: int | None = None
    restore_best: bool = False
    seed: int = 0
    device: str | torch.device = "cpu"


@dataclass
class Context:
    """What an objective may know about where training stands (for warm-ups and seeded augmentation)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    g: torch.Generator
    rng: np.random.Generator


def ramp(ctx: Context, fraction: float, per: str = "step") -> float:
    """Linear warm-up weight in [0, 1] reaching 1 after ``fraction`` of training, counted in optimiser steps
    (``per='step'``: ``step / (fraction * steps)``) or epochs (``per='epoch'``: ``(epoch + 1) / (fraction *
    epochs)``)."""
    if fraction <= 0:
        return 1.0
    if per == "epoch":
        return min(1.0, (ctx.epoch + 1) / max(fraction * ctx.epochs, 1e-12))
    return min(1.0, ctx.step / max(fraction * ctx.steps, 1e-12))


# ------------------------------------------------------------------------------------------------ batches
def steps_per_epoch(n: int | Iterable[int], batch: int) -> int:
    """Optimiser steps in one epoch: ``ceil(max(n) / batch)``."""
    n = max(n) if not isinstance(n, int) else n
    return max(1, math.ceil(n / batch))


def array_batches(data: dict, batch: int, *, draw: bool = False) -> Callable[[int, torch.Generator], Iterable]:
    """Batches of in-memory tensors for :meth:`Trainer.fit`.

    ``data`` maps names to tensors of equal length (one set: batches are ``{name: tensor[idx]}``), or group
    names to such mappings (several sets: batches are ``{group: {name: tensor[idx]}}``).  ``draw=False``: each
    epoch is a seeded permutation of the (single or first) set cut into batches (the last one shorter);
    ``draw=True``: every step draws ``batch`` rows with replacement from each group independently, for
    ``ceil(n_max / batch)`` steps per epoch.  Returns ``batches(epoch, g)``."""
    grouped = all(isinstance(v, dict) for v in data.values())
    groups = data if grouped else {"": data}
    lens = {k: len(next(iter(v.values()))) for k, v in groups.items()}
    n_steps = steps_per_epoch(list(lens.values()), batch)

    def take(idx_by_group):
        out = {k: {name: t[idx_by_group[k]] for name, t in groups[k].items()} for k in idx_by_group}
        return out if grouped else out[""]

    def batches(epoch: int, g: torch.Generator):
        if draw:
            for _ in range(n_steps):
                yield take({k: torch.randint(0, n, (batch,), generator=g) for k, n in lens.items()})
        else:
            first = next(iter(groups))
            perm = torch.randperm(lens[first], generator=g)
            for s in range(0, lens[first], batch):
                yield take({first: perm[s:s + batch]})

    batches.steps = n_steps if draw else math.ceil(lens[next(iter(groups))] / batch)
    return batches


def _to(batch, device):
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True) if torch.is_tensor(batch) else batch


def _batch_len(batch) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            return _batch_len(v)
        return 0
    return len(batch)


# ------------------------------------------------------------------------------------------------ the loop
class Trainer:
    """Adam on ``model`` (plus ``extra_params``) minimising ``objective`` as ``options`` say.

    ``steps_per_epoch`` is needed by the per-step schedules (``cosine-step``, ``onecycle``).  The trainer's state
    (``history``, ``best_val``, ``best_epoch``, ``bad``, ``best_state``, ``epoch``) can be restored with
    :meth:`restore` to resume; ``opt`` and ``sched`` are public for checkpointing.
    """

    def __init__(self, model: torch.nn.Module, objective: Callable, options: TrainOptions, *,
                 steps_per_epoch: int | None = None, extra_params: Iterable = ()):
        if options.schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule '{options.schedule}': expected one of {', '.join(SCHEDULES)}")
        self.model, self.objective, self.o = model, objective, options
        self.device = torch.device(options.device) if isinstance(options.device, str) else options.device
        self.params = list(model.parameters()) + list(extra_params)
        self.opt = torch.optim.Adam(self.params, lr=options.lr, weight_decay=options.weight_decay)
        self.steps_per_epoch = steps_per_epoch
        total = max(1, options.epochs * (steps_per_epoch or 1))
        s = options.schedule
        if s in ("cosine-step", "onecycle") and not steps_per_epoch:
            raise ValueError(f"lr_schedule '{s}' steps per optimiser step: give steps_per_epoch")
        self.sched = {"none": lambda: None,
                      "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, max(1, options.epochs)),
                      "cosine-step": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, total),
                      "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=options.lr,
                                                                              total_steps=total),
                      "plateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(
                          self.opt, factor=0.5, patience=max(2, (options.patience or 10) // 3))}[s]()
        self._per_step = s in ("cosine-step", "onecycle")
        self.restore()

    def restore(self, history=None, best_val: float = math.inf, best_epoch: int = -1, bad: int = 0,
                best_state=None, epoch: int = 0) -> "Trainer":
        """Set the loop's state (resuming a checkpointed run at ``epoch``)."""
        self.history = list(history or [])
        self.best_val, self.best_epoch, self.bad, self.best_state = best_val, best_epoch, bad, best_state
        self.epoch, self.stopped, self.seconds, self.n_seen = int(epoch), False, 0.0, 0
        return self

    def fit(self, batches: Callable[[int, torch.Generator], Iterable], *, validate: Callable | None = None,
            on_epoch: Callable | None = None, log: Callable | None = None) -> "Trainer":
        """Train from ``self.epoch`` to ``options.epochs``.

        ``batches(epoch, g)`` yields the epoch's batch dicts (at most ``steps_per_epoch`` are used when set);
        ``validate()`` returns a dict holding ``val_loss`` (and anything else to record); ``on_epoch(trainer,
        record)`` runs after each epoch (checkpoints, progress).  Returns the trainer (``history``,
        ``best_epoch``, ``stopped``...)."""
        o = self.o
        g = torch.Generator().manual_seed(o.seed)
        # continuing generators: a resumed run draws what an uninterrupted one would have from here on
        steps = o.epochs * (self.steps_per_epoch or getattr(batches, "steps", 1))
        step = self.epoch * (self.steps_per_epoch or getattr(batches, "steps", 0))
        for epoch in range(self.epoch, o.epochs):
            if o.patience is not None and self.bad >= o.patience:
                self.stopped = True
                break
            self.model.train()
            ctx = Context(epoch, o.epochs, step, steps, g, np.random.default_rng((o.seed, epoch, 7)))
            t0 = time.perf_counter()
            tot, n, parts_tot = 0.0, 0, {}
            for i, batch in enumerate(batches(epoch, g)):
                if self.steps_per_epoch is not None and i >= self.steps_per_epoch:
                    break
                ctx.step = step
                b = _to(batch, self.device)
                loss, parts = self.objective(self.model, b, ctx)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                if self._per_step:
                    self.sched.step()
                k = _batch_len(b)
                tot += float(loss.detach()) * k
                for name, v in parts.items():
                    parts_tot[name] = parts_tot.get(name, 0.0) + float(v.detach()) * k
                n += k
                step += 1
            dt = time.perf_counter() - t0
            self.seconds += dt
            self.n_seen += n
            rec = {"epoch": epoch, "train_loss": tot / max(n, 1), "lr": self.opt.param_groups[0]["lr"],
                   "seconds": dt, "samples_per_s": n / dt if dt > 0 else float("nan"),
                   **{f"train_{k}": v / max(n, 1) for k, v in parts_tot.items()}}
            if validate is not None:
                rec.update(validate())
            monitor = rec.get("val_loss", rec["train_loss"])
            self.history.append(rec)
            if monitor < self.best_val - 1e-6 * abs(self.best_val if math.isfinite(self.best_val) else 0):
                self.best_val, self.best_epoch, self.bad = monitor, epoch, 0
                if o.patience is not None or o.restore_best:
                    self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            else:
                self.bad += 1
            if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.sched.step(monitor)
            elif self.sched is not None and not self._per_step:
                self.sched.step()
            self.epoch = epoch + 1
            if log is not None:
                log(f"  epoch {epoch + 1}/{o.epochs}: loss={rec['train_loss']:.4g} "
                    + " ".join(f"{k[6:]}={v:.4g}" for k, v in rec.items() if k.startswith("train_") and
                               k != "train_loss") + (f" val={rec['val_loss']:.4g}" if "val_loss" in rec else ""))
            if on_epoch is not None:
                on_epoch(self, rec)
        if o.patience is not None and self.bad >= o.patience:
            self.stopped = True
        if o.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return self


def train(model: torch.nn.Module, data: dict, objective: Callable, *, epochs: int, batch: int = 64,
          lr: float = 1e-3, weight_decay: float = 0.0, schedule: str = "none", draw: bool = False,
          seed: int = 0, device="cpu", extra_params: Iterable = (), log: Callable | None = None) -> Trainer:
    """Train ``model`` on in-memory tensors ``data`` (see :func:`array_batches`) for a fixed number of epochs;
    the shorthand the studies use.  Returns the :class:`Trainer` (model in eval mode)."""
    batches = array_batches(data, batch, draw=draw)
    model.to(device)
    opts = TrainOptions(epochs=epochs, lr=lr, weight_decay=weight_decay, schedule=schedule, seed=seed,
                        device=device)
    tr = Trainer(model, objective, opts, steps_per_epoch=batches.steps, extra_params=extra_params)
    return tr.fit(batches, log=log)


# ------------------------------------------------------------------------------------------------ objectives
def masked_loss(out: dict, batch: dict, class_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """MSE over the finite targets ``batch["y"]`` (NaN: not applicable to that sample), sample-weighted when the
    batch has ``w``; plus ``class_weight`` x cross-entropy on ``batch["label"]``."""
    parts = {}
    total = None
    if "reg" in out and "y" in batch:
        y = batch["y"]
        m = torch.isfinite(y)
        d = (out["reg"] - torch.nan_to_num(y)) ** 2 * m
        w = batch.get("w")
        if w is None:
            parts["mse"] = d.sum() / m.sum().clamp_min(1)
        else:
            parts["mse"] = (d.sum(1) * w).sum() / (m.sum() * w.mean()).clamp_min(1)
        total = parts["mse"]
    if "logits" in out and "label" in batch:
        parts["ce"] = F.cross_entropy(out["logits"], batch["label"])
        total = parts["ce"] * class_weight if total is None else total + class_weight * parts["ce"]
    return total, parts


def supervised(class_weight: float = 1.0, noise: float = 0.0, augment: Callable | None = None) -> Callable:
    """Objective of the inverse networks: :func:`masked_loss` of ``model(x)``.  ``noise``: white noise of that
    std added to the (standardised) inputs; ``augment(x, rng)``: a label-preserving transform of the batch."""
    def objective(model, b, ctx):
        x = b["x"]
        if augment is not None:
            x = augment(x, ctx.rng)
        if noise:
            x = x + noise * torch.randn(x.shape, generator=ctx.g).to(x.device)
        return masked_loss(model(x), b, class_weight)
    return objective


def _kl(mu, logvar, mu_p=None, logvar_p=None):
    from .models.vae import kl_normal
    return kl_normal(mu, logvar, mu_p, logvar_p)


def vae(beta: float = 1.0, warmup: float = 0.25, per: str = "epoch") -> Callable:
    """Objective of the (C)VAEs: ``MSE(recon, x) + beta * ramp * KL / n_values`` (:func:`train.models.vae.vae_loss`);
    the batch's ``cond`` (if any) goes to the model."""
    from .models.vae import vae_loss

    def objective(model, b, ctx):
        out = model(b["x"], b.get("cond"))
        ls = vae_loss(out, b["x"], beta=beta * ramp(ctx, warmup, per))
        return ls["loss"], {"mse": ls["mse"], "kl": ls["kl"]}
    return objective


def domain_vae(beta: float = 0.5, lam: float = 10.0, alpha: float = 0.0, head: torch.nn.Module | None = None,
               warmup: float = 0.3) -> Callable:
    """Objective of :class:`train.models.vae.DomainVAE` on batches ``{"src": {"x"[, "y"]}, "tgt": {"x"}}``:
    reconstruction MSE of both domains + ramp x (``beta`` KL / n_values + ``lam`` MMD(mu_src, mu_tgt)), plus
    ``alpha`` x masked MSE of ``head(mu_src)`` against the source labels when ``head`` is given."""
    from .models.vae import mmd_rbf

    def objective(model, b, ctx):
        xs, xt = b["src"]["x"], b["tgt"]["x"]
        os_, ot = model(xs, 0), model(xt, 1)
        rec = ((os_["recon"] - xs) ** 2).mean() + ((ot["recon"] - xt) ** 2).mean()
        kl = (_kl(os_["mu"], os_["logvar"]) + _kl(ot["mu"], ot["logvar"])) / xs[0].numel()
        mmd = mmd_rbf(os_["mu"], ot["mu"])
        warm = ramp(ctx, warmup)
        loss = rec + beta * warm * kl + lam * warm * mmd
        if head is not None and alpha > 0:
            lab, _ = masked_loss({"reg": head(os_["mu"])}, {"y": b["src"]["y"]})
            loss = loss + alpha * lab
        return loss, {"rec": rec, "kl": kl, "mmd": mmd}
    return objective


def coral(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CORAL distance: squared Frobenius norm of the difference of feature covariances, / (4 d^2)."""
    d = a.shape[1]
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    return ((ca - cb) ** 2).sum() / (4 * d * d)


def aligned(gamma: float = 1.0, warmup: float = 0.2) -> Callable:
    """Objective of a feature-aligned inverse network (a :class:`train.models.MLP`, shared trunk) on batches
    ``{"src": {"x", "y"}, "tgt": {"x"}}``: masked MSE on the source labels + ``gamma`` x ramp x (MMD + CORAL)
    between the trunk features of source and target inputs."""
    from .models.vae import mmd_rbf

    def objective(model, b, ctx):
        fs, ft = model.features(b["src"]["x"]), model.features(b["tgt"]["x"])
        loss, parts = masked_loss(model.heads(fs), b["src"])
        if gamma > 0:
            al = mmd_rbf(fs, ft) + coral(fs, ft)
            loss = loss + gamma * ramp(ctx, warmup) * al
            parts["align"] = al
        return loss, parts
    return objective


def nested(beta: float = 1.0, gamma: float = 1.0, warmup: float = 1 / 3, augment: Callable | None = None,
           mask_weight: float = 1.0) -> Callable:
    """Objective of :class:`train.models.vae.NestedVAE` on batches ``{"x", "cond"[, "mask"]}``: its
    :meth:`~train.models.vae.NestedVAE.loss` with ``beta`` ramped per epoch; ``augment(stack, rng)`` transforms
    image and mask together (stacked as channels)."""
    def objective(model, b, ctx):
        x, m = b["x"], b.get("mask")
        if augment is not None:
            s = augment(torch.stack([x, m], 1) if m is not None else x[:, None], ctx.rng)
            x, m = s[:, 0], (s[:, 1] if m is not None else None)
        out = model(x, b["cond"])
        ls = model.loss(out, x, b["cond"], beta=beta * ramp(ctx, warmup, "epoch"), gamma=gamma, mask=m,
                        mask_weight=mask_weight)
        return ls["loss"], {k: v for k, v in ls.items() if k != "loss"}
    return objective
