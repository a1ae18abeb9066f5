"""AppTest of the "Where does it listen?" page on the tiny demo (its explainers are 2-step fixtures)."""

from __future__ import annotations

import pytest

from tests.app.conftest import texts
from tests.app.test_pages import _no_exception, _wait_job

pytestmark = pytest.mark.slow


def test_depthmaps_page_maps_listen_checks_and_training(open_page, app_env):
    at = open_page("depthmaps")
    _no_exception(at)
    assert at.title[0].value == "Where does it listen?"
    assert any("Guna" in i and "Grad-CAM" in i for i in texts(at.info))
    assert at.multiselect(key="dm_explainers").value == ["demo global", "demo local"]
    # the maps: one figure of every depth, the map maxima per layer, the per-depth relevance bars
    assert len(at.get("image")) >= 1
    peaks = at.dataframe[0].value
    assert list(peaks.columns) == ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2"]
    assert any("first and the last layers" in c for c in texts(at.caption))
    assert len(at.get("plotly_chart")) >= 1
    # listening: the original, its most relevant part, everything but it
    assert len(at.get("audio")) == 3
    assert any(c.startswith("only the top 20%") for c in texts(at.caption))
    at.slider(key="dm_listen_share").set_value(0.3).run()
    _no_exception(at)
    assert any(c.startswith("only the top 30%") for c in texts(at.caption))
    # the shipped evaluation of the (tiny) demo, then this excerpt's checks
    assert any("The demo:" in c for c in texts(at.caption))
    at.toggle(key="dm_check").set_value(True).run()
    _no_exception(at)
    assert any("Gains are against random blobs" in c for c in texts(at.caption))
    table = next(d.value for d in at.dataframe if "gap" in d.value.columns)
    assert list(table.index)[-2:] == ["random blobs", "random bins"]
    verdicts = texts(at.success) + texts(at.error)
    assert any("randomis" in v for v in verdicts)
    # kept in the run store with its checks, reopened from the Runs page
    at.button(key="dm_save").click().run()
    _no_exception(at)
    assert any("Saved as run" in m for m in texts(at.success))
    at.switch_page("pages/runs.py").run()
    ids = at.multiselect(key="runs_chosen").options
    assert len(ids) == 1 and ids[0].startswith("depthmaps-")
    at.multiselect(key="runs_chosen").set_value(ids).run()
    at.button[[b.label for b in at.button].index("Reopen")].click().run()
    _no_exception(at)
    at.switch_page("pages/depthmaps.py").run()  # AppTest runs the Runs page again after an in-app switch
    assert any("Reopened from the run store" in c for c in texts(at.caption))
    assert any("randomis" in v for v in texts(at.success) + texts(at.error))
    at.button(key="dm_close_run").click().run()
    assert not any("Reopened from the run store" in c for c in texts(at.caption))
    # another unit: the demo explainers explain the logit, so they are listed as not usable
    at.toggle(key="dm_unit_negate").set_value(True).run()
    _no_exception(at)
    assert at.multiselect(key="dm_explainers").options == []
    assert any("explains logit[0], not -logit[0]" in c for c in texts(at.caption))
    at.toggle(key="dm_unit_negate").set_value(False).run()
    # an impossible unit cannot be chosen (widget bounds), a training job runs in the background
    at.number_input(key="dm_tr_steps").set_value(10).run()
    at.text_input(key="dm_tr_name").set_value("mine").run()
    at.button(key="dm_train").click().run()
    _no_exception(at)
    job = _wait_job(kind="explainer", timeout=300)
    assert job is not None and job.state == "done", job
    assert (app_env / "explainers" / "mine.safetensors").is_file()
    at.run()
    at.run()
    _no_exception(at)
    assert "trained: mine" in at.multiselect(key="dm_explainers").options
    # the same name again is refused, nothing is overwritten
    before = (app_env / "explainers" / "mine.safetensors").stat().st_mtime
    at.button(key="dm_train").click().run()
    assert any("exists already" in e for e in texts(at.error))
    assert (app_env / "explainers" / "mine.safetensors").stat().st_mtime == before
