"""The solutions adapter: Raman/UV-vis readers (text, table, MAT, SPC), preparation onto a model's axis with the
simulator's normalisation, and the domain refusals."""
from __future__ import annotations

import struct
import sys

import numpy as np
import pytest
import scipy.io

from simgen.corpus import simulate_rows
from simgen.recipe import load_recipe
from train.measurements import Measurement, MeasurementError, read
from train.modalities import OutOfDomain
from train.modalities.solutions import label_name, read_spc, spectra_of
from train.prepare import prepare

RAMAN = "solutions-000-raman"


def _band(x, c, w):
    return np.exp(-0.5 * ((x - c) / w) ** 2)


def _raman_file(tmp_path, x, y, header="Raman shift (cm-1),intensity", comments=(), name="s.csv"):
    p = tmp_path / name
    lines = [f"# {c}" for c in comments] + ([header] if header else [])
    lines += [f"{a:.6f},{b:.8g}" for a, b in zip(x, y)]
    p.write_text("\n".join(lines) + "\n")
    return p


def test_label_names():
    assert [label_name(h) for h in ("Zn2+", "NO3-", "SO4 2-", "c(NH4+) [mol/L]", "c_cu", "Fe(III)", "Li+",
                                    "H2PO4-", "sample", "wavenumber")] == [
        "c_zn", "c_no3", "c_so4", "c_nh4", "c_cu", "c_fe", "c_li", "c_h2po4", None, None]


def test_two_column_raman_csv_reads_kind_and_sorts(tmp_path):
    x = np.linspace(4100, 150, 3000)  # descending, as some instruments write
    y = 100 + 1000 * _band(x, 1047, 5)
    p = _raman_file(tmp_path, x, y, comments=("laser: 532 nm",))
    m = read(p, modality="solutions")
    assert (m.modality, m.axis_name, m.units) == ("solutions", "raman_shift", "cm-1")
    assert m.meta["measurement"] == "raman" and m.meta["laser_nm"] == 532.0
    assert np.all(np.diff(m.axis) > 0)
    np.testing.assert_allclose(m.values, y[::-1], rtol=1e-7)
    # without a modality the generic column reader claims .csv: no modality, the unit from the header's name
    plain = read(p)
    assert plain.modality is None and plain.units == "cm-1"


def test_prepare_matches_simulator_on_its_own_axis(tmp_path):
    """A noise-free simulated spectrum on a finer, wider axis (counts, no normalisation), written to CSV, read and
    prepared onto the recipe's axis, equals the simulator's own output there (max-normalised) within the error of
    bin-averaging vs point sampling (the narrowest bands, ~5 cm-1 FWHM, lose ~2 % at their top; axis step 1.46 cm-1)."""
    quiet = {"config.shot_noise": False, "params.read_noise": 0.0, "params.cosmic_rate": 0.0}
    model = load_recipe(RAMAN, overrides=quiet)
    fine = load_recipe(RAMAN, overrides={**quiet, "config.axis_min": 150.0, "config.axis_max": 4100.0,
                                         "config.n_points": 11851, "config.normalise": "none"})
    sm, sf = model.build(), fine.build()
    _, om = simulate_rows(sm, 5, 0, 3)
    _, of = simulate_rows(sf, 5, 0, 3)
    for i in range(3):
        p = _raman_file(tmp_path, sf.axis.coords[0], of["x"][i], name=f"f{i}.csv")
        prep = prepare(read(p, modality="solutions"), model)
        assert prep.x.shape == (1, 2598)
        # a bin average of a peak of sigma ~2 cm-1 over a 1.46 cm-1 bin is ~2 % below its point value
        np.testing.assert_allclose(prep.x[0], om["x"][i], atol=0.02)
        assert np.sqrt(np.mean((prep.x[0] - om["x"][i]) ** 2)) < 2e-3
        assert "divided by its maximum" in prep.info["steps"][-1]


@pytest.mark.parametrize("how", ["max", "area", "standard"])
def test_normalisations_against_hand_values(how):
    rec = load_recipe("solutions-nitrate-sulfate-raman", overrides={"config.normalise": how})
    x = np.linspace(800, 1850, 4201)
    y = 3.0 * _band(x, 1047, 4) + 2.0 * _band(x, 1640, 25) + 0.5
    m = Measurement(x, y, "raman_shift", "cm-1", "", None, {"source": "mem.csv"})
    p = prepare(m, rec)
    xa = rec.build().axis.coords[0]
    if how == "max":
        assert p.x.max() == pytest.approx(1.0, abs=1e-6)
        assert xa[np.argmax(p.x[0])] == pytest.approx(1047, abs=1.0)
    elif how == "area":
        assert p.x.mean() == pytest.approx(1.0, rel=1e-5)
    else:
        # the water-bend window 1550-1750: area above the chord = 2 * 25 * sqrt(2 pi) (band fully inside)
        w = (xa >= 1550) & (xa <= 1750)
        area = 2.0 * 25 * np.sqrt(2 * np.pi)
        got = np.trapezoid(p.x[0][w], xa[w])  # the chord removes the 0.5 offset, the rest scales by 1/area
        assert got == pytest.approx((area + 0.5 * (xa[w][-1] - xa[w][0])) / area, rel=0.01)


def test_plain_columns_with_matching_units_are_accepted():
    rec = load_recipe(RAMAN)
    x = np.linspace(100, 4200, 5000)
    m = Measurement(x, 1 + _band(x, 981, 5), "shift", "cm-1", "", None, {"source": "mem.txt"})
    p = prepare(m, rec)
    assert p.x.shape == (1, 2598) and "warning" not in p.info
    m2 = Measurement(x, 1 + _band(x, 981, 5), "x", "", "", None, {"source": "mem.txt"})
    p2 = prepare(m2, rec)  # units unknown: taken as the model's, said in a warning
    assert "does not name its axis" in p2.info["warning"]
    np.testing.assert_allclose(p.x, p2.x)


def test_table_with_concentration_header(tmp_path):
    rec = load_recipe("solutions-transition-metals-uvvis")
    lam = np.arange(290.0, 1011.0, 2.0)
    rows = []
    conc = np.array([[0.1, 0.05], [0.0, 0.2], [0.15, 0.1]])
    for i, (co, ni) in enumerate(conc):
        a = co * 4.8 * _band(lam, 512, 40) + ni * 5.2 * _band(lam, 395, 30) + 0.01
        rows.append(f"s{i},{co},{ni}," + ",".join(f"{v:.6g}" for v in a))
    p = tmp_path / "table.csv"
    p.write_text("# measurement: uv-vis\nsample,c(Co2+) [mol/L],Ni2+," + ",".join(f"{v:g}" for v in lam) + "\n"
                 + "\n".join(rows) + "\n")
    m = read(p, modality="solutions")
    assert m.values.shape == (3, len(lam)) and (m.axis_name, m.units) == ("wavelength", "nm")
    np.testing.assert_allclose(m.meta["labels"]["c_co"], conc[:, 0])
    np.testing.assert_allclose(m.meta["labels"]["c_ni"], conc[:, 1])
    assert m.meta["sample_ids"] == ["s0", "s1", "s2"] and m.meta["label_units"] == "mol/L"
    prep = prepare(m, rec)
    assert prep.x.shape == (3, 701)
    one = spectra_of(m)
    assert len(one) == 3 and one[1].meta["labels"]["c_ni"] == 0.2 and one[2].values.shape == (len(lam),)
    # ragged row
    bad = tmp_path / "bad.csv"
    bad.write_text(p.read_text().rstrip("\n").rsplit(",", 1)[0] + "\n")
    with pytest.raises(MeasurementError, match="ragged or truncated"):
        read(bad, modality="solutions")


def test_transmittance_is_converted(tmp_path):
    lam = np.linspace(290, 1010, 400)
    T = 100 * 10 ** -(0.3 * _band(lam, 512, 40))
    p = tmp_path / "t.csv"
    p.write_text("wavelength (nm),%T\n" + "\n".join(f"{a},{b}" for a, b in zip(lam, T)))
    m = read(p, modality="solutions")
    assert m.meta["measurement"] == "uvvis"
    np.testing.assert_allclose(m.values, 0.3 * _band(lam, 512, 40), atol=1e-9)
    p.write_text("wavelength (nm),%T\n" + "\n".join(f"{a},{-1.0}" for a in lam))
    with pytest.raises(MeasurementError, match="<= 0"):
        read(p, modality="solutions")


def test_mat_files(tmp_path):
    x = np.linspace(150, 4100, 3000)
    Y = np.stack([1 + k * _band(x, 1047, 5) for k in (1.0, 2.0)])
    p = tmp_path / "a.mat"
    scipy.io.savemat(p, {"raman_shift": x, "spectra": Y.T, "concentrations": np.array([[1.0, 0.5], [2.0, 0.1]]),
                         "names": np.array(["NO3-", "SO4 2-"], dtype=object), "laser_nm": 532.0})
    m = read(p)  # .mat belongs to the solutions adapter alone
    assert m.modality == "solutions" and m.values.shape == (2, 3000) and m.units == "cm-1"
    np.testing.assert_allclose(m.meta["labels"]["c_no3"], [1.0, 2.0])
    assert prepare(m, load_recipe(RAMAN)).x.shape == (2, 2598)
    q = tmp_path / "b.mat"
    scipy.io.savemat(q, {"wavelength": np.linspace(300, 1000, 701), "absorbance": np.ones(701), "c_cu": 0.1})
    m = read(q)
    assert (m.axis_name, m.units, m.values.shape, m.meta["labels"]["c_cu"][0]) == ("wavelength", "nm", (701,), 0.1)
    r = tmp_path / "c.mat"
    scipy.io.savemat(r, {"foo": np.ones(10)})
    with pytest.raises(MeasurementError, match="no axis variable"):
        read(r)
    scipy.io.savemat(r, {"wavelength": np.ones(10), "absorbance": np.ones(12)})
    with pytest.raises(MeasurementError, match="'absorbance' has 12 values"):
        read(r)


def _write_spc(path, x0, x1, y, xtype=13):
    """A minimal new-format (0x4B, little-endian) single-trace SPC file with float Y values (fexp = 0x80)."""
    head = struct.pack("<cccciddicccci9s9sh32s130s30siicchf48sfifc187s", b"\x00", b"\x4b", b"\x0b", b"\x80",
                       len(y), x0, x1, 1, bytes([xtype]), b"\x00", b"\x00", b"\x00", 0, b"", b"", 0, b"", b"", b"",
                       0, 0, b"\x00", b"\x00", 1, 1.0, b"", 0.0, 0, 0.0, b"\x00", b"")
    sub = struct.pack("<cchfffiif4s", b"\x00", b"\x80", 0, 0.0, 0.0, 0.0, 0, 0, 0.0, b"")
    path.write_bytes(head + sub + np.asarray(y, "<f4").tobytes())


def test_spc_without_library_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "a.spc"
    _write_spc(p, 150.0, 4100.0, np.ones(100))
    monkeypatch.setitem(sys.modules, "spectrochempy", None)  # import fails as when not installed
    with pytest.raises(MeasurementError, match="pip install spectrochempy"):
        read_spc(p)


def test_spc_through_spectrochempy(tmp_path):
    pytest.importorskip("spectrochempy")
    x = np.linspace(150, 4100, 2000)
    y = 10 + 100 * _band(x, 1047, 5)
    p = tmp_path / "a.spc"
    _write_spc(p, 150.0, 4100.0, y)
    m = read(p, modality="solutions")  # '.spc' alone is also Bruker ESP's data half (the epr adapter's)
    assert (m.modality, m.units, m.meta["measurement"]) == ("solutions", "cm-1", "raman")
    np.testing.assert_allclose(m.axis, x, atol=1e-3)  # the library rounds the evenly spaced axis
    np.testing.assert_allclose(m.values, y, rtol=1e-5)
    q = tmp_path / "b.spc"
    _write_spc(q, 300.0, 1000.0, np.zeros(50), xtype=3)
    assert read(q, modality="solutions").units == "nm"
    q.write_bytes(b"\x00\x99" + b"\x00" * 600)
    with pytest.raises(MeasurementError, match="not an SPC file"):
        read(q, modality="solutions")


def test_domain_refusals(tmp_path):
    raman = load_recipe(RAMAN)
    uv = load_recipe("solutions-000-uvvis")
    lam = np.linspace(190, 1110, 900)
    m_uv = Measurement(lam, np.zeros_like(lam), "wavelength", "nm", "absorbance", "solutions",
                       {"measurement": "uvvis", "source": "uv.csv"})
    with pytest.raises(OutOfDomain, match="UV-vis spectrum .* cannot feed a Raman model"):
        prepare(m_uv, raman)
    assert prepare(m_uv, uv).x.shape == (1, 901)
    x = np.linspace(500, 4100, 3000)
    short = Measurement(x, 1 + _band(x, 1047, 5), "raman_shift", "cm-1", "", "solutions",
                        {"measurement": "raman", "source": "short.csv"})
    with pytest.raises(OutOfDomain, match="500-4100 cm-1 does not cover the model's axis 200-4000"):
        prepare(short, raman)
    # a sub-range model is fine with it
    sub = load_recipe("solutions-nitrate-sulfate-raman", overrides={"config.axis_max": 1450.0,
                                                                      "config.normalise": "max"})
    assert prepare(short, sub).x.shape[1] == sub.build().axis.shape[0]
    short.meta["laser_nm"] = 785.0
    with pytest.raises(OutOfDomain, match="excited at 785 nm .* 532 nm"):
        prepare(short, sub)
    wrong = Measurement(x, x, "x", "", "", None, {"source": "big.txt"})
    wrong.axis = np.linspace(100, 9000, 3000)
    with pytest.raises(OutOfDomain, match="unknown units is outside the Raman range"):
        prepare(wrong, raman)
    with pytest.raises(MeasurementError, match="a epr measurement cannot feed"):
        prepare(Measurement(x, x, "field", "mT", "", "epr", {"source": "e.DSC"}), raman)
