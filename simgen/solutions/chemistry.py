"""Solution chemistry of the ``solutions`` simulator: salts -> ions, molality <-> molarity, speciation, ionic
strength, and the composition-dependent band parameters.  Everything is vectorised over samples (rows).
"""
from __future__ import annotations

import math

import numpy as np

from . import kernels
from .tables import GAUSS_AREA, LORENTZ_AREA, BandTable, SpeciesTable

__all__ = ["ions_from_salts", "charge_imbalance", "convert", "speciate", "davies_log10_gamma", "band_params",
           "water_hb_fraction", "MIN_WATER_KG_PER_L"]

#: below this much water per litre a composition is refused (beyond any salt's solubility)
MIN_WATER_KG_PER_L = 0.3


def ions_from_salts(table: SpeciesTable, salts: dict) -> np.ndarray:
    """Component-ion concentrations (n, K) from salt amounts ``{salt_key: (n,) array}`` (same units)."""
    n = len(next(iter(salts.values()))) if salts else 1
    out = np.zeros((n, len(table.components)))
    col = {k: i for i, k in enumerate(table.components)}
    for key, amount in salts.items():
        for ion, nu in table.salts[key]["ions"].items():
            out[:, col[ion]] += nu * np.asarray(amount, dtype=np.float64)
    return out


def charge_imbalance(table: SpeciesTable, conc: np.ndarray) -> np.ndarray:
    """Net charge sum_i z_i c_i (n,) of component concentrations (n, K)."""
    return conc @ table.charge[:len(table.components)]


def convert(table: SpeciesTable, conc: np.ndarray, units: str, volume: np.ndarray | None = None):
    """Molalities, water per litre and water molarity from component concentrations.

    Parameters
    ----------
    conc : (n, K) array, in ``units`` ("mol/L" or "mol/kg").

    Returns
    -------
    molal : (n, K) mol/kg water
    kgw : (n,) kg of water per litre of solution (molarity = molality * kgw)
    c_water : (n,) mol/L of water

    The solution volume is that of the water plus the partial molar volumes of the solutes at infinite dilution
    (catalog ``volume``, or ``volume`` (K,) cm3/mol if given): V = 1000/rho_w + sum m_j V_j cm3 per kg of water.
    """
    conc = np.asarray(conc, dtype=np.float64)
    V = table.volume if volume is None else np.asarray(volume, dtype=np.float64)
    rho = table.water_density
    if units == "mol/kg":
        vsol = 1000.0 / rho + conc @ V
        kgw = 1000.0 / vsol
        molal = conc
    else:
        kgw = (1000.0 - conc @ V) * rho / 1000.0
        molal = conc / np.maximum(kgw, 1e-12)[:, None]
    return molal, kgw, table.water_molality * kgw


def davies_log10_gamma(z, ionic, A=0.509, b=0.3, i_max=1.0):
    """log10 of the activity coefficient of an ion of charge ``z`` at ionic strength ``ionic`` mol/kg (Davies,
    evaluated at min(I, i_max))."""
    ionic = np.minimum(ionic, i_max)
    s = np.sqrt(ionic)
    return -A * np.asarray(z, dtype=np.float64) ** 2 * (s / (1.0 + s) - b * ionic)


def speciate(table: SpeciesTable, molal: np.ndarray, pairing: bool = True, activity: str = "davies",
             tol: float = 1e-10, max_iter: int = 200):
    """Equilibrium molalities (n, S) of every species and the ionic strength (n,) in mol/kg.

    ``molal``: (n, K) component totals.  With ``pairing`` off, the components stay free and no product forms.
    """
    n = molal.shape[0]
    S = table.n_species
    K = len(table.components)
    m0 = np.zeros((n, S))
    m0[:, :K] = molal
    if not pairing or table.nu.shape[0] == 0:
        I = 0.5 * (m0 * table.charge ** 2).sum(axis=1)
        return m0, I
    out = np.empty_like(m0)
    ionic = np.empty(n)
    A = table.activity_A if activity == "davies" else 0.0
    kernels.speciate(m0, table.nu, table.logK * math.log(10.0), table.charge ** 2, A, table.davies_b,
                     table.davies_I_max, tol,
                     max_iter, out, ionic)
    return out, ionic


def water_hb_fraction(table: SpeciesTable, molal_species: np.ndarray) -> np.ndarray:
    """Fraction (n,) of the strongly H-bonded O-H stretch area moved to the weakly bonded component,
    sum_i water_hb_i m_i, clipped to [-0.5, 0.9]."""
    return np.clip(molal_species @ table.water_hb, -0.5, 0.9)


def band_params(bands: BandTable, ionic: np.ndarray, shifts: bool):
    """Band positions and widths (n, B) at ionic strength ``ionic`` (n,) mol/kg:
    pos = pos0 + shift_I I + shift_sqrtI sqrt(I), fwhm = fwhm0 + width_I I (at least 10 % of fwhm0)."""
    n = len(ionic)
    if not shifts:
        return np.broadcast_to(bands.pos, (n, len(bands))).copy(), np.broadcast_to(bands.fwhm, (n, len(bands))).copy()
    I = np.asarray(ionic, dtype=np.float64)[:, None]
    pos = bands.pos + bands.shift_I * I + bands.shift_sqrtI * np.sqrt(I)
    fwhm = np.maximum(bands.fwhm + bands.width_I * I, 0.1 * bands.fwhm)
    return pos, fwhm


def area_to_height(fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Factor turning a pseudo-Voigt band's area into its peak height: 1 / (fwhm ((1-eta) G + eta L))."""
    return 1.0 / (fwhm * ((1.0 - eta) * GAUSS_AREA + eta * LORENTZ_AREA))
