"""One adapter per simulator: what ``train`` needs to know about a modality's measured data.

An adapter is registered under its simulator's registry name (``epr``, ``exafs``, ``exelfs``, ``pdf``,
``swelling``, ``peaks``, ...) and owns, for that modality:

* the **readers** of its file formats (``formats``: extension -> function(path) -> :class:`Measurement`);
* **preparation** onto a model's axis with the simulator's conventions (:meth:`Adapter.prepare`);
* **domain checks** that refuse a measurement a model was not trained for (:meth:`Adapter.check_domain`);
* **derived quantities** computed from predicted targets (:meth:`Adapter.derived`);
* what the validation overlay switches off (``overlay_zero``) and per-file extras (:meth:`Adapter.annotate`);
* the **acceptance references**: which real files each acceptance check uses (``acceptance``) and the
  folders real files of the modality live in (``data_dirs``).

:func:`train.prepare.prepare`, :func:`train.validate.validate`, :func:`train.acceptance.acceptance` and
:func:`train.measurements.read` are generic loops over adapters.  A new modality is one simulator (registered in
``simgen.registry`` or the ``simgen.simulators`` entry point group) plus one adapter registered here, with
:func:`register` or through the ``simtrain.modalities`` entry point group, e.g.::

    [project.entry-points."simtrain.modalities"]
    raman = "mypkg.raman_adapter:RamanAdapter"
"""
from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Callable

import numpy as np

from simgen.errors import SimgenError

__all__ = ["Adapter", "AdapterError", "OutOfDomain", "BUILTIN", "register", "get", "names", "available",
           "readers_for", "for_axis", "refuse_stack", "add_warning"]

BUILTIN: dict[str, str] = {
    "peaks": "train.modalities.peaks:PeaksAdapter",
    "epr": "train.modalities.epr:EPRAdapter",
    "exafs": "train.modalities.exafs:EXAFSAdapter",
    "exelfs": "train.modalities.exelfs:EXELFSAdapter",
    "pdf": "train.modalities.pdf:PDFAdapter",
    "swelling": "train.modalities.swelling:SwellingAdapter",
    "solutions": "train.modalities.solutions:SolutionsAdapter",
}

ENTRY_POINT_GROUP = "simtrain.modalities"


class AdapterError(SimgenError, LookupError):
    """No adapter for a simulator name, or an adapter that cannot be imported."""


class OutOfDomain(SimgenError, ValueError):
    """A measurement lies outside what a model was trained on; the message says why (never a silent number)."""

    def __init__(self, path, why: str):
        self.path, self.why = str(path), why
        super().__init__(f"{path}: out of domain: {why}")


class Adapter:
    """Base class of modality adapters (see the module docstring).  Subclasses set the class attributes and
    override the methods that apply; the defaults suit a 1-D spectrum rebinned onto the model's axis."""

    #: the simulator's registry name
    name: str = ""
    #: dimension names of the simulator's axis this adapter prepares for (used to guess an adapter from an Axis)
    axis_dims: tuple[str, ...] = ()
    #: file extension (lower case, with the dot) -> reader(path) -> Measurement
    formats: dict[str, Callable] = {}
    #: axis kind of the modality's column files (``field``, ``energy``, ``energy_loss``, ``r``, ``k``; see
    #: :data:`train.measurements.columns.AXIS_KINDS`) and the names of value columns to prefer
    columns_kind: str | None = None
    value_columns: tuple[str, ...] = ()
    #: folder names under a real-data directory (e.g. ../shared/data/xafs) holding this modality's files
    data_dirs: tuple[str, ...] = ()
    #: acceptance check name -> file names it validates on (see train.acceptance)
    acceptance: dict[str, list[str]] = {}
    #: parameters set to zero (when their range allows it) in the simulated overlay of a validation figure
    overlay_zero: tuple[str, ...] = ("noise", "noise_white", "noise_pink", "baseline_c0", "baseline_c1", "baseline_c2",
                                     "bg_amp", "counts")

    # ------------------------------------------------------------------ readers
    def read_columns(self, path, columns=None, units: str | None = None):
        """A text file of columns read as this modality's axis and values (``read(path, modality=...)`` on a
        .txt/.csv/.dat): the axis column found by name (``columns_kind``) or column 1, its unit from the header
        or ``units`` (required when the header does not say it), converted to the modality's unit."""
        from pathlib import Path

        from ..measurements import Measurement, MeasurementError
        from ..measurements.columns import describe_columns, read_table, select_xy, sorted_axis
        path = Path(path)
        if self.columns_kind is None:
            raise MeasurementError(path, f"the {self.name} modality reads no column text files")
        t = read_table(path)
        if t.ncol < 2:
            raise MeasurementError(path, f"{t.ncol} column(s); expected at least 2 (axis, values)")
        x, y, name, unit, yname = select_xy(t, self.columns_kind, columns, units, self.value_columns)
        x, (y,) = sorted_axis(path, x, [y], name)
        meta = {"format": "columns", "columns": describe_columns(t), "value_column": yname}
        if units:
            meta["declared_units"] = units
        return Measurement(x, y, name, unit, "", self.name, meta)

    # ------------------------------------------------------------------ preparation
    def prepare(self, m, spec, **kw):
        """Put measurement ``m`` onto ``spec.axis`` (a :class:`train.prepare.TargetSpec`); returns
        :class:`train.prepare.Prepared`.  Default: rebin a 1-D measurement onto a 1-D axis."""
        from ..prepare import generic_prepare
        return generic_prepare(m, spec)

    def check_domain(self, m, spec) -> None:
        """Raise :class:`OutOfDomain` when ``m`` lies outside what a model of ``spec`` can read."""

    # ------------------------------------------------------------------ validation
    def derived(self, names: list[str], samples: np.ndarray, info: dict) -> dict[str, np.ndarray]:
        """Derived quantities (arrays of shape ``(T, n)``) from target samples ``(T, n, len(names))``."""
        return {}

    def allowed_classes(self, m, classes: list[str]) -> list[bool] | None:
        """Which of a model's classes the measurement can be (known from the file, e.g. its absorber); None: all.
        Validation picks the most probable allowed class instead of letting the network guess a known fact."""
        return None

    def refine(self, m, prep, result: dict) -> None:
        """Refine ``result['values']`` in place from the measurement itself (e.g. a physics fit started from the
        network's estimate), keeping the network-only values as ``<name>_net``.  Default: nothing."""

    def annotate(self, m, result: dict) -> None:
        """Add per-file extras to a validation ``result`` (e.g. identified edges)."""

    def check_without_run(self, m) -> dict | None:
        """A validation result obtainable with no trained network (``None``: a run is needed)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {', '.join(sorted(self.formats)) or 'no formats'}>"


def add_warning(info: dict, msg: str) -> None:
    """Append ``msg`` to ``info['warning']`` (what ``simtrain validate`` prints on the console)."""
    info["warning"] = (info["warning"] + "; " + msg) if info.get("warning") else msg


def refuse_stack(m) -> None:
    """Refuse a stack of spectra (a 2-D file) in a preparation that takes one spectrum, saying how to pick one."""
    if getattr(m, "axis2", None) is not None:
        from ..measurements import MeasurementError
        n2 = len(m.axis2)
        raise MeasurementError(m.source, f"holds {n2} spectra along {m.axis2_name} ({m.axis2[0]:g}..{m.axis2[-1]:g} "
                               f"{m.axis2_units}); pick one with read(path, slice=K) or --slice K (K = 0..{n2 - 1})")


_extra: dict[str, object] = {}
_cache: dict[str, Adapter] = {}
_import_errors: dict[str, str] = {}


def register(name: str, target) -> None:
    """Register an :class:`Adapter` subclass (or ``"module:Class"``) under the simulator name ``name``."""
    _extra[name] = target
    _cache.pop(name, None)


def _table() -> dict[str, object]:
    table: dict[str, object] = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, ep.value)
    table.update(_extra)
    return table


def get(name: str) -> Adapter:
    """The adapter registered for simulator ``name`` (an instance, created once)."""
    if name in _cache:
        return _cache[name]
    table = _table()
    if name not in table:
        raise AdapterError(f"modality '{name}': no train adapter registered (known: {', '.join(sorted(table))}); "
                           "register one with train.modalities.register or the 'simtrain.modalities' entry point")
    target = table[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            target = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise AdapterError(f"modality '{name}': adapter {table[name]} cannot be imported: "
                               f"{type(exc).__name__}: {exc}") from exc
    inst = target() if inspect.isclass(target) else target
    if not isinstance(inst, Adapter):
        raise AdapterError(f"modality '{name}': {target!r} is not a train.modalities.Adapter")
    inst.name = inst.name or name
    _cache[name] = inst
    return inst


def names() -> list[str]:
    """Every registered modality name (importable or not)."""
    return sorted(_table())


def available() -> dict[str, str]:
    """name -> 'ok' or why its adapter cannot be imported (``simtrain --help`` lists these)."""
    out = {}
    for n in names():
        try:
            get(n)
            out[n] = "ok"
        except AdapterError as exc:
            out[n] = str(exc)
    return out


def importable():
    """``(name, adapter)`` of every registered adapter that imports (the others are listed by :func:`available`)."""
    for n in names():
        try:
            yield n, get(n)
        except AdapterError:
            continue


def readers_for(ext: str) -> list[tuple[str, Callable]]:
    """``[(modality, reader)]`` of every importable adapter that reads extension ``ext`` ('.dsc', ...)."""
    out = []
    for n, a in importable():
        r = a.formats.get(ext.lower())
        if r is not None:
            out.append((n, r))
    return out


def for_axis(dims: tuple[str, ...]) -> str | None:
    """The modality whose adapter declares ``dims[0]`` among its axis dimensions (None when none does)."""
    for n, a in importable():
        if dims and dims[0] in a.axis_dims:
            return n
    return None
