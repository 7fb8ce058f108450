"""Tests of the void-swelling simulator (simgen/swelling)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import yaml

import simgen
from simgen import catalogs
from simgen.errors import ParameterError, RecipeError
from simgen.swelling import kernels
from simgen.swelling.estimate import predicted_ratio, tem_estimate
from simgen.swelling.model import (Population, draw_population, expected_state, load_materials, population_labels,
                                   shape_geometry)
from simgen.testing import SimulatorContract


def _recipe(**config):
    raw = yaml.safe_load(catalogs.find("recipes/swelling-steels.yaml").read_text())
    raw["config"].update(config)
    return raw


class TestSwellingContract(SimulatorContract):
    recipe = _recipe(image_size=128, pixel_size=1.5)
    n = 3
    invalid_params = [("temperature", -1.0), ("dose", -1.0), ("thickness", 20.0), ("defocus", 1e5),
                      ("dose_rate", 0.0)]


@pytest.fixture(scope="module")
def sim():
    return simgen.load_recipe(_recipe(image_size=128, pixel_size=1.5)).build()


def _single(material="cu", size=256, **params):
    rec = {"simulator": "swelling", "config": {"material": material, "image_size": size},
           "params": {"temperature": 600.0, "dose": 1.0, **params}}
    return simgen.load_recipe(rec).build()


# ------------------------------------------------------------------ rejections by name
def test_unknown_material_rejected_by_name():
    raw = _recipe(image_size=128, pixel_size=1.5)
    raw["label"]["classes"]["unobtainium"] = {"weight": 1.0}
    with pytest.raises(RecipeError, match="unobtainium") as info:
        simgen.load_recipe(raw)
    assert "material" in str(info.value)
    with pytest.raises(RecipeError, match="config.material"):
        _single(material="adamantium")


def test_image_smaller_than_largest_void_rejected():
    with pytest.raises(RecipeError, match="image_size"):
        simgen.load_recipe(_recipe(image_size=128, pixel_size=0.2))


def test_negative_temperature_and_dose_rejected(sim):
    p = sim.sample_params(1, np.random.default_rng(0))
    for name in ("temperature", "dose"):
        q = dict(p)
        q[name] = np.array([-5.0])
        with pytest.raises(ParameterError, match=name):
            sim.simulate(q)


# ------------------------------------------------------------------ labels and the population
def test_swelling_label_equals_population(sim):
    p = sim.sample_params(8, np.random.default_rng(3))
    out = sim.simulate_outputs(p)
    for i in range(8):
        pop = sim.population({k: v[i:i + 1] for k, v in p.items()}, 0)
        d = pop.diameters[(pop.centres[:, 2] >= 0) & (pop.centres[:, 2] <= pop.thickness)]
        vc = np.sum(np.pi * d ** 3 / 6.0)
        foil = pop.lx * pop.ly * pop.thickness
        s = 100.0 * vc / (foil - vc)
        assert abs(out["params"]["swelling"][i] - s) <= 1e-6 * max(s, 1e-12) + 1e-12
        nvoid = np.sum(pop.in_foil & ~pop.bubble)
        assert out["params"]["number_density"][i] == pytest.approx(nvoid / (foil * 1e-27), rel=1e-12)


def test_model_rate_window_and_peak_shift():
    mats = load_materials()
    for key, rate, d0 in (("316_ss", 1.0, 60.0), ("fecr_fm", 0.2, 300.0)):
        m = mats[key]
        # far past incubation at the peak the swelling grows at the steady rate (%/dpa)
        a = expected_state(m, m.peak_temperature, d0, m.reference_dose_rate, 0.0).swelling
        b = expected_state(m, m.peak_temperature, d0 + 20.0, m.reference_dose_rate, 0.0).swelling
        assert (b - a) / 20.0 == pytest.approx(rate, rel=1e-3)
        # incubation: nothing at zero dose, little before tau
        assert expected_state(m, m.peak_temperature, 0.0, m.reference_dose_rate, 0.0).swelling == 0.0
        # bell in temperature: 0.3 and 0.55 T_m are 2 sigma away from the window centre
        s_lo = expected_state(m, 0.25 * m.melting_point, d0 + 20.0, m.reference_dose_rate, 0.0).swelling
        assert s_lo < 0.1 * b
    m = mats["ni"]
    # the peak moves up by peak_shift_per_decade per decade of dose rate (Johnston 1973: ions vs neutrons)
    ts = np.linspace(600, 1200, 6001)
    peak = lambda g: ts[np.argmax([expected_state(m, t, 5.0, g, 0.0).swelling for t in ts])]
    assert peak(1e-3) - peak(1e-6) == pytest.approx(3 * m.peak_shift_per_decade, abs=1.0)
    # number density falls and size rises with temperature
    lo = expected_state(mats["316_ss"], 700.0, 30.0, 1e-6, 0.0)
    hi = expected_state(mats["316_ss"], 800.0, 30.0, 1e-6, 0.0)
    assert hi.void_density < lo.void_density and hi.median_diameter > lo.median_diameter


def test_helium_gives_bimodal_population():
    m = load_materials()["316_ss"]
    pop = draw_population(m, 743.0, 20.0, 1e-6, 10.0, 100.0, 256.0, 256.0, np.random.default_rng(0))
    assert pop.bubble.sum() > 10 and (~pop.bubble).sum() > 10
    assert np.median(pop.diameters[pop.bubble]) < 4.0 < np.median(pop.diameters[~pop.bubble])


# ------------------------------------------------------------------ kernels vs slow NumPy
def _slow_chord(dx, dy, cz, a, normals, h, t, nz=20001):
    z = np.linspace(-3 * a + cz, 3 * a + cz, nz)
    dz = z[1] - z[0]
    inside = (z >= 0) & (z <= t)
    if len(normals) == 0:
        inside &= dx * dx + dy * dy + (z - cz) ** 2 <= a * a
    else:
        p = np.stack([np.full_like(z, dx), np.full_like(z, dy), z - cz], axis=1)
        inside &= np.all(p @ normals.T <= a * h[None, :], axis=1)
    return inside.sum() * dz


@pytest.mark.parametrize("shape", ["sphere", "octahedron", "truncated_octahedron", "cube", "dodecahedron"])
def test_chord_kernel_matches_numpy(shape):
    g = shape_geometry(shape, 0.85)
    rng = np.random.default_rng(1)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    normals = np.ascontiguousarray(g.normals @ rot.T)
    a = 10.0
    for _ in range(40):
        dx, dy = rng.uniform(-g.circ * a, g.circ * a, 2)
        cz = rng.uniform(-5, 45)
        fast = kernels.chord(dx, dy, cz, a, normals, g.h, 40.0)
        # tolerance: two z steps of the slow sampled version (6 a / 20000)
        assert fast == pytest.approx(_slow_chord(dx, dy, cz, a, normals, g.h, 40.0), abs=2 * 6 * a / 20000 + 1e-9)


@pytest.mark.parametrize("shape", ["sphere", "octahedron", "cube"])
def test_projected_volume_equals_void_volume(shape):
    """Summed path length x pixel area = pi d^3 / 6 for a void inside the foil (pixelisation < 1 %)."""
    sim = _single(material="ni", size=128)  # a 128 nm field
    m = dataclasses.replace(load_materials()["cu"], shape=shape)
    d = np.array([30.0, 12.0])
    pop = Population(np.array([[40.0, 50.0, 50.0], [127.0, 3.0, 50.0]]), d, np.zeros(2, bool), np.ones(2, bool),
                     128.0, 128.0, 100.0, 0.0, np.eye(3), None)
    path, mask = sim.project(pop, m)
    assert path.sum() == pytest.approx(np.sum(np.pi * d ** 3 / 6), rel=0.01)
    assert set(np.unique(mask)) == {0, 1, 2}
    # the void at the corner wraps around periodically: its mask touches both far edges
    assert (mask[:, 0] == 2).any() and (mask[:, -1] == 2).any()


def test_render_voids_matches_numpy_loop():
    sim = _single(material="ni", size=128)  # a 128 nm field
    m = load_materials()["316_ss"]
    pop = draw_population(m, 743.0, 10.0, 1e-6, 0.0, 80.0, 128.0, 128.0, np.random.default_rng(4))
    path, mask = sim.project(pop, m)
    g = shape_geometry(m.shape, m.truncation)
    normals = g.normals @ pop.rotation.T
    scales = g.scale(pop.diameters)
    rows = np.random.default_rng(0).integers(0, 128, (60, 2))
    for r, j in rows:
        ch = []
        for (cx, cy, cz), a in zip(pop.centres, scales):
            dx = (j + 0.5) - cx
            dy = (r + 0.5) - cy
            dx -= 128.0 * np.round(dx / 128.0)
            dy -= 128.0 * np.round(dy / 128.0)
            ch.append(kernels.chord(dx, dy, cz, a, normals, g.h, 80.0))
        ch = np.array(ch)
        assert path[r, j] == pytest.approx(ch.sum(), abs=1e-9)
        assert mask[r, j] == (0 if ch.max(initial=0) <= 0 else int(np.argmax(ch)) + 1)


# ------------------------------------------------------------------ TEM contrast
def test_fresnel_contrast_flips_with_defocus_sign():
    sim = _single(size=256)
    m = load_materials()["cu"]
    pop = Population(np.array([[128.0, 128.0, 50.0]]), np.array([20.0]), np.zeros(1, bool), np.ones(1, bool),
                     256.0, 256.0, 100.0, 0.0, np.eye(3), None)
    r = np.hypot(*np.meshgrid(np.arange(256) + 0.5 - 128, np.arange(256) + 0.5 - 128))
    prof = {}
    for df in (-1000.0, 1000.0):
        p = sim.prepare_params({"defocus": df, "counts": 1e6, "blur": 0.0, "clutter": 0.0, "bend_contours": 0.0,
                                "thickness_variation": 0.0})
        img, _ = sim.render(pop, p, 0, np.random.default_rng(0))
        centre = img[r < 3].mean()
        fringe = img[(r >= 10.5) & (r < 12.5)].mean()
        prof[df] = (centre, fringe - img[r > 40].mean())
    # underfocus: bright interior, dark fringe; overfocus: interior darker, bright fringe
    assert prof[-1000.0][0] > 1.3 and prof[-1000.0][0] > prof[1000.0][0] + 0.15
    assert prof[-1000.0][1] < -0.01 and prof[1000.0][1] > 0.01


def test_voids_visible_in_image(sim):
    """Mean intensity inside void masks differs from the matrix (underfocus recipe: brighter)."""
    p = sim.sample_params(6, np.random.default_rng(7))
    out = sim.simulate_outputs(p)
    for x, m in zip(out["x"], out["mask"]):
        if (m > 0).mean() > 0.02:
            assert x[m > 0].mean() > x[m == 0].mean()


# ------------------------------------------------------------------ the standard TEM estimate and its bias
@pytest.mark.parametrize("shape,tol", [("sphere", 0.08), ("octahedron", 0.2), ("cube", 0.25)])
def test_tem_estimate_bias(shape, tol):
    """Low coverage: sum of estimates / sum of true swelling = predicted truncation x facet factor within tol
    (spheres: analytic, 8 % for pixelisation and Poisson scatter; polyhedra: the facet factor is an orientation
    average, images are near a zone axis)."""
    sim = _single(size=256)
    m = dataclasses.replace(load_materials()["cu"], shape=shape, sigma_ln=0.3, max_diameter=40.0)
    est = tru = pred = 0.0
    for k in range(30):
        pop = draw_population(m, 593.0, 1.5, 2e-7, 0.0, 80.0, 256.0, 256.0, np.random.default_rng(k))
        _, mask = sim.project(pop, m)
        lab = population_labels(pop)
        est += tem_estimate(mask, 1.0, 80.0)["swelling"]
        tru += lab["swelling"]
        pred += predicted_ratio(pop.diameters[pop.in_foil], 80.0, shape_geometry(shape).sphericity) * lab["swelling"]
    assert est / tru == pytest.approx(pred / tru, rel=tol)
    assert est / tru > 1.0  # truncation always inflates the estimate at low coverage


def test_tem_estimate_overlap_lowers_estimate():
    """At high coverage the instance-mask estimate falls below the no-overlap prediction (hidden voids)."""
    sim = _single(size=256)
    m = dataclasses.replace(load_materials()["cu"], shape="sphere", sigma_ln=0.3, max_diameter=40.0)
    ratios = []
    for dose in (1.5, 20.0):
        est = pred = 0.0
        for k in range(10):
            pop = draw_population(m, 593.0, dose, 2e-7, 0.0, 80.0, 256.0, 256.0, np.random.default_rng(k))
            _, mask = sim.project(pop, m)
            lab = population_labels(pop)
            est += tem_estimate(mask, 1.0, 80.0)["swelling"]
            pred += predicted_ratio(pop.diameters[pop.in_foil], 80.0) * lab["swelling"]
        ratios.append(est / pred)
    assert ratios[1] < ratios[0] - 0.05
    binary = tem_estimate(mask > 0, 1.0, 80.0, instance=False)
    assert binary["count"] <= tem_estimate(mask, 1.0, 80.0)["count"]


def test_plot_panel(tmp_path, sim):
    from simgen.swelling.plot import plot_panel
    p = sim.sample_params(12, np.random.default_rng(2))
    out = sim.simulate_outputs(p)
    path = plot_panel(out["x"], {**p, **out["params"]}, sim.classes, tmp_path / "panel.png", 2, 2)
    assert (tmp_path / "panel.png").stat().st_size > 1000 and path.endswith("panel.png")


def test_separable_fresnel_and_mtf_match_numpy():
    """Row x column phasors / factors against the direct exp of the summed frequencies."""
    rng = np.random.default_rng(2)
    n = 64
    f = np.fft.fftfreq(n, 0.5)
    fr = np.fft.rfftfreq(n, 0.5)
    spec = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))).astype(np.complex64)
    ref = spec * np.exp(-1j * 3.7 * (f[:, None] ** 2 + f[None, :] ** 2))
    kernels.fresnel(spec, f, f, 3.7)
    assert np.allclose(spec, ref, rtol=1e-5, atol=1e-5)
    sp = rng.normal(size=(n, len(fr))) + 1j * rng.normal(size=(n, len(fr)))
    ref = sp * np.exp(-2 * np.pi ** 2 * 1.3 * (f[:, None] ** 2 + fr[None, :] ** 2))
    kernels.gaussian_mtf(sp, f, fr, 1.3)
    assert np.allclose(sp, ref, rtol=1e-12, atol=1e-14)


def test_modulate_waves_matches_numpy():
    """Thickness and bend-contour modulation from plane-wave factors vs the full fields in NumPy."""
    from simgen.swelling.simulator import plane_waves, smooth_field
    rng = np.random.default_rng(4)
    n = 48
    coords = (np.arange(n) + 0.5) * 1.5
    t = plane_waves(rng, coords, n * 1.5, 3)
    b = plane_waves(rng, coords, n * 1.5, 2)
    wave = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))).astype(np.complex64)
    out = np.empty((n, n), dtype=np.float32)
    kernels.modulate_waves(wave, *t, 0.4, *b, 0.6, 1 / 0.1 ** 2, out)
    tf, bf = smooth_field(*t), smooth_field(*b)
    # the fields as sums of cos(2 pi (kx x + ky y) / field + ph), drawn again in the same order
    g = np.random.default_rng(4)
    for k, fld in ((3, tf), (2, bf)):
        direct = np.zeros((n, n))
        for _ in range(k):
            kx, ky = g.integers(-2, 3, 2)
            kx = 1 if kx == 0 and ky == 0 else kx
            ph = g.uniform(0, 2 * np.pi)
            a = g.normal(0.0, 1.0) / np.sqrt(k)
            direct += a * np.cos(2 * np.pi * (kx * coords[None, :] + ky * coords[:, None]) / (n * 1.5) + ph)
        assert np.allclose(fld, direct, atol=1e-12)
    ref = np.abs(wave.astype(complex)) ** 2 * np.exp(-0.4 * tf) * (1 - 0.6 * np.exp(-bf ** 2 / 0.1 ** 2))
    assert np.allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", ["sphere", "truncated_octahedron", "cube"])
def test_render_voids_matches_chord_per_pixel(shape):
    """The projection (bounding boxes, per-row face terms, periodic wrap, longest-chord mask) against the plain
    chord of every void at every pixel."""
    g = shape_geometry(shape, 0.85)
    rng = np.random.default_rng(7)
    n, px, thick = 40, 1.0, 30.0
    nv = 12
    centres = np.c_[rng.uniform(0, n * px, (nv, 2)), rng.uniform(-3, thick + 3, nv)]
    scales = rng.uniform(2.0, 6.0, nv)
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    normals = np.ascontiguousarray(g.normals @ R.T) if len(g.normals) else np.zeros((0, 3))
    path, best = np.zeros((n, n)), np.zeros((n, n))
    mask = np.zeros((n, n), dtype=np.uint16)
    kernels.render_voids(centres, scales, normals, g.h, g.circ, thick, px, path, best, mask)
    ref = np.zeros((n, n))
    refbest = np.zeros((n, n))
    refmask = np.zeros((n, n), dtype=np.uint16)
    for i in range(nv):
        for r in range(n):
            for j in range(n):
                best_c = 0.0
                for sy in (-n, 0, n):            # periodic images
                    for sx in (-n, 0, n):
                        dx = (j + sx + 0.5) * px - centres[i, 0]
                        dy = (r + sy + 0.5) * px - centres[i, 1]
                        c = kernels.chord(dx, dy, centres[i, 2], scales[i], normals, g.h, thick)
                        ref[r, j] += c
                        best_c = max(best_c, c)
                if best_c > refbest[r, j]:
                    refbest[r, j] = best_c
                    refmask[r, j] = i + 1
    assert path.max() > 1.0
    assert np.allclose(path, ref, atol=1e-9)
    assert np.array_equal(mask, refmask)
