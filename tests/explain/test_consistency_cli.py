"""``python -m xai_core attack``, ``consistency score|concept-set|report`` and ``train robust`` end to end on
the tiny demo (untrained tiny classifier, random reference excerpts) and a tiny synthetic corpus."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from tests.train.test_cli import _write_corpus
from xai_core.assets import ReferenceSet
from xai_core.checkpoints import load_bundle
from xai_core.cli import main
from xai_core.explain.consistency import AttackConfig, db_to_log
from xai_core.models.svdnet import SVDNet

CPU = ["--device", "cpu", "--threads", "1"]


def _tagged_copy(tiny_demo_dir, tmp_path):
    """The tiny demo's reference set with singer-family and instrument tags (the 'graded' scheme's needs)."""
    ref = ReferenceSet.load(tiny_demo_dir / "reference.safetensors")
    n = len(ref)
    ref.tags = {"singer_family": [("choir" if i % 4 < 2 else "solo") if ref.labels[i] > 0.5 else "none"
                                  for i in range(n)],
                "instrument": [("guitar", "piano", "none")[i % 3] for i in range(n)]}
    return ref.save(tmp_path / "concepts.safetensors")


def _units(clf_path) -> dict[str, int]:
    shapes = load_bundle(clf_path).model.layer_shapes()
    return {layer: (shape[0] if shape else 1) for layer, shape in shapes.items()}


def test_attack_writes_excerpts_json_wavs_and_the_success_curve(tmp_path, tiny_demo_dir, capsys, monkeypatch):
    monkeypatch.setenv("XAI_DEMO_DIR", str(tiny_demo_dir))  # the default classifier: the tiny demo's
    concepts = _tagged_copy(tiny_demo_dir, tmp_path)
    out = tmp_path / "att"
    idx = [0, 3, 5, 7]
    assert main(["attack", "--excerpts-file", str(concepts), "--excerpts", ",".join(map(str, idx)), "--method", "pgd",
                 "--steps", "2", "--eps-db", "2", "--eps-curve", "0.5,2", "--wavs", "1", "--gl-iters", "2",
                 "--out", str(out), *CPU]) == 0
    text = capsys.readouterr().out
    assert "PGD, eps 2 dB, 2 steps" in text and "on 4 excerpts of classifier.safetensors" in text
    assert "eps    0.5 dB" in text and "eps      2 dB" in text
    assert sorted(p.name for p in out.iterdir()) == ["000_adversarial.wav", "000_original.wav",
                                                     "adversarial.safetensors", "attack.json", "success.csv"]
    ref = ReferenceSet.load(concepts, clean=False)  # as built, like the consistency CLI
    adv = ReferenceSet.load(out / "adversarial.safetensors", clean=False)
    assert len(adv) == 4 and adv.sources == [ref.sources[i] for i in idx]
    assert adv.labels.tolist() == ref.labels[idx].tolist()
    assert adv.tags == {k: [v[i] for i in idx] for k, v in ref.tags.items()}
    assert (adv.logmel - ref.logmel[idx]).abs().max() <= db_to_log(2.0) + 1e-5
    assert not (adv.logmel == ref.logmel[idx]).all()
    clf = load_bundle(tiny_demo_dir / "classifier.safetensors")
    assert adv.info["attack"] == AttackConfig(method="pgd", steps=2, eps_db=2.0).to_dict()
    assert adv.info["classifier_identity"] == clf.identity and len(adv.info["logits_after"]) == 4
    table = json.loads((out / "attack.json").read_text())
    assert table["attack"]["n"] == 4 and table["attack"]["max_abs_change_db"] <= 2.0 + 1e-3
    assert [r["eps_db"] for r in table["curve"]] == [0.5, 2.0]
    assert [e["source"] for e in table["excerpts"]] == adv.sources
    # the WAV'd excerpts were analysed again (does the attack survive resynthesis?), the others not
    with_wav = [e for e in table["excerpts"] if "p_after_resynthesised" in e]
    assert len(with_wav) == 1 and 0.0 <= with_wav[0]["p_after_resynthesised"] <= 1.0
    assert "survive_resynthesis" in table["attack"]
    rows = list(csv.DictReader((out / "success.csv").open()))
    assert [r["eps_db"] for r in rows] == ["0.5", "2"]
    assert set(rows[0]) == {"eps_db", "success_rate", "error_before", "error_after", "mean_abs_change_db"}
    for name in ("000_original.wav", "000_adversarial.wav"):
        info = sf.info(out / name)
        assert info.samplerate == clf.mel.sample_rate and info.frames > clf.mel.sample_rate  # about 1.6 s


def test_attack_an_audio_file(tmp_path, tiny_demo_dir, capsys):
    wav = tmp_path / "song.wav"
    t = np.arange(3 * 22050) / 22050
    sf.write(wav, (0.2 * np.sin(2 * np.pi * 330 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size))
             .astype(np.float32), 22050)
    out = tmp_path / "att"
    assert main(["attack", "--classifier", str(tiny_demo_dir / "classifier.safetensors"), "--audio", str(wav),
                 "--offset", "0.5", "--method", "fgsm", "--eps-db", "1", "--wavs", "0", "--out", str(out), *CPU]) == 0
    assert "FGSM, eps 1 dB" in capsys.readouterr().out
    adv = ReferenceSet.load(out / "adversarial.safetensors", clean=False)
    assert adv.sources == ["song.wav@0.50"] and adv.tags == {}
    assert not (out / "success.csv").exists() and not list(out.glob("*.wav"))


def test_consistency_score_writes_one_row_per_unit(tmp_path, tiny_demo_dir, capsys):
    clf = tiny_demo_dir / "classifier.safetensors"
    concepts = _tagged_copy(tiny_demo_dir, tmp_path)
    units = _units(clf)
    assert main(["consistency", "score", "--classifier", str(clf), "--concepts", str(concepts), "--k", "3",
                 "--steps", "2", "--eps-db", "2", "--csv", str(tmp_path / "c.csv"), "--json", str(tmp_path / "c.json"),
                 "--runs-dir", str(tmp_path / "runs"), *CPU]) == 0
    text = capsys.readouterr().out
    # recorded in the run store: it reloads as the same result
    from xai_core.store import RunStore

    store = RunStore(tmp_path / "runs")
    (run,) = store.list_runs(kind="consistency")
    assert run["id"] in text and run["summary"]["k"] == 3 and "fc2_real" in run["summary"]
    back = store.load(run["id"])
    assert back.summary()["layers"] == json.loads((tmp_path / "c.json").read_text())["summary"]["layers"]
    files = store.export(run["id"], tmp_path / "export")
    assert sorted(f.name for f in files) == ["consistency_summary.json", "consistency_units.csv"]
    assert "consistency (graded, k=3, mean over conv maps)" in text and "adversarial inputs: PGD, eps 2 dB" in text
    assert all(layer in text for layer in SVDNet.layer_names)
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert len(rows) == sum(units.values())
    for layer, n in units.items():
        assert [int(r["unit"]) for r in rows if r["layer"] == layer] == list(range(n))
    assert {"consistency_real", "consistency_adv", "top_concept_real", "top_concept_adv", "dead"} <= set(rows[0])
    assert all(0.0 <= float(r["consistency_real"]) <= 1.0 for r in rows)
    doc = json.loads((tmp_path / "c.json").read_text())
    assert list(doc["summary"]["layers"]) == list(SVDNet.layer_names)
    assert {layer: r["units"] for layer, r in doc["summary"]["layers"].items()} == units
    assert len(doc["units"]) == len(rows) and doc["summary"]["k"] == 3 and doc["summary"]["n"] == 24
    assert doc["summary"]["classifier"]["identity"] == load_bundle(clf).identity
    # real inputs only, a tag of an untagged set, some layers
    assert main(["consistency", "score", "--classifier", str(clf), "--concepts",
                 str(tiny_demo_dir / "reference.safetensors"), "--k", "2", "--concept", "vocal", "--layers", "fc2,logit",
                 "--reduce", "max", "--no-attack", "--json", str(tmp_path / "v.json"), "--no-store", *CPU]) == 0
    doc = json.loads((tmp_path / "v.json").read_text())
    assert list(doc["summary"]["layers"]) == ["fc2", "logit"] and "attack" not in doc["summary"]
    assert len(doc["units"]) == units["fc2"] + 1 and "consistency_adv" not in doc["units"][0]
    assert doc["summary"]["concept"] == "vocal" and doc["summary"]["reduce"] == "max"


def test_clear_errors(tmp_path, tiny_demo_dir, capsys):
    clf = str(tiny_demo_dir / "classifier.safetensors")
    concepts = str(_tagged_copy(tiny_demo_dir, tmp_path))
    score = ["consistency", "score", "--classifier", clf, "--concepts", concepts, "--no-attack", *CPU]
    att = ["attack", "--classifier", clf, "--excerpts-file", concepts, "--excerpts", "0", "--wavs", "0",
           "--out", str(tmp_path / "a"), *CPU]
    cases = [  # (argv, words in the one error line, exit status: 2 bad arguments (argparse's too), 1 bad files)
        ([*score, "--concept", "bogus"], "'bogus'", 2),
        ([*score, "--k", "25"], "larger than the excerpt set", 2),
        ([*score, "--k", "0"], "--k: expected an integer in [1, 1000000], got '0'", 2),
        ([*score, "--layers", "fc2,conv9"], "unknown layer 'conv9'", 2),
        ([*score, "--clusters", "1"], "clusters", 2),
        ([*att, "--eps-db", "-1"], "--eps-db: expected a number in (0, 60], got '-1'", 2),
        ([*att, "--eps-db", "1e9"], "--eps-db", 2),
        ([*att, "--eps-db", "nan"], "--eps-db: expected a finite number", 2),
        ([*att, "--steps", "0"], "--steps", 2),
        ([*att, "--excerpts", "99"], "outside [0, 23]", 2),
        ([*att, "--excerpts", "a,b"], "--excerpts", 2),
        (["consistency", "score", "--classifier", clf, "--concepts", str(tiny_demo_dir / "reference.safetensors"),
          "--no-attack", *CPU], "singer_family", 2),  # 'graded' needs tags this set lacks
        (["consistency", "score", "--classifier", str(tiny_demo_dir / "generator.safetensors"), "--concepts",
          concepts, *CPU], "expected a classifier", 1),
        (["consistency", "score", "--classifier", clf, "--concepts", str(tmp_path / "none.safetensors"), *CPU],
         "no such reference file", 1),
    ]
    for argv, match, rc in cases:
        code, err = _status_and_err(argv, capsys)
        assert code == rc, argv
        assert match in err.strip().splitlines()[-1], (argv, err)
    assert not (tmp_path / "a" / "adversarial.safetensors").exists()
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main([*att, "--goal", "sideways"])
    assert "invalid choice" in capsys.readouterr().err


def _status_and_err(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    return code, capsys.readouterr().err


def test_train_robust_concept_set_and_report(tmp_path, tiny_demo_dir, capsys):
    data = _write_corpus(tmp_path / "corpus")
    cache = str(tmp_path / "cache")
    clf = tiny_demo_dir / "classifier.safetensors"
    out = tmp_path / "robust.safetensors"
    ck = tmp_path / "robust.ckpt.pt"
    train = ["train", "robust", "--classifier", str(clf), "--data", str(data), "--cache-dir", cache, "--steps", "4",
             "--batch-size", "4", "--attack-steps", "1", "--checkpoint", str(ck), "--checkpoint-every", "2",
             "--no-eval", "--out", str(out), *CPU]
    assert main(train) == 0
    assert "consistent-loss adversarial training, mu 1 on fc2, eps 1 dB, 4 steps" in capsys.readouterr().out
    rob = load_bundle(out, expected_kind="classifier")
    base = load_bundle(clf)
    assert rob.identity != base.identity and rob.preset == "tiny" and rob.mel == base.mel
    assert rob.provenance["base_classifier"] == base.identity
    assert rob.provenance["robust_config"]["steps"] == 4 and rob.provenance["data"] == str(data)
    assert rob.metrics["robust_training"]["steps"] == 4 and "eval" not in rob.metrics
    assert not ck.exists()  # removed once the bundle is written
    assert main(train) == 2 and "--force" in capsys.readouterr().err
    assert main([*train, "--mu", "0", "--float16", "--force"]) == 0
    assert "plain adversarial training, mu 0" in capsys.readouterr().out
    assert load_bundle(out).provenance["method"] == "plain adversarial training"
    code, err = _status_and_err([*train, "--mu", "-1", "--force"], capsys)
    assert code == 2 and "--mu: expected a number in [0, 1e+06], got '-1'" in err
    # with the evaluation (the default; device "auto" as the demo build runs it): frame error with a threshold
    # tuned on the valid split, robust error at eps and 2 eps, consistency on a tagged set
    tagged = _tagged_copy(tiny_demo_dir, tmp_path)
    evaluated = [a for a in train if a not in ("--no-eval", "--device", "cpu")]
    assert main([*evaluated, "--force", "--n-test", "8", "--concepts", str(tagged), "--device", "auto"]) == 0
    text = capsys.readouterr().out
    assert "frame error on the test split" in text and "under attack" in text
    m = load_bundle(out).metrics
    assert 0.0 < m["eval"]["threshold"] < 1.0 and 0.0 <= m["eval"]["test"]["error"] <= 1.0
    assert set(m["robust"]["robust_error"]) == {"1", "2"} and m["robust"]["n_test"] == 8
    assert list(m["robust"]["consistency"]["adv"]) == list(SVDNet.layer_names)

    cs = tmp_path / "cs.safetensors"
    assert main(["consistency", "concept-set", "--data", str(data), "--split", "test", "--n", "8", "--cache-dir", cache,
                 "--out", str(cs)]) == 0
    ref = ReferenceSet.load(cs, clean=False)
    assert len(ref) == 8 and ref.info["split"] == "test" and ref.logmel.shape[1:] == (115, 80)
    assert "wrote" in capsys.readouterr().out

    rep = tmp_path / "rep.json"
    assert main(["consistency", "report", "--classifiers", f"base={clf}", f"robust={out}", "--data", str(data),
                 "--concepts", str(cs), "--concept", "vocal", "--n-test", "8", "--eps", "1", "--curve", "0.5,1",
                 "--steps", "1", "--k", "2", "--cache-dir", cache, "--json", str(rep), "--device", "cpu"]) == 0
    doc = json.loads(rep.read_text())
    assert list(doc["models"]) == ["base", "robust"] and doc["n_test"] == 8 and doc["concept_set"] == 8
    for m in doc["models"].values():
        assert list(m["consistency"]["real"]) == list(SVDNet.layer_names)
        assert [r["eps_db"] for r in m["curve"]] == [0.5, 1.0] and set(m["robust_error"]) == {"1"}
    assert doc["models"]["base"]["identity"] == base.identity
    text = capsys.readouterr().out
    assert "base: clean excerpt error" in text and "robust: clean excerpt error" in text
