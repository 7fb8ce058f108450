"""Acceptance table on real measurements: trained runs per modality validated against reference values.

The checks are those of catalogs/validation/reference-values.yaml (Cu/Fe foils, Ni and Pt PDFs, TEMPO, Fremy's
salt and the Mn2+ marker, SrTiO3 EELS edges).  Real files come from ../shared/data, else from PyPI packages that
ship them (:mod:`train.measurements.datasets`).  EELS edge identification needs no run.
"""
from __future__ import annotations

from pathlib import Path

from .measurements import read
from .measurements.datasets import find_real_files
from .prepare import identify_eels_edges
from .validate import _ref_for, check_reference, format_table, load_reference, validate

__all__ = ["ACCEPTANCE", "acceptance"]

#: run key -> (data modality, file names the acceptance checks use)
ACCEPTANCE = {
    "xafs": ("xafs", ["XASLIB_Cu_cu_metal_rt.xdi", "XASLIB_Cu_cu_metal_10K.xdi", "larch_cu_50k.xmu",
                      "larch_cu_150k.xmu", "XASLIB_Fe_Fe_metal_rt_01.xdi"]),
    "pdf": ("pdf", ["Ni.gr"]),
    "pdf_np": ("pdf", ["Pt-nanoparticles.gr"]),
    "epr": ("epr", ["eprpy__tempo.DSC", "easyspin__frem_gly.par", "easyspin__adani_Mn.json"]),
    "eels": ("eels", ["pyTEMlib_EELS_STO.dm3", "coreloss_spectrum.msa"]),
}


def acceptance(runs: dict, out=None, reference=None, source: str = "auto", mc: int = 30, device: str = "cpu",
               all_files: bool = False, log=print) -> dict:
    """Validate each run of ``runs`` (key of :data:`ACCEPTANCE` -> run directory) on its real files.

    Returns ``{"rows": [...], "skipped": [...], "n_pass", "n_fail", "table": str, "reports": {key: report}}``.
    """
    ref = load_reference(reference)
    files = find_real_files(source)
    rows, skipped, reports = [], [], {}
    if not files:
        skipped.append("no real data: neither ../shared/data nor diffpy.cmi / pyexafs / exspy are available")
    for key, (mod, wanted) in ACCEPTANCE.items():
        avail = {p.name.lower(): p for p in files.get(mod, [])}
        chosen = list(avail.values()) if all_files else [avail[w.lower()] for w in wanted if w.lower() in avail]
        if not chosen:
            skipped.append(f"{key}: none of {', '.join(wanted)} available")
            continue
        run = runs.get(key)
        if run is None:
            if mod == "eels":  # edge identification reads the spectrum; no model needed
                for p in chosen:
                    m = read(p)
                    res = {"file": m.name, "values": {}, "edges": identify_eels_edges(m)}
                    rows += check_reference(res, {"edges": _ref_for(ref, m.name).get("edges", [])})
            else:
                skipped.append(f"{key}: not run (no run directory given)")
            continue
        dest = Path(out) / key if out else None
        rep = validate(run, chosen, reference=reference, out=dest, mc=mc, device=device)
        reports[key] = rep
        rows += rep["rows"]
    rows = [r for r in rows if r["ok"] is not None or r["quantity"] != "class"]
    n_pass = sum(r["ok"] is True for r in rows)
    n_fail = sum(r["ok"] is False for r in rows)
    table = format_table(rows)
    return {"rows": rows, "skipped": skipped, "n_pass": n_pass, "n_fail": n_fail,
            "n_unchecked": sum(r["ok"] is None for r in rows), "table": table, "reports": reports}
