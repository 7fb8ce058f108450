"""Golden EPR spectra with hyperfine (A) strain from pyeasyspin (optional peer: pip install pyeasyspin), written
to tests/data/epr/ in the format of the other goldens there (field_mT, signal, sys_json, exp_json, peer,
peer_version).  EasySpin's field-swept simulation broadens each line by |m_I| AStrain (MHz, FWHM) in quadrature
with lw; simgen's exact and second-order routes use the same definition (tests/simgen/test_epr.py).

    python scripts/make_epr_strain_refs.py
"""
from __future__ import annotations

import importlib.metadata
import json
import warnings
from pathlib import Path

import numpy as np

CASES = {
    # Cu2+ (63Cu) axial: the exact route (A_par I / nu ~ 0.08)
    "h_Cu2_Astrain": (dict(S=0.5, g=[2.05, 2.05, 2.30], Nucs="63Cu", A=[50.0, 50.0, 500.0], lw=1.0,
                           AStrain=[60.0, 60.0, 60.0]),
                      dict(mwFreq=9.5, Range=[250.0, 360.0], nPoints=1024, Harmonic=1)),
    # VO2+ (51V, I = 7/2) axial
    "i_V4_Astrain": (dict(S=0.5, g=[1.98, 1.98, 1.94], Nucs="51V", A=[200.0, 200.0, 520.0], lw=0.8,
                          AStrain=[40.0, 40.0, 40.0]),
                     dict(mwFreq=9.5, Range=[280.0, 420.0], nPoints=1024, Harmonic=1)),
}


def main():
    import pyeasyspin as pes
    out = Path(__file__).resolve().parents[1] / "tests" / "data" / "epr"
    for name, (Sys, Exp) in CASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = pes.pepper(pes.Struct(Sys), pes.Struct(Exp))
        y = np.asarray(res).ravel()[-int(Exp["nPoints"]):]
        x = np.linspace(Exp["Range"][0], Exp["Range"][1], int(Exp["nPoints"]))
        np.savez(out / f"{name}__pyeasyspin.npz", field_mT=x, signal=y, sys_json=json.dumps(Sys),
                 exp_json=json.dumps(Exp), peer="pyeasyspin", peer_version=importlib.metadata.version("pyeasyspin"))
        print(f"{name}: {out / (name + '__pyeasyspin.npz')}")


if __name__ == "__main__":
    main()
