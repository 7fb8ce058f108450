"""Solutions adapter: Raman and UV-vis spectra of aqueous solutions (the ``solutions`` simulator).

Measurement kinds and their axes (``Measurement.axis_name`` / ``units``, as the simulator's axis):

* Raman: ``raman_shift`` in ``cm-1`` (Stokes shift); values in counts or any normalised intensity;
* UV-vis: ``wavelength`` in ``nm``; values are absorbance (base 10; transmittance columns are converted).

``meta['measurement']`` holds ``'raman'``, ``'uvvis'`` or ``None`` (the file does not say), ``meta['laser_nm']``
the Raman excitation when the file gives it.

Formats
-------
``.txt`` / ``.csv`` (:func:`read_text`) -- comma, semicolon, tab or blank separated, ``#``/``%`` comment lines;
two layouts, told apart by the first non-comment line:

1. *one spectrum in columns*: column 1 the axis, column 2 the values (further columns are kept in
   ``meta['extra_columns']``), with an optional header line naming them, e.g. ``Raman shift (cm-1),intensity`` or
   ``wavelength_nm;absorbance`` (or ``transmittance``, ``%T``);
2. *a table of spectra*: a header row whose numeric cells are the axis values (at least 8) and whose leading
   non-numeric cells name per-spectrum columns: concentrations (``c_zn``, ``Zn2+``, ``NO3-``, ``SO4 2-``,
   ``c(NH4+) [mol/L]``... -> ``meta['labels']['c_zn']`` etc.) or sample names (``sample``, ``id``, ``name``:
   text kept in ``meta['sample_ids']``).  Every following row is one spectrum; ``values`` is ``(n, L)``
   (``(L,)`` for a single row).

The measurement kind comes from the header words (``raman``, ``shift``, ``cm-1``, ``wavenumber`` -> Raman;
``wavelength``, ``nm``, ``absorbance`` -> UV-vis) or from comment lines ``# measurement: raman``,
``# laser_nm: 785`` (also ``# laser: 785 nm``, ``# excitation: 532 nm``).

``.spc`` (:func:`read_spc`) -- Thermo/Galactic GRAMS SPC (old and new formats, single or multi-file) through the
``spectrochempy`` package (``pip install spectrochempy``); without it the file is refused with that advice.  The
axis type code gives the kind (Raman shift -> Raman; nm -> UV-vis).  ``.spc`` is also the data half of Bruker
ESP EPR files, which :func:`train.measurements.read` tries first: read Galactic files with
``read(path, modality="solutions")``.

``.mat`` (:func:`read_mat`) -- MATLAB v4-v7.2 files through :func:`scipy.io.loadmat`, named variables: the axis
(``raman_shift``, ``shift``, ``wavenumber`` -> Raman; ``wavelength``, ``lambda`` -> UV-vis; ``axis``/``x`` with a
``measurement`` string variable), the spectra (``spectra``, ``spectrum``, ``intensity``, ``absorbance``, ``data``
or ``y``: one row per spectrum, or one column when their length is the axis'), optional labels (``c_<ion>``
vectors, or ``concentrations`` with a cell array ``names``/``ions``/``targets``) and ``laser_nm``.  v7.3 (HDF5)
files are refused with a hint.

Preparation (:func:`prepare_solutions`) -- what the simulator does to its own spectra, in the same order: the
measured spectrum is windowed and rebinned onto the model's axis (bin averages where finer, interpolation where
coarser), then normalised as ``config.normalise`` says (max, mean, the internal-standard band area above its
chord, or none).  UV-vis values stay absorbances; no baseline is subtracted (the simulator models baselines as
nuisances).

Domain checks (:class:`~train.modalities.OutOfDomain`): a Raman file for a UV-vis model or the reverse, a measured
range that does not cover the model's axis, and a Raman excitation other than the model's ``laser_nm`` (the
frequency factor changes relative band intensities across the axis).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..measurements import Measurement, MeasurementError
from ..measurements.columns import COMMENT, text_lines
from ..prepare import Prepared, TargetSpec, rebin, refuse, span
from . import Adapter, OutOfDomain

__all__ = ["read_text", "read_spc", "read_mat", "prepare_solutions", "spectra_of", "label_name",
           "SolutionsAdapter", "AXES"]

#: measurement kind -> (axis name, axis units) of the simulator's axis
AXES = {"raman": ("raman_shift", "cm-1"), "uvvis": ("wavelength", "nm")}
_UNITS_KIND = {"cm-1": "raman", "nm": "uvvis"}

_SPLIT = re.compile(r"\s*[,;\t]\s*|\s+")
_LASER_TOL_NM = 1.0


# ------------------------------------------------------------------------------------------------ helpers
def _num(tok: str):
    try:
        return float(tok.replace("D", "E").replace("d", "e"))
    except ValueError:
        return None


def _cells(line: str) -> list[str]:
    s = line.strip()
    if any(c in s for c in ",;\t"):
        return [t.strip() for t in re.split(r"[,;\t]", s)]
    return [t for t in s.split() if t]


def _kind_from_words(text: str) -> str | None:
    t = text.lower()
    if re.search(r"raman|shift|cm-1|cm\^-1|cm−1|1/cm|wavenumber", t):
        return "raman"
    if re.search(r"wavelength|\bnm\b|_nm\b|\(nm\)|\[nm\]|absorbance|uv-?vis|transmittance|%t\b", t):
        return "uvvis"
    return None


def _value_kind(text: str) -> str:
    t = text.lower()
    if re.search(r"%\s*t\b|transmittance\s*\(?%|percent", t):
        return "%T"
    if "transmittance" in t:
        return "T"
    if "absorbance" in t or re.search(r"\babs\b|\bod\b", t):
        return "absorbance"
    return ""


_ROMAN = {"iii": "3", "ii": "2", "iv": "4", "i": "1"}


def label_name(header: str) -> str | None:
    """The ``c_<ion>`` target name a table header cell names (``'Zn2+'``, ``'c(NO3-) [M]'``, ``'SO4 2-'``,
    ``'c_nh4'``...), or None when it names no ion of the species catalog."""
    from simgen.solutions.tables import species_table
    comps = set(species_table().components)
    t = header.strip().lower()
    t = re.sub(r"[\[(]\s*(mol\s*/\s*(l|kg)|m|mm|mol/dm3|g/l)\s*[\])]", "", t)  # units in brackets
    t = t.strip()
    t = re.sub(r"^c_", "", t)
    t = re.sub(r"^(c|conc)\s*\((.*)\)$", r"\2", t)
    t = re.sub(r"\((i{1,3}|iv)\)", "", t).strip()  # Fe(III)
    for pat in (r"\^?[+-]+$", r"\^?\s*\d*\s*[+-]+$"):  # charge: '-' of NO3-, then '2+' of Zn2+ or ' 2-'
        c = re.sub(r"[\s_^]", "", re.sub(pat, "", t))
        if c in comps:
            return f"c_{c}"
    return None


def _label_units(header: str) -> str | None:
    m = re.search(r"[\[(]\s*(mol\s*/\s*(?:l|kg)|m|mm)\s*[\])]", header.lower())
    if not m:
        return None
    u = m.group(1).replace(" ", "")
    return {"m": "mol/L", "mol/l": "mol/L", "mol/kg": "mol/kg", "mm": "mmol/L"}[u]


def _meta_from_comments(lines: list[str], meta: dict) -> str:
    """Read ``key: value`` / ``key = value`` comment lines into meta; returns all comment text."""
    text = []
    for ln in lines:
        s = ln.strip()
        if not s.startswith(COMMENT):
            continue
        body = s.lstrip("".join(COMMENT)).strip()
        text.append(body)
        m = re.match(r"([A-Za-z_ ]+?)\s*[:=]\s*(.+)$", body)
        if not m:
            continue
        key, val = m.group(1).strip().lower().replace(" ", "_"), m.group(2).strip()
        if key in ("laser_nm", "laser", "laser_wavelength", "excitation", "excitation_wavelength"):
            v = _num(re.sub(r"\s*nm\s*$", "", val, flags=re.I))
            if v is not None:
                meta["laser_nm"] = v
        elif key in ("measurement", "technique", "kind"):
            k = _kind_from_words(val) or val.lower().replace("-", "").replace(" ", "")
            if k in ("raman", "uvvis"):
                meta["measurement"] = k
        elif key in ("units", "axis_units", "x_units"):
            k = _kind_from_words(val)
            if k:
                meta.setdefault("measurement", k)
    return "\n".join(text)


def _measurement(path, x, y, kind, meta) -> Measurement:
    order = np.argsort(x, kind="stable")
    x = np.asarray(x, float)[order]
    y = np.asarray(y, float)
    y = y[..., order]
    if len(x) >= 2 and np.any(np.diff(x) == 0):
        raise MeasurementError(path, f"axis repeats a value ({x[np.flatnonzero(np.diff(x) == 0)[0]]:g})")
    vk = meta.pop("_value_kind", "")
    if vk in ("%T", "T"):
        t = y / 100.0 if vk == "%T" else y
        if np.any(t <= 0):
            raise MeasurementError(path, f"transmittance column holds {int(np.sum(t <= 0))} values <= 0: "
                                   "absorbance undefined")
        y = -np.log10(t)
        meta["converted"] = f"absorbance = -log10(transmittance{' / 100' if vk == '%T' else ''})"
        kind = kind or "uvvis"
    meta["measurement"] = kind
    if kind is None:
        name, units = "x", ""
    else:
        name, units = AXES[kind]
    vunits = {"raman": "intensity", "uvvis": "absorbance"}.get(kind, "")
    if y.ndim == 2 and y.shape[0] == 1:
        y = y[0]
    return Measurement(x, y, name, units, vunits, "solutions", meta)


# ------------------------------------------------------------------------------------------------ text
def read_text(path) -> Measurement:
    """A Raman or UV-vis ``.txt``/``.csv`` file: one spectrum in columns, or a table of spectra with a header row
    of axis values (layouts in the module docstring)."""
    path = Path(path)
    lines = text_lines(path)
    meta: dict = {"format": "solutions text"}
    comments = _meta_from_comments(lines, meta)
    body = [(i, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.strip().startswith(COMMENT)]
    if not body:
        raise MeasurementError(path, "no data lines")
    first = _cells(body[0][1])
    nums = [_num(c) for c in first]
    n_numeric = sum(v is not None for v in nums)
    if n_numeric >= 8 and n_numeric > 2 * (len(first) - n_numeric) and len(first) > 3:
        return _read_table(path, body, first, nums, meta, comments)
    header = None
    if n_numeric < len(first):
        header = first
        body = body[1:]
    rows = []
    for i, ln in body:
        vals = [_num(c) for c in _cells(ln)]
        if any(v is None for v in vals):
            raise MeasurementError(path, f"line {i + 1}: {ln.strip()[:40]!r} is not numeric (only the first line may "
                                   "be a header)")
        if rows and len(vals) != len(rows[0]):
            raise MeasurementError(path, f"line {i + 1}: {len(vals)} values, expected {len(rows[0])} like the lines "
                                   "before (ragged or truncated row)")
        rows.append(vals)
    data = np.asarray(rows, float)
    if data.ndim != 2 or data.shape[1] < 2:
        raise MeasurementError(path, f"{data.shape[1] if data.ndim == 2 else 0} column(s); expected the axis and "
                               "the values (or a header row of axis values over a table of spectra)")
    kind = meta.get("measurement")
    if header is not None:
        meta["columns"] = header
        kind = kind or _kind_from_words(header[0]) or _kind_from_words(" ".join(header))
        meta["_value_kind"] = _value_kind(header[1] if len(header) > 1 else "")
    kind = kind or _kind_from_words(comments)
    if data.shape[1] > 2:
        meta["extra_columns"] = data[:, 2:].T.copy()
    return _measurement(path, data[:, 0], data[:, 1], kind, meta)


def _read_table(path, body, first, nums, meta, comments) -> Measurement:
    lead = 0
    while lead < len(first) and nums[lead] is None:
        lead += 1
    if any(v is None for v in nums[lead:]):
        bad = next(c for c, v in zip(first[lead:], nums[lead:]) if v is None)
        raise MeasurementError(path, f"header cell {bad!r} among the axis values: name columns must come first")
    x = np.asarray(nums[lead:], float)
    names = first[:lead]
    kind = meta.get("measurement") or _kind_from_words(" ".join(names)) or _kind_from_words(comments)
    label_cols, id_cols = {}, []
    for j, h in enumerate(names):
        ln = label_name(h)
        if ln is not None:
            if ln in label_cols.values():
                raise MeasurementError(path, f"header names {ln} twice")
            label_cols[j] = ln
        else:
            id_cols.append(j)
    spectra, labels, ids = [], {v: [] for v in label_cols.values()}, []
    for i, ln in body[1:]:
        cells = _cells(ln)
        if len(cells) != len(first):
            raise MeasurementError(path, f"line {i + 1}: {len(cells)} cells, expected {len(first)} like the header "
                                   "(ragged or truncated row)")
        vals = [_num(c) for c in cells]
        if any(v is None for v in vals[lead:]):
            raise MeasurementError(path, f"line {i + 1}: a spectrum value is not numeric")
        for j, name in label_cols.items():
            if vals[j] is None and cells[j].strip().lower() not in ("", "nan", "na"):
                raise MeasurementError(path, f"line {i + 1}: {first[j]!r} value {cells[j]!r} is not a number")
            labels[name].append(np.nan if vals[j] is None else vals[j])
        ids.append(" ".join(cells[j] for j in id_cols))
        spectra.append(vals[lead:])
    if not spectra:
        raise MeasurementError(path, "a header row of axis values but no spectrum rows")
    meta["layout"] = "table"
    meta["n_spectra"] = len(spectra)
    if labels:
        meta["labels"] = {k: np.asarray(v, float) for k, v in labels.items()}
        units = {_label_units(first[j]) for j in label_cols} - {None}
        if len(units) == 1:
            meta["label_units"] = units.pop()
    if id_cols:
        meta["sample_ids"] = ids
    return _measurement(path, x, np.asarray(spectra, float), kind, meta)


# ------------------------------------------------------------------------------------------------ SPC
def read_spc(path) -> Measurement:
    """Thermo/Galactic SPC through ``spectrochempy.read_spc``; refused with an install hint when the package is
    missing.  Multi-file SPC with one shared axis gives ``values`` of shape ``(n, L)``."""
    path = Path(path)
    try:
        import spectrochempy as scp
    except ImportError:
        raise MeasurementError(path, "Thermo/Galactic SPC files are read through the 'spectrochempy' package, which "
                               "is not installed (pip install spectrochempy); or export the spectrum as CSV "
                               "(axis, values)") from None
    head = path.read_bytes()[:2]
    if len(head) < 2 or head[1:2] not in (b"\x4b", b"\x4c", b"\x4d"):
        raise MeasurementError(path, f"not an SPC file (version byte {head[1:2]!r}; expected 0x4B, 0x4C or 0x4D)")
    try:
        ds = scp.read_spc(str(path))
    except Exception as exc:  # noqa: BLE001 - the library's own errors, reported with the file
        raise MeasurementError(path, f"SPC reader failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(ds, list):
        if len(ds) != 1:
            raise MeasurementError(path, f"{len(ds)} subfiles on different axes; expected one axis for all spectra")
        ds = ds[0]
    x = np.asarray(ds.x.data, float)
    y = np.asarray(ds.data, float)
    title = str(getattr(ds.x, "title", "") or "")
    units = str(getattr(ds.x, "units", "") or "")
    meta: dict = {"format": "SPC", "x_title": title, "x_units": units}
    kind = None
    if "raman" in title.lower():
        kind = "raman"
    elif re.fullmatch(r"\s*(nm|nanometer)\s*", units.lower()):
        kind = "uvvis"
    ytitle = str(getattr(ds, "title", "") or "").lower()
    if "transmittance" in ytitle:
        meta["_value_kind"] = "T"
    return _measurement(path, x, y, kind, meta)


# ------------------------------------------------------------------------------------------------ MAT
_MAT_AXES = {"raman_shift": "raman", "ramanshift": "raman", "shift": "raman", "wavenumber": "raman",
             "wavenumbers": "raman", "wavelength": "uvvis", "wavelengths": "uvvis", "lambda": "uvvis",
             "axis": None, "x": None}
_MAT_VALUES = ("spectra", "spectrum", "intensity", "absorbance", "transmittance", "data", "y")


def read_mat(path) -> Measurement:
    """MATLAB ``.mat`` (v4 - v7.2) through :func:`scipy.io.loadmat`, variables named as in the module docstring."""
    import scipy.io
    path = Path(path)
    try:
        raw = scipy.io.loadmat(str(path), squeeze_me=True, chars_as_strings=True)
    except NotImplementedError:
        raise MeasurementError(path, "MATLAB v7.3 (HDF5) file: save it with save(..., '-v7') or read it with h5py "
                               "and build a Measurement") from None
    except ValueError as exc:
        raise MeasurementError(path, f"not a MATLAB file scipy can read: {exc}") from None
    vars_ = {k: v for k, v in raw.items() if not k.startswith("__")}
    low = {k.lower(): k for k in vars_}
    meta: dict = {"format": "MAT", "variables": sorted(vars_)}
    ax_key = next((low[k] for k in _MAT_AXES if k in low), None)
    if ax_key is None:
        raise MeasurementError(path, f"no axis variable; expected one of {', '.join(_MAT_AXES)} "
                               f"(variables: {', '.join(sorted(vars_)) or 'none'})")
    val_key = next((low[k] for k in _MAT_VALUES if k in low), None)
    if val_key is None:
        raise MeasurementError(path, f"no spectra variable; expected one of {', '.join(_MAT_VALUES)} "
                               f"(variables: {', '.join(sorted(vars_))})")
    kind = _MAT_AXES[ax_key.lower()]
    if "measurement" in low:
        k = _kind_from_words(str(vars_[low["measurement"]])) or str(vars_[low["measurement"]]).lower()
        kind = k if k in ("raman", "uvvis") else kind
    x = np.atleast_1d(np.asarray(vars_[ax_key], float)).ravel()
    y = np.asarray(vars_[val_key], float)
    if y.ndim == 1:
        if len(y) != len(x):
            raise MeasurementError(path, f"'{val_key}' has {len(y)} values but '{ax_key}' has {len(x)} points")
    elif y.ndim == 2:
        if y.shape[1] != len(x):
            if y.shape[0] == len(x):
                y = y.T  # one spectrum per column
            else:
                raise MeasurementError(path, f"'{val_key}' is {y.shape[0]} x {y.shape[1]}; expected spectra of "
                                       f"{len(x)} points (the length of '{ax_key}') along one dimension")
    else:
        raise MeasurementError(path, f"'{val_key}' has {y.ndim} dimensions; expected a spectrum or a matrix")
    if val_key.lower() == "transmittance":
        meta["_value_kind"] = "%T" if np.nanmax(y) > 1.5 else "T"
    if "laser_nm" in low:
        meta["laser_nm"] = float(np.asarray(vars_[low["laser_nm"]], float).ravel()[0])
    n = 1 if y.ndim == 1 else y.shape[0]
    labels = {}
    for k, v in vars_.items():
        ln = label_name(k) if k.lower().startswith("c_") else None
        if ln is not None:
            labels[ln] = np.atleast_1d(np.asarray(v, float)).ravel()
    conc_key = next((low[k] for k in ("concentrations", "conc", "labels") if k in low), None)
    names_key = next((low[k] for k in ("names", "ions", "targets") if k in low), None)
    if conc_key is not None:
        c = np.atleast_2d(np.asarray(vars_[conc_key], float))
        if names_key is None:
            raise MeasurementError(path, f"'{conc_key}' without the names of its columns ('names', 'ions' or "
                                   "'targets', a cell array of strings)")
        nm = [str(s) for s in np.atleast_1d(vars_[names_key])]
        if c.shape[0] != n and c.shape[1] == n:
            c = c.T
        if c.shape != (n, len(nm)):
            raise MeasurementError(path, f"'{conc_key}' is {c.shape[0]} x {c.shape[1]}; expected {n} spectra x "
                                   f"{len(nm)} names")
        for j, s in enumerate(nm):
            ln = label_name(s)
            if ln is None:
                raise MeasurementError(path, f"'{names_key}' entry {s!r} names no ion of the species catalog")
            labels[ln] = c[:, j]
    for k, v in labels.items():
        if len(v) != n:
            raise MeasurementError(path, f"label {k} has {len(v)} values for {n} spectra")
    if labels:
        meta["labels"] = labels
    meta["n_spectra"] = n
    return _measurement(path, x, y, kind, meta)


# ------------------------------------------------------------------------------------------------ preparation
def _model_kind(spec: TargetSpec) -> str:
    k = (spec.config or {}).get("measurement")
    if k in AXES:
        return k
    return "uvvis" if spec.axis.dims[0] == "wavelength" else "raman"


def _measured_kind(m: Measurement) -> str | None:
    k = m.meta.get("measurement")
    if k in AXES:
        return k
    return _UNITS_KIND.get(m.units)


def spectra_of(m: Measurement) -> list[Measurement]:
    """One :class:`Measurement` per spectrum of a table/multi-spectrum measurement (labels split per row)."""
    if m.values.ndim == 1:
        return [m]
    out = []
    for i in range(m.values.shape[0]):
        meta = {k: v for k, v in m.meta.items() if k not in ("labels", "sample_ids")}
        meta["row"] = i
        if "labels" in m.meta:
            meta["labels"] = {k: float(v[i]) for k, v in m.meta["labels"].items()}
        if "sample_ids" in m.meta:
            meta["sample_id"] = m.meta["sample_ids"][i]
        out.append(Measurement(m.axis, m.values[i], m.axis_name, m.units, m.value_units, m.modality, meta))
    return out


def _normalise(y: np.ndarray, x: np.ndarray, config: dict) -> tuple[np.ndarray, str]:
    how = config.get("normalise", "none")
    if how == "none":
        return y, "not normalised (the model's spectra are counts)"
    if how == "max":
        d, what = y.max(axis=1), "divided by its maximum"
    elif how == "area":
        d, what = y.mean(axis=1), "divided by its mean"
    else:
        from simgen.solutions.simulator import standard_area
        w = config.get("standard_window") or [1550.0, 1750.0]
        i0, i1 = int(np.searchsorted(x, w[0])), int(np.searchsorted(x, w[1], side="right"))
        d, what = standard_area(x, y, i0, i1), f"divided by the internal-standard band area {w[0]:g}-{w[1]:g} cm-1"
    if np.any(~np.isfinite(d)) or np.any(np.abs(d) <= 0):
        raise ValueError(what.replace("divided by", "normalisation:") + " is zero or not finite")
    return y / d[:, None], what


def prepare_solutions(m: Measurement, spec: TargetSpec) -> Prepared:
    """Raman or UV-vis spectra onto the model's axis with the simulator's normalisation.

    Parameters
    ----------
    m : Measurement
        One spectrum (``values`` ``(L0,)``) or several on one axis (``(n, L0)``), axis in cm-1 (Raman shift) or nm
        (wavelength); a plain-column measurement (``modality`` None) is accepted when its units match the model's
        axis, or when its units are unknown and the axis lies within the model's kind's physical range (recorded
        as a warning).
    spec : TargetSpec
        The model: its axis (``raman_shift`` cm-1 or ``wavelength`` nm, L points) and config
        (``measurement``, ``normalise``, ``standard_window``).

    Returns
    -------
    Prepared
        ``x`` float32 ``(n, L)``: one row per spectrum, rebinned onto the axis and normalised like the
        simulator's output.  ``info['steps']`` lists what was done.
    """
    axis = spec.axis
    kind = _model_kind(spec)
    xa = axis.coords[0]
    x, y = np.asarray(m.axis, float), np.asarray(m.values, float)
    y2 = y[None] if y.ndim == 1 else y
    if y2.ndim != 2 or y2.shape[1] != len(x):
        refuse(m, f"values of shape {y.shape} on an axis of {len(x)} points: expected one or more spectra")
    info: dict = {"steps": [], "measurement": kind, "n_spectra": y2.shape[0]}
    if not m.units:
        info["warning"] = (f"the file does not name its axis; taken as the model's {AXES[kind][0]} in "
                           f"{AXES[kind][1]}")
    out = np.stack([rebin(x, row, xa) for row in y2])
    info["steps"].append(f"{'rebinned' if np.median(np.diff(x)) < np.median(np.diff(xa)) / 1.5 else 'interpolated'}"
                         f" onto {AXES[kind][0]} {span(xa)} {AXES[kind][1]} ({len(xa)} points)")
    if kind == "raman":
        try:
            out, what = _normalise(out, xa, spec.config or {})
        except ValueError as exc:
            refuse(m, str(exc))
        info["steps"].append(what)
    else:
        a_max = (spec.config or {}).get("a_max")
        if a_max is not None and np.nanmax(out) > float(a_max) + 0.05:
            info["warning"] = (f"absorbance reaches {np.nanmax(out):.3g}, above the model's detector limit "
                               f"a_max = {a_max:g}")
    return Prepared(out.astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ adapter
class SolutionsAdapter(Adapter):
    """Raman and UV-vis spectra of aqueous solutions for the ``solutions`` simulator."""

    name = "solutions"
    axis_dims = ("raman_shift", "wavelength")
    formats = {".txt": read_text, ".csv": read_text, ".spc": read_spc, ".mat": read_mat}
    overlay_zero = ("fluor_amp", "offset", "cosmic_rate", "read_noise", "absorbance_offset", "scatter_amp",
                    "photometric_noise", "stray_light", "shift_offset", "shift_stretch", "wavelength_offset")

    def prepare(self, m, spec):
        return prepare_solutions(m, spec)

    def check_domain(self, m, spec) -> None:
        kind = _model_kind(spec)
        mk = _measured_kind(m)
        name, units = AXES[kind]
        if mk is not None and mk != kind:
            raise OutOfDomain(m.source, f"a {_KIND_WORD[mk]} spectrum ({m.axis_name} in {m.units or '?'}) cannot feed "
                              f"a {_KIND_WORD[kind]} model (axis {name} in {units})")
        if m.units and m.units != units:
            raise OutOfDomain(m.source, f"axis '{m.axis_name}' in '{m.units}' but the model's {name} is in '{units}'")
        x = np.asarray(m.axis, float)
        if not m.units:  # plain columns: only plausible for the model's kind
            lo, hi = (0.0, 5000.0) if kind == "raman" else (150.0, 3300.0)
            if x[0] < lo or x[-1] > hi:
                raise OutOfDomain(m.source, f"axis {span(x)} of unknown units is outside the {_KIND_WORD[kind]} range "
                                  f"{lo:g}-{hi:g} {units}")
        xa = spec.axis.coords[0]
        tol = 0.5 * abs(xa[1] - xa[0])
        if x[0] > xa[0] + tol or x[-1] < xa[-1] - tol:
            raise OutOfDomain(m.source, f"measured {name} {span(x)} {units} does not cover the model's axis "
                              f"{span(xa)} {units}")
        laser = m.meta.get("laser_nm")
        if kind == "raman" and laser is not None:
            model_laser = (spec.config or {}).get("laser_nm", 532.0)
            if abs(float(laser) - float(model_laser)) > _LASER_TOL_NM:
                raise OutOfDomain(m.source, f"excited at {float(laser):g} nm but the model was trained on "
                                  f"{float(model_laser):g} nm spectra (the frequency factor changes relative band "
                                  f"intensities); simulate a corpus with config.laser_nm: {float(laser):g}")


_KIND_WORD = {"raman": "Raman", "uvvis": "UV-vis"}
