"""Sim-to-measured benchmark: `simtrain adapt --benchmark NAME` over every named distortion of train/distortions.py.

    python scripts/bench_adapt.py                       # all distortions, default settings of `simtrain adapt`
    python scripts/bench_adapt.py --only default,mixed -- --n-sim 1500 --vae-epochs 60   # extra adapt options
    python scripts/bench_adapt.py --only default,mixed -- --seeds 3 --ablation  # spread; each half of the method alone

Prints, per distortion, the nMAE (mean over targets of MAE / target std) on the "measured" test set of inverse
networks trained on raw simulations, on the adapted corpus and on the measured pool itself, the error cut
1 - adapted/raw (acceptance: >= 0.30) and the gap closed (raw - adapted) / (raw - measured_only).  "oracle" is an
inverse network trained on the labelled simulations passed through the true, hidden distortion; "bound" = 1 -
oracle/raw is the most any corpus-side adaptation can cut.  A mild distortion (e.g. ``stretch``) has a bound below
0.30: the raw-simulation network is already near its in-domain error there.
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from train.studies import adapt
from train.distortions import DISTORTIONS, describe


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(DISTORTIONS), help="comma-separated distortion names or specs")
    a = p.parse_args(own)
    rows = []
    for name in [s for s in a.only.split(";" if "=" in a.only else ",") if s]:
        ap = argparse.ArgumentParser()
        adapt.add_arguments(ap)
        with tempfile.TemporaryDirectory() as tmp:
            rep = adapt.run(ap.parse_args(["--benchmark", name, "--out", tmp] + extra))
        s = rep["summary"]
        rows.append((name, describe(name), s["raw_sim"]["nmae_mean"], s["adapted"]["nmae_mean"],
                     s.get("measured_only", {}).get("nmae_mean", float("nan")),
                     s.get("oracle", {}).get("nmae_mean", float("nan")), s["error_cut"]["mean"],
                     s.get("oracle_gap", {}).get("mean", float("nan")),
                     s.get("gap_closed", {}).get("mean", float("nan"))))
    print("\n%-12s %-50s %8s %8s %8s %8s %7s %7s %7s" % ("distortion", "chain", "raw", "adapted", "meas", "oracle",
                                                         "cut", "bound", "gap"))
    for r in rows:
        verdict = "PASS" if r[6] >= 0.30 else ("FAIL" if r[7] >= 0.30 else "FAIL (bound < 0.30)")
        print("%-12s %-50s %8.4f %8.4f %8.4f %8.4f %7.3f %7.3f %7.3f %s" % (*r, verdict))
    return rows


if __name__ == "__main__":
    main()
