"""Shared contract tests that every simulator's test module subclasses.

.. code-block:: python

    from simgen.testing import SimulatorContract

    class TestPeaksContract(SimulatorContract):
        recipe = "peaks-demo"                       # catalog name, path, or dict
        invalid_params = [("width", -1.0), ("eta", 2.0)]

pytest collects the ``test_*`` methods below for each subclass.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from .errors import ParameterError
from .recipe import load_recipe

__all__ = ["SimulatorContract"]


class SimulatorContract:
    #: a recipe (catalog name, path or dict) whose simulator is tested
    recipe: object = None
    #: (parameter name, bad value) pairs that ``simulate`` must reject with an error naming the parameter
    invalid_params: list = []
    #: samples per batch in the tests (keep small for expensive simulators)
    n: int = 3
    seed: int = 12345

    @pytest.fixture(scope="class")
    @classmethod
    def sim(cls):
        return load_recipe(cls.recipe).build()

    @pytest.fixture(scope="class")
    @classmethod
    def batch(cls, sim):
        rng = np.random.default_rng(cls.seed)
        params = sim.sample_params(cls.n, rng)
        return params, sim.simulate_outputs(params, rng)

    def test_output_shape_and_dtype(self, sim, batch):
        params, out = batch
        x = out["x"]
        assert x.shape == (self.n, *sim.axis.shape)
        assert x.dtype == np.float32
        assert np.isfinite(x).all(), "simulated values must be finite"
        for name, spec in sim.OUTPUTS.items():
            assert name in out, f"declared output '{name}' missing"
            assert out[name].shape == (self.n, *sim.axis.shape)
            assert out[name].dtype == np.dtype(spec.dtype)

    def test_params_cover_targets_and_labels(self, sim, batch):
        params, out = batch
        realized = {**params, **out.get("params", {})}
        y = sim.targets_array(realized)
        assert y.shape == (self.n, len(sim.param_names))
        assert len(sim.param_units) == len(sim.param_names)
        if sim.classes:
            assert set(np.unique(params["label"])) <= set(range(len(sim.classes)))
        for p in sim.param_names:
            spec = sim.PARAMS[p]
            vals = np.asarray(params[p])
            ok = spec.in_range(vals) | np.isnan(vals)
            assert ok.all(), f"prior draws of {p} left its valid range"

    def test_same_seed_same_bytes(self, sim):
        a = sim.sample_params(self.n, np.random.default_rng(self.seed))
        b = sim.sample_params(self.n, np.random.default_rng(self.seed))
        for k in a:
            assert np.array_equal(a[k], b[k], equal_nan=True), k
        xa = sim.simulate_outputs(a, np.random.default_rng(1))["x"]
        xb = sim.simulate_outputs(b, np.random.default_rng(1))["x"]
        assert xa.tobytes() == xb.tobytes()

    def test_batch_equals_one_by_one(self, sim, batch):
        params, out = batch
        for i in range(self.n):
            one = {k: v[i:i + 1] for k, v in params.items()}
            single = sim.simulate_outputs(one, np.random.default_rng(999))
            assert single["x"].tobytes() == out["x"][i:i + 1].tobytes(), f"sample {i} differs when alone"
            for name in sim.OUTPUTS:
                assert np.array_equal(single[name], out[name][i:i + 1])

    def test_invalid_params_rejected_by_name(self, sim, batch):
        params, _ = batch
        for name, bad in self.invalid_params:
            p = {k: v[:1].copy() for k, v in params.items()}
            p[name] = np.array([bad]) if not isinstance(bad, str) else np.array([bad], dtype=object)
            with pytest.raises((ParameterError, ValueError)) as info:
                sim.simulate(p)
            assert name in str(info.value), f"error for {name}={bad!r} does not name it: {info.value}"

    def test_unknown_param_rejected(self, sim, batch):
        params, _ = batch
        p = {k: v[:1] for k, v in params.items()}
        p["no_such_parameter"] = np.array([1.0])
        with pytest.raises(ParameterError, match="no_such_parameter"):
            sim.simulate(p)

    def test_picklable(self, sim, batch):
        params, out = batch
        clone = pickle.loads(pickle.dumps(sim))
        one = {k: v[:1] for k, v in params.items()}
        assert clone.simulate(one).tobytes() == out["x"][:1].tobytes()
