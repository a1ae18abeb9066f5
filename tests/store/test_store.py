import pytest
import torch

from xai_core.actmax import AMConfig, GridConfig, run_am, run_grid
from xai_core.actmax import engine as engine_mod
from xai_core.errors import CancelledError, ParameterError, StoreError
from xai_core.store import RunStore

GRID = GridConfig(lrs=(0.1, 0.01), lams=(0.01,), iters=(2, 4), directions=("max", "min"), n_examples=3,
                  n_reference=4, feature_layers=("response", "fc2"), max_chunk=3)


def test_am_round_trip_and_delete(tiny_bundles, tmp_path):
    clf, gen, _ = tiny_bundles
    store = RunStore(tmp_path)
    r = run_am(clf, gen, AMConfig(n_iter=3, n_examples=2), device="cpu")
    rid = store.save_am(r, classifier=clf, generator=gen, name="t")
    back = store.load(rid)
    assert back.config == r.config and torch.equal(back.z_best, r.z_best) and torch.equal(back.trace, r.trace)
    assert torch.equal(back.best_step, r.best_step) and torch.equal(back.prob_best, r.prob_best)
    assert torch.allclose(back.logmel_best, r.logmel_best, atol=0.01)  # float16 storage
    runs = store.list_runs()
    assert [x["id"] for x in runs] == [rid] and runs[0]["status"] == "complete" and runs[0]["name"] == "t"
    assert store.info(rid)["classifier"]["identity"] == clf.identity
    store.delete(rid)
    assert store.list_runs() == [] and not (tmp_path / rid).exists()
    with pytest.raises(StoreError, match="no run"):
        store.load(rid)


def test_grid_interrupted_resumes_without_recomputing(tiny_bundles, tmp_path, monkeypatch):
    clf, gen, ref = tiny_bundles
    full = run_grid(clf, gen, GRID, reference=ref, device="cpu")
    store = RunStore(tmp_path)

    def stop_after_two(done, total, info):
        if info.get("phase") == "group_done" and len(info["finished"]) == 2:
            return False

    with pytest.raises(CancelledError):
        run_grid(clf, gen, GRID, reference=ref, device="cpu", store=store, progress=stop_after_two)
    (run,) = store.list_runs()
    assert run["status"] == "cancelled"
    assert store.load(run["id"]).status != "complete"
    assert len(store.load_grid_groups(run["id"])) == 2

    rows_seen = []
    real = engine_mod._optimise_chunk

    def spy(resp, rows, **kw):
        rows_seen.append(len(rows))
        return real(resp, rows, **kw)

    monkeypatch.setattr(engine_mod, "_optimise_chunk", spy)
    res = run_grid(clf, gen, GRID, reference=ref, device="cpu", store=store, run_id=run["id"])
    assert sum(rows_seen) == (len(GRID.groups()) - 2) * GRID.n_examples
    assert store.list_runs()[0]["status"] == "complete"
    loaded = store.load(run["id"])
    assert loaded.selected == full.selected == res.selected
    for key, arr in full.fid.items():
        assert arr == pytest.approx(loaded.fid[key], rel=1e-5)
    for key, r in full.examples.items():
        assert torch.allclose(loaded.examples[key].z_best, r.z_best, atol=1e-6)
    assert len(loaded.table()) == 2 * 2 * 2 * 2


def test_resume_refuses_other_config(tiny_bundles, tmp_path):
    clf, gen, ref = tiny_bundles
    store = RunStore(tmp_path)
    rid = store.start_grid(GRID, classifier=clf, generator=gen)
    other = GridConfig(**{**GRID.to_dict(), "lams": (0.5,)})
    with pytest.raises(ParameterError, match="another grid configuration"):
        run_grid(clf, gen, other, reference=ref, device="cpu", store=store, run_id=rid)


def test_depthmaps_round_trip_checks_export_and_refusal(tiny_demo_dir, tiny_bundles, tmp_path):
    import json

    import numpy as np

    from xai_core.explain.depthmaps import explain, load_explainers
    from xai_core.explain.depthmaps.serial import load_result

    clf, _, ref = tiny_bundles
    exps, skipped = load_explainers(tiny_demo_dir / "explainers", classifier=clf)
    assert sorted(exps) == ["global", "local"] and not skipped
    res = explain(clf, ref.logmel[:1], explainers=exps, device="cpu")
    res.checks = {"faithfulness": [{"map": "conv1", "deletion_auc": 0.1, "insertion_auc": 0.3}],
                  "sanity": {"stages": ["logit"], "mean_correlation": {"conv1": [0.9]}, "passes": {"conv1": False},
                             "fail_above": 0.5}}
    store = RunStore(tmp_path / "runs")
    rid = store.save_depthmaps(res, classifier=clf, input_label="reference excerpt 0", name="d")
    row = store.list_runs()[0]
    assert row["id"] == rid and row["kind"] == "depthmaps" and row["status"] == "complete"
    assert row["summary"]["sanity_fails"] == ["conv1"] and "p_vocal" in row["summary"]
    back = store.load(rid)
    assert back.layers == res.layers and back.kept == res.kept and back.conditions == res.conditions
    assert back.checks == res.checks and list(back.gan) == ["global", "local"]
    torch.testing.assert_close(back.layer_maps, res.layer_maps, atol=5e-4, rtol=0)  # float16 maps in [0, 1]
    torch.testing.assert_close(back.relevance["local"], res.relevance["local"])
    assert torch.equal(back.logmel, res.logmel)
    files = {p.name for p in store.export(rid, tmp_path / "out")}
    assert files == {"depthmaps.npz", "depthmaps_summary.json", "depthmaps.png", "faithfulness.csv"}
    arrays = np.load(tmp_path / "out" / "depthmaps.npz")
    assert arrays["conv1"].shape == (1, 115, 80) and "GAN_global" in arrays  # (excerpts, T, M)
    assert json.loads((tmp_path / "out" / "depthmaps_summary.json").read_text())["checks"] == res.checks
    # a damaged file is refused with its reason, and nothing else in the store is touched
    path = tmp_path / "runs" / rid / "depthmaps.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ParameterError, match="not a readable depth-map result"):
        load_result(path)
    assert store.list_runs()[0]["id"] == rid
