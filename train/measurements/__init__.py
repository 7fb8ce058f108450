"""Readers of measured files -> :class:`Measurement` (axis, values, units, metadata).

``read(path)`` picks the reader from the extension (and, for ambiguous ones, the content):

=====================  =========  ==========================================================================
extension              modality   reader
=====================  =========  ==========================================================================
.DSC / .DTA            epr        Bruker BES3T (Xepr): descriptor + binary data, either file may be given
.par / .spc            epr        Bruker ESP / WinEPR (DOS format: little-endian float32; else big-endian int32)
.json                  epr        Adani benchtop JSON (as in EasySpin's tests/eprfiles/adani)
.xdi                   xafs       XDI 1.0 (columns named in ``# Column.N:`` lines)
.xmu / .dat / .chi     xafs       '#'-commented columns: energy (eV), mu(E)
.msa / .ems            eels       EMSA/MAS through rosettasciio
.dm3 / .dm4            eels|image Gatan DigitalMicrograph through rosettasciio (1-D -> eels, 2-D -> image)
.hspy / .hdf5          eels|image HyperSpy HDF5 through rosettasciio (needs h5py)
.gr / .fgr             pdf        G(r) columns after a PDFgetX/xPDFsuite/diffpy header (Qmax etc. into meta)
.tif .tiff .png .jpg   image      tifffile / pillow; pixel size from TIFF resolution tags when present
.txt / .csv            columns    plain numeric columns (axis, values)
=====================  =========  ==========================================================================

Every failure on purpose raises :class:`MeasurementError` whose message starts with the file's path and says what
is wrong (truncated binary, ragged or non-numeric row, missing header key, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simgen.errors import SimgenError

__all__ = ["Measurement", "MeasurementError", "read", "MODALITIES"]

MODALITIES = ("epr", "xafs", "eels", "pdf", "image", "columns")


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
    modality: str = "columns"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.axis = np.asarray(self.axis, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.modality not in MODALITIES:
            raise ValueError(f"Measurement.modality {self.modality!r}: expected one of {MODALITIES}")

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


def _reader_for(path: Path) -> Callable[..., Measurement]:
    from . import columns, epr, rsc
    ext = _ext(path)
    table = {
        ".dsc": epr.read_bes3t, ".dta": epr.read_bes3t,
        ".par": epr.read_esp, ".spc": epr.read_esp,
        ".json": epr.read_adani_json,
        ".xdi": columns.read_xdi, ".xmu": columns.read_xafs_columns, ".chi": columns.read_xafs_columns,
        ".dat": columns.read_dat,
        ".gr": columns.read_pdf, ".fgr": columns.read_pdf,
        ".txt": columns.read_columns, ".csv": columns.read_columns,
        ".msa": rsc.read_msa, ".ems": rsc.read_msa,
        ".dm3": rsc.read_dm, ".dm4": rsc.read_dm,
        ".hspy": rsc.read_hspy, ".hdf5": rsc.read_hspy,
        ".tif": rsc.read_image, ".tiff": rsc.read_image, ".png": rsc.read_image, ".jpg": rsc.read_image,
        ".jpeg": rsc.read_image,
    }
    if ext not in table:
        raise MeasurementError(path, f"unknown extension '{path.suffix}'; readable: {', '.join(sorted(table))}")
    return table[ext]


def read(path, modality: str | None = None) -> Measurement:
    """Read one measured file (see the module docstring for the formats).

    ``modality`` overrides the guess (e.g. ``"xafs"`` for a plain two-column energy/mu file).
    """
    path = Path(path)
    if not path.exists():
        raise MeasurementError(path, "no such file")
    if path.is_dir():
        raise MeasurementError(path, "is a directory, expected a measured file")
    if modality is not None and modality not in MODALITIES:
        raise MeasurementError(path, f"modality {modality!r}: expected one of {', '.join(MODALITIES)}")
    reader = _reader_for(path)
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


