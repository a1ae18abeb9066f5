"""The background job manager, without streamlit: progress, ETA, cancel, failures as status."""

from __future__ import annotations

import threading
import time

import pytest

from xai_core.errors import CancelledError, ParameterError
from xai_core.store.jobs import CANCELLED, DONE, FAILED, RUNNING, JobManager, format_eta, get_manager


def _counting_target(n, gate=None, step_s=0.0):
    def target(progress):
        for i in range(n):
            if gate is not None:
                gate.wait(5)
            if step_s:
                time.sleep(step_s)
            if progress(i + 1, n, {"step": i + 1}) is False:
                raise CancelledError("stopped")
        return {"sum": n * (n + 1) // 2}
    return target


def test_job_runs_in_background_and_reports_progress_and_result():
    m = JobManager()
    jid = m.submit("grid", _counting_target(5, step_s=0.01), label="five", meta={"run_id": "r1"})
    st = m.wait(jid, timeout=5)
    assert st.state == DONE
    assert st.result == {"sum": 15}
    assert (st.done, st.total, st.fraction) == (5, 5, 1.0)
    assert st.info == {"step": 5}
    assert st.meta == {"run_id": "r1"}
    assert st.finished is not None and st.elapsed_s >= 0
    assert m.latest("grid").id == jid


def test_progress_visible_while_running_and_eta_from_measured_rate():
    m = JobManager()
    gate = threading.Event()
    reached = threading.Event()

    def target(progress):
        progress(0, 4, {})
        time.sleep(0.05)
        progress(1, 4, {})
        reached.set()
        gate.wait(5)
        progress(4, 4, {})
        return 1

    jid = m.submit("grid", target)
    assert reached.wait(5)
    st = m.get(jid)
    assert st.state == RUNNING and st.running
    assert (st.done, st.total) == (1, 4)
    assert st.fraction == pytest.approx(0.25)
    # One unit took >= 0.05 s, three remain.
    assert st.eta_s is not None and st.eta_s >= 0.15 - 1e-3
    assert [s.id for s in m.active()] == [jid]
    gate.set()
    assert m.wait(jid, timeout=5).state == DONE
    assert m.active() == []


def test_cancel_stops_the_job_at_its_next_progress_call():
    m = JobManager()
    gate = threading.Event()
    jid = m.submit("grid", _counting_target(100, gate=gate))
    assert m.cancel(jid) is True
    gate.set()
    st = m.wait(jid, timeout=5)
    assert st.state == CANCELLED
    assert st.done == 0 and st.result is None
    assert "cancel" in st.message
    assert m.cancel(jid) is False  # no longer running


def test_failure_is_captured_as_status_not_raised():
    m = JobManager()

    def bad(progress):
        progress(1, 3, {})
        raise ParameterError("lr=-1 is impossible")

    def crash(progress):
        raise RuntimeError("boom")

    a = m.wait(m.submit("grid", bad), timeout=5)
    b = m.wait(m.submit("grid", crash), timeout=5)
    assert a.state == FAILED and "lr=-1" in a.message
    assert b.state == FAILED and "boom" in b.message and "RuntimeError" in b.message


def test_one_running_job_per_kind_and_unknown_ids():
    m = JobManager()
    gate = threading.Event()
    jid = m.submit("grid", _counting_target(1, gate=gate))
    with pytest.raises(ParameterError, match="already running"):
        m.submit("grid", _counting_target(1))
    other = m.submit("am", _counting_target(1))  # another kind is fine
    gate.set()
    assert m.wait(jid, timeout=5).state == DONE
    assert m.wait(other, timeout=5).state == DONE
    with pytest.raises(ParameterError):
        m.get("nope")


def test_on_done_hook_and_history_limit():
    m = JobManager(keep=2)
    seen = []
    ids = [m.submit(f"k{i}", _counting_target(1), on_done=seen.append) for i in range(4)]
    for jid in ids[-1:]:
        m.wait(jid, timeout=5)
    deadline = time.time() + 5
    while len(seen) < 4 and time.time() < deadline:
        time.sleep(0.01)
    assert sorted(s.state for s in seen) == [DONE] * 4
    m.submit("k9", _counting_target(1))
    assert len([s for s in m.jobs() if s.state != RUNNING]) <= 3


def test_process_wide_singleton_and_eta_text():
    assert get_manager() is get_manager()
    assert format_eta(None) == "estimating…"
    assert format_eta(12.4) == "about 12 s"
    assert format_eta(200) == "about 3 min 20 s"
    assert format_eta(7300).startswith("about 2 h")
