"""Background jobs on the pages: the progress panel, output names, the choice of training data.

:func:`job_panel`: while the latest job of ``kind`` runs, a progress bar polled every second, a cancel
button and a caption; when it ends, the session that watched it runs ``on_done`` once and reruns the whole
app (so the page shows the result); a failed or cancelled job says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import streamlit as st

from ui import state
from xai_core.errors import ParameterError
from xai_core.store.jobs import DONE, JobStatus

DATA_SOURCES = ("reference excerpts", "corpus folder on the server")


def safe_name(text: str, what: str) -> str:
    """A file or folder name made of ``text`` (letters, digits, - _ .), at most 60 characters."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).strip("-.")
    if not name:
        raise ParameterError(f"{text!r} is not a usable name for {what} (letters, digits, - _ .)")
    return name[:60]


def training_data(source: str, ref, folder: str):
    """``(data, description)`` for a training job: the loaded reference set's excerpts, or ``None`` for a corpus
    folder of the server (the job loads its train split); a missing set or folder is a ParameterError."""
    if source == DATA_SOURCES[0]:
        if ref is None:
            raise ParameterError("no reference set is loaded (Models page)")
        return (ref.logmel, ref.labels), f"{len(ref)} reference excerpts"
    if not folder or not os.path.isdir(folder):
        raise ParameterError(f"corpus folder {folder!r} does not exist on the server")
    return None, f"train split of {folder}"


def job_panel(kind: str, *, seen_key: str, cancel_key: str, text: Callable[[JobStatus], str],
              cancel_label: str = "Cancel the training", caption: str = "",
              on_done: Callable[[JobStatus], None] | None = None, what: str = "The last training") -> None:
    """The panel of the latest job of ``kind``: polled every second while it runs, drawn once otherwise.

    Only a running job needs polling; an idle page without a ``run_every`` fragment costs the server
    nothing between interactions (with several sessions open that adds up) and avoids Streamlit's spurious
    "Page not found" modal, which fragment reruns can raise on the first load of a deep link.
    """
    kw = {"seen_key": seen_key, "cancel_key": cancel_key, "text": text, "cancel_label": cancel_label,
          "caption": caption, "on_done": on_done, "what": what}
    job = state.job_manager().latest(kind)
    if job is not None and job.running:
        _polled(kind, **kw)
    else:
        _panel(kind, **kw)


@st.fragment(run_every=1.0)
def _polled(kind: str, **kw) -> None:
    _panel(kind, **kw)


def _panel(kind: str, *, seen_key: str, cancel_key: str, text: Callable[[JobStatus], str], cancel_label: str,
           caption: str, on_done: Callable[[JobStatus], None] | None, what: str) -> None:
    mgr = state.job_manager()
    job = mgr.latest(kind)
    if job is None:
        return
    if job.running:
        st.session_state[seen_key] = job.id
        st.progress(job.fraction, text=text(job))
        if st.button(cancel_label, key=cancel_key, disabled=job.cancel_requested):
            mgr.cancel(job.id)
        if caption:
            st.caption(caption)
    elif st.session_state.get(seen_key) == job.id:
        st.session_state.pop(seen_key)
        if job.state == DONE and on_done is not None:
            on_done(job)
        st.rerun(scope="app")
    elif job.state != DONE:
        st.error(f"{what} ended as {job.state}: {job.message}")
