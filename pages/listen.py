"""Listen & compare: maximised vs minimised examples next to the real most / least vocal excerpts."""

import streamlit as st

from ui import display, grid_view, listen_view, state, texts

st.title("Listen & compare")
st.info(texts.LISTEN)
ld = state.require("classifier")
with display.errors_shown("Could not open the results"):
    grid = grid_view.current_grid()
    sets = listen_view.choose_sets(grid, st.session_state.get("am_results"))
    if not sets:
        st.warning("Nothing to listen to yet: run activation maximisation or an FID grid first "
                   "(or reopen a run on the Runs page).")
        st.stop()
    n = int(st.slider("Examples per set", 1, 8, 4))
    listen_view.show_sets(sets, ld, n)
