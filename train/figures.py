"""Figures of a run: learning curves, parity plots (true vs predicted per target), confusion matrix.
matplotlib with the Agg backend (no display needed)."""
from __future__ import annotations

import numpy as np

__all__ = ["learning_curves", "parity_plots", "confusion_matrix"]


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def learning_curves(history: list[dict], path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(ep, [h.get("val_loss", np.nan) for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parity_plots(y_true: np.ndarray, y_pred: np.ndarray, names, units, path, metrics: dict | None = None,
                 max_points: int = 5000) -> None:
    plt = _plt()
    k = len(names)
    cols = min(k, 3)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for j, name in enumerate(names):
        ax = axes[j // cols][j % cols]
        t, p = y_true[:, j], y_pred[:, j]
        ok = np.flatnonzero(np.isfinite(t) & np.isfinite(p))
        if len(ok) > max_points:
            ok = rng.choice(ok, max_points, replace=False)
        ax.scatter(t[ok], p[ok], s=3, alpha=0.4)
        if len(ok):
            lo, hi = float(min(t[ok].min(), p[ok].min())), float(max(t[ok].max(), p[ok].max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        u = f" [{units[j]}]" if units and units[j] else ""
        title = name
        if metrics and name in metrics:
            title += f"  R²={metrics[name]['r2']:.3f}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("true" + u, fontsize=8)
        ax.set_ylabel("predicted" + u, fontsize=8)
    for j in range(k, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion_matrix(cm, classes, path, title: str = "") -> None:
    plt = _plt()
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * k, 1.0 + 0.5 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
