"""EPR adapter: CW EPR files (Bruker BES3T .DSC/.DTA and ESP/WinEPR .par/.spc, 1-D or 2-D; Magnettech MS5000 XML
and older binary .spe; Adani benchtop JSON; columns of field and intensity), their preparation onto a model's field axis, and the derived g_iso / A_iso / a_iso.

Field axes are returned in mT, the microwave frequency in GHz (``meta['mw_frequency_GHz']``) and the peak-to-peak
modulation amplitude in mT (``meta['modulation_mT']``).  Format facts (key names, byte orders, axis construction)
follow the Bruker BES3T 1.2 specification and the behaviour of EasySpin's ``eprload`` on its own test files.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from scipy.constants import physical_constants

from simgen.epr.kernels import end_baseline

from ..measurements import Measurement, MeasurementError
from ..prepare import Prepared, TargetSpec, check_units, prior_support, rebin, refuse, span
from . import Adapter, OutOfDomain, add_warning, refuse_stack

__all__ = ["read_bes3t", "read_esp", "read_adani_json", "read_magnettech_xml", "read_magnettech_spe", "EPRAdapter",
           "MUB_MHZ_PER_MT"]

#: mu_B / h in MHz/mT (CODATA, through scipy.constants)
MUB_MHZ_PER_MT = physical_constants["Bohr magneton in Hz/T"][0] * 1e-9

_FIELD_UNITS = {"G": 0.1, "mT": 1.0, "T": 1000.0, "kG": 100.0}


def _partner(path: Path, exts: tuple[str, ...]) -> Path:
    """The companion file with one of ``exts`` (any case) beside ``path``."""
    for p in path.parent.glob(path.stem + ".*"):
        if p.suffix.lower() in exts:
            return p
    raise MeasurementError(path, f"companion file {path.stem}{exts[0].upper()} (or {exts[0]}) not found beside it")


# ------------------------------------------------------------------------------------------------ BES3T
def _parse_dsc(path: Path) -> dict:
    out: dict = {}
    text = path.read_text(errors="replace")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "*#.":
            continue
        parts = line.split(None, 1)
        key = parts[0]
        val = parts[1].strip() if len(parts) > 1 else ""
        if key not in out:
            out[key] = val.strip("'")
    return out


def _num(hdr: dict, key: str, path: Path, default=None, cast=float):
    if key not in hdr:
        if default is not None:
            return default
        raise MeasurementError(path, f"descriptor key '{key}' missing")
    raw = hdr[key].split()[0] if hdr[key].split() else ""
    try:
        return cast(float(raw)) if cast is int else cast(raw)
    except ValueError:
        raise MeasurementError(path, f"descriptor key '{key}': got {hdr[key]!r}; expected a number") from None


def _value_unit(text: str | None):
    """(value, unit) of a device-layer entry such as '300.00 K' or '0.400 G'; None when not a number."""
    if not text:
        return None
    m = re.match(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(\S*)", text)
    return (float(m.group(1)), m.group(2)) if m else None


def _temperature_K(value: float, unit: str) -> float | None:
    u = unit.strip().lower().replace("°", "")
    if u in ("k", ""):
        return value
    if u in ("c", "degc", "celsius"):
        return value + 273.15
    return None


_BES3T_TYPES = {"D": "f8", "F": "f4", "I": "i4", "S": "i2", "C": "i1"}


def _bes3t_axis(hdr: dict, dsc: Path, dta: Path, ax: str, n: int, order: str) -> np.ndarray:
    """Coordinates of axis ``ax`` ('X', 'Y'): linear (IDX: MIN + WID*i/(n-1)) or from the .XGF/.YGF file (IGD)."""
    typ = hdr.get(f"{ax}TYP", "IDX")
    if typ == "IDX":
        lo = _num(hdr, f"{ax}MIN", dsc)
        wid = _num(hdr, f"{ax}WID", dsc)
        return lo + wid * np.arange(n) / max(n - 1, 1)
    if typ == "IGD":
        fmt = hdr.get(f"{ax}FMT", "D").strip()
        if fmt not in _BES3T_TYPES:
            raise MeasurementError(dsc, f"{ax}FMT {fmt!r}: expected one of {', '.join(_BES3T_TYPES)}")
        gf = _partner(dta, (f".{ax.lower()}gf",))
        dt = np.dtype(order + _BES3T_TYPES[fmt])
        size = gf.stat().st_size
        if size != n * dt.itemsize:
            raise MeasurementError(gf, f"holds {size} bytes but the descriptor declares {ax}PTS = {n} values of "
                                   f"{dt.itemsize} bytes: truncated or mismatched")
        return np.fromfile(gf, dtype=dt).astype(np.float64)
    raise MeasurementError(dsc, f"{ax}TYP {typ!r}: expected IDX (linear) or IGD (.{ax}GF file)")


def read_bes3t(path) -> Measurement:
    """Bruker BES3T (Xepr): the .DSC descriptor and .DTA data, 1-D or 2-D.

    Keys used (BES3T 1.2): XPTS/YPTS, XTYP/YTYP (IDX linear from MIN/WID, IGD from the .XGF/.YGF companion
    file), XUNI/YUNI, XNAM/YNAM, IRFMT, BSEQ, IKKF (REAL, or CPLX: the real part is returned and the imaginary
    part kept as ``meta['quadrature']``), MWFQ (Hz), B0MA (T), RCHM, and the device layer's Temperature.  The
    field axis is returned in mT.  A 2-D file (YPTS > 1) becomes a stack: ``axis`` the field, ``axis2`` the
    second dimension (power, angle, delay, time...; when the field is on Y and X is time, the two are swapped
    so the field stays the spectrum's axis).  3-D files (ZPTS > 1) are refused.
    """
    path = Path(path)
    dsc = path if path.suffix.lower() == ".dsc" else _partner(path, (".dsc",))
    dta = path if path.suffix.lower() == ".dta" else _partner(path, (".dta",))
    hdr = _parse_dsc(dsc)
    if "XPTS" not in hdr and "#DESC" not in dsc.read_text(errors="replace")[:200]:
        raise MeasurementError(dsc, "not a BES3T descriptor (no #DESC header, no XPTS key)")
    n = _num(hdr, "XPTS", dsc, cast=int)
    ny = _num(hdr, "YPTS", dsc, default=1, cast=int) if hdr.get("YTYP", "NODATA") != "NODATA" else 1
    nz = _num(hdr, "ZPTS", dsc, default=1, cast=int) if hdr.get("ZTYP", "NODATA") != "NODATA" else 1
    if nz != 1:
        raise MeasurementError(dsc, f"3-D dataset (ZPTS = {nz}); only 1-D spectra and 2-D stacks are supported")
    fmt = hdr.get("IRFMT", "D").split(",")[0].strip()
    dt = _BES3T_TYPES.get(fmt)
    if dt is None:
        raise MeasurementError(dsc, f"IRFMT {fmt!r}: expected one of D, F, I, S, C")
    order = {"BIG": ">", "LIT": "<"}.get(hdr.get("BSEQ", "BIG"))
    if order is None:
        raise MeasurementError(dsc, f"BSEQ {hdr.get('BSEQ')!r}: expected BIG or LIT")
    cplx = hdr.get("IKKF", "REAL").split(",")[0].strip() == "CPLX"
    dtype = np.dtype(order + dt)
    need = n * ny * dtype.itemsize * (2 if cplx else 1)
    size = dta.stat().st_size
    if size != need:
        dims = f"XPTS = {n}" + (f" x YPTS = {ny}" if ny > 1 else "")
        raise MeasurementError(dta, f"holds {size} bytes but the descriptor declares {dims} "
                               f"{'complex ' if cplx else ''}values of {dtype.itemsize} bytes ({need} bytes): "
                               "truncated or mismatched")
    raw = np.fromfile(dta, dtype=dtype).astype(np.float64)
    y = raw[0::2] if cplx else raw
    quad = raw[1::2] if cplx else None
    xu, yu = hdr.get("XUNI", "G").strip("'"), hdr.get("YUNI", "").strip("'")
    xs = _bes3t_axis(hdr, dsc, dta, "X", n, order)
    meta: dict = {"format": "BES3T", "title": hdr.get("TITL", ""), "n_points": n}
    if ny > 1:
        ys = _bes3t_axis(hdr, dsc, dta, "Y", ny, order)
        y = y.reshape(ny, n)
        quad = quad.reshape(ny, n) if quad is not None else None
        xname, yname = hdr.get("XNAM", "X").strip("'"), hdr.get("YNAM", "Y").strip("'")
        if xu not in _FIELD_UNITS and yu in _FIELD_UNITS:  # field on Y (e.g. a time trace per field): swap
            xs, ys, xu, yu, xname, yname = ys, xs, yu, xu, yname, xname
            y = y.T.copy()
            quad = quad.T.copy() if quad is not None else None
        if xu not in _FIELD_UNITS:
            raise MeasurementError(dsc, f"2-D dataset of {xname} ({xu}) x {yname} ({yu}): neither axis is a "
                                   f"magnetic field ({', '.join(_FIELD_UNITS)}); only field-swept spectra are read")
        meta.update(n_points=len(xs), n_slices=len(ys), axis2_name=yname)
    else:
        ys = None
        yname = ""
        if xu not in _FIELD_UNITS:
            raise MeasurementError(dsc, f"XUNI {xu!r} ({hdr.get('XNAM', 'X')}): expected a field unit "
                                   f"({', '.join(_FIELD_UNITS)}); only field-swept spectra are read")
    if hdr.get("XTYP", "IDX") not in ("IDX", "IGD"):
        raise MeasurementError(dsc, f"XTYP {hdr.get('XTYP')!r}: expected IDX or IGD")
    x = xs * _FIELD_UNITS[xu]
    if np.any(np.diff(x) <= 0):  # a downward sweep or an IGD axis stored high to low
        order_ = np.argsort(x, kind="stable")
        x = x[order_]
        y = y[..., order_]
        quad = quad[..., order_] if quad is not None else None
    if "MWFQ" in hdr:
        meta["mw_frequency_GHz"] = _num(hdr, "MWFQ", dsc) / 1e9
    if "B0MA" in hdr:
        meta["modulation_mT"] = _num(hdr, "B0MA", dsc) * 1e3  # stored in T
    if "RCHM" in hdr:
        meta["harmonic"] = _num(hdr, "RCHM", dsc, cast=int)
    if "MWPW" in hdr:
        meta["mw_power_mW"] = _num(hdr, "MWPW", dsc) * 1e3  # stored in W
    for key in ("Temperature", "Temp", "STMP"):
        vu = _value_unit(hdr.get(key))
        if vu is not None and _temperature_K(*vu) is not None:
            meta["temperature_K"] = _temperature_K(*vu)
            break
    if quad is not None:
        meta["quadrature"] = quad
    m = Measurement(x, y, "field", "mT", "arb. units", "epr", meta)
    if ys is not None:
        m.axis2, m.axis2_name, m.axis2_units = ys, yname, yu
    return m


# ------------------------------------------------------------------------------------------------ ESP / WinEPR
def _parse_par(path: Path) -> dict:
    text = path.read_bytes().decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
    out = {}
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        m = re.match(r"^(\S+)\s*(.*)$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2).strip()
    return out


def read_esp(path) -> Measurement:
    """Bruker ESP (.par/.spc).  'DOS Format' files (WinEPR) hold little-endian float32, others big-endian int32.

    1-D: field axis GST + GSI * i/(n-1) when GST/GSI are present, else HCF +- HSW/2 (JUN: G -> mT), n = ANZ or
    RES.  2-D (SSY > 1, e.g. an angle rotation 'JEY angle-sweep'): SSX points per spectrum, SSY spectra; x axis
    XXLB + XXWI * i/(SSX-1) in XXUN, second axis XYLB + XYWI * j/(SSY-1) in XYUN; returned as a stack.
    Metadata: MF (GHz), RMA (modulation, in the field unit), TE (temperature, K).
    """
    path = Path(path)
    par = path if path.suffix.lower() == ".par" else _partner(path, (".par",))
    spc = path if path.suffix.lower() == ".spc" else _partner(path, (".spc",))
    hdr = _parse_par(par)
    if not hdr or not any(k in hdr for k in ("ANZ", "RES", "GST", "HCF", "MF")):
        raise MeasurementError(par, "not an ESP/WinEPR parameter file (none of ANZ, RES, GST, HCF, MF found)")
    dos = "DOS" in hdr
    dtype = np.dtype("<f4") if dos else np.dtype(">i4")
    size = spc.stat().st_size
    ny = _num(hdr, "SSY", par, cast=int) if "SSY" in hdr else 1
    if ny > 1:
        n = _num(hdr, "SSX", par, cast=int) if "SSX" in hdr else None
        if n is None:
            raise MeasurementError(par, f"2-D file (SSY = {ny}) without SSX (points per spectrum)")
    else:
        n = None
        for key in ("ANZ", "RES", "SSX"):
            if key in hdr:
                n = _num(hdr, key, par, cast=int)
                break
        if n is None:
            n = size // dtype.itemsize
    need = n * ny * dtype.itemsize
    if need != size:
        dims = f"{n} points" if ny == 1 else f"SSX = {n} x SSY = {ny} points"
        raise MeasurementError(spc, f"holds {size} bytes but the parameter file declares {dims} of "
                               f"{dtype.itemsize} bytes ({need} bytes): truncated or mismatched")
    y = np.fromfile(spc, dtype=dtype).astype(np.float64)
    if ny > 1:
        unit = (hdr.get("XXUN") or hdr.get("JUN") or "G").strip()
    else:
        unit = hdr.get("JUN", "G").strip() or "G"
    if unit not in _FIELD_UNITS:
        raise MeasurementError(par, f"field unit {unit!r}: expected one of {', '.join(_FIELD_UNITS)}")
    if ny > 1 and "XXLB" in hdr and "XXWI" in hdr:
        x0, w = _num(hdr, "XXLB", par), _num(hdr, "XXWI", par)
    elif "GST" in hdr and "GSI" in hdr:
        x0, w = _num(hdr, "GST", par), _num(hdr, "GSI", par)
    elif "HCF" in hdr and "HSW" in hdr:
        c, w = _num(hdr, "HCF", par), _num(hdr, "HSW", par)
        x0 = c - w / 2
    else:
        raise MeasurementError(par, "no field axis: expected GST and GSI, HCF and HSW, or XXLB and XXWI")
    x = (x0 + w * np.arange(n) / max(n - 1, 1)) * _FIELD_UNITS[unit]
    meta: dict = {"format": "ESP" + (" (DOS)" if dos else ""), "title": hdr.get("JCO", ""), "n_points": n}
    if "MF" in hdr:
        meta["mw_frequency_GHz"] = _num(hdr, "MF", par)
    if "RMA" in hdr:
        meta["modulation_mT"] = _num(hdr, "RMA", par) * _FIELD_UNITS[unit]
    if "TE" in hdr:
        meta["temperature_K"] = _num(hdr, "TE", par)
    m = Measurement(x, y if ny == 1 else y.reshape(ny, n), "field", "mT", "arb. units", "epr", meta)
    if ny > 1:
        y0, yw = _num(hdr, "XYLB", par, default=0.0), _num(hdr, "XYWI", par, default=float(ny - 1))
        m.axis2 = y0 + yw * np.arange(ny) / max(ny - 1, 1)
        label = hdr.get("JEY", "").replace("-sweep", "").strip() or "y"
        m.axis2_name, m.axis2_units = label, hdr.get("XYUN", "").strip()
        meta.update(n_slices=ny, axis2_name=label)
    return m


# ------------------------------------------------------------------------------------------------ Magnettech
def _b64_doubles(text: str, where: Path, curve: str) -> np.ndarray:
    """A Magnettech XML curve: each value is one little-endian float64 base64-encoded on its own (12 characters
    ending in '='), the encodings written one after the other."""
    s = "".join((text or "").split())
    if not s or len(s) % 12:
        raise MeasurementError(where, f"curve {curve!r}: {len(s)} base64 characters, expected a multiple of 12 "
                               "(one 8-byte value per 12 characters): truncated or corrupted")
    import base64
    import binascii
    try:
        raw = b"".join(base64.b64decode(s[i:i + 12], validate=True) for i in range(0, len(s), 12))
    except (binascii.Error, ValueError) as exc:
        raise MeasurementError(where, f"curve {curve!r}: not base64 ({exc})") from None
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


def read_magnettech_xml(path) -> Measurement:
    """Magnettech MS5000 (ESRStudio) XML: ``Measurement`` attributes (MwFreq GHz, Temperature in deg C,
    GonAngle), recipe ``Param`` entries (Bfrom/Bto, Modulation in mT, MicrowavePower) and base64 curves.

    The field is recorded as its own curve against time (``YType="BField"``, time = XOffset + XSlope * i); the
    signal (``YType="MW_Absorption"``) on another time grid; the field at each signal point is interpolated in
    time.  Points outside the recorded field's time span are dropped.
    """
    import xml.etree.ElementTree as ET
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise MeasurementError(path, f"not well-formed XML ({exc}): truncated or not a Magnettech file") from None
    meas = root.find(".//Measurement")
    curves = root.findall(".//DataCurves/Curve")
    if root.tag != "ESRXmlFile" or meas is None or not curves:
        raise MeasurementError(path, f"XML root <{root.tag}> without Measurement/DataCurves: not a Magnettech "
                               "ESRXmlFile")
    by_type = {c.get("YType"): c for c in curves}
    if "BField" not in by_type or "MW_Absorption" not in by_type:
        raise MeasurementError(path, f"curves {', '.join(map(str, by_type))}: expected a BField and an "
                               "MW_Absorption curve")
    bc, sc = by_type["BField"], by_type["MW_Absorption"]
    b = _b64_doubles(bc.text, path, "BField")
    sig = _b64_doubles(sc.text, path, sc.get("Name", "MW_Absorption"))
    if bc.get("YUnit", "mT") not in _FIELD_UNITS:
        raise MeasurementError(path, f"BField curve in {bc.get('YUnit')!r}: expected a field unit")
    try:
        tb = float(bc.get("XOffset", 0)) + float(bc.get("XSlope")) * np.arange(len(b))
        ts = float(sc.get("XOffset", 0)) + float(sc.get("XSlope")) * np.arange(len(sig))
    except (TypeError, ValueError):
        raise MeasurementError(path, "curve XOffset/XSlope missing or not numbers: cannot place the field "
                               "against the signal") from None
    keep = (ts >= tb[0]) & (ts <= tb[-1])
    x = np.interp(ts[keep], tb, b) * _FIELD_UNITS[bc.get("YUnit", "mT")]
    y = sig[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if len(x) > 1 and np.any(np.diff(x) <= 0):  # repeated field readings: average points at one field
        ux, inv = np.unique(x, return_inverse=True)
        y = np.bincount(inv, weights=y) / np.bincount(inv)
        x = ux
    meta: dict = {"format": "Magnettech XML", "title": meas.get("Name", ""), "device": meas.get("Device", "")}
    params = {p.get("Name"): (p.text or "", p.get("Unit", "")) for p in root.iter("Param")}
    try:
        if meas.get("MwFreq"):
            meta["mw_frequency_GHz"] = float(meas.get("MwFreq"))
        if meas.get("Temperature"):
            meta["temperature_K"] = float(meas.get("Temperature")) + 273.15  # recorded in deg C
        if meas.get("GonAngle"):
            meta["angle_deg"] = float(meas.get("GonAngle"))
        if "Modulation" in params:
            v, u = params["Modulation"]
            meta["modulation_mT"] = float(v) * _FIELD_UNITS.get(u or "mT", 1.0)
        if "MicrowavePower" in params:
            meta["mw_power_mW"] = float(params["MicrowavePower"][0])
    except ValueError as exc:
        raise MeasurementError(path, f"a Measurement attribute or Param is not a number ({exc})") from None
    meta["harmonic"] = 1 if "1st" in sc.get("Name", "1st") else sc.get("Name")
    return Measurement(x, y, "field", "mT", "arb. units", "epr", meta)


def read_magnettech_spe(path) -> Measurement:
    """Magnettech binary .spe (MiniScope MS400 and earlier): n int16 little-endian points (n = 512, 1024, 2048
    or 4096) followed by a 64-byte trailer of parameters, each a pair of int16 (integer part, fraction / 100,
    or / 1000 when bit 1 of the flags byte is set): centre field (G), sweep (G), modulation (0.1 mG), MW
    attenuation (dB), scan time, gain mantissa and exponent, scan number, reserve, time constant, two reserves,
    number of samples; then int32 temperature (deg C, when flag bit 2), a reserve pair, the flags byte and the
    microwave frequency as 3 bytes in kHz (most significant first, when flag bit 0).  Layout as read by
    EasySpin's eprload.
    """
    path = Path(path)
    size = path.stat().st_size
    npts = [k for k in (512, 1024, 2048, 4096) if size == 2 * k + 64]
    if not npts:
        raise MeasurementError(path, f"{size} bytes: a Magnettech .spe file holds 2*n + 64 bytes with n = 512, 1024, "
                               "2048 or 4096 points: truncated or not a Magnettech file")
    n = npts[0]
    raw = path.read_bytes()
    y = np.frombuffer(raw[:2 * n], dtype="<i2").astype(np.float64)
    trailer = raw[2 * n:]
    flags = trailer[60]
    div = 100.0 if not flags & 2 else 1000.0
    pairs = np.frombuffer(trailer[:52], dtype="<i2").reshape(13, 2).astype(float)
    vals = pairs[:, 0] + pairs[:, 1] / div
    centre, sweep, mod = vals[0] / 10.0, vals[1] / 10.0, vals[2] / 10000.0  # G -> mT; modulation -> mT
    if not sweep > 0:
        raise MeasurementError(path, f"sweep width {sweep:g} mT in the trailer: not a Magnettech spectrum")
    x = centre + np.linspace(-0.5, 0.5, n) * sweep
    meta: dict = {"format": "Magnettech SPE", "modulation_mT": float(mod), "mw_attenuation_dB": float(vals[3]),
                  "n_points": n}
    if flags & 4:
        meta["temperature_K"] = float(np.frombuffer(trailer[52:56], dtype="<i4")[0]) + 273.15
    if flags & 1:
        b = trailer[61:64]
        meta["mw_frequency_GHz"] = (b[2] + 256 * b[1] + 65536 * b[0]) / 1e6
    return Measurement(x, y, "field", "mT", "arb. units", "epr", meta)


def epr_column_meta(header: dict) -> dict:
    """EPR settings from the ``key: value`` lines of a column file's header (frequency, modulation,
    temperature), when written with units or as plain numbers in GHz (a value above 1e6 is taken as Hz)."""
    meta: dict = {}
    for key, val in header.items():
        k = key.lower().replace(" ", "_")
        vu = _value_unit(val.lstrip(",;: "))
        if vu is None:
            continue
        v, u = vu
        if "frequency" in k and "mod" not in k and "mw_frequency_GHz" not in meta:
            meta["mw_frequency_GHz"] = v / 1e9 if v > 1e6 else (v / 1e3 if u.lower() == "mhz" else v)
        elif k.startswith("modulation") and "freq" not in k and "modulation_mT" not in meta:
            f = _FIELD_UNITS.get(u, None)
            if f is not None:
                meta["modulation_mT"] = v * f
        elif "temperature" in k and "temperature_K" not in meta:
            t = _temperature_K(v, u)
            if t is not None:
                meta["temperature_K"] = t
    return meta


# ------------------------------------------------------------------------------------------------ Adani JSON
def read_adani_json(path) -> Measurement:
    """Adani benchtop JSON: field = CenterMagneticField +- SweepWidth/2 (mT), frequency MwFrequencyKHz.

    Each point holds two detector channels ``Points = [in-phase, quadrature]``; the first carries the signal in
    EasySpin's test file (std 178 vs 35), so it is returned and the second is kept as ``meta['quadrature']``.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as exc:
        raise MeasurementError(path, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                               "truncated or not an Adani spectrum") from None
    try:
        opt = raw["ExperimentOptions"]["CommonOptions"]
        centre, width = float(opt["CenterMagneticField"]), float(opt["SweepWidth"])
        npts = int(opt["PointsCount"])
        curve = raw["Values"][0]
        pts = np.array([v["Points"] for v in curve["Values"]], dtype=np.float64)
    except (KeyError, IndexError, TypeError) as exc:
        raise MeasurementError(path, f"not an Adani EPR JSON: missing or malformed entry {exc}") from None
    if pts.ndim != 2 or pts.shape[1] < 1:
        raise MeasurementError(path, f"Values.Points: expected [channel1, channel2] per point, got shape {pts.shape}")
    if len(pts) != npts:
        raise MeasurementError(path, f"holds {len(pts)} points but PointsCount = {npts}: truncated or mismatched")
    x = np.linspace(centre - width / 2, centre + width / 2, npts)
    meta = {"format": "Adani JSON"}
    khz = raw.get("MwFrequencyKHz", curve.get("MwFrequencyKHz") if isinstance(curve, dict) else None)
    if khz is not None:
        meta["mw_frequency_GHz"] = float(khz) / 1e6
    if "ModulationAmplitude" in opt:
        meta["modulation_uT"] = float(opt["ModulationAmplitude"])  # unit not documented; kept raw
    for key in ("PhaseRadians", "NoiseLevel", "CavityTemperature"):
        if key in raw:
            meta[key] = raw[key]
    if pts.shape[1] > 1:
        meta["quadrature"] = pts[:, 1].copy()
    return Measurement(x, pts[:, 0], "field", "mT", "arb. units", "epr", meta)


# ------------------------------------------------------------------------------------------------ EPR
#: frequencies accepted, as a fraction of the model's: the field is rescaled by nu_model / nu_file, which keeps g but
#: scales field-independent splittings and widths in mT; beyond +-16 % (8.0-11.0 GHz for an X-band model at 9.5)
#: they leave the trained ranges, so the file is out of the model's domain
FREQ_BAND = (0.84, 1.16)
#: the coarsest field step (mT, after rescaling) a file may have: coarser sweeps cannot place a line to +-0.002 in g
MAX_FIELD_STEP_MT = 1.0


class FieldOutOfDomain(OutOfDomain, MeasurementError):
    """A spectrum outside the field, g or frequency range a model was trained on (an :class:`OutOfDomain` that is
    also a :class:`MeasurementError`, so callers of either see it)."""

    def __init__(self, path, why: str):
        self.path, self.why, self.what = str(path), why, f"out of domain: {why}"
        Exception.__init__(self, f"{path}: out of domain: {why}")


def smoothing_width(spec: TargetSpec) -> float:
    """Gaussian FWHM (mT) preparation convolves a measured spectrum with before sampling it on the model's axis:
    the smallest lower bound of the recipe's ``lw`` priors (top level and every class), when it is at least one
    axis step; 0 otherwise (then the spectrum is bin-averaged onto the axis).

    A Gaussian convolution adds in quadrature to a line's Gaussian width, so a measured line of any width becomes
    one the recipe could have drawn; a line narrower than the axis step on a wide sweep keeps its derivative shape
    and position instead of vanishing between two axis points."""
    r = spec.recipe
    if r is None:
        return 0.0
    lows = []
    sup = prior_support(spec, "lw")
    if sup is not None:
        lows.append(sup[0])
    label = getattr(r, "label", None)
    for ov in (getattr(label, "overrides", None) or {}).values():
        if "lw" in ov:
            lows.append(ov["lw"].support()[0])
    B = spec.axis.coords[0]
    step = float(B[1] - B[0]) if len(B) > 1 else 0.0
    s = min(lows) if lows else 0.0
    return float(s) if s >= step > 0 else 0.0


def gaussian_smooth(x: np.ndarray, y: np.ndarray, fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    """``y(x)`` on a uniform grid of step <= fwhm / 8 (linear interpolation) convolved with a unit-area Gaussian
    of FWHM ``fwhm`` (same units as x), zero beyond the ends; returns ``(grid, smoothed)``."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    h = min(float(np.median(np.diff(x))), fwhm / 8.0)
    n = int(np.floor((x[-1] - x[0]) / h)) + 1
    grid = x[0] + h * np.arange(n)
    yy = np.interp(grid, x, y)
    sig = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    half = int(np.ceil(4.0 * sig / h))
    t = h * np.arange(-half, half + 1)
    k = np.exp(-0.5 * (t / sig) ** 2)
    k /= k.sum()
    if len(yy) > 4 * len(k):
        from scipy.signal import fftconvolve
        out = fftconvolve(yy, k, mode="same")
    else:
        out = np.convolve(yy, k, mode="same")
    return grid, out


def line_pp_width(x: np.ndarray, y: np.ndarray, reach_mT: float = 2.0) -> float:
    """Peak-to-peak width (mT) of the strongest line of a derivative spectrum: the distance from its largest
    |y| to the opposite-sign extremum within ``reach_mT`` of it."""
    i = int(np.argmax(np.abs(y)))
    near = np.where(np.abs(x - x[i]) <= reach_mT)[0]
    j = near[int(np.argmin(y[near] * np.sign(y[i])))]
    return float(abs(x[j] - x[i]))


def prepare_epr(m: Measurement, spec: TargetSpec, mw_frequency_GHz=None, pad: bool = True) -> Prepared:
    """Put a CW EPR spectrum on the model's field axis (see :class:`EPRAdapter`)."""
    axis = spec.axis
    check_units(m, axis, "mT")
    B = axis.coords[0]
    nu = m.meta.get("mw_frequency_GHz")
    info: dict = {"steps": []}
    sup = prior_support(spec, "mw_freq")
    if mw_frequency_GHz is not None:
        nu_t = float(mw_frequency_GHz)
    else:
        if nu is None:
            nu_t = None
        elif sup is not None:
            nu_t = float(np.clip(nu, sup[0], sup[1]))
        else:
            nu_t = nu
    if nu is not None and sup is not None and mw_frequency_GHz is None:
        lo, hi = sup[0] * FREQ_BAND[0], sup[1] * FREQ_BAND[1]
        if not lo <= nu <= hi:
            raise FieldOutOfDomain(m.source, f"measured at {nu:.4g} GHz; the model reads {lo:.3g}-{hi:.3g} GHz "
                                   f"(its {sup[0]:g}-{sup[1]:g} GHz +-16 %: splittings and widths in mT would "
                                   "leave the trained ranges)")
    scale = 1.0
    if nu is not None and nu_t is not None and nu > 0:
        scale = nu_t / nu
    elif mw_frequency_GHz is not None:
        refuse(m, "no microwave frequency in the file: cannot rescale the field to "
                f"{mw_frequency_GHz} GHz")
    info.update(mw_frequency_measured_GHz=nu, mw_frequency_GHz=nu_t if nu_t is not None else nu, field_scale=scale)
    x = m.axis * scale
    y = m.values.astype(float).copy()
    if scale != 1.0:
        info["steps"].append(f"field x {scale:.6f} (nu {nu:.6f} -> {nu_t:.6f} GHz)")
    n = len(y)
    step = float(np.median(np.diff(x))) if n > 1 else np.inf
    if step > MAX_FIELD_STEP_MT:
        raise FieldOutOfDomain(m.source, f"field step {step:.3g} mT (sweep {x[-1] - x[0]:.4g} mT in {n} points): "
                               f"coarser than {MAX_FIELD_STEP_MT:g} mT, lines cannot be placed to 0.002 in g")
    # linear baseline through the medians of both end windows (5 %, at least 3 points), as the simulator's
    # crop_window does to a simulated sub-window
    peak = end_baseline(np.ascontiguousarray(x, dtype=np.float64), y)
    if not peak > 0:
        refuse(m, "flat spectrum (no signal above the baseline)")
    y /= peak
    info["steps"].append("linear baseline through the end 5 % removed; max |y| = 1")
    inside = (x >= B[0]) & (x <= B[-1])
    if not inside.any():
        raise FieldOutOfDomain(m.source, f"field {span(x)} mT (after rescaling x{scale:.5f}) does not overlap the "
                               f"model's axis {span(B)} mT")
    ipk = int(np.argmax(np.abs(y)))
    if not (B[0] <= x[ipk] <= B[-1]):
        nu_g = nu_t if nu_t is not None else 9.5
        g_at = lambda b: nu_g * 1e3 / (MUB_MHZ_PER_MT * b)
        raise FieldOutOfDomain(m.source, f"the strongest feature at {x[ipk]:.3f} mT (g {g_at(x[ipk]):.4g}) lies "
                               f"outside the model's axis {span(B)} mT (g {g_at(B[-1]):.4g}-{g_at(B[0]):.4g})")
    covers = x[0] <= B[0] + 1e-9 and x[-1] >= B[-1] - 1e-9
    if not covers:
        if not pad:
            refuse(m, f"field {span(x)} mT does not cover the model's axis {span(B)} mT (pad=False)")
        edge = max(np.mean(np.abs(y[:max(2, n // 50)])), np.mean(np.abs(y[-max(2, n // 50):])))
        if edge > 0.15:
            refuse(m, f"field {span(x)} mT is narrower than the model's axis {span(B)} mT and the signal does "
                    f"not return to the baseline at the window's edge (mean |y| {edge:.2f} of the maximum): "
                    "cannot pad")
        info["steps"].append(f"padded with the zero baseline outside {span(x)} mT")
    s = smoothing_width(spec)
    pp = line_pp_width(x, y)
    info["strongest_line_pp_mT"] = pp
    if pp <= 1.5 * step:
        add_warning(info, f"the strongest line's peak-to-peak width ({pp:.3g} mT) spans at most 1.5 field steps "
                          f"({step:.3g} mT): the file undersamples it, so its shape, g and splittings are unreliable; "
                          "record with a step of a third of the line width or less")
    if s > 0:
        grid, ys = gaussian_smooth(x, y, s)
        out = np.interp(B, grid, ys)
        info["smoothing_fwhm_mT"] = s
        info["steps"].append(f"convolved with a Gaussian of FWHM {s:g} mT (the recipe's narrowest lw) and "
                             "sampled on the axis")
    else:
        out = rebin(x, y, B)
    out[(B < x[0]) | (B > x[-1])] = 0.0
    mx = np.max(np.abs(out))
    if mx > 0 and s > 0:
        out /= mx
    info["coverage"] = float(np.mean((B >= x[0]) & (B <= x[-1])))
    info["sweep_mT"] = float(x[-1] - x[0])
    return Prepared(out[None].astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ adapter
class EPRAdapter(Adapter):
    """CW EPR (simulator ``epr``): derivative spectra on a field axis in mT.

    Preparation (any sweep width and point count): the field is rescaled by nu_model / nu_measured (B' = B nu'/nu
    keeps every g; a hyperfine splitting in mT scales by the same factor, so A predicted from the rescaled spectrum
    is divided by ``info['field_scale']``); nu_model is the measured frequency clipped into the recipe's
    ``mw_freq`` prior (no rescale when it lies inside).  A linear baseline through both ends is removed and the
    spectrum max-|y| normalised like the simulator.  When the recipe's narrowest Gaussian width ``lw`` is at
    least one axis step (:func:`smoothing_width`), the spectrum is convolved with a Gaussian of that FWHM on a
    fine grid and sampled on the axis (a narrow line on a wide sweep keeps its shape and position; the
    convolution only adds that width in quadrature, which the recipe's ``lw`` prior already spans), else it is
    bin-averaged.  Outside the measured window the axis is the zero baseline (refused when the signal has not
    returned to the baseline at the window's edge).  Out of domain (:class:`FieldOutOfDomain`, an
    :class:`~train.modalities.OutOfDomain` and a MeasurementError, with the reason): a frequency outside the
    recipe's ``mw_freq`` support +-16 % (:data:`FREQ_BAND`), a field step above :data:`MAX_FIELD_STEP_MT`, a
    field range that misses the axis, or a strongest feature outside it (its g is named).  A strongest line
    whose peak-to-peak width spans at most 1.5 field steps gets a warning (the file undersamples it).
    Options: ``mw_frequency_GHz``, ``pad``.

    Derived quantities: ``g_iso`` = mean of g_x, g_y, g_z (g_y = g_x when the run learns x and z only, the axial
    tie); ``g_perp`` = mean of g_x and g_y (axial centres); ``A_iso_MHz`` = mean of A_x, A_y, A_z divided by the
    preparation's field scale; ``a_iso_mT`` = A_iso / (g_iso mu_B/h).  :meth:`refine` then re-reads g (and A for
    nitroxides and Mn2+) from the spectrum itself; the network-only values stay in ``result['network']``.
    """

    name = "epr"
    axis_dims = ("field",)
    formats = {".dsc": read_bes3t, ".dta": read_bes3t, ".par": read_esp, ".spc": read_esp, ".json": read_adani_json,
               ".xml": read_magnettech_xml, ".spe": read_magnettech_spe}
    columns_kind = "field"
    value_columns = ("intensity", "signal", "absorption", "derivative", "y")
    data_dirs = ("epr",)
    acceptance = {"epr": ["eprpy__tempo.DSC", "easyspin__frem_gly.par", "easyspin__adani_Mn.json"]}

    def read_columns(self, path, columns=None, units=None):
        m = super().read_columns(path, columns, units)
        from ..measurements.columns import read_table
        m.meta.update(epr_column_meta(read_table(path).header))
        return m

    def prepare(self, m, spec, mw_frequency_GHz=None, pad: bool = True):
        refuse_stack(m)
        prep = prepare_epr(m, spec, mw_frequency_GHz, pad)
        nu, nu_t = prep.info.get("mw_frequency_measured_GHz"), prep.info.get("mw_frequency_GHz")
        if nu and nu_t and abs(nu_t / nu - 1.0) > 0.1:
            add_warning(prep.info, f"measured at {nu:.4g} GHz, the model at {nu_t:.4g} GHz (another frequency band): "
                                   f"the field is scaled x{nu_t / nu:.3f}, which keeps g but not field-independent "
                                   "splittings or linewidths")
        elif nu is None:
            add_warning(prep.info, "no microwave frequency in the file: the field is not rescaled, so g is only "
                                   "right if it was measured at the model's frequency (pass mw_frequency_GHz)")
        return prep

    def derived(self, names, samples, info):
        idx = {t: j for j, t in enumerate(names)}
        out = {}

        def principal(pre):
            # the three principal values; a missing y is the axial tie y = x (recipes that learn x and z only)
            cols = [samples[..., idx[pre + a]] if pre + a in idx else None for a in "xyz"]
            if cols[1] is None and cols[0] is not None and cols[2] is not None:
                cols[1] = cols[0]
            return [c for c in cols if c is not None]

        gs = principal("g_")
        if gs:
            out["g_iso"] = np.mean(gs, axis=0)
        if "g_x" in idx and "g_z" in idx:
            out["g_perp"] = 0.5 * (samples[..., idx["g_x"]] + samples[..., idx.get("g_y", idx["g_x"])])
        As = principal("A_")
        if As:
            scale = float(info.get("field_scale", 1.0) or 1.0)
            A = np.mean(As, axis=0) / scale
            out["A_iso_MHz"] = A
            if "g_iso" in out:
                out["a_iso_mT"] = A / (MUB_MHZ_PER_MT * out["g_iso"])
        return out

    def refine(self, m, prep, result, run=None, spec=None) -> None:
        """Physics refinement (:mod:`train.modalities.epr_refine`): for the isotropic classes of a classifying
        run, g_iso (and for nitroxides and Mn2+ A_iso / a_iso) re-read from the measured spectrum, started from
        the network's class and values.  The network's values stay in ``result['network']``; ``result['refined']``
        says what was done."""
        from .epr_refine import refine_epr
        vals = result.get("values") or {}
        cls = result.get("class")
        if cls is None or "g_iso" not in vals:
            return
        A = vals.get("A_iso_MHz", {}).get("value")
        try:
            out = refine_epr(m, cls, vals["g_iso"]["value"], A, prep.info.get("mw_frequency_GHz"))
        except Exception as exc:  # never lose the network's reading to a failed fit; say why
            result["refined"] = {"error": f"{type(exc).__name__}: {exc}"}
            return
        if out is None:
            result["refined"] = {"method": f"none for class {cls} (network values)"}
            return
        result["refined"] = out.pop("refine")
        import copy
        network = result.setdefault("network", {})
        for q, v in out.items():
            if q in vals and q not in network:
                network[q] = copy.deepcopy(vals[q])
            vals[q] = {"value": float(v), "unc": None, "source": "fit"}
