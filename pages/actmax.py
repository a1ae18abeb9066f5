"""Activation maximisation: live preview on every change, full run with live score traces."""

import numpy as np
import streamlit as st

from ui import compute, display, state, texts, widgets
from ui.am_view import sanity_section, show_result, trace_chart, trace_figure
from xai_core.actmax import run_am
from xai_core.errors import XaiError

st.title("Activation maximisation")
st.info(texts.ACTMAX)
ld = state.require("classifier", "generator")
clf, gen = ld.classifier, ld.generator
try:
    cfgs, _ = widgets.am_widgets(clf.model.layer_shapes(), defaults=st.session_state.get("am_defaults"))
except XaiError as exc:
    st.error(str(exc))
    st.stop()

c1, c2 = st.columns([1, 3])
live = c2.toggle("Live preview", value=True, help=f"Any change runs {compute.PREVIEW_EXAMPLES} examples x "
                 f"{compute.PREVIEW_ITERS} iterations at once (cached per setting).")
if c1.button("Run", type="primary", help="The full run with these settings (saved in the run store)."):
    bar, chart = st.progress(0.0, text="Optimising…"), st.empty()
    with display.errors_shown("The run failed"):
        results = []
        for cfg in cfgs:
            hist = []
            rr = compute.range_for(cfg, clf, ld.reference, state.DEVICE)  # flags stored with the run

            def progress(done, total, info, _c=cfg, _h=hist, _rr=rr):
                bar.progress(done / total, text=f"{_c.direction}: step {info['step']}/{info['n_steps']}")
                _h.append(info["best_response"].numpy())
                if len(_h) % 5 == 1 or info["step"] == info["n_steps"]:
                    chart.plotly_chart(trace_figure(np.stack(_h, 1), title=f"best response so far per example "
                                                    f"({_c.direction}), live", real_range=_rr,
                                                    direction=_c.direction), key=f"live_{_c.direction}_{len(_h)}")
            results.append(run_am(clf, gen, cfg, device=state.DEVICE, progress=progress, real_range=rr))
        st.session_state["am_results"] = results
        st.session_state["am_run_ids"] = state.save_am(results, clf, gen)
    bar.empty()
    chart.empty()

results = st.session_state.get("am_results") or []
same = [r.config for r in results] == cfgs
if results and not same:
    st.caption("The last full run used other settings: it is in the expander at the bottom.")
if live and not same:
    st.subheader(f"Live preview ({compute.PREVIEW_EXAMPLES} examples, ≤ {compute.PREVIEW_ITERS} iterations)")
    with display.errors_shown("Preview failed"):
        for cfg in cfgs:
            res = compute.am_preview(clf.identity, gen.identity, cfg, state.DEVICE, clf, gen)
            show_result(res, clf, ld.reference, key=f"prev_{cfg.direction}", gl_iters=display.PREVIEW_GL_ITERS,
                        device=state.DEVICE)
if results:
    box = st.container() if same else st.expander("Last full run")
    with box:
        st.subheader("Full run · saved as " + ", ".join(f"`{i}`" for i in st.session_state.get("am_run_ids", [])))
        for r in results:
            trace_chart(r, compute.flags_for(r, clf, ld.reference, state.DEVICE), key=f"tr_{r.config.direction}",
                        title=f"response per step ({r.config.direction}), real excerpts' range shaded")
            show_result(r, clf, ld.reference, key=f"full_{r.config.direction}", gl_iters=display.FULL_GL_ITERS,
                        device=state.DEVICE)

st.header("Sanity check: do the examples depend on the model?")
sanity_section(clf, gen, ld.reference, cfgs)
