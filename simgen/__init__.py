"""simgen: physics simulators that make large synthetic training corpora (Zarr, through Dask)."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import ParameterError, RecipeError, SimgenError, StoreError  # noqa: E402
from .recipe import Recipe, load_recipe  # noqa: E402
from .registry import get as get_simulator  # noqa: E402
from .simulator import Axis, Field, LabelSpec, Output, Simulator  # noqa: E402

__all__ = ["__version__", "Axis", "Field", "LabelSpec", "Output", "Simulator", "Recipe", "load_recipe",
           "get_simulator", "RecipeError", "ParameterError", "SimgenError", "StoreError", "simulate"]


def simulate(recipe, params=None, n: int | None = None, seed: int = 0):
    """Simulate from a recipe: at chosen ``params`` (dict of scalars/arrays), or ``n`` prior draws.

    Returns ``(x, params)``.
    """
    import numpy as np

    sim = load_recipe(recipe).build()
    rng = np.random.default_rng(seed)
    if params is None:
        params = sim.sample_params(n or 1, rng)
    p = sim.prepare_params(params, rng)
    return sim.simulate(p, rng), p
