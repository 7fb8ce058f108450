"""Edge energies: xraydb's tabulated (free-atom) edges plus the offsets of EELS onsets seen in solids."""
from __future__ import annotations

import csv
import functools

from .. import catalogs
from ..errors import ParameterError

__all__ = ["edge_energy", "eels_onset", "solid_offsets", "EDGES"]

EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")


@functools.lru_cache(maxsize=512)
def edge_energy(element: str, edge: str) -> float:
    """Tabulated edge energy (eV) from xraydb; an unknown element or edge raises ParameterError naming it."""
    import xraydb
    try:
        z = xraydb.atomic_number(element)
    except Exception:
        z = None
    if not z:
        raise ParameterError("element", element, "a chemical element symbol such as Cu, Ti or O")
    if edge not in EDGES:
        raise ParameterError("edge", edge, "one of " + ", ".join(EDGES))
    edges = xraydb.xray_edges(element)
    if edge not in edges:
        raise ParameterError("edge", f"{element} {edge}", f"an edge that {element} has: {', '.join(edges)}")
    return float(edges[edge].energy)


@functools.lru_cache(maxsize=1)
def solid_offsets() -> dict:
    out = {}
    with open(catalogs.find("exafs/edge_offsets.csv")) as fh:
        rows = [ln for ln in fh if not ln.startswith("#")]
    for r in csv.DictReader(rows):
        out[(r["element"], r["edge"])] = float(r["offset_eV"])
    return out


def eels_onset(element: str, edge: str) -> float:
    """Onset (eV) in a solid: xraydb edge + catalog offset (0 where none is catalogued)."""
    return edge_energy(element, edge) + solid_offsets().get((element, edge), 0.0)
