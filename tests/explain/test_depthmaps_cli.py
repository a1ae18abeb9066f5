"""``python -m xai_core gradcam``, ``faithfulness`` and ``train explainer`` end to end on the tiny demo
(untrained tiny classifier, random reference excerpts, two-step explainers) and a tiny synthetic corpus."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.train.test_cli import _write_corpus
from xai_core.checkpoints import load_bundle
from xai_core.cli import main
from xai_core.explain.depthmaps import load_explainer, save_explainer

CPU = ["--device", "cpu", "--threads", "1"]
SPATIAL = ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2"]
CUMULATIVE = ["pool2", "pool2..conv4", "pool2..conv3", "pool2..pool1", "pool2..conv2", "pool2..conv1"]


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    """``--threads 1`` sets torch's thread count for the process: put it back after this module."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _json_of(text: str) -> dict:
    """The JSON summary ``gradcam`` prints before its last ("wrote ...") line."""
    return json.loads(text[:text.rindex("\nwrote ")])


def test_gradcam_writes_png_and_npz_per_excerpt(tmp_path, tiny_demo_dir, capsys, monkeypatch):
    monkeypatch.setenv("XAI_DEMO_DIR", str(tiny_demo_dir))  # the default classifier and reference set: the demo's
    out = tmp_path / "maps"
    assert main(["gradcam", "--excerpts", "0,1", "--out", str(out), *CPU]) == 0
    text = capsys.readouterr().out
    assert f"wrote 2 PNG + NPZ files (one array per map, (T, M), in [0, 1]) to {out}" in text
    summary = _json_of(text)
    assert summary["excerpts"] == ["excerpt0", "excerpt1"] and summary["layers"] == SPATIAL
    assert summary["cumulative"] == CUMULATIVE and summary["explainers"] == []
    assert 0 < summary["p_vocal"] < 1
    assert sorted(p.name for p in out.iterdir()) == ["excerpt0.npz", "excerpt0.png", "excerpt1.npz", "excerpt1.png"]
    assert (out / "excerpt0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from xai_core.assets import ReferenceSet

    ref = ReferenceSet.load(tiny_demo_dir / "reference.safetensors")
    for i in (0, 1):
        z = np.load(out / f"excerpt{i}.npz")
        maps = [k for k in z.files if k != "logmel"]
        assert maps == SPATIAL + [f"cumulative_{c}" for c in CUMULATIVE]
        np.testing.assert_allclose(z["logmel"], ref.logmel[i].numpy())
        for k in maps:
            assert z[k].shape == (115, 80) and z[k].dtype == np.float32, k
            assert z[k].min() >= 0 and z[k].max() <= 1 and np.isfinite(z[k]).all(), k
        # each map divided by its own maximum: 1, or 0 where the layer's Grad-CAM is all zero
        assert all(z[k].max() in (0.0, 1.0) for k in maps) and z["cumulative_pool2..conv1"].max() == 1.0


@pytest.mark.slow
def test_gradcam_with_an_explainer_a_unit_and_an_audio_file(tmp_path, tiny_demo_dir, capsys):
    clf = str(tiny_demo_dir / "classifier.safetensors")
    ref = str(tiny_demo_dir / "reference.safetensors")
    exp = str(tiny_demo_dir / "explainers" / "global.safetensors")
    base = ["gradcam", "--classifier", clf, "--reference", ref, "--excerpts", "3", *CPU]
    e = load_explainer(exp, classifier=None)
    names = [CUMULATIVE[j] for j in e.kept]  # the explainer's conditions; --k as the explainer's K
    assert main([*base, "--explainer", exp, "--k", str(e.k), "--out", str(tmp_path / "a")]) == 0
    s = _json_of(capsys.readouterr().out)
    assert s["explainers"] == ["global"] and s["cumulative"] == names
    assert sorted(k for k in s if k.startswith("relevance/")) == sorted(f"relevance/global/{c}" for c in names)
    assert all(s[f"relevance/global/{c}"] >= 0 for c in names)
    z = np.load(tmp_path / "a" / "excerpt3.npz")
    assert "GAN_global" in z.files and z["GAN_global"].shape == (115, 80)
    assert 0 <= z["GAN_global"].min() and z["GAN_global"].max() <= 1
    assert main([*base, "--k", "2", "--out", str(tmp_path / "k2")]) == 0
    assert _json_of(capsys.readouterr().out)["cumulative"] == ["pool2", "pool2..conv1"]
    files = np.load(tmp_path / "k2" / "excerpt3.npz").files
    assert [f for f in files if f.startswith("cumulative_")] == ["cumulative_pool2", "cumulative_pool2..conv1"]
    # another unit, and its negation
    assert main([*base, "--unit-layer", "fc2", "--unit", "2", "--out", str(tmp_path / "b")]) == 0
    pos = _json_of(capsys.readouterr().out)
    assert main([*base, "--unit-layer", "fc2", "--unit", "2", "--negate", "--out", str(tmp_path / "c")]) == 0
    neg = _json_of(capsys.readouterr().out)
    assert neg["unit_value"] == pytest.approx(-pos["unit_value"]) and neg["p_vocal"] == pytest.approx(pos["p_vocal"])
    assert not np.array_equal(np.load(tmp_path / "b" / "excerpt3.npz")["conv4"],
                              np.load(tmp_path / "c" / "excerpt3.npz")["conv4"])
    # an excerpt of an audio file from an offset
    wav = tmp_path / "song.wav"
    t = np.arange(3 * 22050) / 22050
    sf.write(wav, 0.2 * np.sin(2 * np.pi * 330 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size), 22050)
    assert main(["gradcam", "--classifier", clf, "--audio", str(wav), "--start", "0.5", "--out", str(tmp_path / "d"),
                 *CPU]) == 0
    assert _json_of(capsys.readouterr().out)["excerpts"] == ["song@0.5s"]
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["song@0.5s.npz", "song@0.5s.png"]


def test_gradcam_refuses_bad_arguments_cleanly(tmp_path, tiny_demo_dir, capsys):
    clf = str(tiny_demo_dir / "classifier.safetensors")
    ref = str(tiny_demo_dir / "reference.safetensors")
    base = ["gradcam", "--classifier", clf, "--reference", ref, *CPU]
    (tmp_path / "file").write_text("x")
    cases = [
        ([*base, "--out", str(tmp_path / "file")], "exists and is not a folder"),
        ([*base, "--excerpts", "99", "--out", str(tmp_path / "o")], "outside 0..23"),
        ([*base, "--excerpts", "1,x", "--out", str(tmp_path / "o")], "comma-separated indices, got '1,x'"),
        ([*base, "--unit-layer", "fc2", "--unit", "7", "--out", str(tmp_path / "o")], "unit 7 does not exist"),
        ([*base, "--unit-layer", "conv9", "--out", str(tmp_path / "o")], "unknown layer 'conv9'"),
        ([*base, "--k", "7", "--out", str(tmp_path / "o")], "K=7"),
        ([*base, "--audio", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "o")], "missing.wav"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and match in err, (argv, err)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_faithfulness_writes_the_table_and_the_sanity_check(tmp_path, tiny_demo_dir, capsys, monkeypatch):
    monkeypatch.setenv("XAI_DEMO_DIR", str(tiny_demo_dir))
    exp = str(tiny_demo_dir / "explainers" / "local.safetensors")
    report = tmp_path / "f.json"
    assert main(["faithfulness", "--excerpts", "0,1", "--steps", "4", "--n-random", "1", "--n-sanity", "2",
                 "--explainer", exp, "--json", str(report), *CPU]) == 0
    text = capsys.readouterr().out
    assert "Deletion / insertion of logit[0] on 2 excerpts" in text and "Model randomisation" in text
    assert f"wrote {report}" in text
    doc = json.loads(report.read_text())
    clf = load_bundle(tiny_demo_dir / "classifier.safetensors")
    assert doc["classifier"] == clf.identity and doc["unit"] == {"layer": "logit", "index": 0, "sign": 1}
    assert doc["config"]["steps"] == 4 and doc["config"]["n_random"] == 1
    maps = SPATIAL + [f"cumulative {c}" for c in CUMULATIVE] + ["GAN local"]
    assert [r["map"] for r in doc["faithfulness"]] == maps + ["random blobs", "random bins"]
    for r in doc["faithfulness"]:
        assert set(r) == {"map", "deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc",
                          "deletion_gain", "insertion_gain", "beats_random", "gap"}
        assert r["deletion_gain"] == pytest.approx(r["random_deletion_auc"] - r["deletion_auc"], abs=2e-4)
        assert 0 <= r["beats_random"] <= 1
    assert doc["fractions"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(len(v) == 5 for v in doc["curves"].values()) and "deletion/random" in doc["curves"]
    san = doc["sanity"]
    assert san["stages"][0] == "logit" and san["stages"][-1] == "logit..conv1" and len(san["stages"]) == 7
    assert list(san["passes"]) == maps and list(san["mean_correlation"]) == maps
    assert all(len(v) == 7 and all(-1 <= c <= 1 for c in v) for v in san["mean_correlation"].values())
    # without the randomisation check
    assert main(["faithfulness", "--excerpts", "2", "--steps", "2", "--n-random", "1", "--no-sanity", "--json",
                 str(report), "--force", *CPU]) == 0  # --force: the report of the first run is replaced
    assert "Model randomisation" not in capsys.readouterr().out
    doc = json.loads(report.read_text())
    assert "sanity" not in doc and len(doc["faithfulness"]) == 12 + 2  # the maps, random blobs and bins
    # bad arguments
    assert main(["faithfulness", "--excerpts", "0", "--steps", "1", *CPU]) == 2
    assert "steps must be an integer in [2, 1000], got 1" in capsys.readouterr().err
    other = tmp_path / "other.safetensors"
    adv = load_bundle(tiny_demo_dir / "robust" / "adversarial.safetensors")  # another tiny classifier
    save_explainer(other, replace(load_explainer(exp, classifier=None), classifier_identity=adv.identity),
                   classifier=adv)
    assert main(["faithfulness", "--excerpts", "0", "--explainer", str(other), *CPU]) == 1  # a bad file
    assert "trained for classifier" in capsys.readouterr().err


def test_train_explainer_refuses_bad_arguments_cleanly(tmp_path, tiny_demo_dir, capsys):
    clf = str(tiny_demo_dir / "classifier.safetensors")
    out = tmp_path / "e.safetensors"
    base = ["train", "explainer", "--classifier", clf, "--out", str(out), "--steps", "2", *CPU]
    assert main([*base, "--data", str(tmp_path / "nonexistent")]) == 1  # a missing data folder: a failure
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nonexistent" in err and "does not exist" in err
    assert main([*base, "--data", str(tmp_path), "--k", "99"]) == 2
    assert "k must be an integer in [0, 16], got 99" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path), "--width", "2"]) == 2
    assert "width must be an integer in [4, 256], got 2" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: not one of the choices
        main([*base, "--data", str(tmp_path), "--variant", "x"])
    assert exc.value.code == 2 and "invalid choice: 'x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--data", str(tmp_path), "--target", "loudest"])
    assert "invalid choice: 'loudest'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv, words", [
    (["gradcam", "--help"], ["Grad-CAM", "cumulative depth maps", "--out", "--negate", "--unit-layer"]),
    (["faithfulness", "--help"], ["deletion/insertion", "model-randomisation", "--n-random", "--no-sanity"]),
    (["train", "explainer", "--help"], ["conditional-GAN explainer", "{global,local}", "--k", "--target"]),
    (["--help"], ["gradcam", "Grad-CAM depth maps of excerpts", "faithfulness",
                  "deletion/insertion table of every map"]),
    (["train", "--help"], ["explainer", "train the conditional-GAN explainer"]),
])
def test_help_says_what_the_commands_do(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for w in words:
        assert w in text, (argv, w)


@pytest.mark.slow
def test_train_explainer_on_a_corpus_then_use_it(tmp_path, tiny_demo_dir, capsys):
    data = _write_corpus(tmp_path / "corpus")
    clf = str(tiny_demo_dir / "classifier.safetensors")
    out = tmp_path / "local.safetensors"
    ck = tmp_path / "e.ckpt.pt"
    train = ["train", "explainer", "--classifier", clf, "--data", str(data), "--cache-dir", str(tmp_path / "cache"),
             "--variant", "local", "--width", "8", "--steps", "4", "--batch-size", "2", "--checkpoint", str(ck),
             "--checkpoint-every", "2", "--n-test", "4", "--out", str(out), *CPU]
    assert main(train) == 0
    text = capsys.readouterr().out
    assert f"wrote {out} (local explainer of logit[0], K=6, 4 steps)" in text
    assert "held-out L1 to the target" in text and "relevance per condition (deepest first): pool2 " in text
    assert not ck.exists()  # removed once the bundle is written
    e = load_explainer(out, classifier=load_bundle(clf))
    assert e.variant == "local" and e.k == 6 and len(e.generator.blocks) == 6 and e.layers == SPATIAL
    assert e.config.steps == 4 and e.provenance["data"] == str(data) and e.provenance["split"] == "train"
    h = e.metrics["heldout"]
    assert h["split"] == "test" and h["n_excerpts"] == 4 and len(h["relevance"]) == 6
    assert h["condition_names"] == CUMULATIVE
    assert main(train) == 2 and "--force" in capsys.readouterr().err  # refuses to overwrite
    assert main([*train, "--k", "7", "--force"]) == 2
    assert "K=7" in capsys.readouterr().err
    assert main([*train, "--variant", "global", "--k", "3", "--n-test", "0", "--float16", "--force"]) == 0
    capsys.readouterr()
    g = load_explainer(out, classifier=None)
    assert g.variant == "global" and g.k == 3 and g.kept == [0, 2, 5] and "heldout" not in g.metrics
    # the corpus feeds the faithfulness command too
    report = tmp_path / "f.json"
    assert main(["faithfulness", "--classifier", clf, "--data", str(data), "--cache-dir", str(tmp_path / "cache"),
                 "--n", "3", "--steps", "2", "--n-random", "1", "--no-sanity", "--explainer", str(out), "--json",
                 str(report), *CPU]) == 0
    doc = json.loads(report.read_text())
    assert doc["data"] == f"3 excerpts of the test split of {data}" and doc["explainers"] == ["local"]
    assert doc["faithfulness"][-3]["map"] == "GAN local"


def test_gradcam_with_an_explainer_of_another_k(tmp_path, tiny_demo_dir, capsys):
    from xai_core.assets import ReferenceSet
    from xai_core.explain.depthmaps import ExplainerConfig, train_explainer

    clf = load_bundle(tiny_demo_dir / "classifier.safetensors")
    ref = ReferenceSet.load(tiny_demo_dir / "reference.safetensors")
    e = train_explainer(clf, (ref.logmel, ref.labels), ExplainerConfig(k=3, width=8, steps=2, batch_size=2),
                        device="cpu")
    save_explainer(tmp_path / "e3.safetensors", e, classifier=clf)
    assert main(["gradcam", "--classifier", str(tiny_demo_dir / "classifier.safetensors"), "--reference",
                 str(tiny_demo_dir / "reference.safetensors"), "--excerpts", "0", "--explainer",
                 str(tmp_path / "e3.safetensors"), "--out", str(tmp_path / "o"), *CPU]) == 0
    s = _json_of(capsys.readouterr().out)
    assert sorted(k for k in s if k.startswith("relevance/")) == sorted(
        f"relevance/e3/{c}" for c in ("pool2", "pool2..conv3", "pool2..conv1"))
