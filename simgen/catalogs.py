"""Where catalog files (recipes, centre tables, structures, FEFF tables...) are found.

Search order: directories given with ``add_catalog_dir`` / the ``--catalog`` flag, then the directories in the
``SIMGEN_CATALOGS`` environment variable (separated by ``os.pathsep``), then the catalogs shipped with simgen
(``simgen/catalogs`` inside a wheel, or the top-level ``catalogs/`` folder of a source checkout).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from pathlib import Path

__all__ = ["catalog_dirs", "add_catalog_dir", "find", "builtin_dir", "list_recipes", "resolve_recipe", "track",
           "file_digest", "digest_files"]

_user_dirs: list[Path] = []

# Files resolved through `find` are reported to every active `track()` context.  Loaders that cache what they
# read (functools.lru_cache) would hide a file from a later context, so the cached functions seen on the call
# stack of a `find` are remembered and their caches cleared when a new context opens: a tracked build then
# reads (and reports) every file it depends on, whatever ran before it in the process.
_trackers: list[dict] = []
_cached_loaders: dict[tuple[str, str], object] = {}
_lock = threading.RLock()


def builtin_dir() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "catalogs"
    if packaged.is_dir():
        return packaged
    return here.parent / "catalogs"


def add_catalog_dir(path: str | os.PathLike) -> None:
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise FileNotFoundError(f"catalog directory '{path}': not a directory")
    if p not in _user_dirs:
        _user_dirs.insert(0, p)


def catalog_dirs() -> list[Path]:
    env = [Path(p).expanduser() for p in os.environ.get("SIMGEN_CATALOGS", "").split(os.pathsep) if p]
    return [*_user_dirs, *env, builtin_dir()]


def _note_loaders() -> None:
    """Remember the lru-cached functions on the current call stack (the loaders of catalog files)."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        fn = frame.f_globals.get(code.co_name)
        if fn is not None and hasattr(fn, "cache_clear") and getattr(getattr(fn, "__wrapped__", None),
                                                                      "__code__", None) is code:
            _cached_loaders[(frame.f_globals.get("__name__", ""), code.co_name)] = fn
        frame = frame.f_back


def find(relpath: str | os.PathLike) -> Path:
    """The first catalog file ``relpath`` (e.g. ``epr/centres.yaml``) along the search path.

    Every file found is reported to the active :func:`track` contexts (directories are not).
    """
    for d in catalog_dirs():
        p = d / relpath
        if p.exists():
            _note_loaders()
            if p.is_file():
                with _lock:
                    for t in _trackers:
                        t[Path(relpath).as_posix()] = p
            return p
    raise FileNotFoundError(f"catalog file '{relpath}': not found in {', '.join(map(str, catalog_dirs()))}")


def list_recipes() -> dict[str, Path]:
    """Recipe name -> file, earlier catalog directories shadowing later ones."""
    out: dict[str, Path] = {}
    for d in reversed(catalog_dirs()):
        rd = d / "recipes"
        if rd.is_dir():
            for p in sorted(rd.glob("*.yaml")) + sorted(rd.glob("*.yml")):
                out[p.stem] = p
    return dict(sorted(out.items()))


def resolve_recipe(name_or_path: str | os.PathLike) -> Path:
    """A recipe file from a path, or from a catalog recipe name such as ``epr-oxides``.

    Anything that looks like a path (a ``.yaml``/``.yml`` suffix, a directory separator, or an existing
    directory) must be a readable file: a path never silently falls back to the catalog recipe of the same stem.
    """
    from .errors import RecipeError
    text = os.fspath(name_or_path)
    p = Path(text).expanduser()
    if p.is_file():
        return p
    looks_like_path = (isinstance(name_or_path, os.PathLike) or p.suffix in (".yaml", ".yml")
                       or "/" in text or os.sep in text or p.exists())
    recipes = list_recipes()
    if looks_like_path:
        if p.is_dir():
            raise RecipeError("recipe", text, "a recipe file (YAML), not a directory")
        if p.exists():
            raise RecipeError("recipe", text, "a regular recipe file")
        hint = ""
        if p.stem in recipes:
            hint = f"the catalog recipe '{p.stem}' exists: give its name without a path or suffix to use it"
        raise RecipeError("recipe", text, "an existing recipe file (no such file)", hint=hint)
    if text in recipes:
        return recipes[text]
    import difflib
    close = difflib.get_close_matches(text, list(recipes), n=1)
    raise RecipeError("recipe", text, "a recipe file or a catalog recipe name (catalog recipes: "
                      f"{', '.join(recipes) or 'none'})", hint=f"did you mean '{close[0]}'?" if close else "")


def _start_tracking() -> dict:
    used: dict[str, Path] = {}
    with _lock:
        for fn in list(_cached_loaders.values()):
            fn.cache_clear()
        _trackers.append(used)
    return used


def _stop_tracking(used: dict) -> None:
    with _lock:
        if any(t is used for t in _trackers):
            _trackers[:] = [t for t in _trackers if t is not used]


@contextlib.contextmanager
def track():
    """Record every catalog file resolved through :func:`find` inside the ``with`` block.

    Yields a dict ``{relative path: resolved Path}`` filled as files are found.  On entry the caches of the
    loaders known to read catalog files are cleared, so that files read earlier in the process are read, and
    recorded, again.
    """
    used = _start_tracking()
    try:
        yield used
    finally:
        _stop_tracking(used)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest_files(used: dict) -> dict[str, str]:
    """``{relative path: sha256}`` of the files a :func:`track` context recorded, sorted by path."""
    return {rel: file_digest(p) for rel, p in sorted(used.items())}
