"""Run-store faults (issue 17): damaged databases and files, bad rows and ids, non-finite results,
exports through symbolic links. Every fault is a StoreError (the app shows it), exit status 1 on the
command line, one line on stderr, no traceback."""

import dataclasses
import os
import sqlite3

import numpy as np
import pytest
import torch

from xai_core.actmax import AMConfig, GridConfig, run_am
from xai_core.actmax.engine import GridResult
from xai_core.cli import main
from xai_core.errors import OutputError, ParameterError, StoreError, XaiError
from xai_core.store import RunStore


@pytest.fixture(scope="module")
def am_result(tiny_bundles):
    clf, gen, _ = tiny_bundles
    return run_am(clf, gen, AMConfig(n_iter=2, n_examples=2), device="cpu")


@pytest.fixture
def store_with_run(tmp_path, tiny_bundles, am_result):
    clf, gen, _ = tiny_bundles
    store = RunStore(tmp_path / "runs")
    rid = store.save_am(am_result, classifier=clf, generator=gen, name="ok")
    return store, rid


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_damaged_or_misplaced_database_is_a_store_error(tmp_path, capsys):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "runs.sqlite").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(StoreError, match="not a database.*move it away"):
        RunStore(garbage)
    assert main(["runs", "list", "--runs-dir", str(garbage)]) == 1
    assert "runs.sqlite" in _one_error_line(capsys)

    folder_db = tmp_path / "folder_db"
    (folder_db / "runs.sqlite").mkdir(parents=True)
    with pytest.raises(StoreError, match="is a folder, not an SQLite file"):
        RunStore(folder_db)

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="is not a folder"):
        RunStore(a_file)
    with pytest.raises(StoreError, match="cannot create the run store folder"):
        RunStore(a_file / "below")  # a file where a folder would have to be created
    assert main(["runs", "list", "--runs-dir", str(a_file / "below")]) == 1
    _one_error_line(capsys)

    other = tmp_path / "other"  # an SQLite file of another program
    other.mkdir()
    with sqlite3.connect(other / "runs.sqlite") as con:
        con.execute("CREATE TABLE runs (x INTEGER)")
    store = RunStore(other)
    with pytest.raises(StoreError, match="runs.sqlite"):
        store.list_runs()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_unwritable_runs_dir(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="not writable|unable to open"):
            RunStore(ro)
        assert main(["runs", "list", "--runs-dir", str(ro)]) == 1
        _one_error_line(capsys)
    finally:
        ro.chmod(0o700)


def test_missing_or_damaged_array_file(store_with_run, tmp_path, capsys):
    store, rid = store_with_run
    path = store.root / rid / "am.safetensors"
    blob = path.read_bytes()
    path.write_bytes(blob[:100])
    with pytest.raises(StoreError, match="not a readable array file"):
        store.load(rid)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 14)  # a valid, empty safetensors file
    with pytest.raises(StoreError, match=rid):
        store.load(rid)
    path.unlink()
    with pytest.raises(StoreError, match="missing .deleted"):
        store.load(rid)
    argv = ["runs", "export", rid, "--out", str(tmp_path / "exp"), "--runs-dir", str(store.root)]
    assert main(argv) == 1
    assert "is missing" in _one_error_line(capsys)
    assert store.info(rid)["status"] == "complete"  # metadata still readable; delete still works
    store.delete(rid)
    assert store.list_runs() == []


def test_rows_that_are_not_json(store_with_run, capsys):
    store, rid = store_with_run
    with sqlite3.connect(store.db) as con:
        con.execute("UPDATE runs SET summary = '{not json', config = 'nan]' WHERE id = ?", (rid,))
    (row,) = store.list_runs()  # one damaged row does not hide the others
    assert row["id"] == rid and row["summary"] == {}
    with pytest.raises(StoreError, match="(config|summary) in .* is not readable JSON"):
        store.info(rid)
    assert main(["runs", "list", "--runs-dir", str(store.root)]) == 0
    assert rid in capsys.readouterr().out
    assert main(["runs", "show", rid, "--runs-dir", str(store.root)]) == 1
    assert "not readable JSON" in _one_error_line(capsys)


def test_grid_with_damaged_config_or_part_rows(tiny_bundles, tmp_path):
    clf, gen, _ = tiny_bundles
    store = RunStore(tmp_path)
    cfg = GridConfig(lrs=(0.1,), lams=(0.01,), iters=(2,), directions=("max",), n_examples=2, n_reference=2,
                     feature_layers=("response",))
    rid = store.start_grid(cfg, classifier=clf, generator=gen)
    with sqlite3.connect(store.db) as con:
        con.execute("INSERT INTO parts VALUES (?, 'max', 0.1, 0.01, '../../../etc/passwd')", (rid,))
    with pytest.raises(StoreError, match="not a plain file name"):
        store.load(rid)
    with sqlite3.connect(store.db) as con:
        con.execute("DELETE FROM parts")
        con.execute("UPDATE runs SET config = '{\"lrs\": [-1]}' WHERE id = ?", (rid,))
    with pytest.raises(StoreError, match=rid):
        store.load(rid)
    with pytest.raises(StoreError, match="grid configuration is damaged"):
        store.check_resumable(rid, cfg, classifier=clf, generator=gen)


def test_unknown_and_malicious_run_ids(store_with_run, tmp_path, capsys):
    store, rid = store_with_run
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    for bad in ("nope", "../victim", "a/b", "", "..", "x" * 300):
        with pytest.raises(StoreError):
            store.load(bad)
    # a crafted row whose id walks out of the store: delete refuses before touching the file system
    with sqlite3.connect(store.db) as con:
        con.execute("INSERT INTO runs (id, kind, created, status, config) VALUES ('../victim', 'am', 'x', 'complete', "
                    "'{}')")
    with pytest.raises(StoreError, match="not a run id"):
        store.delete("../victim")
    assert (victim / "keep.txt").read_text() == "precious"
    assert main(["runs", "delete", "../victim", "--runs-dir", str(store.root)]) == 1
    _one_error_line(capsys)
    assert main(["runs", "show", "am-20000101-000000-000000", "--runs-dir", str(store.root)]) == 1
    assert "no run 'am-20000101-000000-000000'" in _one_error_line(capsys)
    # the store is still usable
    assert store.info(rid)["name"] == "ok"


# ---- non-finite results are never stored as complete ---------------------------------------------------


def test_am_with_nan_is_stored_as_failed(tiny_bundles, am_result, tmp_path, capsys):
    clf, gen, _ = tiny_bundles
    store = RunStore(tmp_path)
    bad = dataclasses.replace(am_result, prob_best=torch.full_like(am_result.prob_best, float("nan")),
                              logit_best=am_result.logit_best.clone())
    bad.logit_best[0] = float("inf")
    rid = store.save_am(bad, classifier=clf, generator=gen)
    info = store.info(rid)
    assert info["status"] == "failed"
    assert "prob_best (2 of 2 values)" in info["message"] and "logit_best (1 of 2 values)" in info["message"]
    with pytest.raises(StoreError, match="is failed: non-finite results"):
        store.ensure_complete(rid)
    assert store.load(rid).prob_best.isnan().all()  # kept for inspection, marked failed
    assert main(["runs", "list", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "non-finite" in out
    # a divergence after the kept iterate does not fail the run
    late = dataclasses.replace(am_result, score_last=torch.full_like(am_result.score_last, float("nan")))
    assert store.info(store.save_am(late, classifier=clf, generator=gen))["status"] == "complete"


def test_grid_with_nan_fid_or_no_finite_selection_is_failed(tiny_bundles, am_result, tmp_path):
    clf, gen, _ = tiny_bundles
    store = RunStore(tmp_path)
    cfg = GridConfig(lrs=(0.1, 0.01), lams=(0.01,), iters=(2,), directions=("max",), n_examples=2, n_reference=2,
                     feature_layers=("response",))

    def finish(values, selected_fid):
        rid = store.start_grid(cfg, classifier=clf, generator=gen)
        res = GridResult(config=cfg, fid={("max", "response"): np.array(values, dtype=float).reshape(1, 2, 1)},
                         selected={"max": {"lr": 0.1, "lam": 0.01, "n_iter": 2, "fid": selected_fid,
                                           "feature": "response"}},
                         examples={("max", 0.1, 0.01, 2): am_result}, reference={"max": torch.tensor([0, 1])},
                         seconds=1.0, device="cpu", reference_response={"max": torch.tensor([0.5, 0.7])})
        store.finish_grid(rid, res)
        return store.info(rid)

    assert finish([1.5, float("inf")], 1.5)["status"] == "complete"  # a diverged cell: FID inf, not selected
    info = finish([float("nan"), 2.0], 2.0)
    assert info["status"] == "failed" and "fid[max/response] (1 NaN)" in info["message"]
    info = finish([float("inf"), float("inf")], float("inf"))
    assert info["status"] == "failed" and "selected[max].fid" in info["message"]


def test_cladec_evaluation_with_nan_is_failed(tiny_bundles, tmp_path):
    from xai_core.explain.cladec import CladecEvaluation
    from xai_core.explain.cladec.config import EvalConfig

    clf, _, _ = tiny_bundles
    store = RunStore(tmp_path)
    row = {"layer": "fc2", "variant": "cladec", "retrained_error": float("nan"), "mse": 0.1}
    ev = CladecEvaluation(EvalConfig(), clf.identity, {"error": 0.2}, {"error": 0.3}, rows=[row])
    info = store.info(store.save_cladec_eval(ev, classifier=clf, decoders=tmp_path))
    assert info["status"] == "failed" and "rows[0].retrained_error" in info["message"]
    ok = CladecEvaluation(EvalConfig(), clf.identity, {"error": 0.2}, {"error": 0.3}, rows=[{**row,
                                                                                          "retrained_error": 0.25}])
    assert store.info(store.save_cladec_eval(ok, classifier=clf, decoders=tmp_path))["status"] == "complete"


# ---- exports: never through a link, never over a file without --force -----------------------------------


def test_export_never_writes_through_a_symlink(store_with_run, tmp_path, capsys):
    store, rid = store_with_run
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "exp"
    out.mkdir()
    (out / "examples.csv").symlink_to(victim)
    base = ["runs", "export", rid, "--out", str(out), "--runs-dir", str(store.root), "--no-png",
            "--griffin-lim-iter", "0"]
    for extra in ([], ["--force"]):
        assert main([*base, *extra]) == 1
        assert "symbolic link" in _one_error_line(capsys)
        assert victim.read_text() == "precious" and (out / "examples.csv").is_symlink()
    (out / "examples.csv").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "wav").symlink_to(elsewhere, target_is_directory=True)  # a linked sub-folder
    assert main([*base, "--force"]) == 1
    assert "symbolic link" in _one_error_line(capsys)
    assert list(elsewhere.iterdir()) == [] and not (out / "examples.csv").exists()  # nothing written
    (out / "wav").unlink()
    link_out = tmp_path / "link_out"
    link_out.symlink_to(elsewhere, target_is_directory=True)  # --out itself a link
    assert main(["runs", "export", rid, "--out", str(link_out), "--runs-dir", str(store.root), "--no-wav",
                 "--no-png"]) == 1
    _one_error_line(capsys)
    assert list(elsewhere.iterdir()) == []


def test_export_refuses_to_overwrite_without_force(store_with_run, tmp_path, capsys):
    store, rid = store_with_run
    out = tmp_path / "exp"
    base = ["runs", "export", rid, "--out", str(out), "--runs-dir", str(store.root), "--no-png", "--no-wav"]
    assert main(base) == 0
    first = (out / "examples.csv").read_bytes()
    (out / "examples.csv").write_text("edited")
    capsys.readouterr()
    assert main(base) == 2  # a usage error: add --force
    assert "examples.csv; pass --force" in _one_error_line(capsys)
    assert (out / "examples.csv").read_text() == "edited"
    assert main([*base, "--force"]) == 0
    assert (out / "examples.csv").read_bytes() == first
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["runs", "export", rid, "--out", str(a_file), "--runs-dir", str(store.root), "--no-wav"]) == 2
    assert "exists and is not a folder" in _one_error_line(capsys)


def test_store_errors_are_xai_errors():
    assert issubclass(StoreError, XaiError) and issubclass(OutputError, XaiError)
    assert not issubclass(StoreError, ParameterError)  # exit status 1, not 2
