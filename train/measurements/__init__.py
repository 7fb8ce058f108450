"""Measured files -> :class:`Measurement` (axis, values, units, metadata).

``read(path)`` picks the reader from the file's extension among the formats the modality adapters declare
(:mod:`train.modalities`: one reader per format, in the adapter of its modality).  The built-in formats:

=====================  =========  ==========================================================================
extension              modality   reader
=====================  =========  ==========================================================================
.DSC / .DTA            epr        Bruker BES3T (Xepr): descriptor + binary data, either file may be given
.par / .spc            epr        Bruker ESP / WinEPR (DOS format: little-endian float32; else big-endian int32)
.json                  epr        Adani benchtop JSON
.xdi                   exafs      XDI 1.0 (columns named in ``# Column.N:`` lines)
.xmu / .dat / .chi     exafs      '#'-commented columns: energy (eV), mu(E)
.msa / .ems            exelfs     EMSA/MAS through rosettasciio
.dm3 / .dm4            exelfs or  Gatan DigitalMicrograph through rosettasciio (1-D -> exelfs, 2-D -> swelling)
.hspy / .hdf5          swelling   HyperSpy HDF5 through rosettasciio (needs h5py)
.gr / .fgr             pdf        G(r) columns after a PDFgetX/xPDFsuite/PDFgui header (Qmax etc. into meta)
.tif .tiff .png .jpg   swelling   tifffile / pillow; pixel size from TIFF resolution tags when present
.txt / .csv            (none)     plain numeric columns (axis, values): any 1-D model with matching units
=====================  =========  ==========================================================================

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
    nm); ``values``: same length (1-D) or, for images, 2-D ``(ny, nx)``.  ``meta`` keeps what the instrument
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

    def __post_init__(self):
        self.axis = np.asarray(self.axis, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.modality is not None and not isinstance(self.modality, str):
            raise TypeError(f"Measurement.modality {self.modality!r}: expected a modality name or None")

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "<memory>"))

    @property
    def name(self) -> str:
        return Path(self.source).name

    def __repr__(self) -> str:
        rng = f"{self.axis[0]:g}..{self.axis[-1]:g} {self.units}" if self.axis.size else "empty"
        return (f"Measurement({self.modality}, {self.name}, {self.axis_name} {rng}, values {self.values.shape} "
                f"{self.value_units})")


def _ext(path: Path) -> str:
    return path.suffix.lower()


def readable_extensions() -> list[str]:
    """Every extension some registered adapter (or the plain-column reader) reads."""
    from .. import modalities
    exts = {".txt", ".csv"}
    for n in modalities.names():
        try:
            exts.update(modalities.get(n).formats)
        except modalities.AdapterError:
            continue
    return sorted(exts)


def _reader_for(path: Path, modality: str | None) -> Callable[..., Measurement]:
    from .. import modalities
    from .columns import read_columns
    ext = _ext(path)
    if modality is not None:
        a = modalities.get(modality)
        if ext in a.formats:
            return a.formats[ext]
        if ext in (".txt", ".csv"):
            return read_columns
        raise MeasurementError(path, f"extension '{path.suffix}' is not a {modality} format; {modality} reads "
                               f"{', '.join(sorted(a.formats)) or 'no files'} (and plain .txt/.csv columns)")
    found = modalities.readers_for(ext)
    if found:
        return found[0][1]
    if ext in (".txt", ".csv"):
        return read_columns
    raise MeasurementError(path, f"unknown extension '{path.suffix}'; readable: {', '.join(readable_extensions())}")


def read(path, modality: str | None = None) -> Measurement:
    """Read one measured file.

    Parameters
    ----------
    path : str or Path
        The file (for two-file formats such as BES3T .DSC/.DTA or ESP .par/.spc, either one).
    modality : str, optional
        A modality (simulator) name that overrides the guess from the extension, e.g. ``"exafs"`` for a
        plain two-column energy/mu ``.txt`` file; the file is then read by that modality's reader.

    Returns
    -------
    Measurement
        ``axis`` (1-D, float64, in ``units``), ``values`` (same length, or ``(ny, nx)`` for images),
        ``modality`` and ``meta`` (instrument settings the preparation needs, ``source`` = the path).

    Raises
    ------
    MeasurementError
        Naming the file and what is wrong (missing, unknown extension, truncated, non-numeric, non-finite...).
    """
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
        m = reader(path)
    except MeasurementError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise MeasurementError(path, f"cannot be read as {_ext(path)}: {type(exc).__name__}: {exc}") from exc
    m.meta.setdefault("source", str(path))
    if modality is not None:
        m.modality = modality
    _check(m, path)
    return m


def _check(m: Measurement, path: Path) -> None:
    if m.values.size == 0 or m.axis.size == 0:
        raise MeasurementError(path, "holds no data points")
    if m.values.ndim == 1 and len(m.values) != len(m.axis):
        raise MeasurementError(path, f"axis has {len(m.axis)} points but values have {len(m.values)}")
    if not np.all(np.isfinite(m.axis)):
        raise MeasurementError(path, f"{m.axis_name} axis holds non-finite values")
    bad = ~np.isfinite(m.values)
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise MeasurementError(path, f"values hold {int(bad.sum())} non-finite entries (first at index "
                               f"{tuple(int(i) for i in idx)})")
    if m.values.ndim == 1 and len(m.axis) < 8:
        raise MeasurementError(path, f"only {len(m.axis)} data points; expected a spectrum (>= 8 points)")
    big = float(np.max(np.abs(m.values)))
    if big > _F32_MAX:
        raise MeasurementError(path, f"values reach {big:.3g}, beyond float32 ({_F32_MAX:.3g}): the network's input "
                               "would overflow; rescale the data")


_F32_MAX = float(np.finfo(np.float32).max) / 16
