"""The ``simgen`` command: generate corpora, inspect and plot them, list simulators and recipes."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .errors import SimgenError


def _parse_set(items: list[str]) -> dict:
    import yaml
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SimgenError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set params.width.high=3")
        key, _, value = item.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _start_cluster(workers: int | None):
    """A local dask.distributed cluster: one single-threaded worker process per core (numba/BLAS pinned to one).
    The workers' statistical profiler is off: it samples every thread each 10 ms and cost ~17 % of a corpus
    build's compute on the simulators' short tasks (scripts/bench_corpus.py --compute-only)."""
    import dask
    from distributed import Client, LocalCluster
    n = workers or os.cpu_count() or 1
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
    os.environ.update(env)  # inherited by the worker processes
    dask.config.set({"distributed.worker.profile.enabled": False})  # the nannies hand this config to the workers
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    return Client(cluster), cluster


def _count(flag: str):
    """argparse type: a positive integer, also written as 1e6 or 1_000_000."""
    def parse(text: str) -> int:
        from .corpus import positive_int
        try:
            return positive_int(text, flag, "a positive integer such as 1000 or 1e6")
        except SimgenError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
    parse.__name__ = flag
    return parse


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a number of seconds") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a positive number of seconds")
    return v


def _connect(address: str, timeout: float):
    """A client of an existing scheduler, or one line saying why there is none."""
    import logging

    from distributed import Client
    # a result lost with a dead worker leaves an abandoned gather task whose "exception never retrieved" report
    # would print a traceback at exit; the build reports the lost worker itself
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SimgenError(f"--scheduler {address}: cannot reach the Dask scheduler within {timeout:g} s "
                          f"({why[:160]})") from None


def _workers(client) -> int:
    try:
        return len(client.nthreads())
    except Exception:  # pragma: no cover - lost the scheduler meanwhile
        return 0


@contextlib.contextmanager
def _dask(args):
    """The client the command runs on: ``--scheduler``'s, a local cluster (``--workers`` N, default one per
    core), or None for in-process (``--workers 0``); closed (and the local cluster stopped) on the way out."""
    client = cluster = None
    try:
        if args.scheduler:
            client = _connect(args.scheduler, args.connect_timeout)
        elif args.workers != 0:
            client, cluster = _start_cluster(args.workers)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def cmd_generate(args) -> int:
    from . import corpus
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, overrides=_parse_set(args.set))
    n = args.n or recipe.corpus.get("n")
    if not n:
        raise SimgenError("--n: missing; give the number of samples (or corpus.n in the recipe)")
    t0 = time.perf_counter()
    with _dask(args) as client:
        summary = corpus.build(recipe, n, args.out, chunk_rows=args.chunk_rows, client=client,
                               overwrite=args.overwrite, compression=args.compression,
                               progress=not args.quiet, scheduler=None if client else "synchronous",
                               worker_timeout=args.worker_timeout)
    print(summary)
    print(f"total wall time {time.perf_counter() - t0:.1f} s (cluster start-up included)")
    return 0 if summary.complete else 1


def cmd_repair(args) -> int:
    from . import corpus
    c = corpus.open(args.store)
    bad = c.verify_report()
    for k, why in bad.items():
        print(f"chunk {k}: {why}")
    if not bad:
        print(f"{c.store}: all {c.n_chunks} chunks match their CRC-32; nothing to repair")
        return 0
    with _dask(args) as client:
        summary = corpus.repair(c.store, client=client, progress=not args.quiet,
                                scheduler=None if client else "synchronous", worker_timeout=args.worker_timeout)
    print(summary)
    left = corpus.open(c.store).verify()
    if left:
        print(f"still bad: chunks {left}")
    return 0 if summary.complete and not left else 1


def _ranges(c) -> dict:
    out = {}
    done = np.flatnonzero(c.chunk_crcs() >= 0)
    if len(done) == 0:
        return out
    rows = np.concatenate([np.arange(c.chunk_slice(k).start, c.chunk_slice(k).stop) for k in done])
    y = c.y[...][rows] if c.param_names else np.zeros((len(rows), 0))
    for j, (name, unit) in enumerate(zip(c.param_names, c.param_units)):
        col = y[:, j]
        ok = np.isfinite(col)
        out[name] = {"units": unit, "min": float(col[ok].min()) if ok.any() else None,
                     "max": float(col[ok].max()) if ok.any() else None, "n/a": int((~ok).sum())}
    if c.label is not None:
        lab = c.label[...][rows]
        out["_classes"] = {name: int((lab == i).sum()) for i, name in enumerate(c.classes)}
    return out


def cmd_info(args) -> int:
    from . import corpus
    c = corpus.open(args.store)
    s = c.summary()
    s["ranges"] = _ranges(c)
    if args.verify:
        report = c.verify_report()
        s["corrupted_chunks"] = sorted(report)
        s["chunk_problems"] = {str(k): v for k, v in report.items()}
    if args.recipe:
        s["recipe"] = c.meta["recipe"]
    if args.json:
        print(json.dumps(s, indent=2, default=str))
    else:
        print(f"store      {s['store']}")
        print(f"simulator  {s['simulator']} (seed {s['seed']})")
        print(f"samples    {s['n']} in {s['n_chunks']} chunks of {s['chunk_rows']}")
        state = "complete" if s["complete"] else "INCOMPLETE"
        print(f"status     {state}: {s['chunks_done']}/{s['n_chunks']} chunks done")
        print(f"version    simulator {s['simulator']} {s.get('simulator_version')}, simgen "
              f"{(s.get('versions') or {}).get('simgen', '?')}")
        cat = s.get("catalog_files")
        if cat is None:
            print("catalogs   (no digests recorded: built by an older simgen)")
        for rel, sha in (cat or {}).items():
            print(f"catalog    {rel} sha256:{sha[:16]}")
        for d, (a, b, npts, u) in s["axis"].items():
            print(f"axis       {d}: {a:g} .. {b:g} {u}, {npts} points")
        for name, r in s["ranges"].items():
            if name == "_classes":
                print("classes    " + ", ".join(f"{k}: {v}" for k, v in r.items()))
            else:
                rng = "n/a" if r["min"] is None else f"{r['min']:.6g} .. {r['max']:.6g}"
                extra = f" ({r['n/a']} not applicable)" if r["n/a"] else ""
                print(f"target     {name} [{r['units']}]: {rng}{extra}")
        if args.verify:
            bad = s["corrupted_chunks"]
            if not bad:
                print("verify     all chunks match their CRC")
            else:
                print(f"verify     {len(bad)} bad chunks: {bad}")
                for k in bad:
                    print(f"bad chunk  {k}: {s['chunk_problems'][str(k)]}")
                print(f"repair     simgen repair {s['store']}")
        if args.recipe:
            import yaml
            print(yaml.safe_dump(s["recipe"], sort_keys=False))
    ok = s["complete"] and not s.get("corrupted_chunks")
    return 0 if ok else 1


def cmd_plot(args) -> int:
    import matplotlib
    matplotlib.use("Agg")
    from . import corpus
    c = corpus.open(args.store)
    out = Path(args.out or (Path(str(c.store).rstrip("/")).with_suffix("").name + ".png"))
    sim = c.simulator()
    if sim.plot_corpus(c, out, n=args.n):
        print(f"wrote {out}")
        return 0
    plot_samples(c, out, n=args.n)
    print(f"wrote {out}")
    return 0


def plot_samples(c, out: Path, n: int = 6) -> None:
    """Generic figure of a few samples with their targets and class (1-D curves or 2-D images)."""
    import matplotlib.pyplot as plt
    done = np.flatnonzero(c.chunk_crcs() >= 0)
    if len(done) == 0:
        raise SimgenError(f"store '{c.store}': no chunk written yet, nothing to plot")
    sl = c.chunk_slice(int(done[0]))
    k = min(n, sl.stop - sl.start)
    x = c.x[sl.start:sl.start + k]
    y = c.y[sl.start:sl.start + k]
    lab = c.label[sl.start:sl.start + k] if c.label is not None else None
    ax_ = c.axis

    def title(i):
        parts = [f"{nm}={y[i, j]:.4g}{(' ' + u) if u else ''}" for j, (nm, u) in
                 enumerate(zip(c.param_names, c.param_units)) if np.isfinite(y[i, j])][:3]
        if lab is not None:
            parts.insert(0, c.classes[int(lab[i])])
        return ", ".join(parts)

    if ax_.ndim == 1:
        fig, axes = plt.subplots(k, 1, figsize=(8, 1.8 * k), sharex=True, squeeze=False)
        for i in range(k):
            a = axes[i, 0]
            a.plot(ax_.coords[0], x[i], lw=0.8)
            a.set_title(title(i), fontsize=8)
            a.set_ylabel(c.meta.get("x_units", ""), fontsize=7)
        axes[-1, 0].set_xlabel(f"{ax_.long_names[0] if ax_.long_names else ax_.dims[0]} ({ax_.units[0]})")
    else:
        cols = min(k, 3)
        rows = -(-k // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
        ext = [ax_.coords[1][0], ax_.coords[1][-1], ax_.coords[0][-1], ax_.coords[0][0]]
        for i in range(rows * cols):
            a = axes[i // cols, i % cols]
            a.axis("off")
            if i < k:
                a.imshow(x[i], cmap="gray", extent=ext)
                a.set_title(title(i), fontsize=7)
    fig.suptitle(f"{c.simulator_name}: {Path(str(c.store)).name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def cmd_list(args) -> int:
    import yaml

    from . import registry
    from .catalogs import list_recipes
    print("simulators:")
    failed = 0
    for name, state in registry.available().items():
        if state == "ok":
            cls = registry.get(name)
            print(f"  {name:10s} {getattr(cls, 'description', '')} (version {getattr(cls, 'version', '?')})")
        else:
            failed += 1
            print(f"  {name:10s} FAILED TO LOAD: {state}")
    for problem in registry.problems():
        failed += 1
        print(f"  (entry points) {problem}")
    print("recipes:")
    for name, path in list_recipes().items():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            desc = raw.get("description", "")
            simn = raw.get("simulator", "?")
        except Exception as exc:  # pragma: no cover
            desc, simn = f"(unreadable: {exc})", "?"
        print(f"  {name:24s} [{simn}] {desc}")
    return 0 if not failed else 1


def _version() -> str:
    import importlib.metadata as md
    try:
        return md.version("simgen")
    except md.PackageNotFoundError:  # pragma: no cover - running from a checkout without installing
        return "unknown"


def _cluster_opts(p) -> None:
    p.add_argument("--worker-timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="stop (leaving a resumable store) when no Dask worker has been alive this long "
                        "(default 120)")
    p.add_argument("--connect-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="how long to try to reach --scheduler (default 10)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simgen", description="Make synthetic training corpora from physics simulators.")
    p.add_argument("--version", action="version", version=f"simgen {_version()}")
    p.add_argument("--catalog", action="append", default=[], metavar="DIR",
                   help="extra catalog directory (recipes/, epr/, ...) searched before the built-in one; "
                        "also SIMGEN_CATALOGS")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="build (or resume) a corpus store")
    g.add_argument("recipe", help="recipe file or catalog recipe name (see `simgen list`)")
    g.add_argument("--n", type=_count("--n"), help="number of samples, e.g. 50000 or 1e6 (default: the recipe's "
                                                    "corpus.n)")
    g.add_argument("--out", required=True, help="Zarr store to write (directory, made absolute, or URL)")
    g.add_argument("--chunk-rows", type=_count("--chunk-rows"), help="samples per chunk (default: ~32 MiB chunks)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core; 0: run in this process)")
    w.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing dask.distributed scheduler")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a store that cannot be resumed (another recipe, n, chunking, simulator version or "
                        "catalog files); never one another live writer holds")
    g.add_argument("--compression", choices=["none", "zstd", "blosc"], default=None)
    g.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a recipe field, e.g. seed=7")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    _cluster_opts(g)
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("repair", help="re-check every chunk's CRC-32 and rebuild the bad ones")
    r.add_argument("store")
    w = r.add_mutually_exclusive_group()
    w.add_argument("--workers", type=int, default=0, help="local worker processes (default 0: in this process)")
    w.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing dask.distributed scheduler")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _cluster_opts(r)
    r.set_defaults(func=cmd_repair)

    i = sub.add_parser("info", help="recipe, counts, completeness and parameter ranges of a store")
    i.add_argument("store")
    i.add_argument("--verify", action="store_true", help="re-check every chunk against its CRC")
    i.add_argument("--recipe", action="store_true", help="print the full recipe")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    pl = sub.add_parser("plot", help="PNG of a few samples with their labels")
    pl.add_argument("store")
    pl.add_argument("--out", help="PNG path (default: <store name>.png)")
    pl.add_argument("--n", type=int, default=6)
    pl.set_defaults(func=cmd_plot)

    li = sub.add_parser("list", help="simulators and catalog recipes")
    li.set_defaults(func=cmd_list)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from .catalogs import add_catalog_dir
        for d in args.catalog:
            add_catalog_dir(d)
        return args.func(args)
    except (SimgenError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"simgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simgen: interrupted; a store being built is resumable: re-run the same command", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
