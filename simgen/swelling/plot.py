"""A panel of swelling micrographs across temperature and dose (for ``simgen plot`` on a swelling store)."""
from __future__ import annotations

import numpy as np

__all__ = ["plot_panel"]


def plot_panel(x, params, class_names, path, n_temperature: int = 4, n_dose: int = 4, labels=None) -> str:
    """Write a PNG grid: rows = temperature bins (low -> high), columns = dose bins (low -> high).

    ``x``: images ``(n, ny, nx)`` (array-like, e.g. a zarr array; only the chosen ones are read);
    ``params``: dict name -> ``(n,)`` array with at least ``temperature`` and ``dose`` (``swelling`` and
    ``label`` used in titles when present); ``class_names``: class names indexed by ``params['label']`` or
    ``labels``; ``path``: output PNG.  In each cell the sample closest to the bin centre is shown."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(params["temperature"], dtype=float)
    d = np.asarray(params["dose"], dtype=float)
    lab = labels if labels is not None else params.get("label")
    sw = params.get("swelling")
    tb = np.linspace(t.min(), t.max(), n_temperature + 1)
    db = np.linspace(d.min(), d.max(), n_dose + 1)
    fig, axes = plt.subplots(n_temperature, n_dose, figsize=(2.6 * n_dose, 2.8 * n_temperature), squeeze=False)
    ts = (t - t.min()) / max(np.ptp(t), 1e-12)
    ds = (d - d.min()) / max(np.ptp(d), 1e-12)
    for r in range(n_temperature):
        for c in range(n_dose):
            ax = axes[r, c]
            ax.axis("off")
            inside = np.flatnonzero((t >= tb[r]) & (t <= tb[r + 1]) & (d >= db[c]) & (d <= db[c + 1]))
            if len(inside) == 0:
                continue
            tc, dc = (r + 0.5) / n_temperature, (c + 0.5) / n_dose
            k = int(inside[np.argmin((ts[inside] - tc) ** 2 + (ds[inside] - dc) ** 2)])
            ax.imshow(np.asarray(x[k]), cmap="gray")
            title = f"T={t[k]:.0f} K, {d[k]:.3g} dpa"
            if sw is not None:
                title += f"\nS={float(np.asarray(sw)[k]):.2f} %"
            if lab is not None and len(class_names):
                title += f" {class_names[int(np.asarray(lab)[k])]}"
            ax.set_title(title, fontsize=8)
    fig.suptitle("void swelling: temperature (rows, up) x dose (columns, right)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)
