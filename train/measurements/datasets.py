"""Where real measured files are: ``../shared/data`` beside the repository, files shipped inside installed PyPI
packages (diffpy.cmi, pyexafs, exspy; see ../shared/data/README.md), and the download cache that
``scripts/fetch_real_data.py`` fills from the packages listed in ``catalogs/validation/manifest.yaml``
(``$SIMGEN_DATA_CACHE``, default ``~/.cache/simgen/real-data``).  Nothing here downloads."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir", "find_real_files", "PACKAGE_FILES", "cache_dir", "load_manifest", "manifest_files",
           "MANIFEST"]

#: the manifest of measured files (source, licence, modality, known values, split)
MANIFEST = Path(__file__).resolve().parents[2] / "catalogs" / "validation" / "manifest.yaml"

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
    for name, a in modalities.importable():
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


def cache_dir() -> Path:
    """``$SIMGEN_DATA_CACHE`` or ``~/.cache/simgen/real-data``: where scripts/fetch_real_data.py puts the files
    (``<cache>/<package>/<member path>``)."""
    env = os.environ.get("SIMGEN_DATA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "simgen" / "real-data"


def load_manifest(path=None) -> dict:
    """The manifest YAML (``catalogs/validation/manifest.yaml``) as a dict with ``packages`` and ``files``."""
    import yaml
    p = Path(path) if path is not None else MANIFEST
    with open(p) as f:
        return yaml.safe_load(f)


def entry_path(entry: dict, shared: Path | None = None, cache: Path | None = None) -> Path | None:
    """Where a manifest entry's file is on this machine (``path`` under ../shared/data, or ``package`` +
    ``member`` in the cache); None when it is not there."""
    if "path" in entry:
        d = shared if shared is not None else shared_data_dir()
        p = d / entry["path"] if d is not None else None
    else:
        p = (cache if cache is not None else cache_dir()) / entry["package"] / entry["member"]
    return p if p is not None and p.is_file() else None


def manifest_files(split: str | None = None, modality: str | None = None, present: bool = True,
                   path=None) -> list[tuple[dict, Path | None]]:
    """``[(entry, local path)]`` of the manifest's files, optionally of one ``split`` ('dev'/'test') or
    ``modality``; with ``present`` only those found locally."""
    man = load_manifest(path)
    out = []
    for e in man.get("files", []):
        if split is not None and e.get("split") != split:
            continue
        if modality is not None and e.get("modality") != modality:
            continue
        p = entry_path(e)
        if p is None and present:
            continue
        out.append((e, p))
    return out


def _from_cache() -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    if not cache_dir().is_dir() or not MANIFEST.is_file():
        return out
    for e, p in manifest_files(present=True):
        if "package" in e:
            out.setdefault(e["modality"], []).append(p)
    return out


def find_real_files(source: str = "auto", cache: bool = False) -> dict[str, list[Path]]:
    """``{modality: [paths]}`` of the available real files.

    ``source``: 'shared' (../shared/data only), 'packages' (installed PyPI packages only), 'cache' (the
    download cache only) or 'auto' (shared data when present, else the installed packages).  ``cache=True``
    adds the cached downloads listed in the manifest to what ``source`` finds.  Empty dict when nothing is
    available.
    """
    if source not in ("auto", "shared", "packages", "cache"):
        raise ValueError(f"source {source!r}: expected auto, shared, packages or cache")
    if source == "cache":
        return _from_cache()
    found = _find(source)
    if cache:
        for mod, files in _from_cache().items():
            have = set(found.get(mod, []))
            found.setdefault(mod, []).extend(f for f in files if f not in have)
    return found


def _find(source: str) -> dict[str, list[Path]]:
    if source in ("auto", "shared"):
        d = shared_data_dir()
        if d is not None:
            found = _from_dir(d)
            if found or source == "shared":
                return found
        elif source == "shared":
            return {}
    return _from_packages()
