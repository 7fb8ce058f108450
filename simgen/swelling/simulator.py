"""``swelling``: TEM bright-field micrographs of irradiated metals with voids, their instance mask and labels.

Pipeline per sample (all randomness from ``sample_rng(p, i)``):

1. conditions -> population (:mod:`.model`): Poisson number of voids (+ helium bubbles) with log-normal sizes,
   uniform in a foil of thickness ``thickness`` and one void size above/below it, all in one crystal orientation
   near a low-index zone axis (octahedra/cubes/dodecahedra share their facets' directions, as in a grain);
2. projection (:func:`.kernels.render_voids`, Numba): path length ``L(x, y)`` through the voids inside the foil,
   and the instance mask (the void with the longest path at each pixel);
3. exit wave ``psi = exp((1/(2 lambda_abs) - i sigma V0) L)``: a void removes the mean inner potential ``V0``
   (phase ``sigma V0`` per nm, ``sigma`` the interaction constant at the accelerating voltage) and absorption;
4. defocus transfer (Fresnel propagation, numpy FFT): ``psi_f = F^-1[F[psi] exp(-i pi lambda defocus q^2)]``;
   defocus < 0 is underfocus (weakened objective lens): voids show a bright interior and a dark Fresnel fringe;
   overfocus reverses it (Ruehle & Wilkens; Jenkins & Kirk, "Characterisation of radiation damage by TEM", 2001);
5. clutter, multiplicative on ``|psi_f|^2``: thickness variation (absorption), bend contours (dark bands along
   the zero line of a smooth random field), dislocation lines and loops (dark strain-contrast lines);
6. detector blur (Gaussian, ``blur`` nm), shot noise at ``counts`` electrons per pixel (Gaussian approximation of
   Poisson), normalisation to unit mean.

``x`` is the normalised intensity (float32, dims (y, x) in nm); the ``mask`` output holds instance ids (uint16,
0 = matrix); realised labels (swelling, number density, mean diameter) come back under ``params``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft

from ..errors import ParameterError, RecipeError
from ..simulator import Axis, Field, Output, Simulator
from . import kernels
from .model import draw_population, load_materials, population_labels, shape_geometry, z_padding


def electron_wavelength(kv: float) -> float:
    """Relativistic electron wavelength (nm) at ``kv`` kilovolts."""
    v = kv * 1e3
    return 1.226426 / math.sqrt(v * (1.0 + 0.97845e-6 * v))


def interaction_constant(kv: float) -> float:
    """sigma (rad / (V nm)) = 2 pi m e lambda / h^2 (relativistic m)."""
    lam = electron_wavelength(kv) * 1e-9
    m0, e, h, c = 9.1093837e-31, 1.602176634e-19, 6.62607015e-34, 2.99792458e8
    m = m0 + e * kv * 1e3 / c ** 2
    return 2.0 * math.pi * m * e * lam / h ** 2 * 1e-9


class SwellingSimulator(Simulator):
    name = "swelling"
    version = "1"
    description = ("TEM bright-field micrographs of voids in irradiated metals (Fresnel contrast), with instance "
                   "masks; labels from the drawn population")
    x_name, x_units = "intensity", "normalised"

    CONFIG = {
        "image_size": Field(kind="int", low=128, high=1024, default=256, doc="pixels per side (square image)"),
        "pixel_size": Field(units="nm", low=0.1, high=1.5, default=1.0, doc="pixel size"),
        "voltage": Field(units="kV", low=60.0, high=400.0, default=200.0, doc="accelerating voltage"),
        "material": Field(kind="str", default="", doc="material key when the recipe has no class label"),
        "max_cavities": Field(kind="int", low=1, high=65535, default=60000, doc="safety cap per image"),
    }
    PARAMS = {
        "temperature": Field(units="K", low=0.0, high=4000.0, low_open=True, doc="irradiation temperature"),
        "dose": Field(units="dpa", low=0.0, high=1000.0, doc="irradiation dose"),
        "dose_rate": Field(units="dpa/s", low=0.0, high=1.0, low_open=True, default=1e-6, doc="dose rate"),
        "helium": Field(units="appm", low=0.0, high=1e5, default=0.0, doc="helium content"),
        "defocus": Field(units="nm", low=-10000.0, high=10000.0, default=-1000.0,
                         doc="objective defocus, < 0 underfocus"),
        "thickness": Field(units="nm", low=50.0, high=150.0, default=100.0, doc="foil thickness"),
        "counts": Field(units="e/px", low=1.0, high=1e6, default=300.0, target=False,
                        doc="electrons per pixel (shot noise)"),
        "blur": Field(units="nm", low=0.0, high=5.0, default=0.5, target=False, doc="detector/coherence blur sigma"),
        "clutter": Field(units="", low=0.0, high=1.0, default=0.3, target=False,
                         doc="dislocation line/loop density, relative"),
        "bend_contours": Field(units="", low=0.0, high=1.0, default=0.3, target=False,
                               doc="bend-contour strength"),
        "thickness_variation": Field(units="", low=0.0, high=0.5, default=0.1, target=False,
                                     doc="relative thickness variation across the field"),
        "swelling": Field(units="%", low=0.0, default=0.0, doc="OUTPUT: realised swelling (input ignored)"),
        "number_density": Field(units="1/m^3", low=0.0, default=0.0, doc="OUTPUT: realised void number density"),
        "mean_diameter": Field(units="nm", low=0.0, default=0.0, doc="OUTPUT: realised mean void diameter"),
    }
    OUTPUTS = {"mask": Output("uint16", "", "void instance ids (0 = matrix), the void with the longest path")}
    REALISED = ("swelling", "number_density", "mean_diameter")

    # ------------------------------------------------------------------ set-up
    def setup(self):
        c = self.config
        n = c["image_size"]
        px = c["pixel_size"]
        self._axis = Axis.image(n, n, px, "nm")
        mats = load_materials()
        if self.label is not None:
            names = list(self.label.classes)
            for cname in names:
                if cname not in mats:
                    raise RecipeError(f"label.classes.{cname}", cname, "a material of catalogs/swelling/"
                                      "materials.yaml: " + ", ".join(mats))
        else:
            if not c["material"]:
                raise RecipeError("config.material", c["material"], "a material (or a recipe label whose classes "
                                  "are materials): " + ", ".join(mats))
            if c["material"] not in mats:
                raise RecipeError("config.material", c["material"], "one of " + ", ".join(mats))
            names = [c["material"]]
        self._materials = {k: mats[k] for k in names}
        self._material_names = tuple(names)
        field = n * px
        for k, m in self._materials.items():
            g = shape_geometry(m.shape, m.truncation)
            extent = 2.0 * float(g.scale(m.max_diameter) * g.circ) + 2.0 * px
            if extent > field:
                raise RecipeError("config.image_size", n, f"a field of view (image_size x pixel_size = {field:g} "
                                  f"nm) larger than the largest void of material '{k}' ({extent:.1f} nm across): "
                                  f"image_size >= {math.ceil(extent / px)}")
        self._lam = electron_wavelength(c["voltage"])
        self._sigma = interaction_constant(c["voltage"])

    @property
    def axis(self) -> Axis:
        return self._axis

    def plot_corpus(self, corpus, path, n: int = 6) -> bool:
        """``simgen plot``: a panel of micrographs across temperature (rows) and dose (columns)."""
        from .plot import plot_panel
        done = np.flatnonzero(corpus.chunk_crcs() >= 0)
        if len(done) == 0:
            return False
        rows = np.concatenate([np.arange(corpus.chunk_slice(k).start, corpus.chunk_slice(k).stop) for k in done])
        names = list(corpus.params_all)
        table = corpus.params[...][rows]
        params = {name: table[:, j] for j, name in enumerate(names)}
        if corpus.label is not None:
            params["label"] = corpus.label[...][rows]

        class _Rows:  # lazy view: only the images shown are read
            shape = (len(rows), *corpus.x.shape[1:])

            def __getitem__(self, i):
                return corpus.x[int(rows[i])]

        plot_panel(_Rows(), params, list(corpus.classes), path)
        return True

    def _freqs(self):
        n, px = self.config["image_size"], self.config["pixel_size"]
        f = np.fft.fftfreq(n, px)
        return f, f, np.fft.rfftfreq(n, px)

    def material_of(self, p, i):
        if self.label is not None:
            return self._materials[self.classes[int(p["label"][i])]]
        return self._materials[self._material_names[0]]

    # ------------------------------------------------------------------ simulation
    def population(self, params, i, rng=None):
        """The drawn 3-D population of sample ``i`` (a :class:`.model.Population`)."""
        p = self.prepare_params(params, rng)
        return self._population(p, i, self.sample_rng(p, i))

    def _population(self, p, i, g):
        n, px = self.config["image_size"], self.config["pixel_size"]
        m = self.material_of(p, i)
        return draw_population(m, p["temperature"][i], p["dose"][i], p["dose_rate"][i], p["helium"][i],
                               p["thickness"][i], n * px, n * px, g, self.config["max_cavities"])

    def simulate(self, params, rng=None) -> np.ndarray:
        return self.simulate_outputs(params, rng)["x"]

    def simulate_outputs(self, params, rng=None) -> dict:
        p = self.prepare_params(params, rng)
        nb = self.n_of(p)
        n = self.config["image_size"]
        x = np.empty((nb, n, n), dtype=np.float32)
        mask = np.zeros((nb, n, n), dtype=np.uint16)
        lab = {k: np.empty(nb) for k in self.REALISED}
        for i in range(nb):
            g = self.sample_rng(p, i)
            pop = self._population(p, i, g)
            img, msk = self.render(pop, p, i, g)
            x[i] = img
            mask[i] = msk
            for k, v in population_labels(pop).items():
                lab[k][i] = v
        return {"x": x, "mask": mask, "params": lab}

    def project(self, pop, material):
        """Path length through the voids (nm) and the instance mask of a population."""
        n, px = self.config["image_size"], self.config["pixel_size"]
        geo = shape_geometry(material.shape, material.truncation)
        normals = np.ascontiguousarray(geo.normals @ pop.rotation.T)
        scales = geo.scale(pop.diameters)
        path = np.zeros((n, n))
        best = np.zeros((n, n))
        mask = np.zeros((n, n), dtype=np.uint16)
        kernels.render_voids(pop.centres, scales, normals, geo.h, geo.circ, pop.thickness, px, path, best, mask)
        return path, mask

    def render(self, pop, p, i, g):
        """Image (float32, unit mean) and mask of one population; ``g`` continues the sample's generator."""
        n, px = self.config["image_size"], self.config["pixel_size"]
        m = self.material_of(p, i)
        path, mask = self.project(pop, m)
        fy, fx, fxr = self._freqs()
        psi = np.empty((n, n), dtype=np.complex64)
        kernels.exit_wave(path, 0.5 / m.absorption_length, -self._sigma * m.mean_inner_potential, psi)
        spec = sp_fft.fft2(psi, overwrite_x=True)
        kernels.fresnel(spec, fy, fx, math.pi * self._lam * p["defocus"][i])
        wave = sp_fft.ifft2(spec, overwrite_x=True)
        field = n * px
        coords = (np.arange(n) + 0.5) * px
        # thickness variation (absorption) and bend contours (dark bands along the zero line of a smooth field)
        smooth = plane_waves(g, coords, field, 3)
        bfield = plane_waves(g, coords, field, 2)
        width = g.uniform(0.05, 0.2)
        inten = np.empty((n, n), dtype=np.float32)
        kernels.modulate_waves(wave, *smooth, p["thickness_variation"][i] * p["thickness"][i] / m.absorption_length,
                               *bfield, 0.6 * p["bend_contours"][i], 1.0 / width ** 2, inten)
        # dislocation lines and loops
        segs0, segs1, w, s = _dislocations(g, p["clutter"][i], field, px)
        if len(segs0):
            kernels.render_lines(segs0, segs1, w, s, px, inten)
        # detector blur
        b = p["blur"][i]
        if b > 0:
            sp = sp_fft.rfft2(inten)
            kernels.gaussian_mtf(sp, fy, fxr, b * b)
            inten = sp_fft.irfft2(sp, s=(n, n), overwrite_x=True)
        out = np.empty((n, n), dtype=np.float32)
        kernels.shot_noise(inten, g.standard_normal((n, n), dtype=np.float32), p["counts"][i], out)
        return out, mask

    def prepare_params(self, params, rng=None):
        p = super().prepare_params(params, rng)
        if self.label is None and "label" in params:
            raise ParameterError("label", params["label"], f"no label: this recipe's material is "
                                 f"'{self._material_names[0]}'", self.name)
        return p


def plane_waves(g, coords, field, k):
    """A smooth periodic random field of unit-ish amplitude, k plane waves of the lowest spatial frequencies,
    as separable factors: (amp (k,), cy, sy (k, ny), cx, sx (k, nx)) with field[r, j] = sum_w amp[w] (cy[w, r]
    cx[w, j] - sy[w, r] sx[w, j]) (what ``kernels.modulate_waves`` sums row by row)."""
    n = len(coords)
    amp = np.empty(k)
    ax = np.empty((k, n))
    ay = np.empty((k, n))
    for w in range(k):
        kx, ky = g.integers(-2, 3, 2)
        if kx == 0 and ky == 0:
            kx = 1
        ph = g.uniform(0, 2 * math.pi)
        amp[w] = g.normal(0.0, 1.0) / math.sqrt(k)
        ax[w] = 2 * math.pi * kx / field * coords + ph
        ay[w] = 2 * math.pi * ky / field * coords
    return amp, np.cos(ay), np.sin(ay), np.cos(ax), np.sin(ax)


def smooth_field(amp, cy, sy, cx, sx) -> np.ndarray:
    """The full image of a ``plane_waves`` field (for plots and tests; the simulator never forms it)."""
    return np.einsum("w,wr,wj->rj", amp, cy, cx) - np.einsum("w,wr,wj->rj", amp, sy, sx)


def _dislocations(g, clutter, field, px):
    """Segments of dislocation lines (random walks) and loops (ellipses, 16 segments each)."""
    area = (field / 100.0) ** 2  # in (100 nm)^2
    n_lines = g.poisson(clutter * 1.5 * area)
    n_loops = g.poisson(clutter * 3.0 * area)
    a0, a1, ws, ss = [], [], [], []
    for _ in range(n_lines):
        pt = g.uniform(0, field, 2)
        ang = g.uniform(0, 2 * math.pi)
        step = g.uniform(0.1, 0.3) * field
        w, s = g.uniform(0.8, 2.0), g.uniform(0.1, 0.35)
        for _k in range(4):
            ang += g.normal(0, 0.4)
            nxt = pt + step * np.array([math.cos(ang), math.sin(ang)])
            a0.append(pt)
            a1.append(nxt)
            ws.append(w)
            ss.append(s)
            pt = nxt
    for _ in range(n_loops):
        c = g.uniform(0, field, 2)
        r = g.uniform(3.0, 20.0)
        ecc = g.uniform(0.3, 1.0)
        rot = g.uniform(0, math.pi)
        w, s = g.uniform(0.6, 1.2), g.uniform(0.1, 0.3)
        t = np.linspace(0, 2 * math.pi, 17)
        ex = r * np.cos(t)
        ey = r * ecc * np.sin(t)
        xs = c[0] + ex * math.cos(rot) - ey * math.sin(rot)
        ys = c[1] + ex * math.sin(rot) + ey * math.cos(rot)
        for k in range(16):
            a0.append((xs[k], ys[k]))
            a1.append((xs[k + 1], ys[k + 1]))
            ws.append(w)
            ss.append(s)
    if not a0:
        return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros(0)
    return (np.asarray(a0, dtype=np.float64), np.asarray(a1, dtype=np.float64), np.asarray(ws), np.asarray(ss))
