"""``simtrain demo``: the main job end to end on an embedded default plan.

small corpora of every simulator (simgen.corpus on a local dask.distributed cluster) -> one inverse network per
corpus (train.fit) -> validation on real measured files (train.acceptance) -> VAE studies (``studies`` of the
plan, each a ``simtrain`` subcommand) -> ``report.md`` and ``index.html`` with every figure.

The plan is ``catalogs/demo/default.yaml`` unless ``--plan`` names another.  Re-running reuses finished corpora
(the engine resumes) and finished runs (a run directory with metrics.json); ``--fresh`` redoes the runs.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import yaml

__all__ = ["run_demo", "register_cli"]


def _load_plan(path) -> dict:
    from simgen.catalogs import find
    p = Path(path) if path else find("demo/default.yaml")
    plan = yaml.safe_load(Path(p).read_text()) or {}
    for key in ("corpora", "runs"):
        if not isinstance(plan.get(key), dict):
            raise ValueError(f"demo plan {p}: field '{key}' must be a mapping")
    for rk, r in plan["runs"].items():
        if r.get("corpus") not in plan["corpora"]:
            raise ValueError(f"demo plan {p}: field 'runs.{rk}.corpus': got {r.get('corpus')!r}; expected one of "
                             f"{', '.join(plan['corpora'])}")
    plan["_path"] = str(p)
    return plan


def _available(recipe: str) -> str | None:
    """None if the recipe loads, else why not (a simulator not installed, say)."""
    from simgen.recipe import load_recipe
    try:
        load_recipe(recipe)
        return None
    except Exception as exc:  # noqa: BLE001 - reported in the report
        return f"{type(exc).__name__}: {exc}"


class _Log:
    def __init__(self, path: Path):
        self.f = open(path, "a", buffering=1)

    def __call__(self, *args):
        msg = " ".join(str(a) for a in args)
        print(msg, flush=True)
        self.f.write(msg + "\n")


def run_demo(out="report", plan=None, only=None, fresh=False, workers=None, device="cpu", scale=1.0,
             skip_studies=False) -> dict:
    from simgen import corpus as sc

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    log = _Log(out / "demo.log")
    plan = _load_plan(plan)
    only = set(only or [])
    t_start = time.perf_counter()
    summary: dict = {"plan": plan["_path"], "corpora": {}, "runs": {}, "acceptance": None, "studies": {},
                     "errors": []}
    log(f"simtrain demo: plan {plan['_path']} -> {out.resolve()}")

    # ------------------------------------------------------------------ corpora
    from simgen.cli import _start_cluster, plot_samples
    wanted_corpora = {plan["runs"][r]["corpus"] for r in plan["runs"] if not only or r in only}
    client = cluster = None
    try:
        for key, spec in plan["corpora"].items():
            if key not in wanted_corpora:
                continue
            from simgen.recipe import load_recipe
            why = _available(spec["recipe"])
            recipe = None if why else load_recipe(spec["recipe"], overrides=spec.get("set"))
            if why:
                summary["corpora"][key] = {"recipe": spec["recipe"], "skipped": why}
                log(f"[corpus {key}] skipped: {why}")
                continue
            if client is None:
                client, cluster = _start_cluster(workers)
            store = out / "corpora" / f"{key}.zarr"
            n = max(16, int(spec["n"] * scale))
            log(f"[corpus {key}] {spec['recipe']}: {n} samples -> {store}")
            try:
                s = sc.build(recipe, n, store, chunk_rows=spec.get("chunk_rows"), client=client,
                             progress=sys.stderr.isatty(), overwrite=True if fresh else False)
            except Exception as exc:  # noqa: BLE001
                if "refusing to overwrite" in str(exc):
                    s = sc.build(recipe, n, store, chunk_rows=spec.get("chunk_rows"), client=client,
                                 progress=sys.stderr.isatty(), overwrite=True)
                else:
                    raise
            log(f"[corpus {key}] {s}")
            fig = out / "figures" / f"corpus-{key}.png"
            c = sc.open(store)
            sim = c.simulator()
            if not sim.plot_corpus(c, fig, n=6):
                plot_samples(c, fig, n=6)
            summary["corpora"][key] = {"recipe": spec["recipe"], "store": str(store), "n": n,
                                       "seconds": s.seconds, "samples_per_s": s.samples_per_s,
                                       "store_mb": s.store_bytes / 1e6, "figure": str(fig.relative_to(out)),
                                       "simulator": c.simulator_name, "targets": list(c.param_names),
                                       "classes": list(c.classes)}
    finally:
        if client is not None:
            client.close()
            cluster.close()

    # ------------------------------------------------------------------ training
    from ..fit import FitConfig, fit
    from ..run import load_run
    for rk, r in plan["runs"].items():
        if only and rk not in only:
            continue
        ck = summary["corpora"].get(r["corpus"], {})
        if "store" not in ck:
            summary["runs"][rk] = {"skipped": f"corpus {r['corpus']} not built"}
            continue
        run_dir = out / "runs" / rk
        try:
            if (run_dir / "metrics.json").exists() and not fresh:
                run = load_run(run_dir)
                log(f"[run {rk}] reusing {run_dir}")
            else:
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                log(f"[run {rk}] {r['model']} on {r['corpus']} ({r['task']})")
                cfg = FitConfig(store=ck["store"], task=r["task"], model=r["model"], model_kw=r.get("model_kw", {}),
                                epochs=int(r.get("epochs", 20)), batch_size=int(r.get("batch_size", 128)),
                                lr=float(r.get("lr", 1e-3)), patience=int(r.get("patience", 6)),
                                x_norm=r.get("x_norm"), weight_decay=float(r.get("weight_decay", 0.0)),
                                threads=r.get("threads"), lr_schedule=r.get("lr_schedule", "plateau"),
                                log_targets=list(r.get("log_targets", [])), augment=r.get("augment", "none"),
                                y_norm=r.get("y_norm", "global"),
                                device=device, out=str(run_dir), progress=sys.stderr.isatty())
                run = fit(cfg, log=log)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            figs = sorted(str(p.relative_to(out)) for p in run_dir.rglob("*.png"))
            summary["runs"][rk] = {"dir": str(run_dir), "model": r["model"], "corpus": r["corpus"],
                                   "task": r["task"], "metrics": metrics, "figures": figs}
        except Exception as exc:  # noqa: BLE001 - one failing stage must not hide the others
            summary["runs"][rk] = {"error": f"{type(exc).__name__}: {exc}"}
            summary["errors"].append(f"run {rk}: {exc}")
            log(traceback.format_exc())

    # ------------------------------------------------------------------ validation on real files
    try:
        from ..acceptance import acceptance
        runs = {k: summary["runs"][v]["dir"] for k, v in (plan.get("acceptance") or {}).items()
                if v in summary["runs"] and "dir" in summary["runs"][v]}
        log(f"[validate] real measurements with runs {runs}")
        acc = acceptance(runs, out=out / "validation", mc=20, device=device, log=log)
        log(acc["table"])
        log(f"{acc['n_pass']} PASS, {acc['n_fail']} FAIL, {acc['n_unchecked']} not checked")
        figs = sorted(str(p.relative_to(out)) for p in (out / "validation").rglob("*.png")) \
            if (out / "validation").exists() else []
        summary["acceptance"] = {k: acc[k] for k in ("rows", "skipped", "n_pass", "n_fail", "n_unchecked",
                                                      "table")}
        summary["acceptance"]["figures"] = figs
    except Exception as exc:  # noqa: BLE001
        summary["errors"].append(f"validation: {exc}")
        log(traceback.format_exc())

    # ------------------------------------------------------------------ studies (VAEs, ...)
    if not skip_studies:
        from ..cli import main as simtrain
        for st in plan.get("studies") or []:
            name = st["name"]
            if only and name not in only:
                continue
            dest = out / "studies" / name
            argv = [a.format(out=dest, corpora=out / "corpora", device=device) for a in st["argv"]]
            log(f"[study {name}] simtrain {' '.join(argv)}")
            t0 = time.perf_counter()
            try:
                rc = simtrain(argv)
                figs = sorted(str(p.relative_to(out)) for p in dest.rglob("*.png")) if dest.exists() else []
                res = {}
                for j in sorted(dest.rglob("*.json")) if dest.exists() else []:
                    try:
                        res[str(j.relative_to(out))] = json.loads(j.read_text())
                    except Exception:  # noqa: BLE001
                        pass
                summary["studies"][name] = {"rc": rc, "argv": argv, "seconds": time.perf_counter() - t0,
                                            "figures": figs, "results": res}
                if rc != 0:
                    summary["errors"].append(f"study {name}: exit status {rc}")
            except Exception as exc:  # noqa: BLE001
                summary["studies"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                summary["errors"].append(f"study {name}: {exc}")
                log(traceback.format_exc())

    summary["seconds"] = time.perf_counter() - t_start
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    write_report(out, summary)
    log(f"report: {out / 'report.md'} and {out / 'index.html'} ({summary['seconds'] / 60:.1f} min)")
    return summary


# ---------------------------------------------------------------------- report
def _metric_lines(metrics: dict) -> list[str]:
    test = metrics.get("test") or metrics.get("val") or metrics
    lines = []
    reg = test.get("regression") or {}
    for name, m in reg.items():
        if isinstance(m, dict) and "r2" in m:
            lines.append(f"{name}: R² {m['r2']:.3f}, MAE {m['mae']:.4g}")
    cls = test.get("classification")
    if cls:
        lines.append(f"class: accuracy {cls['accuracy']:.3f}, macro F1 {cls.get('macro_f1', float('nan')):.3f}")
    return lines


def write_report(out: Path, s: dict) -> None:
    md = ["# simgen demo report", "", f"Plan: `{s['plan']}`; total {s.get('seconds', 0) / 60:.1f} min.", ""]
    if s["errors"]:
        md += ["**Stages that failed:**", ""] + [f"- {e}" for e in s["errors"]] + [""]
    md += ["## Corpora", "", "| corpus | recipe | simulator | n | samples/s | store MB | targets | classes |",
           "|---|---|---|---|---|---|---|---|"]
    for k, c in s["corpora"].items():
        if "skipped" in c:
            md.append(f"| {k} | {c['recipe']} | skipped: {c['skipped'][:80]} | | | | | |")
        else:
            md.append(f"| {k} | {c['recipe']} | {c['simulator']} | {c['n']} | {c['samples_per_s']:,.0f} | "
                      f"{c['store_mb']:.1f} | {', '.join(c['targets'][:6])} | {len(c['classes'])} |")
    md.append("")
    for k, c in s["corpora"].items():
        if "figure" in c:
            md += [f"![{k}]({c['figure']})", ""]
    md += ["## Inverse networks (held-out test split)", ""]
    for k, r in s["runs"].items():
        if "metrics" in r:
            md += [f"### {k}: {r['model']} on {r['corpus']} ({r['task']})", ""]
            md += [f"- {line}" for line in _metric_lines(r["metrics"])] + [""]
            md += [f"![{k}]({f})" for f in r["figures"]] + [""]
        else:
            md += [f"### {k}", "", f"- {r.get('error') or r.get('skipped')}", ""]
    md += ["## Validation on real measurements", ""]
    acc = s.get("acceptance")
    if acc:
        md += ["```", acc["table"], "```", "",
               f"{acc['n_pass']} PASS, {acc['n_fail']} FAIL, {acc['n_unchecked']} not checked", ""]
        md += [f"- skipped: {x}" for x in acc["skipped"]] + [""]
        md += [f"![validation]({f})" for f in acc.get("figures", [])] + [""]
    if s["studies"]:
        md += ["## Studies", ""]
        for k, st in s["studies"].items():
            md += [f"### {k}", ""]
            if "error" in st:
                md += [f"- error: {st['error']}", ""]
                continue
            md += [f"- `simtrain {' '.join(st['argv'])}`: exit {st['rc']}, {st['seconds']:.0f} s", ""]
            for name, res in st["results"].items():
                text = json.dumps(res, indent=1, default=str)
                md += [f"<details><summary>{name}</summary>", "", "```json", text[:6000], "```", "</details>", ""]
            md += [f"![{k}]({f})" for f in st["figures"]] + [""]
    text = "\n".join(md)
    (out / "report.md").write_text(text)
    # a self-contained HTML view of the same content
    body = []
    for line in md:
        if line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            body.append(f'<p><img src="{html.escape(src)}" style="max-width:100%"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        else:
            body.append(html.escape(line) if not line.startswith("<") else line)
    (out / "index.html").write_text("<!doctype html><meta charset='utf-8'><title>simgen demo</title>"
                                    "<body style='font-family:sans-serif;max-width:1100px;margin:auto'><pre "
                                    "style='white-space:pre-wrap'>" + "\n".join(body).replace("</pre>", "") +
                                    "</pre></body>")


# ---------------------------------------------------------------------- CLI
def cmd_demo(args) -> int:
    s = run_demo(args.out, plan=args.plan, only=args.only, fresh=args.fresh, workers=args.workers,
                 device=args.device, scale=args.scale, skip_studies=args.no_studies)
    return 1 if s["errors"] else 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the main job end to end: corpora -> training -> validation -> report")
    p.add_argument("--out", default="report", help="output directory (corpora, runs, figures, report)")
    p.add_argument("--plan", help="demo plan YAML (default: catalogs/demo/default.yaml)")
    p.add_argument("--only", nargs="*", help="run keys/studies to do (default: all)")
    p.add_argument("--fresh", action="store_true", help="rebuild corpora and retrain")
    p.add_argument("--workers", type=int, default=None, help="corpus worker processes (default: one per core)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every corpus size (e.g. 0.1 for a smoke run)")
    p.add_argument("--no-studies", action="store_true", help="skip the VAE studies")
    p.set_defaults(func=cmd_demo)


def main(argv=None) -> int:  # pragma: no cover - convenience
    ap = argparse.ArgumentParser(prog="simtrain demo")
    sub = ap.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = ap.parse_args(["demo", *(argv or sys.argv[1:])])
    return args.func(args)
