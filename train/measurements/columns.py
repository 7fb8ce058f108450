"""Text column files: plain columns, XAFS (XDI 1.0, .xmu/.dat/.chi) and PDF G(r) (.gr/.fgr with headers).

The numeric block is parsed strictly: once data start, every non-comment line must hold the same number of
numbers, so a truncated last row or a corrupted line is reported with its line number instead of being skipped.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import Measurement, MeasurementError

__all__ = ["read_columns", "read_xdi", "read_xafs_columns", "read_dat", "read_pdf", "numeric_block"]

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
    return Measurement(x, y, "x", "", "", "columns", meta)


# ------------------------------------------------------------------------------------------------ XAFS
_EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")


def _temperature(text: str | None):
    if not text:
        return None
    t = text.strip().lower()
    if "room" in t or t in ("rt", "ambient"):
        return 295.0
    m = re.match(r"^([-+]?\d+(?:\.\d*)?)\s*(k|c)?\b", t)
    if not m:
        return None
    v = float(m.group(1))
    return v + 273.15 if m.group(2) == "c" else v


def _xafs_meta(path: Path, header: dict) -> dict:
    low = {k.lower(): v for k, v in header.items()}
    meta: dict = {}
    el = low.get("element.symbol") or low.get("atom") or low.get("element")
    if el:
        meta["element"] = el.split()[0].capitalize()
    edge = low.get("element.edge") or low.get("edge")
    if edge:
        edge = edge.split()[0].upper()
        if edge in _EDGES:
            meta["edge"] = edge
    e0 = low.get("scan.edge_energy")
    if e0:
        try:
            meta["edge_energy_eV"] = float(e0.split()[0])
        except ValueError:
            pass
    if "edge_energy_eV" not in meta and "element" in meta and "edge" in meta:
        try:
            from simgen.exafs.edges import edge_energy
            meta["edge_energy_eV"] = edge_energy(meta["element"], meta["edge"])
            meta["edge_energy_source"] = "xraydb"
        except Exception:  # unknown element: leave it to the preparation to find E0
            pass
    t = _temperature(low.get("sample.temperature") or low.get("temp") or low.get("temperature"))
    if t is None:
        name = (low.get("sample.name", "") + " " + path.stem).lower()
        m = re.search(r"(\d+(?:\.\d+)?)\s*k\b", name.replace("_", " "))
        t = float(m.group(1)) if m else (295.0 if re.search(r"\brt\b|room", name.replace("_", " ")) else None)
    if t is not None:
        meta["temperature_K"] = t
    return meta


def _mu_from_columns(path, labels: dict, data: np.ndarray):
    """mu(E) from named columns: a mu column, else ln(i0/itrans), else ifluor/i0."""
    for name in ("mutrans", "mu", "xmu", "mufluor", "mutrans_norm", "normtrans", "norm"):
        if name in labels:
            return data[:, labels[name]], name
    if "i0" in labels and ("itrans" in labels or "i1" in labels or "it" in labels):
        it = data[:, labels.get("itrans", labels.get("i1", labels.get("it")))]
        i0 = data[:, labels["i0"]]
        if np.any(i0 <= 0) or np.any(it <= 0):
            raise MeasurementError(path, "i0/itrans hold non-positive values; cannot form ln(i0/itrans)")
        return np.log(i0 / it), "ln(i0/itrans)"
    if "i0" in labels and "ifluor" in labels:
        return data[:, labels["ifluor"]] / data[:, labels["i0"]], "ifluor/i0"
    return None, None


def read_xdi(path) -> Measurement:
    """XDI 1.0: '# XDI/1.0' first line, '# Key.sub: value' header, '# ///' then free comments, then columns."""
    path = Path(path)
    lines = _lines(path)
    if not lines or not lines[0].lstrip("#% ").upper().startswith("XDI/"):
        raise MeasurementError(path, f"first line {lines[0][:30]!r} is not an XDI version line ('# XDI/1.0 ...')")
    header, labels = {}, {}
    units = {}
    for ln in lines:
        if not ln.startswith("#"):
            break
        body = ln.lstrip("#").strip()
        m = re.match(r"^([A-Za-z_][\w.]*)\s*:\s*(.*)$", body)
        if m:
            header.setdefault(m.group(1), m.group(2).strip())
            if m.group(1).lower().startswith("column."):
                try:
                    k = int(m.group(1).split(".")[1]) - 1
                except ValueError:
                    raise MeasurementError(path, f"header {m.group(1)!r}: expected Column.<number>") from None
                parts = m.group(2).split()
                if parts:
                    labels[parts[0].lower()] = k
                    if len(parts) > 1:
                        units[parts[0].lower()] = parts[1]
    data, _ = numeric_block(path, lines)
    if "energy" not in labels:
        raise MeasurementError(path, "no 'Column.N: energy' header line")
    for lab, k in labels.items():
        if k >= data.shape[1]:
            raise MeasurementError(path, f"header Column.{k + 1} ({lab}) but the data have {data.shape[1]} columns")
    mu, how = _mu_from_columns(path, labels, data)
    if mu is None:
        raise MeasurementError(path, f"no absorption column: expected mutrans/mu/mufluor or i0 with itrans/ifluor "
                               f"(columns: {', '.join(labels)})")
    e = data[:, labels["energy"]]
    if units.get("energy", "eV").lower() == "kev":
        e = e * 1000.0
    e, (mu,) = _sorted_axis(path, e, [mu], "energy")
    meta = {"format": "XDI", "mu_from": how, **_xafs_meta(path, header)}
    return Measurement(e, mu, "energy", "eV", "mu(E)", "xafs", meta)


def read_xafs_columns(path) -> Measurement:
    """'#'-commented columns (uwxafs/Athena/larch .xmu): energy (eV) then mu; '#%key: value' metadata lines."""
    path = Path(path)
    lines = _lines(path)
    if lines and lines[0].lstrip("#% ").upper().startswith("XDI/"):
        return read_xdi(path)
    header = {}
    last_comment = ""
    for ln in lines:
        s = ln.strip()
        if not s.startswith(_COMMENT):
            if s and _floats(s) is not None:
                break
            continue
        body = s.lstrip("#%!; ").strip()
        m = re.match(r"^([A-Za-z_][\w.]*)\s*:\s*(.*)$", body)
        if m:
            header.setdefault(m.group(1), m.group(2).strip())
        if body and not set(body) <= set("-=*"):
            last_comment = body
    data, _ = numeric_block(path, lines)
    if data.shape[1] < 2:
        raise MeasurementError(path, f"{data.shape[1]} column(s); expected energy and mu")
    labels = {t.lower(): i for i, t in enumerate(last_comment.split())} if last_comment else {}
    mu, how = (None, None)
    if labels and len(labels) == data.shape[1]:
        mu, how = _mu_from_columns(path, labels, data)
    if mu is None:
        mu, how = data[:, 1], "column 2"
    e, (mu,) = _sorted_axis(path, data[:, 0], [mu], "energy")
    if e[-1] < 100.0:
        raise MeasurementError(path, f"first column runs {e[0]:g}..{e[-1]:g}: expected X-ray energies in eV")
    meta = {"format": "xafs columns", "mu_from": how, **_xafs_meta(path, header)}
    return Measurement(e, mu, "energy", "eV", "mu(E)", "xafs", meta)


def read_dat(path) -> Measurement:
    """.dat: XDI when it says so, XAFS columns when column 1 looks like X-ray energies (eV), else plain columns."""
    path = Path(path)
    lines = _lines(path)
    if lines and lines[0].lstrip("#% ").upper().startswith("XDI/"):
        return read_xdi(path)
    data, _ = numeric_block(path, lines)
    x = data[:, 0]
    if data.shape[1] >= 2 and x.min() > 1000.0 and x.max() < 200000.0 and np.all(np.diff(x) > 0):
        return read_xafs_columns(path)
    return read_columns(path)


# ------------------------------------------------------------------------------------------------ PDF
_PDF_KEYS = {"qmax": "qmax", "qmin": "qmin", "qmaxinst": "qmax_instrument", "wavelength": "wavelength_A",
             "lambda": "wavelength_A", "temperature": "temperature_K", "qdamp": "qdamp", "qbroad": "qbroad",
             "rstep": "rstep", "composition": "composition", "mode": "radiation"}


def read_pdf(path) -> Measurement:
    """G(r) (.gr) or F(r)-like (.fgr) after a PDFgetX2/PDFgetX3/xPDFsuite header.

    Data start after '#### start data' when present, else at the first run of numeric lines.  Header
    ``key = value`` pairs give Qmax, Qmin, wavelength, radiation, temperature (into meta).  A third and fourth
    column (dr, dG) are kept as ``meta['dG']``.
    """
    path = Path(path)
    lines = _lines(path)
    start = None
    for i, ln in enumerate(lines):
        if "start data" in ln.lower():
            start = i + 1
            break
    header_lines = lines[:start] if start is not None else lines[:400]
    meta: dict = {"format": "PDF " + path.suffix.lower().lstrip(".")}
    for ln in header_lines:
        for m in re.finditer(r"(?<![A-Za-z])([A-Za-z]+)\s*=\s*([^\s]+)", ln):
            key = m.group(1).lower()
            if key in _PDF_KEYS and _PDF_KEYS[key] not in meta:
                val = m.group(2)
                try:
                    meta[_PDF_KEYS[key]] = float(val)
                except ValueError:
                    if key in ("composition", "mode"):
                        meta[_PDF_KEYS[key]] = val
        if re.search(r"neutron", ln, re.I) and "radiation" not in meta and re.search(r"radiation|mode|source", ln, re.I):
            meta["radiation"] = "neutron"
    if "radiation" in meta and meta["radiation"] not in ("xray", "neutron"):
        meta["radiation"] = "xray" if "x" in str(meta["radiation"]).lower() else str(meta["radiation"])
    if start is not None:
        # skip '#'-comment lines right after the marker (#S 1, #L r G)
        data, _ = numeric_block(path, lines, start=start)
    else:
        data, _ = numeric_block(path, lines)
    if data.shape[1] < 2:
        raise MeasurementError(path, f"{data.shape[1]} column(s); expected r and G(r)")
    r, cols = _sorted_axis(path, data[:, 0], [data[:, k] for k in range(1, data.shape[1])], "r")
    if r[0] < 0:
        raise MeasurementError(path, f"r starts at {r[0]:g} A; expected r >= 0")
    if len(cols) >= 3:
        meta["dG"] = cols[2]
    return Measurement(r, cols[0], "r", "A", "1/A^2", "pdf", meta)
