"""Metrics: per target (MAE, RMSE, R^2, NaN masked) and per class (accuracy, macro F1, confusion matrix).

R^2 = 1 - SS_res / SS_tot against the mean of the evaluated targets, i.e. the skill over predicting the mean
(R^2 = 0).  ``mean_mae`` is the MAE of that mean predictor, for reference.
"""
from __future__ import annotations

import numpy as np

__all__ = ["regression_metrics", "classification_metrics", "aggregate_folds"]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, names) -> dict[str, dict]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"regression metrics: y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    out = {}
    for j, name in enumerate(names):
        ok = np.isfinite(y_true[:, j]) & np.isfinite(y_pred[:, j])
        n = int(ok.sum())
        if n == 0:
            out[name] = {"n": 0, "mae": float("nan"), "rmse": float("nan"), "r2": float("nan"),
                         "mean_mae": float("nan")}
            continue
        t, p = y_true[ok, j], y_pred[ok, j]
        err = p - t
        ss_res = float((err ** 2).sum())
        ss_tot = float(((t - t.mean()) ** 2).sum())
        out[name] = {"n": n, "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
                     "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
                     "mean_mae": float(np.abs(t - t.mean()).mean())}
    return out


def classification_metrics(labels: np.ndarray, pred: np.ndarray, classes) -> dict:
    labels = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1)
    predicted = cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
    present = support > 0
    return {"n": int(len(labels)), "accuracy": float((labels == pred).mean()) if len(labels) else float("nan"),
            "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
            "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                              "support": int(support[i])} for i, c in enumerate(classes)},
            "confusion": cm.tolist(), "classes": list(classes)}


def _walk(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _walk(v, prefix + (k,))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield prefix + (k,), float(v)


def aggregate_folds(folds: list[dict]) -> dict:
    """Mean and standard deviation (ddof=1) over folds of every numeric leaf (confusion matrices summed)."""
    acc: dict = {}
    for f in folds:
        for key, v in _walk(f):
            acc.setdefault(key, []).append(v)
    out: dict = {}
    for key, vals in acc.items():
        a = np.asarray(vals)
        node = out
        for k in key[:-1]:
            node = node.setdefault(k, {})
        node[key[-1]] = {"mean": float(np.nanmean(a)) if np.isfinite(a).any() else float("nan"),
                         "std": float(np.nanstd(a, ddof=1)) if np.isfinite(a).sum() > 1 else float("nan"),
                         "folds": [float(v) for v in a]}
    cms = [f["classification"]["confusion"] for f in folds if "classification" in f]
    if cms:
        out.setdefault("classification", {})["confusion_sum"] = np.sum(np.asarray(cms), axis=0).tolist()
    return out
