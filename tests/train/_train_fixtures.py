"""Helpers shared by the train tests (a uniquely named module: pytest puts this folder on sys.path)."""
from __future__ import annotations

from simgen.recipe import load_recipe


def tiny_recipe(points: int = 64, seed: int = 7, label: bool = True) -> dict:
    """The peaks-demo recipe on a short axis: fast corpora for training tests."""
    d = load_recipe("peaks-demo").to_dict()
    d["config"]["n_points"] = points
    d["seed"] = seed
    if not label:
        d.pop("label")
    return d
