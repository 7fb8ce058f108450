"""``simtrain benchmark-real``: trained networks on real measured files they were never tuned on.

Driven by the validation manifest (``catalogs/validation/manifest.yaml``: every measured file with source, licence,
modality, known values with references, and a split) and the benchmark spec (``catalogs/validation/benchmark.yaml``:
per modality, which known value is compared with which prediction, and the tolerance).  For each file of the chosen
split and each modality that has runs:

* the file is read with the manifest's reading options and prepared by the modality's adapter; a file outside a
  run's domain is reported as "out of domain: <reason>", never given a number;
* every run of the modality (one per training seed) predicts; the table gives mean ± std over seeds, the error of
  the mean, and PASS only when **every** seed is within the tolerance (a borderline pass on one seed is no pass);
* beside it, the mean predictor: the average of the quantity over the run's training corpus (the prior mean);
* runs of one modality trained on different corpora (several recipes: metal foils, oxides, 5d L3 edges) form one
  model each; every file is read by the model its modality's adapter chooses (``Adapter.choose_model``: for XAFS
  the models whose domain holds the file's absorber and edge, then the nearest first-shell |chi(R)| peak), and a
  file no model holds is "out of domain" with each model's reason.

``dev`` files may be looked at while building; ``test`` files are for the final evaluation only (``--split test``),
never for choosing a prior, a crop, a seed or a setting.  Files missing from the download cache are fetched on first
use (``train.measurements.fetch``) unless ``fetch=False``.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np

__all__ = ["benchmark_real", "load_spec", "mean_predictor", "register_cli"]


def load_spec(path=None) -> dict:
    """The benchmark spec: modality -> manifest quantity -> {predicted, tol | tol_rel, units}."""
    import yaml
    if path is None:
        from simgen.catalogs import find
        path = find("validation/benchmark.yaml")
    spec = yaml.safe_load(Path(path).read_text()) or {}
    for mod, qs in spec.items():
        for q, s in (qs or {}).items():
            if "predicted" not in s or not ("tol" in s or "tol_rel" in s):
                raise ValueError(f"benchmark spec {path}: field '{mod}.{q}': got {s!r}; expected "
                                 "{predicted: NAME, tol: X | tol_rel: X}")
    return spec


def mean_predictor(run) -> dict[str, float]:
    """Mean of every target and derived quantity over the run's training corpus (the prior mean)."""
    from simgen import corpus as sc

    from .. import modalities
    from ..prepare import target_spec
    cfg = json.loads((Path(run.path) / "config.json").read_text())
    c = sc.open(cfg["store"])
    names = list(c.param_names)
    y = np.asarray(c.y[:], dtype=np.float64)
    out = {n: float(np.nanmean(y[:, j])) for j, n in enumerate(names)}
    der = modalities.get(target_spec(run).simulator).derived(names, y[None], {})
    out.update({q: float(np.nanmean(v)) for q, v in der.items()})
    return out


def _tolerance(s: dict, known: float) -> float:
    return float(s["tol"]) if "tol" in s else float(s["tol_rel"]) * abs(known)


def _ensure_files(entries, fetch: bool, log) -> None:
    missing = [e for e, p in entries if p is None and "package" in e]
    if missing and fetch:
        from ..measurements.datasets import cache_dir
        from ..measurements.fetch import FetchError
        from ..measurements.fetch import fetch as do_fetch
        log(f"[benchmark] fetching {len(missing)} measured file(s) into {cache_dir()}")
        try:
            do_fetch(cache_dir(), {e["package"] for e in missing})
        except FetchError as exc:  # the files stay missing and are listed as such in the table
            log(f"[benchmark] {exc}")


def benchmark_real(runs: dict, split: str = "dev", manifest=None, spec=None, fetch: bool = True, mc: int = 1,
                   log=print) -> dict:
    """Run the benchmark.

    Parameters
    ----------
    runs : dict
        modality name -> list of run directories (or Runs), one per training seed.
    split : {'dev', 'test', 'all'}
        Which manifest files to evaluate.
    manifest, spec : path, optional
        Other manifest / benchmark-spec files than the catalog's.
    fetch : bool
        Download files the manifest takes from PyPI packages when they are not in the cache.
    mc : int
        MC-dropout passes per prediction (1: deterministic; the seed spread is the reported spread).

    Returns
    -------
    dict
        ``rows`` (per file and quantity: known, mean ± std over seeds, error, tolerance, verdict, mean predictor
        and its error, whether the network beats it), ``files`` (per file: status, out-of-domain reason),
        ``summary`` per modality, ``head``/``table_rows``/``classes`` for the report and ``table`` as text.
    """
    from .. import modalities
    from ..measurements import MeasurementError, read
    from ..measurements.datasets import entry_path, manifest_files
    from ..run import load_run
    from ..validate import predict_measurement

    if split not in ("dev", "test", "all"):
        raise ValueError(f"split {split!r}: expected dev, test or all")
    spec = load_spec(spec) if not isinstance(spec, dict) else spec
    loaded = {mod: [load_run(r) if not hasattr(r, "predict_arrays") else r for r in rs] for mod, rs in runs.items()}
    models = {mod: _models(rs) for mod, rs in loaded.items()}
    means = {(mod, name): mean_predictor(rs[0]) for mod, g in models.items() for name, rs in g.items()}
    entries = [(e, p) for e, p in manifest_files(None if split == "all" else split, present=False, path=manifest)
               if e.get("modality") in loaded]
    _ensure_files(entries, fetch, log)
    entries = [(e, entry_path(e)) for e, _ in entries]
    rows, files = [], []
    for e, path in entries:
        mod = e["modality"]
        rec = {"file": e["id"], "modality": mod, "split": e.get("split"), "status": "ok"}
        files.append(rec)
        if path is None:
            rec["status"] = "missing (not in ../shared/data or the download cache)"
            continue
        try:
            m0 = read(path, **(e.get("read") or {}))
        except MeasurementError as exc:
            rec["status"] = f"unreadable: {exc}"
            continue
        name = next(iter(models[mod]))
        if len(models[mod]) > 1:
            try:
                name, route = _choose_model(mod, models[mod], m0)
            except (modalities.OutOfDomain, MeasurementError) as exc:
                rec["status"] = _refusal(exc)
                continue
            rec["route"] = route
        rec["model"] = name
        preds = []
        for run in models[mod][name]:
            try:
                res, _ = predict_measurement(run, copy.deepcopy(m0), mc=mc, log=lambda *a: None)
            except (modalities.OutOfDomain, MeasurementError) as exc:
                rec["status"] = _refusal(exc)
                break
            preds.append(res)
        if rec["status"] != "ok":
            continue
        if preds and preds[0].get("class") is not None:
            rec["class"] = [p.get("class") for p in preds]
        if preds:   # every predicted quantity (sub-shells N1..3, R1..3 beside the derived ones), mean over seeds
            rec["predicted"] = {q: float(np.mean([p["values"][q]["value"] for p in preds]))
                                for q in preds[0]["values"] if all(q in p["values"] for p in preds)}
        known = e.get("known") or {}
        for q, s in (spec.get(mod) or {}).items():
            if q not in known or not isinstance(known[q].get("value"), (int, float)):
                continue
            kv = float(known[q]["value"])
            vals = [p["values"][s["predicted"]]["value"] for p in preds if s["predicted"] in p["values"]]
            row = {"file": e["id"], "split": e.get("split"), "modality": mod, "model": name, "quantity": q,
                   "predicted_as": s["predicted"], "known": kv, "units": s.get("units", known[q].get("units", "")),
                   "ref": known[q].get("ref", ""), "tol": _tolerance(s, kv)}
            if not vals:
                row.update(verdict="not predicted")
                rows.append(row)
                continue
            v = np.asarray(vals, float)
            mp = means.get((mod, name), {}).get(s["predicted"])
            row.update(mean=float(v.mean()), std=float(v.std()), n_seeds=len(v), error=float(v.mean() - kv),
                       verdict="PASS" if bool(np.all(np.abs(v - kv) <= row["tol"])) else "FAIL",
                       mean_predictor=mp, mean_predictor_error=None if mp is None else float(mp - kv))
            row["beats_mean"] = None if mp is None else bool(abs(row["error"]) < abs(mp - kv))
            net = [p["network"][s["predicted"]]["value"] for p in preds
                   if s["predicted"] in (p.get("network") or {})]
            if net:  # a physics refinement followed the network: its own reading stays visible
                nv = np.asarray(net, float)
                row.update(predicted_as=s["predicted"] + "; network + fit", network_mean=float(nv.mean()),
                           network_std=float(nv.std()),
                           network_verdict="PASS" if bool(np.all(np.abs(nv - kv) <= row["tol"])) else "FAIL",
                           refined=preds[0].get("refined", {}).get("method"))
            rows.append(row)
    summary = {}
    for mod in loaded:
        r = [x for x in rows if x["modality"] == mod and x["verdict"] in ("PASS", "FAIL")]
        f = [x for x in files if x["modality"] == mod]
        summary[mod] = {"files": len(f), "out_of_domain": sum(x["status"].startswith("out of domain") for x in f),
                        "not_evaluated": sum(x["status"] != "ok" and not x["status"].startswith("out of domain")
                                             for x in f),
                        "checks": len(r), "pass": sum(x["verdict"] == "PASS" for x in r),
                        "beats_mean": sum(bool(x.get("beats_mean")) for x in r),
                        "seeds": min(len(g) for g in models[mod].values()),
                        "models": {n: len(g) for n, g in models[mod].items()},
                        "refined": sum("network_verdict" in x for x in r),
                        "network_pass": sum(x.get("network_verdict") == "PASS" for x in r)}
    out = {"split": split, "rows": rows, "files": files, "summary": summary}
    out.update(_table(out))
    return out


def _refusal(exc) -> str:
    """The table's status of a file a model refuses: 'out of domain: why' or 'refused: what'."""
    from .. import modalities
    if isinstance(exc, modalities.OutOfDomain):
        return f"out of domain: {exc.why}"
    return f"refused: {exc.what}"


def _models(runs) -> dict:
    """Runs of one modality grouped by training corpus (one model per corpus, its runs the training seeds), named
    by the corpus store's stem (``exafs-oxides.zarr`` -> ``exafs-oxides``), in the order given."""
    by_store: dict = {}
    for r in runs:
        try:
            store = json.loads((Path(r.path) / "config.json").read_text()).get("store", "")
        except (OSError, ValueError, TypeError):
            store = ""
        by_store.setdefault(str(store).rstrip("/"), []).append(r)
    out: dict = {}
    for store, rs in by_store.items():
        name = Path(store).stem or "model"
        if name in out:         # two corpora with one name in different folders: the folder tells them apart
            name = f"{Path(store).parent.name}/{name}"
        out[name] = rs
    return out


def _choose_model(mod, models: dict, m0):
    """(model name, how it was chosen) for measurement ``m0`` among several models of modality ``mod``."""
    from .. import modalities
    from ..prepare import target_spec
    adapter = modalities.get(mod)
    specs = {name: target_spec(rs[0]) for name, rs in models.items()}
    if hasattr(adapter, "choose_model"):
        return adapter.choose_model(copy.deepcopy(m0), specs)
    why = {}
    for name, spec in specs.items():       # no rule: the first model whose domain holds the file
        try:
            adapter.check_domain(copy.deepcopy(m0), spec)
            return name, {"rule": "first model whose domain holds the file", "candidates": list(specs)}
        except modalities.OutOfDomain as exc:
            why[name] = exc.why
    raise modalities.OutOfDomain(m0.source, "; ".join(f"{n}: {w}" for n, w in why.items()))


def _fmt(v, nd=5):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{nd}g}" if isinstance(v, float) else str(v)


def _table(res: dict) -> dict:
    head = ["file", "split", "model", "quantity", "known", "predicted (mean ± std over seeds)", "error", "tolerance",
            "verdict", "mean predictor", "beats mean predictor", "network alone (before refinement)"]
    trs, classes = [], []
    for r in res["rows"]:
        pred = "-" if "mean" not in r else f"{_fmt(r['mean'])} ± {_fmt(r['std'], 2)} ({r['n_seeds']} seeds)"
        trs.append([r["file"], r["split"], r.get("model", "-"), f"{r['quantity']} ({r['predicted_as']})",
                    f"{_fmt(r['known'])} {r['units']}".strip(), pred, _fmt(r.get("error"), 3), _fmt(r["tol"], 3),
                    r["verdict"], _fmt(r.get("mean_predictor")),
                    {True: "yes", False: "no", None: "-"}[r.get("beats_mean")],
                    "-" if "network_mean" not in r else
                    f"{_fmt(r['network_mean'])} ± {_fmt(r['network_std'], 2)} ({r['network_verdict']})"])
        classes.append({"PASS": "pass", "FAIL": "fail"}.get(r["verdict"], "skip"))
    for f in res["files"]:
        if f["status"] != "ok":
            trs.append([f["file"], f["split"], f.get("model", "-"), "-", "-", f["status"], "", "", "not judged", "",
                        "", ""])
            classes.append("skip")
    lines = ["  ".join(str(c) for c in head)] + ["  ".join(str(c) for c in r) for r in trs]
    summ = [f"{m}: {s['pass']}/{s['checks']} checks PASS on every seed, {s['beats_mean']}/{s['checks']} beat the "
            f"mean predictor, {s['out_of_domain']} of {s['files']} files out of domain, {s['not_evaluated']} not "
            f"evaluated ({s['seeds']} seeds)" + (f"; {s['refined']} checks refined by physics after the network, "
                                                 f"the network alone passes {s['network_pass']}" if s.get("refined")
                                                 else "")
            for m, s in res["summary"].items()]
    return {"head": head, "table_rows": trs, "classes": classes, "table": "\n".join(summ + [""] + lines),
            "summary_lines": summ}


# ------------------------------------------------------------------------------------------------ CLI
def cmd_benchmark(args) -> int:
    from ..prepare import target_spec
    from ..run import load_run
    from .. import modalities
    # runs of one corpus are the training seeds of one network.  Where the modality's adapter has a rule that sends
    # each file to one of several models (XAFS: metal foils, oxides, 5d L3 edges), all its runs go into one
    # benchmark; otherwise each model (PDF: bulk crystals and nanoparticles) is benchmarked on every file of its
    # modality, side by side
    groups: dict = {}
    for r in args.runs:
        run = load_run(r)
        ts = target_spec(run)
        key = (ts.simulator, "" if hasattr(modalities.get(ts.simulator), "choose_model")
               else getattr(ts.recipe, "description", "") or "")
        groups.setdefault(key, []).append(run)
    saved, tables = {}, []
    for (mod, _), runs in groups.items():
        label = Path(runs[0].path).name
        if label in saved:
            label = f"{label}-{len(saved)}"
        res = benchmark_real({mod: runs}, split=args.split, manifest=args.manifest, spec=args.spec,
                             fetch=not args.no_fetch, mc=args.mc)
        head = f"== {label} ({mod}, {len(runs)} seed{'s' if len(runs) > 1 else ''})" if len(groups) > 1 else ""
        tables.append((head + "\n" if head else "") + res["table"])
        saved[label] = {k: res[k] for k in ("split", "rows", "files", "summary")}
    print("\n\n".join(tables))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        data = next(iter(saved.values())) if len(saved) == 1 else saved
        (out / "benchmark.json").write_text(json.dumps(data, indent=1, default=str))
        (out / "benchmark.txt").write_text("\n\n".join(tables) + "\n")
        print(f"\nwritten: {out}/benchmark.json, benchmark.txt")
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("benchmark-real", help="trained runs on the manifest's real measured files, over "
                              "training seeds, beside a mean predictor", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (several of one modality = training seeds)")
    p.add_argument("--split", default="dev", choices=["dev", "test", "all"],
                   help="manifest split (test: the final evaluation only; never to choose settings)")
    p.add_argument("--manifest", help="manifest YAML (default: catalogs/validation/manifest.yaml)")
    p.add_argument("--spec", help="benchmark spec YAML (default: catalogs/validation/benchmark.yaml)")
    p.add_argument("--mc", type=int, default=1, help="MC-dropout passes per prediction (default 1)")
    p.add_argument("--no-fetch", action="store_true", help="do not download missing files")
    p.add_argument("--out", help="directory for benchmark.json and benchmark.txt")
    p.set_defaults(func=cmd_benchmark)
