"""Errors raised for bad input.

Every message names *where* the bad value came from (a file and a dotted field, or a parameter name), the value
itself and what was expected, so that a user can fix a recipe or a call without reading the source.
"""
from __future__ import annotations

from typing import Any

__all__ = ["SimgenError", "RecipeError", "ParameterError", "StoreError"]


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class SimgenError(Exception):
    """Base class of the errors simgen raises on purpose."""


class RecipeError(SimgenError, ValueError):
    """A recipe (YAML file or dict) is invalid.

    ``field`` is a dotted path such as ``params.width.low``; ``source`` the file it came from.
    """

    def __init__(self, field: str, value: Any, expected: str, source: str | None = None, hint: str = ""):
        self.field, self.value, self.expected, self.source, self.hint = field, value, expected, source, hint
        where = f"{source}: " if source else ""
        msg = f"{where}field '{field}': got {_fmt(value)}; expected {expected}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class ParameterError(SimgenError, ValueError):
    """A simulation parameter (or config entry) is out of its valid range or of the wrong kind."""

    def __init__(self, name: str, value: Any, expected: str, simulator: str | None = None):
        self.name, self.value, self.expected = name, value, expected
        who = f"{simulator}: " if simulator else ""
        super().__init__(f"{who}parameter '{name}': got {_fmt(value)}; expected {expected}")


class StoreError(SimgenError, RuntimeError):
    """A corpus store is missing, incomplete, corrupted or was made from another recipe."""
