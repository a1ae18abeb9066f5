"""AppTest of the "Neuron consistency" page on the tiny demo (its robust classifiers are 2-step fixtures)."""

from __future__ import annotations

import pytest

from tests.app.conftest import texts
from tests.app.test_pages import _no_exception, _wait_job, _wav

pytestmark = pytest.mark.slow


def test_consistency_page_attack_depth_unit_and_shipped_comparison(open_page):
    at = open_page("consistency")
    _no_exception(at)
    assert at.title[0].value == "Neuron consistency"
    assert any("Dong" in i and "consistent loss" in i for i in texts(at.info))
    # the attack view: two spectrograms + the change, p before / after, two players
    assert [m.label for m in at.metric][:3] == ["p(vocal) before", "p(vocal) after", "outcome"]
    assert len(at.get("audio")) == 2
    assert any("Can you hear the attack?" in c for c in texts(at.caption))
    # the shipped comparison of the demo's three classifiers
    table = at.dataframe[0].value
    assert list(table["model"]) == ["original", "adversarial", "consistent"]
    assert any("PGD" in c and "concept set" in c for c in texts(at.caption))
    assert at.selectbox(key="cons_beside").value == "demo: adversarial"
    # scoring every unit: the depth plot for both classifiers, the table, then one unit's top inputs
    at.toggle(key="cons_run").set_value(True).run()
    _no_exception(at)
    depth = at.dataframe[0].value
    assert set(depth["model"]) == {"loaded", "demo: adversarial"}
    assert list(depth["layer"])[:9] == ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "fc1", "fc2", "logit"]
    assert any(d.label.startswith("Download the per-unit table") for d in at.get("download_button"))
    assert any("chance level" in c for c in texts(at.caption))
    assert len(at.get("audio")) == 2 + 2 * 4  # attack pair + 4 real and 4 adversarial top inputs
    at.selectbox(key="cons_unit_layer").set_value("conv1").run()
    _no_exception(at)
    # saved to the run store, reopened from the Runs page beside a fresh computation
    at.button(key="cons_save").click().run()
    _no_exception(at)
    assert any("Saved as" in s for s in texts(at.success))
    at.switch_page("pages/runs.py").run()
    ids = at.multiselect(key="runs_chosen").options
    assert len(ids) == 2 and all(i.startswith("consistency-") for i in ids)
    at.multiselect(key="runs_chosen").set_value([ids[0]]).run()
    at.button[[b.label for b in at.button].index("Reopen")].click().run()
    _no_exception(at)
    assert at.title[0].value == "Neuron consistency"
    assert any("Reopened from the run store" in c for c in texts(at.caption))
    assert any(str(m).startswith("run consistency-") for m in at.dataframe[0].value["model"])
    at.switch_page("pages/consistency.py").run()  # AppTest runs the Runs page again after an in-app switch
    assert any("Reopened from the run store" in c for c in texts(at.caption))
    at.button(key="cons_close_run").click().run()
    assert not any("Reopened from the run store" in c for c in texts(at.caption))
    at.selectbox(key="cons_concept").set_value("cluster").run()
    _no_exception(at)
    assert not at.error
    # an impossible k is refused by the widget bounds; an absurd epsilon cannot be set (slider 0.1-6 dB)
    at.slider(key="cons_att_eps").set_value(3.0).run()
    _no_exception(at)
    # a robust classifier becomes the session's classifier (every page explains it)
    at.selectbox(key="cons_load_name").set_value("demo: consistent").run()
    at.button(key="cons_load").click().run()
    _no_exception(at)
    assert at.session_state["sources"]["classifier"].path.endswith("robust/consistent.safetensors")
    # an uploaded recording is attacked against the classifier's own decision
    at.radio(key="cons_in_src").set_value("Uploaded audio").run()
    at.file_uploader(key="cons_in_upload").upload("tone.wav", _wav(3.0), "audio/wav").run()
    _no_exception(at)
    assert any("No label" in c for c in texts(at.caption))


def test_consistency_page_trains_a_robust_classifier_in_the_background(open_page, app_env):
    at = open_page("consistency")
    at.number_input(key="cons_tr_steps").set_value(10).run()
    at.text_input(key="cons_tr_name").set_value("my robust").run()
    at.button(key="cons_train").click().run()
    _no_exception(at)
    job = _wait_job(kind="robust")
    assert job.state == "done", job.message
    out = app_env / "robust" / "my-robust.safetensors"
    assert out.is_file()
    from xai_core.checkpoints import load_bundle

    b = load_bundle(out, expected_kind="classifier")
    assert b.provenance["robust_config"]["mu"] == 1.0 and b.metrics["robust_training"]["steps"] == 10
    # the same name again: refused, nothing overwritten
    mtime = out.stat().st_mtime
    at.run()
    _no_exception(at)
    assert at.selectbox(key="cons_beside").value == "trained: my-robust"  # the session shows its new model
    at.button(key="cons_train").click().run()
    assert any("exists already" in e for e in texts(at.error))
    assert out.stat().st_mtime == mtime
