"""Readers of measured files: real files from ../shared/data (skipped when absent) and malformed/truncated
fixtures written in tmp dirs (every one must raise MeasurementError naming the file and the problem)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from train.measurements import Measurement, MeasurementError, read
from train.measurements.datasets import find_real_files

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")


def _d(*parts):
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p


# ------------------------------------------------------------------------------------------------ real files
@needs_data
@pytest.mark.parametrize("name, lo, hi, n, nu", [
    # ranges and frequencies from ../shared/data/README.md (EasySpin's eprload gives the same)
    ("eprpy__tempo.DSC", 325.98, 338.99, 2048, 9.327654),
    ("easyspin__strong1.dsc", 337.5, 342.5, 1024, 9.58667),
    ("easyspin__frem_gly.par", 344.97, 350.97, 4096, 9.766096),
    ("epyrtools__CuSO4_001.par", 200.0, 500.0, 1024, 9.402987),
    ("easyspin__adani_Mn.json", 326.38, 341.38, 1000, 9.383722),
])
def test_epr_real(name, lo, hi, n, nu):
    m = read(_d("epr", name))
    assert m.modality == "epr" and m.units == "mT" and len(m.axis) == n
    assert m.axis[0] == pytest.approx(lo, abs=0.01) and m.axis[-1] == pytest.approx(hi, abs=0.01)
    assert m.meta["mw_frequency_GHz"] == pytest.approx(nu, rel=1e-7)
    assert np.ptp(m.values) > 0


@needs_data
def test_esp_values_match_header_min_max():
    # the .par header records MIN/MAX of the stored data: the float32 little-endian reading must reproduce them
    m = read(_d("epr", "easyspin__frem_gly.spc"))
    assert m.values.min() == -9016.0 and m.values.max() == 9066.0


@needs_data
def test_bes3t_either_file_and_modulation():
    a = read(_d("epr", "eprpy__tempo.DSC"))
    b = read(_d("epr", "eprpy__tempo.DTA"))
    np.testing.assert_array_equal(a.values, b.values)
    assert a.meta["modulation_mT"] == pytest.approx(0.04)


@needs_data
@pytest.mark.parametrize("name, el, t", [("XASLIB_Cu_cu_metal_rt.xdi", "Cu", 295.0),
                                         ("XASLIB_Cu_cu_metal_10K.xdi", "Cu", 10.0),
                                         ("larch_cu_50k.xmu", "Cu", 50.0), ("larch_cu_150k.xmu", "Cu", 150.0),
                                         ("XASLIB_Fe_Fe_metal_rt_01.xdi", "Fe", 295.0),
                                         ("XASLIB_Cu_CuO_tenorite_13K_01.xdi", "Cu", 13.0)])
def test_xafs_real(name, el, t):
    m = read(_d("xafs", name))
    assert m.modality == "exafs" and m.units == "eV"
    assert m.meta["element"] == el and m.meta["edge"] == "K" and m.meta["temperature_K"] == t
    assert np.all(np.diff(m.axis) > 0)
    e0 = m.meta["edge_energy_eV"]
    assert m.axis[0] < e0 < m.axis[-1]
    # mu rises across the edge
    assert m.values[m.axis > e0 + 50].mean() > m.values[m.axis < e0 - 30].mean()


@needs_data
def test_pdf_real_headers():
    m = read(_d("pdf", "diffpy.cmi", "ch03NiModelling", "Ni.gr"))
    assert m.modality == "pdf" and m.meta["qmax"] == 25.0 and m.meta["qmin"] == 0.5
    assert m.meta["wavelength_A"] == pytest.approx(0.1836)
    assert m.axis[1] - m.axis[0] == pytest.approx(0.01)
    s = read(_d("pdf", "diffpy.srfit", "ni-q27r60-xray.gr"))
    assert s.meta["qmax"] == 27.0 and "dG" in s.meta
    # Ni nearest neighbour at a/sqrt(2) = 2.49 A is the strongest peak of G(r) below 3 A
    r, g = m.axis, m.values
    sel = (r > 2) & (r < 3)
    assert r[sel][np.argmax(g[sel])] == pytest.approx(3.5246 / np.sqrt(2), abs=0.03)


@needs_data
def test_eels_dm3_real():
    m = read(_d("eels", "pyTEMlib_EELS_STO.dm3"))
    assert m.modality == "exelfs" and m.units == "eV" and m.values.shape == (2048,)
    assert m.axis[0] == pytest.approx(350.0) and m.axis[1] - m.axis[0] == pytest.approx(0.25)


def test_find_real_files_shape():
    found = find_real_files()
    assert isinstance(found, dict)
    for mod, files in found.items():
        assert mod in ("epr", "exafs", "exelfs", "pdf", "swelling")
        assert all(Path(f).is_file() for f in files)
    if SHARED.is_dir():
        assert {"epr", "exafs", "exelfs", "pdf"} <= set(found)


# ------------------------------------------------------------------------------------------------ synthetic
def test_plain_columns_and_png_tif(tmp_path):
    x = np.linspace(0, 10, 50)
    f = tmp_path / "a.txt"
    np.savetxt(f, np.c_[x, np.sin(x)], header="x y")
    m = read(f)
    np.testing.assert_allclose(m.axis, x)
    np.testing.assert_allclose(m.values, np.sin(x), atol=1e-12)
    import tifffile
    img = (np.arange(64 * 80).reshape(64, 80) % 251).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", img, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": "nm"})
    t = read(tmp_path / "m.tif")
    assert t.modality == "swelling" and t.values.shape == (64, 80) and t.meta["pixel_size_nm"] == pytest.approx(0.5)
    from PIL import Image
    Image.fromarray((img % 256).astype(np.uint8)).save(tmp_path / "m.png")
    p = read(tmp_path / "m.png")
    assert p.values.shape == (64, 80) and "pixel_size_nm" not in p.meta


def _bes3t(tmp_path, n=64, nbytes=None):
    (tmp_path / "s.DSC").write_text(f"#DESC\nBSEQ BIG\nIKKF REAL\nXTYP IDX\nYTYP NODATA\nIRFMT D\nXPTS {n}\n"
                                    "XMIN 3300.0\nXWID 100.0\nXUNI 'G'\nMWFQ 9.5e9\n")
    data = np.sin(np.arange(n)).astype(">f8").tobytes()
    (tmp_path / "s.DTA").write_bytes(data if nbytes is None else data[:nbytes])
    return tmp_path / "s.DSC"


def test_bes3t_synthetic_roundtrip(tmp_path):
    m = read(_bes3t(tmp_path))
    assert m.axis[0] == pytest.approx(330.0) and m.axis[-1] == pytest.approx(340.0)
    np.testing.assert_allclose(m.values, np.sin(np.arange(64)))
    assert m.meta["mw_frequency_GHz"] == pytest.approx(9.5)


# malformed / truncated fixtures: (file writer, words the message must contain)
def _trunc_bes3t(p):
    return _bes3t(p, nbytes=100)


def _no_dta(p):
    f = _bes3t(p)
    (p / "s.DTA").unlink()
    return f


def _trunc_spc(p):
    (p / "e.par").write_text("DOS  Format\nANZ 1024\nGST 3000\nGSI 100\nJUN G\nMF 9.5\n")
    (p / "e.spc").write_bytes(np.zeros(1000, "<f4").tobytes())
    return p / "e.par"


def _trunc_json(p):
    (p / "a.json").write_text('{"ExperimentOptions": {"CommonOptions": {"CenterMagneticField": 3')
    return p / "a.json"


def _short_json(p):
    d = {"ExperimentOptions": {"CommonOptions": {"CenterMagneticField": 330.0, "SweepWidth": 10.0,
                                                 "PointsCount": 100}},
         "Values": [{"Values": [{"Points": [1.0, 0.0]} for _ in range(60)]}], "MwFrequencyKHz": 9400000}
    (p / "a.json").write_text(json.dumps(d))
    return p / "a.json"


def _trunc_xdi(p):
    txt = "# XDI/1.0\n# Column.1: energy eV\n# Column.2: mutrans\n# ///\n#---\n"
    txt += "".join(f"{8900 + i} {0.1 * i}\n" for i in range(30)) + "8930\n"
    (p / "c.xdi").write_text(txt)
    return p / "c.xdi"


def _xdi_no_mu(p):
    txt = "# XDI/1.0\n# Column.1: energy eV\n# Column.2: foo\n# ///\n" + "".join(f"{8900 + i} {i}\n" for i in range(30))
    (p / "c.xdi").write_text(txt)
    return p / "c.xdi"


def _corrupt_gr(p):
    txt = "qmax = 25\n#### start data\n" + "".join(f"{0.01 * i:.2f} {np.sin(i):.4f}\n" for i in range(40))
    txt += "0.40 abc\n" + "".join(f"{0.01 * i:.2f} 0.0\n" for i in range(41, 50))
    (p / "x.gr").write_text(txt)
    return p / "x.gr"


def _binary_xmu(p):
    (p / "b.xmu").write_bytes(b"\x00\x01\x02" * 100)
    return p / "b.xmu"


def _bad_dm3(p):
    (p / "b.dm3").write_bytes(b"\x00\x00\x00\x03" + b"\x17" * 50)
    return p / "b.dm3"


def _bad_msa(p):
    (p / "b.msa").write_text("not an msa file\n1 2\n")
    return p / "b.msa"


def _bad_png(p):
    (p / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return p / "b.png"


def _unknown_ext(p):
    (p / "b.xyz123").write_text("1 2\n")
    return p / "b.xyz123"


def _nan_columns(p):
    (p / "n.txt").write_text("".join(f"{i} {'nan' if i == 5 else i}\n" for i in range(20)))
    return p / "n.txt"


@pytest.mark.parametrize("make, words", [
    (_trunc_bes3t, ["s.DTA", "bytes", "truncated"]),
    (_no_dta, ["companion", "DTA"]),
    (_trunc_spc, ["e.spc", "4000 bytes", "truncated"]),
    (_trunc_json, ["a.json", "not valid JSON"]),
    (_short_json, ["a.json", "60 points", "PointsCount = 100"]),
    (_trunc_xdi, ["c.xdi", "line 36", "truncated"]),
    (_xdi_no_mu, ["c.xdi", "no absorption column"]),
    (_corrupt_gr, ["x.gr", "line 43", "not numeric"]),
    (_binary_xmu, ["b.xmu", "binary"]),
    (_bad_dm3, ["b.dm3", "rosettasciio"]),
    (_bad_msa, ["b.msa", "EMSA"]),
    (_bad_png, ["b.png", "pillow"]),
    (_unknown_ext, ["b.xyz123", "unknown extension"]),
    (_nan_columns, ["n.txt", "non-finite"]),
])
def test_malformed_files_name_file_and_problem(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(MeasurementError) as exc:
        read(path)
    msg = str(exc.value)
    for w in words:
        assert w in msg, f"'{w}' missing from: {msg}"


def test_missing_file(tmp_path):
    with pytest.raises(MeasurementError, match="no such file"):
        read(tmp_path / "nothing.xdi")


@needs_data
def test_truncated_copy_of_real_bes3t(tmp_path):
    shutil.copy(_d("epr", "eprpy__tempo.DSC"), tmp_path / "t.DSC")
    (tmp_path / "t.DTA").write_bytes(_d("epr", "eprpy__tempo.DTA").read_bytes()[:10000])
    with pytest.raises(MeasurementError, match=r"t\.DTA: holds 10000 bytes .*XPTS = 2048"):
        read(tmp_path / "t.DSC")
