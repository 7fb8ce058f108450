"""Classical baseline: scikit-learn random forest / gradient boosting on hand-made features.

A published EPR classification project reached accuracy/F1 near 1 on synthetic EPR spectra with classical models
given extra features (peak count from ``scipy.signal.find_peaks``, the field range holding signal).
:func:`peak_features` computes those for spectra: peak counts at several relative prominences,
position/height/prominence/width of the three most prominent peaks, the signal-bearing range, moments and a
coarse profile (``n_bins`` block means).  Images get block means and intensity statistics.  One regressor per
target (rows where the target is NaN are left out) and one classifier.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks, peak_widths

__all__ = ["peak_features", "feature_names", "BaselineModel", "save_baseline", "load_baseline", "ArrayEnsemble",
           "FormatError"]

PROMINENCES = (0.05, 0.1, 0.25, 0.5)
N_TOP = 3


def feature_names(n_bins: int = 32, ndim: int = 1) -> list[str]:
    if ndim == 2:
        return ([f"block_{i}" for i in range(n_bins)] + ["mean", "std", "min", "max", "p05", "p50", "p95",
                                                          "grad_mean"])
    names = [f"n_peaks_prom{p}" for p in PROMINENCES]
    for i in range(N_TOP):
        names += [f"peak{i}_pos", f"peak{i}_height", f"peak{i}_prom", f"peak{i}_width"]
    names += ["range_lo", "range_hi", "range_span", "mean", "std", "min", "max", "argmax", "argmin", "centroid"]
    names += [f"bin_{i}" for i in range(n_bins)]
    return names


def _spectrum_features(s: np.ndarray, coord: np.ndarray, n_bins: int) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    lo, hi = s.min(), s.max()
    span = hi - lo if hi > lo else 1.0
    z = (s - lo) / span
    step = float(coord[1] - coord[0]) if len(coord) > 1 else 1.0
    feats = []
    for p in PROMINENCES:
        pk, _ = find_peaks(z, prominence=p)
        feats.append(len(pk))
    # most prominent peaks of |s - median| (derivative-shaped spectra such as EPR have negative lobes too)
    a = np.abs(s - np.median(s)) / span
    pk, props = find_peaks(a, prominence=0.02)
    order = np.argsort(props["prominences"])[::-1][:N_TOP] if len(pk) else np.array([], int)
    widths = peak_widths(a, pk[order], rel_height=0.5)[0] if len(order) else np.array([])
    for i in range(N_TOP):
        if i < len(order):
            j = pk[order[i]]
            feats += [coord[j], a[j], props["prominences"][order[i]], widths[i] * abs(step)]
        else:
            feats += [np.nan, 0.0, 0.0, 0.0]
    on = np.flatnonzero(a > 0.1)
    r0, r1 = (coord[on[0]], coord[on[-1]]) if len(on) else (np.nan, np.nan)
    w = a / a.sum() if a.sum() > 0 else np.full_like(a, 1.0 / len(a))
    feats += [r0, r1, (r1 - r0) if len(on) else 0.0, s.mean(), s.std(), lo, hi, coord[np.argmax(s)],
              coord[np.argmin(s)], float((w * coord).sum())]
    edges = np.linspace(0, len(s), n_bins + 1).astype(int)
    feats += [s[edges[i]:max(edges[i + 1], edges[i] + 1)].mean() for i in range(n_bins)]
    return np.asarray(feats, dtype=np.float64)


def _image_features(im: np.ndarray, n_bins: int) -> np.ndarray:
    im = np.asarray(im, dtype=np.float64)
    g = int(round(np.sqrt(n_bins)))
    ys = np.linspace(0, im.shape[0], g + 1).astype(int)
    xs = np.linspace(0, im.shape[1], g + 1).astype(int)
    blocks = [im[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].mean() for i in range(g) for j in range(g)]
    blocks += [0.0] * (n_bins - len(blocks))
    p = np.percentile(im, [5, 50, 95])
    gy, gx = np.gradient(im)
    return np.asarray(blocks[:n_bins] + [im.mean(), im.std(), im.min(), im.max(), *p,
                                         float(np.hypot(gy, gx).mean())])


def peak_features(x: np.ndarray, coord: np.ndarray | None = None, n_bins: int = 32) -> np.ndarray:
    """Features of each sample of ``x`` (n, L) spectra or (n, H, W) images -> (n, n_features) float64;
    NaN (no such peak) is replaced by the first coordinate minus one step."""
    x = np.asarray(x)
    if x.ndim == 3:
        return np.stack([_image_features(im, n_bins) for im in x])
    if x.ndim != 2:
        raise ValueError(f"baseline features: got x of shape {x.shape}; expected (n, points) or (n, ny, nx)")
    coord = np.arange(x.shape[1], dtype=np.float64) if coord is None else np.asarray(coord, dtype=np.float64)
    f = np.stack([_spectrum_features(s, coord, n_bins) for s in x])
    fill = coord[0] - (coord[1] - coord[0] if len(coord) > 1 else 1.0)
    return np.where(np.isfinite(f), f, fill)


class BaselineModel:
    """``kind`` 'rf' (RandomForest) or 'gb' (HistGradientBoosting); one regressor per target + a classifier."""

    def __init__(self, kind: str = "rf", n_bins: int = 32, n_estimators: int = 200, seed: int = 0,
                 n_jobs: int = 1, **kw):
        if kind not in ("rf", "gb"):
            raise ValueError(f"baseline kind '{kind}': expected 'rf' or 'gb'")
        self.kind, self.n_bins, self.n_estimators, self.seed, self.n_jobs = kind, n_bins, n_estimators, seed, n_jobs
        self.kw = kw
        self.regressors: list = []
        self.classifier = None
        self.coord = None

    def _reg(self):
        if self.kind == "rf":
            from sklearn.ensemble import RandomForestRegressor
            return RandomForestRegressor(n_estimators=self.n_estimators, random_state=self.seed,
                                         n_jobs=self.n_jobs, min_samples_leaf=2, **self.kw)
        from sklearn.ensemble import HistGradientBoostingRegressor
        return HistGradientBoostingRegressor(max_iter=self.n_estimators, random_state=self.seed, **self.kw)

    def _clf(self):
        if self.kind == "rf":
            from sklearn.ensemble import RandomForestClassifier
            return RandomForestClassifier(n_estimators=self.n_estimators, random_state=self.seed,
                                          n_jobs=self.n_jobs, **self.kw)
        from sklearn.ensemble import HistGradientBoostingClassifier
        return HistGradientBoostingClassifier(max_iter=self.n_estimators, random_state=self.seed, **self.kw)

    def features(self, x):
        return peak_features(x, self.coord, self.n_bins)

    def fit(self, x, y=None, label=None, coord=None, n_classes: int = 0) -> "BaselineModel":
        self.coord = None if coord is None else np.asarray(coord)
        f = self.features(x)
        self.regressors = []
        if y is not None:
            y = np.asarray(y, dtype=np.float64)
            for t in range(y.shape[1]):
                ok = np.isfinite(y[:, t])
                self.regressors.append(self._reg().fit(f[ok], y[ok, t]) if ok.any() else None)
        if label is not None:
            self.n_classes = int(max(n_classes, int(np.max(label)) + 1))
            self.classifier = self._clf().fit(f, np.asarray(label))
        return self

    def predict(self, x) -> dict[str, np.ndarray]:
        f = self.features(x)
        out = {}
        if self.regressors:
            out["reg"] = np.stack([r.predict(f) if r is not None else np.full(len(f), np.nan)
                                   for r in self.regressors], axis=1).astype(np.float32)
        if self.classifier is not None:
            p = self.classifier.predict_proba(f)
            probs = np.zeros((len(f), self.n_classes), dtype=np.float32)
            probs[:, self.classifier.classes_.astype(int)] = p
            out["probs"] = probs
        return out


# ------------------------------------------------------------------------------------------------ storage
# A fitted baseline is stored as plain arrays (``model.npz``, loaded with ``allow_pickle=False``): the node
# tables of its trees.  Prediction from these arrays walks the trees exactly as scikit-learn does (same
# comparisons, same order of sums), so a loaded model predicts what the fitted one did, and loading a run
# directory can never execute code.

class FormatError(ValueError):
    """A stored baseline model is not in the expected array format."""


def _flatten(trees) -> dict[str, np.ndarray]:
    """Concatenate per-tree node tables ``(feature, threshold, missing_left, left, right, value)``; children
    become global node indices, -1 at leaves; ``root[t]`` is tree t's first node."""
    cols = {k: [] for k in ("feature", "threshold", "missing_left", "left", "right", "value")}
    roots, off = [], 0
    for feature, threshold, missing_left, left, right, value in trees:
        roots.append(off)
        leaf = left < 0
        cols["feature"].append(np.where(leaf, 0, feature).astype(np.int64))
        cols["threshold"].append(np.asarray(threshold, dtype=np.float64))
        cols["missing_left"].append(np.asarray(missing_left, dtype=bool))
        cols["left"].append(np.where(leaf, -1, left + off).astype(np.int64))
        cols["right"].append(np.where(leaf, -1, right + off).astype(np.int64))
        cols["value"].append(np.asarray(value, dtype=np.float64))
        off += len(left)
    out = {k: np.concatenate(v) for k, v in cols.items()}
    out["root"] = np.asarray(roots, dtype=np.int64)
    return out


def _export(est) -> tuple[dict, dict[str, np.ndarray]]:
    """``(description, arrays)`` of a fitted scikit-learn forest or histogram gradient boosting model."""
    from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    if isinstance(est, (RandomForestRegressor, RandomForestClassifier)):
        clf = isinstance(est, RandomForestClassifier)
        trees = []
        for e in est.estimators_:
            t = e.tree_
            if t.n_outputs != 1:
                raise FormatError("baseline: only single-output forests can be stored")
            if clf:
                v = t.value[:, 0, :len(est.classes_)].astype(np.float64)
                s = v.sum(axis=1, keepdims=True)
                v = v / np.where(s == 0.0, 1.0, s)
            else:
                v = t.value[:, 0, :1].astype(np.float64)
            miss = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=bool))
            trees.append((t.feature, t.threshold, miss, t.children_left, t.children_right, v))
        arrays = _flatten(trees)
        desc = {"type": "forest_classifier" if clf else "forest_regressor"}
        if clf:
            arrays["classes"] = np.asarray(est.classes_)
        return desc, arrays
    if isinstance(est, (HistGradientBoostingRegressor, HistGradientBoostingClassifier)):
        clf = isinstance(est, HistGradientBoostingClassifier)
        if not clf and est.loss != "squared_error":
            raise FormatError(f"baseline: gradient boosting with loss '{est.loss}' cannot be stored as arrays")
        if getattr(est, "_preprocessor", None) is not None:
            raise FormatError("baseline: gradient boosting with categorical features cannot be stored as arrays")
        trees, tree_out = [], []
        for it in est._predictors:
            for k, pred in enumerate(it):
                nd = pred.nodes
                if nd["is_categorical"].any():
                    raise FormatError("baseline: categorical splits cannot be stored as arrays")
                left = np.where(nd["is_leaf"].astype(bool), -1, nd["left"].astype(np.int64))
                trees.append((nd["feature_idx"], nd["num_threshold"], nd["missing_go_to_left"].astype(bool),
                              left, nd["right"].astype(np.int64), nd["value"].astype(np.float64)[:, None]))
                tree_out.append(k)
        arrays = _flatten(trees) if trees else {}
        arrays["tree_output"] = np.asarray(tree_out, dtype=np.int64)
        arrays["baseline"] = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
        desc = {"type": "boosting_classifier" if clf else "boosting_regressor"}
        if clf:
            arrays["classes"] = np.asarray(est.classes_)
        return desc, arrays
    raise FormatError(f"baseline: cannot store a {type(est).__name__} as arrays")


class ArrayEnsemble:
    """A tree ensemble predicting from stored node tables (no scikit-learn objects, no pickles)."""

    def __init__(self, kind: str, arrays: dict[str, np.ndarray]):
        if kind not in ("forest_regressor", "forest_classifier", "boosting_regressor", "boosting_classifier"):
            raise FormatError(f"baseline ensemble type {kind!r}: unknown")
        self.kind, self.a = kind, arrays
        if "classes" in arrays:
            self.classes_ = arrays["classes"]

    def _leaf_values(self, X: np.ndarray):
        a = self.a
        n = len(X)
        for root in a.get("root", np.zeros(0, np.int64)):
            node = np.full(n, root, dtype=np.int64)
            active = np.flatnonzero(a["left"][node] >= 0)
            while len(active):
                nd = node[active]
                xv = X[active, a["feature"][nd]]
                go = (xv <= a["threshold"][nd]) | (np.isnan(xv) & a["missing_left"][nd])
                node[active] = np.where(go, a["left"][nd], a["right"][nd])
                active = active[a["left"][node[active]] >= 0]
            yield a["value"][node]

    def _forest(self, f) -> np.ndarray:
        X = np.asarray(f, dtype=np.float32).astype(np.float64)  # trees compare float32 features
        out = None
        count = 0
        for v in self._leaf_values(X):
            out = v.copy() if out is None else out + v
            count += 1
        return out / count

    def _raw(self, f) -> np.ndarray:
        X = np.asarray(f, dtype=np.float64)
        base = self.a["baseline"]
        raw = np.zeros((len(X), len(base))) + base
        for t, v in enumerate(self._leaf_values(X)):
            raw[:, self.a["tree_output"][t]] += v[:, 0]
        return raw

    def predict(self, f) -> np.ndarray:
        if self.kind == "forest_regressor":
            return self._forest(f)[:, 0]
        if self.kind == "boosting_regressor":
            return self._raw(f)[:, 0]
        return self.classes_[self.predict_proba(f).argmax(1)]

    def predict_proba(self, f) -> np.ndarray:
        if self.kind == "forest_classifier":
            return self._forest(f)
        if self.kind != "boosting_classifier":
            raise FormatError("predict_proba: a regressor has no class probabilities")
        raw = self._raw(f)
        if raw.shape[1] == 1:
            from scipy.special import expit
            p = expit(raw[:, 0])
            return np.stack([1.0 - p, p], axis=1)
        from scipy.special import softmax
        return softmax(raw, axis=1)


def save_baseline(model: "BaselineModel", path) -> None:
    """Write a fitted :class:`BaselineModel` as plain arrays to ``path`` (``.npz``)."""
    import json
    arrays: dict[str, np.ndarray] = {}
    desc = {"format": "simtrain-baseline/1", "kind": model.kind, "n_bins": model.n_bins,
            "n_classes": int(getattr(model, "n_classes", 0)), "regressors": [], "classifier": None}
    for i, r in enumerate(model.regressors):
        if r is None:
            desc["regressors"].append(None)
            continue
        d, arr = _export(r) if not isinstance(r, ArrayEnsemble) else ({"type": r.kind}, r.a)
        desc["regressors"].append(d["type"])
        arrays.update({f"reg{i}.{k}": v for k, v in arr.items()})
    if model.classifier is not None:
        c = model.classifier
        d, arr = _export(c) if not isinstance(c, ArrayEnsemble) else ({"type": c.kind}, c.a)
        desc["classifier"] = d["type"]
        arrays.update({f"clf.{k}": v for k, v in arr.items()})
    if model.coord is not None:
        arrays["coord"] = np.asarray(model.coord, dtype=np.float64)
    arrays["__desc__"] = np.asarray(json.dumps(desc))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_baseline(path) -> "BaselineModel":
    """A :class:`BaselineModel` predicting from the arrays written by :func:`save_baseline`; nothing in the file
    can execute code (``allow_pickle=False``)."""
    import json
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        desc = json.loads(str(arrays.pop("__desc__")))
        if desc.get("format") != "simtrain-baseline/1":
            raise FormatError(f"format {desc.get('format')!r}")
        m = BaselineModel(desc["kind"], n_bins=int(desc["n_bins"]))
        m.coord = arrays.get("coord")
        m.n_classes = int(desc.get("n_classes", 0))

        def part(prefix):
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        m.regressors = [None if t is None else ArrayEnsemble(t, part(f"reg{i}."))
                        for i, t in enumerate(desc["regressors"])]
        m.classifier = ArrayEnsemble(desc["classifier"], part("clf.")) if desc.get("classifier") else None
        return m
    except (FormatError, ValueError, KeyError, TypeError, OSError) as exc:
        raise FormatError(f"{path}: not a stored baseline model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
