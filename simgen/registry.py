"""Registry of simulators: a name maps to ``module:Class``, imported on first use.

Third-party packages add modalities through the ``simgen.simulators`` entry-point group, e.g. in their
``pyproject.toml``::

    [project.entry-points."simgen.simulators"]
    raman = "mypkg.raman:RamanSimulator"

The corpus engine and ``train`` reach simulators only through :func:`get`.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .errors import RecipeError

__all__ = ["BUILTIN", "register", "get", "available", "problems"]

BUILTIN: dict[str, str] = {
    "peaks": "simgen.examples.peaks:PeaksSimulator",
    "epr": "simgen.epr.simulator:EPRSimulator",
    "pdf": "simgen.pdf.simulator:PDFSimulator",
    "exafs": "simgen.exafs.simulator:EXAFSSimulator",
    "exelfs": "simgen.exafs.simulator:EXELFSSimulator",
    "swelling": "simgen.swelling.simulator:SwellingSimulator",
    "solutions": "simgen.solutions.simulator:SolutionsSimulator",
}

_extra: dict[str, object] = {}


def register(name: str, target) -> None:
    """Register a simulator class (or a ``"module:Class"`` string) under ``name``."""
    _extra[name] = target


_problems: list[str] = []


def _table() -> dict[str, object]:
    table: dict[str, object] = dict(BUILTIN)
    _problems.clear()
    try:
        eps = list(entry_points(group="simgen.simulators"))
    except Exception as exc:  # broken third-party metadata must not break simgen, but is reported
        eps = []
        _problems.append(f"reading the 'simgen.simulators' entry points failed: {type(exc).__name__}: {exc}")
        import warnings
        warnings.warn(_problems[-1], RuntimeWarning, stacklevel=2)
    for ep in eps:
        if ep.name in table and table[ep.name] != ep.value:
            _problems.append(f"entry point '{ep.name}' = {ep.value} ignored: the name is taken by "
                             f"{table[ep.name]}")
            continue
        table[ep.name] = ep.value
    table.update(_extra)
    return table


def problems() -> list[str]:
    """Problems met while reading the entry points (names taken twice, unreadable metadata)."""
    _table()
    return list(_problems)


def get(name: str):
    """The simulator class registered as ``name``."""
    table = _table()
    if name not in table:
        import difflib
        close = difflib.get_close_matches(name, list(table), n=1)
        raise RecipeError("simulator", name, "one of " + ", ".join(sorted(table)),
                          hint=f"did you mean '{close[0]}'?" if close else "")
    target = table[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except Exception as exc:  # a plugin failing to import in any way is reported with its error
            raise RecipeError("simulator", name, f"an importable simulator ({target} failed: "
                              f"{type(exc).__name__}: {exc})") from exc
        return cls
    return target


def available() -> dict[str, str]:
    """name -> 'ok' or the reason it cannot be imported."""
    out = {}
    for name in sorted(_table()):
        try:
            get(name)
            out[name] = "ok"
        except RecipeError as exc:
            out[name] = str(exc)
    return out
