"""Classification and regression heads (re-exported from :mod:`train.models.base`)."""
from .base import Heads

__all__ = ["Heads"]
