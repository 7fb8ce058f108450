"""Correlated Debye model of EXAFS Debye-Waller factors (Sevillano, Meuth & Rehr, PRB 20, 4908 (1979)).

Atoms i, j displace with the isotropic correlation <u_i,a u_j,b> = delta_ab G_ij(r_ij),

    G_ij(r) = hbar^2 / (2 sqrt(M_i M_j) k_B theta_D) * 3 * int_0^1 x coth(x theta_D / 2T) sinc(x k_D r) dx,

k_D = (9 pi / 2)^(1/3) / r_s with r_s the average Norman radius (FEFF's choice).  A path's sigma^2 is a quarter
of the variance of its total length change (FEFF's ``sigms`` construction); for single scattering between equal
masses it reduces to hbar/(2 mu) int rho_R(w) coth(beta hbar w / 2)/w dw with rho_R = 3w^2/w_D^3 (1 - sinc).
"""
from __future__ import annotations

import numpy as np
from ase.data import atomic_masses, atomic_numbers

__all__ = ["sigma2_correlated_debye", "sigma2_path", "correlation", "PathDebye"]

BOHR = 0.52917721
#: hbar^2 / (amu k_B) in A^2 K (CODATA 2018)
HBAR2_AMU_KB = (1.054571817e-34 ** 2) / (1.66053906660e-27 * 1.380649e-23) * 1e20

_X, _W = np.polynomial.legendre.leggauss(96)
_X = 0.5 * (_X + 1.0)
_W = 0.5 * _W


def _mass(el) -> float:
    return float(atomic_masses[atomic_numbers[el]]) if isinstance(el, str) else float(el)


def correlation(r, T, theta_D, rs_bohr, m1, m2) -> np.ndarray:
    """G_ij(r) in A^2 (masses in amu or element symbols); r may be an array."""
    r = np.asarray(r, dtype=np.float64)
    kd = (4.5 * np.pi) ** (1.0 / 3.0) / (rs_bohr * BOHR)
    a = theta_D / (2.0 * max(float(T), 1e-6))
    xa = np.minimum(_X * a, 350.0)
    f = _X / np.tanh(xa)                       # x coth(x theta/2T)
    arg = np.multiply.outer(r * kd, _X)
    sinc = np.sinc(arg / np.pi)
    integral = (sinc * (f * _W)).sum(axis=-1)
    return 3.0 * HBAR2_AMU_KB / (2.0 * np.sqrt(_mass(m1) * _mass(m2)) * theta_D) * integral


def sigma2_path(atoms_xyz, masses, T, theta_D, rs_bohr) -> float:
    """sigma^2 (A^2) of a scattering path visiting atoms_xyz[0] -> ... -> atoms_xyz[-1] -> atoms_xyz[0].

    atoms_xyz[0] is the absorber.  Uses <dL^2>/4 with dL = sum_l (u_l - u_{l-1}).e_l.
    """
    pos = np.asarray(atoms_xyz, dtype=np.float64)
    n = len(pos)
    seq = list(range(n)) + [0]
    m = [_mass(x) for x in masses]
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    G = np.empty((n, n))
    for a in range(n):
        for b in range(n):
            G[a, b] = correlation(d[a, b], T, theta_D, rs_bohr, m[a], m[b])
    legs = [(seq[i], seq[i + 1]) for i in range(n)]
    e = [(pos[b] - pos[a]) / np.linalg.norm(pos[b] - pos[a]) for a, b in legs]
    var = 0.0
    for l, (a1, b1) in enumerate(legs):
        for mm, (a2, b2) in enumerate(legs):
            dot = float(e[l] @ e[mm])
            var += dot * (G[b1, b2] - G[b1, a2] - G[a1, b2] + G[a1, a2])
    return var / 4.0


def sigma2_correlated_debye(T, theta_D, R, m_absorber, m_scatterer, rs_bohr) -> np.ndarray:
    """Single-scattering sigma^2 (A^2) for bond length(s) R: G_aa(0) + G_ss(0) - 2 G_as(R)."""
    R = np.asarray(R, dtype=np.float64)
    return (correlation(0.0, T, theta_D, rs_bohr, m_absorber, m_absorber)
            + correlation(0.0, T, theta_D, rs_bohr, m_scatterer, m_scatterer)
            - 2.0 * correlation(R, T, theta_D, rs_bohr, m_absorber, m_scatterer))


class PathDebye:
    """Fast correlated-Debye sigma^2 of many paths: sigma2 = A @ (S @ f(x; theta/T)) / theta.

    The pair distances enter only through k_D r, which an isotropic strain leaves unchanged (k_D scales with
    the inverse lattice constant), so A and S are built once per path set.
    """

    def __init__(self, paths_atoms, rs_bohr):
        kd = (4.5 * np.pi) ** (1.0 / 3.0) / (rs_bohr * BOHR)
        terms: dict = {}
        rows = []
        for xyz, els in paths_atoms:
            pos = np.asarray(xyz, dtype=np.float64)
            n = len(pos)
            seq = list(range(n)) + [0]
            legs = [(seq[i], seq[i + 1]) for i in range(n)]
            e = [(pos[b] - pos[a]) / np.linalg.norm(pos[b] - pos[a]) for a, b in legs]
            row: dict = {}
            for l, (a1, b1) in enumerate(legs):
                for mm, (a2, b2) in enumerate(legs):
                    dot = float(e[l] @ e[mm])
                    for (u, v), sgn in (((b1, b2), 1), ((b1, a2), -1), ((a1, b2), -1), ((a1, a2), 1)):
                        r = round(float(np.linalg.norm(pos[u] - pos[v])), 5)
                        mu = round(float(np.sqrt(_mass(els[u]) * _mass(els[v]))), 5)
                        key = terms.setdefault((r, mu), len(terms))
                        row[key] = row.get(key, 0.0) + sgn * dot / 4.0
            rows.append(row)
        self.A = np.zeros((len(rows), len(terms)))
        for j, row in enumerate(rows):
            for key, w in row.items():
                self.A[j, key] = w
        r = np.array([t[0] for t in terms])
        mu = np.array([t[1] for t in terms])
        self.S = np.sinc(np.outer(r * kd, _X) / np.pi) * _W / mu[:, None] * (1.5 * HBAR2_AMU_KB)

    def __call__(self, T: float, theta_D: float) -> np.ndarray:
        a = theta_D / (2.0 * max(float(T), 1e-6))
        f = _X / np.tanh(np.minimum(_X * a, 350.0))
        return self.A @ (self.S @ f) / theta_D
