"""The FID grid: the current grid result, the running job's panel, heatmaps with clickable cells."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from ui import compute, state
from xai_core.actmax import GridResult
from xai_core.actmax.flags import cell_shares
from xai_core.store.jobs import DONE, format_eta
from xai_core.viz import fid_heatmap, share_heatmap


@st.cache_resource(max_entries=2, show_spinner="Loading the grid run…")
def load_grid(run_id: str, status: str) -> GridResult:
    return state.run_store().load(run_id)


def current_grid() -> GridResult | None:
    """The grid chosen in this session (reopened or just finished), else the newest complete one."""
    rid = st.session_state.get("grid_run_id")
    if rid is None:
        runs = [r for r in state.run_store().list_runs("grid") if r["status"] == "complete"]
        if not runs:
            return None
        rid = runs[0]["id"]
    info = state.run_store().info(rid)
    grid = load_grid(rid, info["status"])
    grid.run_id = rid  # type: ignore[attr-defined]
    return grid


@st.fragment(run_every=1.0)
def job_panel() -> None:
    """Progress of the grid job (any session's), cancel; a full rerun once it has finished."""
    mgr = state.job_manager()
    job = mgr.latest("grid")
    if job is None:
        return
    if job.running:
        st.session_state["grid_job_seen"] = job.id
        fin = len(job.info.get("finished", []))
        st.progress(job.fraction, text=f"{job.label}: {job.fraction:.0%} · {fin}/{job.info.get('groups_total', '?')}"
                    f" (direction, lr, lambda) groups finished · {format_eta(job.eta_s)} left")
        if st.button("Cancel the grid", key="grid_cancel", disabled=job.cancel_requested):
            mgr.cancel(job.id)
        st.caption("The grid runs in the background: you may switch pages, reload or close this tab.")
    elif st.session_state.get("grid_job_seen") == job.id:
        st.session_state.pop("grid_job_seen")
        if job.state == DONE:
            st.session_state["grid_run_id"] = getattr(job.result, "run_id", None)
            st.session_state.pop("grid_cell", None)
        st.rerun(scope="app")
    elif job.state != DONE:
        st.error(f"The last grid job ended as {job.state}: {job.message}")


def cell_flags(grid: GridResult, clf, ref) -> dict:
    """Out-of-range flags of every cell: as stored, or recomputed against the loaded reference set (a grid
    stored before flags existed)."""
    return {k: compute.flags_for(r, clf, ref, state.DEVICE) for k, r in grid.examples.items()}


def _clicked(ev, d: str, n_iter: int) -> tuple | None:
    pts = (ev or {}).get("selection", {}).get("points", []) if ev else []
    pts = [p for p in pts if "customdata" in p]
    if pts:
        lr, lam = pts[0]["customdata"][:2]
        return d, float(lr), float(lam), n_iter
    return None


def heatmaps(grid: GridResult, flags: dict | None = None) -> tuple | None:
    """Heatmaps per direction x feature space x iteration count, and (toggle) the share of in-range examples
    per cell from ``flags`` (:func:`cell_flags`); returns a clicked cell key if any."""
    c = grid.config
    clicked = None
    shares = cell_shares(grid, flags) if flags is not None else None
    show_shares = shares is not None and st.toggle(
        "Share of in-range examples beside the FID", value=True, key="grid_shares",
        help="Per configuration, the share of kept examples whose response, ‖z‖ and loudness all lie inside what "
             "real excerpts (and the prior) produce; a low share means adversarial-looking examples.")
    for d in c.directions:
        sel = grid.selected.get(d, {})
        st.markdown(f"**{'Maximisation' if d == 'max' else 'Minimisation'}** — selected: lr {sel.get('lr', '?'):g}, "
                    f"lambda {sel.get('lam', '?'):g}, {sel.get('n_iter')} iterations, FID {sel.get('fid', float('nan')):.3g} "
                    f"({sel.get('feature')})" if sel else f"**{d}**")
        feats = [f for (dd, f) in grid.fid if dd == d]
        for f, tab in zip(feats, st.tabs([f"FID on {'the scalar response' if f == 'response' else f}" for f in feats]),
                          strict=True):
            with tab:
                cols = st.columns(len(c.iters))
                for i, (n_iter, col) in enumerate(zip(c.iters, cols, strict=True)):
                    fig = fid_heatmap(grid.fid[(d, f)][i], c.lrs, c.lams, title=f"{n_iter} iterations",
                                      selected=_selected_cell(sel, c, f, n_iter))
                    fig.update_layout(height=300, margin=dict(l=50, r=10, t=40, b=40))
                    ev = col.plotly_chart(fig, on_select="rerun", selection_mode="points", key=f"hm_{d}_{f}_{n_iter}")
                    clicked = _clicked(ev, d, n_iter) or clicked
        if show_shares:
            st.caption("Share of in-range examples per configuration (green: all inside the real range)")
            for i, (n_iter, col) in enumerate(zip(c.iters, st.columns(len(c.iters)), strict=True)):
                fig = share_heatmap(shares[d][i], c.lrs, c.lams, title=f"{n_iter} iterations",
                                    selected=_selected_cell(sel, c, sel.get("feature"), n_iter))
                fig.update_layout(height=300, margin=dict(l=50, r=10, t=40, b=40))
                ev = col.plotly_chart(fig, on_select="rerun", selection_mode="points", key=f"share_{d}_{n_iter}")
                clicked = _clicked(ev, d, n_iter) or clicked
    return clicked


def _selected_cell(sel: dict, c, feature: str, n_iter: int) -> tuple[int, int] | None:
    """``(row, column)`` of the selected configuration in this heatmap, if it is shown in it."""
    if not sel or sel.get("feature") != feature or sel.get("n_iter") != n_iter:
        return None
    if sel["lr"] not in c.lrs or sel["lam"] not in c.lams:
        return None
    return c.lrs.index(sel["lr"]), c.lams.index(sel["lam"])


def table_csv(grid: GridResult) -> bytes:
    buf = io.StringIO()
    pd.DataFrame(grid.table()).to_csv(buf, index=False)
    return buf.getvalue().encode()
