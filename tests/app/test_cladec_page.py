"""AppTest of the "Decode a layer" page on the tiny demo (its decoders are 2-step test fixtures)."""

from __future__ import annotations

import pytest

from tests.app.conftest import texts
from tests.app.test_pages import _no_exception, _wait_job, _wav

pytestmark = pytest.mark.slow


def test_decode_page_rows_audio_evaluation_and_errors(open_page):
    at = open_page("cladec")
    _no_exception(at)
    assert at.title[0].value == "Decode a layer"
    assert any("Schneider" in i and "RefAE" in i for i in texts(at.info))
    assert at.selectbox(key="cladec_set").value == "demo decoders"
    assert at.multiselect(key="cladec_variants").value == ["cladec", "refae"]
    # input + 2 layers x (ClaDec, RefAE) players, the rows figure drawn
    assert len(at.get("audio")) == 1 + 2 * 2
    assert len(at.get("image")) >= 1  # the rows figure
    assert any("all players share one gain" in c for c in texts(at.caption))
    table = at.dataframe[0].value
    assert list(table["layer"])[:2] == ["input", "input"]
    assert {"conv2", "fc2"} <= set(table["layer"])
    assert len(at.get("plotly_chart")) == 2
    assert any(d.label.startswith("Download the evaluation") for d in at.get("download_button"))
    at.multiselect(key="cladec_variants").set_value(["cladec", "refae", "random"]).run()
    _no_exception(at)
    assert len(at.get("audio")) == 1 + 2 * 3
    # an upload shorter than one excerpt: the app's error box, the page keeps serving
    at.radio(key="cladec_in_src").set_value("Uploaded audio").run()
    at.file_uploader(key="cladec_in_upload").upload("short.wav", _wav(0.5), "audio/wav").run()
    _no_exception(at)
    assert any("shorter than one excerpt" in e for e in texts(at.error))
    at.file_uploader(key="cladec_in_upload").upload("tone.wav", _wav(4.0), "audio/wav").run()
    _no_exception(at)
    assert not at.error
    at.slider(key="cladec_in_offset").set_value(1.0).run()
    _no_exception(at)
    assert any("tone.wav at 1.0" in c for c in texts(at.caption))
    at.radio(key="cladec_in_src").set_value("Kept example of a stored run").run()
    _no_exception(at)
    assert any("No complete activation-maximisation run" in c for c in texts(at.caption))


def test_decode_page_trains_decoders_in_the_background(open_page, app_env):

    at = open_page("cladec")
    at.multiselect(key="cladec_tr_layers").set_value(["fc2"]).run()
    at.multiselect(key="cladec_tr_variants").set_value(["cladec", "refae"]).run()
    at.number_input(key="cladec_tr_steps").set_value(10).run()
    at.text_input(key="cladec_tr_name").set_value("my set").run()
    at.button(key="cladec_train").click().run()
    _no_exception(at)
    job = _wait_job(kind="cladec")
    assert job.state == "done", job.message
    assert sorted(p.name for p in (app_env / "decoders" / "my-set").glob("*.safetensors")) == [
        "fc2_cladec.safetensors", "fc2_refae.safetensors"]
    at.run()
    _no_exception(at)
    assert "trained: my-set" in at.selectbox(key="cladec_set").options
    at.selectbox(key="cladec_set").set_value("trained: my-set").run()
    _no_exception(at)
    assert len(at.get("audio")) == 1 + 2
    assert any("No evaluation stored" in c for c in texts(at.caption))
    assert not (app_env / "decoders" / "my-set" / ".checkpoints").exists()
    at.button(key="cladec_train").click().run()  # the same name again: refused, nothing overwritten
    _no_exception(at)
    assert any("exists already" in e for e in texts(at.error))


def test_a_stored_evaluation_reopens_its_decoders(open_page, app_env, tiny_demo_dir):
    import json

    from xai_core.checkpoints import load_bundle
    from xai_core.explain.cladec import CladecEvaluation
    from xai_core.store import RunStore

    ev = CladecEvaluation.from_dict(json.loads((tiny_demo_dir / "cladec" / "eval.json").read_text()))
    clf = load_bundle(tiny_demo_dir / "classifier.safetensors")
    rid = RunStore(app_env).save_cladec_eval(ev, classifier=clf, decoders=tiny_demo_dir / "cladec")
    at = open_page("runs")
    _no_exception(at)
    assert at.multiselect(key="runs_chosen").options == [rid]
    at.multiselect(key="runs_chosen").set_value([rid]).run()
    at.button[[b.label for b in at.button].index("Reopen")].click().run()
    _no_exception(at)
    assert at.title[0].value == "Decode a layer"
    assert at.selectbox(key="cladec_set").value == "demo decoders"
    assert any(c == f"From run `{rid}` of the run store." for c in texts(at.caption))


def test_decode_page_trains_on_a_corpus_folder_and_names_a_missing_one(open_page, app_env, tmp_path):
    from tests.train.test_cli import _write_corpus

    at = open_page("cladec")
    at.radio(key="cladec_tr_data").set_value("corpus folder on the server").run()
    at.text_input(key="cladec_tr_folder").set_value(str(tmp_path / "nowhere")).run()
    at.button(key="cladec_train").click().run()
    _no_exception(at)
    assert any("nowhere" in e and "does not exist" in e for e in texts(at.error))
    corpus = _write_corpus(tmp_path / "corpus")
    at.text_input(key="cladec_tr_folder").set_value(str(corpus)).run()
    at.multiselect(key="cladec_tr_layers").set_value(["conv4"]).run()
    at.multiselect(key="cladec_tr_variants").set_value(["refae"]).run()
    at.number_input(key="cladec_tr_steps").set_value(10).run()
    at.text_input(key="cladec_tr_name").set_value("from corpus").run()
    at.button(key="cladec_train").click().run()
    _no_exception(at)
    job = _wait_job(kind="cladec")
    assert job.state == "done", job.message
    from xai_core.explain.cladec import load_decoder

    b = load_decoder(app_env / "decoders" / "from-corpus" / "conv4_refae.safetensors", classifier=None)
    assert b.metrics["steps"] == 10 and "train split of" in b.provenance["data"]
    # evaluate the new set on the same corpus in the background; the page then shows that run
    at.run()
    at.selectbox(key="cladec_set").set_value("trained: from-corpus").run()
    at.text_input(key="cladec_ev_folder").set_value(str(corpus)).run()
    at.number_input(key="cladec_ev_ntrain").set_value(64).run()
    at.number_input(key="cladec_ev_ntest").set_value(64).run()
    at.number_input(key="cladec_ev_steps").set_value(10).run()
    at.button(key="cladec_eval").click().run()
    _no_exception(at)
    job = _wait_job(kind="cladec-eval")
    assert job.state == "done", job.message
    at.session_state["cladec_eval_run"] = job.result  # what the job panel's fragment sets on its next tick
    at.run()
    _no_exception(at)
    assert any(c.startswith("From run `cladec-") for c in texts(at.caption))
    assert list(at.dataframe[0].value["layer"]) == ["input", "input", "conv4"]
    assert (app_env / "decoders" / "from-corpus" / "eval.json").is_file()
