import textwrap

import numpy as np
import pytest

import simgen
from simgen.errors import ParameterError, RecipeError
from simgen.recipe import load_recipe


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent(text))
    return p


BASE = """
simulator: peaks
seed: 3
config: {n_points: 64}
params:
  center: {uniform: [20, 80]}
  width: {log_uniform: [1, 5]}
"""


def test_valid_recipe_builds_and_defaults_targets(tmp_path):
    r = load_recipe(write(tmp_path, BASE))
    sim = r.build()
    assert sim.axis.shape == (64,)
    assert sim.param_names == ("center", "width")
    assert r.digest() == load_recipe(write(tmp_path, BASE)).digest()


@pytest.mark.parametrize("text, field, words", [
    (BASE + "parmas: {}\n", "parmas", "did you mean 'params'"),
    (BASE.replace("simulator: peaks", "simulator: peeks"), "simulator", "did you mean 'peaks'"),
    (BASE.replace("{log_uniform: [1, 5]}", "{uniform: [-1, 5]}"), "params.width", "width"),
    (BASE.replace("{uniform: [20, 80]}", "{uniform: [80, 20]}"), "params.center.low", "low <= high"),
    (BASE.replace("n_points: 64", "n_points: many"), "config.n_points", "integer"),
    (BASE.replace("n_points: 64", "n_ponts: 64"), "config.n_ponts", "n_points"),
    (BASE + "  widht: 2\n", "params.widht", "did you mean 'width'"),
    (BASE.replace("  center: {uniform: [20, 80]}\n", ""), "params.center", "a prior"),
    (BASE + "targets: [centre]\n", "targets", "center"),
    (BASE.replace("seed: 3", "seed: -1"), "seed", "non-negative"),
    (BASE + "  noise: {normal: [0, 1]}\n", "params.noise", "truncnormal"),
])
def test_bad_recipes_are_rejected_naming_file_field_and_value(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert str(path) in msg and f"'{field}'" in msg and words in msg, msg


def test_label_overrides_and_class_draws(tmp_path):
    r = load_recipe(write(tmp_path, BASE + textwrap.dedent("""
        label:
          name: kind
          classes:
            narrow: {weight: 3, params: {width: {uniform: [1, 1.5]}}}
            broad: {params: {width: {uniform: [4, 5]}}}
        """)))
    sim = r.build()
    p = sim.sample_params(4000, np.random.default_rng(0))
    lab = p["label"]
    assert abs((lab == 0).mean() - 0.75) < 0.03
    assert p["width"][lab == 0].max() <= 1.5 and p["width"][lab == 1].min() >= 4


def test_overrides_and_simulate_at_chosen_params():
    r = load_recipe("peaks-demo", overrides={"seed": 9, "config.n_points": 128})
    assert r.seed == 9
    x, p = simgen.simulate(r, {"center": 50.0, "width": 10.0, "label": "gaussian", "noise": 0.0, "offset": 0.0,
                                "slope": 0.0, "amplitude": 1.0, "eta": 0.0})
    assert x.shape == (1, 128)
    assert np.isclose(x.max(), 1.0, atol=0.02)
    with pytest.raises(ParameterError, match="width"):
        simgen.simulate(r, {"center": 50.0, "width": -2.0, "label": 0})
    with pytest.raises(ParameterError, match="label"):
        simgen.simulate(r, {"center": 50.0, "width": 2.0, "label": "triangular"})
