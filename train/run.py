"""A run directory: everything needed to predict with a trained model, and to see how it was trained.

Layout::

    RUN/config.json        the FitConfig, the task (targets, classes), model name/options, input shape
    RUN/model.pt           weights of the best epoch (torch tensors only) | model.npz (tree arrays) for the baseline
    RUN/normalisers.npz    x and y normalisers fitted on the training split
    RUN/axis.json          the store's axis (dims, coordinates, units): inputs must be on this axis
    RUN/versions.json      package versions, the store's recipe digest and simulator version
    RUN/history.json       per-epoch losses
    RUN/metrics.json       per-target MAE/RMSE/R^2 and per-class accuracy/F1/confusion on the evaluated split
    RUN/figures/*.png      learning curves, parity plots, confusion matrix
    RUN/checkpoints/       last.pt (resume) and best.pt

``load_run(path)`` returns a :class:`Run`; ``Run.predict(x)`` takes raw (unnormalised) samples on the run's axis.
Nothing in a run directory can execute code when loaded: weights are read with ``torch.load(weights_only=True)``,
arrays with ``allow_pickle=False``, the rest is JSON; a file that needs more is refused by name.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from simgen.simulator import Axis

from .data import Normalisers, Task, TaskError
from .models import ShapeError, get_model, is_baseline

__all__ = ["Run", "load_run", "versions", "resolve_device", "RunError"]


def class_for_norm(logits, allowed=None) -> np.ndarray:
    """Per-sample class index used to de-normalise per-class targets: the argmax of the logits, over the
    ``allowed`` classes only when given (bool per class, not all False)."""
    lg = logits.float().cpu().numpy()
    if allowed is not None:
        mask = np.asarray(allowed, bool)
        if mask.any() and not mask.all():
            lg = np.where(mask[None, :], lg, -np.inf)
    return lg.argmax(1)


class RunError(ValueError):
    """A run directory is missing, incomplete or holds a file that cannot be loaded safely."""


def safe_torch_load(path, what: str = "file"):
    """``torch.load`` of tensors and plain containers only (``weights_only=True``); anything else (a pickle
    that would run code, a damaged file) raises :class:`RunError` naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{what} '{path}': not found") from None
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip/torch file), EOFError...
        import pickle
        import re
        if isinstance(exc, pickle.UnpicklingError):
            why = "it is not tensors and plain containers only; unpickling it in full could run code"
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            first = re.sub("\x1b\\[[0-9;]*m", "", first)[:160]  # no terminal colour codes
            why = f"{type(exc).__name__}: {first}"
        raise RunError(f"{what} '{path}': refused: not a plain tensor file ({why}); it was not loaded (only "
                       "weights, never code, are read from run directories)") from None


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("simgen", "torch", "numpy", "scipy", "zarr", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def resolve_device(device: str | None) -> torch.device:
    d = (device or "auto").lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{device}': CUDA is not available on this machine (use --device cpu or auto)")
    try:
        return torch.device(d)
    except RuntimeError as exc:
        raise ValueError(f"device '{device}': expected cpu, cuda, cuda:N or auto") from exc


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json(path, obj) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default, allow_nan=True))
    os.replace(tmp, path)


class Run:
    """A trained model with its normalisers, task and axis."""

    def __init__(self, path, config: dict, task: Task, axis: Axis, normalisers: Normalisers, model,
                 in_shape, history=None, metrics=None, device="cpu"):
        self.path = Path(path)
        self.config, self.task, self.axis, self.normalisers = config, task, axis, normalisers
        self.model = model
        self.in_shape = tuple(in_shape)
        self.history = history or []
        self.metrics = metrics or {}
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device

    @property
    def is_baseline(self) -> bool:
        return is_baseline(self.config["model"])

    # ---------------------------------------------------------------------------------------------- save/load
    def save(self) -> None:
        p = self.path
        p.mkdir(parents=True, exist_ok=True)
        cfg = dict(self.config)
        cfg["task"] = self.task.to_dict()
        cfg["in_shape"] = list(self.in_shape)
        write_json(p / "config.json", cfg)
        self.normalisers.save(p / "normalisers.npz")
        write_json(p / "axis.json", self.axis.to_dict())
        if self.is_baseline:
            from .models.baseline import save_baseline
            save_baseline(self.model, p / "model.npz.tmp")
            os.replace(p / "model.npz.tmp", p / "model.npz")
        else:
            torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, p / "model.pt.tmp")
            os.replace(p / "model.pt.tmp", p / "model.pt")
        write_json(p / "history.json", self.history)
        if self.metrics:
            write_json(p / "metrics.json", self.metrics)

    # ---------------------------------------------------------------------------------------------- predict
    def _check_shape(self, x: np.ndarray) -> None:
        if tuple(x.shape[1:]) != self.in_shape:
            dims = ", ".join(f"{d} ({u})" for d, u in zip(self.axis.dims, self.axis.units))
            raise ShapeError(f"run '{self.path}': model '{self.config['model']}' expects samples of shape "
                             f"{self.in_shape} on axis {dims}; got input of shape {tuple(x.shape[1:])} "
                             f"(array shape {tuple(x.shape)})")

    def predict_arrays(self, x: np.ndarray, batch_size: int = 1024, allowed=None) -> dict[str, np.ndarray]:
        """``{"reg": (n, T) physical units, "probs": (n, C)}`` for raw samples ``x``.

        ``allowed`` (bool per class, optional): the classes the samples can be (known from the file); a run trained
        with per-class target normalisation then de-normalises with the most probable *allowed* class."""
        with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused below
            x = np.asarray(x, dtype=np.float32)
        if x.shape == self.in_shape:
            x = x[None]
        self._check_shape(x)
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise RunError(f"input to run '{self.path}': {len(rows)} sample(s) hold NaN or inf (rows "
                           f"{rows[:10].tolist()}{'...' if len(rows) > 10 else ''}) or overflow float32; expected "
                           "finite values on the run's axis")
        if self.is_baseline:
            return self.model.predict(x)
        self.model.eval()
        regs, probs = [], []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                xb = torch.from_numpy(self.normalisers.x.transform(x[s:s + batch_size])).to(self.device)
                out = self.model(xb)
                for key in ("reg", "logits"):
                    if key in out and not torch.isfinite(out[key]).all():
                        raise RunError(f"run '{self.path}': the model gave non-finite outputs ({key}) for finite "
                                       f"inputs (batch starting at row {s}); its weights may be damaged")
                if "reg" in out:
                    lab = class_for_norm(out["logits"], allowed) if self.normalisers.y.by_class else None
                    regs.append(self.normalisers.y.inverse(out["reg"].float().cpu().numpy(), lab))
                if "logits" in out:
                    probs.append(torch.softmax(out["logits"].float(), dim=1).cpu().numpy())
        res = {}
        if self.task.targets:
            res["reg"] = np.concatenate(regs) if regs else np.zeros((0, len(self.task.targets)), np.float32)
        if self.task.classify:
            res["probs"] = np.concatenate(probs) if probs else np.zeros((0, len(self.task.classes)), np.float32)
        return res

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Predictions for raw samples ``x`` (n, *in_shape) (or one sample): one array per target name (in the
        store's units), and when classifying ``class_probs`` (n, C), ``class_index`` (n,) and ``class``
        (n,) names."""
        raw = self.predict_arrays(x, batch_size)
        out = {}
        for j, t in enumerate(self.task.targets):
            out[t] = raw["reg"][:, j]
        if self.task.classify:
            out["class_probs"] = raw["probs"]
            out["class_index"] = raw["probs"].argmax(1)
            out["class"] = np.asarray(self.task.classes, dtype=object)[out["class_index"]]
        return out

    # ---------------------------------------------------------------------------------------------- evaluate
    def check_store(self, corpus) -> None:
        """The store must be on this run's axis and hold its targets and classes."""
        shape = tuple(corpus.x.shape[1:])
        if shape != self.in_shape:
            raise ShapeError(f"store '{corpus.store}' has samples of shape {shape}; run '{self.path}' "
                             f"(model '{self.config['model']}') expects {self.in_shape}")
        if corpus.axis.dims != self.axis.dims:
            raise ShapeError(f"store '{corpus.store}' axis {corpus.axis.dims} differs from the run's "
                             f"{self.axis.dims}")
        missing = [t for t in self.task.targets if t not in corpus.param_names]
        if missing:
            raise TaskError(f"store '{corpus.store}' lacks target(s) {', '.join(missing)} of run '{self.path}'; "
                            f"it has: {', '.join(corpus.param_names)}")
        if self.task.classify and tuple(corpus.classes) != tuple(self.task.classes):
            raise TaskError(f"store '{corpus.store}' classes {list(corpus.classes)} differ from run '{self.path}' "
                            f"classes {list(self.task.classes)}")

    def evaluate(self, store, rows=None, figures_dir=None, batch_size: int = 1024) -> dict:
        """Metrics on ``rows`` of ``store`` (all rows by default)."""
        from .data import CorpusDataset, open_store
        c = open_store(store)
        self.check_store(c)
        names = list(c.param_names)
        task = Task(tuple(self.task.targets), self.task.classify, tuple(self.task.classes),
                    tuple(self.task.target_units), self.task.label_name)
        ds = CorpusDataset(c.store, split=rows, task=task, normaliser=None)
        y_true, y_pred, lab, probs = [], [], [], []
        for k, keep in ds.chunk_plan():
            sl = c.chunk_slice(k)
            x = c.x[sl][keep]
            out = self.predict_arrays(x, batch_size)
            if task.targets:
                y_true.append(c.y[sl][keep][:, [names.index(t) for t in task.targets]])
                y_pred.append(out["reg"])
            if task.classify:
                lab.append(c.label[sl][keep].astype(np.int64))
                probs.append(out["probs"])
        return evaluation_metrics(task, np.concatenate(y_true) if y_true else None,
                                  np.concatenate(y_pred) if y_pred else None,
                                  np.concatenate(lab) if lab else None, np.concatenate(probs) if probs else None,
                                  figures_dir=figures_dir)


def evaluation_metrics(task: Task, y_true, y_pred, labels, probs, figures_dir=None, prefix: str = "") -> dict:
    from . import figures
    from .metrics import classification_metrics, regression_metrics
    m: dict = {}
    if task.targets and y_true is not None:
        m["regression"] = regression_metrics(y_true, y_pred, task.targets)
    if task.classify and labels is not None:
        m["classification"] = classification_metrics(labels, probs.argmax(1), task.classes)
    if figures_dir is not None:
        fd = Path(figures_dir)
        fd.mkdir(parents=True, exist_ok=True)
        if "regression" in m:
            figures.parity_plots(y_true, y_pred, task.targets, task.target_units, fd / f"{prefix}parity.png",
                                 m["regression"])
        if "classification" in m:
            figures.confusion_matrix(m["classification"]["confusion"], task.classes, fd / f"{prefix}confusion.png",
                                     f"accuracy {m['classification']['accuracy']:.3f}")
    return m


def load_run(path, device: str = "cpu") -> Run:
    """Load a run directory written by :func:`train.fit.fit`."""
    p = Path(path)
    if not (p / "config.json").exists():
        raise RunError(f"run '{p}': no config.json (not a simtrain run directory, or training did not finish)")

    def _json(name, default=None):
        f = p / name
        if default is not None and not f.exists():
            return default
        try:
            return json.loads(f.read_text())
        except FileNotFoundError:
            raise RunError(f"run '{p}': {name} is missing") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunError(f"run '{p}': {name} is not valid JSON ({exc})") from None

    cfg = _json("config.json")
    try:
        task = Task.from_dict(cfg["task"])
        axis = Axis.from_dict(_json("axis.json"))
        model_name, in_shape = cfg["model"], tuple(cfg["in_shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"run '{p}': config.json/axis.json lack what a run needs ({type(exc).__name__}: {exc})") \
            from None
    try:
        norm = Normalisers.load(p / "normalisers.npz")
    except FileNotFoundError:
        raise RunError(f"run '{p}': normalisers.npz is missing") from None
    except (ValueError, KeyError, OSError) as exc:  # a pickled (object) array is refused by allow_pickle=False
        raise RunError(f"run '{p}': normalisers.npz refused: not plain arrays ({exc})") from None
    dev = resolve_device(device)
    if is_baseline(model_name):
        from .models.baseline import FormatError, load_baseline
        if not (p / "model.npz").exists():
            if (p / "model.pkl").exists():
                raise RunError(f"run '{p / 'model.pkl'}': refused: a pickle can execute code when loaded, and "
                               "runs store baselines as arrays (model.npz); retrain the baseline")
            raise RunError(f"run '{p}': model.npz is missing")
        try:
            model = load_baseline(p / "model.npz")
        except FormatError as exc:
            raise RunError(f"run '{p}': {exc}") from None
    else:
        if not (p / "model.pt").exists():
            raise RunError(f"run '{p}': model.pt is missing")
        model = get_model(model_name, in_shape, len(task.targets),
                          len(task.classes) if task.classify else 0, **cfg.get("model_kw", {}))
        state = safe_torch_load(p / "model.pt", "model file")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise RunError(f"model file '{p / 'model.pt'}': its weights do not fit model '{model_name}' ({first})") \
                from None
        model.to(dev).eval()
    hist = _json("history.json", [])
    met = _json("metrics.json", {})
    return Run(p, cfg, task, axis, norm, model, cfg["in_shape"], hist, met, dev)
