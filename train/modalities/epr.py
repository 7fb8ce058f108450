"""EPR adapter: CW EPR files (Bruker BES3T .DSC/.DTA, Bruker ESP/WinEPR .par/.spc, Adani benchtop JSON), their
preparation onto a model's field axis, and the derived g_iso / A_iso / a_iso.

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

from ..measurements import Measurement, MeasurementError
from ..prepare import Prepared, TargetSpec, check_units, prior_support, rebin, refuse, span
from . import Adapter

__all__ = ["read_bes3t", "read_esp", "read_adani_json", "EPRAdapter", "MUB_MHZ_PER_MT"]

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


def read_bes3t(path) -> Measurement:
    """Bruker BES3T: the .DSC descriptor (XPTS, XMIN, XWID, XUNI, IRFMT, BSEQ, IKKF, MWFQ, B0MA) and .DTA data."""
    path = Path(path)
    dsc = path if path.suffix.lower() == ".dsc" else _partner(path, (".dsc",))
    dta = path if path.suffix.lower() == ".dta" else _partner(path, (".dta",))
    hdr = _parse_dsc(dsc)
    if "XPTS" not in hdr and "#DESC" not in dsc.read_text(errors="replace")[:200]:
        raise MeasurementError(dsc, "not a BES3T descriptor (no #DESC header, no XPTS key)")
    n = _num(hdr, "XPTS", dsc, cast=int)
    ny = _num(hdr, "YPTS", dsc, default=1, cast=int) if hdr.get("YTYP", "NODATA") != "NODATA" else 1
    if ny != 1:
        raise MeasurementError(dsc, f"2-D dataset (YPTS = {ny}); only 1-D field sweeps are supported")
    if hdr.get("XTYP", "IDX") != "IDX":
        raise MeasurementError(dsc, f"XTYP {hdr.get('XTYP')!r}: only linear axes (IDX) are supported")
    xmin = _num(hdr, "XMIN", dsc)
    xwid = _num(hdr, "XWID", dsc)
    unit = hdr.get("XUNI", "G").strip("'")
    if unit not in _FIELD_UNITS:
        raise MeasurementError(dsc, f"XUNI {unit!r}: expected a field unit ({', '.join(_FIELD_UNITS)})")
    fmt = hdr.get("IRFMT", "D").split(",")[0].strip()
    dt = {"D": "f8", "F": "f4", "I": "i4", "S": "i2", "C": "i1"}.get(fmt)
    if dt is None:
        raise MeasurementError(dsc, f"IRFMT {fmt!r}: expected one of D, F, I, S, C")
    order = {"BIG": ">", "LIT": "<"}.get(hdr.get("BSEQ", "BIG"))
    if order is None:
        raise MeasurementError(dsc, f"BSEQ {hdr.get('BSEQ')!r}: expected BIG or LIT")
    cplx = hdr.get("IKKF", "REAL").split(",")[0].strip() == "CPLX"
    dtype = np.dtype(order + dt)
    need = n * dtype.itemsize * (2 if cplx else 1)
    size = dta.stat().st_size
    if size != need:
        raise MeasurementError(dta, f"holds {size} bytes but the descriptor declares XPTS = {n} {'complex ' if cplx else ''}"
                               f"values of {dtype.itemsize} bytes ({need} bytes): truncated or mismatched")
    raw = np.fromfile(dta, dtype=dtype).astype(np.float64)
    y = raw[0::2] if cplx else raw
    f = _FIELD_UNITS[unit]
    x = (xmin + xwid * np.arange(n) / max(n - 1, 1)) * f
    meta = {"format": "BES3T", "title": hdr.get("TITL", ""), "n_points": n}
    if "MWFQ" in hdr:
        meta["mw_frequency_GHz"] = _num(hdr, "MWFQ", dsc) / 1e9
    if "B0MA" in hdr:
        meta["modulation_mT"] = _num(hdr, "B0MA", dsc) * 1e3  # stored in T
    if "RCHM" in hdr:
        meta["harmonic"] = _num(hdr, "RCHM", dsc, cast=int)
    if cplx:
        meta["quadrature"] = raw[1::2]
    return Measurement(x, y, "field", "mT", "arb. units", "epr", meta)


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

    Field axis: GST + GSI * i/(n-1) when GST/GSI are present, else HCF +- HSW/2 (G -> mT); n = ANZ or RES.
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
    n = None
    for key in ("ANZ", "RES", "SSX"):
        if key in hdr:
            n = _num(hdr, key, par, cast=int)
            break
    if n is None:
        n = size // dtype.itemsize
    if n * dtype.itemsize != size:
        raise MeasurementError(spc, f"holds {size} bytes but the parameter file declares {n} points of "
                               f"{dtype.itemsize} bytes ({n * dtype.itemsize} bytes): truncated or mismatched")
    y = np.fromfile(spc, dtype=dtype).astype(np.float64)
    unit = hdr.get("JUN", "G").strip() or "G"
    if unit not in _FIELD_UNITS:
        raise MeasurementError(par, f"JUN {unit!r}: expected a field unit ({', '.join(_FIELD_UNITS)})")
    if "GST" in hdr and "GSI" in hdr:
        x0, w = _num(hdr, "GST", par), _num(hdr, "GSI", par)
    elif "HCF" in hdr and "HSW" in hdr:
        c, w = _num(hdr, "HCF", par), _num(hdr, "HSW", par)
        x0 = c - w / 2
    else:
        raise MeasurementError(par, "no field axis: expected GST and GSI, or HCF and HSW")
    x = (x0 + w * np.arange(n) / max(n - 1, 1)) * _FIELD_UNITS[unit]
    meta = {"format": "ESP" + (" (DOS)" if dos else ""), "title": hdr.get("JCO", ""), "n_points": n}
    if "MF" in hdr:
        meta["mw_frequency_GHz"] = _num(hdr, "MF", par)
    if "RMA" in hdr:
        meta["modulation_mT"] = _num(hdr, "RMA", par) * _FIELD_UNITS[unit]
    return Measurement(x, y, "field", "mT", "arb. units", "epr", meta)


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
def prepare_epr(m: Measurement, spec: TargetSpec, mw_frequency_GHz=None, pad: bool = True) -> Prepared:
    axis = spec.axis
    check_units(m, axis, "mT")
    B = spec_axis = axis.coords[0]
    nu = m.meta.get("mw_frequency_GHz")
    info: dict = {"steps": []}
    if mw_frequency_GHz is not None:
        nu_t = float(mw_frequency_GHz)
    else:
        sup = prior_support(spec, "mw_freq")
        if nu is None:
            nu_t = None
        elif sup is not None:
            nu_t = float(np.clip(nu, sup[0], sup[1]))
        else:
            nu_t = nu
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
    w = max(3, n // 20)
    # linear baseline through the medians of both end windows
    xa, xb = np.median(x[:w]), np.median(x[-w:])
    ya, yb = np.median(y[:w]), np.median(y[-w:])
    y -= ya + (yb - ya) * (x - xa) / (xb - xa)
    peak = np.max(np.abs(y))
    if not peak > 0:
        refuse(m, "flat spectrum (no signal above the baseline)")
    y /= peak
    info["steps"].append("linear baseline through the end 5 % removed; max |y| = 1")
    inside = (x >= B[0]) & (x <= B[-1])
    if not inside.any():
        refuse(m, f"field {span(x)} mT (after rescaling x{scale:.5f}) does not overlap the model's axis "
                f"{span(B)} mT")
    ipk = int(np.argmax(np.abs(y)))
    if not (B[0] <= x[ipk] <= B[-1]):
        refuse(m, f"the strongest feature at {x[ipk]:.3f} mT lies outside the model's axis {span(B)} mT")
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
    out = rebin(x, y, B)
    out[(B < x[0]) | (B > x[-1])] = 0.0
    info["coverage"] = float(np.mean((B >= x[0]) & (B <= x[-1])))
    return Prepared(out[None].astype(np.float32), axis, m, info)


# ------------------------------------------------------------------------------------------------ adapter
class EPRAdapter(Adapter):
    """CW EPR (simulator ``epr``): derivative spectra on a field axis in mT.

    Preparation: the field is rescaled by nu_model / nu_measured (B' = B nu'/nu keeps every g; a hyperfine
    splitting in mT scales by the same factor, so A predicted from the rescaled spectrum is divided by
    ``info['field_scale']``); nu_model is the measured frequency clipped into the recipe's ``mw_freq`` prior (no
    rescale when it lies inside).  A linear baseline through both ends is removed, the spectrum is max-|y|
    normalised like the simulator, rebinned onto the axis and padded with the zero baseline where the model's
    sweep is wider (refused when the signal has not returned to the baseline at the measured window's edge, or
    the strongest feature lies outside the model's sweep).  Options: ``mw_frequency_GHz``, ``pad``.

    Derived quantities: ``g_iso`` = mean of g_x, g_y, g_z; ``A_iso_MHz`` = mean of A_x, A_y, A_z divided by the
    preparation's field scale; ``a_iso_mT`` = A_iso / (g_iso mu_B/h).
    """

    name = "epr"
    axis_dims = ("field",)
    formats = {".dsc": read_bes3t, ".dta": read_bes3t, ".par": read_esp, ".spc": read_esp, ".json": read_adani_json}
    data_dirs = ("epr",)
    acceptance = {"epr": ["eprpy__tempo.DSC", "easyspin__frem_gly.par", "easyspin__adani_Mn.json"]}

    def prepare(self, m, spec, mw_frequency_GHz=None, pad: bool = True):
        return prepare_epr(m, spec, mw_frequency_GHz, pad)

    def derived(self, names, samples, info):
        idx = {t: j for j, t in enumerate(names)}
        out = {}
        gs = [samples[..., idx[t]] for t in ("g_x", "g_y", "g_z") if t in idx]
        if gs:
            out["g_iso"] = np.mean(gs, axis=0)
        As = [samples[..., idx[t]] for t in ("A_x", "A_y", "A_z") if t in idx]
        if As:
            scale = float(info.get("field_scale", 1.0) or 1.0)
            A = np.mean(As, axis=0) / scale
            out["A_iso_MHz"] = A
            if "g_iso" in out:
                out["a_iso_mT"] = A / (MUB_MHZ_PER_MT * out["g_iso"])
        return out
