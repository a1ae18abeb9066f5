"""AppTest of the AM page's randomisation check (tiny models)."""

from __future__ import annotations

import pytest

from tests.app.conftest import texts
from tests.app.test_pages import _no_exception, _wait_job

pytestmark = pytest.mark.slow


def test_am_page_runs_the_randomisation_check_in_the_background(open_page):
    at = open_page("actmax")
    _no_exception(at)
    assert any("re-initialised from the top" in c for c in texts(at.caption))
    at.number_input(key="am_san_n").set_value(2).run()
    at.number_input(key="am_san_iters").set_value(3).run()
    at.button(key="am_san_run").click().run()
    _no_exception(at)
    job = _wait_job(kind="am-sanity", timeout=300)
    assert job is not None and job.state == "done", job
    at.run()
    _no_exception(at)
    tables = [d.value for d in at.dataframe if "ρ examples" in d.value.columns]
    assert tables and list(tables[0]["randomised down to"]) == ["logit", "fc2", "fc1", "conv4", "conv3", "conv2",
                                                                  "conv1"]
    assert any("once every layer is random" in m for m in texts(at.success) + texts(at.warning))
    assert any(c.startswith("Latest check: AM randomisation check") for c in texts(at.caption))
