"""Where real measured files are: ``../shared/data`` beside the repository, else files shipped inside PyPI packages
(diffpy.cmi, pyexafs, exspy; see ../shared/data/README.md) when those are installed.  Nothing here downloads."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir", "find_real_files", "PACKAGE_FILES"]

#: (distribution, path inside it, modality) of real files that PyPI wheels ship
PACKAGE_FILES = (
    ("diffpy.cmi", "diffpy/cmi/docs/examples/pdf/ch03NiModelling/data/Ni.gr", "pdf"),
    ("diffpy.cmi", "diffpy/cmi/docs/examples/pdf/ch03NiModelling/data/Pt-nanoparticles.gr", "pdf"),
    ("diffpy.cmi", "diffpy/cmi/docs/examples/pdf/ch05Fit2Phase/data/ni.gr", "pdf"),
    ("diffpy.cmi", "diffpy/cmi/docs/examples/pdf/ch05Fit2Phase/data/si.gr", "pdf"),
    ("pyexafs", "pyexafs/example_data/SYNCHROTRON", "exafs"),
    ("exspy", "exspy/tests/components/coreloss_spectrum.msa", "exelfs"),
    ("exspy", "exspy/tests/components/lowloss_spectrum.msa", "exelfs"),
    ("exspy", "exspy/tests/drawing/data/Cr_L_cl.hspy", "exelfs"),
)

# data files only: the companion halves of two-file formats (.DTA, .spc) are found by their readers
_COMPANIONS = (".dta", ".spc", ".hdf5")


def _layout() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """modality -> (folder names, extensions) from the registered adapters."""
    from .. import modalities
    out = {}
    for name in modalities.names():
        try:
            a = modalities.get(name)
        except modalities.AdapterError:
            continue
        if a.data_dirs:
            out[name] = (a.data_dirs, tuple(e for e in a.formats if e not in _COMPANIONS))
    return out


def shared_data_dir() -> Path | None:
    """``$SIMGEN_SHARED_DATA`` or ``<repo>/../shared/data`` when it exists."""
    env = os.environ.get("SIMGEN_SHARED_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    p = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return p if p.is_dir() else None


def _from_dir(d: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for mod, (dirs, exts) in _layout().items():
        subs = [d / sub for sub in dirs if (d / sub).is_dir()]
        files = sorted(p for sub in subs for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        if files:
            out[mod] = files
    return out


def _from_packages() -> dict[str, list[Path]]:
    import importlib.metadata as md
    out: dict[str, list[Path]] = {}
    layout = _layout()
    for dist, rel, mod in PACKAGE_FILES:
        try:
            p = Path(md.distribution(dist).locate_file(rel))
        except md.PackageNotFoundError:
            continue
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in layout[mod][1] + (".txt",))
        elif p.is_file():
            files = [p]
        else:
            continue
        out.setdefault(mod, []).extend(files)
    return out


def find_real_files(source: str = "auto") -> dict[str, list[Path]]:
    """``{modality: [paths]}`` of the available real files.

    ``source``: 'shared' (../shared/data only), 'packages' (PyPI packages only) or 'auto' (shared data when
    present, else the packages).  Empty dict when neither is available.
    """
    if source not in ("auto", "shared", "packages"):
        raise ValueError(f"source {source!r}: expected auto, shared or packages")
    if source in ("auto", "shared"):
        d = shared_data_dir()
        if d is not None:
            found = _from_dir(d)
            if found or source == "shared":
                return found
        elif source == "shared":
            return {}
    return _from_packages()
