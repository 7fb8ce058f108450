"""Fuzzing recipe fields and `simgen generate` arguments: every input either builds a complete, verified store
or raises simgen's own error (the CLI: exit status 2 with one `simgen: error:` line); none gives a traceback or
a half-written store that looks complete."""
from __future__ import annotations

import copy
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simgen.corpus as corpus
from simgen.cli import main
from simgen.errors import SimgenError
from simgen.recipe import load_recipe

#: examples per fuzz test: modest by default so the test run stays fast; SIMGEN_FUZZ_EXAMPLES=1000 for a stress run
EXAMPLES = int(os.environ.get("SIMGEN_FUZZ_EXAMPLES", "40"))

BASE = {"simulator": "peaks", "seed": 1, "config": {"n_points": 16},
        "params": {"center": {"uniform": [20, 80]}, "width": {"log_uniform": [1, 5]}, "noise": 0.01},
        "targets": ["center", "width"],
        "label": {"name": "profile", "classes": {"g": {"params": {"eta": {"uniform": [0, 0.2]}}},
                                                 "l": {"params": {"eta": {"uniform": [0.8, 1]}}}}}}

FIELDS = ["simulator", "seed", "description", "config", "config.n_points", "config.x_min", "config.x_max",
          "config.bogus", "params", "params.center", "params.center.uniform", "params.width",
          "params.width.log_uniform", "params.noise", "params.eta", "params.nope", "targets", "label",
          "label.name", "label.classes", "label.classes.g", "label.classes.g.weight", "label.classes.l.params",
          "corpus", "corpus.n", "corpus.chunk_rows", "corpus.compression", "extra"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["1e6", "uniform", "nan", "-inf", "gaussian", "0", "peaks"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.sampled_from(
                                                            ["uniform", "low", "high", "dist", "value", "mean",
                                                             "std", "values", "weights", "x"]), inner,
                                                            max_size=3)), max_leaves=6)


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {}
        cur = cur[k]
    cur[keys[-1]] = value


def _check_store(store: str) -> None:
    """A store left behind is either complete and verified, or recognisably not complete."""
    if not os.path.exists(store):
        return
    try:
        c = corpus.open(store)
    except SimgenError:
        return  # refused by name (interrupted creation, not a corpus): nothing looks complete
    if c.complete:
        assert c.verify() == []


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELDS), values), min_size=1, max_size=3))
def test_fuzz_recipe_fields(edits):
    raw = copy.deepcopy(BASE)
    for field, value in edits:
        _set(raw, field, value)
    tmp = tempfile.mkdtemp(prefix="fuzz-")
    store = os.path.join(tmp, "f.zarr")
    try:
        try:
            recipe = load_recipe(raw)
            s = corpus.build(recipe, 20, store, chunk_rows=8, scheduler="synchronous", progress=False)
        except SimgenError as exc:
            assert str(exc)  # a message naming what was wrong
        else:
            assert s.complete
        _check_store(store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


ARG_VALUES = st.one_of(st.sampled_from(["0", "-1", "2e1", "1e400", "nan", "2.5", "abc", "", "16", "3",
                                        "1_000", "0x10"]), st.integers(-5, 40).map(str))
SETS = st.sampled_from(["seed=-1", "seed=abc", "config.n_points=1", "config.n_points=1e9", "params.width=0",
                        "params=[]", "label=null", "targets=[eta]", "corpus.n=0", "x", "=3", "params.q.r=1",
                        "config.n_points=16", "seed=5"])


@settings(max_examples=max(1, EXAMPLES * 3 // 4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=ARG_VALUES, chunk=st.one_of(st.none(), ARG_VALUES), sets=st.lists(SETS, max_size=2))
def test_fuzz_generate_arguments(n, chunk, sets):
    tmp = tempfile.mkdtemp(prefix="fuzz-")
    store = os.path.join(tmp, "a.zarr")
    argv = ["generate", "peaks-demo", "--n", n, "--out", store, "--workers", "0", "--quiet",
            "--set", "config.n_points=16"]
    if chunk is not None:
        argv += ["--chunk-rows", chunk]
    for s in sets:
        argv += ["--set", s]
    try:
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse: a bad flag value, with its own one-line message
            rc = exc.code
        assert rc in (0, 2)
        if rc == 0:
            assert corpus.open(store).complete
        _check_store(store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_fuzz_examples_include_valid_builds():
    """The fuzzed space is not all errors: the base recipe itself builds."""
    tmp = tempfile.mkdtemp(prefix="fuzz-")
    try:
        s = corpus.build(load_recipe(BASE), 20, os.path.join(tmp, "b.zarr"), chunk_rows=8,
                         scheduler="synchronous", progress=False)
        assert s.complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
