"""End to end through the CLI on a tiny Jamendo-layout corpus of synthetic audio (tiny presets)."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import soundfile as sf

from xai_core.cli import main

SR = 22050


def _write_corpus(root, *, seed=0, stems=False):
    rng = np.random.default_rng(seed)
    for d in ("audio", "labels", "filelists") + (("stems",) if stems else ()):
        (root / d).mkdir(parents=True, exist_ok=True)
    lists = {"train": [], "valid": [], "test": []}
    for split, n in (("train", 3), ("valid", 2), ("test", 2)):
        for i in range(n):
            name = f"{split}{i}.wav"
            dur = 6.0
            t = np.arange(int(dur * SR)) / SR
            accomp = 0.05 * rng.standard_normal(t.size)
            voice = np.zeros(t.size)
            segs = [(1.0 + i * 0.3, 2.8 + i * 0.3), (4.0, 5.2)]
            for a, b in segs:
                m = (t >= a) & (t < b)
                f0 = 220.0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t[m]))
                voice[m] += sum(0.2 / k * np.sin(2 * np.pi * k * np.cumsum(f0) / SR) for k in range(1, 6))
            sf.write(root / "audio" / name, (voice + accomp).astype(np.float32), SR)
            if stems:
                sf.write(root / "stems" / f"{name[:-4]}.voice.wav", voice.astype(np.float32), SR, subtype="FLOAT")
                sf.write(root / "stems" / f"{name[:-4]}.accomp.wav", accomp.astype(np.float32), SR, subtype="FLOAT")
            lines, last = [], 0.0
            for a, b in segs:
                lines += [f"{last} {a} nosing", f"{a} {b} sing"]
                last = b
            lines.append(f"{last} {dur} nosing")
            (root / "labels" / f"{split}{i}.lab").write_text("\n".join(lines) + "\n")
            lists[split].append(name)
    for k, v in lists.items():
        (root / "filelists" / k).write_text("\n".join(v) + "\n")
    return root


@pytest.mark.slow
def test_train_eval_gan_reference_export_report(tmp_path, capsys):
    data = _write_corpus(tmp_path / "corpus")
    cache = str(tmp_path / "cache")
    clf = tmp_path / "clf.safetensors"
    common = ["--threads", "1", "--cache-dir", cache]
    assert main(["train", "classifier", "--data", str(data), "--out", str(clf), "--preset", "tiny", "--epochs", "2",
                 "--batches-per-epoch", "5", "--batch-size", "8", "--median-frames", "5", *common]) == 0
    assert main(["eval", "classifier", str(clf), "--data", str(data), "--threshold", "bundle", "--key", "again",
                 "--json", str(tmp_path / "e.json"), "--median-frames", "5", *common]) == 0
    from xai_core.checkpoints import load_bundle

    b = load_bundle(clf)
    assert {"eval", "again", "history"} <= set(b.metrics)
    assert b.metrics["again"]["threshold"] == pytest.approx(b.metrics["eval"]["threshold"])
    assert b.provenance["seed"] == 0 and b.provenance["command"].startswith("python -m xai_core train classifier --data")
    assert "--epochs 2 " in b.provenance["command"] and "--lr 0.01 " in b.provenance["command"]
    assert json.loads((tmp_path / "e.json").read_text())["test"]["frames"] > 0

    gen = tmp_path / "gen.safetensors"
    art = tmp_path / "assets"
    assert main(["train", "gan", "--data", str(data), "--classifier", str(clf), "--out", str(gen), "--preset", "tiny",
                 "--steps", "3", "--batch-size", "4", "--report-n", "100", "--artefacts", str(art),
                 "--n-wavs", "2", "--select-every", "2", "--select-n", "50", *common]) == 0
    g = load_bundle(gen, expected_kind="generator")
    assert [s["step"] for s in g.metrics["selection"]] == [2, 3]
    assert g.metrics["selected"]["which"] in ("raw", "ema") and g.metrics["selected"]["score"] >= 0
    q = g.metrics["quality"]
    assert q["n"] == 100 and q["fid_hidden_floor"] >= 0 and len(q["p_hist_generated"]) == 10
    assert (art / "samples.png").stat().st_size > 0
    assert sorted(p.name for p in art.glob("*.wav")) == ["samples_nonvocal_1.wav", "samples_vocal_1.wav"]

    assert main(["train", "reference", "--data", str(data), "--classifier", str(clf), "--out",
                 str(art / "reference.safetensors"), "--n", "20", "--extremes", "4", "--candidates", "300",
                 *common]) == 0
    from xai_core.assets import ReferenceSet

    ref = ReferenceSet.load(art / "reference.safetensors")
    assert len(ref) == 20 and len(ref.info["logits"]) == 20
    assert ref.info["selection"][:4] == ["top"] * 4
    assert max(ref.info["logits"]) == ref.info["logits"][0]

    for src, name in ((clf, "classifier"), (gen, "generator")):
        assert main(["train", "export", str(src), "--out", str(art / f"{name}.safetensors"), "--float16"]) == 0
    assert (art / "classifier.safetensors").stat().st_size < clf.stat().st_size
    assert main(["train", "report", "--classifier", str(clf), "--generator", str(gen), "--assets", str(art),
                 "--heldout", str(data), "--report-n", "100", *common]) == 0
    rep = json.loads((art / "report.json").read_text())
    assert rep["classifier"]["float16_max_abs_logit_change"] < 1e-2
    assert set(rep["classifier"]["heldout_test_float16"]) >= {"error", "f1", "roc_auc"}
    assert rep["generator"]["judged_by_classifier"] == load_bundle(clf).identity
    assert rep["generator"]["quality_float32"]["n"] == 100
    assert sorted(p.name for p in art.glob("*.wav")) == ["samples_nonvocal_1.wav", "samples_nonvocal_2.wav",
                                                        "samples_nonvocal_3.wav", "samples_vocal_1.wav",
                                                        "samples_vocal_2.wav", "samples_vocal_3.wav"]
    out = capsys.readouterr().out
    assert "ALL (median-filtered)" in out and "FID hidden" in out

    # a generator trained against another training set's normaliser is refused, not judged
    from xai_core.audio.features import Normaliser
    from xai_core.checkpoints import save_bundle

    other = tmp_path / "other_gen.safetensors"
    save_bundle(other, model=g.model, kind="generator", mel=g.mel, preset=g.preset,
                normaliser=Normaliser(g.normaliser.mean + 1.0, g.normaliser.std))
    assert main(["train", "report", "--classifier", str(clf), "--generator", str(other), "--assets", str(art),
                 "--heldout", str(data), "--report-n", "100", *common]) == 2
    assert "another normaliser" in capsys.readouterr().err


def test_resume_refuses_other_settings(tmp_path):
    data = _write_corpus(tmp_path / "corpus")
    clf = tmp_path / "c.safetensors"
    args = ["train", "classifier", "--data", str(data), "--out", str(clf), "--preset", "tiny", "--epochs", "1",
            "--batches-per-epoch", "2", "--batch-size", "4", "--median-frames", "5", "--threads", "1",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    assert main([*args[:-4], "--lr", "0.5", "--resume", "--threads", "1", "--cache-dir", str(tmp_path / "cache")]) == 1  # a checkpoint that does not fit is a failure (exit 1)


def _corpus_json(root, splits):
    files = [{"file": f"{song}_{i}.wav", "song": song, "split": sp} for i, (song, sp) in enumerate(splits.items())]
    (root / "corpus.json").write_text(json.dumps({"files": files}))


def test_extra_renderings_join_training_but_never_test_songs(tmp_path, capsys):
    from xai_core.checkpoints import load_bundle
    from xai_core.errors import ParameterError
    from xai_core.train.cli import _check_extra_corpora

    main_c, extra, leaky = (_write_corpus(tmp_path / n, seed=i) for i, n in enumerate(("a", "b", "c")))
    _corpus_json(main_c, {"s1": "train", "s2": "valid", "s3": "test"})
    _corpus_json(extra, {"s1": "train", "s2": "valid", "s3": "test"})
    _corpus_json(leaky, {"s3": "train", "s1": "valid", "s2": "test"})
    _check_extra_corpora(main_c, [extra])
    with pytest.raises(ParameterError, match=r"trains on test songs of --data: \['s3'\]"):
        _check_extra_corpora(main_c, [extra, leaky])
    with pytest.raises(ParameterError, match="itself"):
        _check_extra_corpora(main_c, [main_c])
    clf = tmp_path / "c.safetensors"
    args = ["train", "classifier", "--data", str(main_c), "--out", str(clf), "--preset", "tiny", "--epochs", "1",
            "--batches-per-epoch", "2", "--batch-size", "4", "--median-frames", "5", "--threads", "1",
            "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--extra-data", str(leaky)]) == 2 and not clf.exists()
    assert main([*args, "--extra-data", str(extra)]) == 0
    assert "data: 6 train / 4 valid / 2 test files" in capsys.readouterr().out
    prov = load_bundle(clf).provenance
    assert prov["data"]["extra"][0]["path"] == str(extra)
    words = shlex.split(prov["command"])  # the recorded command repeats the option once per value
    assert words[words.index("--extra-data") + 1] == str(extra) and words.count("--extra-data") == 1


def test_stem_remixing_needs_stems_and_is_recorded(tmp_path, capsys):
    common = ["--threads", "1", "--cache-dir", str(tmp_path / "cache"), "--preset", "tiny", "--epochs", "1",
              "--batches-per-epoch", "4", "--batch-size", "8", "--median-frames", "5", "--remix-prob", "0.5"]
    plain = _write_corpus(tmp_path / "plain")
    assert main(["train", "classifier", "--data", str(plain), "--out", str(tmp_path / "a.safetensors"), *common]) != 0
    assert "--stems" in capsys.readouterr().err
    assert not (tmp_path / "a.safetensors").exists()
    stems = _write_corpus(tmp_path / "stems", stems=True)
    out = tmp_path / "b.safetensors"
    assert main(["train", "classifier", "--data", str(stems), "--out", str(out), *common]) == 0
    from xai_core.checkpoints import load_bundle

    prov = load_bundle(out).provenance
    assert prov["train_config"]["remix_prob"] == 0.5 and "--remix-prob 0.5" in prov["command"]


def test_weight_averaging_is_saved_with_the_last_iterate_s_metrics(tmp_path, capsys):
    data = _write_corpus(tmp_path / "c")
    out = tmp_path / "w.safetensors"
    assert main(["train", "classifier", "--data", str(data), "--out", str(out), "--threads", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--preset", "tiny", "--epochs", "2",
                 "--batches-per-epoch", "4", "--batch-size", "8", "--median-frames", "5", "--ema", "0.9"]) == 0
    printed = capsys.readouterr().out
    assert "weight average" in printed and "last SGD iterate" in printed
    from xai_core.checkpoints import load_bundle

    b = load_bundle(out)
    assert b.provenance["train_config"]["ema_decay"] == 0.9
    last = b.metrics["eval_last_iterate"]
    assert 0 <= last["test"]["error"] <= 1 and set(last) == {"threshold", "valid_error", "test"}
    assert all("valid_ema" in h for h in b.metrics["history"])
    with pytest.raises(SystemExit) as exc:  # argparse: out of range, exit status 2
        main(["train", "classifier", "--data", str(data), "--out", str(tmp_path / "x.safetensors"),
              "--preset", "tiny", "--ema", "1.5"])
    assert exc.value.code == 2 and "--ema: expected a number in [0, 1), got '1.5'" in capsys.readouterr().err
