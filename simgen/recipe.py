"""Recipes: YAML files that say what corpus to make.

.. code-block:: yaml

    simulator: peaks            # registry name
    description: Gaussian peaks on a sloped baseline
    seed: 42
    config:                     # axis / instrument settings the simulator declares
      n_points: 1024
    params:                     # a prior for every parameter (see simgen.priors)
      center: {uniform: [20, 80]}
      width: {log_uniform: [0.5, 5]}
      noise: 0.01
    targets: [center, width]    # optional: columns of y (default: every non-fixed numeric parameter)
    label:                      # optional: a class label; each class may override priors
      name: shape
      classes:
        narrow: {weight: 2, params: {width: {uniform: [0.5, 1]}}}
        broad: {params: {width: {uniform: [3, 5]}}}
    corpus: {n: 10000, chunk_rows: 2048}   # optional defaults for `simgen generate`

Loading validates everything against the simulator's declarations; errors name the file, the field, the value
and what was expected.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import registry
from .catalogs import resolve_recipe
from .errors import RecipeError
from .priors import parse_prior, Prior
from .simulator import LabelSpec, Simulator, _suggest

__all__ = ["Recipe", "load_recipe", "TOP_LEVEL_FIELDS"]

TOP_LEVEL_FIELDS = ("simulator", "description", "seed", "config", "params", "targets", "label", "corpus")
CORPUS_FIELDS = ("n", "chunk_rows", "compression")


@dataclass
class Recipe:
    simulator: str
    seed: int
    config: dict = field(default_factory=dict)
    params: dict[str, Prior] = field(default_factory=dict)
    targets: list[str] | None = None
    label: LabelSpec | None = None
    description: str = ""
    corpus: dict = field(default_factory=dict)
    source: str | None = None

    def build(self) -> Simulator:
        """Construct the simulator (validates config, priors, targets and label against its declarations)."""
        cls = registry.get(self.simulator)
        try:
            return cls(self.config, priors=self.params, targets=self.targets, label=self.label)
        except RecipeError as exc:
            if exc.source is None and self.source is not None:
                raise RecipeError(exc.field, exc.value, exc.expected, self.source, exc.hint) from None
            raise

    def to_dict(self) -> dict:
        out = {"simulator": self.simulator, "description": self.description, "seed": self.seed,
               "config": copy.deepcopy(self.config),
               "params": {k: p.to_dict() for k, p in self.params.items()}}
        if self.targets is not None:
            out["targets"] = list(self.targets)
        if self.label is not None:
            out["label"] = self.label.to_dict()
        if self.corpus:
            out["corpus"] = dict(self.corpus)
        return out

    def physics_dict(self) -> dict:
        """What determines the corpus bytes (description and corpus defaults excluded)."""
        d = self.to_dict()
        d.pop("description", None)
        d.pop("corpus", None)
        return d

    def digest(self) -> str:
        blob = json.dumps(self.physics_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _positive_int(v: Any, field_: str, source: str | None) -> int:
    """A positive integer; YAML reads 1e6 as a string, so integral numbers written so are accepted."""
    import math
    x = v
    if isinstance(x, str):
        try:
            x = float(x.strip().replace("_", ""))
        except ValueError:
            raise RecipeError(field_, v, "a positive integer such as 1000 or 1e6", source) from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise RecipeError(field_, v, "a positive integer such as 1000 or 1e6", source)
    if isinstance(x, float) and (not math.isfinite(x) or x != math.floor(x)):
        raise RecipeError(field_, v, "a positive integer such as 1000 or 1e6", source)
    if x < 1:
        raise RecipeError(field_, v, "a positive integer such as 1000 or 1e6", source)
    return int(x)


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {} if k not in cur or not isinstance(cur[k], dict) else cur[k]
        cur = cur[k]
    cur[keys[-1]] = value


def _parse_label(raw: Any, source: str | None) -> LabelSpec:
    if not isinstance(raw, dict):
        raise RecipeError("label", raw, "a mapping with 'name' and 'classes'", source)
    for k in raw:
        if k not in ("name", "classes"):
            raise RecipeError(f"label.{k}", raw[k], "only 'name' and 'classes'", source,
                              hint=_suggest(k, ("name", "classes")))
    name = raw.get("name", "class")
    if not isinstance(name, str):
        raise RecipeError("label.name", name, "a string", source)
    classes = raw.get("classes")
    if isinstance(classes, list):
        classes = {str(c): {} for c in classes}
    if not isinstance(classes, dict) or len(classes) < 1:
        raise RecipeError("label.classes", classes, "a non-empty list of class names or a mapping "
                          "class -> {weight, params}", source)
    names, weights, overrides = [], [], {}
    for cname, body in classes.items():
        body = body or {}
        if not isinstance(body, dict):
            raise RecipeError(f"label.classes.{cname}", body, "a mapping with optional 'weight' and 'params'",
                              source)
        for k in body:
            if k not in ("weight", "params"):
                raise RecipeError(f"label.classes.{cname}.{k}", body[k], "only 'weight' and 'params'", source,
                                  hint=_suggest(k, ("weight", "params")))
        w = body.get("weight", 1.0)
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise RecipeError(f"label.classes.{cname}.weight", w, "a non-negative number", source) from None
        if w < 0:
            raise RecipeError(f"label.classes.{cname}.weight", w, "a non-negative number", source)
        ps = body.get("params") or {}
        if not isinstance(ps, dict):
            raise RecipeError(f"label.classes.{cname}.params", ps, "a mapping parameter -> prior", source)
        overrides[str(cname)] = {k: parse_prior(v, f"label.classes.{cname}.params.{k}", source)
                                 for k, v in ps.items()}
        names.append(str(cname))
        weights.append(w)
    if sum(weights) <= 0:
        raise RecipeError("label.classes", classes, "class weights with a positive sum", source)
    return LabelSpec(name, tuple(names), tuple(weights), overrides)


def load_recipe(src: str | os.PathLike | Mapping, overrides: Mapping[str, Any] | None = None,
                validate: bool = True) -> Recipe:
    """Load a recipe from a file path, a catalog recipe name, or a dict; ``overrides`` maps dotted fields
    (``"params.width.high"``, ``"seed"``) to new values.  With ``validate`` the simulator is built once to
    check every field."""
    source = None
    if isinstance(src, Recipe):
        if not overrides:
            return src
        src, source = src.to_dict(), src.source
    if isinstance(src, Mapping):
        raw = copy.deepcopy(dict(src))
        if "label" in raw and isinstance(raw["label"], dict):
            raw["label"] = copy.deepcopy(raw["label"])
    else:
        path = resolve_recipe(src)
        source = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise RecipeError("(file)", str(path), f"valid YAML ({exc})", source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError("(file)", str(path), f"a readable UTF-8 text file ({type(exc).__name__}: {exc})",
                              source) from None
        if not isinstance(raw, dict):
            raise RecipeError("(top level)", raw, "a mapping with 'simulator', 'params', ...", source)
    for k, v in (overrides or {}).items():
        _set_dotted(raw, k, v)

    for k in raw:
        if k not in TOP_LEVEL_FIELDS:
            raise RecipeError(str(k), raw[k], "one of the recipe fields " + ", ".join(TOP_LEVEL_FIELDS), source,
                              hint=_suggest(k, TOP_LEVEL_FIELDS))
    if "simulator" not in raw:
        raise RecipeError("simulator", None, "the name of a simulator (see `simgen list`)", source)
    sim = raw["simulator"]
    if not isinstance(sim, str):
        raise RecipeError("simulator", sim, "a simulator name", source)
    try:
        registry.get(sim)
    except RecipeError as exc:
        raise RecipeError("simulator", sim, exc.expected, source, hint=_suggest(sim, registry.BUILTIN)) from None

    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RecipeError("seed", seed, "a non-negative integer", source)
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise RecipeError("config", config, "a mapping of config entries", source)
    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        raise RecipeError("params", params_raw, "a mapping parameter -> prior", source)
    params = {str(k): parse_prior(v, f"params.{k}", source) for k, v in params_raw.items()}
    targets = raw.get("targets")
    if targets is not None and (not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)):
        raise RecipeError("targets", targets, "a list of parameter names", source)
    label = _parse_label(raw["label"], source) if raw.get("label") is not None else None
    corpus = raw.get("corpus") or {}
    if not isinstance(corpus, dict):
        raise RecipeError("corpus", corpus, "a mapping with " + ", ".join(CORPUS_FIELDS), source)
    corpus = dict(corpus)
    for k, v in corpus.items():
        if k not in CORPUS_FIELDS:
            raise RecipeError(f"corpus.{k}", v, "one of " + ", ".join(CORPUS_FIELDS), source,
                              hint=_suggest(k, CORPUS_FIELDS))
        if k in ("n", "chunk_rows"):
            corpus[k] = _positive_int(v, f"corpus.{k}", source)
        if k == "compression" and v not in (None, "none", "zstd", "blosc"):
            raise RecipeError(f"corpus.{k}", v, "none, zstd or blosc", source)
    desc = raw.get("description", "") or ""
    recipe = Recipe(sim, seed, config, params, targets, label, str(desc), corpus, source)
    if validate:
        recipe.build()
    return recipe
