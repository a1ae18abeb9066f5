"""Vocal XAI Studio: the Streamlit entry point (``make run`` / ``streamlit run app.py``).

Navigation is declared here with ``st.navigation`` + ``st.Page`` only (calling it switches off
Streamlit's automatic ``pages/`` discovery); the shared sidebar is drawn on every page.
No computation happens here.
"""

import streamlit as st

from ui import sidebar

st.set_page_config(page_title="Vocal XAI Studio", page_icon=":material/mic:", layout="wide")

PAGES = [
    st.Page("pages/models.py", title="Models", icon=":material/memory:", url_path="models", default=True),
    st.Page("pages/actmax.py", title="Activation maximisation", icon=":material/tune:", url_path="actmax"),
    st.Page("pages/fid_grid.py", title="FID grid", icon=":material/grid_on:", url_path="fid-grid"),
    st.Page("pages/listen.py", title="Listen & compare", icon=":material/headphones:", url_path="listen"),
    st.Page("pages/cladec.py", title="Decode a layer", icon=":material/layers:", url_path="decode-layer"),
    st.Page("pages/consistency.py", title="Neuron consistency", icon=":material/hub:", url_path="consistency"),
    st.Page("pages/depthmaps.py", title="Where does it listen?", icon=":material/hearing:", url_path="depth-maps"),
    st.Page("pages/counterfactual.py", title="Counterfactuals", icon=":material/compare_arrows:",
            url_path="counterfactual"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
]

page = st.navigation(PAGES, position="sidebar")
sidebar.render()
page.run()
