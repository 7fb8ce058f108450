"""Acceptance table: trained runs per modality validated on the real measurements.

    python scripts/validate_real.py --exafs RUNS/exafs --pdf RUNS/pdf-bulk --pdf-np RUNS/pdf-np \
        --epr RUNS/epr-validation --exelfs RUNS/exelfs [--out validation/] [--source auto|shared|packages]

The checks (one option each) are those the modality adapters declare (``train.acceptance.checks()``).

Real files come from ../shared/data, else from PyPI packages that ship them (train.measurements.datasets).
EELS edge identification needs no run (it reads the spectrum); the other checks need the run of their modality.
Each check prints PASS/FAIL against catalogs/validation/reference-values.yaml; modalities without a run are
listed as 'not run'.  Exit status 0 (the table is the result); --strict gives 1 when a check fails.
"""
from __future__ import annotations

import argparse
import sys

from train.acceptance import acceptance, checks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for key in checks():
        ap.add_argument("--" + key.replace("_", "-"), dest=key, help=f"run directory for the {key} checks")
    ap.add_argument("--reference", help="reference-values YAML (default: the catalog's)")
    ap.add_argument("--out", help="directory for per-modality validation.json, tables and figures")
    ap.add_argument("--source", default="auto", choices=("auto", "shared", "packages"))
    ap.add_argument("--mc", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--all-files", action="store_true", help="validate every real file of the modality")
    ap.add_argument("--strict", action="store_true")
    a = ap.parse_args(argv)
    runs = {k: getattr(a, k) for k in checks() if getattr(a, k)}
    res = acceptance(runs, out=a.out, reference=a.reference, source=a.source, mc=a.mc, device=a.device,
                     all_files=a.all_files)
    print(res["table"])
    print(f"\n{res['n_pass']} PASS, {res['n_fail']} FAIL, {res['n_unchecked']} not checked")
    for s in res["skipped"]:
        print("skipped -", s)
    return 1 if (a.strict and res["n_fail"]) else 0


if __name__ == "__main__":
    sys.exit(main())
