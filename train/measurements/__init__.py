"""Measured files -> :class:`Measurement` (axis, values, units, metadata).

``read(path)`` picks the reader from the file's extension among the formats the modality adapters declare
(:mod:`train.modalities`: one reader per format, in the adapter of its modality).  The built-in formats:

=========================  =========  ================================================================
extension                  modality   reader
=========================  =========  ================================================================
.DSC / .DTA (+ .YGF)       epr        Bruker BES3T (Xepr), 1-D or 2-D (a stack: field x angle, power...)
.par / .spc                epr        Bruker ESP / WinEPR, 1-D or 2-D (SSX x SSY)
.xml / .spe                epr        Magnettech MS5000 XML (base64 curves) / older MiniScope binary
.json                      epr        Adani benchtop JSON
.xdi                       exafs      XDI 1.0 (columns named in ``# Column.N:`` lines)
.xmu / .dat / .chi         exafs      '#'-commented columns found by name (#L / header row) or position
.fio                       exafs      beamline .fio (%c comments, %p parameters, %d 'Col N name TYPE')
.prj                       exafs      Athena project (gzipped Perl-dumper text), one group per slice
.msa / .ems                exelfs     EMSA/MAS through rosettasciio
.dm3 / .dm4                exelfs or  Gatan DigitalMicrograph through rosettasciio (1-D -> exelfs, 2-D ->
                           swelling   swelling)
.hspy / .hdf5              swelling   HyperSpy HDF5 through rosettasciio (needs h5py)
.gr / .fgr                 pdf        G(r) after a PDFgetX2/X3/N, xPDFsuite or PDFgui header
.tif .tiff .png .jpg       swelling   tifffile / pillow; pixel size from TIFF resolution tags
.txt / .csv                (none)     plain numeric columns (named by a header row when present); with
                                      ``modality=`` read as that modality's axis and values
=========================  =========  ================================================================

Options of :func:`read`: ``slice=k`` picks one spectrum of a multi-dimensional file (a stack has
``axis2``/``axis2_name``/``axis2_units`` and values of shape ``(n2, n)``); ``columns=("energy", "mu")`` names the
axis and value columns of a column file (names, 1-based numbers or expressions such as ``ln(i0/it)``);
``units="eV"`` declares the axis unit of a file that does not say it.

``Measurement.modality`` is the adapter's (= simulator's) name, or ``None`` for plain columns of unknown kind.
Every failure on purpose raises :class:`MeasurementError` whose message starts with the file's path and says what
is wrong (truncated binary, ragged or non-numeric row, missing header key, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simgen.errors import SimgenError

__all__ = ["Measurement", "MeasurementError", "read", "readable_extensions"]


class MeasurementError(SimgenError, ValueError):
    """A measured file cannot be read or used: the message names the file and what is wrong."""

    def __init__(self, path, what: str):
        self.path, self.what = str(path), what
        super().__init__(f"{path}: {what}")


@dataclass(eq=False)
class Measurement:
    """One measured signal.

    ``axis``: 1-D coordinates (field mT, energy eV, energy loss eV, r A, or for images the x pixel positions in
    nm); ``values``: same length (1-D) or, for images, 2-D ``(ny, nx)``.  A stack of spectra (2-D EPR: field x
    angle, power, time...) has a second axis ``axis2`` (``axis2_name``, ``axis2_units``) and values of shape
    ``(len(axis2), len(axis))``; :meth:`slice` (or ``read(path, slice=k)``) gives one spectrum.  ``meta`` keeps what the instrument
    recorded that the preparation needs: ``mw_frequency_GHz``, ``modulation_mT``, ``edge_energy_eV``,
    ``element``/``edge``, ``qmax``/``qmin``, ``pixel_size_nm``, ``temperature_K``, ``source`` (the path) ...
    """

    axis: np.ndarray
    values: np.ndarray
    axis_name: str
    units: str
    value_units: str = ""
    modality: str | None = None
    meta: dict = field(default_factory=dict)
    axis2: np.ndarray | None = None
    axis2_name: str = ""
    axis2_units: str = ""

    def __post_init__(self):
        self.axis = np.asarray(self.axis, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.axis2 is not None:
            self.axis2 = np.asarray(self.axis2, dtype=np.float64)
        if self.modality is not None and not isinstance(self.modality, str):
            raise TypeError(f"Measurement.modality {self.modality!r}: expected a modality name or None")

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "<memory>"))

    @property
    def name(self) -> str:
        return Path(self.source).name

    @property
    def is_stack(self) -> bool:
        """True for a stack of spectra along ``axis2``."""
        return self.axis2 is not None

    def slice(self, k: int) -> "Measurement":
        """Spectrum ``k`` (0-based; negative counts from the end) of a stack, as a 1-D Measurement whose meta
        records ``slice``, ``axis2_name`` and the ``axis2_value``."""
        if self.axis2 is None:
            raise MeasurementError(self.source, f"slice {k} asked but the file holds one spectrum, not a stack")
        n2 = len(self.axis2)
        if not isinstance(k, (int, np.integer)) or not -n2 <= k < n2:
            raise MeasurementError(self.source, f"slice {k!r}: expected an integer 0..{n2 - 1} (the file holds {n2} "
                                   f"spectra along {self.axis2_name} {self.axis2[0]:g}..{self.axis2[-1]:g} "
                                   f"{self.axis2_units})")
        k = int(k) % n2
        meta = dict(self.meta)
        meta.update(slice=k, n_slices=n2, axis2_name=self.axis2_name, axis2_units=self.axis2_units,
                    axis2_value=float(self.axis2[k]))
        for key, v in self.meta.items():  # per-slice arrays (e.g. quadrature of a stack)
            if isinstance(v, np.ndarray) and v.shape == self.values.shape:
                meta[key] = v[k]
        return Measurement(self.axis.copy(), self.values[k].copy(), self.axis_name, self.units, self.value_units,
                           self.modality, meta)

    def __repr__(self) -> str:
        rng = f"{self.axis[0]:g}..{self.axis[-1]:g} {self.units}" if self.axis.size else "empty"
        two = ""
        if self.axis2 is not None and self.axis2.size:
            two = f" x {self.axis2_name} {self.axis2[0]:g}..{self.axis2[-1]:g} {self.axis2_units}"
        return (f"Measurement({self.modality}, {self.name}, {self.axis_name} {rng}{two}, values {self.values.shape} "
                f"{self.value_units})")


def _ext(path: Path) -> str:
    return path.suffix.lower()


def readable_extensions() -> list[str]:
    """Every extension some registered adapter (or the plain-column reader) reads."""
    from .. import modalities
    exts = set(_PLAIN)
    for _, a in modalities.importable():
        exts.update(a.formats)
    return sorted(exts)


#: extensions read as plain numeric columns when no adapter claims them, or as a modality's columns with
#: ``read(path, modality=...)``
_PLAIN = (".txt", ".csv", ".tsv", ".dat", ".asc", ".xy")


def _reader_for(path: Path, modality: str | None) -> Callable[..., Measurement]:
    from .. import modalities
    from .columns import read_columns
    ext = _ext(path)
    if modality is not None:
        a = modalities.get(modality)
        if ext in a.formats:
            return a.formats[ext]
        if ext in _PLAIN or ext == "":
            return a.read_columns
        raise MeasurementError(path, f"extension '{path.suffix}' is not a {modality} format; {modality} reads "
                               f"{', '.join(sorted(a.formats)) or 'no files'} (and plain "
                               f"{', '.join(_PLAIN)} columns)")
    found = modalities.readers_for(ext)
    if found:
        return found[0][1]
    if ext in _PLAIN:
        return read_columns
    raise MeasurementError(path, f"unknown extension '{path.suffix}'; readable: {', '.join(readable_extensions())}"
                           "; a text file of columns can be read with read(path, modality=..., units=...)")


def read(path, modality: str | None = None, *, slice: int | None = None, columns=None,
         units: str | None = None) -> Measurement:
    """Read one measured file.

    Parameters
    ----------
    path : str or Path
        The file (for two-file formats such as BES3T .DSC/.DTA or ESP .par/.spc, either one).
    modality : str, optional
        A modality (simulator) name that overrides the guess from the extension, e.g. ``"exelfs"`` for a
        headerless two-column ``.txt`` of energy loss and counts; the file is then read by that modality's
        reader (its column reader for .txt/.csv/.dat).
    slice : int, optional
        For a multi-dimensional file (2-D EPR, an Athena project with several groups): the 0-based index of
        the spectrum to return.  Without it such a file is returned as a stack (``axis2`` set, values of shape
        ``(n2, n)``), or refused with the dimension named when its spectra do not share one axis.
    columns : (axis, values) or "axis,values", optional
        Column files: the axis and value columns by header name, 1-based number, ``colN`` or an expression of
        them (``ln(i0/itrans)``).  Default: found by header names (energy/field/r/k), else columns 1 and 2.
    units : str, optional
        Column files: the axis unit when the header does not give it ('eV', 'keV', 'G', 'mT', 'A' ...); the
        axis is converted to the modality's unit (eV, mT, A).

    Returns
    -------
    Measurement
        ``axis`` (1-D, float64, in ``units``), ``values`` (same length; ``(ny, nx)`` for images; ``(n2, n)``
        for a stack), ``modality`` and ``meta`` (instrument settings the preparation needs, ``source`` = path).

    Raises
    ------
    MeasurementError
        Naming the file and what is wrong (missing, unknown extension, truncated, non-numeric, non-finite,
        an option that does not apply to the format...).
    """
    import inspect

    from .. import modalities
    path = Path(path)
    if not path.exists():
        raise MeasurementError(path, "no such file")
    if path.is_dir():
        raise MeasurementError(path, "is a directory, expected a measured file")
    if modality is not None and modality not in modalities.names():
        raise MeasurementError(path, f"modality {modality!r}: expected one of {', '.join(modalities.names())}")
    reader = _reader_for(path, modality)
    try:
        params = inspect.signature(reader).parameters
    except (TypeError, ValueError):
        params = {}
    kw = {}
    for key, val in (("columns", columns), ("units", units)):
        if val is None:
            continue
        if key not in params:
            raise MeasurementError(path, f"{key}={val!r} applies to column text files; a {_ext(path)} file is read "
                                   f"by {getattr(reader, '__name__', reader)}, which takes no {key}")
        kw[key] = val
    if slice is not None and "slice" in params:
        kw["slice"] = slice
    try:
        m = reader(path, **kw)
    except MeasurementError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise MeasurementError(path, f"cannot be read as {_ext(path)}: {type(exc).__name__}: {exc}") from exc
    m.meta.setdefault("source", str(path))
    if modality is not None:
        m.modality = modality
    _check(m, path)
    if slice is not None and "slice" not in kw:
        m = m.slice(slice)
    return m


def _check(m: Measurement, path: Path) -> None:
    if m.values.size == 0 or m.axis.size == 0:
        raise MeasurementError(path, "holds no data points")
    if m.values.ndim == 1 and len(m.values) != len(m.axis):
        raise MeasurementError(path, f"axis has {len(m.axis)} points but values have {len(m.values)}")
    if m.axis2 is not None:
        if m.values.shape != (len(m.axis2), len(m.axis)):
            raise MeasurementError(path, f"stack of values {m.values.shape} does not match {m.axis2_name} "
                                   f"({len(m.axis2)}) x {m.axis_name} ({len(m.axis)})")
        if not np.all(np.isfinite(m.axis2)):
            raise MeasurementError(path, f"{m.axis2_name} axis holds non-finite values")
    if not np.all(np.isfinite(m.axis)):
        raise MeasurementError(path, f"{m.axis_name} axis holds non-finite values")
    bad = ~np.isfinite(m.values)
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise MeasurementError(path, f"values hold {int(bad.sum())} non-finite entries (first at index "
                               f"{tuple(int(i) for i in idx)})")
    if m.values.ndim == 1 and len(m.axis) < 8 or m.axis2 is not None and len(m.axis) < 8:
        raise MeasurementError(path, f"only {len(m.axis)} data points; expected a spectrum (>= 8 points)")
    big = float(np.max(np.abs(m.values)))
    if big > _F32_MAX:
        raise MeasurementError(path, f"values reach {big:.3g}, beyond float32 ({_F32_MAX:.3g}): the network's input "
                               "would overflow; rescale the data")


_F32_MAX = float(np.finfo(np.float32).max) / 16
