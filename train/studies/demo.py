"""``simtrain demo``: the main job end to end on an embedded plan.

small corpora of every simulator (simgen.corpus on a local dask.distributed cluster, or ``--scheduler ADDRESS``)
-> one inverse network per corpus (train.fit) -> validation on real measured files (train.acceptance) -> the
studies of the plan (augment, adapt, nested: each a ``simtrain`` subcommand with its own verdict) -> a report
(``report.md`` and a rendered ``index.html``, :mod:`train.report`).

Plans: ``catalogs/demo/default.yaml`` (the quick default: minutes on a laptop) or ``--full``
(``catalogs/demo/full.yaml``, the sizes behind the figures quoted in the closing notes), or ``--plan FILE``.
Re-running reuses what is unchanged: corpora (the engine resumes), runs (a run directory with metrics.json),
validation and studies (same arguments, same runs); ``--fresh`` redoes them.  ``--only KEY ...`` runs those
runs/studies and keeps every other part of the previous report.  Every stage writes a progress line at least
every 30 s to the terminal and to ``demo.log``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path

import yaml

__all__ = ["run_demo", "register_cli", "Heartbeat"]


def _load_plan(path=None, full: bool = False) -> dict:
    from simgen.catalogs import find
    p = Path(path) if path else find("demo/full.yaml" if full else "demo/default.yaml")
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
        self.f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")


class Heartbeat:
    """A thread that logs ``label`` and ``status()`` every ``every`` seconds while a stage runs, so a log file
    shows progress (what is done, the rate and the time left) even when the stage itself prints nothing."""

    def __init__(self, log, label: str, status, every: float = 30.0):
        self.log, self.label, self.status, self.every = log, label, status, every
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            try:
                msg = self.status(time.perf_counter() - self._t0)
            except Exception as exc:  # noqa: BLE001 - a status probe must never kill the stage
                msg = f"(status unavailable: {type(exc).__name__})"
            self.log(f"{self.label} {msg}")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def _eta(done: float, total: float, elapsed: float, unit: str) -> str:
    if done <= 0:
        return f"0/{total:g} {unit} after {elapsed:.0f} s"
    rate = done / elapsed
    left = (total - done) / rate if rate > 0 else float("nan")
    return f"{done:g}/{total:g} {unit} ({rate:.3g} {unit}/s, ~{left / 60:.1f} min left)"


def _store_status(store: Path, n_chunks_hint=None):
    def status(elapsed):
        import zarr
        try:
            crc = zarr.open_group(str(store), mode="r", use_consolidated=False)["_chunk_crc32"][:]
        except Exception:  # noqa: BLE001 - store not created yet
            return f"preparing the store ({elapsed:.0f} s)"
        return _eta(int((crc >= 0).sum()), len(crc), elapsed, "chunks")
    return status


def _run_status(run_dir: Path, epochs: int):
    def status(elapsed):
        h = run_dir / "progress.json"
        done = json.loads(h.read_text())["epoch"] if h.exists() else 0
        return _eta(done, epochs, elapsed, "epochs")
    return status


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _build_corpora(plan, out, only, fresh, workers, scheduler, scale, summary, log):
    from simgen import corpus as sc
    from simgen.cli import _start_cluster, plot_samples
    from simgen.recipe import load_recipe
    wanted = {plan["runs"][r]["corpus"] for r in plan["runs"] if not only or r in only}
    client = cluster = None
    try:
        for key, spec in plan["corpora"].items():
            if key not in wanted:
                continue
            why = _available(spec["recipe"])
            if why:
                summary["corpora"][key] = {"recipe": spec["recipe"], "skipped": why}
                log(f"[corpus {key}] skipped: {why}")
                continue
            recipe = load_recipe(spec["recipe"], overrides=spec.get("set"))
            if client is None:
                if scheduler:
                    from distributed import Client
                    client = Client(scheduler, timeout="20s")
                else:
                    client, cluster = _start_cluster(workers)
            store = out / "corpora" / f"{key}.zarr"
            n = max(16, int(spec["n"] * scale))
            log(f"[corpus {key}] {spec['recipe']}: {n} samples -> {store}")
            try:
                with Heartbeat(log, f"[corpus {key}]", _store_status(store)):
                    s = sc.build(recipe, n, store, chunk_rows=spec.get("chunk_rows"), client=client,
                                 progress=sys.stderr.isatty(), overwrite=bool(fresh))
            except Exception as exc:  # noqa: BLE001 - a refused store is reported, never overwritten silently
                summary["corpora"][key] = {"recipe": spec["recipe"], "error": f"{type(exc).__name__}: {exc}"}
                hint = " (run with --fresh to rebuild it)" if "refus" in str(exc) else ""
                summary["errors"].append(f"corpus {key}: {exc}{hint}")
                log(f"[corpus {key}] FAILED: {exc}{hint}")
                continue
            log(f"[corpus {key}] {s}")
            fig = out / "figures" / f"corpus-{key}.png"
            c = sc.open(store)
            sim = c.simulator()
            if not sim.plot_corpus(c, fig, n=6):
                plot_samples(c, fig, n=6)
            summary["corpora"][key] = {"recipe": spec["recipe"], "store": str(store), "n": n, "seed": recipe.seed,
                                       "seconds": s.seconds, "samples_per_s": s.samples_per_s,
                                       "store_mb": s.store_bytes / 1e6, "figure": str(fig.relative_to(out)),
                                       "simulator": c.simulator_name, "targets": list(c.param_names),
                                       "classes": list(c.classes)}
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _train_runs(plan, out, only, fresh, device, threads, summary, log) -> list[str]:
    """Train (or reuse) every run of the plan; returns the keys trained anew."""
    from ..fit import FitConfig, fit
    from ..run import load_run
    trained = []
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
                load_run(run_dir)
                log(f"[run {rk}] reusing {run_dir}")
            else:
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                epochs = int(r.get("epochs", 20))
                log(f"[run {rk}] {r['model']} on {r['corpus']} ({r['task']}), {epochs} epochs, {threads} threads")
                cfg = FitConfig(store=ck["store"], task=r["task"], model=r["model"], model_kw=r.get("model_kw", {}),
                                epochs=epochs, batch_size=int(r.get("batch_size", 128)),
                                lr=float(r.get("lr", 1e-3)), patience=int(r.get("patience", 6)),
                                x_norm=r.get("x_norm"), weight_decay=float(r.get("weight_decay", 0.0)),
                                threads=r.get("threads") or threads, lr_schedule=r.get("lr_schedule", "plateau"),
                                log_targets=list(r.get("log_targets", [])), augment=r.get("augment", "none"),
                                y_norm=r.get("y_norm", "global"), seed=int(r.get("seed", 0)),
                                device=device, out=str(run_dir), progress=sys.stderr.isatty())
                with Heartbeat(log, f"[run {rk}]", _run_status(run_dir, epochs)):
                    fit(cfg, log=log)
                trained.append(rk)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            figs = sorted(str(p.relative_to(out)) for p in run_dir.rglob("*.png"))
            summary["runs"][rk] = {"dir": str(run_dir), "model": r["model"], "corpus": r["corpus"],
                                   "task": r["task"], "seed": int(r.get("seed", 0)), "metrics": metrics,
                                   "figures": figs}
        except Exception as exc:  # noqa: BLE001 - one failing stage must not hide the others
            summary["runs"][rk] = {"error": f"{type(exc).__name__}: {exc}"}
            summary["errors"].append(f"run {rk}: {exc}")
            log(traceback.format_exc())
    return trained


def _validate(plan, out, device, summary, previous, trained, log):
    from ..acceptance import acceptance
    runs = {k: summary["runs"][v]["dir"] for k, v in (plan.get("acceptance") or {}).items()
            if v in summary["runs"] and "dir" in summary["runs"][v]}
    key = _digest(runs)
    old = previous.get("acceptance") or {}
    if old.get("key") == key and not trained:
        summary["acceptance"] = old
        log("[validate] reusing the previous validation (same runs)")
        return
    log(f"[validate] real measurements with runs {runs}")
    with Heartbeat(log, "[validate]", lambda e: f"validating ({e:.0f} s)"):
        acc = acceptance(runs, out=out / "validation", mc=20, device=device, log=log)
    log(acc["table"])
    log(f"{acc['n_pass']} PASS, {acc['n_fail']} FAIL, {acc['n_unchecked']} not checked")
    figs = sorted(str(p.relative_to(out)) for p in (out / "validation").rglob("*.png")) \
        if (out / "validation").exists() else []
    summary["acceptance"] = {k: acc[k] for k in ("rows", "skipped", "n_pass", "n_fail", "n_unchecked", "table")}
    summary["acceptance"].update(figures=figs, key=key)


def _run_studies(plan, out, only, fresh, device, threads, summary, previous, log):
    from ..cli import main as simtrain
    for st in plan.get("studies") or []:
        name = st["name"]
        if only and name not in only:
            continue
        dest = out / "studies" / name
        argv = [a.format(out=dest, corpora=out / "corpora", device=device, threads=threads) for a in st["argv"]]
        old = (previous.get("studies") or {}).get(name) or {}
        if not fresh and old.get("argv") == argv and "error" not in old and old.get("rc") == 0 and dest.exists():
            summary["studies"][name] = old
            log(f"[study {name}] reusing the previous result (same arguments)")
            continue
        log(f"[study {name}] simtrain {' '.join(argv)}")
        t0 = time.perf_counter()
        try:
            with Heartbeat(log, f"[study {name}]", lambda e: f"running ({e / 60:.1f} min)"):
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


def _benchmark(plan, out, fresh, device, threads, summary, log):
    """The blind real-data benchmark on the plan's runs, each trained over ``seeds`` seeds (seed 0 is the run
    itself; the others reuse its corpus and settings)."""
    spec = plan.get("benchmark") or {}
    if not spec.get("runs"):
        return
    from ..fit import FitConfig, fit
    from ..prepare import target_spec
    from ..run import load_run
    from .. import modalities
    from .benchmark_real import benchmark_real
    seeds = int(spec.get("seeds", 3))
    groups: dict = {}
    for rk in spec["runs"]:
        base = summary["runs"].get(rk, {})
        if "dir" not in base:
            summary["errors"].append(f"benchmark: run {rk} is not available")
            continue
        dirs = [base["dir"]]
        r = plan["runs"][rk]
        for k in range(1, seeds):
            d = out / "runs" / f"{rk}-seed{k}"
            if not (d / "metrics.json").exists() or fresh:
                if d.exists():
                    shutil.rmtree(d)
                epochs = int(r.get("epochs", 20))
                log(f"[benchmark] {rk} seed {k}: {r['model']}, {epochs} epochs")
                cfg = FitConfig(store=summary["corpora"][r["corpus"]]["store"], task=r["task"], model=r["model"],
                                model_kw=r.get("model_kw", {}), epochs=epochs,
                                batch_size=int(r.get("batch_size", 128)), lr=float(r.get("lr", 1e-3)),
                                patience=int(r.get("patience", 6)), x_norm=r.get("x_norm"),
                                weight_decay=float(r.get("weight_decay", 0.0)), threads=r.get("threads") or threads,
                                lr_schedule=r.get("lr_schedule", "plateau"), log_targets=list(r.get("log_targets", [])),
                                augment=r.get("augment", "none"), y_norm=r.get("y_norm", "global"), seed=k,
                                device=device, out=str(d), progress=False)
                with Heartbeat(log, f"[benchmark {rk} seed {k}]", _run_status(d, epochs)):
                    fit(cfg, log=lambda *a, **kw: None)
            dirs.append(str(d))
        mod = target_spec(load_run(dirs[0])).simulator
        # a modality whose adapter sends each file to one of several models (XAFS: foils, oxides, 5d L3) is one
        # benchmark over all its runs; other models are benchmarked each on every file of their modality
        key = mod if hasattr(modalities.get(mod), "choose_model") else rk
        groups.setdefault(key, (mod, []))[1].extend(dirs)
    split = spec.get("split", "dev")
    log(f"[benchmark] real files of the manifest's {split} split, {seeds} seeds per network")
    head, rows, classes, lines, saved = None, [], [], [], {}
    for rk, (mod, dirs) in groups.items():
        with Heartbeat(log, f"[benchmark {rk}]", lambda e: f"predicting ({e:.0f} s)"):
            res = benchmark_real({mod: dirs}, split=split, fetch=bool(spec.get("fetch", True)), log=log)
        log(f"[benchmark {rk}]\n" + res["table"])
        head = ["network"] + res["head"]
        rows += [[rk] + r for r in res["table_rows"]]
        classes += res["classes"]
        lines += [f"{rk} ({line})" for line in res["summary_lines"]]
        saved[rk] = {k: res[k] for k in ("split", "rows", "files", "summary")}
    if head is None:
        return
    (out / "benchmark").mkdir(exist_ok=True)
    (out / "benchmark" / "benchmark.json").write_text(json.dumps(saved, indent=1, default=str))
    summary["benchmark_real"] = {"intro": f"Manifest files of the '{split}' split ('test' files are never used to "
                                          f"choose settings), {seeds} training seeds per network; PASS needs every "
                                          "seed within the tolerance. " + "; ".join(lines),
                                 "head": head, "rows": rows, "classes": classes,
                                 "summary": {rk: v["summary"] for rk, v in saved.items()}}


def run_demo(out="report", plan=None, only=None, fresh=False, workers=None, device="cpu", scale=1.0,
             skip_studies=False, full=False, scheduler=None) -> dict:
    """Run the main job; returns the summary it writes to ``out/summary.json`` and the report.

    Parameters
    ----------
    out : path
        Output directory: ``corpora/``, ``runs/``, ``validation/``, ``studies/``, ``figures/``, ``report.md``,
        ``index.html``, ``summary.json``, ``demo.log``.
    plan : path, optional
        A plan YAML (default: the catalog's ``demo/default.yaml``, or ``demo/full.yaml`` with ``full``).
    only : list of str, optional
        Run keys and study names to do; every other part of a previous report in ``out`` is kept.
    fresh : bool
        Rebuild corpora and redo runs, validation and studies instead of reusing them.
    workers : int, optional
        Local corpus worker processes (default: one per core); also the torch threads of training.
    device : str
        Training device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    scale : float
        Multiplies every corpus size.
    skip_studies : bool
        Skip the studies.
    scheduler : str, optional
        Address of an existing Dask scheduler to build the corpora on (``out`` must be visible to its workers).
    """
    import platform

    from ..report import load_summary, write_report
    from ..run import versions

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    log = _Log(out / "demo.log")
    plan = _load_plan(plan, full=full)
    only = set(only or [])
    threads = int(workers or os.cpu_count() or 1)
    previous = load_summary(out) if (only or not fresh) else {}
    if previous.get("plan") != plan["_path"]:
        previous = {}
    t_start = time.perf_counter()
    summary: dict = {"plan": plan["_path"], "corpora": {}, "runs": {}, "acceptance": None, "studies": {},
                     "errors": []}
    if only:  # keep every part of the previous report that this run does not redo
        for part in ("corpora", "runs", "studies"):
            summary[part] = dict(previous.get(part) or {})
        summary["acceptance"] = previous.get("acceptance")
        if previous.get("benchmark_real"):
            summary["benchmark_real"] = previous["benchmark_real"]
    log(f"simtrain demo: plan {plan['_path']} -> {out}" + (f" (only {', '.join(sorted(only))})" if only else ""))
    _build_corpora(plan, out, only, fresh, workers, scheduler, scale, summary, log)
    trained = _train_runs(plan, out, only, fresh, device, threads, summary, log)
    try:
        _validate(plan, out, device, summary, previous, trained, log)
    except Exception as exc:  # noqa: BLE001
        summary["errors"].append(f"validation: {exc}")
        log(traceback.format_exc())
    if not only or "benchmark" in only:
        try:
            _benchmark(plan, out, fresh, device, threads, summary, log)
        except Exception as exc:  # noqa: BLE001
            summary["errors"].append(f"benchmark: {exc}")
            log(traceback.format_exc())
    if not skip_studies:
        _run_studies(plan, out, only, fresh, device, threads, summary, previous, log)
    summary["seconds"] = time.perf_counter() - t_start
    summary["meta"] = {"versions": versions(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "machine": f"{platform.node()}: {platform.machine()}, {os.cpu_count()} cores, "
                                  f"device {device}", "threads": threads}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    write_report(out, summary)
    log(f"report: {out / 'report.md'} and {out / 'index.html'} ({summary['seconds'] / 60:.1f} min)")
    return summary


# ---------------------------------------------------------------------- CLI
def cmd_demo(args) -> int:
    s = run_demo(args.out, plan=args.plan, only=args.only, fresh=args.fresh, workers=args.workers,
                 device=args.device, scale=args.scale, skip_studies=args.no_studies, full=args.full,
                 scheduler=args.scheduler)
    return 1 if s["errors"] else 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the main job end to end: corpora -> training -> validation -> report",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("--out", default="report", help="output directory (corpora, runs, figures, report)")
    p.add_argument("--plan", help="plan YAML (default: catalogs/demo/default.yaml)")
    p.add_argument("--full", action="store_true", help="the full plan (catalogs/demo/full.yaml): larger corpora and "
                   "longer training, the figures quoted in the documentation")
    p.add_argument("--only", nargs="*", help="run keys/studies to do; the rest of the previous report is kept")
    p.add_argument("--fresh", action="store_true", help="rebuild corpora and redo runs, validation and studies")
    p.add_argument("--workers", type=int, default=None, help="corpus worker processes and torch threads "
                   "(default: one per core)")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler for the corpora (e.g. tcp://head:8786)")
    p.add_argument("--device", default="cpu", help="training device: cpu, cuda, cuda:N or auto")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every corpus size (e.g. 0.1 for a smoke run)")
    p.add_argument("--no-studies", action="store_true", help="skip the studies (augment, adapt, nested)")
    p.set_defaults(func=cmd_demo)
