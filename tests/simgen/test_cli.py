import subprocess
import sys
import textwrap

import pytest

from simgen.cli import main


def test_generate_info_plot_list(tmp_path, capsys):
    store = tmp_path / "p.zarr"
    assert main(["generate", "peaks-demo", "--n", "64", "--out", str(store), "--workers", "0", "--quiet",
                 "--set", "config.n_points=64"]) == 0
    out = capsys.readouterr().out
    assert "complete" in out and "samples/s" in out and "MB/s" in out and "store size" in out
    assert main(["info", str(store), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "complete: 1/1 chunks" in out or "complete:" in out
    assert "target     center" in out and "all chunks match" in out
    png = tmp_path / "p.png"
    assert main(["plot", str(store), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    assert main(["list"]) == 0
    assert "peaks-demo" in capsys.readouterr().out


@pytest.mark.parametrize("mutation, words", [
    (("width: {log_uniform: [1.0, 12.0]}", "width: {uniform: [-1.0, 12.0]}"), "params.width"),
    (("center: {uniform: [15.0, 85.0]}", "center: {uniform: [85.0, 15.0]}"), "params.center.low"),
    (("simulator: peaks", "simulator: peakz"), "simulator"),
    (("targets:", "targts:"), "targts"),
])
def test_bad_recipe_leaves_no_store(tmp_path, capsys, mutation, words):
    from simgen.catalogs import find
    text = find("recipes/peaks-demo.yaml").read_text().replace(*mutation)
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    store = tmp_path / "bad.zarr"
    assert main(["generate", str(recipe), "--n", "32", "--out", str(store), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert words in err and str(recipe) in err
    assert not store.exists()


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "simgen.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "generate" in out.stdout
