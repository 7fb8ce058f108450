"""The reader contract, run over every measured file available: ../shared/data (skipped when absent), the download
cache of scripts/fetch_real_data.py (the manifest's files, skipped when not fetched) and small files written here
in the formats no real file covers.

For every file: it reads (with the manifest's read options); the axis increases strictly, is finite and in the
modality's unit; values are finite; the metadata keys the preparation needs are present; one spectrum goes through
``prepare`` onto an axis of the modality's simulator inside the file's range; and a truncated copy and a
wrong-format copy (same name and extension, other content) are refused with a MeasurementError naming the file.
Only that files read is checked for the manifest's ``test`` split: no value of theirs is compared here.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import reader_fixtures as F
from simgen.simulator import Axis
from train.measurements import MeasurementError, read
from train.measurements.datasets import cache_dir, manifest_files, shared_data_dir
from train.prepare import TargetSpec, prepare

UNITS = {"epr": "mT", "exafs": "eV", "exelfs": "eV", "pdf": "A", "swelling": "nm"}
#: metadata every reader of the modality must fill (for formats that store it; see SYNTH_META for exceptions)
META = {"epr": ("format", "mw_frequency_GHz"), "exafs": ("format", "element", "edge", "edge_energy_eV"),
        "exelfs": ("format",), "pdf": ("format",), "swelling": ("format", "pixel_size_nm")}


def _real_cases():
    cases = []
    try:
        entries = manifest_files(present=False)
    except FileNotFoundError:
        return cases
    for e, p in entries:
        if p is None:
            continue
        kw = dict(e.get("read") or {})
        if "columns" in kw:
            kw["columns"] = tuple(kw["columns"])
        cases.append(pytest.param(p, e["modality"], kw, id=e["id"]))
    return cases


def _synthetic(d: Path):
    return [(F.bes3t_2d(d), "epr", {}), (F.bes3t_2d(d, igd=True, name="igd"), "epr", {}), (F.esp_2d(d), "epr", {}),
            (F.magnettech_spe(d), "epr", {}), (F.magnettech_xml(d), "epr", {}), (F.epr_csv(d), "epr", {}),
            (F.athena_prj(d), "exafs", {}), (F.athena_prj(d, same_grid=False, name="p2"), "exafs", {"slice": 1}),
            (F.fio(d), "exafs", {}), (F.spec_columns(d), "exafs", {}),
            (F.eels_txt(d), "exelfs", {"modality": "exelfs", "units": "eV"}), (F.pdfgui_gr(d)[0], "pdf", {}),
            (F.micrograph_tif(d), "swelling", {})]


SYNTH_NAMES = ["bes3t-2d", "bes3t-2d-igd", "esp-2d", "magnettech-spe", "magnettech-xml", "epr-csv", "athena-prj",
               "athena-prj-slice", "fio", "spec-point-index", "eels-headerless", "pdfgui-banks", "tif"]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    return d, _synthetic(d)


REAL = _real_cases()


def test_sources_reported():
    """Say which real sources this run covers (skips are explicit, never silent)."""
    if shared_data_dir() is None and not cache_dir().is_dir():
        pytest.skip("neither ../shared/data nor the download cache (python scripts/fetch_real_data.py) is present")
    assert REAL, "a real-data source is present but the manifest lists none of its files"


def _check(m, modality):
    assert m.modality in (modality, None)
    assert m.units == UNITS[modality], (m.units, modality)
    if modality != "swelling":
        assert m.axis.ndim == 1 and np.all(np.diff(m.axis) > 0) and np.all(np.isfinite(m.axis))
        assert np.all(np.isfinite(m.values)) and m.values.shape[-1] == len(m.axis)
    for k in META[modality]:
        assert k in m.meta, f"{m.name}: meta lacks {k!r} ({sorted(m.meta)})"
    if m.axis2 is not None:
        assert m.values.shape == (len(m.axis2), len(m.axis))
        d2 = np.diff(m.axis2)
        assert np.all(d2 > 0) or np.all(d2 < 0), "second axis not monotonic"


def _spec(m, modality):
    """An axis of the modality's simulator inside the measurement's range."""
    x = m.axis
    if modality == "epr":
        c, w = 0.5 * (x[0] + x[-1]), 0.9 * (x[-1] - x[0])
        return TargetSpec(Axis(("field",), (np.linspace(c - w / 2, c + w / 2, 256),), ("mT",)), "epr")
    if modality == "exafs":
        e0 = m.meta["edge_energy_eV"]
        kmax = min(10.0, float(np.sqrt(max(x[-1] - e0, 0) * 0.2625)) - 0.5)
        return TargetSpec(Axis(("k",), (np.arange(3.0, kmax, 0.05),), ("1/A",)), "exafs", {"k_weight": 2})
    if modality == "exelfs":
        return TargetSpec(Axis(("energy_loss",), (np.linspace(x[0] + 1, x[-1] - 1, 256),), ("eV",)), "exelfs")
    if modality == "pdf":
        return TargetSpec(Axis(("r",), (np.arange(1.5, min(20.0, x[-1] - 0.5), 0.01),), ("A",)), "pdf")
    ny = nx = 64
    px = 1.0
    return TargetSpec(Axis(("image_y", "image_x"), (np.arange(ny) * px, np.arange(nx) * px), ("nm", "nm")), "swelling")


def _roundtrip(m, modality):
    one = m.slice(0) if m.axis2 is not None else m
    if modality == "exafs" and one.axis[-1] - one.meta["edge_energy_eV"] < 200:
        pytest.skip(f"{m.name}: a XANES-range scan, no EXAFS k range to prepare")
    spec = _spec(one, modality)
    prep = prepare(one, spec)
    assert prep.x.dtype == np.float32 and np.all(np.isfinite(prep.x))
    assert prep.x.shape[1:] == spec.axis.shape


def _truncated_copy(src: Path, d: Path) -> Path:
    """A copy cut short: the data file of two-file formats loses 40 %; text is cut after the first number of a
    row two thirds in (so the last row is short); other files lose their second half."""
    stem_files = [p for p in src.parent.glob(src.stem + ".*")] if src.suffix.lower() in (".dsc", ".dta", ".par",
                                                                                         ".spc") else [src]
    for p in stem_files:
        shutil.copy(p, d / p.name)
    out = d / src.name
    ext = src.suffix.lower()
    data_ext = {".dsc": ".dta", ".dta": ".dta", ".par": ".spc", ".spc": ".spc"}.get(ext)
    if data_ext:
        tgt = next(p for p in d.glob(src.stem + ".*") if p.suffix.lower() == data_ext)
        b = tgt.read_bytes()
        tgt.write_bytes(b[:int(len(b) * 0.6)])
        return out
    raw = src.read_bytes()
    text_like = ext in (".xdi", ".xmu", ".dat", ".chi", ".fio", ".gr", ".fgr", ".txt", ".csv") and b"\x00" not in raw[:4096]
    if text_like:
        lines = raw.decode("utf-8", errors="replace").splitlines()
        k = int(len(lines) * 0.67)
        while k < len(lines) and (not lines[k].strip() or lines[k].lstrip()[:1] in "#%!;"):
            k += 1
        first = lines[k].split()[0].rstrip(",") if lines[k].split() else ""
        if "," in lines[k]:
            first = lines[k].split(",")[0]
        out.write_text("\n".join(lines[:k]) + "\n" + first + "\n")
    else:
        out.write_bytes(raw[:len(raw) // 2])
    return out


def _wrong_copy(src: Path, d: Path) -> Path:
    """Same name and extension, content of another format (binary junk for text formats, text for binary)."""
    out = d / src.name
    raw = src.read_bytes()
    if b"\x00" in raw[:4096] or src.suffix.lower() in (".prj", ".hspy", ".dm3", ".dm4", ".spe", ".tif", ".png"):
        out.write_text("this is a lab notebook page, not a measurement\n1 2\n")
    else:
        out.write_bytes(bytes(range(256)) * 8)
    if src.suffix.lower() in (".dsc", ".par"):  # keep the companion so the descriptor itself is judged
        for p in src.parent.glob(src.stem + ".*"):
            if p != src:
                shutil.copy(p, d / p.name)
    return out


def _read(path, kw):
    kw = dict(kw)
    mod = kw.pop("modality", None)
    return read(path, mod, **kw)


@pytest.mark.parametrize("path, modality, kw", REAL)
def test_real_file_contract(path, modality, kw, tmp_path):
    m = _read(path, kw)
    _check(m, modality)
    _roundtrip(m, modality)


@pytest.mark.parametrize("path, modality, kw", REAL)
def test_real_file_truncated_and_wrong_format(path, modality, kw, tmp_path):
    kw = {k: v for k, v in kw.items() if k != "slice"}
    for make in (_truncated_copy, _wrong_copy):
        d = tmp_path / make.__name__
        d.mkdir()
        bad = make(Path(path), d)
        with pytest.raises(MeasurementError) as exc:
            _read(bad, kw)
        assert str(d) in str(exc.value), f"{make.__name__}: message does not name the file: {exc.value}"


@pytest.mark.parametrize("k", range(len(SYNTH_NAMES)), ids=SYNTH_NAMES)
def test_synthetic_format_contract(synth_dir, k, tmp_path):
    _, cases = synth_dir
    path, modality, kw = cases[k]
    m = _read(path, kw)
    if modality == "swelling":
        assert m.values.shape == (256, 256) and m.meta["pixel_size_nm"] == pytest.approx(0.8)
        return
    _check(m, modality)
    _roundtrip(m, modality)
    kw = {k: v for k, v in kw.items() if k != "slice"}
    for make in (_truncated_copy, _wrong_copy):
        d = tmp_path / make.__name__
        d.mkdir()
        bad = make(path, d)
        for p in path.parent.glob(path.stem + ".*"):  # companions of two-file formats
            if not (d / p.name).exists():
                shutil.copy(p, d / p.name)
        with pytest.raises(MeasurementError) as exc:
            _read(bad, kw)
        assert str(d) in str(exc.value)
