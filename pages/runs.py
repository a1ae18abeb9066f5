"""Runs: the history in the run store; reopen, compare two, export, delete."""

import streamlit as st

from ui import display, runs_view, state, texts

st.title("Runs")
st.info(texts.RUNS)
with display.errors_shown("Run store error"):
    runs = state.run_store().list_runs()
    st.caption(f"Run store: `{state.runs_dir().resolve()}` · {len(runs)} run(s)")
    if not runs:
        st.write("No runs yet: a full run on the Activation maximisation page or a finished FID grid appears here.")
        st.stop()
    chosen = runs_view.table(runs)
    if len(chosen) == 1:
        rid = chosen[0]
        c1, c2, c3 = st.columns(3)
        if c1.button("Reopen", type="primary"):
            st.switch_page(runs_view.reopen(rid))
        if c2.button("Prepare export (CSV, PNG, WAV)"):
            st.session_state["export"] = (rid, runs_view.export_zip(rid))
        if st.session_state.get("export", ("",))[0] == rid:
            c2.download_button("Download export (zip)", st.session_state["export"][1], f"{rid}.zip", "application/zip")
        if c3.button("Delete"):
            st.session_state["confirm_delete"] = rid
        if st.session_state.get("confirm_delete") == rid:
            c3.warning(f"Delete `{rid}` and its files?")
            if c3.button("Yes, delete"):
                state.run_store().delete(rid)
                st.session_state.pop("confirm_delete")
                st.session_state.pop("runs_chosen", None)
                st.rerun()
    elif len(chosen) == 2:
        runs_view.compare(*chosen)
