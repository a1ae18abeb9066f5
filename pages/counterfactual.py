"""Counterfactuals: make this real excerpt more, or less, vocal (GAN inversion, then activation maximisation from
the excerpt's code with a proximity term); the reconstruction judged against the real-vs-real spread."""

import streamlit as st

from ui import counterfactual_view as cv
from ui import display, state

st.title("Counterfactuals")
st.info(cv.HELP)
ld = state.require("classifier", "generator")
clf, gen = ld.classifier, ld.generator
stored = cv.reopened()
if stored is not None:
    with st.expander("The reopened run", expanded=True):
        cv.show(stored, clf, key="cf_stored")
chosen = cv.choose_excerpt(clf, ld.reference)
cfg = cv.settings()
if chosen is not None and cfg is not None:
    res = cv.current(chosen, cfg, clf, gen)
    if st.button("Make it more / less vocal", type="primary", key="cf_run",
                 help="Inversion (restarts x steps), then AM in each direction: about 10 s for the demo's models on "
                      "2 CPU cores."):
        with display.errors_shown("Could not compute the counterfactuals"):
            res = cv.compute_result(clf, gen, ld.reference, chosen, cfg)
    if res is None:
        st.caption("Choose an excerpt and the settings, then press the button.")
    else:
        with display.errors_shown("Could not show the result"):
            cv.show(res, clf)
            cv.save_form(res, clf, gen)
