import pytest
import torch

from xai_core.actmax import AMConfig, GridConfig, run_am, run_grid
from xai_core.actmax import engine as engine_mod
from xai_core.errors import CancelledError, ParameterError
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
    with pytest.raises(ParameterError):
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
