"""Registry of inverse networks by name: ``get_model(name, in_shape=..., n_targets=..., n_classes=..., **kw)``.

Built-in: ``mlp`` (the per-target 64-32-16 reference regressor), ``resnet1d`` (ResNet-18/34 with Conv1d),
``cnn2d`` (2-D residual CNN for images).  Any model taking images also takes spectra with ``cwt=True`` (or a dict
of :class:`~train.models.cwt.CWTModel` options): a Morlet CWT (scales 1-128) turns each spectrum into an image.
``cwt-cnn2d`` is that route by name.  Models from ``train.models.vae.MODELS`` (if that module exists) are added
on first use.  The classical baseline (``baseline-rf``, ``baseline-gb``) lives in :mod:`train.models.baseline`
and is not a torch module (see ``BASELINES``).
"""
from __future__ import annotations

import functools
import importlib

from .base import Heads, InverseModel, ShapeError
from .cnn2d import CNN2d
from .cwt import CWTModel, MorletCWT
from .mlp import MLP
from .resnet1d import ResNet1d

__all__ = ["MODELS", "BASELINES", "get_model", "available_models", "ShapeError", "InverseModel", "Heads",
           "MLP", "ResNet1d", "CNN2d", "CWTModel", "MorletCWT", "is_baseline", "is_inverse_model"]


def _cwt_cnn2d(in_shape, n_targets=0, n_classes=0, **kw):
    kw.setdefault("cwt", True)
    return _build(CNN2d, in_shape, n_targets, n_classes, **kw)


MODELS: dict = {"mlp": MLP, "resnet1d": ResNet1d, "cnn2d": CNN2d, "cwt-cnn2d": _cwt_cnn2d}
BASELINES = ("baseline-rf", "baseline-gb")
_EXTRA_MODULES = ("train.models.vae",)
_loaded_extra = False


def _load_extra() -> None:
    global _loaded_extra
    if _loaded_extra:
        return
    _loaded_extra = True
    for mod in _EXTRA_MODULES:
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        for k, v in getattr(m, "MODELS", {}).items():
            MODELS.setdefault(k, v)


def available_models() -> list[str]:
    _load_extra()
    return sorted(MODELS) + list(BASELINES)


def is_baseline(name: str) -> bool:
    return name in BASELINES


_CWT_KEYS = ("n_scales", "scale_range", "spacing", "out_size", "magnitude", "standardise")


def _build(cls, in_shape, n_targets, n_classes, cwt=False, **kw):
    if cwt:
        opts = dict(cwt) if isinstance(cwt, dict) else {}
        for k in _CWT_KEYS:
            if k in kw:
                opts[k] = kw.pop(k)
        if len(tuple(in_shape)) != 1:
            raise ShapeError(f"cwt=True turns spectra into images; the data has samples of shape {tuple(in_shape)}")
        factory = functools.partial(cls, **kw)
        factory.name = getattr(cls, "name", cls.__name__)
        return CWTModel(in_shape, n_targets, n_classes, factory, **opts)
    return cls(in_shape, n_targets, n_classes, **kw)


def get_model(name: str, in_shape=None, n_targets: int = 0, n_classes: int = 0, **kw):
    """Build model ``name`` for samples of shape ``in_shape`` with ``n_targets`` regression outputs and
    ``n_classes`` logits.  Unknown names raise ``KeyError`` listing the known ones.

    Models registered by other modules (the VAEs of ``train.models.vae``) are built with their own keyword
    arguments; ``in_shape`` becomes ``n_in`` (the flattened size) when they take one.
    """
    _load_extra()
    if name not in MODELS:
        raise KeyError(f"model '{name}': unknown; expected one of {', '.join(available_models())}")
    cls = MODELS[name]
    if isinstance(cls, type) and issubclass(cls, InverseModel):
        return _build(cls, in_shape, n_targets, n_classes, **kw)
    if name == "cwt-cnn2d":
        return cls(in_shape, n_targets=n_targets, n_classes=n_classes, **kw)
    import inspect
    import math
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    if in_shape is not None and "n_in" in params:
        kw.setdefault("n_in", math.prod(tuple(in_shape)))
    return cls(**kw)


def is_inverse_model(name: str) -> bool:
    """True for the models ``train.fit`` can train (regression/classification networks and baselines)."""
    _load_extra()
    if name in BASELINES or name == "cwt-cnn2d":
        return True
    cls = MODELS.get(name)
    return isinstance(cls, type) and issubclass(cls, InverseModel)
