"""Put a measured :class:`~train.measurements.Measurement` onto a model's (or simulator's) axis with the
conventions of the simulator's output.

``prepare(measurement, target)``: ``target`` is a run directory / :class:`train.run.Run`, a
:class:`simgen.simulator.Simulator`, a :class:`simgen.recipe.Recipe` or recipe name, or a bare
:class:`~simgen.simulator.Axis` (then ``modality=`` says which conventions apply).  The conventions belong to
the simulator's adapter (:mod:`train.modalities`; each adapter module documents its own): this module holds
what every adapter shares (the target's description, rebinning, coverage and unit checks) and the generic loop.

A measurement that does not cover the axis raises :class:`~train.measurements.MeasurementError` naming the
file, the measured range and the model's range; one outside a model's domain raises
:class:`~train.modalities.OutOfDomain`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simgen.simulator import Axis

from .measurements import Measurement, MeasurementError

__all__ = ["Prepared", "TargetSpec", "target_spec", "prepare", "rebin", "prior_support", "generic_prepare",
           "refuse", "check_units", "covers", "span"]


@dataclass
class Prepared:
    """A measurement on the model's axis: ``x`` (float32, ``(n, *axis.shape)``; n > 1 only for image tiles)."""

    x: np.ndarray
    axis: Axis
    measurement: Measurement
    info: dict = field(default_factory=dict)


@dataclass
class TargetSpec:
    """What preparation needs to know about the model: axis, simulator name, its config and recipe (if known)."""

    axis: Axis
    simulator: str
    config: dict = field(default_factory=dict)
    recipe: Any = None
    run: Any = None


# ------------------------------------------------------------------------------------------------ target
def _recipe_of_run_dir(path: Path):
    from simgen.recipe import load_recipe
    for name in ("recipe.yaml", "recipe.json"):
        if (path / name).exists():
            txt = (path / name).read_text()
            import yaml
            return load_recipe(yaml.safe_load(txt))
    cfg = json.loads((path / "config.json").read_text()) if (path / "config.json").exists() else {}
    store = cfg.get("store")
    if store and Path(store).exists():
        import simgen.corpus
        return simgen.corpus.open(store).recipe
    return None


def target_spec(target, modality: str | None = None) -> TargetSpec:
    from simgen.recipe import Recipe, load_recipe
    from simgen.simulator import Simulator
    if isinstance(target, TargetSpec):
        return target
    if isinstance(target, Axis):
        from . import modalities
        return TargetSpec(target, modality or modalities.for_axis(target.dims) or "peaks")
    if isinstance(target, Simulator):
        return TargetSpec(target.axis, target.name, dict(target.config), getattr(target, "_recipe", None))
    if isinstance(target, Recipe):
        sim = target.build()
        return TargetSpec(sim.axis, sim.name, dict(sim.config), target)
    if isinstance(target, (str, Path)) and Path(target).is_dir():
        from .run import load_run
        target = load_run(target)
    if hasattr(target, "axis") and hasattr(target, "path") and hasattr(target, "task"):  # a train.run.Run
        recipe = _recipe_of_run_dir(Path(target.path))
        if recipe is not None:
            return TargetSpec(target.axis, recipe.simulator, dict(recipe.config), recipe, target)
        vf = Path(target.path) / "versions.json"
        sim = json.loads(vf.read_text()).get("simulator") if vf.exists() else None
        if not sim:
            from . import modalities
            sim = modalities.for_axis(target.axis.dims) or "peaks"
        return TargetSpec(target.axis, sim, {}, None, target)
    if isinstance(target, (str, Path)):
        return target_spec(load_recipe(target), modality)
    raise TypeError(f"prepare target {type(target).__name__}: expected a run directory, Run, Simulator, Recipe, "
                    "recipe name or Axis")


def prior_support(spec: TargetSpec, name: str):
    """``(low, high)`` of the recipe's prior of parameter ``name``; None when the model has no recipe or the
    recipe gives the parameter no prior.  A prior that cannot be parsed raises (it would have failed the recipe
    load already, so this is a bug worth seeing)."""
    r = spec.recipe
    if r is None:
        return None
    pri = (getattr(r, "params", None) or {}).get(name)
    if pri is None:
        return None
    if hasattr(pri, "support"):
        return pri.support()
    from simgen.priors import parse_prior
    return parse_prior(pri, f"params.{name}").support()


# ------------------------------------------------------------------------------------------------ helpers
def rebin(x: np.ndarray, y: np.ndarray, xnew: np.ndarray) -> np.ndarray:
    """Values of (x, y) on ``xnew``: bin averages (exact integral of the linear interpolant over each new bin)
    where the data are finer than the new grid, linear interpolation where they are coarser."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    xnew = np.asarray(xnew, float)
    if len(xnew) < 2:
        return np.interp(xnew, x, y)
    dx_data = np.median(np.diff(x))
    edges = np.concatenate([[xnew[0] - (xnew[1] - xnew[0]) / 2], (xnew[1:] + xnew[:-1]) / 2,
                            [xnew[-1] + (xnew[-1] - xnew[-2]) / 2]])
    lin = np.interp(xnew, x, y)
    if dx_data >= np.median(np.diff(xnew)) / 1.5:
        return lin
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])

    def F(t):
        t = np.clip(t, x[0], x[-1])
        i = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
        h = t - x[i]
        slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
        return cum[i] + y[i] * h + 0.5 * slope * h * h

    lo = np.clip(edges[:-1], x[0], x[-1])
    hi = np.clip(edges[1:], x[0], x[-1])
    w = hi - lo
    out = np.where(w > 0, (F(hi) - F(lo)) / np.where(w > 0, w, 1.0), lin)
    return out


def span(a) -> str:
    """'first-last' of an axis, for messages."""
    return f"{a[0]:g}-{a[-1]:g}"


def refuse(m: Measurement, what: str):
    """Raise :class:`MeasurementError` for ``m`` saying ``what`` is wrong."""
    raise MeasurementError(m.source, what)


def check_units(m: Measurement, axis: Axis, expected_units: str):
    """Refuse ``m`` unless its axis is in ``expected_units``."""
    if m.units != expected_units:
        hint = ""
        if not m.units:
            hint = (" (the file does not say; a plain column file needs its modality, e.g. "
                    "read(path, modality=...), or columns named in its header)")
        refuse(m, f"{m.axis_name} in '{m.units}' but the model's axis '{axis.dims[0]}' is in '{expected_units}'"
               + hint)


def covers(m: Measurement, xdata, axis_c, label: str, tol: float | None = None):
    """Refuse ``m`` unless ``xdata`` spans the model's axis ``axis_c`` (within half a step, or ``tol``)."""
    step = abs(axis_c[1] - axis_c[0]) if len(axis_c) > 1 else 0.0
    tol = 0.5 * step if tol is None else tol
    if xdata[0] > axis_c[0] + tol or xdata[-1] < axis_c[-1] - tol:
        refuse(m, f"{label} {span(xdata)} does not cover the model's axis {span(axis_c)}")


def generic_prepare(m: Measurement, spec: TargetSpec) -> Prepared:
    """A 1-D measurement rebinned onto a 1-D axis (units must agree when both are given)."""
    axis = spec.axis
    if axis.ndim != 1 or m.values.ndim != 1:
        refuse(m, f"cannot put a {m.values.ndim}-D measurement on a {axis.ndim}-D axis")
    if m.units and axis.units[0] and m.units != axis.units[0]:
        refuse(m, f"axis in '{m.units}' but the model's axis '{axis.dims[0]}' is in '{axis.units[0]}'")
    covers(m, m.axis, axis.coords[0], f"{m.axis_name}")
    return Prepared(rebin(m.axis, m.values, axis.coords[0])[None].astype(np.float32), axis, m,
                    {"steps": ["rebinned onto the axis"]})


def prepare(measurement: Measurement, target, *, modality: str | None = None, **options) -> Prepared:
    """Put ``measurement`` on ``target``'s axis with the conventions of the target's modality adapter.

    Parameters
    ----------
    measurement : Measurement
        From :func:`train.measurements.read` (or built in memory).
    target : run directory, Run, Simulator, Recipe, recipe name or Axis
        What the prepared array must match (axis, simulator conventions, recipe priors).
    modality : str, optional
        The modality whose conventions apply when ``target`` is a bare Axis.
    **options
        Options of the modality's preparation, e.g. ``mw_frequency_GHz`` and ``pad`` (epr), ``e0`` (exafs, eV),
        ``pixel_size_nm`` and ``max_tiles`` (swelling).  An option the modality does not take is an error.

    Returns
    -------
    Prepared
        ``x`` float32 of shape ``(n, *axis.shape)`` (n > 1 only for image tiles), the axis, the measurement and
        ``info`` (the steps taken, values measured on the way, warnings).

    Raises
    ------
    MeasurementError
        The measurement cannot be put on the axis (wrong units, does not cover it, flat...).
    OutOfDomain
        The measurement is outside what the model was trained for (another edge, element, field range...).
    """
    import inspect

    from . import modalities
    spec = target_spec(target, modality)
    m = measurement
    adapter = modalities.get(spec.simulator)
    if m.modality is not None and m.modality != adapter.name:
        refuse(m, f"a {m.modality} measurement cannot feed a '{spec.simulator}' model (expects {adapter.name} data)")
    sig = inspect.signature(adapter.prepare).parameters
    given = {k: v for k, v in options.items() if v is not None}
    unknown = [k for k in given if k not in sig]
    if unknown:
        takes = [k for k in sig if k not in ("m", "spec")]
        raise ValueError(f"prepare option(s) {', '.join(unknown)} do not apply to '{adapter.name}' models "
                         f"(they take: {', '.join(takes) or 'no options'})")
    adapter.check_domain(m, spec)
    prep = adapter.prepare(m, spec, **given)
    if not np.all(np.isfinite(prep.x)):
        refuse(m, "preparation gave non-finite values (check the file's numbers)")
    return prep
