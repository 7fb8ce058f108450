"""The example modality: contract tests and its kernel against a slow NumPy version."""
import numpy as np

from simgen.examples import kernels
from simgen.testing import SimulatorContract


class TestPeaksContract(SimulatorContract):
    recipe = "peaks-demo"
    n = 5
    invalid_params = [("width", -1.0), ("width", 0.0), ("eta", 1.5), ("noise", -0.1), ("label", 7)]


def pseudo_voigt_slow(x, c, w, a, eta, off, slope, noise):
    g = np.exp(-4 * np.log(2) * ((x - c) / w) ** 2)
    lor = 1 / (1 + 4 * ((x - c) / w) ** 2)
    return a * ((1 - eta) * g + eta * lor) + off + slope * (x - x[0]) + noise


def test_kernel_matches_numpy():
    rng = np.random.default_rng(5)
    x = np.linspace(-3, 40, 301)
    n = 7
    args = [rng.uniform(0, 30, n), rng.uniform(0.5, 9, n), rng.uniform(0.1, 3, n), rng.uniform(0, 1, n),
            rng.normal(0, 1, n), rng.normal(0, 0.1, n)]
    noise = rng.normal(0, 0.1, (n, len(x)))
    out = np.empty((n, len(x)), np.float32)
    kernels.pseudo_voigt_batch(x, *args, noise, out)
    ref = np.stack([pseudo_voigt_slow(x, *(a[i] for a in args), noise[i]) for i in range(n)])
    np.testing.assert_allclose(out, ref, rtol=2e-6, atol=2e-6)  # float32 output


def test_fwhm_is_the_width():
    # analytic case: a noise-free Gaussian's half-maximum points are width apart
    from simgen import simulate
    x, _ = simulate("peaks-demo", {"center": 50.0, "width": 10.0, "amplitude": 1.0, "eta": 0.0, "offset": 0.0,
                                   "slope": 0.0, "noise": 0.0, "label": 0})
    axis = np.linspace(0, 100, 1024)
    above = axis[x[0] >= 0.5]
    assert abs((above[-1] - above[0]) - 10.0) < 2 * (axis[1] - axis[0])
