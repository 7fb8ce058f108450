"""Least-squares refinement of a structure model against a measured G(r) (a small PDFgui/srfit-like helper).

.. code-block:: python

    from simgen.pdf.refine import read_gr, refine
    r, g = read_gr("Ni.gr")
    fit = refine("Ni_fcc", r, g, rmin=1.5, rmax=50, qmax=25, qmin=0.5,
                 free={"a": 3.52, "scale": 1.0, "uiso": 0.005, "delta2": 2.0, "qdamp": 0.04, "qbroad": 0.01})
    fit.values["a"], fit.rw

Refinable names: ``a`` (cubic scaling of the cell to first lattice length a), ``scale``, ``uiso``, ``delta1``,
``delta2``, ``qdamp``, ``qbroad``, ``spdiameter`` (spherical envelope, A).  Everything else is fixed through
``fixed``.  Rw = sqrt(sum (Gobs - Gcalc)^2 / sum Gobs^2) over the fit range.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from ..errors import ParameterError
from .calculator import Model, pdf_from_model
from .structures import as_model

__all__ = ["read_gr", "refine", "FitResult", "rw"]

_BOUNDS = {"a": (0.5, 50.0), "scale": (0.0, np.inf), "uiso": (1e-5, 0.2), "delta1": (0.0, 5.0),
           "delta2": (0.0, 20.0), "qdamp": (0.0, 0.3), "qbroad": (0.0, 0.2), "spdiameter": (5.0, 1000.0)}


def read_gr(path) -> tuple[np.ndarray, np.ndarray]:
    """r (A) and G(r) of a ``.gr``/``.fgr`` file, read by the project's one PDF reader
    (:func:`train.modalities.pdf.read_pdf`: PDFgetX3/xPDFsuite/PDFgui headers, bank tables skipped)."""
    from train.measurements import MeasurementError
    from train.modalities.pdf import read_pdf
    try:
        m = read_pdf(path)
    except (MeasurementError, OSError) as exc:
        raise ParameterError("path", str(path), f"a readable .gr file with r and G columns ({exc})") from None
    return m.axis, m.values


def rw(gobs: np.ndarray, gcalc: np.ndarray) -> float:
    return float(np.sqrt(np.sum((gobs - gcalc) ** 2) / np.sum(gobs ** 2)))


@dataclass
class FitResult:
    values: dict
    rw: float
    r: np.ndarray
    gobs: np.ndarray
    gcalc: np.ndarray
    nfev: int
    fixed: dict = field(default_factory=dict)


def refine(structure, r_obs, g_obs, *, rmin: float, rmax: float, free: dict, fixed: dict | None = None,
           radiation: str = "xray", method: str = "real", max_nfev: int = 200) -> FitResult:
    """Refine ``free`` parameters (name -> start value) of ``structure`` against (r_obs, g_obs) on [rmin, rmax]."""
    fixed = dict(fixed or {})
    for k in free:
        if k not in _BOUNDS:
            raise ParameterError("free", k, "one of " + ", ".join(_BOUNDS))
    model = as_model(structure)
    sel = (r_obs >= rmin - 1e-9) & (r_obs <= rmax + 1e-9)
    r = r_obs[sel]
    gobs = g_obs[sel]
    rstep = float(np.round(np.median(np.diff(r)), 10))
    rlo, rhi = float(r[0]), float(r[-1]) + 0.5 * rstep
    names = list(free)
    x0 = np.array([free[k] for k in names], dtype=float)
    lo = np.array([_BOUNDS[k][0] for k in names])
    hi = np.array([_BOUNDS[k][1] for k in names])
    a0 = float(np.linalg.norm(model.cell[0])) if model.periodic else 1.0

    def calc(x):
        v = dict(fixed)
        v.update(zip(names, x))
        cell = model.cell * (v.get("a", a0) / a0) if model.periodic else None
        pos_model = model
        if not model.periodic and "a" in v:
            pos_model = Model(model.symbols, model.positions * (v["a"] / a0), None, model.occupancy)
        kw = dict(radiation=radiation, rmin=rlo, rmax=rhi, rstep=rstep, qmin=v.get("qmin", 0.0),
                  qmax=v.get("qmax", 25.0), qdamp=v.get("qdamp", 0.0), qbroad=v.get("qbroad", 0.0),
                  delta1=v.get("delta1", 0.0), delta2=v.get("delta2", 0.0), scale=v.get("scale", 1.0),
                  uiso=v.get("uiso", 0.005), spdiameter=v.get("spdiameter", 0.0), method=method)
        if model.periodic:
            rr, g = pdf_from_model(pos_model, cell=cell, **kw)
        else:
            rr, g = pdf_from_model(pos_model, **kw)
        return np.interp(r, rr, g)

    big = 10.0 * float(np.max(np.abs(gobs))) if len(gobs) else 1.0

    def resid(x):
        d = calc(x) - gobs
        # a trial step into a non-physical corner (e.g. a vanishing cell) gives non-finite G: a large residual
        # sends the optimiser back instead of stopping it
        return np.where(np.isfinite(d), d, big)

    res = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", max_nfev=max_nfev)
    gcalc = calc(res.x)
    vals = dict(zip(names, map(float, res.x)))
    return FitResult(vals, rw(gobs, gcalc), r, gobs, gcalc, int(res.nfev), fixed)
