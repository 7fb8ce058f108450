"""First-shell least-squares refinement of an EXAFS network's reading (``EXAFSAdapter.refine``).

**Off by default** (the network's values are reported).  Switch it on with the environment variable
``SIMGEN_EXAFS_REFINE=network`` (S0^2 within the recipe's prior, the policy described below; ``fixed``: S0^2 =
:data:`S02`) or the adapter attribute (``train.modalities.get('exafs').s02_policy = 'network'``); the third
cumulant's policy with ``SIMGEN_EXAFS_REFINE_C3`` / ``c3_policy`` (``prior``, the default, or ``harmonic``).  It is
off because it does not meet what a default must on the development split (no check lost against the network
alone, every check beating the mean predictor, the refined R of the room-temperature foils within +-0.008 A): see
**Measured** below.

What a careful analyst fits to a metal foil or a simple oxide, started from the network's reading of the chosen
class (material):

* the measured chi(k) k^w exactly as prepared for the model (:func:`train.modalities.exafs.prepare_exafs`: the
  simulator's own AUTOBK-like background and E0, the model's k grid), and the simulator's chi(k) k^w of the same
  material (FEFF10 paths) are Fourier transformed with one Hann-tapered k window (taper
  ``DK`` 1/A at each end) and compared as complex chi(R) over the first-shell R window ``[R_LO, R_top + DR_HI]``
  (``R_top``: the farthest fitted shell; FEFF phase shifts put a shell's |chi(R)| peak 0.3-0.5 A below its
  distance, so the window holds the whole first-shell peak and little of the next);
* **free**: the nearest-neighbour shell as users define it (the adapter's ``N_nn``: single-scattering shells
  within 10 % of the first, like the 6 + 6 of hcp metals or the 3 + 3 Fe-O of hematite) with one coordination
  ``N_nn`` shared in the structure's ratio of the sub-shells, one isotropic expansion ``alpha`` (R = R_cat (1 +
  alpha)) and one sigma^2; every further single-scattering shell among the first three closer than ``NEAR`` R1
  (the bcc 6 at 1.15 R1, which overlaps the first in chi(R)) with its own sigma^2 and, by default
  (``near_mode='tied'``), the first shell's coordination scale and expansion (a crystal of known structure; with
  N and R of the bcc second shell free too (``near_mode='free'``), the overlapping shells trade amplitude with
  sigma^2: at the crystal's N the development Cr and Fe foils then need an S0^2 lower by 0.06 and 0.03); and a
  common E0 shift.  Bounds: N 0-2x the crystal's, alpha +-8 %, sigma^2 0-0.03 A^2, E0 shift -15..25 eV (a fit
  that ends on one is rejected: on simulated oxides with a first-shell sigma^2 of 0.03-0.05 A^2 it does);
* **third cumulant** of the nearest-neighbour shell (``c3``; every sub-shell of it): with a range (the adapter's
  ``c3_policy = 'prior'``: the range of first-shell C3 the network was trained on at the sample's temperature,
  the recipe's free c3 plus its thermal one, anharmonicity x (3 sigma^4 - 2 sigma0^4)) the fit
  is repeated with c3 free, started harmonic, and replaces the harmonic fit only when Hamilton's F test
  (:func:`f_test`, :data:`N_CONFIDENCE`) finds it better and c3 is not on a bound; ``'harmonic'`` fixes c3 = 0.
  Why free and tested rather than tied to the temperature: the anharmonic correlated Einstein models (N. Van Hung
  and J. J. Rehr, Phys. Rev. B 56, 43 (1997), with Morse pair potentials) need an effective pair potential per
  material, which the catalog does not carry for most classes (hcp Ti, the oxides, the 5d L3 models), and a tied
  c3 would impose the model's error on R silently; a free c3 is what the data can or cannot support, and the F
  test says which.  An unresolved c3 (a harmonic fit of an anharmonic shell) reads R short by about 2 c3 <k^2>
  (the phase -4/3 c3 k^3 against 2 k R): 0.01-0.03 A for c3 = 1-3e-4 A^3 at room temperature;
* **fixed**: every other path from the catalog structure, expanded with the fitted first shell (isotropic strain),
  its sigma^2 from the correlated Debye model at the file's temperature (else the network's T) and the class's
  typical Debye temperature; harmonic (c3 = 0).  Never the network's outer shells: the fit of one file
  must not depend on which training seed started it (with them, the fitted N of one foil moved by up to 6 %).

**S0^2.**  N and S0^2 multiply one amplitude: a single spectrum cannot tell them apart, and the recipes draw S0^2
uniformly in 0.7-1.0 so the network cannot either.  Two policies (``s02``):

* a **range** (``EXAFSAdapter.s02_policy = 'network'``, the recipe's S0^2 prior): ``N_nn``
  stays at the network's reading and S0^2 is fitted within the range the network was trained on; only when the
  measured amplitude needs an S0^2 outside it is ``N_nn`` fitted, with S0^2 on the nearer bound.  The fit thus
  corrects R, sigma^2 and E0 always, and N only where the network's N contradicts the measured amplitude for every
  S0^2 the model allows, and only when the F test finds the freed N significantly better than the network's N
  with S0^2 on its bound (without that test the refit moved CuO tenorite's N 3.307 -> 3.288, no longer beating
  the mean predictor; with it the network's N stands there).
* a **number** (``s02_policy = 'fixed'``): S0^2 fixed at :data:`S02` = 0.90, the theoretical value of 0.9 +- 0.1
  that FEFF-based analyses take for these edges (J. J. Rehr, IFEFFIT mailing list, 30 Oct 2002; the many-body
  calculation of L. Campbell, L. Hedin, J. J. Rehr and W. Bardyszewski, Phys. Rev. B 65, 064107 (2002) gives
  about 0.9 for Cu), and N_nn fitted.  Measured, not adopted: with N fixed at the crystal's value the development
  foils need S0^2 of 0.91-0.94 (Cu, four sources, 10-295 K), 0.72-0.76 (Fe), 0.67 (Cr) and 0.64-0.65 (Ti) with
  these FEFF10 tables (presumably experimental amplitude losses, larger at the low-energy edges, on top of the
  passive-electron factor), so any one fixed S0^2 misreads N of some foils by 15-30 %; on the development split
  a fixed 0.90 fails N of every Fe, Cr, Ti and CuO file.

**Measured on the development split** (22 files of the 3d K-edge models, 3 training seeds each, ``simtrain
benchmark-real ... --split dev`` with the policy set): checks passing on every seed / beating the mean predictor /
files passing both N and R / signed R error of the 16 room-temperature foils (Cu, Fe, Cr, Ti; crystallographic
distance)::

    network alone                            38/44  44/44  17/22  -0.006 .. +0.008 A
    fit, harmonic, N refit without F test    39/44  43/44  17/22  -0.018 .. -0.011 A
    fit, c3 free always (on a bound: reject) 38/44  44/44  17/22  -0.018 .. +0.007 A
    fit, harmonic, F-tested N                39/44  44/44  17/22  -0.018 .. -0.011 A
    fit, c3 'prior' + F tests (the option)   39/44  44/44  17/22  -0.018 .. -0.011 A

The fit fixes CuO tenorite's R (1.939 -> 1.953 A for 1.955 A, the one check gained) and is the same for every
seed (spread < 0.001 A), but reads R 0.011-0.018 A short on every room-temperature foil, so it stays off.  The
third cumulant does not remove that: the F test adopts a free c3 on no development file (F 0.0-6.5 against
the 95 % critical value of F(1, nu), 5.7-7.2 for the foils' nu of 4.4-6.7 and 117 for CuO's 1.1), although for
the Cu foils the free c3 is 1.1-1.7e-4 A^3 (the size measured for Cu at room temperature, about 1e-4 A^3:
P. Fornasini et al., Phys. Rev. B 70, 174301 (2004)) and would put R within 0.003 A;
for the bcc Fe and Cr foils the free c3 is -0.8..0 e-4 A^3 (R stays 0.013-0.018 A short), for the Ti foils it
ends on the prior's lower bound.  Fixed by hand (seed 0, one file each), c3 = 1e-4 A^3 leaves Fe, Cr and Ti
at -0.010..-0.011 A; c3 = 2e-4 A^3 would bring Fe, Cr, Ti and Cu within -0.007..+0.003 A, but the bcc fits'
R-factors rise with any c3 > 0 (Fe 0.0004 -> 0.0012 at 1e-4), and a Morse-like pair scaling (classical c3
proportional to sigma^4, sigma^2 0.0046 A^2 for Fe against 0.009 A^2 for Cu) puts bcc Fe near a third of Cu's
c3, not above it: such a c3 would be tuned to the development split, not physics, and is not used.
The short R of the bcc and hcp foils is thus not (only) the anharmonic term; presumably the FEFF10 phase shifts
of these tables or the E0-R correlation (the fits' E0 shifts are 5-7 eV).  With c3 free always, the CuO fit has
one independent point left and its c3 (3.5e-4 A^3 at 13 K) moves R past the tolerance on one seed.  N is the
network's except where the amplitude rules it out significantly (Ti foils, Cu at 10 K and CuO fail the
coordination checks with or without the fit).  The fitted S0^2 at the crystal's N: 0.91-0.96 (Cu), 0.74-0.80
(Fe), 0.70 (Cr), 0.77-0.79 (Ti).

**Acceptance.**  The refinement replaces the network's values only when the fit is sound: the R-factor
``sum |chi_data(R) - chi_model(R)|^2 / sum |chi_data(R)|^2`` over the window is at most :data:`MAX_RFACTOR` (0.05:
EXAFS practice counts R-factors below 0.02 as good and up to 0.05 as acceptable, S. D. Kelly, D. Hesterberg and
B. Ravel, in *Methods of Soil Analysis* Part 5, SSSA Book Series 5, 387 (2008)), no free parameter ends on a bound,
and the free parameters are fewer than the independent points ``2 dk dR / pi`` of the window.  Otherwise the
network's values stay, with a warning that says why.  The development files fit with R-factors 0.0003-0.009 (CuO
0.009, Ti foils 0.005-0.007, the other foils below 0.001); a spectrum of cuprite read as fcc Cu fits to 0.28.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["S02", "MAX_RFACTOR", "N_CONFIDENCE", "R_LO", "DR_HI", "DK", "NEAR", "GROUP", "fit_first_shells", "f_test",
           "kwindow", "chir", "chik_float64"]

#: fixed amplitude reduction factor (see the module docstring for the source)
S02 = 0.90
#: largest R-factor of an accepted fit
MAX_RFACTOR = 0.05
#: R window (A, not phase-corrected): from R_LO (the background removal's rbkg is 1 A) to the farthest fitted
#: shell's distance + DR_HI
R_LO = 1.0
DR_HI = 0.1
#: Hann taper width (1/A) at each end of the k range
DK = 1.0
#: single-scattering shells among the first three within this factor of R1 (beyond the 10 % of the summed
#: nearest-neighbour shell) are fitted as shells of their own
NEAR = 1.2
#: the sub-shells summed into the users' nearest-neighbour shell (as ``EXAFSAdapter.derived``)
GROUP = 1.10
#: R grid step of the transform (A)
R_STEP = 0.02
#: confidence at which the F test must call a refitted N_nn (S0^2 on its bound) better than the network's, and a
#: free third cumulant better than the harmonic fit
N_CONFIDENCE = 0.95


def kwindow(k: np.ndarray, dk: float = DK) -> np.ndarray:
    """Hann-tapered window on the whole of ``k``: sin^2 rises over ``dk`` at each end, 1 in between."""
    k = np.asarray(k, float)
    lo, hi = k[0], k[-1]
    w = np.ones_like(k)
    a = k < lo + dk
    w[a] = np.sin(0.5 * np.pi * (k[a] - lo) / dk) ** 2
    b = k > hi - dk
    w[b] = np.sin(0.5 * np.pi * (hi - k[b]) / dk) ** 2
    return w


def chir(k: np.ndarray, chik: np.ndarray, r: np.ndarray, window: np.ndarray | None = None) -> np.ndarray:
    """Complex chi(R) = 1/sqrt(pi) sum_k w(k) chi(k) k^w exp(2 i k R) dk on ``r`` (A)."""
    k = np.asarray(k, float)
    w = kwindow(k) if window is None else window
    dk = float(k[1] - k[0])
    return (np.asarray(chik, float) * w) @ np.exp(2j * np.outer(k, r)) * (dk / math.sqrt(math.pi))


def _shells(material: str, rmax: float):
    """[(R, degeneracy)] of the first three single-scattering shells of a FEFF table."""
    from simgen.exafs.simulator import _selection
    ps, idx, ss, reff, degen, _ = _selection(material, float(rmax))
    return [(float(reff[j]), float(degen[j])) for j in ss]


def chik_float64(sim, params: dict, c3_shells: dict | None = None) -> np.ndarray:
    """chi(k) k^w of one noise-free parameter set in float64, exactly as ``EXAFSSimulator.simulate`` computes it
    before its float32 output (a least-squares Jacobian by finite differences needs the full precision).
    ``c3_shells`` ({single-scattering shell number from 1: c3 in A^3}) sets the third cumulant of those shells
    (the simulator's parameter ``c3`` reaches the first one only; the sub-shells of an hcp nearest-neighbour
    shell share it)."""
    from simgen.exafs.simulator import _selection, chi_of_paths
    p = sim.prepare_params(params)
    key = sim._material(p, 0)
    ps, idx, N, reff, dr, s2, c3, _ = sim._paths(p, 0, key)
    if c3_shells:
        ss = _selection(key, float(sim.config["rmax"]))[2]
        c3 = np.array(c3, float)
        for j, v in c3_shells.items():
            if not 1 <= int(j) <= len(ss):
                raise ValueError(f"c3_shells: shell {j!r}; expected 1..{len(ss)}")
            c3[ss[int(j) - 1]] = float(v)
    k = sim.axis.coords[0]
    return chi_of_paths(k, ps, idx, N, reff, dr, s2, c3, None, p["s02"][0], p["dE0"][0], cache=False) \
        * k ** sim.config["k_weight"]


def fit_first_shells(sim, base: dict, material: str, k: np.ndarray, chik: np.ndarray, start: dict,
                     s02=S02, max_rfactor: float = MAX_RFACTOR, near_mode: str = "tied", c3=0.0,
                     n_confidence: float = N_CONFIDENCE) -> dict:
    """Least-squares fit of the first shell(s) of ``material`` to a measured chi(k) k^w.

    Parameters
    ----------
    sim : EXAFSSimulator
        Noise-free simulator with the model's k grid and k weight (``output: chi``).
    base : dict
        Every other simulator parameter (T, theta_D, ...) at the network's reading.
    material : str
        FEFF table of the class.
    k, chik : arrays
        The model's k grid (1/A) and the measured chi(k) k^w on it.
    start : dict
        Starting values: ``N1..3, R1..3, sigma2_1..3`` (A, A^2) and ``dE0`` (eV), the network's reading; missing or
        non-finite ones start from the structure (N, R) or 0.005 A^2 / 0 eV.
    s02 : float or (low, high)
        A number: S0^2 fixed there and ``N_nn`` free.  A range: ``N_nn`` kept at its start (the network's reading)
        and S0^2 fitted within the range; when S0^2 ends on a bound, the measured amplitude rules out the start's
        N for any S0^2 of the range, and ``N_nn`` is fitted with S0^2 at that bound.
    max_rfactor : float
        Acceptance threshold of the R-factor.
    near_mode : {'tied', 'free'}
        Further fitted shells (``NEAR``): 'tied' shares the nearest-neighbour shell's coordination scale and
        isotropic expansion (own sigma^2: the model of a crystal whose structure is known); 'free' gives each its
        own N, R and sigma^2.
    c3 : float or (low, high)
        Third cumulant of the nearest-neighbour shell (A^3; every sub-shell of the group): a number fixes it
        (0: harmonic), a range frees it within (the recipe's c3 prior).
    n_confidence : float
        With an S0^2 range: ``N_nn`` replaces the start's only when the fit with N free is better than the fit with
        N at the start and S0^2 on its bound at this confidence (Hamilton's F test, :func:`f_test`); a free c3
        replaces the harmonic fit only when better at this confidence and not on a bound.

    Returns
    -------
    dict
        ``values`` (fitted ``N1..3, R1..3, sigma2_1..3`` of the fitted shells and ``dE0``), ``accepted`` (bool),
        ``why`` (reason when not accepted), ``rfactor``, ``r_window``, ``k_range``, ``n_free``, ``n_idp``,
        ``group`` (shell numbers summed as the nearest-neighbour shell), ``near`` (further fitted shells),
        ``s02`` (fixed or fitted), ``n_from`` ('fit' or 'start'), ``nfev``, ``free`` (the free parameters),
        ``c3`` (of the nearest-neighbour shell, fixed or fitted), ``n_test`` (the F test when N was refitted
        or considered for it, else None), ``c3_test`` (the F test of a free c3 with its value and whether it ended
        on a bound; None when c3 was fixed).
    """
    from scipy.optimize import least_squares
    if near_mode not in ("tied", "free"):
        raise ValueError(f"near_mode {near_mode!r}: expected 'tied' or 'free'")
    k = np.asarray(k, float)
    y = np.asarray(chik, float)
    if k.shape != y.shape or k.ndim != 1 or len(k) < 8:
        raise ValueError(f"chi(k): k and chi of shapes {k.shape} and {y.shape}; expected equal 1-D arrays of >= 8 "
                         "points")
    if not np.all(np.isfinite(y)):
        raise ValueError("chi(k): non-finite values; expected a finite prepared spectrum")
    s02_range = None
    if np.ndim(s02) == 1:
        s02_range = (float(s02[0]), float(s02[1]))
        if not 0 < s02_range[0] < s02_range[1]:
            raise ValueError(f"s02 range {s02!r}: expected 0 < low < high")
    elif not float(s02) > 0:
        raise ValueError(f"s02 {s02!r}: expected a value > 0 or a (low, high) range")
    c3_range = None
    if np.ndim(c3) == 1:
        c3_range = (float(c3[0]), float(c3[1]))
        if not (c3_range[0] < c3_range[1] and all(abs(v) < 0.01 for v in c3_range)):
            raise ValueError(f"c3 range {c3!r}: expected low < high within +-0.01 A^3")
    elif not (np.isfinite(c3) and abs(float(c3)) < 0.01):
        raise ValueError(f"c3 {c3!r}: expected a value within +-0.01 A^3 or a (low, high) range")
    if not 0.5 <= n_confidence < 1.0:
        raise ValueError(f"n_confidence {n_confidence!r}: expected a probability in [0.5, 1)")
    shells = _shells(material, sim.config["rmax"])
    r1 = shells[0][0]
    group = [j for j, (r, _) in enumerate(shells) if r <= GROUP * r1]
    near = [j for j, (r, _) in enumerate(shells) if j not in group and r <= NEAR * r1]
    deg_g = np.array([shells[j][1] for j in group])
    r_g = np.array([shells[j][0] for j in group])
    n_struct = float(deg_g.sum())

    def st(name, j, default):
        v = start.get(f"{name}{j + 1}")
        return float(v) if v is not None and np.isfinite(v) else default

    # starts: N_nn and the mean distance of the group as the adapter derives them from the network's sub-shells
    n_net = [st("N", j, shells[j][1]) for j in group]
    r_net = [st("R", j, shells[j][0]) for j in group]
    r_mean = float(np.dot(deg_g, r_g)) / n_struct
    n0 = float(np.clip(sum(n_net), 0.2 * n_struct, 1.8 * n_struct))
    a0 = float(np.clip(np.dot(n_net, r_net) / max(sum(n_net), 1e-9) / r_mean - 1.0, -0.05, 0.05))
    s0 = float(np.clip(st("sigma2_", group[0], 0.005), 0.0005, 0.025))
    q0, lo, hi = [n0, a0, s0], [0.0, -0.08, 0.0], [2.0 * n_struct, 0.08, 0.03]
    names = ["N_nn", "alpha", "sigma2_nn"]
    for j in near:
        rj, nj = shells[j]
        sj = float(np.clip(st("sigma2_", j, 0.006), 0.0005, 0.025))
        if near_mode == "free":
            q0 += [float(np.clip(st("N", j, nj), 0.2 * nj, 1.8 * nj)),
                   float(np.clip(st("R", j, rj), rj * 0.95, rj * 1.05)), sj]
            lo += [0.0, rj * 0.92, 0.0]
            hi += [2.0 * nj, rj * 1.08, 0.03]
            names += [f"N{j + 1}", f"R{j + 1}", f"sigma2_{j + 1}"]
        else:
            q0.append(sj)
            lo.append(0.0)
            hi.append(0.03)
            names.append(f"sigma2_{j + 1}")
    e0 = start.get("dE0")
    q0.append(float(np.clip(e0, -10.0, 20.0)) if e0 is not None and np.isfinite(e0) else 0.0)
    lo.append(-15.0)
    hi.append(25.0)
    names.append("dE0")

    # the window ends DR_HI above the farthest fitted shell's distance in the catalog structure (never moved by the
    # start: the fit of one file must not depend on which network started it)
    r_hi = max(shells[j][0] for j in group + near) + DR_HI
    r = np.arange(R_LO, r_hi + 1e-9, R_STEP)
    w = kwindow(k)
    data = chir(k, y, r, w)
    scale = math.sqrt(float(np.sum(np.abs(data) ** 2)))
    if not scale > 0:
        raise ValueError("chi(k): no signal in the first-shell window")
    n_idp = 2.0 * (k[-1] - k[0]) * (r[-1] - r[0]) / math.pi
    p = dict(base)
    p.update(material=material, noise=0.0, bkg_residual=0.0, c3=0.0)
    for key in ("N", "R", "sigma2_"):     # shells not fitted: from the structure (strained with the first shell)
        for j in range(1, 4):
            p.pop(f"{key}{j}", None)

    def c3_of(q, with_c3):
        return float(q[-2]) if with_c3 else (0.0 if c3_range is not None else float(c3))

    def params_of(q, n_nn, amp):
        """Simulator parameters of free vector ``q`` whose first entry is N_nn (amp = S0^2) or S0^2 (n_nn)."""
        out = dict(p)
        nn = q[0] if n_nn is None else n_nn
        out["s02"] = q[0] if amp is None else amp
        alpha, s2 = q[1], q[2]
        for m, j in enumerate(group):
            out[f"N{j + 1}"] = nn * deg_g[m] / n_struct
            out[f"R{j + 1}"] = r_g[m] * (1.0 + alpha)
            out[f"sigma2_{j + 1}"] = s2
        for i, j in enumerate(near):
            rj, nj = shells[j]
            if near_mode == "free":
                out[f"N{j + 1}"], out[f"R{j + 1}"], out[f"sigma2_{j + 1}"] = q[3 + 3 * i: 6 + 3 * i]
            else:   # one coordination scale and one isotropic expansion with the first shell
                out[f"N{j + 1}"], out[f"R{j + 1}"], out[f"sigma2_{j + 1}"] = nn * nj / n_struct, rj * (1 + alpha), \
                    q[3 + i]
        out["dE0"] = q[-1]
        out["strain"] = float(alpha)
        return out

    typ = {"N": 1.0, "R": 0.02, "s": 0.002, "a": 0.01, "d": 1.0, "c": 1e-4}

    def solve(q0, lo, hi, names, n_nn, amp):
        with_c3 = names[-2] == "c3_nn"

        def resid(q):
            c = c3_of(q, with_c3)
            d = chir(k, chik_float64(sim, params_of(q, n_nn, amp), {j + 1: c for j in group} if c else None), r,
                     w) - data
            return np.concatenate([d.real, d.imag]) / scale
        lo_a, hi_a = np.array(lo, float), np.array(hi, float)
        q0 = np.clip(np.array(q0, float), lo_a + 1e-9 * (hi_a - lo_a), hi_a - 1e-9 * (hi_a - lo_a))
        sol = least_squares(resid, q0, bounds=(lo_a, hi_a), x_scale=np.array([typ[n[0]] for n in names]),
                            diff_step=1e-4, max_nfev=400)
        span = hi_a - lo_a
        at = [names[i] for i in range(len(sol.x)) if min(sol.x[i] - lo_a[i], hi_a[i] - sol.x[i]) < 1e-4 * span[i]]
        return sol, at

    def amplitude_fit(q0, lo, hi, names):
        """The fit with the amplitude as ``s02`` says; returns (sol, names at a bound, S0^2, N_nn, n_from,
        n_test, nu)."""
        n_from, n_test = "fit", None
        nu = n_idp - len(q0)
        if s02_range is None:
            amp = float(s02)
            sol, at_bound = solve(q0, lo, hi, names, None, amp)
            return sol, at_bound, amp, float(sol.x[0]), n_from, n_test, nu
        # N_nn at the start (the network's reading), S0^2 free within the range
        names_a = ["s02"] + names[1:]
        sol, at_bound = solve([float(np.mean(s02_range))] + q0[1:], [s02_range[0]] + lo[1:],
                              [s02_range[1]] + hi[1:], names_a, n0, None)
        amp, n_nn, n_from = float(sol.x[0]), n0, "start"
        if "s02" in at_bound:   # no S0^2 of the range reaches the measured amplitude with that N: N is fitted,
            # and replaces the start's only if the amplitude's misfit at the bound is significant
            amp = s02_range[0] if sol.x[0] - s02_range[0] < s02_range[1] - sol.x[0] else s02_range[1]
            sol_n, at_n = solve([n0] + list(sol.x[1:]), lo, hi, names, None, amp)
            n_test = f_test(float(np.sum(sol.fun ** 2)), float(np.sum(sol_n.fun ** 2)), nu, n_confidence)
            if n_test["significant"]:
                sol, at_bound, n_nn, n_from = sol_n, at_n, float(sol_n.x[0]), "fit"
        return sol, [n for n in at_bound if n != "s02"], amp, n_nn, n_from, n_test, nu

    sol, at_bound, amp, n_nn, n_from, n_test, nu = amplitude_fit(q0, lo, hi, names)
    with_c3, c3_test = False, None
    if c3_range is not None:
        # the same fit with the nearest-neighbour shell's c3 free within its range, started harmonic; it replaces
        # the harmonic fit only when it is significantly better and c3 is not on a bound
        cut = len(q0) - 1
        fit_c3 = amplitude_fit(q0[:cut] + [float(np.clip(0.0, *c3_range))] + q0[cut:],
                               lo[:cut] + [c3_range[0]] + lo[cut:], hi[:cut] + [c3_range[1]] + hi[cut:],
                               names[:cut] + ["c3_nn"] + names[cut:])
        c3_test = f_test(float(np.sum(sol.fun ** 2)), float(np.sum(fit_c3[0].fun ** 2)), fit_c3[6], n_confidence)
        c3_test["c3"] = float(fit_c3[0].x[-2])
        c3_test["at_bound"] = "c3_nn" in fit_c3[1]
        if c3_test["significant"] and not c3_test["at_bound"]:
            sol, at_bound, amp, n_nn, n_from, n_test, nu = fit_c3
            with_c3 = True
    q = sol.x
    rf = float(np.sum(sol.fun ** 2))
    fitted = params_of(q, n_nn, amp)
    values = {}
    for j in group + near:
        for name in (f"N{j + 1}", f"R{j + 1}", f"sigma2_{j + 1}"):
            values[name] = float(fitted[name])
    values["dE0"] = float(q[-1])
    why = []
    if nu <= 0:
        why.append(f"{len(q)} free parameters >= {n_idp:.1f} independent points")
    if rf > max_rfactor:
        why.append(f"R-factor {rf:.3f} > {max_rfactor:g}")
    if at_bound:
        why.append("at a bound: " + ", ".join(at_bound))
    if with_c3:
        names = names[:-1] + ["c3_nn", names[-1]]
    free = dict(zip(["s02" if n_from == "start" else "N_nn"] + names[1:], map(float, q)))
    return {"values": values, "accepted": not why, "why": "; ".join(why), "rfactor": rf,
            "r_window": [float(r[0]), float(r[-1])], "k_range": [float(k[0]), float(k[-1])], "n_free": len(q),
            "n_idp": float(n_idp), "group": [j + 1 for j in group], "near": [j + 1 for j in near],
            "s02": float(amp), "n_from": n_from, "nfev": int(sol.nfev), "free": free, "c3": c3_of(q, with_c3),
            "n_test": n_test, "c3_test": c3_test}


def f_test(rss_fixed: float, rss_free: float, nu: float, confidence: float = N_CONFIDENCE) -> dict:
    """Hamilton's F test of one added parameter (W. C. Hamilton, Acta Cryst. 18, 502 (1965); in EXAFS practice
    L. Downward, C. H. Booth, W. W. Lukens and F. Bridges, AIP Conf. Proc. 882, 129 (2007)): the fit without it
    leaves the residual sum ``rss_fixed``, the fit with it ``rss_free``.  The added parameter is significant when
    ``F = (rss_fixed / rss_free - 1) nu`` exceeds the ``confidence`` quantile of F(1, nu), ``nu`` the independent
    points less the free parameters of the larger fit.  Only ratios of sums enter, so the R grid's oversampling of
    the independent points cancels; a misfit of the model itself (not noise) counts against the change.  Used for
    ``N_nn`` (network's reading with S0^2 on its bound against N free) and for the third cumulant (harmonic
    against c3 free)."""
    from scipy.stats import f as fdist
    if not nu > 0:
        return {"F": float("nan"), "F_crit": float("nan"), "nu": float(nu), "significant": False}
    F = (rss_fixed / max(rss_free, 1e-300) - 1.0) * nu
    crit = float(fdist.ppf(confidence, 1, nu))
    return {"F": float(F), "F_crit": crit, "nu": float(nu), "significant": bool(F > crit)}
