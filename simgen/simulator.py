"""The simulator contract every modality implements.

A simulator is a small, picklable object built from a validated recipe config.  It declares

* ``name``: its registry key;
* ``CONFIG``: the axis/instrument settings it accepts (a :class:`Field` each);
* ``PARAMS``: every per-sample parameter, with units and valid range (a :class:`Field` each);
* ``OUTPUTS``: extra per-sample arrays besides ``x`` (for example a void mask), optional;
* ``axis``: the coordinates of one sample (:class:`Axis`);

and implements ``simulate(params, rng) -> float32 array (n, *axis.shape)``, a pure function of its inputs.

Randomness and reproducibility
------------------------------
``sample_params(n, rng)`` draws every parameter from the recipe's priors *and* one integer ``seed`` per sample.
All randomness inside ``simulate`` (noise, random placements, ...) for sample ``i`` comes from
``self.sample_rng(params, i)``, a generator seeded by ``params["seed"][i]`` alone.  Hence a batch gives exactly
the same bytes as the same samples simulated one by one, and the corpus engine can cut a corpus into chunks in
any way without changing a byte.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np

from .errors import ParameterError, RecipeError
from .priors import Choice, Fixed, Prior, parse_prior

__all__ = ["Field", "Output", "Axis", "LabelSpec", "Simulator", "REQUIRED"]


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED: Any = _Required()

#: names of corpus-store arrays and dimensions, which an axis dimension may not take
RESERVED_NAMES = ("x", "y", "label", "params", "sample", "param", "param_units", "param_all", "class", "chunk",
                  "_chunk_crc32")

_KINDS = ("float", "int", "category", "bool", "str", "list", "any")


@dataclass(frozen=True)
class Field:
    """Declaration of one parameter or config entry.

    ``low``/``high`` bound the physically valid range (inclusive unless ``low_open``/``high_open``);
    ``choices`` lists the allowed values of a ``category``; ``default`` of :data:`REQUIRED` makes it mandatory.
    ``target`` marks a parameter as a regression target by default (when its prior is not fixed).
    """

    units: str = ""
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    default: Any = REQUIRED
    doc: str = ""
    target: bool = True

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"Field.kind {self.kind!r}: expected one of {_KINDS}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def expected(self) -> str:
        """Human text of what is accepted, used in error messages."""
        u = f" {self.units}" if self.units else ""
        if self.kind == "category":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind in ("bool", "str", "list", "any"):
            return {"bool": "true or false", "str": "a string", "list": "a list", "any": "a valid value"}[self.kind]
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        lb = "(" if (self.low is None or self.low_open) else "["
        rb = ")" if (self.high is None or self.high_open) else "]"
        what = "an integer" if self.kind == "int" else "a number"
        if self.low is None and self.high is None:
            return f"{what}{u}"
        return f"{what} in {lb}{lo}, {hi}{rb}{u}"

    def in_range(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of values inside the valid range (NaN counts as invalid)."""
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        if self.low is not None:
            ok &= (v > self.low) if self.low_open else (v >= self.low)
        if self.high is not None:
            ok &= (v < self.high) if self.high_open else (v <= self.high)
        if self.kind == "int":
            ok &= v == np.round(v)
        return ok

    def support_ok(self, lo: float, hi: float) -> bool:
        """Whether a prior with support [lo, hi] stays inside the valid range."""
        if math.isnan(lo) or math.isnan(hi):
            return False
        if (math.isinf(lo) and self.low is not None) or (math.isinf(hi) and self.high is not None):
            return False
        lo_c = lo if math.isfinite(lo) else (hi if math.isfinite(hi) else 0.0)
        hi_c = hi if math.isfinite(hi) else lo_c
        return bool(self.in_range(np.array([lo_c, hi_c])).all())


@dataclass(frozen=True)
class Output:
    """An extra per-sample output array (besides ``x``): dtype and units; its shape is the axis shape."""

    dtype: str = "float32"
    units: str = ""
    doc: str = ""


@dataclass(frozen=True, eq=False)
class Axis:
    """Coordinates of one sample: one name, coordinate array and unit per dimension."""

    dims: tuple[str, ...]
    coords: tuple[np.ndarray, ...]
    units: tuple[str, ...]
    long_names: tuple[str, ...] = ()

    def __post_init__(self):
        if not (len(self.dims) == len(self.coords) == len(self.units)):
            raise ValueError("Axis: dims, coords and units must have the same length")
        for d in self.dims:
            if d in RESERVED_NAMES:
                raise ValueError(f"Axis dim '{d}': reserved for the store's arrays ({', '.join(RESERVED_NAMES)})")
        object.__setattr__(self, "coords", tuple(np.asarray(c, dtype=np.float64) for c in self.coords))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)

    @property
    def ndim(self) -> int:
        return len(self.dims)

    @classmethod
    def linear(cls, dim: str, units: str, start: float, stop: float, n: int, long_name: str = "") -> "Axis":
        return cls((dim,), (np.linspace(start, stop, int(n)),), (units,), (long_name or dim,))

    @classmethod
    def image(cls, ny: int, nx: int, pixel: float, units: str = "nm") -> "Axis":
        return cls(("image_y", "image_x"), (np.arange(ny) * pixel, np.arange(nx) * pixel), (units, units),
                   ("image y", "image x"))

    def to_dict(self) -> dict:
        return {"dims": list(self.dims), "units": list(self.units),
                "coords": [c.tolist() for c in self.coords], "long_names": list(self.long_names)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Axis":
        return cls(tuple(d["dims"]), tuple(np.asarray(c) for c in d["coords"]), tuple(d["units"]),
                   tuple(d.get("long_names", ())))

    def __eq__(self, other):
        return (isinstance(other, Axis) and self.dims == other.dims and self.units == other.units
                and all(np.array_equal(a, b) for a, b in zip(self.coords, other.coords)))


@dataclass(frozen=True)
class LabelSpec:
    """A classification label: its name, class names with weights, and per-class prior overrides."""

    name: str
    classes: tuple[str, ...]
    weights: tuple[float, ...]
    overrides: Mapping[str, Mapping[str, Prior]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": {
            c: {"weight": w, "params": {k: p.to_dict() for k, p in self.overrides.get(c, {}).items()}}
            for c, w in zip(self.classes, self.weights)}}


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


class Simulator:
    """Base class of all simulators (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    CONFIG: ClassVar[dict[str, Field]] = {}
    PARAMS: ClassVar[dict[str, Field]] = {}
    OUTPUTS: ClassVar[dict[str, Output]] = {}
    #: name and units of the simulated values in ``x``
    x_name: ClassVar[str] = "intensity"
    x_units: ClassVar[str] = "arb. units"

    # ------------------------------------------------------------------ construction
    def __init__(self, config: Mapping | None = None, *, priors: Mapping[str, Any] | None = None,
                 targets: list[str] | None = None, label: LabelSpec | None = None):
        self.config = self.validate_config(dict(config or {}))
        self.label = label
        self.priors: dict[str, Prior] = {}
        for pname, spec in (priors or {}).items():
            self.priors[pname] = parse_prior(spec, f"params.{pname}")
        self._check_priors()
        self.targets: tuple[str, ...] = tuple(targets) if targets is not None else self._default_targets()
        self._check_targets()
        self.setup()

    def setup(self) -> None:
        """Hook for subclasses: build the axis, load tables, check config entries against each other."""

    @classmethod
    def validate_config(cls, config: dict) -> dict:
        out = {}
        for key, value in config.items():
            if key not in cls.CONFIG:
                raise RecipeError(f"config.{key}", value, f"one of the {cls.name} config entries: "
                                  f"{', '.join(cls.CONFIG) or '(none)'}", hint=_suggest(key, cls.CONFIG))
        for key, spec in cls.CONFIG.items():
            if key in config:
                out[key] = cls._coerce(spec, config[key], f"config.{key}")
            elif spec.required:
                raise RecipeError(f"config.{key}", None, f"a value: {spec.expected()} ({spec.doc})".rstrip(" ()"))
            else:
                out[key] = spec.default
        return out

    @staticmethod
    def _coerce(spec: Field, value: Any, where: str) -> Any:
        if spec.kind in ("float", "int"):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise RecipeError(where, value, spec.expected()) from None
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise RecipeError(where, value, spec.expected())
            if not spec.in_range(np.array([value]))[0]:
                raise RecipeError(where, value, spec.expected())
            return int(value) if spec.kind == "int" else float(value)
        if spec.kind == "category":
            if value not in spec.choices:
                raise RecipeError(where, value, spec.expected(), hint=_suggest(value, spec.choices))
            return value
        if spec.kind == "bool":
            if not isinstance(value, bool):
                raise RecipeError(where, value, spec.expected())
            return value
        if spec.kind == "str":
            if not isinstance(value, str):
                raise RecipeError(where, value, spec.expected())
            return value
        if spec.kind == "list":
            if not isinstance(value, (list, tuple)):
                raise RecipeError(where, value, spec.expected())
            return list(value)
        return value

    def _check_priors(self) -> None:
        for pname, prior in self.priors.items():
            if pname not in self.PARAMS:
                raise RecipeError(f"params.{pname}", prior.to_dict(), f"a parameter of '{self.name}': "
                                  f"{', '.join(self.PARAMS)}", hint=_suggest(pname, self.PARAMS))
            self._check_prior(pname, prior, f"params.{pname}")
        for pname, spec in self.PARAMS.items():
            if pname not in self.priors:
                per_class = [self.label.overrides.get(c, {}).get(pname) for c in self.label.classes] \
                    if self.label is not None else []
                if per_class and all(p is not None for p in per_class):
                    self.priors[pname] = per_class[0]  # every class overrides it: the global draw is replaced
                    continue
                if spec.required:
                    raise RecipeError(f"params.{pname}", None, f"a prior for '{pname}' ({spec.expected()}; "
                                      f"{spec.doc})" if spec.doc else f"a prior for '{pname}' ({spec.expected()})")
                self.priors[pname] = Fixed(spec.default)
        if self.label is not None:
            for cname, over in self.label.overrides.items():
                for pname, prior in over.items():
                    where = f"label.classes.{cname}.params.{pname}"
                    if pname not in self.PARAMS:
                        raise RecipeError(where, prior.to_dict(), f"a parameter of '{self.name}'",
                                          hint=_suggest(pname, self.PARAMS))
                    self._check_prior(pname, prior, where)

    def _check_prior(self, pname: str, prior: Prior, where: str) -> None:
        spec = self.PARAMS[pname]
        if spec.kind == "category":
            vals = prior.values if isinstance(prior, Choice) else (prior.value,) if isinstance(prior, Fixed) else None
            if vals is None:
                raise RecipeError(where, prior.to_dict(), f"a 'fixed' or 'choice' prior over {spec.expected()}")
            for v in vals:
                if v not in spec.choices:
                    raise RecipeError(where, v, spec.expected(), hint=_suggest(v, spec.choices))
            return
        if spec.kind in ("bool", "str", "list", "any"):
            return
        if isinstance(prior, Choice) and not prior.numeric:
            raise RecipeError(where, prior.to_dict(), spec.expected())
        if isinstance(prior, Fixed) and not isinstance(prior.value, (int, float)):
            raise RecipeError(f"{where}", prior.value, spec.expected())
        lo, hi = prior.support()
        if not spec.support_ok(lo, hi):
            what = f"values from {lo:g} to {hi:g}"
            if math.isinf(lo) or math.isinf(hi):
                hint = "an unbounded normal prior can leave the valid range: use truncnormal"
            else:
                hint = f"{pname} must stay within its valid range"
            raise RecipeError(where, prior.to_dict(), f"{spec.expected()} ({what} were asked)", hint=hint)

    def _default_targets(self) -> tuple[str, ...]:
        out = []
        for pname, spec in self.PARAMS.items():
            prior = self.priors.get(pname)
            if spec.kind in ("float", "int") and spec.target and prior is not None and not prior.is_fixed:
                out.append(pname)
        if self.label is not None:
            for over in self.label.overrides.values():
                for pname, prior in over.items():
                    spec = self.PARAMS[pname]
                    if (pname not in out and spec.kind in ("float", "int") and spec.target and not prior.is_fixed):
                        out.append(pname)
            out.sort(key=list(self.PARAMS).index)
        return tuple(out)

    def _check_targets(self) -> None:
        for t in self.targets:
            if t not in self.PARAMS:
                raise RecipeError("targets", t, f"a parameter of '{self.name}'", hint=_suggest(t, self.PARAMS))
            if self.PARAMS[t].kind not in ("float", "int"):
                raise RecipeError("targets", t, "a numeric parameter (categories are labels, not targets)")

    # ------------------------------------------------------------------ description
    @property
    def axis(self) -> Axis:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the regression targets written to ``y``."""
        return self.targets

    @property
    def param_units(self) -> tuple[str, ...]:
        return tuple(self.PARAMS[t].units for t in self.targets)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.label.classes if self.label is not None else ()

    @property
    def all_param_names(self) -> tuple[str, ...]:
        """Every numeric per-sample parameter (targets and nuisances), as written to the store's ``params``."""
        return tuple(p for p, s in self.PARAMS.items() if s.kind in ("float", "int", "category", "bool"))

    # ------------------------------------------------------------------ parameters
    def sample_params(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw ``n`` parameter sets from the priors (class first, then each parameter in declaration order)."""
        out: dict[str, np.ndarray] = {}
        label = None
        if self.label is not None:
            label = Choice(tuple(range(len(self.label.classes))), self.label.weights).sample_index(n, rng)
            out["label"] = label
        for pname, spec in self.PARAMS.items():
            prior = self.priors[pname]
            vals = self._draw(spec, prior, n, rng)
            if label is not None:
                for ci, cname in enumerate(self.label.classes):
                    over = self.label.overrides.get(cname, {})
                    if pname in over:
                        sel = np.flatnonzero(label == ci)
                        if len(sel):
                            vals[sel] = self._draw(spec, over[pname], len(sel), rng)
            out[pname] = vals
        out["seed"] = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)
        self.derive_params(out, rng)
        return out

    @staticmethod
    def _draw(spec: Field, prior: Prior, n: int, rng) -> np.ndarray:
        if spec.kind == "category":
            if isinstance(prior, Fixed):
                return np.full(n, spec.choices.index(prior.value), dtype=np.float64)
            idx = prior.sample_index(n, rng)
            lut = np.array([spec.choices.index(v) for v in prior.values], dtype=np.float64)
            return lut[idx]
        if spec.kind in ("str", "list", "any"):
            return np.zeros(n)
        vals = np.asarray(prior.sample(n, rng), dtype=np.float64).copy()
        if spec.kind == "int":
            vals = np.round(vals)
        return vals

    def derive_params(self, params: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        """Hook: fill parameters that depend on others (in place), after the prior draws."""

    def prepare_params(self, params: Mapping[str, Any], rng: np.random.Generator | None = None
                       ) -> dict[str, np.ndarray]:
        """Broadcast, fill defaults and validate user-given parameters; returns 1-D float arrays of length n.

        Scalars broadcast; category values may be given by name.  Missing parameters take their declared
        default (an error for required ones).  A missing ``seed`` column is drawn from ``rng``
        (``default_rng(0)`` when none is given, so a call at chosen parameters is reproducible).
        """
        params = dict(params)
        n = 1
        for k, v in params.items():
            if np.ndim(v) > 1:
                raise ParameterError(k, v, "a scalar or a 1-D array", self.name)
            if np.ndim(v) == 1:
                if n != 1 and len(v) != n and len(v) != 1:
                    raise ParameterError(k, f"array of length {len(v)}", f"length {n} like the others", self.name)
                n = max(n, len(v))
        for k in params:
            if k not in self.PARAMS and k not in ("seed", "label"):
                raise ParameterError(k, params[k], f"a parameter of '{self.name}': {', '.join(self.PARAMS)}",
                                     self.name)
        out: dict[str, np.ndarray] = {}
        for pname, spec in self.PARAMS.items():
            if pname in params:
                v = params[pname]
            elif isinstance(self.priors.get(pname), Fixed):
                v = self.priors[pname].value
            elif not spec.required:
                v = spec.default
            else:
                raise ParameterError(pname, None, f"a value ({spec.expected()})", self.name)
            if spec.kind == "category":
                arr = np.atleast_1d(np.asarray(v, dtype=object))
                idx = np.empty(len(arr))
                for i, item in enumerate(arr):
                    if isinstance(item, str):
                        if item not in spec.choices:
                            raise ParameterError(pname, item, spec.expected(), self.name)
                        idx[i] = spec.choices.index(item)
                    else:
                        fi = float(item)
                        if fi != int(fi) or not 0 <= fi < len(spec.choices):
                            raise ParameterError(pname, item, spec.expected(), self.name)
                        idx[i] = fi
                arr = idx
            elif spec.kind in ("str", "list", "any"):
                continue
            else:
                try:
                    arr = np.atleast_1d(np.asarray(v, dtype=np.float64))
                except (TypeError, ValueError):
                    raise ParameterError(pname, v, spec.expected(), self.name) from None
                bad = ~spec.in_range(arr)
                if bad.any():
                    raise ParameterError(pname, float(arr[np.flatnonzero(bad)[0]]), spec.expected(), self.name)
            out[pname] = np.broadcast_to(arr, (n,)).astype(np.float64) if len(arr) in (1, n) else arr
        if self.label is not None:
            if "label" in params:
                lab = np.atleast_1d(np.asarray(params["label"], dtype=object))
                idx = []
                for item in lab:
                    if isinstance(item, str):
                        if item not in self.classes:
                            raise ParameterError("label", item, "one of " + ", ".join(self.classes), self.name)
                        idx.append(self.classes.index(item))
                    else:
                        if not 0 <= int(item) < len(self.classes):
                            raise ParameterError("label", item, f"a class index below {len(self.classes)}",
                                                 self.name)
                        idx.append(int(item))
                out["label"] = np.broadcast_to(np.asarray(idx, dtype=np.int64), (n,)).copy()
            else:
                raise ParameterError("label", None, "a class: one of " + ", ".join(self.classes), self.name)
        if "seed" in params:
            out["seed"] = np.broadcast_to(np.atleast_1d(np.asarray(params["seed"], dtype=np.int64)), (n,)).copy()
        else:
            rng = rng if rng is not None else np.random.default_rng(0)
            out["seed"] = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)
        return out

    @staticmethod
    def n_of(params: Mapping[str, np.ndarray]) -> int:
        return len(params["seed"])

    @staticmethod
    def sample_rng(params: Mapping[str, np.ndarray], i: int) -> np.random.Generator:
        """The random generator of sample ``i``: seeded by its own ``seed`` alone."""
        return np.random.default_rng(int(params["seed"][i]))

    def category(self, params: Mapping[str, np.ndarray], pname: str, i: int) -> Any:
        """The category value (as declared in ``PARAMS[pname].choices``) of sample ``i``."""
        return self.PARAMS[pname].choices[int(params[pname][i])]

    def targets_array(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        n = self.n_of(params)
        if not self.targets:
            return np.zeros((n, 0), dtype=np.float32)
        return np.stack([np.asarray(params[t], dtype=np.float32) for t in self.targets], axis=1)

    def params_array(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        n = self.n_of(params)
        cols = [np.asarray(params[p], dtype=np.float64) if p in params else np.full(n, np.nan)
                for p in self.all_param_names]
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    # ------------------------------------------------------------------ simulation
    def simulate(self, params: Mapping[str, Any], rng: np.random.Generator | None = None) -> np.ndarray:
        """Return ``x`` of shape ``(n, *axis.shape)``, float32.  Subclasses implement this."""
        raise NotImplementedError  # pragma: no cover

    def simulate_outputs(self, params: Mapping[str, Any], rng: np.random.Generator | None = None
                         ) -> dict[str, Any]:
        """All outputs of a batch: ``{"x": ..., <extra outputs>..., "params": {realized values}}``.

        The default returns ``x`` alone.  Simulators whose labels are only known after simulating (for
        example the swelling of a drawn void population) return them under ``"params"``; they replace the
        drawn values in the corpus.
        """
        return {"x": self.simulate(params, rng)}

    def plot_corpus(self, corpus, path, n: int = 6) -> bool:
        """Optional hook for ``simgen plot``: draw a modality-specific figure of ``corpus`` to ``path`` and
        return True; the default returns False and the generic sample plot is drawn."""
        return False

    # ------------------------------------------------------------------ misc
    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}' axis={self.axis.shape} targets={list(self.targets)}>"

    def describe(self) -> dict:
        return {
            "name": self.name, "version": self.version, "description": self.description,
            "config": self.config, "axis": {"dims": list(self.axis.dims), "units": list(self.axis.units),
                                            "shape": list(self.axis.shape)},
            "targets": list(self.targets), "classes": list(self.classes),
            "params": {k: {"units": s.units, "kind": s.kind, "expected": s.expected(), "doc": s.doc}
                       for k, s in self.PARAMS.items()},
        }
