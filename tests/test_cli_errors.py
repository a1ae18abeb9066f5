"""Command-line error paths (issue 17): one line on stderr naming the bad value, exit status 2 for usage
errors and 1 for failures, no traceback without --debug; bounded arguments; outputs never written
through symbolic links nor over files without --force; terminal escapes from files never printed raw."""

import argparse
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xai_core.cli import build_parser, main
from xai_core.cliargs import SEED_MAX
from xai_core.errors import CheckpointError, OutputError, ParameterError, XaiError
from xai_core.fileio import atomic_write_bytes, check_new_files, check_output_file
from xai_core.text import one_line, printable

ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


# ---- bounded arguments: argparse refuses them with the accepted range (exit 2) --------------------------

@pytest.mark.parametrize("argv, words", [
    (["am", "--lam", "1e308"], ["--lam", "'1e308'", "[0, 1e+06]"]),
    (["am", "--lr", "-0.1"], ["--lr", "'-0.1'", "(0, 100]"]),
    (["am", "--lr", "nan"], ["--lr", "finite", "'nan'"]),
    (["am", "--iters", "0"], ["--iters", "[1, 100000]"]),
    (["am", "--examples", "5000"], ["--examples", "[1, 4096]"]),
    (["am", "--seed", str(SEED_MAX + 1)], ["--seed", f"[0, {SEED_MAX}]"]),
    (["am", "--seed", "-1"], ["--seed", "'-1'"]),
    (["am", "--unit", "1.5"], ["--unit", "'1.5'"]),
    (["am", "--device", "meta"], ["--device", "'meta'", "cpu", "cuda:N", "mps"]),
    (["am", "--device", "cuda:99"], ["--device", "cuda"]),
    (["grid", "--lrs", "0.1,inf"], ["--lrs", "'inf'"]),
    (["grid", "--iters", "100,1e9"], ["--iters", "'1e9'"]),
    (["classify", "a.wav", "--offset", "inf"], ["--offset", "'inf'", "[0, 1e+06]"]),
    (["classify", "a.wav", "--threshold", "2"], ["--threshold", "'2'", "bundle"]),
    (["attack", "--eps-db", "0", "--out", "x"], ["--eps-db", "(0, 60]"]),
    (["train", "classifier", "--data", "d", "--out", "o", "--momentum", "1"], ["--momentum", "[0, 1)"]),
    (["cladec", "decode", "d", "--gl-iters", "-5", "--out", "o"], ["--gl-iters", "[0, 10000]"]),
    (["runs", "export", "r", "--out", "o", "--griffin-lim-iter", "99999999"], ["--griffin-lim-iter"]),
])
def test_out_of_range_arguments_are_usage_errors(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: argument" in last and all(w in last for w in words), last


def test_cuda_without_cuda_is_refused(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as exc:
        main(["am", "--device", "cuda"])
    assert exc.value.code == 2 and "CUDA is not available" in capsys.readouterr().err


def test_help_documents_the_ranges(capsys):
    with pytest.raises(SystemExit):
        main(["am", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(range [0, {SEED_MAX}])" in text and "(range [1, 4096])" in text and "(range [1, 100000])" in text
    parser = build_parser()  # every number of every command is bounded
    unbounded = []

    def walk(p, path):
        for a in p._actions:
            if a.type in (int, float):
                unbounded.append(f"{path} {a.option_strings}")
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, f"{path} {name}")

    walk(parser, "")
    assert unbounded == []


# ---- exit statuses and one-line messages -----------------------------------------------------------------

def _raising(monkeypatch, exc):
    from xai_core.store import RunStore

    def boom(self, kind=None):
        raise exc

    monkeypatch.setattr(RunStore, "list_runs", boom)


@pytest.mark.parametrize("exc, rc, words", [
    (ParameterError("bad value 3; expected 1..2"), 2, ["bad value 3; expected 1..2"]),
    (CheckpointError("x.safetensors: not a bundle"), 1, ["x.safetensors: not a bundle"]),
    (XaiError("two\nlines\r\x1b[2Jhere"), 1, ["two | lines | \\x1b[2Jhere"]),
    (PermissionError(13, "Permission denied", "/some/where"), 1, ["Permission denied: '/some/where'"]),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB.\nmore"), 1,
     ["out of device memory (CUDA out of memory)", "--device cpu"]),
    (MemoryError(), 1, ["out of memory"]),
    (RuntimeError("boom\nsecond line"), 1, ["internal error (RuntimeError: boom | second line)", "--debug"]),
    (KeyError("k"), 1, ["internal error (KeyError: 'k')"]),
])
def test_errors_become_one_line_and_an_exit_status(exc, rc, words, monkeypatch, tmp_path, capsys):
    _raising(monkeypatch, exc)
    assert main(["runs", "list", "--runs-dir", str(tmp_path)]) == rc
    err = _one_error_line(capsys)
    assert all(w in err for w in words), err
    assert "\x1b" not in err and "\r" not in err


def test_debug_reraises_and_interrupt_is_130(monkeypatch, tmp_path, capsys):
    _raising(monkeypatch, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "runs", "list", "--runs-dir", str(tmp_path)])
    _raising(monkeypatch, KeyboardInterrupt())
    assert main(["runs", "list", "--runs-dir", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_real_processes_print_no_traceback_unless_debug(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "xai_core", "runs", "list", "--runs-dir", str(a_file)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "is not a folder" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=120)
    assert p.returncode == 1 and "Traceback" in p.stderr and "StoreError" in p.stderr


# ---- output files ------------------------------------------------------------------------------------------

def test_output_checks_happen_before_any_work(tmp_path, capsys):
    existing = tmp_path / "r.json"
    existing.write_text("old")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    nothing = str(tmp_path / "missing.wav")  # never read: the output is refused first
    cases = [
        (["classify", nothing, "--json", str(existing)], 2, "pass --force"),
        (["classify", nothing, "--json", str(link), "--force"], 1, "symbolic link"),
        (["classify", nothing, "--json", str(tmp_path)], 2, "is a folder"),
        (["classify", nothing, "--json", str(a_file / "r.json")], 1, "is not a folder"),
        (["sanity", "am", "--json", str(existing)], 2, "pass --force"),
        (["faithfulness", "--json", str(link)], 1, "symbolic link"),
        (["eval", "classifier", "b.safetensors", "--data", "d", "--json", str(existing)], 2, "pass --force"),
        (["train", "export", "b.safetensors", "--out", str(existing)], 2, "pass --force"),
        (["train", "classifier", "--data", "d", "--out", str(link), "--force"], 1, "symbolic link"),
        (["consistency", "score", "--csv", str(existing)], 2, "pass --force"),
        (["gradcam", "--out", str(a_file)], 2, "exists and is not a folder"),
    ]
    for argv, rc, words in cases:
        assert main(argv) == rc, argv
        assert words in _one_error_line(capsys), argv
    assert existing.read_text() == "old" and victim.read_text() == "precious" and link.is_symlink()


def test_fileio_refuses_links_and_existing_files(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_bytes(link, b"new")
    assert victim.read_text() == "precious" and link.is_symlink()
    with pytest.raises(ParameterError, match="pass --force"):
        atomic_write_bytes(victim, b"new", overwrite=False)
    atomic_write_bytes(victim, b"new")
    assert victim.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["link", "victim"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(OutputError, match="output folder .*sub.* is a symbolic link"):
        check_new_files(out, ["sub/x.wav"], force=True)
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_bytes(out / "sub" / "x.wav", b"x", root=out)
    assert not (tmp_path / "x.wav").exists()
    with pytest.raises(OutputError, match="leaves the output folder"):
        check_new_files(out, ["../escape.txt"], force=True)
    assert check_output_file(None, force=False) is None


# ---- activation maximisation on a classifier that outputs NaN ------------------------------------------

def test_am_on_a_nan_classifier_is_stored_as_failed_and_exits_1(tiny_bundles, tiny_demo_dir, tmp_path, monkeypatch,
                                                               capsys):
    import xai_core.actmax.cli as am_cli
    from xai_core.store import RunStore

    clf, gen, _ = tiny_bundles
    nan_clf = copy.copy(clf)
    nan_clf.model = copy.deepcopy(clf.model)
    with torch.no_grad():
        for p in nan_clf.model.parameters():
            p.fill_(float("nan"))
    monkeypatch.setattr(am_cli, "_load", lambda args: (nan_clf, gen, None))
    runs = tmp_path / "runs"
    rc = main(["am", "--demo-dir", str(tiny_demo_dir), "--runs-dir", str(runs), "--iters", "2", "--examples", "2",
               "--no-progress", "--device", "cpu"])
    assert rc == 1
    err = _one_error_line(capsys)
    assert "is failed: non-finite results" in err and "prob_best" in err
    (run,) = RunStore(runs).list_runs()
    assert run["status"] == "failed" and "prob_best" in run["message"]


def test_am_with_an_unusable_runs_dir_fails_before_computing(tiny_demo_dir, tmp_path, monkeypatch, capsys):
    import xai_core.actmax.engine as engine

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    monkeypatch.setattr(engine, "run_am", lambda *a, **k: pytest.fail("computed before checking the store"))
    assert main(["am", "--demo-dir", str(tiny_demo_dir), "--runs-dir", str(a_file), "--device", "cpu"]) == 1
    assert "is not a folder" in _one_error_line(capsys)


# ---- text from files is printed without terminal escapes --------------------------------------------------

def test_printable_and_one_line():
    evil = "name\x1b]0;owned\x07\x1b[2J\rX\u202e\x9b31m\ttab\nnext"
    s = printable(evil)
    assert all(c not in s for c in "\x1b\x07\r\u202e\x9b") and "\\x1b]0;owned" in s and "\\u202e" in s
    assert "\ttab\nnext" in s and printable("Café ♪ 歌") == "Café ♪ 歌"
    assert one_line("a\n  b\r\nc\x00") == "a | b | c\\x00"
    assert one_line("x" * 5000).endswith("...") and len(one_line("x" * 5000)) == 2000


def test_models_info_and_runs_list_escape_metadata(tiny_bundles, tmp_path, capsys):
    from xai_core.actmax import AMConfig, run_am
    from xai_core.checkpoints import save_bundle
    from xai_core.store import RunStore

    clf, gen, _ = tiny_bundles
    path = tmp_path / "evil.safetensors"
    save_bundle(path, model=clf.model, kind="classifier", mel=clf.mel, normaliser=clf.normaliser, preset=clf.preset,
                provenance={"note": "\x1b]0;owned\x07\x1b[2Jcleared"}, metrics={})
    rc = main(["info", str(path)])
    cap = capsys.readouterr()
    assert "\x1b" not in cap.out + cap.err and "\x07" not in cap.out + cap.err
    if rc == 0:  # (a loader may also refuse such metadata: then one error line, still escaped)
        assert "\\x1b[2Jcleared" in cap.out
    store = RunStore(tmp_path / "runs")
    store.save_am(run_am(clf, gen, AMConfig(n_iter=1, n_examples=1), device="cpu"), classifier=clf, generator=gen,
                  name="red\x1b[31m\rover\nwrite")
    assert main(["runs", "list", "--runs-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and out.count("\n") == 1 and "red\\x1b[31m\\x0dover" in out
