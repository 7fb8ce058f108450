"""Where catalog files (recipes, centre tables, structures, FEFF tables...) are found.

Search order: directories given with ``add_catalog_dir`` / the ``--catalog`` flag, then the directories in the
``SIMGEN_CATALOGS`` environment variable (separated by ``os.pathsep``), then the catalogs shipped with simgen
(``simgen/catalogs`` inside a wheel, or the top-level ``catalogs/`` folder of a source checkout).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["catalog_dirs", "add_catalog_dir", "find", "builtin_dir", "list_recipes", "resolve_recipe"]

_user_dirs: list[Path] = []


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


def find(relpath: str | os.PathLike) -> Path:
    """The first catalog file ``relpath`` (e.g. ``epr/centres.yaml``) along the search path."""
    for d in catalog_dirs():
        p = d / relpath
        if p.exists():
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
    """A recipe file from a path, or from a catalog recipe name such as ``epr-oxides``."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    recipes = list_recipes()
    key = p.stem if p.suffix in (".yaml", ".yml") else str(name_or_path)
    if key in recipes:
        return recipes[key]
    import difflib
    close = difflib.get_close_matches(key, list(recipes), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise FileNotFoundError(f"recipe '{name_or_path}': no such file and no catalog recipe of that name "
                            f"(catalog recipes: {', '.join(recipes) or 'none'}){hint}")
