#!/usr/bin/env python
"""Generate the FEFF10 scattering tables shipped in ``catalogs/exafs/feff10/``.

Needs feff10-rs (PyPI, MIT OR Apache-2.0; an offline FEFF10):  ``pip install feff10-rs``.
The simulator never needs FEFF: it only reads the tables written here.

For every entry of ``MATERIALS`` (absorber, edge, structure built with ASE) this script writes a FEFF input
(non-SCF, Hedin-Lundqvist exchange, EXAFS to k = 20 1/A), runs FEFF10, reads every ``feffNNNN.dat`` and stores
one compact ``<key>.npz`` with, per path: nleg, degeneracy, reff, the leg atoms (coordinates and elements) and
on FEFF's k grid amp = mag[feff]*red_factor, pha = real[2 phc] + phase[feff], lambda and real[p] (the columns
larch's feffdat uses), plus the average Norman radius (for the correlated Debye model).

Structures: the entries of ``MATERIALS`` built here with ASE (the original set) and the entries of ``CATALOG``
read from ``catalogs/pdf/structures/<name>.cif`` (P1 CIFs whose sources are in that folder's README or in the CIF's
leading comment).  ``catalogs/exafs/coverage.yaml`` lists, per catalog structure, the tables made from it and the
edges left out with the reason; the tests check the two agree and that every listed table simulates.

Usage:  python scripts/make_feff_tables.py [--missing] [KEY ...]      (default: all; --missing: only tables whose
        .npz is not there yet)
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.spacegroup import crystal

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "catalogs" / "exafs" / "feff10"


def rutile():
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.30478, 0.30478, 0)], spacegroup=136,
                   cellpar=[4.5937, 4.5937, 2.9587, 90, 90, 90])


def perovskite_srtio3():
    return crystal(["Sr", "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221,
                   cellpar=[3.905, 3.905, 3.905, 90, 90, 90])


def cuprite():
    return crystal(["Cu", "O"], basis=[(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=224, setting=2,
                   cellpar=[4.2685] * 3 + [90] * 3)


# key: (absorber, edge, structure factory, rpath, nleg, description with structure source)
MATERIALS = {
    "Ti_K_hcp": ("Ti", "K", lambda: bulk("Ti", "hcp", a=2.9508, c=4.6855), 5.5, 4, "Ti metal hcp a 2.9508 c 4.6855"),
    "V_K_bcc": ("V", "K", lambda: bulk("V", "bcc", a=3.024), 5.5, 4, "V metal bcc a 3.024"),
    "Cr_K_bcc": ("Cr", "K", lambda: bulk("Cr", "bcc", a=2.884), 5.5, 4, "Cr metal bcc a 2.884"),
    "Fe_K_bcc": ("Fe", "K", lambda: bulk("Fe", "bcc", a=2.8665), 5.5, 4, "alpha-Fe bcc a 2.8665"),
    "Co_K_hcp": ("Co", "K", lambda: bulk("Co", "hcp", a=2.507, c=4.069), 5.5, 4, "Co metal hcp a 2.507 c 4.069"),
    "Ni_K_fcc": ("Ni", "K", lambda: bulk("Ni", "fcc", a=3.524), 5.5, 4, "Ni metal fcc a 3.524"),
    "Cu_K_fcc": ("Cu", "K", lambda: bulk("Cu", "fcc", a=3.61), 5.5, 4, "Cu metal fcc a 3.61 (as refs)"),
    "Zn_K_hcp": ("Zn", "K", lambda: bulk("Zn", "hcp", a=2.665, c=4.947), 5.5, 4, "Zn metal hcp a 2.665 c 4.947"),
    "Ti_K_rutile": ("Ti", "K", rutile, 4.5, 4, "rutile TiO2 a 4.5937 c 2.9587 x 0.30478"),
    "Ti_L3_rutile": ("Ti", "L3", rutile, 4.5, 4, "rutile TiO2, Ti L3"),
    "O_K_rutile": ("O", "K", rutile, 4.5, 4, "rutile TiO2, O K"),
    "Ti_L3_srtio3": ("Ti", "L3", perovskite_srtio3, 4.5, 4, "SrTiO3 cubic perovskite a 3.905, Ti L3"),
    "Ti_L2_rutile": ("Ti", "L2", rutile, 4.5, 4, "rutile TiO2, Ti L2"),
    "Ti_L2_srtio3": ("Ti", "L2", perovskite_srtio3, 4.5, 4, "SrTiO3 cubic perovskite a 3.905, Ti L2"),
    "O_K_srtio3": ("O", "K", perovskite_srtio3, 4.5, 4, "SrTiO3 cubic perovskite a 3.905, O K"),
    "Ni_K_nio": ("Ni", "K", lambda: bulk("NiO", "rocksalt", a=4.177), 5.0, 4, "NiO rocksalt a 4.177"),
    "Mn_K_mno": ("Mn", "K", lambda: bulk("MnO", "rocksalt", a=4.445), 5.0, 4, "MnO rocksalt a 4.445"),
    "Co_K_coo": ("Co", "K", lambda: bulk("CoO", "rocksalt", a=4.26), 5.0, 4, "CoO rocksalt a 4.26"),
    "Zn_K_zno": ("Zn", "K", lambda: bulk("ZnO", "wurtzite", a=3.2495, c=5.2069, u=0.3819), 5.0, 4,
                 "ZnO wurtzite a 3.2495 c 5.2069 u 0.3819"),
    "Cu_K_cu2o": ("Cu", "K", cuprite, 5.0, 4, "Cu2O cuprite a 4.2685"),
}


def _cif(name):
    """Factory reading catalog structure ``name`` (catalogs/pdf/structures/<name>.cif)."""
    def make():
        import ase.io
        return ase.io.read(ROOT / "catalogs" / "pdf" / "structures" / f"{name}.cif")
    return make


# key: (absorber, edge, catalog structure, rpath, nleg).  K edges of the 3d/4d(+4p) elements of the catalog, L3 of
# the 5d metals (and Ce L3 of CeO2), O K of the oxides, Ti L3/L2 of anatase for EXELFS.
CATALOG = {
    # 5d metals, L3 edge
    "Pt_L3_fcc": ("Pt", "L3", "Pt_fcc", 5.5, 4),
    "Au_L3_fcc": ("Au", "L3", "Au_fcc", 5.5, 4),
    "W_L3_bcc": ("W", "L3", "W_bcc", 5.5, 4),
    "Ir_L3_fcc": ("Ir", "L3", "Ir_fcc", 5.5, 4),
    # 4d metals, K edge
    "Mo_K_bcc": ("Mo", "K", "Mo_bcc", 5.5, 4),
    "Pd_K_fcc": ("Pd", "K", "Pd_fcc", 5.5, 4),
    "Ag_K_fcc": ("Ag", "K", "Ag_fcc", 5.5, 4),
    # oxides: metal K (or Ce L3) and O K
    "Ti_K_anatase": ("Ti", "K", "TiO2_anatase", 5.0, 4),
    "Ti_L3_anatase": ("Ti", "L3", "TiO2_anatase", 4.5, 4),
    "Ti_L2_anatase": ("Ti", "L2", "TiO2_anatase", 4.5, 4),
    "O_K_anatase": ("O", "K", "TiO2_anatase", 4.5, 4),
    "Ti_K_srtio3": ("Ti", "K", "SrTiO3_perovskite", 5.0, 4),
    "Sr_K_srtio3": ("Sr", "K", "SrTiO3_perovskite", 5.0, 4),
    "O_K_nio": ("O", "K", "NiO_rocksalt", 4.5, 4),
    "O_K_mgo": ("O", "K", "MgO_rocksalt", 4.5, 4),
    "O_K_zno": ("O", "K", "ZnO_wurtzite", 4.5, 4),
    "O_K_spinel": ("O", "K", "MgAl2O4_spinel", 4.5, 4),
    "O_K_ceo2": ("O", "K", "CeO2_fluorite", 4.5, 4),
    "Ce_L3_ceo2": ("Ce", "L3", "CeO2_fluorite", 5.0, 4),
    "Fe_K_feo": ("Fe", "K", "FeO_rocksalt", 5.0, 4),
    "Fe_K_hematite": ("Fe", "K", "Fe2O3_hematite", 5.0, 4),
    "Cu_K_cuo": ("Cu", "K", "CuO_tenorite", 5.0, 4),
    # semiconductors
    "Zn_K_zns": ("Zn", "K", "ZnS_zincblende", 5.0, 4),
    "Ga_K_gaas": ("Ga", "K", "GaAs_zincblende", 5.0, 4),
    "As_K_gaas": ("As", "K", "GaAs_zincblende", 5.0, 4),
    "Cd_K_cdsezb": ("Cd", "K", "CdSe_zincblende", 5.0, 4),
    "Se_K_cdsezb": ("Se", "K", "CdSe_zincblende", 5.0, 4),
    "Cd_K_cdsewz": ("Cd", "K", "CdSe_wurtzite", 5.0, 4),
    "Se_K_cdsewz": ("Se", "K", "CdSe_wurtzite", 5.0, 4),
}
for _k, (_el, _ed, _cif_name, _rp, _nl) in CATALOG.items():
    MATERIALS[_k] = (_el, _ed, _cif(_cif_name), _rp, _nl, f"{_cif_name} (catalogs/pdf/structures/{_cif_name}.cif), "
                     f"{_el} {_ed}")


def cluster(atoms, absorber, rmax):
    """Atoms within rmax of the first `absorber` site, absorber at the origin (sorted by distance)."""
    i0 = [a.index for a in atoms if a.symbol == absorber][0]
    cell = atoms.cell.array
    n = [int(np.ceil(rmax / np.linalg.norm(c))) + 1 for c in cell]
    pos, sym = [], []
    base = atoms.positions - atoms.positions[i0]
    for i in range(-n[0], n[0] + 1):
        for j in range(-n[1], n[1] + 1):
            for k in range(-n[2], n[2] + 1):
                shift = i * cell[0] + j * cell[1] + k * cell[2]
                p = base + shift
                d = np.linalg.norm(p, axis=1)
                sel = d <= rmax + 1e-6
                pos.extend(p[sel])
                sym.extend(np.array(atoms.get_chemical_symbols())[sel])
    pos = np.array(pos)
    order = np.argsort(np.linalg.norm(pos, axis=1), kind="stable")
    return pos[order], [sym[i] for i in order]


def feff_input(key, absorber, edge, atoms, rpath, nleg, title):
    from ase.data import atomic_numbers
    pos, sym = cluster(atoms, absorber, rpath + 3.0)
    elems = [absorber] + sorted(set(sym) - {absorber}) if sym.count(absorber) > 1 else \
        [absorber] + sorted(set(sym) - {absorber})
    ipot = {}
    lines = ["POTENTIALS", f"  0  {atomic_numbers[absorber]:3d}  {absorber}  -1 -1 0.01"]
    nxt = 1
    for el in sorted(set(sym[1:])):
        ipot[el] = nxt
        lines.append(f"  {nxt}  {atomic_numbers[el]:3d}  {el}  -1 -1")
        nxt += 1
    lines.append("ATOMS")
    for i, (p, s) in enumerate(zip(pos, sym)):
        ip = 0 if i == 0 else ipot[s]
        lines.append(f"  {p[0]:10.5f} {p[1]:10.5f} {p[2]:10.5f}  {ip}  {s}")
    lines.append("END")
    head = (f"TITLE {title}\nEDGE {edge}\nS02 1.0\nCONTROL 1 1 1 1 1 1\nPRINT 1 0 0 0 0 3\n"
            f"EXCHANGE 0 0.0 0.0\nRPATH {rpath:.2f}\nEXAFS 20\nNLEG {nleg}\n")
    return head + "\n".join(lines) + "\n"


def read_feffdat(path):
    """One feffNNNN.dat -> dict (geometry and the k-table)."""
    text = Path(path).read_text().splitlines()
    out = {}
    for i, line in enumerate(text):
        if "nleg, deg, reff" in line:
            w = line.split()
            out["nleg"], out["degen"], out["reff"], out["rnrmav_bohr"] = int(w[0]), float(w[1]), float(w[2]), \
                float(w[3])
            legs = []
            for j in range(out["nleg"]):
                ww = text[i + 2 + j].split()
                legs.append((float(ww[0]), float(ww[1]), float(ww[2]), ww[5]))
            out["legs"] = legs
        if line.strip().startswith("k   real[2*phc]"):
            data = np.array([[float(x) for x in ln.split()] for ln in text[i + 1:] if ln.strip()])
            out["k"], real_2phc, mag, pha, red, lam, rep = data.T
            out["amp"] = mag * red
            out["pha"] = real_2phc + pha
            out["lam"] = lam
            out["real_p"] = rep
            break
    return out


def run_one(key):
    import feff10
    absorber, edge, factory, rpath, nleg, title = MATERIALS[key]
    inp = feff_input(key, absorber, edge, factory(), rpath, nleg, title)
    with tempfile.TemporaryDirectory() as td:
        t0 = time.perf_counter()
        feff10.run(inp, str(Path(td) / "run"))
        dt = time.perf_counter() - t0
        files = sorted((Path(td) / "run").glob("feff0*.dat"))
        paths = [read_feffdat(f) for f in files]
    if not paths:
        raise RuntimeError(f"{key}: FEFF10 produced no paths")
    nk = max(len(p["k"]) for p in paths)
    npth = len(paths)
    maxleg = max(p["nleg"] for p in paths)
    k = np.full((npth, nk), np.nan)
    tabs = {c: np.full((npth, nk), np.nan) for c in ("amp", "pha", "lam", "real_p")}
    legs_xyz = np.zeros((npth, maxleg, 3))
    legs_el = np.full((npth, maxleg), "", dtype="<U2")
    for i, p in enumerate(paths):
        m = len(p["k"])
        k[i, :m] = p["k"]
        for c in tabs:
            tabs[c][i, :m] = p[c]
        for j, (x, y, z, el) in enumerate(p["legs"]):
            legs_xyz[i, j] = (x, y, z)
            legs_el[i, j] = el
    np.savez_compressed(
        OUT / f"{key}.npz", k=k.astype(np.float32), **{c: v.astype(np.float32) for c, v in tabs.items()},
        nleg=np.array([p["nleg"] for p in paths]), degen=np.array([p["degen"] for p in paths]),
        reff=np.array([p["reff"] for p in paths]), legs_xyz=legs_xyz.astype(np.float32), legs_el=legs_el,
        rnrmav_bohr=paths[0]["rnrmav_bohr"], absorber=absorber, edge=edge, title=title, rpath=rpath,
        code=f"FEFF10 via feff10-rs {feff10.__version__}", feff_inp=inp)
    print(f"{key:14s} {npth:3d} paths  FEFF10 {dt:5.1f} s", flush=True)
    return dict(paths=npth, seconds=round(dt, 2))


def main(keys):
    OUT.mkdir(parents=True, exist_ok=True)
    missing = "--missing" in keys
    keys = [k for k in keys if k != "--missing"]
    unknown = [k for k in keys if k not in MATERIALS]
    if unknown:
        raise SystemExit(f"unknown table key(s) {', '.join(unknown)}; known: {', '.join(MATERIALS)}")
    summary = {}
    for key in keys or MATERIALS:
        if missing and (OUT / f"{key}.npz").exists():
            continue
        summary[key] = run_one(key)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
