"""benchmark-real with several XAFS models (runs grouped by corpus): each file is read by the model chosen for it
(metal foil vs oxide by the first-shell |chi(R)| peak), with that model's mean predictor; a file no model reads is
out of domain with every model's reason."""
from __future__ import annotations


import numpy as np
import pytest
import yaml

import simgen.corpus
from simgen.recipe import load_recipe


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from train.fit import FitConfig, fit
    d = tmp_path_factory.mktemp("models")
    dirs = []
    for name in ("exafs-foils", "exafs-oxides"):
        simgen.corpus.build(load_recipe(name), 384, d / f"{name}.zarr", chunk_rows=384, scheduler="synchronous")
        for seed in (0, 1):
            fit(FitConfig(store=str(d / f"{name}.zarr"), task="both", model="mlp", epochs=2, batch_size=128,
                          lr=2e-3, seed=seed, out=str(d / f"{name}-{seed}"), progress=False, device="cpu"),
                log=lambda *a, **k: None)
            dirs.append(str(d / f"{name}-{seed}"))
    return dirs


@pytest.mark.slow
def test_each_file_read_by_its_model(two_models, tmp_path, shared, monkeypatch):
    from train.studies.benchmark_real import benchmark_real
    cu = shared("data", "xafs", "XASLIB_Cu_cu_metal_rt.xdi")
    e = np.linspace(11700, 12800, 900)
    mu = 0.1 + 1 / (1 + np.exp(-(e - 11919) / 2.0))
    au = tmp_path / "au_l3.txt"
    np.savetxt(au, np.c_[e, mu], header="energy mu")
    man = {"version": 1, "packages": {}, "files": [
        {"id": "cu", "path": "xafs/XASLIB_Cu_cu_metal_rt.xdi", "modality": "exafs", "split": "dev",
         "known": {"R1": {"value": 2.556}, "N1": {"value": 12}}},
        {"id": "cuo", "path": "xafs/XASLIB_Cu_CuO_tenorite_13K_01.xdi", "modality": "exafs", "split": "dev",
         "known": {"R1": {"value": 1.955}, "N1": {"value": 4}}},
        {"id": "au", "path": str(au), "modality": "exafs", "split": "dev", "read": {"modality": "exafs", "units": "eV"},
         "known": {"R1": {"value": 2.88}}}]}
    mf = tmp_path / "manifest.yaml"
    mf.write_text(yaml.safe_dump(man))
    monkeypatch.setenv("SIMGEN_SHARED_DATA", str(cu.parents[1]))
    res = benchmark_real({"exafs": two_models}, split="dev", manifest=mf, fetch=False)
    files = {f["file"]: f for f in res["files"]}
    assert files["cu"]["model"] == "exafs-foils" and files["cuo"]["model"] == "exafs-oxides"
    assert files["cuo"]["route"]["nearest_class"] == "Cu_K_cuo"
    assert set(files["cuo"]["class"]) <= {"Cu_K_cuo", "Cu_K_cu2o"}
    assert {"N1", "R1", "N2", "R2", "N_nn", "R_nn"} <= set(files["cuo"]["predicted"])
    assert files["au"]["status"].startswith("out of domain: Au L3 edge") and "no model reads it" in \
        files["au"]["status"] and "exafs-oxides" in files["au"]["status"]
    rows = {(r["file"], r["quantity"]): r for r in res["rows"]}
    assert rows[("cu", "R1")]["n_seeds"] == 2 and rows[("cuo", "R1")]["n_seeds"] == 2
    # each file beside its own model's prior mean: oxide first shells ~2 A, metal ones ~2.6 A
    assert rows[("cuo", "R1")]["mean_predictor"] < 2.2 < rows[("cu", "R1")]["mean_predictor"]
    assert res["summary"]["exafs"]["models"] == {"exafs-foils": 2, "exafs-oxides": 2}
    assert "exafs-oxides" in res["table"]
