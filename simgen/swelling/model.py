"""Irradiation conditions -> void population: the documented swelling model of the ``swelling`` simulator.

Inputs: a material (an entry of ``catalogs/swelling/materials.yaml``), temperature ``T`` (K), dose ``D`` (dpa),
dose rate ``G`` (dpa/s) and helium content ``He`` (appm).  Outputs: the expected swelling ``S`` (%), the void
number density ``N_v`` (m^-3), the log-normal size distribution (median ``d_med``, width ``sigma_ln``) and a helium
bubble mode; :func:`draw_population` then draws one realisation in a foil.

Equations (symbols as in the catalog)
-------------------------------------
* temperature window, a bell in T whose peak moves with dose rate (Mansur 1994; Johnston et al. 1973)::

      sigma_T = (window_high - window_low) * T_m / 4        # the 0.3-0.55 T_m window spans +-2 sigma_T
      T_p     = peak_temperature + peak_shift_per_decade * log10(G / reference_dose_rate)
      f_T     = exp(-(T - T_p)^2 / (2 sigma_T^2))

* incubation dose, longest away from the peak and shortened by helium::

      tau = incubation_dose * (1 + 2 (1 - f_T)) / (1 + He / helium_incubation_scale)

* swelling, the Foster & Flinn (1980) bilinear law with a smooth transition (rate R in %/dpa)::

      S = R f_T [D + ln((1 + exp(alpha (tau - D))) / (1 + exp(alpha tau))) / alpha]

  S = 0 at D = 0, S -> R f_T (D - tau) well past incubation.

* void number density: nucleation-controlled, falling with temperature (Brager & Straalsund 1973), rising with
  dose rate and helium, and building up during incubation::

      N_v = number_density * exp(E_N / k (1/T - 1/T_p)) * sqrt(G / G_ref) * sqrt(1 + He / helium_density_scale)
            * (1 - exp(-2 D / tau))

* sizes: log-normal with ``sigma_ln``; the median follows from the void volume fraction
  ``f_void = S/(100+S) - f_bubbles`` and ``N_v`` (``E[d^3] = d_med^3 exp(4.5 sigma^2)``).  A median below the
  nucleus size keeps the nucleus size and lowers ``N_v`` instead; one above ``max_diameter exp(-2 sigma)`` is capped
  and ``N_v`` lowered (coarsening).  Drawn diameters are clipped to [nucleus/2, max_diameter].
* helium bubbles (bimodal distribution): ``bubbles_per_appm * He`` per m^3, log-normal median
  ``bubble_diameter``, width 0.2, clipped to [0.5, 4] nm.

Swelling definition (as in the TEM literature, e.g. Jacobs et al. 2023): ``S = 100 V_c / (V - V_c)`` where
``V_c`` is the cavity volume in the volume ``V``.  A void's diameter ``d`` is its volume-equivalent diameter, so
its volume is exactly ``pi d^3 / 6`` whatever its facets.

Realised labels (see :func:`population_labels`): swelling from *all* cavities (voids and bubbles) whose centre
lies inside the foil, over the foil volume (image area x thickness); number density and mean diameter of the void
mode only (bubbles of ~2 nm are barely resolved and would dominate a count).  Cavities centred within one void
size above or below the foil are drawn too (same density) and rendered where they cut the foil: they are the
source of the truncation bias of the standard TEM estimate, not part of the label.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import RecipeError

K_B = 8.617333262e-5  # eV/K
BUBBLE_SIGMA = 0.2
SHAPES = ("sphere", "octahedron", "truncated_octahedron", "cube", "dodecahedron")
_NUMERIC = ("melting_point", "window_low", "window_high", "peak_temperature", "reference_dose_rate",
            "peak_shift_per_decade", "incubation_dose", "transition_alpha", "swelling_rate", "number_density",
            "density_activation", "nucleus_diameter", "max_diameter", "sigma_ln", "truncation",
            "helium_density_scale", "helium_incubation_scale", "bubble_diameter", "bubbles_per_appm",
            "mean_inner_potential", "absorption_length")


@dataclass(frozen=True)
class Material:
    key: str
    name: str
    structure: str
    shape: str
    melting_point: float
    window_low: float
    window_high: float
    peak_temperature: float
    reference_dose_rate: float
    peak_shift_per_decade: float
    incubation_dose: float
    transition_alpha: float
    swelling_rate: float
    number_density: float
    density_activation: float
    nucleus_diameter: float
    max_diameter: float
    sigma_ln: float
    truncation: float
    helium_density_scale: float
    helium_incubation_scale: float
    bubble_diameter: float
    bubbles_per_appm: float
    mean_inner_potential: float
    absorption_length: float


@functools.lru_cache(maxsize=8)
def _load(path: str) -> dict:
    import yaml
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    out = {}
    for key, body in raw["materials"].items():
        where = f"{path}: materials.{key}"
        vals = {}
        for f in _NUMERIC:
            if f not in body or "value" not in body[f] or "source" not in body[f]:
                raise RecipeError(f"materials.{key}.{f}", body.get(f), "a mapping with 'value' and 'source'", path)
            vals[f] = float(body[f]["value"])
        shape = body["shape"]["value"]
        if shape not in SHAPES:
            raise RecipeError(f"materials.{key}.shape", shape, "one of " + ", ".join(SHAPES), where)
        out[key] = Material(key=key, name=body.get("name", key), structure=body.get("structure", ""),
                            shape=shape, **vals)
    return out


def load_materials() -> dict[str, Material]:
    """All materials of ``catalogs/swelling/materials.yaml`` (found through :mod:`simgen.catalogs`)."""
    from .. import catalogs
    return dict(_load(str(catalogs.find("swelling/materials.yaml"))))


# ---------------------------------------------------------------------------------------------- void shapes
@dataclass(frozen=True)
class ShapeGeometry:
    """A convex void: faces ``normals[k] . (p - c) <= a * h[k]``; volume ``vol_coeff * a^3``;
    circumradius ``circ * a``; sphericity (surface of the equal-volume sphere over the real surface)."""

    name: str
    normals: np.ndarray  # (F, 3) unit normals in the crystal frame (F = 0 for a sphere)
    h: np.ndarray  # (F,)
    vol_coeff: float
    circ: float
    sphericity: float

    def scale(self, d) -> np.ndarray:
        """Face distance ``a`` (sphere: radius) of a void of volume-equivalent diameter ``d``."""
        return np.cbrt(np.pi * np.asarray(d, dtype=np.float64) ** 3 / 6.0 / self.vol_coeff)


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@functools.lru_cache(maxsize=16)
def shape_geometry(shape: str, truncation: float = 1.0) -> ShapeGeometry:
    """Geometry of a void shape; ``truncation`` puts {100} faces of a truncated octahedron at that fraction of
    the {111}-octahedron vertex distance."""
    if shape == "sphere":
        return ShapeGeometry("sphere", np.zeros((0, 3)), np.zeros(0), 4.0 * math.pi / 3.0, 1.0, 1.0)
    s = (-1.0, 1.0)
    oct_n = _unit([[a, b, c] for a in s for b in s for c in s])
    cube_n = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
    dod_n = _unit([[a, b, 0] for a in s for b in s] + [[a, 0, b] for a in s for b in s]
                  + [[0, a, b] for a in s for b in s])
    if shape == "octahedron":
        normals, h = oct_n, np.ones(8)
    elif shape == "cube":
        normals, h = cube_n, np.ones(6)
    elif shape == "dodecahedron":
        normals, h = dod_n, np.ones(12)
    elif shape == "truncated_octahedron":
        if not 1.0 / 3.0 < truncation <= 1.0:
            raise RecipeError("truncation", truncation, "a number in (1/3, 1] for a truncated octahedron")
        normals = np.vstack([oct_n, cube_n])
        h = np.concatenate([np.ones(8), np.full(6, truncation * math.sqrt(3.0))])
    else:
        raise RecipeError("shape", shape, "one of " + ", ".join(SHAPES))
    from scipy.spatial import ConvexHull, HalfspaceIntersection
    hs = np.hstack([normals, -h[:, None]])
    verts = HalfspaceIntersection(hs, np.zeros(3)).intersections
    hull = ConvexHull(verts)
    vol = float(hull.volume)
    circ = float(np.max(np.linalg.norm(verts, axis=1)))
    r_eq = (3.0 * vol / (4.0 * math.pi)) ** (1.0 / 3.0)
    sph = 4.0 * math.pi * r_eq ** 2 / float(hull.area)
    return ShapeGeometry(shape, normals, h, vol, circ, sph)


def random_orientation(rng: np.random.Generator, max_tilt_deg: float = 5.0) -> np.ndarray:
    """Rotation (crystal -> lab) putting a low-index zone axis ([001], [011] or [111]) within ``max_tilt_deg`` of
    the beam (lab z) with a random in-plane rotation: TEM images of voids are taken near a zone axis."""
    zones = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=np.float64)
    z = _unit(zones[rng.integers(0, 3)])
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = _unit(np.cross(helper, z))
    y = np.cross(z, x)
    to_lab = np.vstack([x, y, z])  # rows: crystal vectors mapped to lab x, y, z
    psi = rng.uniform(0.0, 2.0 * math.pi)
    tilt = math.radians(max_tilt_deg) * math.sqrt(rng.uniform())
    phi = rng.uniform(0.0, 2.0 * math.pi)
    rz = np.array([[math.cos(psi), -math.sin(psi), 0], [math.sin(psi), math.cos(psi), 0], [0, 0, 1]])
    ax = np.array([math.cos(phi), math.sin(phi), 0.0])
    kx = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    rt = np.eye(3) + math.sin(tilt) * kx + (1 - math.cos(tilt)) * kx @ kx
    return rt @ rz @ to_lab


# ---------------------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelState:
    swelling: float  # %, expected
    f_T: float
    peak_temperature: float  # K, at this dose rate
    incubation: float  # dpa
    void_density: float  # m^-3
    median_diameter: float  # nm
    bubble_density: float  # m^-3
    void_fraction: float  # voids only (excluding bubbles), of the total volume


def temperature_factor(m: Material, T, dose_rate):
    sigma_t = (m.window_high - m.window_low) * m.melting_point / 4.0
    tp = m.peak_temperature + m.peak_shift_per_decade * np.log10(dose_rate / m.reference_dose_rate)
    return np.exp(-0.5 * ((T - tp) / sigma_t) ** 2), tp


def foster_flinn(dose, tau, alpha):
    """``D + ln((1 + e^{alpha (tau - D)}) / (1 + e^{alpha tau})) / alpha``, evaluated without overflow."""
    return dose + (np.logaddexp(0.0, alpha * (tau - dose)) - np.logaddexp(0.0, alpha * tau)) / alpha


def expected_state(m: Material, T: float, dose: float, dose_rate: float, helium: float) -> ModelState:
    """The model's expectation at one set of conditions (see the module docstring)."""
    f_t, tp = temperature_factor(m, T, dose_rate)
    f_t, tp = float(f_t), float(tp)
    tau = m.incubation_dose * (1.0 + 2.0 * (1.0 - f_t)) / (1.0 + helium / m.helium_incubation_scale)
    s = m.swelling_rate * f_t * float(foster_flinn(dose, tau, m.transition_alpha))
    s = min(max(s, 0.0), 100.0)
    frac = s / (100.0 + s)
    nb = m.bubbles_per_appm * helium * f_t
    fb = nb * 1e-27 * math.pi / 6.0 * m.bubble_diameter ** 3 * math.exp(4.5 * BUBBLE_SIGMA ** 2)
    fb = min(fb, 0.5 * frac)
    if frac > 0 and fb >= 0.5 * frac:  # bubbles cannot outgrow the swelling they are part of
        nb = fb / (1e-27 * math.pi / 6.0 * m.bubble_diameter ** 3 * math.exp(4.5 * BUBBLE_SIGMA ** 2))
    fv = max(frac - fb, 0.0)
    nv = (m.number_density * math.exp(min(m.density_activation / K_B * (1.0 / T - 1.0 / tp), 50.0))
          * math.sqrt(dose_rate / m.reference_dose_rate) * math.sqrt(1.0 + helium / m.helium_density_scale)
          * (1.0 - math.exp(-2.0 * dose / max(tau, 1e-3))))
    nv = min(max(nv, 0.0), 1e25)
    m3 = math.exp(4.5 * m.sigma_ln ** 2)
    cap = m.max_diameter * math.exp(-2.0 * m.sigma_ln)
    if fv <= 0.0 or nv <= 0.0:
        d_med, nv = m.nucleus_diameter, 0.0
    else:
        d_med = (fv / (nv * 1e-27 * math.pi / 6.0 * m3)) ** (1.0 / 3.0)
        if d_med < m.nucleus_diameter or d_med > cap:
            d_med = min(max(d_med, m.nucleus_diameter), cap)
            nv = fv / (1e-27 * math.pi / 6.0 * d_med ** 3 * m3)
    return ModelState(s, f_t, tp, tau, nv, d_med, nb, fv)


@dataclass
class Population:
    """One drawn cavity population in a foil ``[0, Lx) x [0, Ly) x [0, thickness]`` nm (periodic laterally).

    ``in_foil`` marks cavities whose centre lies in the foil (they define the labels); the others sit within
    ``z_pad`` above or below and are rendered only where they cut the foil.  ``bubble`` marks the helium mode.
    """

    centres: np.ndarray  # (n, 3) nm
    diameters: np.ndarray  # (n,) nm, volume-equivalent
    bubble: np.ndarray  # (n,) bool
    in_foil: np.ndarray  # (n,) bool
    lx: float
    ly: float
    thickness: float
    z_pad: float
    rotation: np.ndarray  # (3, 3) crystal -> lab
    state: ModelState


def z_padding(m: Material) -> float:
    g = shape_geometry(m.shape, m.truncation)
    return float(g.scale(m.max_diameter) * g.circ)


def draw_population(m: Material, T: float, dose: float, dose_rate: float, helium: float, thickness: float,
                    lx: float, ly: float, rng: np.random.Generator, max_cavities: int = 60000) -> Population:
    """Draw cavities with the model's densities and sizes: Poisson counts, uniform centres, log-normal sizes."""
    st = expected_state(m, T, dose, dose_rate, helium)
    pad = z_padding(m)
    vol = lx * ly * (thickness + 2.0 * pad) * 1e-27  # m^3
    nv = int(rng.poisson(st.void_density * vol))
    nb = int(rng.poisson(st.bubble_density * vol))
    if nv + nb > max_cavities:
        raise RecipeError("conditions", f"{nv + nb} cavities", f"at most {max_cavities} cavities per image "
                          "(lower image_size/pixel_size or the dose)")
    dv = np.clip(st.median_diameter * np.exp(m.sigma_ln * rng.standard_normal(nv)),
                 0.5 * m.nucleus_diameter, m.max_diameter)
    db = np.clip(m.bubble_diameter * np.exp(BUBBLE_SIGMA * rng.standard_normal(nb)), 0.5, 4.0)
    n = nv + nb
    c = np.empty((n, 3))
    c[:, 0] = rng.uniform(0.0, lx, n)
    c[:, 1] = rng.uniform(0.0, ly, n)
    c[:, 2] = rng.uniform(-pad, thickness + pad, n)
    rot = random_orientation(rng)
    d = np.concatenate([dv, db])
    bubble = np.concatenate([np.zeros(nv, bool), np.ones(nb, bool)])
    in_foil = (c[:, 2] >= 0.0) & (c[:, 2] <= thickness)
    return Population(c, d, bubble, in_foil, lx, ly, thickness, pad, rot, st)


def population_labels(pop: Population) -> dict[str, float]:
    """Realised labels of a population: swelling (%) of all cavities centred in the foil over the foil volume;
    number density (m^-3) and mean diameter (nm) of its voids (bubble mode excluded; NaN mean when none)."""
    foil_v = pop.lx * pop.ly * pop.thickness
    d = pop.diameters[pop.in_foil]
    vc = float(np.sum(np.pi * d ** 3 / 6.0))
    voids = pop.diameters[pop.in_foil & ~pop.bubble]
    return {
        "swelling": 100.0 * vc / (foil_v - vc),
        "number_density": len(voids) / (foil_v * 1e-27),
        "mean_diameter": float(np.mean(voids)) if len(voids) else float("nan"),
    }
