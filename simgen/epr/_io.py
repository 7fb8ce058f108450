"""Minimal private readers of CW EPR files, for this package's validation tests only.

The full readers belong to ``train/measurements``.  Each returns ``(field_mT, signal, meta)`` with
``meta["mw_freq"]`` in GHz.  Formats: Bruker BES3T (.DSC + .DTA), Bruker ESP/WinEPR (.par + .spc),
Adani JSON (as exported by the Adani benchtop software; layout as read by EasySpin's ``eprload``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

__all__ = ["read_bes3t", "read_esp", "read_adani_json", "read_any"]


def _kv(text: str) -> dict:
    out = {}
    for line in re.split(r"[\r\n]+", text):
        line = line.strip()
        if not line or line.startswith(("*", "#", ".")):
            continue
        parts = line.split(None, 1)
        out[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return out


def _sibling(path: Path, exts) -> Path:
    for e in exts:
        p = path.with_suffix(e)
        if p.exists():
            return p
    raise FileNotFoundError(f"{path}: no companion file with extension {' or '.join(exts)}")


def read_bes3t(path) -> tuple[np.ndarray, np.ndarray, dict]:
    path = Path(path)
    dsc = _sibling(path, (".DSC", ".dsc"))
    dta = _sibling(path, (".DTA", ".dta"))
    p = _kv(dsc.read_text(errors="replace"))
    n = int(p["XPTS"])
    fmt = {"D": "f8", "F": "f4", "I": "i4", "S": "i2", "C": "i1"}[p.get("IRFMT", "D").split(",")[0].strip()]
    end = ">" if p.get("BSEQ", "BIG") == "BIG" else "<"
    data = np.fromfile(dta, dtype=end + fmt).astype(np.float64)
    if p.get("IKKF", "REAL").startswith("CPLX"):
        data = data[0::2]
    data = data[:n]
    x = float(p["XMIN"]) + float(p["XWID"]) * np.linspace(0, 1, n)
    if p.get("XUNI", "'G'").strip("'\"") == "G":
        x = x / 10.0
    mw = float(p["MWFQ"]) / 1e9 if "MWFQ" in p else float("nan")
    return x, data, {"mw_freq": mw, "format": "BES3T", "params": p}


def read_esp(path) -> tuple[np.ndarray, np.ndarray, dict]:
    path = Path(path)
    par = _sibling(path, (".par", ".PAR"))
    spc = _sibling(path, (".spc", ".SPC"))
    p = _kv(par.read_text(errors="replace"))
    dtype = "<f4" if "DOS" in p else ">i4"
    data = np.fromfile(spc, dtype=dtype).astype(np.float64)
    n = int(float(p.get("ANZ", p.get("RES", len(data)))))
    data = data[:n]
    if "GST" in p and "GSI" in p:
        x = float(p["GST"]) + float(p["GSI"]) * np.linspace(0, 1, n)
    else:
        x = float(p["HCF"]) + float(p["HSW"]) / 2 * np.linspace(-1, 1, n)
    if p.get("JUN", "G").strip() == "G":
        x = x / 10.0
    return x, data, {"mw_freq": float(p["MF"]), "format": "ESP", "params": p}


def read_adani_json(path) -> tuple[np.ndarray, np.ndarray, dict]:
    d = json.loads(Path(path).read_text())
    pts = d["Values"][0]["Values"]
    arr = np.array([np.asarray(v["Points"], dtype=float) for v in pts])  # (n, nphases)
    nph = arr.shape[1]
    phase0 = float(d.get("Phase", 0.0))
    s = np.sin(2 * np.pi * np.arange(nph) / nph + phase0)
    y = arr @ s
    co = d["ExperimentOptions"]["CommonOptions"]
    x = np.linspace(-1, 1, len(y)) * co["SweepWidth"] / 2 + co["CenterMagneticField"]
    return x, y, {"mw_freq": d["MwFrequencyKHz"] / 1e6, "format": "AdaniJSON",
                  "mod_amp_uT": co.get("ModulationAmplitude")}


def read_any(path):
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".dsc", ".dta"):
        return read_bes3t(path)
    if ext in (".par", ".spc"):
        return read_esp(path)
    if ext == ".json":
        return read_adani_json(path)
    raise ValueError(f"{path}: unknown EPR file extension {ext!r} (expected .DSC/.DTA, .par/.spc, .json)")
