"""PDF simulator: G(r) of crystals and nanoparticles with diffpy.srreal's conventions (see calculator.py)."""
from .calculator import Model, PeriodicPairCache, compute_pdf, make_grid, pdf_from_model

__all__ = ["Model", "PeriodicPairCache", "compute_pdf", "make_grid", "pdf_from_model"]
