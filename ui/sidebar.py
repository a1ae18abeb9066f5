"""The sidebar shown on every page: loaded models, reference set, device, background jobs."""

from __future__ import annotations

import streamlit as st

from ui import state
from xai_core.store.jobs import CANCELLED, FAILED, format_eta


def render() -> None:
    """Draw the sidebar status panel (models, data, device, running job with cancel)."""
    ld = state.loaded()
    with st.sidebar:
        st.markdown("### Loaded")
        for role, obj in (("classifier", ld.classifier), ("generator", ld.generator)):
            if obj is not None:
                st.markdown(f"**{role.title()}**: `{obj.name}`  \npreset {obj.preset or 'custom'} · "
                            f"id `{obj.identity[:10]}`")
            elif role in ld.errors:
                st.markdown(f"**{role.title()}**: :red[failed to load]")
            else:
                st.markdown(f"**{role.title()}**: none")
        ref = ld.reference
        if ref is not None:
            corpus = ref.info.get("corpus") or ref.info.get("note") or ""
            left = int(ref.info.get("left_out_unclean", 0))
            st.markdown(f"**Reference set**: {len(ref)} excerpts from {ref.n_clips} clips, {int(ref.labels.sum())} "
                        "vocal" + (f"; {left} with padding or digital silence left out" if left else "")
                        + (f"  \n{corpus}" if corpus else ""),
                        help="Excerpts with a frame flat across the bands (padding, digital silence) or inaudible "
                             "in every band are never used as real music (xai_core/data/quality.py); the top/"
                             "bottom-N selections take at most a few windows of one clip.")
        else:
            st.markdown("**Reference set**: none")
        st.markdown(f"**Device**: `{state.DEVICE}`")
        if ld.compatible_error:
            st.error(ld.compatible_error)
        _jobs_panel()


@st.fragment(run_every=2.0)
def _jobs_panel() -> None:
    """Background jobs; re-drawn every 2 s so progress moves on any page."""
    manager = state.job_manager()
    jobs = manager.jobs()
    if not jobs:
        return
    st.markdown("### Background jobs")
    for job in jobs[:2]:
        if job.running:
            st.progress(job.fraction, text=f"{job.label}: {job.done}/{job.total or '?'} · "
                                           f"{format_eta(job.eta_s)} left")
            if job.cancel_requested:
                st.caption("cancelling…")
            elif st.button("Cancel", key=f"cancel_{job.id}"):
                manager.cancel(job.id)
                st.rerun(scope="fragment")
        elif job.state == FAILED:
            st.error(f"{job.label} failed: {job.message}")
        elif job.state == CANCELLED:
            st.warning(f"{job.label} cancelled after {job.done}/{job.total} steps")
        else:
            st.success(f"{job.label} done in {job.elapsed_s:.0f} s")
