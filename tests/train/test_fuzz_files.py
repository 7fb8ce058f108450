"""Fuzzing measured-file bytes: every mutated file (truncated, bytes flipped, garbage inserted) either reads into a
finite Measurement or is refused with the project's own MeasurementError naming the file; never a traceback."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from train.measurements import Measurement, MeasurementError, read

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _seed_files(d: Path) -> list[Path]:
    """Small valid files of several formats (written here), plus real ones when ../shared/data is present."""
    r = np.linspace(1.0, 20.0, 200)
    (d / "a.gr").write_text("# qmax = 25.0\n##### start data\n" + "\n".join(f"{x:.3f} {np.sin(3 * x):.5f}" for x in r))
    e = np.linspace(8800, 9600, 300)
    mu = 1 / (1 + np.exp(-(e - 8979) / 3))
    (d / "b.xdi").write_text("# XDI/1.0\n# Column.1: energy eV\n# Column.2: mutrans\n# Element.symbol: Cu\n"
                             "# Element.edge: K\n# ///\n#----\n# energy mutrans\n"
                             + "\n".join(f"{x:.2f} {y:.6f}" for x, y in zip(e, mu)))
    (d / "c.csv").write_text("x,y\n" + "\n".join(f"{i},{np.cos(i / 9):.5f}" for i in range(100)))
    (d / "d.msa").write_text("#FORMAT      : EMSA/MAS Spectral Data File\n#VERSION     : 1.0\n#TITLE       : t\n"
                             "#NPOINTS     : 64\n#NCOLUMNS    : 1\n#XUNITS      : eV\n#XPERCHAN    : 1.0\n"
                             "#OFFSET      : 400.0\n#DATATYPE    : Y\n#SPECTRUM    :\n"
                             + "\n".join(f"{100 + i}," for i in range(64)) + "\n#ENDOFDATA   :\n")
    out = [d / n for n in ("a.gr", "b.xdi", "c.csv", "d.msa")]
    for name in ("epr/eprpy__tempo.DSC", "epr/easyspin__frem_gly.par"):
        p = SHARED / name
        if p.exists():
            for q in p.parent.glob(p.stem + ".*"):
                shutil.copy(q, d / q.name)
            out.append(d / p.name)
    return out


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seed_files(tmp_path_factory.mktemp("seeds"))


def _mutate(data: bytes, kind: int, pos: float, junk: bytes) -> bytes:
    i = int(pos * len(data))
    if kind == 0:
        return data[:i]                                              # truncated
    if kind == 1:
        b = bytearray(data)
        for k, j in enumerate(junk[:8]):
            b[(i + 97 * k) % len(b)] ^= (j | 1)                     # bytes flipped
        return bytes(b)
    return data[:i] + junk + data[i:]                                # garbage inserted


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 5), kind=st.integers(0, 2), pos=st.floats(0, 1), junk=st.binary(min_size=1, max_size=40))
def test_mutated_files_are_read_or_refused_by_name(seeds, tmp_path_factory, which, kind, pos, junk):
    src = seeds[which % len(seeds)]
    d = tmp_path_factory.mktemp("fz")
    for q in src.parent.glob(src.stem + ".*"):                       # companions (.DTA, .spc) travel along
        shutil.copy(q, d / q.name)
    target = d / src.name
    if src.suffix.lower() in (".dsc", ".par"):                       # mutate the binary half of two-file formats
        bins = [q for q in d.glob(src.stem + ".*") if q.suffix.lower() in (".dta", ".spc")]
        target = bins[0] if bins else target
    target.write_bytes(_mutate(target.read_bytes(), kind, pos, junk))
    try:
        m = read(d / src.name)
    except MeasurementError as exc:
        assert src.name.lower().split(".")[0] in str(exc).lower()   # the message names the file
        return
    assert isinstance(m, Measurement) and np.all(np.isfinite(m.values)) and np.all(np.isfinite(m.axis))
