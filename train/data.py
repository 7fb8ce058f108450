"""Corpus stores -> torch data: tasks, splits, normalisers, a chunk-aware shuffling loader, on-the-fly simulation.

Reading strategy.  Random 256-row batches straight from Zarr come at only 10-16 batches/s (every batch touches
many chunks), while reading one chunk-sized block, shuffling it in memory and cutting it into batches gives
500-660 batches/s (../shared/refs/infra.md).  :class:`ChunkShuffleLoader` therefore reads whole chunks (in a
random order each epoch, ``mix_chunks`` of them at a time), keeps the rows of the requested split, shuffles them
in memory and yields normalised batches.  Each DataLoader worker opens the store itself, lazily, with zarr
directly (no Dask inside loader workers).

Splits are made of contiguous *blocks* of rows (``block_rows``: the chunk size when the corpus has enough chunks,
smaller blocks for small corpora) assigned by a seeded permutation, so a held-out or k-fold split reads few extra
bytes and does not depend on anything but (n, block_rows, seed).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from simgen.errors import StoreError

__all__ = ["TaskError", "Task", "parse_task", "open_store", "Split", "block_rows_for", "holdout_split",
           "kfold_splits", "XNormaliser", "YNormaliser", "Normalisers", "fit_normalisers", "CorpusDataset",
           "ChunkShuffleLoader", "SimulatedDataset", "InMemoryLoader"]


class TaskError(ValueError):
    """A task specification does not fit the store (unknown target, no classes, ...)."""


# ------------------------------------------------------------------------------------------------ task
@dataclass(frozen=True)
class Task:
    """What to learn: regression targets (names, in store order) and/or the class label."""

    targets: tuple[str, ...] = ()
    classify: bool = False
    classes: tuple[str, ...] = ()
    target_units: tuple[str, ...] = ()
    label_name: str | None = None

    @property
    def regress(self) -> bool:
        return bool(self.targets)

    def spec(self) -> str:
        if self.targets and self.classify:
            return "both:" + ",".join(self.targets)
        if self.targets:
            return "regress:" + ",".join(self.targets)
        return "classify"

    def to_dict(self) -> dict:
        return {"targets": list(self.targets), "classify": self.classify, "classes": list(self.classes),
                "target_units": list(self.target_units), "label_name": self.label_name}

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(tuple(d["targets"]), bool(d["classify"]), tuple(d.get("classes", ())),
                   tuple(d.get("target_units", ())), d.get("label_name"))


def parse_task(spec: str, corpus) -> Task:
    """``regress[:a,b]`` | ``classify`` | ``both[:a,b]`` against a store's targets and classes.

    Without a target list every target of the store is regressed.  Unknown names raise :class:`TaskError`
    naming the name and listing the valid ones.
    """
    spec = (spec or "").strip()
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    valid_kinds = ("regress", "classify", "both")
    if kind not in valid_kinds:
        raise TaskError(f"task '{spec}': expected one of regress[:t1,t2,...], classify, both[:t1,...]")
    names = tuple(corpus.param_names)
    units = tuple(corpus.param_units)
    classes = tuple(corpus.classes)
    targets: tuple[str, ...] = ()
    if kind in ("regress", "both"):
        if rest.strip():
            wanted = [t.strip() for t in rest.split(",") if t.strip()]
            for t in wanted:
                if t not in names:
                    raise TaskError(f"task '{spec}': unknown target '{t}'; the store "
                                    f"'{getattr(corpus, 'store', '?')}' has targets: {', '.join(names) or '(none)'}")
            if len(set(wanted)) != len(wanted):
                raise TaskError(f"task '{spec}': a target is named twice")
            targets = tuple(wanted)
        else:
            targets = names
        if not targets:
            raise TaskError(f"task '{spec}': the store '{getattr(corpus, 'store', '?')}' has no regression targets")
    elif rest.strip():
        raise TaskError(f"task '{spec}': 'classify' takes no target list")
    classify = kind in ("classify", "both")
    if classify and not classes:
        raise TaskError(f"task '{spec}': the store '{getattr(corpus, 'store', '?')}' has no class label "
                        "(its recipe has no 'label:'); use regress")
    return Task(targets=targets, classify=classify, classes=classes if classify else (),
                target_units=tuple(units[names.index(t)] for t in targets),
                label_name=corpus.label_name if classify else None)


_VERIFIED: set = set()  # (store, digest of its CRC records) already checked in this process


def open_store(store, *, check_complete: bool = True, verify: bool = False):
    """Open a corpus for training: it must exist, be complete and (with ``verify``) match its CRCs (checked once
    per process; a corrupt store is refused by name with the bad chunks)."""
    import hashlib

    import simgen.corpus as sc
    c = sc.open(store)
    if check_complete:
        c.require_complete()
    if verify:
        key = None
        if os.path.isdir(str(c.store)):  # a local store: (path, size, mtime) of every file says it is unchanged
            h = hashlib.sha256()
            for root, _, files in os.walk(str(c.store)):
                for f in sorted(files):
                    st = os.stat(os.path.join(root, f))
                    h.update(f"{root}/{f}:{st.st_size}:{st.st_mtime_ns};".encode())
            key = (str(c.store), h.hexdigest())
        if key is None or key not in _VERIFIED:
            bad = c.verify_report()
            if bad:
                ks = sorted(bad)
                raise StoreError(f"store '{c.store}': corrupted: chunk(s) {ks[:10]}{'...' if len(ks) > 10 else ''} "
                                 f"({bad[ks[0]]}); not used for training; rebuild them with `simgen repair "
                                 f"{c.store}`")
            if key is not None:
                _VERIFIED.add(key)
    return c


# ------------------------------------------------------------------------------------------------ splits
@dataclass
class Split:
    """Row indices (sorted) of one subset of a corpus."""

    rows: np.ndarray
    name: str = ""

    def __len__(self) -> int:
        return int(len(self.rows))


def block_rows_for(n: int, chunk_rows: int, min_blocks: int = 50) -> int:
    """Split unit: whole chunks when the corpus has at least ``min_blocks`` of them, else the largest block size
    that divides a chunk into pieces and gives ``min_blocks`` blocks (never below 1)."""
    if n // max(chunk_rows, 1) >= min_blocks:
        return chunk_rows
    target = max(1, n // min_blocks)
    # a divisor of chunk_rows, so blocks never straddle a chunk boundary
    best = 1
    for d in range(1, chunk_rows + 1):
        if chunk_rows % d == 0 and d <= target:
            best = d
    return best


def _blocks(n: int, block: int) -> list[np.ndarray]:
    return [np.arange(s, min(n, s + block)) for s in range(0, n, block)]


def holdout_split(n: int, chunk_rows: int, *, val: float = 0.1, test: float = 0.1, seed: int = 0,
                  block_rows: int | None = None) -> dict[str, Split]:
    """Train/val/test splits of ``n`` rows by seeded permutation of row blocks."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"split fractions val={val}, test={test}: expected 0 <= val, test and val + test < 1")
    block = block_rows or block_rows_for(n, chunk_rows)
    blocks = _blocks(n, block)
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x5117,))).permutation(len(blocks))
    nb = len(blocks)
    n_test = int(round(test * nb)) if test > 0 else 0
    n_val = int(round(val * nb)) if val > 0 else 0
    if test > 0:
        n_test = max(1, n_test)
    if val > 0:
        n_val = max(1, n_val)
    if n_test + n_val >= nb:
        raise ValueError(f"corpus of {n} rows in {nb} blocks of {block} is too small for val={val}, test={test}")
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {k: Split(np.sort(np.concatenate([blocks[b] for b in v])) if len(v) else np.zeros(0, np.int64), k)
            for k, v in parts.items()}


def kfold_splits(n: int, chunk_rows: int, k: int = 5, *, seed: int = 0, inner_val: float = 0.1,
                 block_rows: int | None = None) -> list[dict[str, Split]]:
    """k folds: fold i tests on block group i; the rest is split into train and an inner validation set (for
    early stopping), so the test fold never steers training."""
    if k < 2:
        raise ValueError(f"k={k}: expected at least 2 folds")
    block = block_rows or block_rows_for(n, chunk_rows)
    blocks = _blocks(n, block)
    if len(blocks) < 2 * k:
        raise ValueError(f"corpus of {n} rows in {len(blocks)} blocks of {block} is too small for {k} folds")
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xF01D,))).permutation(len(blocks))
    groups = np.array_split(order, k)
    out = []
    for i in range(k):
        rest = np.concatenate([g for j, g in enumerate(groups) if j != i])
        rest = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xF01D, i))).permutation(rest)
        n_val = max(1, int(round(inner_val * len(rest)))) if inner_val > 0 else 0
        parts = {"test": groups[i], "val": rest[:n_val], "train": rest[n_val:]}
        out.append({name: Split(np.sort(np.concatenate([blocks[b] for b in v])) if len(v) else
                                np.zeros(0, np.int64), name) for name, v in parts.items()})
    return out


# ------------------------------------------------------------------------------------------------ normalisers
class XNormaliser:
    """Standardise inputs: ``mode`` 'channel' (mean/std per point of the axis), 'global' (one mean/std) or
    'none'.  Fitted streaming (chunk by chunk, float64 sums)."""

    MODES = ("channel", "global", "none")

    def __init__(self, mode: str = "channel", mean=None, std=None):
        if mode not in self.MODES:
            raise ValueError(f"x normalisation '{mode}': expected one of {', '.join(self.MODES)}")
        self.mode = mode
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self._s = self._ss = None
        self._n = 0

    def partial_fit(self, x: np.ndarray) -> "XNormaliser":
        x = np.asarray(x, dtype=np.float64)
        if self.mode == "channel":
            s, ss, n = x.sum(0), (x * x).sum(0), x.shape[0]
        else:
            s, ss, n = x.sum(), (x * x).sum(), x.size
        self._s = s if self._s is None else self._s + s
        self._ss = ss if self._ss is None else self._ss + ss
        self._n += n
        return self

    def finish(self) -> "XNormaliser":
        if self.mode == "none" or self._n == 0:
            self.mean, self.std = np.zeros(1, np.float32), np.ones(1, np.float32)
            return self
        mean = self._s / self._n
        var = np.maximum(self._ss / self._n - mean * mean, 0.0)
        std = np.sqrt(var)
        floor = max(float(np.sqrt(np.mean(var))) * 1e-3, 1e-12)  # flat channels: do not blow up noise
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1 if self.mode == "channel" else 1)
        self.std = np.asarray(np.maximum(std, floor), dtype=np.float32).reshape(self.mean.shape)
        return self

    def _shaped(self, shape):
        if self.mode == "channel":
            return self.mean.reshape(shape), self.std.reshape(shape)
        return self.mean.reshape(()), self.std.reshape(())

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.mode == "none":
            return np.asarray(x, dtype=np.float32)
        m, s = self._shaped(x.shape[1:])
        return ((np.asarray(x, dtype=np.float32) - m) / s).astype(np.float32, copy=False)

    def state(self) -> dict:
        return {"mode": self.mode, "mean": self.mean, "std": self.std}


class YNormaliser:
    """Per-target standardisation, NaN-aware (NaN = target not applicable; kept as NaN).

    Targets named in ``log`` are standardised as log10 (for positive targets spanning decades: dose rate,
    number density, ...); :meth:`inverse` returns physical units either way."""

    def __init__(self, names: Sequence[str] = (), mean=None, std=None, log: Sequence[str] = (),
                 n_classes: int = 0, class_mean=None, class_std=None):
        """``n_classes`` > 0: standardise each class with its own mean/std (class-conditional normalisation).
        The same parameter often has class-specific ranges (hyperfine A: 32-48 MHz for nitroxides, -256..-230 for
        Mn2+, 0 for single lines); with one global std the within-class variation of a class is a tiny part of
        the loss and the network learns it last.  Labels are needed to transform (true class) and to invert
        (predicted class); classes without any value of a target fall back to the global statistics."""
        self.names = tuple(names)
        self.n_classes = int(n_classes)
        self.class_mean = None if class_mean is None else np.asarray(class_mean, dtype=np.float64)
        self.class_std = None if class_std is None else np.asarray(class_std, dtype=np.float64)
        unknown = [t for t in log if t not in self.names]
        if unknown:
            raise TaskError(f"log target(s) {', '.join(repr(t) for t in unknown)}: not among the task's "
                            f"targets ({', '.join(self.names)})")
        self.log = tuple(t for t in self.names if t in tuple(log))
        self._logmask = np.array([t in self.log for t in self.names], dtype=bool)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        k = len(self.names)
        self._s, self._ss, self._n = np.zeros(k), np.zeros(k), np.zeros(k)
        c = max(self.n_classes, 1)
        self._cs, self._css, self._cn = np.zeros((c, k)), np.zeros((c, k)), np.zeros((c, k))

    @property
    def by_class(self) -> bool:
        return self.n_classes > 0

    def _fwd(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self._logmask.any():
            y = y.copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                y[..., self._logmask] = np.log10(np.where(y[..., self._logmask] > 0, y[..., self._logmask],
                                                          np.nan))
        return y

    def partial_fit(self, y: np.ndarray, label: np.ndarray | None = None) -> "YNormaliser":
        raw = np.asarray(y, dtype=np.float64)
        if self._logmask.any():
            bad = np.isfinite(raw[:, self._logmask]) & (raw[:, self._logmask] <= 0)
            if bad.any():
                name = np.array(self.log)[bad.any(0)][0]
                raise TaskError(f"log target '{name}': has values <= 0; expected positive values for a log scale")
        y = self._fwd(raw)
        ok = np.isfinite(y)
        z = np.where(ok, y, 0.0)
        self._s += z.sum(0)
        self._ss += (z * z).sum(0)
        self._n += ok.sum(0)
        if self.by_class:
            lab = self._labels(label, len(z))
            np.add.at(self._cs, lab, z)
            np.add.at(self._css, lab, z * z)
            np.add.at(self._cn, lab, ok.astype(float))
        return self

    def _labels(self, label, n: int) -> np.ndarray:
        if label is None:
            raise TaskError("class-conditional target normalisation needs the class of every row (a task with "
                            "classification: --task both)")
        lab = np.asarray(label, dtype=np.int64).reshape(-1)
        if len(lab) != n or (len(lab) and (lab.min() < 0 or lab.max() >= self.n_classes)):
            raise TaskError(f"class labels: expected {n} values in 0..{self.n_classes - 1}, got {len(lab)} "
                            f"(range {lab.min() if len(lab) else '-'}..{lab.max() if len(lab) else '-'})")
        return lab

    def finish(self) -> "YNormaliser":
        n = np.maximum(self._n, 1)
        mean = self._s / n
        std = np.sqrt(np.maximum(self._ss / n - mean * mean, 0.0))
        self.mean = np.where(self._n > 0, mean, 0.0)
        self.std = np.where(std > 0, std, 1.0)
        if self.by_class:
            cn = np.maximum(self._cn, 1)
            cm = self._cs / cn
            cs = np.sqrt(np.maximum(self._css / cn - cm * cm, 0.0))
            has = self._cn > 0
            self.class_mean = np.where(has, cm, self.mean)
            # a constant target within a class (A = 0 of a line without nucleus) keeps unit scale
            self.class_std = np.where(has & (cs > 1e-9 * np.maximum(np.abs(cm), 1.0)), cs,
                                      np.where(has, 1.0, self.std))
        return self

    def _stats(self, label, n: int):
        if not self.by_class:
            return self.mean, self.std
        lab = self._labels(label, n)
        return self.class_mean[lab], self.class_std[lab]

    def transform(self, y: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
        y = self._fwd(y)
        m, sd = self._stats(label, len(y))
        return ((y - m) / sd).astype(np.float32)

    def inverse(self, z: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
        """Back to physical units; with class-conditional normalisation ``label`` is the class of each row (the
        predicted class for predictions)."""
        z = np.asarray(z, dtype=np.float64)
        m, sd = self._stats(label, len(z))
        y = z * sd + m
        if self._logmask.any():
            y[..., self._logmask] = 10.0 ** y[..., self._logmask]
        return y.astype(np.float32)

    def state(self) -> dict:
        return {"names": np.array(self.names, dtype=object), "mean": self.mean, "std": self.std,
                "log": list(self.log), "n_classes": self.n_classes, "class_mean": self.class_mean,
                "class_std": self.class_std}


@dataclass
class Normalisers:
    x: XNormaliser
    y: YNormaliser

    def save(self, path) -> None:
        extra = {}
        if self.y.by_class:
            extra = dict(y_class_mean=self.y.class_mean, y_class_std=self.y.class_std)
        np.savez(path, x_mode=np.array(self.x.mode), x_mean=self.x.mean, x_std=self.x.std,
                 y_names=np.array(self.y.names, dtype=str), y_mean=self.y.mean, y_std=self.y.std,
                 y_log=np.array(self.y.log, dtype=str), **extra)

    @classmethod
    def load(cls, path) -> "Normalisers":
        with np.load(path, allow_pickle=False) as z:
            cm = z["y_class_mean"] if "y_class_mean" in z else None
            return cls(XNormaliser(str(z["x_mode"]), z["x_mean"], z["x_std"]),
                       YNormaliser(tuple(str(s) for s in z["y_names"]), z["y_mean"], z["y_std"],
                                   tuple(str(s) for s in z["y_log"]) if "y_log" in z else (),
                                   n_classes=0 if cm is None else cm.shape[0], class_mean=cm,
                                   class_std=z["y_class_std"] if cm is not None else None))


def _target_columns(corpus, task: Task) -> list[int]:
    names = list(corpus.param_names)
    return [names.index(t) for t in task.targets]


Y_NORMS = ("global", "class")


def fit_normalisers(corpus, rows: np.ndarray, task: Task, x_mode: str = "channel",
                    max_rows: int = 50_000, log_targets: Sequence[str] = (), y_mode: str = "global") -> Normalisers:
    """Fit x and y normalisers on ``rows`` (the training split only), reading whole chunks.  At most
    ``max_rows`` rows (whole chunks picked at random, seeded) are used for x; y uses every training row.
    ``y_mode`` 'class': targets standardised per class (needs a task that classifies)."""
    if y_mode not in Y_NORMS:
        raise TaskError(f"y normalisation '{y_mode}': expected one of {', '.join(Y_NORMS)}")
    if y_mode == "class" and not (task.classify and task.targets):
        raise TaskError("y normalisation 'class': needs a task that both regresses and classifies (--task both)")
    xn = XNormaliser(x_mode)
    yn = YNormaliser(task.targets, log=log_targets, n_classes=len(task.classes) if y_mode == "class" else 0)
    cols = _target_columns(corpus, task)
    rows = np.asarray(rows)
    chunks = np.unique(rows // corpus.chunk_rows)
    rng = np.random.default_rng(0)
    budget = max_rows
    for k in rng.permutation(chunks):
        sl = corpus.chunk_slice(int(k))
        keep = rows[(rows >= sl.start) & (rows < sl.stop)] - sl.start
        if cols:
            y = corpus.y[sl][keep][:, cols]
            yn.partial_fit(y, corpus.label[sl][keep] if yn.by_class else None)
        if budget > 0 and x_mode != "none":
            x = corpus.x[sl][keep]
            x = x[:budget]
            xn.partial_fit(x.reshape(len(x), -1) if x_mode == "channel" else x)
            budget -= len(x)
    return Normalisers(xn.finish(), yn.finish())


# ------------------------------------------------------------------------------------------------ datasets
def _batch_dict(x, y, label, norm: Normalisers | None, cols, task: Task) -> dict[str, torch.Tensor]:
    out = {}
    if norm is not None:
        x = norm.x.transform(x)
    out["x"] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if task.targets:
        yy = y[:, cols]
        out["y"] = torch.from_numpy(norm.y.transform(yy, label) if norm is not None else yy.astype(np.float32))
    if task.classify:
        out["label"] = torch.from_numpy(np.asarray(label, dtype=np.int64))
    return out


class CorpusDataset(torch.utils.data.Dataset):
    """Map-style dataset over a store's rows (``split``: a :class:`Split`, an index array, or None for all).

    Items are dicts of tensors ``x`` (normalised), ``y`` (normalised targets, NaN where not applicable) and
    ``label``.  The store is opened lazily, once per process (so it works in forked or spawned DataLoader
    workers).  Random access reads one row at a time: for training prefer :class:`ChunkShuffleLoader`.
    """

    def __init__(self, store, split=None, task: Task | str = "regress", normaliser: Normalisers | None = None,
                 check_complete: bool = True):
        self.store = os.fspath(store)
        c = open_store(self.store, check_complete=check_complete)
        self.task = task if isinstance(task, Task) else parse_task(task, c)
        self.rows = np.arange(c.n) if split is None else np.asarray(getattr(split, "rows", split), dtype=np.int64)
        self.normaliser = normaliser
        self.cols = _target_columns(c, self.task)
        self.chunk_rows = c.chunk_rows
        self.n_total = c.n
        self.sample_shape = tuple(c.x.shape[1:])
        self.axis = c.axis
        self._corpus = None
        self._pid = None

    @property
    def corpus(self):
        if self._corpus is None or self._pid != os.getpid():
            import simgen.corpus as sc
            self._corpus, self._pid = sc.open(self.store), os.getpid()
        return self._corpus

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_corpus"] = None
        return d

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        r = int(self.rows[i])
        c = self.corpus
        lab = c.label[r:r + 1] if self.task.classify else None
        b = _batch_dict(c.x[r:r + 1], c.y[r:r + 1], lab, self.normaliser, self.cols, self.task)
        return {k: v[0] for k, v in b.items()}

    def read_rows(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Raw (unnormalised) arrays for sorted ``rows``, read chunk by chunk."""
        c = self.corpus
        rows = np.asarray(rows)
        xs, ys, ls = [], [], []
        for k in np.unique(rows // self.chunk_rows):
            sl = c.chunk_slice(int(k))
            keep = rows[(rows >= sl.start) & (rows < sl.stop)] - sl.start
            xs.append(c.x[sl][keep])
            ys.append(c.y[sl][keep])
            if self.task.classify:
                ls.append(c.label[sl][keep])
        out = {"x": np.concatenate(xs) if xs else np.zeros((0, *self.sample_shape), np.float32),
               "y": np.concatenate(ys)[:, self.cols] if ys else np.zeros((0, len(self.cols)), np.float32)}
        if self.task.classify:
            out["label"] = np.concatenate(ls).astype(np.int64) if ls else np.zeros(0, np.int64)
        return out

    def chunk_plan(self) -> list[tuple[int, np.ndarray]]:
        """(chunk index, in-chunk offsets of this split's rows) for every chunk holding rows of the split."""
        plan = []
        ks = self.rows // self.chunk_rows
        for k in np.unique(ks):
            plan.append((int(k), self.rows[ks == k] - int(k) * self.chunk_rows))
        return plan


class _ChunkIterable(torch.utils.data.IterableDataset):
    def __init__(self, ds: CorpusDataset, batch_size: int, shuffle: bool, seed: int, mix_chunks: int,
                 drop_last: bool):
        self.ds, self.batch_size, self.shuffle, self.seed = ds, batch_size, shuffle, seed
        self.mix_chunks, self.drop_last = max(1, mix_chunks), drop_last
        # shared with (persistent) worker processes, so set_epoch reaches them without restarting them
        import multiprocessing as mp
        self._epoch = mp.Value("q", 0, lock=False)

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.value = int(value)

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.ds.chunk_plan()
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, wid)))
        order = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch,))).permutation(
            len(plan)) if self.shuffle else np.arange(len(plan))
        mine = [plan[i] for i in order[wid::nw]]
        c = self.ds.corpus
        classify = self.ds.task.classify
        carry = None
        for g in range(0, len(mine), self.mix_chunks):
            parts = []
            for k, keep in mine[g:g + self.mix_chunks]:
                sl = c.chunk_slice(k)
                x = c.x[sl]
                y = c.y[sl]
                lab = c.label[sl] if classify else None
                parts.append((x[keep], y[keep], lab[keep] if classify else None))
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            lab = np.concatenate([p[2] for p in parts]) if classify else None
            n_carry = 0
            if carry is not None:  # leftover rows of the previous block go into the first batch of this one
                n_carry = len(carry[0])
                x, y = np.concatenate([carry[0], x]), np.concatenate([carry[1], y])
                lab = np.concatenate([carry[2], lab]) if classify else None
                carry = None
            perm = (np.concatenate([np.arange(n_carry), n_carry + rng.permutation(len(x) - n_carry)])
                    if self.shuffle else np.arange(len(x)))
            last = g + self.mix_chunks >= len(mine)
            nfull = len(x) // self.batch_size * self.batch_size
            for s in range(0, nfull, self.batch_size):
                idx = perm[s:s + self.batch_size]
                yield _batch_dict(x[idx], y[idx], lab[idx] if classify else None, self.ds.normaliser,
                                  self.ds.cols, self.ds.task)
            if nfull < len(x):
                idx = perm[nfull:]
                if last:
                    if not self.drop_last:
                        yield _batch_dict(x[idx], y[idx], lab[idx] if classify else None, self.ds.normaliser,
                                          self.ds.cols, self.ds.task)
                else:
                    carry = (x[idx], y[idx], lab[idx] if classify else None)


class ChunkShuffleLoader:
    """Batches of a :class:`CorpusDataset`, read chunk by chunk and shuffled in memory.

    Each epoch the chunks holding rows of the split are visited in a seeded random order (spread over
    ``num_workers`` DataLoader workers, each opening the store itself); ``mix_chunks`` chunks at a time are
    read, their split rows are shuffled together and cut into batches.  ``set_epoch(e)`` changes the order.
    """

    def __init__(self, dataset: CorpusDataset, batch_size: int = 256, shuffle: bool = True, seed: int = 0,
                 num_workers: int = 0, mix_chunks: int = 2, drop_last: bool = False, pin_memory: bool = False,
                 prefetch_factor: int = 4):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self._it = _ChunkIterable(dataset, self.batch_size, shuffle, seed, mix_chunks, drop_last)
        kw = {}
        if num_workers > 0:
            kw = {"prefetch_factor": prefetch_factor, "persistent_workers": True,
                  "multiprocessing_context": "fork" if hasattr(os, "fork") else None}
        self.loader = torch.utils.data.DataLoader(self._it, batch_size=None, num_workers=num_workers,
                                                  pin_memory=pin_memory, **kw)

    def set_epoch(self, epoch: int) -> None:
        self._it.epoch = int(epoch)

    def __iter__(self):
        return iter(self.loader)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self._it.drop_last else -(-n // self.batch_size)


class InMemoryLoader:
    """The same batches as :class:`ChunkShuffleLoader` for data already in memory (numpy arrays, raw units).

    The data are normalised once, held as tensors (on ``device`` if given, so a GPU indexes its own memory) and
    batches are slices of a seeded permutation."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None, label: np.ndarray | None, task: Task,
                 normaliser: Normalisers | None, batch_size: int = 256, shuffle: bool = True, seed: int = 0,
                 device=None):
        self.task, self.norm = task, normaliser
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.n = len(x)
        y = y if y is not None else np.zeros((self.n, 0), np.float32)
        b = _batch_dict(x, y, label if task.classify else None, normaliser, list(range(len(task.targets))), task)
        self.tensors = {k: (v.to(device) if device is not None else v) for k, v in b.items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __iter__(self):
        n = self.n
        perm = (np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch,))).permutation(n)
                if self.shuffle else np.arange(n))
        dev = self.tensors["x"].device
        for s in range(0, n, self.batch_size):
            idx = torch.from_numpy(perm[s:s + self.batch_size]).to(dev)
            yield {k: v.index_select(0, idx) for k, v in self.tensors.items()}


class SimulatedDataset(torch.utils.data.IterableDataset):
    """Unlimited training data simulated on the fly: row index -> seed -> simulate.

    Rows ``start, start + 1, ...`` are exactly the rows a corpus of ``recipe`` (with its seed, or ``seed``)
    would hold at those indices (``simgen.corpus.simulate_rows``); with ``start`` past the end of the stored
    corpus they are fresh samples never seen in it.  Each iteration yields ``rows_per_block``-row blocks cut
    into batches; workers take interleaved blocks.  ``stop=None`` never ends (use ``max_batches`` in fit).
    """

    def __init__(self, recipe, task: Task | str = "regress", normaliser: Normalisers | None = None,
                 batch_size: int = 256, start: int = 0, stop: int | None = None, seed: int | None = None,
                 rows_per_block: int = 1024, shuffle: bool = True):
        from simgen.recipe import Recipe, load_recipe
        self.recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        self.seed = int(self.recipe.seed if seed is None else seed)
        self._sim = None
        sim = self.sim
        self.sample_shape = tuple(sim.axis.shape)
        self.axis = sim.axis

        class _Names:  # parse_task only needs names/units/classes
            param_names, param_units, classes = sim.param_names, sim.param_units, sim.classes
            label_name = sim.label.name if sim.label is not None else None
            store = f"<simulated {self.recipe.source or sim.name}>"
        self.task = task if isinstance(task, Task) else parse_task(task, _Names)
        names = list(sim.param_names)
        self.cols = [names.index(t) for t in self.task.targets]
        self.normaliser = normaliser
        self.batch_size, self.start, self.stop = int(batch_size), int(start), stop
        self.rows_per_block, self.shuffle = int(rows_per_block), shuffle
        self.epoch = 0

    @property
    def sim(self):
        if self._sim is None:
            self._sim = self.recipe.build()
        return self._sim

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_sim"] = None
        return d

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Raw arrays of rows ``start:stop``: x, y (the task's targets) and label."""
        from simgen.corpus import simulate_rows
        sim = self.sim
        params, outputs = simulate_rows(sim, self.seed, start, stop)
        out = {"x": np.asarray(outputs["x"], dtype=np.float32), "y": sim.targets_array(params)[:, self.cols]}
        if self.task.classify:
            out["label"] = np.asarray(params["label"], dtype=np.int64)
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = self.rows(self.start + int(i), self.start + int(i) + 1)
        b = _batch_dict(r["x"], r["y"], r.get("label"), self.normaliser, list(range(len(self.cols))), self.task)
        return {k: v[0] for k, v in b.items()}

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0x51A, self.epoch, wid)))
        b = wid
        while True:
            lo = self.start + b * self.rows_per_block
            hi = lo + self.rows_per_block
            if self.stop is not None:
                if lo >= self.stop:
                    return
                hi = min(hi, self.stop)
            r = self.rows(lo, hi)
            perm = rng.permutation(hi - lo) if self.shuffle else np.arange(hi - lo)
            for s in range(0, hi - lo, self.batch_size):
                idx = perm[s:s + self.batch_size]
                yield _batch_dict(r["x"][idx], r["y"][idx], r["label"][idx] if self.task.classify else None,
                                  self.normaliser, list(range(len(self.cols))), self.task)
            b += nw
