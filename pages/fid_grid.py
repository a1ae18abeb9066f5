"""FID grid: the paper's lr x lambda x iterations grid as a background job; heatmaps (FID, share of in-range
examples); cell examples with their out-of-range badges and traces."""

import streamlit as st

from ui import compute, display, grid_view, state, texts, widgets
from ui.am_view import show_result, trace_chart
from xai_core.actmax import run_grid
from xai_core.errors import XaiError
from xai_core.store.jobs import format_eta

st.title("FID grid")
st.info(texts.FID)
ld = state.require("classifier", "generator", "reference")
clf, gen, ref = ld.classifier, ld.generator, ld.reference
with st.expander("Grid settings (the paper's grid by default)", expanded=grid_view.current_grid() is None):
    try:
        cfg = widgets.grid_widgets(clf.model.layer_shapes())
        if cfg.n_reference > len(ref):
            raise XaiError(f"{cfg.n_reference} reference excerpts requested; the reference set has {len(ref)}")
        est = compute.grid_seconds_estimate(clf.identity, gen.identity, cfg, state.DEVICE, clf, gen)
        st.write(f"{cfg.n_configs} configurations x {len(cfg.directions)} direction(s) x {cfg.n_examples} examples = "
                 f"{len(cfg.groups()) * cfg.n_examples} trajectories of {cfg.n_iter} steps on `{state.DEVICE}`: "
                 f"estimated **{format_eta(est)}** (measured on a few steps of the engine).")
        if st.button("Start the grid in the background", type="primary",
                     disabled=bool(state.job_manager().active("grid"))):
            state.job_manager().submit("grid", lambda progress: run_grid(
                clf, gen, cfg, reference=ref, device=state.DEVICE, progress=progress, store=state.run_store()),
                label=f"FID grid ({cfg.n_configs * len(cfg.directions)} configurations)", meta={"config": cfg})
            st.rerun()
    except XaiError as exc:
        st.error(str(exc))
grid_view.job_panel()
with display.errors_shown("Could not open the grid"):
    grid = grid_view.current_grid()
    if grid is None:
        st.caption("No finished grid yet: start one above (or reopen one on the Runs page).")
        st.stop()
    st.subheader(f"Grid `{grid.run_id}` · {grid.seconds:.0f} s on {grid.device}")
    flags = grid_view.cell_flags(grid, clf, ref)
    cell = grid_view.heatmaps(grid, flags) or st.session_state.get("grid_cell")
    st.download_button("Download the FID table (CSV)", grid_view.table_csv(grid), f"{grid.run_id}_fid.csv", "text/csv")
    if cell is None or cell not in grid.examples:
        d = grid.config.directions[0]
        cell = (d, grid.selected[d]["lr"], grid.selected[d]["lam"], grid.selected[d]["n_iter"])
    st.session_state["grid_cell"] = cell
    st.subheader(f"Examples of {cell[0]}, lr {cell[1]:g}, lambda {cell[2]:g}, {cell[3]} iterations "
                 "(click a heatmap cell to open another)")
    trace_chart(grid.examples[cell], flags[cell], key="cell_tr",
                title="response per step of this configuration's examples, real excerpts' range shaded")
    show_result(grid.examples[cell], clf, ref, key="cell", gl_iters=display.PREVIEW_GL_ITERS, device=state.DEVICE)
