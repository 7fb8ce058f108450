import numpy as np
import pytest
from scipy import stats

from simgen.errors import RecipeError
from simgen.priors import Choice, Fixed, LogUniform, Normal, TruncNormal, Uniform, parse_prior


def test_forms_parse_to_the_same_prior():
    assert parse_prior({"uniform": [1, 2]}) == Uniform(1.0, 2.0)
    assert parse_prior({"dist": "uniform", "low": 1, "high": 2}) == Uniform(1.0, 2.0)
    assert parse_prior(3) == Fixed(3.0)
    assert parse_prior("1e-3") == Fixed(1e-3)  # YAML 1.1 reads 1e-3 as a string
    assert parse_prior({"truncnormal": [0, 1, -1, 2]}) == TruncNormal(0.0, 1.0, -1.0, 2.0)
    assert parse_prior({"choice": ["a", "b"], "weights": [1, 3]}) == Choice(("a", "b"), (1.0, 3.0))


@pytest.mark.parametrize("spec, field", [
    ({"uniform": [2, 1]}, "p.low"),
    ({"log_uniform": [0, 1]}, "p.low"),
    ({"normal": [0, -1]}, "p.std"),
    ({"uniform": [1]}, "p.uniform"),
    ({"gauss": [0, 1]}, "p"),
    ({"dist": "uniform", "low": 0, "hihg": 1}, "p.hihg"),
    ({"choice": []}, "p.values"),
    ({"choice": [1, 2], "weights": [1]}, "p.weights"),
])
def test_bad_priors_name_their_field(spec, field):
    with pytest.raises(RecipeError) as info:
        parse_prior(spec, "p", "recipe.yaml")
    assert f"'{field}'" in str(info.value) and "recipe.yaml" in str(info.value)


def test_distributions_match_scipy():
    rng = np.random.default_rng(0)
    n = 20000
    cases = [
        (Uniform(1, 3), stats.uniform(1, 2)),
        (LogUniform(0.1, 10), stats.loguniform(0.1, 10)),
        (Normal(2, 0.5), stats.norm(2, 0.5)),
        (TruncNormal(0, 1, -0.5, 2), stats.truncnorm(-0.5, 2)),
    ]
    for prior, ref in cases:
        x = prior.sample(n, rng)
        lo, hi = prior.support()
        assert x.min() >= lo and x.max() <= hi
        assert stats.kstest(x, ref.cdf).pvalue > 1e-3, prior


def test_choice_weights():
    rng = np.random.default_rng(1)
    idx = Choice(("a", "b", "c"), (1, 0, 3)).sample_index(40000, rng)
    frac = np.bincount(idx, minlength=3) / len(idx)
    assert frac[1] == 0
    assert abs(frac[2] - 0.75) < 0.01
