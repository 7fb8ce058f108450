"""Coverage of the FEFF10 tables: every catalog structure (catalogs/pdf/structures) is listed in
catalogs/exafs/coverage.yaml with the tables made from it (or the reason an edge is left out), every listed table
exists, holds the absorber/edge its name says and simulates with the exafs simulator (chi(k) finite, not zero,
first shell at the structure's nearest-neighbour distance), and every EELS system simulates with exelfs.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from simgen import catalogs
from simgen.exafs import EXAFSSimulator, EXELFSSimulator
from simgen.exafs.shells import shells_from_atoms
from simgen.exafs.tables import available_tables, load_pathset
from simgen.pdf.structures import list_phases, load_atoms

COVERAGE = yaml.safe_load(open(catalogs.find("exafs/coverage.yaml")))
LISTED = {t: s for s, v in COVERAGE["structures"].items() for t in v["tables"]}
EDGE_ELEMENTS_Z = (22, 48)      # K edges covered for Ti..Cd


def test_every_catalog_structure_is_listed_and_every_table_accounted_for():
    assert sorted(COVERAGE["structures"]) == list_phases()
    listed = set(LISTED) | set(COVERAGE["extra_tables"])
    assert listed == set(available_tables())


@pytest.mark.parametrize("structure", sorted(COVERAGE["structures"]))
def test_edges_of_catalog_elements_are_covered_or_explained(structure):
    """K edge of every element Z 22..48, L3 of every 5d metal, O K of every oxide: a table or a stated reason."""
    from ase.data import atomic_numbers
    entry = COVERAGE["structures"][structure]
    have = {tuple(t.split("_")[:2]) for t in entry["tables"]}
    explained = {tuple(k.split()) for k in (entry.get("not_covered") or {})}
    for el in sorted(set(load_atoms(structure).get_chemical_symbols())):
        z = atomic_numbers[el]
        want = ("K",) if EDGE_ELEMENTS_Z[0] <= z <= EDGE_ELEMENTS_Z[1] or el == "O" else \
            ("L3",) if 72 <= z <= 79 else ()
        for edge in want:
            assert (el, edge) in have or (el, edge) in explained, f"{structure}: no {el} {edge} table, no reason"


@pytest.mark.parametrize("key", sorted(LISTED))
def test_catalog_table_simulates_with_its_first_shell(key):
    structure = LISTED[key]
    ps = load_pathset(key)
    el, edge = key.split("_")[:2]
    assert (ps.absorber, ps.edge) == (el, edge)
    r_struct = shells_from_atoms(load_atoms(structure), el, 6.0)[0][0]
    sim = EXAFSSimulator({"k_min": 3.0, "k_max": 10.0, "rmax": 5.0})
    out = sim.simulate_outputs({"material": key, "T": 300.0, "theta_D": 350.0})
    y = out["x"][0]
    assert np.all(np.isfinite(y)) and np.sqrt(np.mean(y.astype(float) ** 2)) > 0.05
    assert out["params"]["R1"][0] == pytest.approx(r_struct, abs=0.02)


@pytest.mark.parametrize("system", ["SrTiO3", "TiO2_rutile", "TiO2_anatase"])
def test_every_eels_system_simulates(system):
    sim = EXELFSSimulator({"e_min": 420.0, "e_max": 620.0})
    y = sim.simulate({"material": system, "counts": 0.0})[0]
    assert np.all(np.isfinite(y)) and y.max() == pytest.approx(1.0)
    e = sim.axis.coords[0]
    assert y[(e > 470) & (e < 520)].mean() > y[e < 450].mean() * 0.5     # Ti L2,3 edges present


def test_anatase_and_rutile_exelfs_differ():
    """The anatase system is a structure of its own, not a relabelled rutile: its Ti-O and Ti-Ti shells differ."""
    sim = EXELFSSimulator({"e_min": 420.0, "e_max": 620.0})
    p = {"counts": 0.0, "thickness": 0.0, "bg_ratio": 0.01}
    a = sim.simulate_outputs({**p, "material": "TiO2_anatase"})
    r = sim.simulate_outputs({**p, "material": "TiO2_rutile"})
    assert a["params"]["R3"][0] == pytest.approx(3.04, abs=0.01) and r["params"]["R3"][0] == pytest.approx(2.96,
                                                                                                       abs=0.01)
    assert np.max(np.abs(a["x"][0] - r["x"][0])) > 1e-3
