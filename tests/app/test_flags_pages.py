"""AppTest of the out-of-range flags on the AM, FID grid and Listen pages (tiny models)."""

from __future__ import annotations

import json

import pytest

from tests.app.conftest import texts
from tests.app.test_pages import _no_exception

pytestmark = pytest.mark.slow

GRID = dict(lrs=(0.5, 0.01), lams=(0.01,), iters=(2, 3), directions=("max", "min"), n_examples=3, n_reference=4,
            feature_layers=("response",))


def _badges(at) -> list[str]:
    """The text of every badge on the page (st.badge is markdown ``:colour-badge[text]``)."""
    return [m for m in texts(at.markdown) if "-badge[" in m]


def _shaded(chart) -> bool:
    """Whether a plotly chart has the real range shaded (a rectangle shape)."""
    return any(s.get("type") == "rect" for s in json.loads(chart.proto.spec)["layout"].get("shapes", []))


def test_actmax_page_badges_and_shaded_traces(open_page, app_env):
    at = open_page("actmax")
    _no_exception(at)
    assert "A badge on each kept example" in at.info[0].value
    badges = _badges(at)
    assert len(badges) == 4 and all(b.startswith((":green-badge[", ":red-badge[")) for b in badges)
    assert [b.split("[")[1].split(":")[0] for b in badges] == ["0", "1", "2", "3"]
    assert any(c.startswith("Out-of-range flags: in range:") and "measured on" in c for c in texts(at.caption))
    at.number_input(key="am_iter").set_value(3).run()
    at.number_input(key="am_n").set_value(2).run()
    at.button[0].click().run()
    _no_exception(at)
    (res,) = at.session_state["am_results"]
    assert res.flags.real_range is not None and not res.flags.recomputed  # computed with the run and stored
    from xai_core.store import RunStore

    (run,) = RunStore(app_env).list_runs("am")
    assert run["summary"]["in_range_share"] == res.flags.share_in_range
    traces = [c for c in at.get("plotly_chart") if "response per step" in c.proto.spec]
    assert traces and all(_shaded(c) for c in traces)
    for i in range(2):
        assert any(b.endswith(f"[{i}: {res.flags.badge(i).replace('||z||', '‖z‖')}]") for b in _badges(at))


def _store_grid(app_env, tiny_bundles, *, old: bool = False) -> str:
    from xai_core.actmax import GridConfig, run_grid
    from xai_core.store import RunStore

    clf, gen, ref = tiny_bundles
    store = RunStore(app_env)
    cfg = GridConfig(**GRID)
    if not old:
        return run_grid(clf, gen, cfg, reference=ref, device="cpu", store=store).run_id
    res = run_grid(clf, gen, cfg, reference=ref, device="cpu")
    for r in res.examples.values():  # a grid stored before flags existed
        r.flags = None
    res.real_range = None
    rid = store.start_grid(cfg, classifier=clf, generator=gen)
    for d, lr, lam in cfg.groups():
        store.save_grid_group(rid, (d, lr, lam), {n: res.examples[(d, lr, lam, n)] for n in cfg.iters})
    store.finish_grid(rid, res)
    return rid


def test_fid_grid_page_share_heatmaps_badges_and_listen(open_page, app_env, tiny_bundles):
    _store_grid(app_env, tiny_bundles)
    at = open_page("fid_grid")
    _no_exception(at)
    assert "share of each configuration's examples" in at.info[0].value
    assert at.toggle(key="grid_shares").value is True
    shares = [c for c in at.get("plotly_chart") if '"in range"' in c.proto.spec]
    assert len(shares) == 2 * 2  # directions x iteration counts
    assert len(_badges(at)) == 3 and any("measured on" in c for c in texts(at.caption))
    cell = [c for c in at.get("plotly_chart") if "this configuration's examples" in c.proto.spec]
    assert len(cell) == 1 and _shaded(cell[0])
    at.toggle(key="grid_shares").set_value(False).run()
    _no_exception(at)
    assert not [c for c in at.get("plotly_chart") if '"in range"' in c.proto.spec]

    at.switch_page("pages/listen.py").run()
    _no_exception(at)
    assert "Each generated example carries a badge" in at.info[0].value
    assert len(_badges(at)) == 3 + 3  # maximised and minimised sets, none for the real ones
    assert sum(c.startswith("in range: ") for c in texts(at.caption)) == 2


def test_old_grid_is_flagged_against_the_loaded_reference(open_page, app_env, tiny_bundles):
    _store_grid(app_env, tiny_bundles, old=True)
    at = open_page("fid_grid")
    _no_exception(at)
    assert len([c for c in at.get("plotly_chart") if '"in range"' in c.proto.spec]) == 2 * 2
    assert any("computed now against the loaded classifier and reference set" in c for c in texts(at.caption))
    assert len(_badges(at)) == 3
