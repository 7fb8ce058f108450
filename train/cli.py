"""The ``simtrain`` command: fit, cross-validate, evaluate and predict with inverse networks on simgen corpora.

    simtrain fit STORE --task regress:center,width --model mlp [--epochs 50 --device auto --out RUN]
    simtrain cv STORE --task classify --model resnet1d --folds 5
    simtrain evaluate RUN STORE
    simtrain predict RUN INPUT [--out predictions.csv|.npz]     (INPUT: a corpus store, a .npy array or a measured
                                                                 file; --slice K, --columns A,V, --units U)

Other modules add subcommands through ``register_cli(subparsers)`` (the studies of train.studies, train.validate),
each when it can be imported.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np

PLUGINS = ("train.studies.augment", "train.studies.adapt", "train.studies.nested", "train.validate", "train.studies.demo",
           "train.studies.benchmark_real", "train.studies.adapt_real")


def _model_kw(items) -> dict:
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-opt {item!r}: expected KEY=VALUE, e.g. depth=34 or hidden=[128,64]")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def _config(args):
    from .fit import FitConfig
    kw = _model_kw(args.model_opt)
    if getattr(args, "cwt", False):
        kw["cwt"] = True
    return FitConfig(store=args.store, task=args.task, model=args.model, model_kw=kw, epochs=args.epochs,
                     batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                     patience=args.patience, lr_schedule=args.lr_schedule, val=args.val,
                     test=getattr(args, "test", 0.0), seed=args.seed, x_norm=args.x_norm, device=args.device,
                     threads=args.threads,
                     log_targets=[t for t in (args.log_targets or "").split(",") if t],
                     augment=getattr(args, "augment", "none"), y_norm=getattr(args, "y_norm", "global"),
                     num_workers=args.workers, cache=args.cache, simulate=args.simulate,
                     batches_per_epoch=args.batches_per_epoch, max_train_rows=args.max_train_rows,
                     out=args.out, resume=getattr(args, "resume", False), progress=not args.quiet,
                     verify=args.verify)


def cmd_fit(args) -> int:
    from .fit import fit, format_metrics
    run = fit(_config(args))
    m = run.metrics
    print(f"run: {run.path}")
    print(f"{m['split']} split ({m['n']} samples), device {m.get('device')}"
          + (f", best epoch {m['best_epoch']} of {m['epochs_run']}" if "best_epoch" in m else ""))
    print(format_metrics(m))
    return 0


def cmd_cv(args) -> int:
    from .fit import cross_validate, format_cv
    res = cross_validate(_config(args), k=args.folds)
    print(format_cv(res))
    return 0


def cmd_evaluate(args) -> int:
    from .fit import format_metrics
    from .run import load_run, write_json
    run = load_run(args.run, device=args.device)
    m = run.evaluate(args.store, figures_dir=args.figures)
    print(f"{args.store}: {format_metrics(m)}")
    if args.out:
        write_json(args.out, m)
    return 0


def cmd_predict(args) -> int:
    from .data import open_store
    from .run import load_run
    run = load_run(args.run, device=args.device)
    inp = Path(args.input)
    if inp.suffix == ".npy":
        pred = run.predict(np.load(inp))
    elif inp.is_file():  # a measured file: read, prepare onto the run's axis, predict
        from .prepare import prepare
        from .validate import read_files
        m = read_files(run, [inp], slice=args.slice, columns=args.columns, units=args.units)[0]
        prep = prepare(m, run)
        if prep.info.get("warning"):
            print(f"{m.name}: warning: {prep.info['warning']}")
        pred = run.predict(prep.x)
    else:  # chunk by chunk: the store need not fit in memory
        c = open_store(inp)
        run.check_store(c)
        parts = [run.predict(c.x[c.chunk_slice(k)]) for k in range(c.n_chunks)]
        pred = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cols = [k for k in pred if k not in ("class_probs", "class_index")]
    n = len(next(iter(pred.values())))
    if args.out:
        out = Path(args.out)
        if out.suffix == ".csv":
            import csv
            with open(out, "w", newline="") as f:
                w = csv.writer(f)
                probs = [f"p_{c}" for c in run.task.classes] if run.task.classify else []
                w.writerow(cols + probs)
                for i in range(n):
                    row = [pred[k][i] for k in cols]
                    if probs:
                        row += [f"{p:.6g}" for p in pred["class_probs"][i]]
                    w.writerow(row)
        else:
            np.savez(out, **{k: (v.astype(str) if v.dtype == object else v) for k, v in pred.items()})
        print(f"{n} predictions written to {out}")
    show = min(n, args.show)
    print("\t".join(["#"] + cols))
    for i in range(show):
        print("\t".join([str(i)] + [f"{pred[k][i]:.5g}" if k != "class" else str(pred[k][i]) for k in cols]))
    if n > show:
        print(f"... ({n} samples; --out FILE to save them all)")
    return 0


def _common(p, eval_test: bool = True):
    p.add_argument("store", help="corpus store (from `simgen generate`)")
    p.add_argument("--task", default="regress",
                   help="regress[:t1,t2,...] | classify | both[:t1,...] (default: regress all targets)")
    p.add_argument("--model", default="mlp", help="mlp | resnet1d | cnn2d | cwt-cnn2d | baseline-rf | "
                                                  "baseline-gb | ... (default mlp)")
    p.add_argument("--model-opt", action="append", metavar="KEY=VALUE",
                   help="model option (JSON value), e.g. depth=34, hidden=[128,64,32], width=32")
    p.add_argument("--cwt", action="store_true", help="Morlet CWT input (scales 1-128) for image models")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--patience", type=int, default=10, help="early stopping: epochs without improvement")
    p.add_argument("--lr-schedule", choices=["plateau", "cosine", "none"], default="plateau")
    p.add_argument("--val", type=float, default=0.1, help="validation fraction (early stopping)")
    if eval_test:
        p.add_argument("--test", type=float, default=0.1, help="held-out test fraction (metrics)")
        p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    p.add_argument("--x-norm", choices=["channel", "global", "none"], default=None)
    p.add_argument("--log-targets", metavar="T1,T2", help="learn these (positive) targets as log10")
    p.add_argument("--augment", choices=["none", "dihedral", "misfit"], default="none",
                   help="dihedral: random 90-degree rotations and flips of training images; misfit: add up to "
                        "10 %% of the difference of two other samples (model-error robustness)")
    p.add_argument("--y-norm", choices=["global", "class"], default="global",
                   help="class: standardise targets per class (their ranges differ between classes; --task both)")
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--cache", choices=["auto", "memory", "stream"], default="auto",
                   help="auto: hold the split in memory below 512 MiB, else stream chunk blocks")
    p.add_argument("--simulate", action="store_true", help="train on fresh simulated samples (unlimited data)")
    p.add_argument("--batches-per-epoch", type=int, default=None)
    p.add_argument("--max-train-rows", type=int, default=None, help="baseline: subsample the training split")
    p.add_argument("--verify", action="store_true", help="check every chunk's CRC before training")
    p.add_argument("--out", help="run directory (default runs/<store>-<model>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _version() -> str:
    import importlib.metadata as md
    try:
        return md.version("simgen")
    except md.PackageNotFoundError:  # pragma: no cover - a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simtrain", description="Train inverse networks on simgen corpora.")
    p.add_argument("--version", action="version", version=f"simtrain (simgen) {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="train a model on a store (held-out validation and test splits)")
    _common(f)
    f.set_defaults(func=cmd_fit)
    cv = sub.add_parser("cv", help="k-fold cross-validation: mean ± std of every metric over folds")
    _common(cv, eval_test=False)
    cv.add_argument("--folds", type=int, default=5)
    cv.set_defaults(func=cmd_cv)
    e = sub.add_parser("evaluate", help="metrics of a trained run on a store")
    e.add_argument("run")
    e.add_argument("store")
    e.add_argument("--device", default="auto")
    e.add_argument("--figures", help="directory for parity/confusion figures")
    e.add_argument("--out", help="write the metrics as JSON here")
    e.set_defaults(func=cmd_evaluate)
    pr = sub.add_parser("predict", help="predict with a trained run on a store or a .npy array")
    pr.add_argument("run")
    pr.add_argument("input", help="corpus store, .npy array of shape (n, *axis), or a measured file")
    pr.add_argument("--out", help="predictions file (.csv or .npz)")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--show", type=int, default=10, help="rows to print")
    from .validate import add_read_options
    add_read_options(pr)
    pr.set_defaults(func=cmd_predict)
    broken = []
    for mod in PLUGINS:
        try:
            m = importlib.import_module(mod)
        except ImportError as exc:  # listed in --help with the reason, never hidden
            broken.append(f"{mod.rsplit('.', 1)[-1]} ({mod}: {type(exc).__name__}: {exc})")
            continue
        reg = getattr(m, "register_cli", None)
        if callable(reg):
            reg(sub)
    from . import modalities
    bad = {k: v for k, v in modalities.available().items() if v != "ok"}
    lines = []
    if broken:
        lines.append("unavailable subcommands: " + "; ".join(broken))
    if bad:
        lines.append("modality adapters that cannot be imported: " + "; ".join(bad.values()))
    if lines:
        p.epilog = "\n".join(lines)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    return p


def main(argv=None) -> int:
    from simgen.errors import SimgenError
    from .data import TaskError
    from .models import ShapeError
    from .run import RunError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SimgenError, TaskError, ShapeError, RunError, KeyError, ValueError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"simtrain: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
