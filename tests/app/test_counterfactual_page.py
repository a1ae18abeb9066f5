"""AppTest of the Counterfactuals page on the tiny demo (untrained tiny models, random reference excerpts)."""

from __future__ import annotations

import pytest

from tests.app.conftest import texts
from tests.app.test_pages import _no_exception, _wav

pytestmark = pytest.mark.slow


def _small(at):
    """Small budgets: the tiny models are fast, the machine is shared."""
    at.number_input(key="cf_restarts").set_value(2).run()
    at.number_input(key="cf_inv_steps").set_value(20).run()
    at.number_input(key="cf_iters").set_value(10).run()
    return at


def test_counterfactual_page_runs_shows_saves_and_reopens(open_page, app_env):
    at = open_page("counterfactual")
    _no_exception(at)
    assert at.title[0].value == "Counterfactuals"
    assert any("inverted" in i and "proximity term" in i for i in texts(at.info))
    assert at.select_slider(key="cf_beta").value == 0.1
    assert at.multiselect(key="cf_dirs").value == ["max", "min"]
    assert any("press the button" in c for c in texts(at.caption))
    assert not at.get("audio")
    _small(at)
    at.button(key="cf_run").click().run()
    _no_exception(at)
    # p(vocal) of the four versions, the honesty verdict, the spread, the figure, four players at one gain
    labels = [m.label for m in at.metric]
    assert labels == ["p(vocal), original", "p(vocal), reconstruction", "p(vocal), more vocal",
                      "p(vocal), less vocal"]
    verdict = texts(at.success) + texts(at.warning)
    assert any("real-vs-real spread" in v and "reconstruction error" in v for v in verdict), verdict
    assert len(at.get("plotly_chart")) >= 2  # the spread histogram and the trajectory
    assert len(at.get("image")) >= 2  # the figure of the kept examples, the figure of the chosen step
    audio = at.get("audio")
    assert len(audio) == 4 + 3  # original, reconstruction, more, less; the step: reconstruction, more, less
    caps = texts(at.caption)
    assert any(c.startswith("original · p(vocal)") for c in caps)
    assert any(c.startswith("more vocal · p(vocal)") and "‖z − z_inv‖" in c for c in caps)
    assert any("All players share one gain" in c for c in caps)
    # the trajectory slider: the step's players follow it
    slider = at.select_slider(key="cf_live_step")
    assert slider.value == 10 and slider.options[0] == "0"
    slider.set_value(5).run()
    _no_exception(at)
    assert any(c.startswith("more vocal, step 5 · p(vocal)") for c in texts(at.caption))
    # the result stays while only the step changes; another beta needs the button again
    at.select_slider(key="cf_beta").set_value(1.0).run()
    assert not at.metric and any("press the button" in c for c in texts(at.caption))
    at.select_slider(key="cf_beta").set_value(0.1).run()
    assert len(at.metric) == 4
    # kept in the run store, listed and reopened from the Runs page
    at.text_input(key="cf_save_name").set_value("mine").run()
    at.button(key="cf_save").click().run()
    _no_exception(at)
    assert any("Saved as run" in m for m in texts(at.success))
    at.switch_page("pages/runs.py").run()
    ids = at.multiselect(key="runs_chosen").options
    assert len(ids) == 1 and ids[0].startswith("counterfactual-")
    assert "counterfactual" in at.dataframe[0].value["kind"].tolist()
    at.multiselect(key="runs_chosen").set_value(ids).run()
    at.button[[b.label for b in at.button].index("Reopen")].click().run()
    _no_exception(at)
    at.switch_page("pages/counterfactual.py").run()  # AppTest runs the Runs page again after an in-app switch
    _no_exception(at)
    assert any("Reopened from the run store" in c and "β 0.1" in c for c in texts(at.caption))
    assert len(at.metric) == 4  # the reopened run (the page's widgets were reset by the switch: no live result)
    assert len(at.get("audio")) == 7
    at.button(key="cf_close_run").click().run()
    assert not any("Reopened from the run store" in c for c in texts(at.caption))


def test_counterfactual_page_one_direction_and_bad_inputs(open_page, tmp_path):
    at = _small(open_page("counterfactual"))
    at.multiselect(key="cf_dirs").set_value(["min"]).run()
    at.button(key="cf_run").click().run()
    _no_exception(at)
    assert [m.label for m in at.metric][-1] == "p(vocal), less vocal" and len(at.metric) == 3
    at.multiselect(key="cf_dirs").set_value([]).run()
    assert any("at least one direction" in w for w in texts(at.warning))
    at.multiselect(key="cf_dirs").set_value(["max", "min"]).run()
    # an upload shorter than one excerpt: the error names the file
    at.radio(key="cf_in_src").set_value("Uploaded audio").run()
    at.file_uploader(key="cf_in_upload").upload("short.wav", _wav(seconds=1.0), "audio/wav").run()
    _no_exception(at)
    assert any("short.wav" in e and "shorter than one excerpt" in e for e in texts(at.error))
    # a file on the server: missing, then silent after its offset, then fine
    at.toggle(key="cf_server").set_value(True).run()
    at.text_input(key="cf_path").set_value(str(tmp_path / "missing.wav")).run()
    assert any("does not exist" in e for e in texts(at.error))
    half = tmp_path / "half.wav"
    import numpy as np
    import soundfile as sf

    sr = 22050
    t = np.arange(6 * sr) / sr
    sf.write(half, np.where(t < 3, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0), sr)
    at.text_input(key="cf_path").set_value(str(half)).run()
    at.number_input(key="cf_offset").set_value(4.0).run()
    assert any("silent" in e for e in texts(at.error))
    at.number_input(key="cf_offset").set_value(0.5).run()
    _no_exception(at)
    at.button(key="cf_run").click().run()
    _no_exception(at)
    assert len(at.metric) == 4
    assert any(c.startswith("original · p(vocal)") for c in texts(at.caption))
