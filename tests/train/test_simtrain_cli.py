"""The simtrain command: fit -> evaluate -> predict, cv, errors naming what is wrong, plugin subcommands."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import zarr

import simgen.corpus as sc
from simgen.recipe import load_recipe

from train import cli

from _train_fixtures import tiny_recipe as _tiny_recipe


def tiny_recipe(**kw):
    return _tiny_recipe(**{**dict(points=48, seed=5), **kw})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "peaks.zarr"
    sc.build(tiny_recipe(), 640, path, chunk_rows=64, progress=False, scheduler="synchronous")
    return str(path)


def test_fit_evaluate_predict(store, tmp_path, capsys):
    run = tmp_path / "run"
    rc = cli.main(["fit", store, "--task", "both:center,width", "--model", "mlp", "--epochs", "6", "--device",
                   "cpu", "--out", str(run), "--quiet", "--batch-size", "64"])
    out = capsys.readouterr().out
    assert rc == 0 and "center: R2=" in out and "class: accuracy=" in out and (run / "metrics.json").exists()
    assert cli.main(["evaluate", str(run), store, "--out", str(tmp_path / "ev.json")]) == 0
    assert "width: R2=" in capsys.readouterr().out and (tmp_path / "ev.json").exists()
    x = sc.open(store).x[:7]
    np.save(tmp_path / "x.npy", x)
    assert cli.main(["predict", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].split(",") == ["center", "width", "class", "p_gaussian", "p_lorentzian"] and len(lines) == 8
    assert cli.main(["predict", str(run), store, "--out", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "p.npz") as z:
        assert z["center"].shape == (640,) and z["class_probs"].shape == (640, 2)
    capsys.readouterr()
    np.save(tmp_path / "bad.npy", x[:, :40])
    assert cli.main(["predict", str(run), str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "expects samples of shape (48,)" in err and "(40,)" in err


def test_cv_prints_mean_and_std(store, tmp_path, capsys):
    rc = cli.main(["cv", store, "--task", "regress:center", "--folds", "3", "--epochs", "3", "--device", "cpu",
                   "--out", str(tmp_path / "cv"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "3-fold cross-validation" in out and "center: R2 = " in out and "±" in out


def test_errors_name_the_problem(store, tmp_path, capsys):
    assert cli.main(["fit", store, "--task", "regress:centre", "--out", str(tmp_path / "a"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'centre'" in err and "center, width, amplitude" in err
    assert cli.main(["fit", store, "--model", "cnn2d", "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "'cnn2d' takes 2-D inputs" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # nothing written for a failed start
    assert cli.main(["fit", store, "--model", "nope", "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert "model 'nope'" in capsys.readouterr().err
    # incomplete store: a chunk without its completion record
    path = tmp_path / "partial.zarr"
    sc.build(tiny_recipe(), 64, path, chunk_rows=32, progress=False, scheduler="synchronous")
    zarr.open_group(str(path), mode="r+", use_consolidated=False)["_chunk_crc32"][1] = -1
    assert cli.main(["fit", str(path), "--out", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "partial.zarr" in err and "incomplete" in err


def test_plugin_subcommands_are_registered(monkeypatch, capsys):
    mod = types.ModuleType("train.studies.demo")

    def register_cli(sub):
        p = sub.add_parser("hello-plugin")
        p.set_defaults(func=lambda args: print("plugin ran") or 0)

    mod.register_cli = register_cli
    monkeypatch.setitem(sys.modules, "train.studies.demo", mod)
    assert cli.main(["hello-plugin"]) == 0
    assert "plugin ran" in capsys.readouterr().out


def test_help_lists_broken_plugins_and_adapters(monkeypatch, capsys):
    """A subcommand or modality adapter that fails to import is listed in --help with its error, not hidden."""
    import train.cli as cli
    from train import modalities
    monkeypatch.setattr(cli, "PLUGINS", cli.PLUGINS + ("train.no_such_study",))
    modalities.register("brokenmod", "train.no_such_adapter:Nope")
    try:
        text = cli.build_parser().format_help()
    finally:
        modalities._extra.pop("brokenmod", None)
    assert "unavailable subcommands: no_such_study (train.no_such_study: ModuleNotFoundError" in text
    assert "modality 'brokenmod': adapter train.no_such_adapter:Nope cannot be imported" in text
