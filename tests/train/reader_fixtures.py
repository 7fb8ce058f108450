"""Writers of small measured files in formats no real file of ../shared/data or the download cache covers (or covers
only in one variant), laid out byte for byte as the format descriptions say (BES3T 1.2; Bruker ESP .par/.spc; the
Magnettech MS400 binary layout as read by EasySpin's eprload; Magnettech MS5000 XML as written by ESRStudio;
Athena's gzipped Perl-dumper project; DESY .fio; PDFgui/PDFgetN headers with a bank table; EELS database style
headerless two-column text)."""
from __future__ import annotations

import base64
import gzip
from pathlib import Path

import numpy as np


def deriv_line(x, x0, w):
    """A first-derivative Lorentzian-like line (EPR shape) of unit height."""
    u = (x - x0) / w
    y = -u / (1 + u * u) ** 2
    return y / np.abs(y).max()


def bes3t_2d(d: Path, nx=256, ny=5, igd=False, name="st2") -> Path:
    x = np.linspace(3300, 3400, nx)
    data = np.stack([deriv_line(x, 3350 + 2 * j, 3.0) * (j + 1) for j in range(ny)])
    ytyp = "IGD" if igd else "IDX"
    (d / f"{name}.DSC").write_text(
        "#DESC 1.2\nBSEQ BIG\nIKKF REAL\nXTYP IDX\nYTYP " + ytyp + "\nZTYP NODATA\nIRFMT D\nYFMT D\n"
        f"XPTS {nx}\nXMIN 3300.0\nXWID 100.0\nYPTS {ny}\nYMIN 0.0\nYWID {10.0 * (ny - 1)}\nXNAM 'Field'\n"
        "YNAM 'Angle'\nXUNI 'G'\nYUNI 'deg'\nMWFQ 9.6e9\nB0MA 0.0002\n#DSL 1.0\n.DVC tempCtrl, 1.0\n"
        "Temperature 80.00 K\n")
    (d / f"{name}.DTA").write_bytes(data.astype(">f8").tobytes())
    if igd:
        (d / f"{name}.YGF").write_bytes((np.arange(ny) * 10.0).astype(">f8").tobytes())
    return d / f"{name}.DSC"


def esp_2d(d: Path, nx=512, ny=7, name="rot") -> Path:
    x = np.linspace(3000, 3700, nx)
    data = np.stack([deriv_line(x, 3350 + 10 * np.cos(np.radians(30 * j)), 5.0) * 1000 for j in range(ny)])
    (d / f"{name}.par").write_bytes((f"DOS  Format\r\nANZ {nx * ny}\r\nSSX {nx}\r\nSSY {ny}\r\nXXLB 3000.0\r\n"
                                     "XXWI 700.0\r\nXYLB 0.0\r\nXYWI 180.0\r\nXXUN G\r\nXYUN deg\r\nJEX field-sweep\r\n"
                                     f"JEY angle-sweep\r\nRES {nx}\r\nREY {ny}\r\nHCF 3350.0\r\nHSW 700.0\r\n"
                                     "RMA 1.0\r\nMF  9.399263\r\n").encode("latin-1"))
    (d / f"{name}.spc").write_bytes(data.astype("<f4").tobytes())
    return d / f"{name}.par"


def _fbs(v: float, div: float = 100.0):
    i = int(np.trunc(v))
    return [i, int(round((v - i) * div))]


def magnettech_spe(d: Path, n=1024, centre_G=3360.0, sweep_G=100.0, nu_kHz=9_432_100, temp_C=21,
                   name="ms400") -> Path:
    x = centre_G + np.linspace(-0.5, 0.5, n) * sweep_G
    y = np.round(deriv_line(x, centre_G + 5, 4.0) * 12000).astype("<i2")
    pairs = [_fbs(centre_G), _fbs(sweep_G), _fbs(2000.0), _fbs(10.0), _fbs(30.0), _fbs(5.0), _fbs(2.0),
             _fbs(1.0), [0, 0], _fbs(0.1), [0, 0], [0, 0], _fbs(float(n))]
    trailer = np.array(pairs, dtype="<i2").tobytes()
    trailer += np.array([temp_C], dtype="<i4").tobytes() + np.zeros(2, "<i2").tobytes()
    flags = 1 | 4  # frequency and temperature present, old (/100) fraction format
    trailer += bytes([flags, (nu_kHz >> 16) & 255, (nu_kHz >> 8) & 255, nu_kHz & 255])
    assert len(trailer) == 64
    p = d / f"{name}.spe"
    p.write_bytes(y.tobytes() + trailer)
    return p


def _b64(values) -> str:
    return "".join(base64.b64encode(np.float64(v).tobytes()).decode() for v in values)


def magnettech_xml(d: Path, name="ms5000") -> Path:
    tb = np.arange(200) * 0.1          # field read every 0.1 s
    b = 335.0 + tb * 0.25              # 335 -> 339.975 mT
    ts = 0.05 + np.arange(1800) * 0.01  # signal every 0.01 s
    sig = deriv_line(np.interp(ts, tb, b), 337.0, 0.3)
    xml = ('\ufeff<?xml version="1.0" encoding="utf-8"?>\n<ESRXmlFile Version="1">\n <Data>\n'
           '  <Measurement Name="synthetic" MwFreq="9.45" GonAngle="0" Temperature="25.0">\n'
           '   <Recipe Name="r"><Parameters><Param Name="Modulation" Unit="mT">0.02</Param>'
           '<Param Name="MicrowavePower" Unit="mW">1</Param></Parameters></Recipe>\n   <DataCurves>\n'
           f'    <Curve Name="BField" YType="BField" XUnit="s" YUnit="mT" XOffset="0" XSlope="0.1">{_b64(b)}</Curve>\n'
           '    <Curve Name="MWAbsorption (1st harm.)" YType="MW_Absorption" XUnit="s" YUnit="" XOffset="0.05" '
           f'XSlope="0.01">{_b64(sig)}</Curve>\n   </DataCurves>\n  </Measurement>\n </Data>\n</ESRXmlFile>\n')
    p = d / f"{name}.xml"
    p.write_text(xml, encoding="utf-8")
    return p


def xafs_mu(e, e0=8979.0):
    """A mu(E) with an edge step at e0 and EXAFS-like wiggles (smooth, positive)."""
    step = 0.5 + 0.5 * np.tanh((e - e0) / 2.0)
    k = np.sqrt(np.clip(e - e0, 0, None) * 0.2625)
    return 0.2 - 1e-5 * (e - e0) + step * (1.0 + 0.05 * np.sin(2 * 2.55 * k) * np.exp(-0.01 * k * k))


def athena_prj(d: Path, groups=2, same_grid=True, name="proj") -> Path:
    lines = ["# Athena project file -- Demeter version 0.9.26", "# This file created at 2024-01-01",
             "# Using Demeter 0.9.26 with perl 5.032001 and using Larch X on linux", "", "@journal = ();", ""]
    for g in range(groups):
        e = np.arange(8779.0, 9800.0, 2.0) if same_grid or g == 0 else np.arange(8780.0, 9801.0, 2.5)
        mu = xafs_mu(e) * (1 + 0.1 * g)
        lines.append(f"$old_group = 'grp{g}';")
        lines.append(f"@args = ('label','Cu foil {g}','datatype','xmu','bkg_e0','8979','bkg_z','Cu','fft_edge','K',"
                     "'is_xmu','1');")
        lines.append("@x = (" + ",".join(f"'{v:.3f}'" for v in e) + ");")
        lines.append("@y = (" + ",".join(f"'{v:.6f}'" for v in mu) + ");")
        lines.append("@i0 = ();")
        lines.append("@signal = ();")
        lines.append("@stddev = ();")
        lines.append("[record] # create object and set arrays in ifeffit")
        lines.append("")
    lines += ["", "1;", "", "# Local Variables:", "# truncate-lines: t", "# End:", ""]
    p = d / f"{name}.prj"
    p.write_bytes(gzip.compress("\n".join(lines).encode()))
    return p


def fio(d: Path, name="scan") -> Path:
    e = np.arange(8800.0, 9800.0, 2.0)
    mu = xafs_mu(e)
    i0 = 6e5 * np.ones_like(e)
    it = i0 * np.exp(-mu)
    rows = "\n".join(f" {a:14.3f} {b:14.1f} {c:14.1f} {t:10.2f}" for a, b, c, t in zip(e, i0, it, np.full(len(e), 0.2)))
    txt = ("!\n! Comments\n%c\n EXAFS scan of a Cu foil\n!\n! Parameter\n%p\n ENERGY_EDGE = 8979.0\n SAMPLE = Cu foil\n"
           "!\n! Data\n%d\n Col 1 ENERGY  DOUBLE\n Col 2 I0  DOUBLE\n Col 3 IT  DOUBLE\n Col 4 SAMPLE_TIME  DOUBLE\n"
           + rows + "\n")
    p = d / f"{name}.fio"
    p.write_text(txt)
    return p


def spec_columns(d: Path, name="Cu-foil_scan") -> Path:
    """A parseq-style foil file: point index first, columns named on a '#L' line."""
    e = np.linspace(8779.0, 10099.0, 600)
    mu = xafs_mu(e)
    rows = "\n".join(f"{i} {a:.4f} {m:.6f} {6e-7:.4e} {6e-7 * np.exp(-m):.4e}" for i, (a, m) in enumerate(zip(e, mu)))
    p = d / f"{name}.dat"
    p.write_text("#S 1 ascan energy 8779 10099 599\n#L pointInd energy mud_tr I0 Itr\n" + rows + "\n")
    return p


def eels_txt(d: Path, name="eels_db") -> Path:
    """EELS-database style: two headerless columns, energy loss (eV) and counts."""
    e = np.arange(400.0, 800.0, 0.5)
    y = 1e9 * e ** -3.0 * (1 + 0.6 * (e > 456) * np.exp(-(e - 456) / 80)) + 50
    p = d / f"{name}.txt"
    p.write_text("\n".join(f"{a:.2f}\t{b:.3f}" for a, b in zip(e, y)) + "\n")
    return p


def epr_csv(d: Path, name="export") -> Path:
    x = np.linspace(3300.0, 3400.0, 400)
    y = deriv_line(x, 3350.0, 3.0)
    p = d / f"{name}.csv"
    p.write_text("# EPR Data Export\n# Microwave_Frequency:,9500000000.0 Hz\n# ---\nField (G),Intensity (a.u.)\n"
                 + "\n".join(f"{a},{b}" for a, b in zip(x, y)) + "\n")
    return p


def pdfgui_gr(d: Path, name="pdfgui") -> tuple[Path, np.ndarray, np.ndarray]:
    """A .gr with a PDFgetN-style bank table (numbers) and PDFgui fit header before '##### start data'."""
    r = np.round(np.arange(0.01, 30.0, 0.01), 2)
    g = np.sin(2 * np.pi * r / 2.49) * np.exp(-r / 20)
    head = ("# History written: Tue May  6 11:04:33 2008\n# ##### Run Information\n# temp=300\n"
            "# ##### Banks=4  deltaQ=0.01\n# bank   angle   blendQmin   blendQmax\n"
            "#   1     46.6        0.87    21.63\n#   2     90.0        1.51    37.66\n"
            "  3    119.0        1.84    45.96\n  4    148.0        2.05    51.25\n  5    150.0        2.10    52.00\n"
            "  6    152.0        2.15    53.00\n  7    154.0        2.20    54.00\n"
            "##### PDFgui fit\nstype=N  neutron scattering\nqmax=27.00\nqdamp=0.0300\ncomposition = Ni\n"
            "##### start data\n#L r(A) G(r) d_r d_Gr\n")
    p = d / f"{name}.gr"
    p.write_text(head + "\n".join(f"{a:.2f} {b:.6f} 0.0 0.01" for a, b in zip(r, g)) + "\n")
    return p, r, g


def micrograph_tif(d: Path, name="voids") -> Path:
    import tifffile
    rng = np.random.default_rng(0)
    img = (1000 + 50 * rng.standard_normal((256, 256))).astype(np.float32)
    p = d / f"{name}.tif"
    tifffile.imwrite(p, img, imagej=True, resolution=(1 / 0.8, 1 / 0.8), metadata={"unit": "nm"})
    return p
