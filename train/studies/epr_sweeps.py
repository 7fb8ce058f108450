"""Sweep-width robustness of EPR runs on real spectra: each ``dev`` EPR file of the validation manifest is read as
measured and re-recorded on wider sweeps (its baseline-corrected window embedded in a sweep of 300 mT, zero
baseline outside, white noise at the file's own end-window level, 4096 or 1024 points of 0.073 or 0.29 mT, each
the average over its field step as a continuously swept field records it; 0.29 mT undersamples narrow lines).  For every run (training seed) the
network-only g and the refined g (network + physics fit, :mod:`train.modalities.epr_refine`) are compared with
the manifest's known g_iso.

Only the ``dev`` split is used: this study informs the preparation's design, so it never sees ``test`` files.

Usage::

    python -m train.studies.epr_sweeps RUN_DIR [RUN_DIR ...] [--width 300] [--out DIR]
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np

__all__ = ["rerecord", "sweep_study"]


def rerecord(m, width_mT: float, n_points: int, rng: np.random.Generator):
    """``m`` as if recorded on a sweep of ``width_mT`` (centred on its window) with ``n_points`` points: the
    baseline-corrected measured window, zero outside it, plus white noise of the end windows' standard deviation.
    Returns a new Measurement (same metadata); ``m`` itself is unchanged."""
    from ..measurements import Measurement
    from ..prepare import rebin
    x = np.asarray(m.axis, float)
    y = np.asarray(m.values, float)
    n = len(y)
    w = max(3, n // 20)
    xa, xb = np.median(x[:w]), np.median(x[-w:])
    ya, yb = np.median(y[:w]), np.median(y[-w:])
    y = y - (ya + (yb - ya) * (x - xa) / (xb - xa))
    sd = 0.5 * (np.std(y[:w]) + np.std(y[-w:]))
    c = 0.5 * (x[0] + x[-1])
    xn = np.linspace(c - width_mT / 2, c + width_mT / 2, n_points)
    # each point averages the signal over its field step (a continuous sweep with a conversion time of one step)
    yn = rebin(x, y, xn)
    yn[(xn < x[0]) | (xn > x[-1])] = 0.0
    yn = yn + sd * rng.standard_normal(n_points)
    meta = dict(m.meta)
    meta.pop("quadrature", None)
    meta["n_points"] = n_points
    return Measurement(xn, yn, m.axis_name, m.units, m.value_units, m.modality,
                       {**meta, "source": f"{m.source} [re-recorded {width_mT:g} mT / {n_points} pts]"})


def sweep_study(runs, width_mT: float = 300.0, points=(4096, 1024), seed: int = 0, log=print) -> dict:
    """Predict g on every dev EPR file as measured and re-recorded on ``width_mT`` sweeps of ``points`` points.

    Returns ``{"rows": [...], "table": str}``; each row: file, variant, known g, network-only and refined
    mean ± std over the runs, and whether every run is within 0.002 of the known value."""
    from ..measurements import MeasurementError, read
    from ..measurements.datasets import entry_path, manifest_files
    from ..modalities import OutOfDomain
    from ..run import load_run
    from ..validate import predict_measurement
    runs = [load_run(r) if not hasattr(r, "predict_arrays") else r for r in runs]
    rng = np.random.default_rng(seed)
    rows = []
    for e, _ in manifest_files("dev", present=False):
        if e.get("modality") != "epr":
            continue
        path = entry_path(e)
        known = (e.get("known") or {}).get("g_iso", {}).get("value")
        if path is None or known is None:
            continue
        m0 = read(path, **(e.get("read") or {}))
        variants = [("as measured", m0)]
        if m0.axis[-1] - m0.axis[0] < width_mT:
            variants += [(f"{width_mT:g} mT / {k} pts", rerecord(m0, width_mT, k, rng)) for k in points]
        for name, m in variants:
            net, ref, status, warned = [], [], "ok", False
            for run in runs:
                try:
                    res, _ = predict_measurement(run, copy.deepcopy(m), mc=1, log=lambda *a: None)
                except (OutOfDomain, MeasurementError) as exc:
                    status = str(exc)
                    break
                warned |= "undersamples" in (res["prepare"].get("warning") or "")
                v = res["values"]
                ref.append(v["g_iso"]["value"])
                net.append((res.get("network") or {}).get("g_iso", v["g_iso"])["value"])
            row = {"file": e["id"], "variant": name, "known": float(known), "status": status,
                   "undersampled_warning": warned}
            if status == "ok":
                for key, arr in (("network", net), ("refined", ref)):
                    a = np.asarray(arr)
                    row[key] = [float(a.mean()), float(a.std()), bool(np.all(np.abs(a - known) <= 0.002))]
            rows.append(row)
    lines = ["file  variant  known g  network only (mean ± std; all seeds within 0.002)  network + fit  "
             "preparation warned: line undersampled"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['file']}  {r['variant']}  {r['known']:.5g}  {r['status']}")
            continue
        f = lambda t: f"{t[0]:.5f} ± {t[1]:.5f}; {'PASS' if t[2] else 'FAIL'}"
        lines.append(f"{r['file']}  {r['variant']}  {r['known']:.5g}  {f(r['network'])}  {f(r['refined'])}  "
                     f"{'yes' if r['undersampled_warning'] else 'no'}")
    return {"rows": rows, "table": "\n".join(lines)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.studies.epr_sweeps", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="EPR run directories (one per training seed)")
    ap.add_argument("--width", type=float, default=300.0, help="re-recorded sweep width in mT (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed")
    ap.add_argument("--out", help="directory for epr_sweeps.json and epr_sweeps.txt")
    a = ap.parse_args(argv)
    res = sweep_study(a.runs, a.width, seed=a.seed)
    print(res["table"])
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "epr_sweeps.json").write_text(json.dumps(res["rows"], indent=1))
        (out / "epr_sweeps.txt").write_text(res["table"] + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
