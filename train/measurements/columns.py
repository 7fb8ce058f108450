"""Text column files: the strict numeric-block parser every column format uses, column names and units from the
header, column selection by name, number or expression, and the plain-column reader.

The modality formats built on it (XDI, XAFS columns, .fio, PDF G(r)) live in their adapters
(:mod:`train.modalities.exafs`, :mod:`train.modalities.pdf`).  The numeric block is parsed strictly: once data
start, every non-comment line must hold the same number of numbers, so a truncated last row or a corrupted line
is reported with its line number instead of being skipped.

Column names come from, in this order: XDI ``# Column.N: name unit`` lines, SPEC ``#L`` lines, ``.fio``
``Col N name TYPE`` lines, a header row right before the data (CSV or whitespace separated, commented or not),
the last comment line with one word per column.  A name may carry its unit: ``Field (G)``, ``energy [eV]``,
``r/A``.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import Measurement, MeasurementError

__all__ = ["read_columns", "numeric_block", "text_lines", "sorted_axis", "floats", "COMMENT", "Table", "read_table",
           "column", "parse_columns", "is_point_index", "AXIS_KINDS", "axis_column", "convert_units",
           "describe_columns"]

_COMMENT = ("#", "%", "!", ";")
_SPLIT = re.compile(r"[\s,]+")


def _floats(line: str):
    toks = [t for t in _SPLIT.split(line.strip()) if t]
    try:
        return [float(t.replace("D", "E").replace("d", "e")) for t in toks]
    except ValueError:
        return None


def numeric_block(path: Path, lines: list[str], start: int | None = None, run: int = 5, keep: int | None = None):
    """(data array, index of the first data row) of the numeric block of ``lines``.

    Without ``start``, data begin at the first line that starts a run of ``run`` numeric lines (so free-form
    header lines without a comment character are skipped).  After that every non-empty, non-comment line must
    be numeric with the same number of columns.  With ``keep``, rows may differ in length as long as each has
    at least ``keep`` values, and only the first ``keep`` are kept (files that write error columns on some rows
    only); a row with fewer is still reported.
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
    rows, ncol, first = [], None, None
    for i in range(start, len(lines)):
        ln = lines[i]
        s = ln.strip()
        if not s or s.startswith(_COMMENT):
            continue
        vals = _floats(s)
        if vals is None:
            raise MeasurementError(path, f"line {i + 1}: {s[:40]!r} is not numeric (corrupted data block)")
        if keep is not None:
            if len(vals) < keep:
                what = "truncated" if i == len(lines) - 1 or not any(x.strip() for x in lines[i + 1:]) else "short"
                raise MeasurementError(path, f"line {i + 1}: {len(vals)} value(s), expected at least {keep} "
                                       f"({what} row)")
            vals = vals[:keep]
        if ncol is None:
            ncol = len(vals)
        elif len(vals) != ncol:
            what = "truncated" if i == len(lines) - 1 or not any(x.strip() for x in lines[i + 1:]) else "ragged"
            raise MeasurementError(path, f"line {i + 1}: {len(vals)} values, expected {ncol} like the lines before "
                                   f"({what} row)")
        rows.append(vals)
        if first is None:
            first = i
    if not rows:
        raise MeasurementError(path, "no numeric data lines")
    return np.asarray(rows, dtype=np.float64), first


def _lines(path: Path) -> list[str]:
    data = Path(path).read_bytes()
    if b"\x00" in data[:4096]:
        raise MeasurementError(path, "binary content where a text column file was expected")
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _sorted_axis(path, x, cols, what):
    if len(x) < 2:
        raise MeasurementError(path, f"only {len(x)} data rows")
    order = np.argsort(x, kind="stable")
    x = x[order]
    if np.any(np.diff(x) == 0):
        raise MeasurementError(path, f"{what} axis repeats a value ({x[np.flatnonzero(np.diff(x) == 0)[0]]:g})")
    return x, [c[order] for c in cols]


# ------------------------------------------------------------------------------------------------ units
#: axis kinds: canonical unit, unit -> factor to the canonical unit, words that name such a column
AXIS_KINDS: dict[str, dict] = {
    "field": {"units": "mT", "factors": {"mt": 1.0, "g": 0.1, "gauss": 0.1, "t": 1000.0, "kg": 100.0},
              "names": ("field", "bfield", "b_field", "b0", "magnetic_field")},
    "energy": {"units": "eV", "factors": {"ev": 1.0, "kev": 1000.0},
               "names": ("energy", "energy_ev", "e", "ener", "mono_energy", "photon_energy", "enc", "ev")},
    "energy_loss": {"units": "eV", "factors": {"ev": 1.0, "kev": 1000.0},
                    "names": ("energy_loss", "eloss", "energy loss", "loss", "energy", "e", "ev")},
    "r": {"units": "A", "factors": {"a": 1.0, "å": 1.0, "angstrom": 1.0, "ang": 1.0, "nm": 10.0},
          "names": ("r", "r_a", "distance")},
    "k": {"units": "1/A", "factors": {"1/a": 1.0, "a^-1": 1.0, "å^-1": 1.0, "1/å": 1.0, "a-1": 1.0},
          "names": ("k", "wavenumber")},
    "x": {"units": "", "factors": {"": 1.0}, "names": ("x",)},
}


def convert_units(kind: str, unit: str, path=None, what: str = "axis") -> tuple[float, str]:
    """(factor to the canonical unit of ``kind``, canonical unit) for ``unit``; refuses an unknown unit."""
    spec = AXIS_KINDS[kind]
    u = unit.strip().lower().replace("µ", "u")
    if u in spec["factors"]:
        return spec["factors"][u], spec["units"]
    raise MeasurementError(path or "<memory>", f"{what} unit {unit!r}: expected one of "
                           f"{', '.join(k for k in spec['factors'] if k)} for a {kind} axis")


_UNIT_IN_NAME = (re.compile(r"^(.*?)\s*[\(\[]\s*([^\)\]]*)\s*[\)\]]\s*$"), re.compile(r"^(.*?)\s*/\s*([A-Za-zÅµ]+)$"))


def _split_unit(name: str) -> tuple[str, str]:
    for rx in _UNIT_IN_NAME:
        m = rx.match(name.strip())
        if m and m.group(1):
            return m.group(1).strip(), m.group(2).strip()
    return name.strip(), ""


# ------------------------------------------------------------------------------------------------ table
@dataclass
class Table:
    """A column file: ``data`` (rows, columns), column ``names`` and ``units`` ('' when unknown), ``header``
    (``key: value`` / ``key = value`` pairs of the comment lines) and where the names came from."""

    path: Path
    data: np.ndarray
    names: list[str]
    units: list[str]
    header: dict = field(default_factory=dict)
    names_from: str = ""

    @property
    def ncol(self) -> int:
        return self.data.shape[1]


def _header_pairs(lines: list[str], stop: int) -> dict:
    out: dict = {}
    for ln in lines[:stop]:
        body = ln.strip().lstrip("#%!;").strip()
        m = re.match(r"^([A-Za-z_][\w.\- ]*?)\s*[:=]\s*(.+)$", body)
        if m:
            out.setdefault(m.group(1).strip(), m.group(2).strip())
    return out


def _tokens(s: str, ncol: int) -> list[str] | None:
    """Column names of a header row: comma/tab/semicolon separated when that gives ``ncol`` fields, else
    whitespace separated."""
    for sep in (",", "\t", ";"):
        if sep in s:
            parts = [p.strip().strip('"').strip("'") for p in s.split(sep)]
            parts = [p for p in parts if p != ""] if len(parts) > ncol else parts
            if len(parts) == ncol and all(parts):
                return parts
    parts = s.split()
    return parts if len(parts) == ncol else None


def read_table(path, lines: list[str] | None = None, start: int | None = None, keep: int | None = None) -> Table:
    """The numeric block of a column file with its column names and units (see the module docstring);
    ``keep`` as in :func:`numeric_block`."""
    path = Path(path)
    lines = _lines(path) if lines is None else lines
    data, first = numeric_block(path, lines, start=start, keep=keep)
    ncol = data.shape[1]
    names: list[str] | None = None
    units = [""] * ncol
    src = ""
    xdi: dict[int, tuple[str, str]] = {}
    spec_l = None
    fio: dict[int, str] = {}
    for ln in lines[:first]:
        s = ln.strip()
        m = re.match(r"^#\s*Column\.(\d+)\s*:\s*(\S+)\s*(\S*)", s, re.I)
        if m:
            xdi[int(m.group(1)) - 1] = (m.group(2), m.group(3))
            continue
        if s.startswith("#L "):
            spec_l = s[3:].strip()
            continue
        m = re.match(r"^Col\s+(\d+)\s+(\S+)\s+\S+\s*$", s)
        if m:
            fio[int(m.group(1)) - 1] = m.group(2)
    if xdi and max(xdi) < ncol:
        names = [xdi.get(i, ("col%d" % (i + 1), ""))[0] for i in range(ncol)]
        units = [xdi.get(i, ("", ""))[1] for i in range(ncol)]
        src = "XDI Column.N lines"
    elif spec_l is not None and _tokens(spec_l, ncol):
        names, src = _tokens(spec_l, ncol), "#L line"
    elif fio and len(fio) == ncol:
        names, src = [fio[i] for i in range(ncol)], ".fio Col lines"
    else:
        # the last non-empty line before the data (comment or not), else the last comment line that fits
        for ln in reversed(lines[:first]):
            s = ln.strip()
            if not s:
                continue
            body = s.lstrip("#%!;").strip()
            if body and _floats(body) is None:
                t = _tokens(body, ncol)
                if t:
                    names, src = t, "header row"
            break
        if names is None:
            for ln in reversed(lines[:first]):
                body = ln.strip().lstrip("#%!;").strip()
                if body and _floats(body) is None and not set(body) <= set("-=*/ "):
                    t = _tokens(body, ncol)
                    if t and not any("=" in x or ":" in x for x in t):
                        names, src = t, "comment line"
                    break
    if names is None:
        names = [f"col{i + 1}" for i in range(ncol)]
    else:
        split = [_split_unit(n) for n in names]
        names = [a for a, _ in split]
        units = [u or b for u, (_, b) in zip(units, split)]
    return Table(path, data, names, units, _header_pairs(lines, first), src)


def describe_columns(t: Table) -> str:
    """'columns named a, b, c' or 'N unnamed columns' for messages."""
    if t.names_from:
        return "columns named " + ", ".join(n + (f" ({u})" if u else "") for n, u in zip(t.names, t.units))
    return f"{t.ncol} unnamed columns"


def is_point_index(col: np.ndarray) -> bool:
    """True when ``col`` counts 0, 1, 2, ... or 1, 2, 3, ... (a point index, not a physical axis)."""
    c = np.asarray(col, float)
    return (len(c) >= 3 and c[0] in (0.0, 1.0) and np.all(c == np.round(c))
            and np.all(np.diff(c) == 1.0))


# ------------------------------------------------------------------------------------------------ selection
_FUNCS = {"ln": np.log, "log": np.log, "log10": np.log10, "exp": np.exp, "abs": np.abs, "sqrt": np.sqrt}


def _index(t: Table, spec) -> int | None:
    if isinstance(spec, (int, np.integer)):
        k = int(spec)
        if not 1 <= k <= t.ncol:
            raise MeasurementError(t.path, f"column {k}: the file has columns 1..{t.ncol} ({describe_columns(t)})")
        return k - 1
    s = str(spec).strip()
    if re.fullmatch(r"\d+", s):
        return _index(t, int(s))
    m = re.fullmatch(r"(?:col|\$)(\d+)", s, re.I)
    if m:
        return _index(t, int(m.group(1)))
    low = [n.lower() for n in t.names]
    if s.lower() in low:
        return low.index(s.lower())
    return None


def column(t: Table, spec) -> tuple[np.ndarray, str, str]:
    """(values, name, unit) of one column selected by ``spec``: a 1-based number, ``colN``, a column name
    (case-insensitive) or an arithmetic expression of names/colN with + - * / ** and ln, log10, exp, abs, sqrt,
    e.g. ``ln(i0/itrans)``."""
    k = _index(t, spec)
    if k is not None:
        return t.data[:, k], t.names[k], t.units[k]
    expr = str(spec).strip()
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise MeasurementError(t.path, f"column {expr!r} not found; {describe_columns(t)}") from None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            j = _index(t, node.id)
            if j is None:
                raise MeasurementError(t.path, f"column {node.id!r} (in {expr!r}) not found; {describe_columns(t)}")
            return t.data[:, j]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            a, b = ev(node.left), ev(node.right)
            return {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
                    ast.Pow: np.power}[type(node.op)](a, b)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS \
                and len(node.args) == 1 and not node.keywords:
            return _FUNCS[node.func.id](ev(node.args[0]))
        raise MeasurementError(t.path, f"column expression {expr!r}: only column names, numbers, + - * / ** and "
                               f"{', '.join(_FUNCS)} are allowed; {describe_columns(t)}")

    with np.errstate(all="ignore"):
        out = np.broadcast_to(np.asarray(ev(tree), float), (len(t.data),)).copy()
    return out, expr, ""


def parse_columns(spec) -> tuple[str, str] | None:
    """``"energy,mu"`` or ``("energy", "mu")`` -> ``("energy", "mu")``; commas inside parentheses do not split."""
    if spec is None:
        return None
    if isinstance(spec, str):
        parts, depth, cur = [], 0, ""
        for ch in spec:
            if ch == "," and depth == 0:
                parts.append(cur.strip())
                cur = ""
                continue
            depth += (ch == "(") - (ch == ")")
            cur += ch
        parts.append(cur.strip())
    else:
        parts = [str(p).strip() if not isinstance(p, (int, np.integer)) else int(p) for p in spec]
    if len(parts) != 2 or any(p == "" for p in parts):
        raise ValueError(f"columns {spec!r}: expected two columns, axis and values, e.g. 'energy,mu' or (1, 3)")
    return parts[0], parts[1]


def _name_matches(name: str, kind: str) -> bool:
    n = name.lower().strip()
    words = AXIS_KINDS[kind]["names"]
    if n in words:
        return True
    if kind in ("energy", "energy_loss"):
        return "energy" in n or n.startswith("ener")
    if kind == "field":
        return "field" in n
    return False


def _monotonic(c: np.ndarray) -> bool:
    d = np.diff(c)
    return len(c) > 1 and (bool(np.all(d > 0)) or bool(np.all(d < 0)))


def axis_column(t: Table, kind: str) -> int | None:
    """Index of the column holding a ``kind`` axis, found by name (and unit when the name says nothing); the
    column must run monotonically (a scanned axis) and not be a point index."""
    for i, (n, u) in enumerate(zip(t.names, t.units)):
        if _name_matches(n, kind) and not is_point_index(t.data[:, i]) and _monotonic(t.data[:, i]):
            return i
    for i, u in enumerate(t.units):
        if u and u.lower().replace("µ", "u") in AXIS_KINDS[kind]["factors"] and kind != "x" \
                and not is_point_index(t.data[:, i]) and _monotonic(t.data[:, i]):
            return i
    return None


def _point_index_refusal(t: Table, k: int, hint: str) -> MeasurementError:
    c = t.data[:, k]
    return MeasurementError(t.path, f"column {k + 1} looks like a point index {c[0]:g}..{c[-1]:g}; "
                            f"{describe_columns(t)}; {hint}")


def select_xy(t: Table, kind: str | None, columns=None, units: str | None = None, value_names=()):
    """(x, y, axis name, canonical units, value name) of a column table.

    ``columns`` (axis, values) override everything; otherwise the axis is the column named like ``kind`` (or
    column 1 when none is named so and it is not a point index) and the values the first column named in
    ``value_names``, else the first other column that is not a point index.  ``units`` declares the axis unit
    when the file does not say it.
    """
    hint = "select them with columns=('AXIS', 'VALUES') in read() or --columns AXIS,VALUES"
    cols = parse_columns(columns)
    if cols is not None:
        x, xname, xunit = column(t, cols[0])
        y, yname, _ = column(t, cols[1])
    else:
        k = axis_column(t, kind) if kind not in (None, "x") else None
        if k is None and kind is None and is_point_index(t.data[:, 0]):
            for guess in ("energy", "field", "r", "k"):
                k = axis_column(t, guess)
                if k is not None:
                    break
        if k is None:
            if is_point_index(t.data[:, 0]) and t.ncol > 2:
                raise _point_index_refusal(t, 0, hint)
            k = 0
        x, xname, xunit = t.data[:, k], t.names[k], t.units[k]
        j = None
        low = [n.lower() for n in t.names]
        for v in value_names:
            if v in low and low.index(v) != k:
                j = low.index(v)
                break
        if j is None:
            rest = [i for i in range(t.ncol) if i != k and not is_point_index(t.data[:, i])]
            if not rest:
                raise MeasurementError(t.path, f"no value column besides the axis; {describe_columns(t)}; {hint}")
            j = rest[0]
        y, yname = t.data[:, j], t.names[j]
    unit = xunit or (units or "")
    if units and xunit and units.lower() != xunit.lower():
        raise MeasurementError(t.path, f"units={units!r} given but the header says the axis '{xname}' is in "
                               f"'{xunit}'")
    if kind not in (None, "x"):
        if not unit:
            spec = AXIS_KINDS[kind]
            raise MeasurementError(t.path, f"the file does not say the unit of its {kind} column '{xname}'; "
                                   f"declare it, e.g. units={spec['units']!r} in read() or --units {spec['units']}")
        f, canon = convert_units(kind, unit, t.path, f"{kind} axis '{xname}'")
        return x * f, y, kind, canon, yname
    guess = _guess_kind(xname, unit)
    if guess is not None:
        f, canon = convert_units(guess, unit, t.path, f"axis '{xname}'")
        return x * f, y, guess, canon, yname
    return x, y, (xname if t.names_from else "x"), unit, yname


def _guess_kind(name: str, unit: str) -> str | None:
    """The axis kind a column's name and unit make plain (a unit alone is not enough for eV: energy or loss)."""
    u = unit.strip().lower().replace("µ", "u")
    if not u:
        return None
    n = name.lower()
    if u in AXIS_KINDS["field"]["factors"] and u != "t" or (u == "t" and "field" in n):
        return "field"
    if u in AXIS_KINDS["energy"]["factors"]:
        return "energy_loss" if "loss" in n else ("energy" if _name_matches(n, "energy") else None)
    if u in AXIS_KINDS["k"]["factors"]:
        return "k"
    if u in AXIS_KINDS["r"]["factors"] and n in ("r", "r_a", "distance"):
        return "r"
    return None


def read_columns(path, columns=None, units: str | None = None, kind: str | None = None) -> Measurement:
    """Plain numeric columns (.txt, .csv, .dat of unknown kind).

    Parameters
    ----------
    path : str or Path
        Text file; '#', '%', '!' or ';' start comment lines; columns separated by blanks, commas or tabs.
    columns : (axis, values), optional
        Column names, 1-based numbers or expressions (see :func:`column`).  Default: column 1 and column 2,
        or, when the header names them, the columns named like the axis ``kind``; a first column that counts
        0, 1, 2, ... (a point index) is refused with the names found.
    units : str, optional
        The axis unit when the file does not say it (e.g. 'eV', 'G', 'mT', 'A').
    kind : str, optional
        Axis kind (``field``, ``energy``, ``energy_loss``, ``r``, ``k``); then a unit is required and the axis
        is converted to the kind's canonical unit (mT, eV, A, 1/A).

    Returns
    -------
    Measurement
        Modality None (the adapter that called this sets its own); ``meta['columns']`` names the columns used.
    """
    path = Path(path)
    t = read_table(path)
    if t.ncol < 2:
        raise MeasurementError(path, f"{t.ncol} column(s); expected at least 2 (axis, values)")
    if kind is None and columns is None:
        # a header that names a field (G/mT) or r (A) axis says which modality the file is
        k0 = 1 if is_point_index(t.data[:, 0]) and t.ncol > 2 else 0
        guess = _guess_kind(t.names[k0], t.units[k0])
        if guess in ("field", "r"):
            from .. import modalities
            owners = [a for _, a in modalities.importable() if getattr(a, "columns_kind", None) == guess]
            if len(owners) == 1:
                return owners[0].read_columns(path, None, units)
    x, y, name, unit, yname = select_xy(t, kind, columns, units)
    x, (y,) = _sorted_axis(path, x, [y], "first-column" if kind is None else name)
    meta = {"format": "columns", "columns": describe_columns(t), "axis_column": name, "value_column": yname,
            "extra_columns": t.ncol - 2}
    if units and not t.units[0]:
        meta["declared_units"] = units
    return Measurement(x, y, name if name else "x", unit, "", None, meta)


# public names for the format readers of the adapters
text_lines = _lines
sorted_axis = _sorted_axis
floats = _floats
COMMENT = _COMMENT
