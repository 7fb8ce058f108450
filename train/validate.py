"""``simtrain validate RUN FILES [--reference values.yaml]``: predict on measured files, compare with reference
values, and overlay each measurement with the simulator's output at the predicted parameters.

Per file: read (:mod:`train.measurements`) -> prepare onto the run's axis (:mod:`train.prepare`) -> predict.
Uncertainties: when the network has dropout layers, ``mc`` forward passes with dropout active (MC dropout;
Gal & Ghahramani 2016) give the mean and standard deviation of every target and derived quantity; otherwise no
uncertainty is reported (``unc`` is None).  Derived quantities (EPR): ``g_iso`` = mean of g_x, g_y, g_z;
``A_iso_MHz`` = mean of A_x, A_y, A_z divided by the preparation's field scale; ``a_iso_mT`` = A_iso /
(g_iso mu_B/h), mu_B/h = 13.996245 MHz/mT (CODATA 2018).  EELS spectra also get their edges identified
(:func:`train.prepare.identify_eels_edges`).

The reference file (``catalogs/validation/reference-values.yaml``) lists per file name the expected values
(``value`` with ``tol`` absolute or ``tol_rel`` relative, ``abs: true`` to compare magnitudes), the expected
``class`` and ``edges``, and ``series`` whose quantity must rise (or fall) with a variable.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import modalities
from .measurements import Measurement, MeasurementError, read
from .prepare import Prepared, prepare, target_spec
from .run import class_for_norm

__all__ = ["validate", "predict_with_uncertainty", "derived_quantities", "load_reference", "check_reference",
           "format_table", "overlay_params", "register_cli", "cmd_validate", "read_files", "add_read_options",
           "predict_measurement"]


# ------------------------------------------------------------------------------------------------ prediction
def _has_dropout(model) -> bool:
    import torch
    return any(isinstance(mod, torch.nn.modules.dropout._DropoutNd) and mod.p > 0 for mod in model.modules())


def predict_with_uncertainty(run, x: np.ndarray, mc: int = 30, seed: int = 0, allowed=None) -> dict:
    """``{"samples": (T, n, targets) or None, "reg": (n, targets), "probs": (n, C) or None, "method": str}``.

    T = ``mc`` MC-dropout passes when the model has dropout (``method`` 'mc-dropout'), else one deterministic
    pass (``samples`` holds it, T = 1, ``method`` 'none').  ``allowed``: see :meth:`train.run.Run.predict_arrays`.
    """
    import torch
    x = np.asarray(x, dtype=np.float32)
    if x.shape == tuple(run.in_shape):
        x = x[None]
    if run.is_baseline or mc <= 1 or not _has_dropout(run.model):
        out = run.predict_arrays(x) if allowed is None else run.predict_arrays(x, allowed=allowed)
        reg = out.get("reg")
        return {"samples": None if reg is None else reg[None], "reg": reg, "probs": out.get("probs"),
                "method": "none"}
    run._check_shape(x)
    model = run.model
    model.eval()
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.dropout._DropoutNd):
            mod.train()
    torch.manual_seed(seed)
    regs, probs = [], []
    try:
        with torch.no_grad():
            xb = torch.from_numpy(run.normalisers.x.transform(x)).to(run.device)
            for _ in range(mc):
                out = model(xb)
                if "reg" in out:
                    lab = class_for_norm(out["logits"], allowed) if run.normalisers.y.by_class else None
                    regs.append(run.normalisers.y.inverse(out["reg"].float().cpu().numpy(), lab))
                if "logits" in out:
                    probs.append(torch.softmax(out["logits"].float(), dim=1).cpu().numpy())
    finally:
        model.eval()
    samples = np.stack(regs) if regs else None
    return {"samples": samples, "reg": samples.mean(0) if samples is not None else None,
            "probs": np.mean(probs, axis=0) if probs else None, "method": f"mc-dropout ({mc} passes)"}


def derived_quantities(names, samples: np.ndarray, info: dict, modality: str = "epr") -> dict[str, np.ndarray]:
    """Per-sample derived quantities (arrays of shape (T, n)) from target samples (T, n, targets), as the
    ``modality``'s adapter defines them."""
    return modalities.get(modality).derived(list(names), samples, info)


# ------------------------------------------------------------------------------------------------ overlay
def overlay_params(sim, predicted: dict, class_name: str | None, info: dict) -> dict:
    """One parameter set for the simulator: predicted targets, the class, nuisances off, other parameters at the
    recipe's typical value (fixed value, most probable choice, or median of the prior)."""
    from simgen.priors import Choice, Fixed
    rng = np.random.default_rng(0)
    zero = modalities.get(sim.name).overlay_zero
    over = {}
    if class_name is not None and sim.label is not None:
        over = dict(sim.label.overrides.get(class_name, {}))
    p: dict = {}
    for name, spec in sim.PARAMS.items():
        prior = over.get(name, sim.priors.get(name))
        if spec.kind in ("str", "list", "any"):
            continue
        if isinstance(prior, Fixed):
            v = prior.value
        elif isinstance(prior, Choice):
            v = prior.values[int(np.argmax(prior.probabilities))]
        elif prior is not None:
            v = float(np.median(prior.sample(2001, rng)))
        else:
            v = spec.default
        if name in zero and spec.in_range(np.array([0.0]))[0]:
            v = 0.0
        p[name] = v
    for name, val in predicted.items():
        if name in sim.PARAMS and np.isfinite(val):
            spec = sim.PARAMS[name]
            lo = -np.inf if spec.low is None else spec.low
            hi = np.inf if spec.high is None else spec.high
            p[name] = float(np.clip(val, lo, hi))
    if "mw_freq" in sim.PARAMS and info.get("mw_frequency_GHz"):
        p["mw_freq"] = float(info["mw_frequency_GHz"])
    if class_name is not None and sim.classes:
        p["label"] = sim.classes.index(class_name)
    return p


def _simulate_overlay(sim, predicted, class_name, info):
    p = overlay_params(sim, predicted, class_name, info)
    out = sim.simulate_outputs(p)
    # derived lattice length (pdf): the simulator realises a = a0 (1 + strain_iso); match the prediction
    if "a" in predicted and "strain_iso" in p and np.isfinite(predicted["a"]):
        a_real = float(np.asarray(out["params"]["a"])[0])
        if a_real > 0:
            p["strain_iso"] = float((1 + p["strain_iso"]) * predicted["a"] / a_real - 1)
            out = sim.simulate_outputs(p)
    return np.asarray(out["x"])[0], p


def _figure(prep: Prepared, sim_y, path: Path, title: str, note: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path.parent.mkdir(parents=True, exist_ok=True)
    ax_ = prep.axis
    meas = prep.x[0]
    if ax_.ndim == 2:
        fig, axs = plt.subplots(1, 2 if sim_y is not None else 1, figsize=(8, 4), squeeze=False)
        axs[0, 0].imshow(meas, cmap="gray")
        axs[0, 0].set_title("measured tile")
        if sim_y is not None:
            axs[0, 1].imshow(sim_y, cmap="gray")
            axs[0, 1].set_title("simulated at prediction")
    else:
        fig, axs = plt.subplots(figsize=(7, 4), squeeze=False)
        x = ax_.coords[0]
        axs[0, 0].plot(x, meas, "k-", lw=1, label="measured (prepared)")
        if sim_y is not None:
            s = np.asarray(sim_y, float)
            den = float(np.dot(s, s))
            a = float(np.dot(s, meas) / den) if den > 0 else 1.0
            axs[0, 0].plot(x, a * s, "r-", lw=1, alpha=0.8, label=f"simulated at prediction x {a:.3g}")
        axs[0, 0].set_xlabel(f"{ax_.dims[0]} ({ax_.units[0]})")
        axs[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ references
def load_reference(path=None) -> dict:
    """The reference-values YAML (default: the catalog's ``validation/reference-values.yaml``)."""
    import yaml
    if path is None:
        from simgen import catalogs
        path = catalogs.find("validation/reference-values.yaml")
    with open(path) as fh:
        ref = yaml.safe_load(fh) or {}
    if not isinstance(ref.get("files", {}), dict):
        raise MeasurementError(path, "'files' must map file names to their reference values")
    return ref


def _ref_for(ref: dict, name: str) -> dict:
    files = ref.get("files", {}) or {}
    if name in files:
        return files[name]
    low = {k.lower(): v for k, v in files.items()}
    return low.get(name.lower(), {})


def check_value(pred: float, spec: dict) -> tuple[float, float, bool]:
    """(difference, tolerance, within) of a prediction against ``{value, tol | tol_rel, abs}``."""
    ref = float(spec["value"])
    p = abs(pred) if spec.get("abs") else pred
    r = abs(ref) if spec.get("abs") else ref
    tol = float(spec["tol"]) if "tol" in spec else float(spec.get("tol_rel", 0.0)) * abs(r)
    diff = p - r
    return diff, tol, bool(np.isfinite(p) and abs(diff) <= tol)


def check_reference(result: dict, ref_entry: dict) -> list[dict]:
    rows = []
    for q, spec in (ref_entry.get("values") or {}).items():
        if q not in result["values"]:
            rows.append({"file": result["file"], "quantity": q, "pred": None, "unc": None, "ref": spec["value"],
                         "diff": None, "tol": None, "ok": None, "units": spec.get("units", ""),
                         "note": "not predicted by this run"})
            continue
        v = result["values"][q]
        diff, tol, ok = check_value(v["value"], spec)
        rows.append({"file": result["file"], "quantity": q, "pred": v["value"], "unc": v.get("unc"),
                     "ref": spec["value"], "diff": diff, "tol": tol, "ok": ok, "units": spec.get("units", ""),
                     "note": spec.get("source", "")})
    if "class" in ref_entry and result.get("class") is not None:
        rows.append({"file": result["file"], "quantity": "class", "pred": result["class"],
                     "unc": result.get("class_prob"), "ref": ref_entry["class"], "diff": None, "tol": None,
                     "ok": result["class"] == ref_entry["class"], "units": "", "note": ""})
    if "edges" in ref_entry and result.get("edges") is not None:
        found = [e["label"] for e in result["edges"]]
        for lab in ref_entry["edges"]:
            rows.append({"file": result["file"], "quantity": f"edge {lab}", "pred": ", ".join(found), "unc": None,
                         "ref": lab, "diff": None, "tol": None, "ok": lab in found, "units": "", "note": ""})
    return rows


def check_series(results: list[dict], ref: dict) -> list[dict]:
    rows = []
    by_name = {r["file"].lower(): r for r in results}
    for sname, s in (ref.get("series") or {}).items():
        pts = []
        for f, var in zip(s["files"], s["values"]):
            r = by_name.get(f.lower())
            if r is not None and s["quantity"] in r["values"]:
                pts.append((var, r["values"][s["quantity"]]["value"]))
        if len(pts) < 2:
            continue
        pts.sort()
        ys = [p[1] for p in pts]
        rising = s.get("expect", "increasing") == "increasing"
        ok = all((b > a) if rising else (b < a) for a, b in zip(ys, ys[1:]))
        rows.append({"file": f"series {sname}", "quantity": s["quantity"],
                     "pred": ", ".join(f"{v:g}:{y:.4g}" for v, y in pts), "unc": None,
                     "ref": s.get("expect", "increasing") + f" with {s.get('variable', 'x')}", "diff": None,
                     "tol": None, "ok": ok, "units": s.get("units", ""), "note": ""})
    return rows


def _fmt(v, unc=None) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    s = f"{v:.5g}"
    if unc is not None and isinstance(unc, (float, int)) and np.isfinite(unc):
        s += f" ± {unc:.2g}"
    return s


def format_table(rows: list[dict]) -> str:
    head = ["file", "quantity", "predicted", "reference", "diff", "tol", "ok"]
    body = [[r["file"], r["quantity"], _fmt(r["pred"], r["unc"]) if r["quantity"] != "class" else
             f"{r['pred']} (p {r['unc']:.2f})" if r["unc"] is not None else str(r["pred"]),
             _fmt(r["ref"]) + (f" {r['units']}" if r.get("units") else ""), _fmt(r["diff"]), _fmt(r["tol"]),
             "-" if r["ok"] is None else ("PASS" if r["ok"] else "FAIL")] for r in rows]
    w = [max(len(str(x)) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    lines = ["  ".join(str(x).ljust(n) for x, n in zip(head, w)), "  ".join("-" * n for n in w)]
    lines += ["  ".join(str(x).ljust(n) for x, n in zip(row, w)) for row in body]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ validate
#: median |z| (the prepared input standardised with the training corpus's statistics) above which a measurement
#: is out of domain: simulated spectra sit near 1; a file in other units or scaled by orders of magnitude is far out
MAX_MEDIAN_Z = 30.0


def check_input_range(run, x: np.ndarray, m: Measurement) -> None:
    """Refuse (:class:`~train.modalities.OutOfDomain`) a prepared input whose values lie far outside what the
    network was trained on (e.g. a G(r) scaled by 1e6, a spectrum in other units), instead of predicting."""
    z = np.abs(run.normalisers.x.transform(np.asarray(x, np.float32)))
    med = float(np.median(z))
    if not np.isfinite(med) or med > MAX_MEDIAN_Z:
        raise modalities.OutOfDomain(m.source, f"its prepared values are {med:.3g} standard deviations (median) from "
                                     f"the training corpus's (at most {MAX_MEDIAN_Z:g} expected): other units or "
                                     "scaling than the model was trained on")


def predict_measurement(run, m: Measurement, spec=None, mc: int = 30, prepare_kw=None, log=print,
                        refine: bool = True):
    """Prepare one measurement for ``run`` and predict: ``(result, Prepared)``.

    ``result`` holds ``values`` (every target and the adapter's derived quantities, ``{"value", "unc"}``; image
    tiles averaged), and for classifiers ``class``, ``class_prob`` and ``class_probs`` (restricted to the classes
    the file can be, :meth:`train.modalities.Adapter.allowed_classes`).  Preparation warnings are logged.
    With ``refine`` (default) the adapter's physics refinement (:meth:`train.modalities.Adapter.refine`) follows
    the network where the modality has one; the network's own values stay in ``result['network']``.
    Raises MeasurementError / OutOfDomain like :func:`train.prepare.prepare`."""
    spec = spec if spec is not None else target_spec(run)
    adapter = modalities.get(spec.simulator)
    names = list(run.task.targets)
    prep = prepare(m, spec, **(prepare_kw or {}))
    if prep.info.get("warning"):
        log(f"{m.name}: warning: {prep.info['warning']}")
    check_input_range(run, prep.x, m)
    allowed = adapter.allowed_classes(m, list(run.task.classes)) if run.task.classify else None
    pr = predict_with_uncertainty(run, prep.x, mc=mc, allowed=allowed)
    res: dict = {"file": m.name, "path": m.source, "modality": m.modality, "prepare": prep.info,
                 "uncertainty": pr["method"], "values": {}}
    if pr["samples"] is not None:
        S = pr["samples"]  # (T, n, targets); image tiles: average over tiles
        per = {t: S[..., j] for j, t in enumerate(names)}
        per.update(adapter.derived(names, S, prep.info))
        for q, arr in per.items():
            tile_mean = arr.mean(axis=-1)  # (T,)
            unc = float(tile_mean.std()) if arr.shape[0] > 1 else None
            if arr.shape[0] == 1 and arr.shape[-1] > 1:  # no MC: spread over tiles is the only spread
                unc = float(arr[0].std())
            res["values"][q] = {"value": float(tile_mean.mean()), "unc": unc}
    if pr["probs"] is not None:
        probs = pr["probs"].mean(0)
        if allowed is not None and any(allowed) and not all(allowed):
            mask = np.asarray(allowed, bool)
            res["class_restricted_to"] = [c for c, a in zip(run.task.classes, allowed) if a]
            probs = np.where(mask, probs, 0.0)
            probs = probs / probs.sum() if probs.sum() > 0 else mask / mask.sum()
        k = int(np.argmax(probs))
        res["class"] = run.task.classes[k]
        res["class_prob"] = float(probs[k])
        res["class_probs"] = {c: float(p) for c, p in zip(run.task.classes, probs)}
    if refine:
        adapter.refine(m, prep, res, run, spec)
        if res.get("warning"):      # e.g. a rejected refinement: the network's values stand
            log(f"{m.name}: warning: {res['warning']}")
    adapter.annotate(m, res)
    return res, prep


def validate(run, files, reference=None, out=None, mc: int = 30, overlay: bool = True, prepare_kw=None,
             device: str = "cpu", log=print) -> dict:
    """Predict on measured files with a trained run and compare with reference values.

    Parameters
    ----------
    run : path or Run
        A run directory written by ``simtrain fit`` (or a loaded :class:`train.run.Run`).
    files : list of path or Measurement
        Measured files (any format an adapter reads) or Measurements already read.
    reference : path, dict or False, optional
        Reference-values YAML (default: the catalog's ``validation/reference-values.yaml``); False: none.
    out : path, optional
        Directory for ``validation.json``, ``table.txt`` and ``figures/<file>.png`` (measurement and simulated
        overlay at the prediction).
    mc : int
        MC-dropout passes when the network has dropout (the spread is the reported uncertainty).
    overlay : bool
        Simulate at the predicted parameters for the figures.
    prepare_kw : dict, optional
        Options of the modality's preparation (see :func:`train.prepare.prepare`).
    device : str
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    log : callable
        Where preparation warnings (e.g. a measured Qmax outside the recipe's range) are printed.

    Returns
    -------
    dict
        ``results`` (per file: values with uncertainties, derived quantities, class and probabilities, the
        preparation's steps), ``rows`` (one per reference check: predicted, reference, difference, tolerance,
        ok) and ``table`` (the rows as text).

    Raises
    ------
    MeasurementError, OutOfDomain
        A file that cannot be read or prepared, or that lies outside the model's domain, named.
    """
    from .run import load_run
    run = load_run(run, device=device) if not hasattr(run, "predict_arrays") else run
    spec = target_spec(run)
    ref = load_reference(reference) if reference is not False else {}
    sim = spec.recipe.build() if (overlay and spec.recipe is not None) else None
    out = Path(out) if out is not None else None
    results, rows = [], []
    names = list(run.task.targets)
    for f in files:
        m = f if isinstance(f, Measurement) else read(Path(f))
        res, prep = predict_measurement(run, m, spec=spec, mc=mc, prepare_kw=prepare_kw, log=log)
        ys = None
        if sim is not None:
            pred = {t: res["values"][t]["value"] for t in names if t in res["values"]}
            try:
                ys, _ = _simulate_overlay(sim, pred, res.get("class"), prep.info)
            except Exception as exc:  # the overlay must not hide the predictions
                res["overlay_error"] = f"{type(exc).__name__}: {exc}"
        if out is not None:
            fig = out / "figures" / f"{m.name}.png"
            note = "; ".join(f"{q} {_fmt(v['value'], v['unc'])}" for q, v in list(res["values"].items())[:8])
            _figure(prep, ys, fig, f"{m.name} - run {Path(run.path).name}"
                    + (f" - class {res['class']}" if res.get("class") else ""), note)
            res["figure"] = str(fig)
        results.append(res)
        rows += check_reference(res, _ref_for(ref, m.name))
    rows += check_series(results, ref)
    table = format_table(rows)
    report = {"run": str(run.path), "results": results, "rows": rows, "table": table}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        from .run import write_json
        write_json(out / "validation.json", {k: v for k, v in report.items() if k != "table"})
        (out / "table.txt").write_text(table + "\n")
    return report


# ------------------------------------------------------------------------------------------------ CLI
_TEXT_EXTS = (".txt", ".csv", ".tsv", ".asc", ".xy", "")


def read_files(run, files, slice=None, columns=None, units=None) -> list:
    """Measurements of ``files`` for ``run`` with the command line's reading options (``--slice``,
    ``--columns``, ``--units``); a plain text file is read as the run's modality (its axis kind and unit)."""
    sim = None
    out = []
    for f in files:
        if isinstance(f, Measurement):
            out.append(f)
            continue
        p = Path(f)
        modality = None
        if p.suffix.lower() in _TEXT_EXTS:
            if sim is None:
                try:
                    sim = target_spec(run).simulator
                except Exception:  # the run itself is checked (with its own message) by validate/predict
                    sim = ""
            modality = sim if sim in modalities.names() and sim != "peaks" else None
        out.append(read(p, modality, slice=slice, columns=columns, units=units))
    return out


def add_read_options(p) -> None:
    """``--slice``, ``--columns`` and ``--units``: how measured files are read (shared by validate/predict)."""
    p.add_argument("--slice", type=int, metavar="K",
                   help="multi-dimensional files (2-D EPR, Athena projects with several groups): use spectrum K "
                        "(0-based)")
    p.add_argument("--columns", metavar="AXIS,VALUES",
                   help="column files: the axis and value columns by header name, 1-based number or expression, "
                        "e.g. energy,mu or 2,'ln(col4/col5)'")
    p.add_argument("--units", metavar="UNIT",
                   help="column files whose header does not give the axis unit: eV, keV, G, mT, A ...")


def cmd_validate(args) -> int:
    kw = {}
    if getattr(args, "mw_frequency", None) is not None:
        kw["mw_frequency_GHz"] = args.mw_frequency
    if getattr(args, "pixel_size", None) is not None:
        kw["pixel_size_nm"] = args.pixel_size
    if getattr(args, "no_pad", False):
        kw["pad"] = False
    ref = args.reference if args.reference else None
    if args.no_reference:
        ref = False
    files = read_files(args.run, args.files, slice=getattr(args, "slice", None),
                       columns=getattr(args, "columns", None), units=getattr(args, "units", None))
    rep = validate(args.run, files, reference=ref, out=args.out, mc=args.mc, prepare_kw=kw,
                   device=args.device, overlay=not args.no_overlay)
    for r in rep["results"]:
        vals = ", ".join(f"{q} {_fmt(v['value'], v['unc'])}" for q, v in r["values"].items())
        cls = f" class {r['class']} (p {r['class_prob']:.2f})" if r.get("class") else ""
        edges = (" edges " + ", ".join(f"{e['label']}@{e['onset_eV']:.1f}" for e in r["edges"])) \
            if r.get("edges") else ""
        print(f"{r['file']}:{cls} {vals}{edges} [uncertainty: {r['uncertainty']}]")
    print()
    print(rep["table"])
    if args.out:
        print(f"\nwritten: {args.out}/validation.json, table.txt, figures/")
    failed = [r for r in rep["rows"] if r["ok"] is False]
    return 1 if (failed and args.strict) else 0


def register_cli(subparsers) -> None:
    """Add ``validate`` to the ``simtrain`` sub-commands."""
    p = subparsers.add_parser("validate", help="predict on measured files and compare with reference values",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run directory written by `simtrain fit`")
    p.add_argument("files", nargs="+", help="measured files (.DSC/.DTA, .par/.spc, .xml, .spe, .json, .xdi, .xmu, "
                   ".dat, .fio, .prj, .msa, .dm3/.dm4, .hspy, .gr/.fgr, .tif/.png, .txt/.csv columns)")
    p.add_argument("--reference", help="reference-values YAML (default: catalogs/validation/reference-values.yaml)")
    p.add_argument("--no-reference", action="store_true", help="do not compare with reference values")
    p.add_argument("--out", help="directory for validation.json, table.txt and figures/")
    p.add_argument("--mc", type=int, default=30, help="MC-dropout passes when the model has dropout (default 30)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--mw-frequency", type=float, help="EPR: rescale the field to this frequency (GHz)")
    p.add_argument("--pixel-size", type=float, help="micrographs: pixel size (nm) when the file has none")
    p.add_argument("--no-pad", action="store_true", help="EPR: refuse windows narrower than the model's sweep")
    p.add_argument("--no-overlay", action="store_true", help="skip the simulated overlays")
    p.add_argument("--strict", action="store_true", help="exit status 1 when a reference check fails")
    add_read_options(p)
    p.set_defaults(func=cmd_validate)
