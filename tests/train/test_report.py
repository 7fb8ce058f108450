"""The main job's report: rendered tables with every target, verdict colours, failed studies marked FAIL."""
from __future__ import annotations

import math

from train.report import study_verdict, write_report


def _summary():
    targets = [f"t{i}" for i in range(11)]
    return {
        "plan": "plan.yaml", "seconds": 600.0, "errors": [],
        "corpora": {"exafs": {"recipe": "exafs-foils", "simulator": "exafs", "n": 100, "samples_per_s": 5000.0,
                              "store_mb": 1.0, "targets": targets, "classes": ["Cu_K_fcc"],
                              "figure": "figures/corpus-exafs.png"}},
        "runs": {"exafs": {"model": "mlp", "corpus": "exafs", "task": "both", "figures": [],
                           "metrics": {"test": {"regression": {t: {"r2": 0.9, "mae": 0.1, "mean_mae": 0.5}
                                                               for t in targets},
                                                "classification": {"accuracy": 0.99, "macro_f1": 0.98}}}}},
        "acceptance": {"rows": [{"file": "a.xdi", "quantity": "R1", "pred": 2.55, "unc": 0.01, "ref": 2.55,
                                 "diff": 0.0, "tol": 0.02, "ok": True, "units": "A", "note": ""},
                                {"file": "b.xdi", "quantity": "R1", "pred": 2.7, "unc": None, "ref": 2.55,
                                 "diff": 0.15, "tol": 0.02, "ok": False, "units": "A", "note": ""}],
                       "skipped": [], "n_pass": 1, "n_fail": 1, "n_unchecked": 0, "table": "", "figures": []},
        "studies": {"nested": {"rc": 0, "argv": ["nested"], "seconds": 3.0, "figures": [],
                               "results": {"nested.json": {"swelling_rel_err": math.nan}}},
                    "adapt": {"rc": 0, "argv": ["adapt"], "seconds": 3.0, "figures": [],
                              "results": {"adapt.json": {"verdict": "PASS", "reason": "error cut 0.43 >= 0.30"}}},
                    "augment": {"rc": 0, "argv": ["augment"], "seconds": 3.0, "figures": [],
                                "results": {"a.json": {"verdict": "FAIL", "reason": "no gain over experimental"}}}},
    }


def test_study_verdicts():
    s = _summary()["studies"]
    assert study_verdict(s["nested"]) == ("FAIL", "results hold NaN (degenerate output)")
    assert study_verdict(s["adapt"])[0] == "PASS"
    assert study_verdict(s["augment"]) == ("FAIL", "no gain over experimental")
    assert study_verdict({"error": "boom"}) == ("FAIL", "boom")
    assert study_verdict({"rc": 0, "results": {"x.json": {"n": 3}}})[0] == "NO VERDICT"


def test_report_renders_tables_and_verdicts(tmp_path):
    write_report(tmp_path, _summary())
    page = (tmp_path / "index.html").read_text()
    assert "<pre" not in page and page.count("<table>") >= 3
    assert all(f"<td>t{i}</td>" in page for i in range(11))          # every target of the run
    assert "t10" in page.split("<h2>Corpora</h2>")[1].split("</table>")[0]  # every target of the corpus
    assert '<tr class="fail"><td>b.xdi</td>' in page and '<tr class="pass"><td>a.xdi</td>' in page
    assert 'nested: <span class="fail">FAIL</span>' in page
    assert "corpus-exafs.png</b>: Six simulated samples" in page
    md = (tmp_path / "report.md").read_text()
    assert "### nested: FAIL" in md and "| a.xdi | R1 |" in md
