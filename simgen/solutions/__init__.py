"""Raman and UV-vis spectra of aqueous electrolyte solutions (the ``solutions`` simulator)."""
from .simulator import SolutionsSimulator  # noqa: F401
from .tables import species_table  # noqa: F401

__all__ = ["SolutionsSimulator", "species_table"]
