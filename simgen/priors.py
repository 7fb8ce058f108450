"""Prior distributions for recipe parameters.

A prior is written in a recipe in one of three forms::

    width: 0.5                                  # fixed value
    width: {log_uniform: [0.1, 2.0]}            # compact: one key naming the distribution
    width: {dist: truncnormal, mean: 1, std: 0.3, low: 0.1, high: 2}   # explicit

Distributions: ``fixed``, ``uniform``, ``log_uniform``, ``normal``, ``truncnormal``, ``choice`` (values with
optional weights).  Every prior knows its support, so a recipe can be checked against a parameter's valid range
before anything is simulated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.special import ndtr, ndtri

from .errors import RecipeError

__all__ = [
    "Prior", "Fixed", "Uniform", "LogUniform", "Normal", "TruncNormal", "Choice", "parse_prior", "DISTRIBUTIONS",
]


def _num(value: Any, field_: str, source: str | None) -> float:
    """Coerce ``value`` to float; YAML 1.1 reads ``1e-3`` as a string, so strings are parsed too."""
    if isinstance(value, bool):
        raise RecipeError(field_, value, "a number", source)
    if isinstance(value, (int, float, np.integer, np.floating)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            raise RecipeError(field_, value, "a number", source) from None
    else:
        raise RecipeError(field_, value, "a number", source)
    if not math.isfinite(out):
        raise RecipeError(field_, value, "a finite number", source)
    return out


class Prior:
    """Base class: ``sample(n, rng)`` draws ``n`` values; ``support()`` gives (low, high)."""

    dist: str = ""

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def support(self) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def is_fixed(self) -> bool:
        return False

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(Prior):
    value: Any
    dist: str = field(default="fixed", init=False)

    def sample(self, n, rng):
        return np.full(n, self.value, dtype=np.float64)

    def support(self):
        return (float(self.value), float(self.value))

    @property
    def is_fixed(self):
        return True

    def to_dict(self):
        return {"dist": "fixed", "value": self.value}


@dataclass(frozen=True)
class Uniform(Prior):
    low: float
    high: float
    dist: str = field(default="uniform", init=False)

    def sample(self, n, rng):
        return rng.uniform(self.low, self.high, size=n)

    def support(self):
        return (self.low, self.high)

    def to_dict(self):
        return {"dist": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform(Prior):
    low: float
    high: float
    dist: str = field(default="log_uniform", init=False)

    def sample(self, n, rng):
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), size=n))

    def support(self):
        return (self.low, self.high)

    def to_dict(self):
        return {"dist": "log_uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Normal(Prior):
    mean: float
    std: float
    dist: str = field(default="normal", init=False)

    def sample(self, n, rng):
        return rng.normal(self.mean, self.std, size=n)

    def support(self):
        return (-math.inf, math.inf)

    def to_dict(self):
        return {"dist": "normal", "mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class TruncNormal(Prior):
    """Normal(mean, std) restricted to [low, high], drawn by inverse CDF (one uniform per value)."""

    mean: float
    std: float
    low: float
    high: float
    dist: str = field(default="truncnormal", init=False)

    def sample(self, n, rng):
        a = ndtr((self.low - self.mean) / self.std)
        b = ndtr((self.high - self.mean) / self.std)
        u = rng.uniform(a, b, size=n)
        x = self.mean + self.std * ndtri(u)
        return np.clip(x, self.low, self.high)

    def support(self):
        return (self.low, self.high)

    def to_dict(self):
        return {"dist": "truncnormal", "mean": self.mean, "std": self.std, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Choice(Prior):
    """A choice among ``values`` (numbers, or category names) with optional ``weights``.

    ``sample`` returns the chosen values for numeric choices and the *indices into values* for categories
    (the caller maps them to the parameter's declared category list).
    """

    values: tuple
    weights: tuple | None = None
    dist: str = field(default="choice", init=False)

    @property
    def probabilities(self) -> np.ndarray:
        if self.weights is None:
            return np.full(len(self.values), 1.0 / len(self.values))
        w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)

    def sample_index(self, n, rng) -> np.ndarray:
        cdf = np.cumsum(self.probabilities)
        cdf[-1] = 1.0
        return np.searchsorted(cdf, rng.random(n), side="right").astype(np.int64)

    def sample(self, n, rng):
        idx = self.sample_index(n, rng)
        if self.numeric:
            return np.asarray(self.values, dtype=np.float64)[idx]
        return idx

    def support(self):
        if self.numeric:
            return (float(min(self.values)), float(max(self.values)))
        return (math.nan, math.nan)

    @property
    def is_fixed(self):
        return len(self.values) == 1

    def to_dict(self):
        out = {"dist": "choice", "values": list(self.values)}
        if self.weights is not None:
            out["weights"] = list(self.weights)
        return out


DISTRIBUTIONS = ("fixed", "uniform", "log_uniform", "normal", "truncnormal", "choice")
_ALIASES = {"loguniform": "log_uniform", "log-uniform": "log_uniform", "truncated_normal": "truncnormal",
            "trunc_normal": "truncnormal", "const": "fixed", "constant": "fixed"}
_FIELDS = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "log_uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "truncnormal": ("mean", "std", "low", "high"),
    "choice": ("values", "weights"),
}


def parse_prior(spec: Any, field_: str = "prior", source: str | None = None) -> Prior:
    """Turn a recipe entry into a :class:`Prior`, with errors naming ``field_`` and ``source``."""
    if isinstance(spec, Prior):
        return spec
    if not isinstance(spec, dict):
        if isinstance(spec, (list, tuple)):
            raise RecipeError(field_, spec, "a fixed value or a mapping such as {uniform: [low, high]}", source)
        if isinstance(spec, str):
            try:
                return Fixed(float(spec))
            except ValueError:
                return Fixed(spec)
        if isinstance(spec, bool) or spec is None:
            raise RecipeError(field_, spec, "a number, a category name or a prior mapping", source)
        return Fixed(float(spec))

    spec = dict(spec)
    if "dist" in spec:
        dist = str(spec.pop("dist"))
        kwargs = spec
    elif len(spec) >= 1 and next(iter(spec)) is not None:
        keys = list(spec)
        head = str(keys[0])
        head_n = _ALIASES.get(head, head)
        if head_n not in DISTRIBUTIONS:
            raise RecipeError(field_, spec, f"a prior: one of {', '.join(DISTRIBUTIONS)} (as 'dist: NAME' "
                              "or as the mapping's first key)", source)
        args = spec.pop(head)
        dist = head_n
        names = _FIELDS[dist]
        if dist == "choice":
            kwargs = {"values": args, **spec}
        elif dist == "fixed":
            kwargs = {"value": args, **spec}
        else:
            if isinstance(args, dict):
                kwargs = {**args, **spec}
            elif isinstance(args, (list, tuple)) and len(args) == len(names):
                kwargs = dict(zip(names, args))
                kwargs.update(spec)
            else:
                raise RecipeError(f"{field_}.{head}", args, f"a list [{', '.join(names)}]", source)
    else:  # pragma: no cover - defensive
        raise RecipeError(field_, spec, "a prior mapping", source)

    dist = _ALIASES.get(dist, dist)
    if dist not in DISTRIBUTIONS:
        raise RecipeError(f"{field_}.dist", dist, f"one of {', '.join(DISTRIBUTIONS)}", source)
    allowed = _FIELDS[dist]
    for key in kwargs:
        if key not in allowed:
            raise RecipeError(f"{field_}.{key}", kwargs[key], f"only the fields {', '.join(allowed)} for a "
                              f"'{dist}' prior", source)
    required = [k for k in allowed if k != "weights"]
    for key in required:
        if key not in kwargs:
            raise RecipeError(f"{field_}.{key}", None, f"a value: a '{dist}' prior needs {', '.join(required)}",
                              source)

    f = lambda k: _num(kwargs[k], f"{field_}.{k}", source)  # noqa: E731
    if dist == "fixed":
        v = kwargs["value"]
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            v = float(v)
        return Fixed(v)
    if dist in ("uniform", "log_uniform"):
        lo, hi = f("low"), f("high")
        if lo > hi:
            raise RecipeError(f"{field_}.low", lo, f"low <= high (high is {hi})", source)
        if dist == "log_uniform" and lo <= 0:
            raise RecipeError(f"{field_}.low", lo, "a positive number for a log_uniform prior", source)
        return Uniform(lo, hi) if dist == "uniform" else LogUniform(lo, hi)
    if dist == "normal":
        mean, std = f("mean"), f("std")
        if std <= 0:
            raise RecipeError(f"{field_}.std", std, "a positive standard deviation", source)
        return Normal(mean, std)
    if dist == "truncnormal":
        mean, std, lo, hi = f("mean"), f("std"), f("low"), f("high")
        if std <= 0:
            raise RecipeError(f"{field_}.std", std, "a positive standard deviation", source)
        if lo > hi:
            raise RecipeError(f"{field_}.low", lo, f"low <= high (high is {hi})", source)
        return TruncNormal(mean, std, lo, hi)
    # choice
    values = kwargs["values"]
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise RecipeError(f"{field_}.values", values, "a non-empty list", source)
    vals = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RecipeError(f"{field_}.values[{i}]", v, "a number or a category name", source)
        else:
            v = float(v)
        vals.append(v)
    weights = kwargs.get("weights")
    if weights is not None:
        if not isinstance(weights, (list, tuple)) or len(weights) != len(vals):
            raise RecipeError(f"{field_}.weights", weights, f"a list of {len(vals)} non-negative numbers", source)
        w = [_num(x, f"{field_}.weights[{i}]", source) for i, x in enumerate(weights)]
        if any(x < 0 for x in w) or sum(w) <= 0:
            raise RecipeError(f"{field_}.weights", weights, "non-negative numbers with a positive sum", source)
        weights = tuple(w)
    return Choice(tuple(vals), weights)


def choice_of(values: Sequence, weights: Sequence | None = None) -> Choice:
    """Convenience constructor used by simulators for internal class draws."""
    return Choice(tuple(values), None if weights is None else tuple(float(w) for w in weights))
