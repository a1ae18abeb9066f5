"""``python -m xai_core cladec train|eval|decode`` end to end on a tiny corpus and the tiny classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.train.test_cli import _write_corpus
from xai_core.cli import main

pytestmark = pytest.mark.slow


def test_train_eval_decode(tmp_path, tiny_demo_dir, capsys):
    data = _write_corpus(tmp_path / "corpus")
    clf = str(tiny_demo_dir / "classifier.safetensors")
    out = tmp_path / "dec"
    common = ["--classifier", clf, "--threads", "1"]
    train = ["cladec", "train", *common, "--data", str(data), "--cache-dir", str(tmp_path / "cache"),
             "--layers", "conv4,fc2", "--steps", "6", "--batch-size", "4", "--out", str(out)]
    assert main(train) == 0
    names = sorted(p.name for p in out.glob("*.safetensors"))
    assert names == [f"{lay}_{v}.safetensors" for lay in ("conv4", "fc2") for v in ("cladec", "random", "refae")]
    assert not (out / ".checkpoints").exists()  # removed once every decoder is saved
    assert main(train) == 2  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert main([*train, "--resume"]) == 0
    assert capsys.readouterr().out.count("done already") == 6
    assert main(["cladec", "eval", *common, "--decoders", str(out), "--data", str(data), "--cache-dir",
                 str(tmp_path / "cache"), "--n-train", "64", "--n-test", "48", "--steps", "4", "--batch-size", "8",
                 "--csv", str(tmp_path / "e.csv"), "--json", str(tmp_path / "e.json"),
                 "--runs-dir", str(tmp_path / "runs")]) == 0
    text = capsys.readouterr().out
    assert "retrained err" in text and "ClaDec more informative than RefAE" in text
    ev = json.loads((out / "eval.json").read_text())
    assert ev == json.loads((tmp_path / "e.json").read_text())
    assert ev["data"]["n_train"] == 64 and ev["data"]["n_test"] == 48 and len(ev["rows"]) == 6
    assert (tmp_path / "e.csv").read_text().count("\n") == 1 + 2 + 6
    # the evaluation is a run of the store: listed, reloaded, exported
    from xai_core.store import RunStore

    store = RunStore(tmp_path / "runs")
    (run,) = store.list_runs("cladec")
    assert run["status"] == "complete" and "fc2/cladec/retrained_error" in run["summary"]
    assert store.load(run["id"]).rows == ev["rows"]
    assert store.info(run["id"])["config"]["decoders"] == str(out.resolve())
    files = store.export(run["id"], tmp_path / "export")
    assert sorted(p.name for p in files) == ["cladec_eval.csv", "cladec_eval.json"]
    # decode a reference excerpt and 1.7 s of an audio file from an offset
    assert main(["cladec", "decode", str(out), "--classifier", clf, "--reference",
                 str(tiny_demo_dir / "reference.safetensors"), "--excerpt", "3", "--gl-iters", "2",
                 "--out", str(tmp_path / "png")]) == 0
    wavs = sorted(p.name for p in (tmp_path / "png").glob("*.wav"))
    assert wavs == sorted(["input.wav"] + [f"{lay}_{v}.wav" for lay in ("conv4", "fc2")
                                           for v in ("cladec", "refae", "random")])
    assert (tmp_path / "png" / "decoded.png").stat().st_size > 10_000
    song = data / "audio" / "test0.wav"
    assert main(["cladec", "decode", str(out / "fc2_cladec.safetensors"), str(song), "--offset", "2.5",
                 "--classifier", clf, "--gl-iters", "2", "--out", str(tmp_path / "song")]) == 0
    assert "at 2.5 s" in capsys.readouterr().out


def test_clear_errors(tmp_path, tiny_demo_dir, capsys):
    clf = str(tiny_demo_dir / "classifier.safetensors")
    ref = str(tiny_demo_dir / "reference.safetensors")
    base = ["cladec", "train", "--classifier", clf, "--reference", ref, "--steps", "2", "--out", str(tmp_path / "d")]
    with pytest.raises(SystemExit) as exc:  # argparse: out of range
        main([*base, "--alpha", "1.5"])
    assert exc.value.code == 2 and "--alpha: expected a number in [0, 1), got '1.5'" in capsys.readouterr().err
    cases = [
        ([*base, "--layers", "conv9"], "unknown layer 'conv9'", 2),
        (["cladec", "train", "--classifier", clf, "--steps", "2", "--out", str(tmp_path / "d")], "exactly one of", 2),
        ([*base, "--data", str(tmp_path / "empty")], "exactly one of", 2),
    ]
    (tmp_path / "empty").mkdir()
    cases.append((["cladec", "train", "--classifier", clf, "--data", str(tmp_path / "empty"), "--steps", "2",
                   "--out", str(tmp_path / "d2")], "empty", 1))  # a bad data folder: a failure
    for argv, match, rc in cases:
        assert main(argv) == rc, argv
        err = capsys.readouterr().err
        assert match in err, (argv, err)
    # decoders of another classifier; a corrupt decoder file; audio shorter than one excerpt
    assert main([*base, "--layers", "fc2", "--variants", "cladec"]) == 0
    other = tmp_path / "other.safetensors"
    from xai_core.checkpoints import load_bundle, save_bundle
    from xai_core.models.svdnet import SVDNet

    b = load_bundle(clf)
    save_bundle(other, model=SVDNet("tiny"), kind="classifier", mel=b.mel, normaliser=b.normaliser, preset="tiny")
    assert main(["cladec", "decode", str(tmp_path / "d"), "--classifier", str(other), "--reference", ref,
                 "--out", str(tmp_path / "x")]) == 1  # bad files: exit status 1
    assert "trained for classifier" in capsys.readouterr().err
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    assert main(["cladec", "decode", str(tmp_path / "bad.safetensors"), "--classifier", clf, "--reference", ref,
                 "--out", str(tmp_path / "x")]) == 1
    assert "not a readable safetensors" in capsys.readouterr().err
    short = tmp_path / "short.wav"
    sf.write(short, 0.1 * np.sin(np.arange(11025) / 5.0), 22050)
    assert main(["cladec", "decode", str(tmp_path / "d"), str(short), "--classifier", clf,
                 "--out", str(tmp_path / "x")]) == 2
    assert "shorter than one excerpt" in capsys.readouterr().err
