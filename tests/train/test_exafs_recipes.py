"""The oxide and 5d L3 recipes: they build on the foils' k grid, draw only their own edges, and their first shells as
users define them (split sub-shells summed by the adapter) are the structures' nearest-neighbour shells."""
from __future__ import annotations

import numpy as np
import pytest

from simgen.exafs.shells import shells_from_atoms
from simgen.pdf.structures import load_atoms
from simgen.recipe import load_recipe
from train.modalities import get

NN = {  # material: (users' N_nn, R_nn in A) of its structure
    "Fe_K_hematite": (6, 2.031), "Cu_K_cuo": (4, 1.956), "Ti_K_rutile": (6, 1.958), "Ti_K_anatase": (6, 1.949),
    "Zn_K_zno": (4, 1.978), "Cu_K_cu2o": (2, 1.848), "Ni_K_nio": (6, 2.089), "Fe_K_feo": (6, 2.167),
    "Pt_L3_fcc": (12, 2.775), "W_L3_bcc": (8, 2.741)}


@pytest.mark.parametrize("name", ["exafs-oxides", "exafs-5d-l3"])
def test_recipe_builds_on_the_foils_grid(name):
    foils = load_recipe("exafs-foils").build()
    sim = load_recipe(name).build()
    assert np.array_equal(sim.axis.coords[0], foils.axis.coords[0])
    edges = {tuple(c.split("_")[:2]) for c in sim.classes}
    assert edges <= ({(e, "K") for e in ("Ti", "Mn", "Fe", "Co", "Ni", "Cu", "Zn")} if name == "exafs-oxides"
                     else {(e, "L3") for e in ("Pt", "Au", "W", "Ir")})


@pytest.mark.parametrize("material", sorted(NN))
def test_users_first_shell_of_each_class(material):
    name = "exafs-5d-l3" if "_L3_" in material else "exafs-oxides"
    sim = load_recipe(name).build()
    out = sim.simulate_outputs({"label": material, "material": material, "strain": 0.0, "vacancy": 0.0,
                                "np_diameter": 0.0})
    names = ["N1", "R1", "N2", "R2", "N3", "R3"]
    s = np.array([[out["params"][n][0] for n in names]])
    d = get("exafs").derived(names, s[None], {})
    n_nn, r_nn = NN[material]
    assert d["N_nn"][0, 0] == pytest.approx(n_nn) and d["R_nn"][0, 0] == pytest.approx(r_nn, abs=0.005)


def test_hematite_table_agrees_with_its_structure():
    """FEFF's split first shell of hematite (3 + 3 O) is the CIF's."""
    sh = shells_from_atoms(load_atoms("Fe2O3_hematite"), "Fe", 2.5)
    assert [(n, el) for _, n, el in sh] == [(3, "O"), (3, "O")]
    assert sh[0][0] == pytest.approx(1.946, abs=0.002) and sh[1][0] == pytest.approx(2.116, abs=0.002)
