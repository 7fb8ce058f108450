"""Text column files: the strict numeric-block parser every column format uses, and plain columns.

The modality formats built on it (XDI and XAFS columns, PDF G(r)) live in their adapters
(:mod:`train.modalities.exafs`, :mod:`train.modalities.pdf`).  The numeric block is parsed strictly: once data start, every non-comment line must hold the same number of
numbers, so a truncated last row or a corrupted line is reported with its line number instead of being skipped.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import Measurement, MeasurementError

__all__ = ["read_columns", "numeric_block", "text_lines", "sorted_axis", "floats", "COMMENT"]

_COMMENT = ("#", "%", "!", ";")
_SPLIT = re.compile(r"[\s,]+")


def _floats(line: str):
    toks = [t for t in _SPLIT.split(line.strip()) if t]
    try:
        return [float(t.replace("D", "E").replace("d", "e")) for t in toks]
    except ValueError:
        return None


def numeric_block(path: Path, lines: list[str], start: int | None = None, run: int = 5):
    """(data array, index of the first data line) of the numeric block of ``lines``.

    Without ``start``, data begin at the first line that starts a run of ``run`` numeric lines (so free-form
    header lines without a comment character are skipped).  After that every non-empty, non-comment line must
    be numeric with the same number of columns.
    """
    if start is None:
        start = -1
        numeric = [(_floats(ln) is not None and ln.strip() != "" and not ln.lstrip().startswith(_COMMENT))
                   for ln in lines]
        for i in range(len(lines)):
            if numeric[i]:
                ahead = [j for j in range(i, len(lines)) if lines[j].strip()
                         and not lines[j].lstrip().startswith(_COMMENT)][:run]
                if all(numeric[j] for j in ahead):
                    start = i
                    break
        if start < 0:
            raise MeasurementError(path, "no block of numeric data lines found")
    rows, ncol = [], None
    for i in range(start, len(lines)):
        ln = lines[i]
        s = ln.strip()
        if not s or s.startswith(_COMMENT):
            continue
        vals = _floats(s)
        if vals is None:
            raise MeasurementError(path, f"line {i + 1}: {s[:40]!r} is not numeric (corrupted data block)")
        if ncol is None:
            ncol = len(vals)
        elif len(vals) != ncol:
            what = "truncated" if i == len(lines) - 1 or not any(x.strip() for x in lines[i + 1:]) else "ragged"
            raise MeasurementError(path, f"line {i + 1}: {len(vals)} values, expected {ncol} like the lines before "
                                   f"({what} row)")
        rows.append(vals)
    if not rows:
        raise MeasurementError(path, "no numeric data lines")
    return np.asarray(rows, dtype=np.float64), start


def _lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise MeasurementError(path, "binary content where a text column file was expected")
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _sorted_axis(path, x, cols, what):
    if len(x) < 2:
        raise MeasurementError(path, f"only {len(x)} data rows")
    order = np.argsort(x, kind="stable")
    x = x[order]
    if np.any(np.diff(x) == 0):
        raise MeasurementError(path, f"{what} axis repeats a value ({x[np.flatnonzero(np.diff(x) == 0)[0]]:g})")
    return x, [c[order] for c in cols]


def read_columns(path) -> Measurement:
    """Plain numeric columns: column 1 is the axis, column 2 the values (extra columns kept in meta)."""
    path = Path(path)
    data, _ = numeric_block(path, _lines(path))
    if data.shape[1] < 2:
        raise MeasurementError(path, f"{data.shape[1]} column(s); expected at least 2 (axis, values)")
    x, (y,) = _sorted_axis(path, data[:, 0], [data[:, 1]], "first-column")
    meta = {"format": "columns", "extra_columns": data.shape[1] - 2}
    return Measurement(x, y, "x", "", "", None, meta)


# public names for the format readers of the adapters
text_lines = _lines
sorted_axis = _sorted_axis
floats = _floats
COMMENT = _COMMENT
