"""Derive the golden copies in this folder from the full references in ../shared/refs/pdf (see README.md).

Keeps every 4th r point of r and G as float32, the structure (symbols, cartesian xyz in float64, cell) and the
producer's parameter JSON unchanged.  Run from the repository root: python tests/data/pdf/make_golden.py
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFS = HERE.parents[2].parent / "shared" / "refs" / "pdf"
CASES = [
    "Ni_fcc_bulk_PDFCalculator_xray", "Ni_fcc_bulk_PDFCalculator_neutron", "Ni_fcc_bulk_PDFCalculator_xray_delta1_1",
    "Ni_fcc_bulk_PDFCalculator_xray_delta2_2_qbroad_0.02", "Ni_fcc_bulk_PDFCalculator_xray_qmin_1",
    "Ni_fcc_bulk_PDFCalculator_xray_spdiameter_30", "Ni_fcc_bulk_PDFCalculator_xray_no_termination_no_qdamp",
    "TiO2_anatase_bulk_PDFCalculator_xray", "TiO2_anatase_bulk_PDFCalculator_neutron",
    "TiO2_anatase_bulk_PDFCalculator_xray_Uti0.004_Uo0.008",
    "Au_3nm_cluster_PDFCalculator_xray", "Au_3nm_cluster_DebyePDFCalculator_xray",
    "Au_3nm_cluster_DebyeCalculator_xray",
]
STEP = 4

if __name__ == "__main__":
    for case in CASES:
        d = np.load(REFS / f"{case}.npz")
        out = HERE / f"{case}.npz"
        np.savez_compressed(out, r=d["r"][::STEP].astype(np.float32), G=d["G"][::STEP].astype(np.float32),
                            params_json=d["params_json"], symbols=d["symbols"], xyz_cart=d["xyz_cart"],
                            cell=d["cell"], step=np.int64(STEP))
        print(f"{out.name}: {out.stat().st_size} bytes")
