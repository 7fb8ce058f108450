"""Adaptation on real XAFS spectra: the measured pool holds every split's files unlabelled, only the chosen
split's known values are read, and files another model reads (an oxide beside a foil corpus) stay out."""
from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

import simgen.corpus
from simgen.recipe import load_recipe


@pytest.fixture
def manifest(tmp_path, shared):
    cu = shared("data", "xafs", "XASLIB_Cu_cu_metal_rt.xdi")
    man = {"version": 1, "packages": {}, "files": [
        {"id": "cu-dev", "path": "xafs/XASLIB_Cu_cu_metal_rt.xdi", "modality": "exafs", "split": "dev",
         "known": {"R1": {"value": 2.556}, "N1": {"value": 12}}},
        {"id": "cu10-dev", "path": "xafs/XASLIB_Cu_cu_metal_10K.xdi", "modality": "exafs", "split": "dev",
         "known": {"R1": {"value": 2.556}, "N1": {"value": 12}}},
        # a test file whose known values must never be read (deliberately absurd)
        {"id": "fe-test", "path": "xafs/XASLIB_Fe_Fe_metal_rt_01.xdi", "modality": "exafs", "split": "test",
         "known": {"R1": {"value": 99.0}, "N1": {"value": 99}}},
        {"id": "cuo-dev", "path": "xafs/XASLIB_Cu_CuO_tenorite_13K_01.xdi", "modality": "exafs", "split": "dev",
         "known": {"R1": {"value": 1.955}, "N1": {"value": 4}}}]}
    mf = tmp_path / "manifest.yaml"
    mf.write_text(yaml.safe_dump(man))
    old = os.environ.get("SIMGEN_SHARED_DATA")
    os.environ["SIMGEN_SHARED_DATA"] = str(cu.parents[1])
    yield mf
    if old is None:
        os.environ.pop("SIMGEN_SHARED_DATA")
    else:
        os.environ["SIMGEN_SHARED_DATA"] = old


def test_pool_and_labels(manifest):
    from train.prepare import target_spec
    from train.studies.adapt_real import measured_pool
    spec = target_spec(load_recipe("exafs-foils"))
    pool = measured_pool(spec, {"exafs-oxides": target_spec(load_recipe("exafs-oxides"))}, "dev", manifest,
                         log=lambda *a: None)
    assert pool["pool_files"] == ["cu-dev", "cu10-dev", "fe-test"]          # every split, unlabelled
    assert pool["lab_files"] == ["cu-dev", "cu10-dev"]                      # only dev labels
    assert not np.any(pool["y_lab"] == 99.0)
    assert pool["skipped"]["cuo-dev"] == "read by the exafs-oxides model"
    assert pool["x_pool"].shape == (3, spec.axis.shape[0]) and np.isfinite(pool["x_pool"]).all()


@pytest.mark.slow
def test_adapt_real_runs_and_scores(manifest, tmp_path):
    from train.studies.adapt_real import adapt_real
    store = tmp_path / "foils.zarr"
    simgen.corpus.build(load_recipe("exafs-foils"), 256, store, chunk_rows=256, scheduler="synchronous")
    rep = adapt_real(store, split="dev", n_sim=256, seeds=1, bin_=4, manifest=manifest, out=tmp_path / "o",
                     cfg={"vae_epochs": 2, "reg_epochs": 2, "draws": 1}, log=lambda *a: None)
    s = rep["summary"]
    assert set(s) == {"raw_sim", "adapted", "mean_predictor", "prior_mean"}
    assert all(np.isfinite(s[a]["mae_mean"]).all() for a in s)
    # the prior mean's error is computed from the corpus and the dev labels alone (N 12, R 2.556)
    assert s["prior_mean"]["mae_mean"][1] > 0 and (tmp_path / "o" / "adapt_real.json").exists()


def test_no_measured_file_is_a_skipped_study_not_a_failure(tmp_path):
    """Without measured files (no ../shared/data, nothing downloaded) the study says so: the report shows it as
    SKIPPED with the reason, and the main job does not fail on it."""
    import json
    from train.report import study_verdict
    from train.studies.adapt_real import adapt_real
    man = tmp_path / "manifest.yaml"
    man.write_text(yaml.safe_dump({"version": 1, "packages": {}, "files": [
        {"id": "absent", "path": "xafs/not-here.xdi", "modality": "exafs", "split": "dev",
         "known": {"R1": {"value": 2.556}, "N1": {"value": 12}}}]}))
    store = tmp_path / "foils.zarr"
    simgen.corpus.build(load_recipe("exafs-foils"), 16, store, chunk_rows=16, scheduler="synchronous")
    rep = adapt_real(store, split="dev", n_sim=16, seeds=1, manifest=man, out=tmp_path / "o", log=lambda *a: None)
    assert "verdict" not in rep and "no labelled 'dev' file" in rep["skipped"]
    assert rep["skipped_files"] == {"absent": "not downloaded"}
    res = {"studies/adapt-real/adapt_real.json": json.loads((tmp_path / "o" / "adapt_real.json").read_text())}
    v, why = study_verdict({"rc": 0, "results": res})
    assert v == "SKIPPED" and "no labelled 'dev' file" in why
    assert study_verdict({"rc": 0, "results": {"x.json": {"verdict": "FAIL", "reason": "r"}}})[0] == "FAIL"
