"""Acceptance table on real measurements: trained runs per modality validated against reference values.

Each modality adapter (:mod:`train.modalities`) names its acceptance checks and the real files each uses
(``Adapter.acceptance``); the checks are those of catalogs/validation/reference-values.yaml.  Real files come from
../shared/data, else from PyPI packages that ship them (:mod:`train.measurements.datasets`).  A check whose
adapter can judge a file without a network (EELS edge identification) runs even when no run is given.
"""
from __future__ import annotations

from pathlib import Path

from . import modalities
from .measurements import read
from .measurements.datasets import find_real_files
from .validate import _ref_for, check_reference, format_table, load_reference, validate

__all__ = ["checks", "acceptance"]


def checks() -> dict[str, tuple[str, list[str]]]:
    """Acceptance check name -> (modality, file names), gathered from every importable adapter."""
    out = {}
    for name, a in modalities.importable():
        for check, files in a.acceptance.items():
            out[check] = (name, list(files))
    return out


def acceptance(runs: dict, out=None, reference=None, source: str = "auto", mc: int = 30, device: str = "cpu",
               all_files: bool = False, log=print) -> dict:
    """Validate each run of ``runs`` (acceptance check name of :func:`checks` -> run directory) on its real files.

    Returns ``{"rows": [...], "skipped": [...], "n_pass", "n_fail", "table": str, "reports": {key: report}}``.
    """
    ref = load_reference(reference)
    files = find_real_files(source)
    rows, skipped, reports = [], [], {}
    if not files:
        skipped.append("no real data: neither ../shared/data nor diffpy.cmi / pyexafs / exspy are available")
    for key, (mod, wanted) in checks().items():
        avail = {p.name.lower(): p for p in files.get(mod, [])}
        chosen = list(avail.values()) if all_files else [avail[w.lower()] for w in wanted if w.lower() in avail]
        if not chosen:
            skipped.append(f"{key}: none of {', '.join(wanted)} available")
            continue
        run = runs.get(key)
        if run is None:
            adapter = modalities.get(mod)
            judged = False
            for p in chosen:
                res = adapter.check_without_run(read(p))
                if res is None:
                    break
                judged = True
                rows += check_reference(res, {k: v for k, v in _ref_for(ref, res["file"]).items() if k != "values"})
            if not judged:
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
