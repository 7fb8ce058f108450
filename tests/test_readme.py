"""Every command of the README works as written.

The README's code blocks are extracted and run in order in a scratch folder: `simgen` and `simtrain` commands that
are cheap run for real (corpus sizes cut to 64 samples, 1 epoch, 2 folds, so that the test stays short: the
commands and their options are the README's), the Python block is executed, and commands that need a cluster, an
object store or minutes of training (augment, adapt, nested, demo, the benchmark) are parsed by the real argument
parsers, so a renamed or removed option fails here.  `bash scripts/main.sh` and `bash scripts/test.sh` are the CI's
and the main job's own commands.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMGEN_SHARED", REPO.parent / "shared"))
README = (REPO / "README.md").read_text()

#: run only through the argument parser: cluster / object store, or minutes of training (tested elsewhere)
PARSE_ONLY = ("--scheduler", "s3://", "simtrain augment", "simtrain adapt", "simtrain nested", "simtrain demo",
              "simtrain benchmark-real")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    out = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" # ")[0].split("  #")[0].strip()
            if line.startswith(("simgen", "simtrain")):
                out.append(line)
    return out


def _shrink(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a == "--n":
            out[i + 1] = "64"
        elif a == "--epochs":
            out[i + 1] = "1"
        elif a == "--folds":
            out[i + 1] = "2"
    return out


def test_readme_has_the_two_setup_commands():
    setup = README.split("## Set-up on a fresh machine")[1].split("\n## ")[0]
    assert re.findall(r"```bash\n(.*?)\n```", setup) == ["bash scripts/main.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_parse_only_commands_parse():
    import simgen.cli
    import train.cli
    parsers = {"simgen": simgen.cli.build_parser(), "simtrain": train.cli.build_parser()}
    n = 0
    for cmd in _commands():
        if any(k in cmd for k in PARSE_ONLY):
            argv = shlex.split(cmd)
            parsers[argv[0]].parse_args(argv[1:])   # SystemExit (exit 2) on an unknown or malformed option
            n += 1
    assert n >= 6


def test_readme_commands_run(tmp_path, monkeypatch, capsys):
    import simgen.cli
    import train.cli
    monkeypatch.chdir(tmp_path)
    shared_ok = (SHARED / "data").is_dir()
    ran = []
    for cmd in _commands():
        if any(k in cmd for k in PARSE_ONLY):
            continue
        if "../shared/" in cmd:
            if not shared_ok:
                continue
            cmd = cmd.replace("../shared/", f"{SHARED}/")
        argv = _shrink(shlex.split(cmd))
        if argv[:2] == ["simtrain", "predict"] and argv[-1] == "spectra.npy":
            import simgen.corpus
            np.save(tmp_path / "spectra.npy", simgen.corpus.open(tmp_path / "radicals.zarr").x[:3])
        if argv[:2] == ["simgen", "generate"]:
            argv += ["--workers", "0"]                                  # in-process: no cluster start-up per call
        main = simgen.cli.main if argv[0] == "simgen" else train.cli.main
        try:
            rc = main(argv[1:])
        except SystemExit as exc:                                        # --version exits through argparse
            rc = exc.code
        out = capsys.readouterr()
        assert rc in (0, None), f"README command failed: {cmd}\n{out.out[-2000:]}\n{out.err[-3000:]}"
        ran.append(argv[1] if len(argv) > 1 else argv[0])
    assert {"generate", "info", "repair", "plot", "fit", "cv", "evaluate", "predict"} <= set(ran), ran


def test_readme_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for block in _blocks("python"):
        code = block.replace("10_000", "64")
        exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "epr.zarr").is_dir()
