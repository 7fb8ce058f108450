"""The main job's driver on a tiny plan: corpora -> runs -> report; reuse of unchanged parts; --only keeps the rest
of the previous report; a store that refuses is reported, not overwritten; progress lines reach the log."""
from __future__ import annotations

import json

import yaml

from train.studies.demo import Heartbeat, run_demo


def _plan(tmp_path, epochs=3):
    plan = {"corpora": {"p": {"recipe": "peaks-demo", "n": 256, "set": {"config.n_points": 64}},
                        "q": {"recipe": "peaks-demo", "n": 128, "set": {"config.n_points": 32}}},
            "runs": {"p": {"corpus": "p", "task": "regress", "model": "mlp", "epochs": epochs},
                     "q": {"corpus": "q", "task": "regress", "model": "mlp", "epochs": 2}},
            "acceptance": {}, "studies": []}
    f = tmp_path / "plan.yaml"
    f.write_text(yaml.safe_dump(plan))
    return f


def test_demo_reuse_only_and_report(tmp_path):
    out = tmp_path / "out"
    plan = _plan(tmp_path)
    s = run_demo(out, plan=plan, workers=1, skip_studies=True)
    assert not s["errors"], s["errors"]
    assert set(s["runs"]) == {"p", "q"} and "metrics" in s["runs"]["p"]
    page = (out / "index.html").read_text()
    assert "<table>" in page and "<pre" not in page
    log = (out / "demo.log").read_text()
    assert "[run p] mlp on p" in log
    # a second run reuses every run; --only q keeps p's entry in the report
    s2 = run_demo(out, plan=plan, workers=1, skip_studies=True, only=["q"])
    assert "reusing" in (out / "demo.log").read_text().split("only q")[1]
    assert set(s2["runs"]) == {"p", "q"}
    assert json.loads((out / "summary.json").read_text())["runs"]["p"]["metrics"] == s["runs"]["p"]["metrics"]


def test_demo_never_overwrites_a_refusing_store(tmp_path):
    out = tmp_path / "out"
    plan = _plan(tmp_path)
    run_demo(out, plan=plan, workers=1, skip_studies=True, only=["q"])
    d = yaml.safe_load(plan.read_text())
    d["corpora"]["q"]["set"]["config.n_points"] = 48        # another recipe for the same store
    plan.write_text(yaml.safe_dump(d))
    before = (out / "corpora" / "q.zarr" / "zarr.json").read_bytes()
    s = run_demo(out, plan=plan, workers=1, skip_studies=True, only=["q"])
    assert any("corpus q" in e and "--fresh" in e for e in s["errors"]), s["errors"]
    assert (out / "corpora" / "q.zarr" / "zarr.json").read_bytes() == before


def test_heartbeat_logs_progress():
    lines = []
    import time
    with Heartbeat(lines.append, "[stage]", lambda e: f"{e:.2f} s", every=0.05):
        time.sleep(0.3)
    assert len(lines) >= 3 and all(x.startswith("[stage] ") for x in lines)
