"""Out-of-range flags in the run store: AM and grid round trips, runs stored before flags existed, the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from xai_core.actmax import AMConfig, GridConfig, run_am, run_grid
from xai_core.actmax.flags import RealRange, cell_shares, flag_examples
from xai_core.cli import main
from xai_core.store import RunStore

GRID = GridConfig(lrs=(0.5, 0.01), lams=(0.01,), iters=(2, 3), directions=("max", "min"), n_examples=3,
                  n_reference=4, feature_layers=("response",))


def _same_flags(a, b):
    assert a.real_range == b.real_range and a.direction == b.direction and a.z_dim == b.z_dim
    assert (a.margin, a.level_margin, a.alpha) == (b.margin, b.level_margin, b.alpha)
    assert a.in_range.tolist() == b.in_range.tolist() and a.z_out.tolist() == b.z_out.tolist()
    assert a.level == pytest.approx(b.level) and a.z_p == pytest.approx(b.z_p)
    assert a.badges() == b.badges()


def test_am_flags_round_trip_with_and_without_reference(tiny_bundles, tmp_path):
    clf, gen, ref = tiny_bundles
    store = RunStore(tmp_path)
    rr = RealRange.from_reference(clf, ref)
    cfg = AMConfig(n_iter=2, n_examples=3, lr=0.5)
    for real_range in (rr, None):
        r = run_am(clf, gen, cfg, device="cpu", real_range=real_range)
        rid = store.save_am(r, classifier=clf, generator=gen)
        back = store.load(rid)
        _same_flags(back.flags, r.flags)
        assert not back.flags.recomputed
        summary = store.info(rid)["summary"]
        assert summary["in_range_share"] == r.flags.share_in_range
        assert ("flags_unknown" in summary) == (real_range is None)


def test_old_am_run_without_flags_loads_with_z_flags(tiny_bundles, tmp_path, capsys):
    clf, gen, ref = tiny_bundles
    store = RunStore(tmp_path)
    r = run_am(clf, gen, AMConfig(n_iter=2, n_examples=3, lr=0.5), device="cpu",
               real_range=RealRange.from_reference(clf, ref))
    r.flags = None  # what a run stored before flags existed looks like: no arrays, no metadata, no summary fields
    rid = store.save_am(r, classifier=clf, generator=gen)
    assert "in_range_share" not in store.info(rid)["summary"]
    back = store.load(rid)
    assert back.flags.recomputed and back.flags.real_range is None and back.flags.checked == ("z",)
    assert back.flags.z_out.tolist() == flag_examples(r).z_out.tolist()
    assert main(["runs", "list", "--runs-dir", str(tmp_path)]) == 0
    assert "in range" not in capsys.readouterr().out  # no share claimed for an unflagged run


def test_grid_flags_round_trip_and_old_grid(tiny_bundles, tmp_path):
    clf, gen, ref = tiny_bundles
    store = RunStore(tmp_path / "new")
    res = run_grid(clf, gen, GRID, reference=ref, device="cpu", store=store)
    back = store.load(res.run_id)
    assert back.real_range == res.real_range == RealRange.from_reference(clf, ref)
    for key, r in res.examples.items():
        _same_flags(back.examples[key].flags, r.flags)
    for d in GRID.directions:
        assert cell_shares(back)[d] == pytest.approx(cell_shares(res)[d])
    summary = store.info(res.run_id)["summary"]
    sel = res.selected["max"]
    assert summary["in_range_selected"]["max"] == \
        res.examples[("max", sel["lr"], sel["lam"], sel["n_iter"])].flags.share_in_range
    assert summary["real_range"] == res.real_range.to_dict()

    # a grid stored before flags existed: no flags in its part files, no real range in its summary
    old = RunStore(tmp_path / "old")
    rid = old.start_grid(GRID, classifier=clf, generator=gen)
    for r in res.examples.values():
        r.flags = None
    res.real_range = None
    for d, lr, lam in GRID.groups():
        old.save_grid_group(rid, (d, lr, lam), {n: res.examples[(d, lr, lam, n)] for n in GRID.iters})
    old.finish_grid(rid, res)
    loaded = old.load(rid)
    assert loaded.status == "complete" and loaded.real_range is None
    assert "in_range_selected" not in old.info(rid)["summary"]
    for r in loaded.examples.values():
        assert r.flags.recomputed and r.flags.checked == ("z",)
    shares = cell_shares(loaded)
    assert all(np.isfinite(a).all() for a in shares.values())  # ||z|| only, but every cell has a share


@pytest.mark.slow
def test_cli_prints_in_range_share_and_fired_flags(tiny_demo_dir, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    common = ["--demo-dir", str(tiny_demo_dir), "--runs-dir", runs, "--no-progress", "--device", "cpu"]
    assert main(["am", *common, "--iters", "2", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "out-of-range flags: in range: " in out and "fired: response " in out and "loudness" in out
    assert "real range (" in out and "||z|| outside [" in out and "stored in" in out
    assert main(["am", *common, "--iters", "2", "--examples", "3", "--no-reference"]) == 0
    out = capsys.readouterr().out
    assert "unknown (no real range): response, loudness" in out and "real range (" not in out
    assert main(["grid", *common, "--iters", "2,3", "--lrs", "0.1", "--lams", "0.1,0.01", "--examples", "3",
                 "--n-reference", "4", "--features", "response"]) == 0
    out = capsys.readouterr().out
    assert "in range max   (share of examples inside the real range" in out and "in range min" in out
    assert out.count("out-of-range flags: in range: ") == 2  # one per selected configuration
    assert main(["runs", "list", "--runs-dir", runs]) == 0
    listed = capsys.readouterr().out
    assert listed.count("in range") == 3  # two AM runs, one grid (both directions on one line)


@pytest.mark.parametrize("damage", ["range-not-a-mapping", "z_dim-not-a-number", "flag-wrong-shape",
                                    "flag-missing"])
def test_damaged_stored_flags_are_a_store_error(tiny_bundles, tmp_path, damage):
    import json

    import torch
    from safetensors import safe_open
    from safetensors.torch import save

    from xai_core.errors import StoreError

    clf, gen, ref = tiny_bundles
    store = RunStore(tmp_path)
    r = run_am(clf, gen, AMConfig(n_iter=1, n_examples=2), device="cpu", real_range=RealRange.from_reference(clf, ref))
    rid = store.save_am(r, classifier=clf, generator=gen)
    path = tmp_path / rid / "am.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["vocal_xai"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if damage == "range-not-a-mapping":
        meta["flags"]["real_range"] = "everything"
    elif damage == "z_dim-not-a-number":
        meta["flags"]["z_dim"] = "many"
    elif damage == "flag-wrong-shape":
        tensors["flags:z_out"] = torch.zeros(5, dtype=torch.uint8)
    else:
        del tensors["flags:level_out"]
    path.write_bytes(save(tensors, metadata={"vocal_xai": json.dumps(meta)}))
    with pytest.raises(StoreError, match="damaged"):
        store.load(rid)
