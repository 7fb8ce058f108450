"""A class known from the file (``Adapter.allowed_classes``) also picks the per-class de-normalisation of a run
trained with ``y_norm='class'``: its targets are read with the statistics of the most probable allowed class,
never with those of a class the network preferred but the file cannot be."""
from __future__ import annotations

import numpy as np
import torch

import simgen.corpus as sc
from train.fit import FitConfig, fit
from train.run import class_for_norm

from _train_fixtures import tiny_recipe


def test_class_for_norm_masks_disallowed_classes():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    assert class_for_norm(logits).tolist() == [0, 1]
    assert class_for_norm(logits, [False, True, True]).tolist() == [2, 1]
    assert class_for_norm(logits, [False, False, False]).tolist() == [0, 1]   # nothing allowed: no restriction


def test_restricted_prediction_uses_the_allowed_class_statistics(tmp_path):
    store = tmp_path / "p.zarr"
    sc.build(tiny_recipe(), 256, store, chunk_rows=64, progress=False, scheduler="synchronous")
    run = fit(FitConfig(store=str(store), task="both", model="mlp", epochs=1, y_norm="class", out=str(tmp_path / "r"),
                        progress=False, device="cpu"), log=lambda *a, **k: None)
    x = np.asarray(sc.open(store).x[:8], np.float32)
    with torch.no_grad():
        out = run.model(torch.from_numpy(run.normalisers.x.transform(x)))
    z = out["reg"].float().numpy()
    n_cls = len(run.task.classes)
    for k in range(n_cls):
        only = [j == k for j in range(n_cls)]
        got = run.predict_arrays(x, allowed=only)["reg"]
        np.testing.assert_allclose(got, run.normalisers.y.inverse(z, np.full(len(x), k)), rtol=1e-5, atol=1e-6)
    free = run.predict_arrays(x)["reg"]
    np.testing.assert_allclose(free, run.normalisers.y.inverse(z, out["logits"].argmax(1).numpy()), rtol=1e-5,
                               atol=1e-6)
