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
    """Simulate from a recipe, at chosen parameters or at draws from its priors.

    Parameters
    ----------
    recipe : str, path, dict or Recipe
        A catalog recipe name (``"epr-oxides"``), a recipe file, or a recipe mapping.
    params : dict, optional
        Parameter name -> scalar or array of length n, in the units the simulator declares (``simgen list``;
        e.g. mT, eV, A, K); a class may be given as ``"label"`` (name or index).  Parameters left out take the
        recipe's fixed value or the simulator's default.
    n : int, optional
        Number of prior draws when ``params`` is None (default 1).
    seed : int
        Seed of the draws and of every sample's noise.

    Returns
    -------
    x : ndarray, float32, shape ``(n, *axis.shape)``
        The simulated measurements on the recipe's axis.
    params : dict of ndarray
        Every parameter of every sample, as simulated (after validation and broadcasting).
    """
    import numpy as np

    sim = load_recipe(recipe).build()
    rng = np.random.default_rng(seed)
    if params is None:
        params = sim.sample_params(n or 1, rng)
    p = sim.prepare_params(params, rng)
    return sim.simulate(p, rng), p
