"""``python -m xai_core counterfactual`` in-process on the tiny demo: outputs, the run store, exit statuses."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from xai_core.cli import main

FAST = ["--restarts", "2", "--invert-steps", "10", "--iters", "6", "--trace-every", "3", "--gl-iters", "2",
        "--device", "cpu", "--no-progress"]


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _wav(path, seconds=3.0, *, silent_after: float | None = None, sr=22050):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)
    if silent_after is not None:
        x[t >= silent_after] = 0.0
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV")
    path.write_bytes(buf.getvalue())
    return str(path)


def _base(tiny_demo_dir, tmp_path):
    return ["--demo-dir", str(tiny_demo_dir), "--runs-dir", str(tmp_path / "runs"), *FAST]


def test_counterfactual_prints_writes_and_stores(tiny_demo_dir, tmp_path, capsys):
    from xai_core.store import RunStore

    audio = _wav(tmp_path / "tone.wav")
    out = tmp_path / "out"
    assert main(["counterfactual", audio, "--offset", "0.5", "--beta", "0.5", "--out", str(out),
                 *_base(tiny_demo_dir, tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "tone.wav at 0.5 s: inverted with 2 restarts x 10 steps" in text
    assert "reconstruction error" in text and "real-vs-real spread threshold" in text
    assert "p(vocal): original" in text and "reconstruction" in text and "more vocal" in text and "less vocal" in text
    assert ("reconstruction: ok." in text) or ("CANNOT RECONSTRUCT" in text)
    assert sorted(p.name for p in out.iterdir()) == ["counterfactual.json", "counterfactual.png", "less_vocal.wav",
                                                     "more_vocal.wav", "original.wav", "reconstruction.wav"]
    assert (out / "counterfactual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    waves = [sf.read(out / n)[0] for n in ("original.wav", "reconstruction.wav", "more_vocal.wav", "less_vocal.wav")]
    peak = max(float(np.abs(w).max()) for w in waves)
    assert 0.8 < peak <= 1.0  # one common gain: only the loudest clip reaches the headroom
    summary = json.loads((out / "counterfactual.json").read_text())
    assert summary["config"]["beta"] == 0.5 and summary["label"] == "tone.wav at 0.5 s"
    assert set(summary["summary"]) >= {"rec_mse", "p_original", "p_reconstruction", "p_max", "p_min"}
    runs = RunStore(tmp_path / "runs").list_runs("counterfactual")
    assert len(runs) == 1 and runs[0]["status"] == "complete"
    assert runs[0]["summary"]["rec_mse"] == pytest.approx(summary["summary"]["rec_mse"])
    # again without --force: refused before any work (exit 2); with it, replaced
    assert main(["counterfactual", audio, "--out", str(out), *_base(tiny_demo_dir, tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["counterfactual", audio, "--out", str(out), "--force", "--direction", "min",
                 *_base(tiny_demo_dir, tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "less vocal" in text and "more vocal" not in text


def test_one_direction_without_out_or_reference(tiny_demo_dir, tmp_path, capsys):
    audio = _wav(tmp_path / "tone.wav")
    assert main(["counterfactual", audio, "--direction", "max", "--no-reference",
                 *_base(tiny_demo_dir, tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "more vocal" in text and "less vocal" not in text
    assert "reconstruction: unknown" in text and "no reference set was given" in text


@pytest.mark.parametrize("extra, match", [
    (["--beta", "-1"], "--beta"), (["--beta", "nan"], "--beta"), (["--restarts", "0"], "--restarts"),
    (["--invert-steps", "-5"], "--invert-steps"), (["--direction", "up"], "--direction"),
    (["--offset", "-1"], "--offset"), (["--lr", "inf"], "--lr"), (["--spread-quantile", "1"], "--spread-quantile"),
    (["--device", "meta"], "--device"),
])
def test_bad_arguments_exit_2(tiny_demo_dir, tmp_path, capsys, extra, match):
    audio = _wav(tmp_path / "tone.wav")
    with pytest.raises(SystemExit) as e:
        main(["counterfactual", audio, *_base(tiny_demo_dir, tmp_path), *extra])
    assert e.value.code == 2
    assert match in capsys.readouterr().err


def test_bad_inputs_exit_2_and_failures_exit_1(tiny_demo_dir, tmp_path, capsys):
    base = _base(tiny_demo_dir, tmp_path)
    short = _wav(tmp_path / "short.wav", seconds=1.0)
    assert main(["counterfactual", short, *base]) == 2
    assert "shorter than one excerpt" in capsys.readouterr().err
    half = _wav(tmp_path / "half.wav", seconds=6.0, silent_after=3.0)
    assert main(["counterfactual", half, "--offset", "4", *base]) == 2
    assert "is silent" in capsys.readouterr().err  # the part read is silent (the core refuses mostly silent log-mel too)
    assert main(["counterfactual", str(tmp_path / "missing.wav"), *base]) == 2
    assert "does not exist" in capsys.readouterr().err
    tone = _wav(tmp_path / "tone.wav", seconds=3.0)
    assert main(["counterfactual", tone, "--offset", "2.5", *base]) == 2  # less than an excerpt after the offset
    assert "shorter than one excerpt" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    assert main(["counterfactual", tone, "--classifier", str(bad), *base]) == 1
    assert "bad.safetensors" in capsys.readouterr().err
    not_a_folder = tmp_path / "store_file"
    not_a_folder.write_text("x")
    assert main(["counterfactual", tone, *base, "--runs-dir", str(not_a_folder)]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("counterfactual-*"))


def test_help_lists_the_command_with_ranges(capsys):
    with pytest.raises(SystemExit) as e:
        main(["counterfactual", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--beta" in text and "(range [0, 1e+06])" in text and "--offset" in text
