"""The rosettasciio and image readers (.msa, .dm3/.dm4, .hspy; .tif/.png through tifffile/pillow), shared by the
exelfs adapter (1-D spectra) and the swelling adapter (2-D micrographs): one reader per format, whichever
modality the content turns out to be."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import Measurement, MeasurementError

__all__ = ["read_msa", "read_dm", "read_hspy", "read_image", "from_rsciio"]

_LENGTH_NM = {"nm": 1.0, "Å": 0.1, "A": 0.1, "angstrom": 0.1, "µm": 1000.0, "um": 1000.0, "micron": 1000.0,
              "microns": 1000.0, "mm": 1e6, "pm": 1e-3, "m": 1e9}


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def from_rsciio(path: Path, signals: list) -> Measurement:
    """A Measurement from rosettasciio's list of signal dicts (the first one with data)."""
    if not signals:
        raise MeasurementError(path, "rosettasciio found no signal in it")
    s = signals[0]
    data = np.asarray(s["data"])
    axes = s.get("axes", [])
    if data.size == 0:
        raise MeasurementError(path, "holds an empty signal")
    if np.iscomplexobj(data):
        data = np.abs(data)
    md = s.get("metadata", {}) or {}
    sig_axes = [a for a in axes if not a.get("navigate", False)]
    nav_axes = [a for a in axes if a.get("navigate", False)]
    meta: dict = {"format": "rosettasciio", "title": _get(md, "General", "title", default="")}
    tem = _get(md, "Acquisition_instrument", "TEM", default={}) or {}
    if "beam_energy" in tem:
        meta["beam_energy_keV"] = float(tem["beam_energy"])
    for key, name in (("collection_angle", "collection_angle_mrad"), ("convergence_angle", "convergence_angle_mrad")):
        v = _get(tem, "Detector", "EELS", key) if key == "collection_angle" else tem.get(key)
        if v is not None:
            meta[name] = float(v)
    if len(sig_axes) == 1:
        a = sig_axes[0]
        idx = a.get("index_in_array", data.ndim - 1)
        if nav_axes:  # spectrum image / line: sum the navigation positions
            spec = np.moveaxis(data, idx, -1).reshape(-1, data.shape[idx]).astype(np.float64).sum(0)
            meta["summed_positions"] = int(data.size // data.shape[idx])
        else:
            spec = data.astype(np.float64).reshape(-1)
        n = len(spec)
        x = float(a.get("offset", 0.0)) + float(a.get("scale", 1.0)) * np.arange(n)
        units = str(a.get("units", "") or "")
        name = str(a.get("name", "") or "")
        if units.lower() in ("ev", "kev") or "energy" in name.lower():
            if units.lower() == "kev":
                x = x * 1000.0
            meta["channel_eV"] = float(x[1] - x[0]) if n > 1 else None
            return Measurement(x, spec, "energy_loss", "eV", "counts", "exelfs", meta)
        return Measurement(x, spec, name or "x", units, "", None, meta)
    if len(sig_axes) == 2 or (not sig_axes and data.ndim == 2):
        img = data.astype(np.float64)
        if img.ndim > 2:
            img = img.reshape(-1, *img.shape[-2:]).mean(0)
            meta["averaged_frames"] = int(data.size // (img.shape[0] * img.shape[1]))
        px = None
        if sig_axes:
            ax = sorted(sig_axes, key=lambda a: a.get("index_in_array", 0))[-1]
            unit = str(ax.get("units", "") or "")
            if unit in _LENGTH_NM:
                px = float(ax.get("scale", 1.0)) * _LENGTH_NM[unit]
        _defocus(s.get("original_metadata", {}) or {}, meta)
        return _image(img, px, meta)
    raise MeasurementError(path, f"signal of shape {data.shape} with {len(sig_axes)} signal axes: expected a "
                           "1-D spectrum or a 2-D image")


def _find_key(tree, pattern: str, path: str = "", depth: int = 0):
    """(key path, value) of the first numeric entry whose key matches ``pattern`` (case-insensitive) in a nested
    metadata dict (DigitalMicrograph tags, FEI TIFF sections)."""
    import re
    if depth > 12 or not isinstance(tree, dict):
        return None
    for k, v in tree.items():
        kp = f"{path}.{k}" if path else str(k)
        if re.search(pattern, str(k), re.I) and isinstance(v, (int, float)) and not isinstance(v, bool):
            return kp, float(v)
    for k, v in tree.items():
        if isinstance(v, dict):
            hit = _find_key(v, pattern, f"{path}.{k}" if path else str(k), depth + 1)
            if hit:
                return hit
    return None


def _defocus(tree, meta: dict) -> None:
    """``defocus_nm`` from a '... Defocus ...' entry: values with a unit in the key ('(nm)', '(um)', '(m)') are
    converted; a bare value is kept as ``defocus_raw`` with its key (instruments disagree on the unit)."""
    hit = _find_key(tree, r"defocus")
    if hit is None:
        return
    key, v = hit
    low = key.lower()
    for unit, f in (("(nm)", 1.0), ("(um)", 1000.0), ("(µm)", 1000.0), ("(m)", 1e9)):
        if low.endswith(unit):
            meta["defocus_nm"] = v * f
            return
    meta.update(defocus_raw=v, defocus_key=key)


def _image(img: np.ndarray, px: float | None, meta: dict) -> Measurement:
    if px is not None:
        meta["pixel_size_nm"] = px
    step = px if px is not None else 1.0
    x = np.arange(img.shape[1]) * step
    return Measurement(x, img, "image_x", "nm" if px is not None else "pixel", "intensity", "swelling", meta)


def _rsciio(path: Path, module: str):
    import importlib
    try:
        mod = importlib.import_module(f"rsciio.{module}")
    except ImportError as exc:
        raise MeasurementError(path, f"reading it needs rosettasciio's {module} plugin ({exc})") from None
    try:
        return mod.file_reader(str(path))
    except MeasurementError:
        raise
    except Exception as exc:  # rosettasciio raises many kinds on corrupt input
        raise MeasurementError(path, f"rosettasciio ({module}) could not read it: {type(exc).__name__}: {exc}") \
            from None


def read_msa(path) -> Measurement:
    path = Path(path)
    head = path.read_bytes()[:200].decode("latin-1", errors="replace")
    if "#FORMAT" not in head.upper():
        raise MeasurementError(path, "not an EMSA/MAS file (no '#FORMAT' keyword at the start)")
    text = path.read_bytes().decode("latin-1", errors="replace")
    import re
    npts = re.search(r"^#NPOINTS\s*:\s*([\d.eE+]+)", text, re.M | re.I)
    if "#ENDOFDATA" not in text.upper():
        raise MeasurementError(path, "no '#ENDOFDATA' line: truncated EMSA/MAS file")
    m = from_rsciio(path, _rsciio(path, "msa"))
    if npts is not None and int(float(npts.group(1))) != len(m.axis):
        raise MeasurementError(path, f"holds {len(m.axis)} points but #NPOINTS says {int(float(npts.group(1)))}: "
                               "truncated or corrupted")
    return m


def read_dm(path) -> Measurement:
    return from_rsciio(Path(path), _rsciio(Path(path), "digitalmicrograph"))


def read_hspy(path) -> Measurement:
    path = Path(path)
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise MeasurementError(path, "reading .hspy needs h5py (pip install h5py)") from None
    return from_rsciio(path, _rsciio(path, "hspy"))


def read_image(path) -> Measurement:
    """TIFF through tifffile (pixel size from ImageJ 'unit' + XResolution), PNG/JPEG through pillow (gray)."""
    path = Path(path)
    meta: dict = {"format": path.suffix.lower().lstrip(".")}
    px = None
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile
        try:
            with tifffile.TiffFile(path) as tf:
                img = tf.asarray()
                page = tf.pages[0]
                ij = tf.imagej_metadata or {}
                unit = str(ij.get("unit", "")).replace("\\u00B5", "µ")
                xres = page.tags.get("XResolution")
                runit = page.tags.get("ResolutionUnit")
                if unit in _LENGTH_NM and xres is not None:
                    num, den = xres.value
                    if num > 0:
                        px = den / num * _LENGTH_NM[unit]
                fei = getattr(tf, "fei_metadata", None) or {}
                if px is None and fei:
                    hit = _find_key(fei, r"^pixelwidth$")
                    if hit and hit[1] > 0:
                        px = hit[1] * 1e9  # FEI/Thermo Fisher TIFF: metres
                        meta["pixel_size_from"] = "FEI " + hit[0]
                if px is None and xres is not None and runit is not None and int(runit.value) == 3:
                    num, den = xres.value  # pixels per centimetre
                    if num > 0 and den / num * 1e7 < 1e4:  # a plausible microscope scale (< 10 um/pixel)
                        px = den / num * 1e7
                        meta["pixel_size_from"] = "TIFF XResolution (pixels per cm)"
                if fei:
                    _defocus(fei, meta)
        except MeasurementError:
            raise
        except Exception as exc:
            raise MeasurementError(path, f"tifffile could not read it: {type(exc).__name__}: {exc}") from None
    else:
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as im:
                im.load()
                img = np.asarray(im.convert("F") if im.mode not in ("I;16", "I") else im)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise MeasurementError(path, f"pillow could not read it: {type(exc).__name__}: {exc}") from None
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3].mean(-1)
    if img.ndim == 3:
        img = img.mean(0)
        meta["averaged_frames"] = int(np.asarray(img).shape[0])
    if img.ndim != 2:
        raise MeasurementError(path, f"image of shape {img.shape}: expected a 2-D micrograph")
    return _image(img, px, meta)
