"""Which XAFS model reads a file: the models whose domain holds the file's absorber and edge, then (metal foil or
oxide model for one absorber) the nearest first-shell |chi(R)| peak; a file no model holds is refused with the
reason.  Checked on simulated mu(E) of known class (not on measured benchmark files)."""
from __future__ import annotations

import numpy as np
import pytest

from simgen.exafs import EXAFSSimulator
from simgen.exafs.edges import edge_energy
from simgen.recipe import load_recipe
from train.measurements import Measurement
from train.modalities import OutOfDomain, get
from train.modalities.exafs import first_shell_peak
from train.prepare import target_spec

SPECS = {name: target_spec(load_recipe(name)) for name in ("exafs-foils", "exafs-oxides", "exafs-5d-l3")}


def _mu_file(material, **params):
    """A simulated mu(E) measurement (absolute energies, scaled and offset like raw data) of ``material``."""
    el, edge = material.split("_")[:2]
    sim = EXAFSSimulator({"output": "mu", "e_min": -200.0, "e_max": 900.0, "e_step": 0.5})
    e = sim.axis.coords[0] + edge_energy(el, edge)
    mu = sim.simulate({"material": material, "dE0": 3.0, "edge_width": 2.0, "pre_slope": 0.3, **params})[0]
    return Measurement(e, mu * 1.7 + 0.4, "energy", "eV", "mu(E)", "exafs", {})


def test_first_shell_peak_of_one_shell():
    """A single shell sin(2kR) k^2 e^(-2 k^2 s2) peaks at R (no phase shift) whatever its amplitude."""
    k = np.arange(3.0, 12.0001, 0.05)
    for r in (1.5, 2.2, 2.9):
        for amp in (0.3, 3.0):
            y = amp * np.sin(2 * k * r) * np.exp(-2 * k ** 2 * 0.004)
            assert first_shell_peak(k, y * k ** 2) == pytest.approx(r, abs=0.02)
    # a weak first shell below a strong second one still counts when above 40 % of the largest peak
    y = 0.6 * np.sin(2 * k * 1.6) + np.sin(2 * k * 2.9)
    assert first_shell_peak(k, y * k ** 2) == pytest.approx(1.6, abs=0.03)


@pytest.mark.parametrize("material,model,cls", [
    ("Cu_K_fcc", "exafs-foils", "Cu_K_fcc"), ("Cu_K_cuo", "exafs-oxides", "Cu_K_cuo"),
    ("Cu_K_cu2o", "exafs-oxides", "Cu_K_cu2o"), ("Fe_K_bcc", "exafs-foils", "Fe_K_bcc"),
    ("Fe_K_hematite", "exafs-oxides", None), ("Ti_K_hcp", "exafs-foils", "Ti_K_hcp"),
    ("Ti_K_anatase", "exafs-oxides", None), ("Zn_K_zno", "exafs-oxides", "Zn_K_zno"),
    ("Ni_K_nio", "exafs-oxides", "Ni_K_nio"), ("Pt_L3_fcc", "exafs-5d-l3", None)])
def test_model_chosen_by_edge_then_first_shell(material, model, cls):
    m = _mu_file(material, T=150.0, theta_D=400.0)
    name, info = get("exafs").choose_model(m, SPECS)
    assert name == model, info
    if cls is not None:
        assert info["nearest_class"] == cls


def test_ce_l3_refused_with_every_models_reason():
    m = _mu_file("Ce_L3_ceo2")
    with pytest.raises(OutOfDomain, match="Ce L3 edge") as exc:
        get("exafs").choose_model(m, SPECS)
    assert all(name in exc.value.why for name in SPECS)


def test_rule_on_noisy_draws_of_both_corpora():
    """Draws over the recipes' priors (noise, disorder, strain, T) of the absorbers both models hold: the rule
    picks the model the draw came from in at least 95 % of them."""
    adapter = get("exafs")
    right = total = 0
    rng = np.random.default_rng(3)
    for recipe, pool in (("exafs-foils", ["Ti_K_hcp", "Fe_K_bcc", "Co_K_hcp", "Ni_K_fcc", "Cu_K_fcc", "Zn_K_hcp"]),
                         ("exafs-oxides", ["Ti_K_rutile", "Fe_K_feo", "Fe_K_hematite", "Co_K_coo", "Ni_K_nio",
                                           "Cu_K_cuo", "Cu_K_cu2o", "Zn_K_zno"])):
        for mat in pool:
            m = _mu_file(mat, T=float(rng.uniform(10, 600)), theta_D=float(rng.uniform(300, 700)),
                         sigma2_static=float(rng.uniform(0, 0.003)), strain=float(rng.uniform(-0.02, 0.02)),
                         noise=0.002)
            name, _ = adapter.choose_model(m, {k: SPECS[k] for k in ("exafs-foils", "exafs-oxides")})
            right += name == recipe
            total += 1
    assert right >= 0.95 * total
