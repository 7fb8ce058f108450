"""read() options and refusals (slice, columns, units), the PDFgui header through both entry points, and
validate/predict fed with Measurements and reading options."""
from __future__ import annotations

import numpy as np
import pytest

import reader_fixtures as F
from train.measurements import Measurement, MeasurementError, read


def test_esp_2d_is_a_stack_not_one_long_spectrum(tmp_path):
    m = read(F.esp_2d(tmp_path, nx=512, ny=7))
    assert m.values.shape == (7, 512) and len(m.axis) == 512
    assert m.axis[0] == pytest.approx(300.0) and m.axis[-1] == pytest.approx(370.0)
    np.testing.assert_allclose(m.axis2, np.linspace(0, 180, 7))
    s = read(F.esp_2d(tmp_path, name="b"), slice=3)
    assert s.values.shape == (512,) and s.meta["axis2_value"] == pytest.approx(90.0)


def test_bes3t_2d_igd_axis_and_slice_errors(tmp_path):
    m = read(F.bes3t_2d(tmp_path, igd=True))
    np.testing.assert_allclose(m.axis2, [0, 10, 20, 30, 40])
    assert m.meta["temperature_K"] == 80.0 and m.meta["modulation_mT"] == pytest.approx(0.2)
    with pytest.raises(MeasurementError, match=r"slice 9: expected an integer 0\.\.4"):
        read(tmp_path / "st2.DSC", slice=9)
    with pytest.raises(MeasurementError, match="holds one spectrum"):
        read(F.magnettech_spe(tmp_path), slice=0)


def test_stack_refused_by_prepare_with_the_way_out(tmp_path):
    from simgen.simulator import Axis
    from train.prepare import TargetSpec, prepare
    m = read(F.esp_2d(tmp_path))
    spec = TargetSpec(Axis(("field",), (np.linspace(320, 350, 128),), ("mT",)), "epr")
    with pytest.raises(MeasurementError, match=r"7 spectra along angle.*--slice K"):
        prepare(m, spec)


def test_point_index_refusal_names_the_columns(tmp_path):
    p = tmp_path / "idx.txt"
    p.write_text("# pointInd energy mud_tr\n" + "".join(f"{i} {8900 + i} {0.1 * i}\n" for i in range(4096)))
    m = read(p)  # the axis is found by its name, not taken from column 1
    assert m.axis[0] == 8900.0 and m.units == "" and m.meta["axis_column"] == "energy"
    with pytest.raises(MeasurementError, match=r"column 1 looks like a point index 0\.\.4095; columns named "
                                               r"pointInd, energy, mud_tr"):
        read(p, modality="epr", units="G")  # no field column: the index is not taken as the field
    # without an axis name the index is refused by the plain reader
    q = tmp_path / "idx2.txt"
    q.write_text("# n a b\n" + "".join(f"{i} {8900 + i} {0.1 * i}\n" for i in range(100)))
    with pytest.raises(MeasurementError, match=r"point index 0\.\.99; columns named n, a, b"):
        read(q)


def test_spec_columns_by_name_and_override(tmp_path):
    m = read(F.spec_columns(tmp_path))
    assert m.meta["energy_column"] == "energy" and m.meta["mu_from"] == "mud_tr" and m.axis[0] == 8779.0
    o = read(tmp_path / "Cu-foil_scan.dat", columns=("energy", "ln(I0/Itr)"))
    np.testing.assert_allclose(o.values, m.values, atol=1e-3)
    with pytest.raises(MeasurementError, match="column 'nope'.*columns named pointInd, energy"):
        read(tmp_path / "Cu-foil_scan.dat", columns="energy,nope")
    with pytest.raises(MeasurementError, match="columns=.* applies to column text files"):
        read(F.magnettech_spe(tmp_path), columns="1,2")


def test_headerless_eels_needs_a_unit(tmp_path):
    p = F.eels_txt(tmp_path)
    m = read(p, modality="exelfs", units="eV")
    assert m.modality == "exelfs" and m.units == "eV" and m.axis_name == "energy_loss"
    k = read(p, modality="exelfs", units="keV")
    assert k.axis[0] == pytest.approx(400e3)
    with pytest.raises(MeasurementError, match="--units eV"):
        read(p, modality="exelfs")


def test_csv_header_units_convert_and_say_modality(tmp_path):
    m = read(F.epr_csv(tmp_path))
    assert m.modality == "epr" and m.units == "mT" and m.axis[0] == pytest.approx(330.0)
    assert m.meta["mw_frequency_GHz"] == pytest.approx(9.5)


def test_magnettech_spe_layout(tmp_path):
    m = read(F.magnettech_spe(tmp_path, n=2048, centre_G=3360.0, sweep_G=100.0))
    assert len(m.axis) == 2048 and m.axis[0] == pytest.approx(331.0) and m.axis[-1] == pytest.approx(341.0)
    assert m.meta["mw_frequency_GHz"] == pytest.approx(9.4321) and m.meta["temperature_K"] == pytest.approx(294.15)
    (tmp_path / "short.spe").write_bytes(b"\x00" * 1000)
    with pytest.raises(MeasurementError, match=r"short\.spe: 1000 bytes"):
        read(tmp_path / "short.spe")


def test_magnettech_xml_field_interpolated_in_time(tmp_path):
    m = read(F.magnettech_xml(tmp_path))
    # the line was written at 337.0 mT on the interpolated field: its zero crossing must sit there
    i = np.argmin(np.abs(m.axis - 337.0))
    assert abs(m.values[i]) < 0.05 and m.meta["temperature_K"] == pytest.approx(298.15)


def test_athena_groups(tmp_path):
    st = read(F.athena_prj(tmp_path, groups=3))
    assert st.values.shape[0] == 3 and st.meta["element"] == "Cu"
    with pytest.raises(MeasurementError, match="different energy grids.*--slice K"):
        read(F.athena_prj(tmp_path, same_grid=False, name="d"))
    one = read(tmp_path / "d.prj", slice=1)
    assert one.axis[0] == 8780.0 and one.meta["slice"] == 1


def test_pdfgui_bank_table_same_answer_both_entry_points(tmp_path):
    from simgen.pdf.refine import read_gr
    p, r, g = F.pdfgui_gr(tmp_path)
    m = read(p)
    rr, gg = read_gr(p)
    np.testing.assert_array_equal(m.axis, rr)
    np.testing.assert_array_equal(m.values, gg)
    np.testing.assert_allclose(rr, r)  # no bank-table number taken as a data point
    np.testing.assert_allclose(gg, g, atol=1e-6)
    assert m.meta["radiation"] == "neutron" and m.meta["qmax"] == 27.0 and m.meta["qdamp"] == 0.03


def test_pdf_rows_with_sporadic_error_columns(tmp_path):
    p = tmp_path / "s.gr"
    rows = [f"{0.01 * i:.2f} {np.sin(i / 10):.5f}" + (" 0.0 0.0" if i % 17 == 0 else "") for i in range(1, 300)]
    p.write_text("#L r G(r)\n" + "\n".join(rows) + "\n")
    m = read(p)
    assert len(m.axis) == 299 and "ragged_rows" in m.meta
    p.write_text("#L r G(r)\n" + "\n".join(rows) + "\n3.00\n")
    with pytest.raises(MeasurementError, match="truncated"):
        read(p)


def test_xafs_edge_from_measured_energy(tmp_path):
    e = np.arange(7000.0, 8000.0, 1.0)
    mu = F.xafs_mu(e, e0=7112.0)
    p = tmp_path / "unknown.xmu"
    np.savetxt(p, np.c_[e, mu], header="energy mu")
    m = read(p)
    assert (m.meta["element"], m.meta["edge"], m.meta["edge_from"]) == ("Fe", "K", "measured edge energy")
