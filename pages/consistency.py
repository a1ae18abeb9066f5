"""Neuron consistency (Dong et al.): attacks you can listen to, consistency of every unit real vs
adversarial across depth, one unit's top inputs, and consistent-loss adversarial training."""

import streamlit as st

from ui import consistency_view as cv
from ui import display, inputs, state, texts

st.title("Neuron consistency")
st.info(texts.CONSISTENCY)
ld = state.require("classifier")
clf = ld.classifier
acfg = cv.attack_settings("cons_att")
t_attack, t_depth, t_unit, t_robust = st.tabs(["Attack an excerpt", "Consistency across depth", "One unit",
                                               "Robust classifiers"])
with t_attack:
    chosen = inputs.choose_input(clf, ld.reference, key="cons_in")
    if chosen is not None and acfg is not None:
        with display.errors_shown("Could not attack this excerpt"):
            cv.show_attack(clf, chosen, acfg, gl_iters=display.PREVIEW_GL_ITERS)
with t_depth:
    chosen_set = cv.choose_concept_set(ld.reference)
    beside = cv.choose_comparison(clf)
    results = cv.reopened()
    models = {"loaded": clf, **({beside[0]: beside[1]} if beside else {})}
    if chosen_set is not None and acfg is not None:
        set_key, cset = chosen_set
        ccfg = cv.consistency_settings(clf, cset)
        if ccfg is not None and st.toggle("Score every unit (attacks the whole set: about 10 s per classifier for "
                                          "the demo on 2 CPU cores, then cached)", key="cons_run"):
            with display.errors_shown("Could not score the units"):
                for name, model in models.items():
                    results[name] = cv.scored(model.identity, set_key, ccfg, acfg, model, cset)
    if results:
        cv.show_depth(results)
        cv.save_form(results, models, chosen_set[0] if chosen_set else "")
with t_unit:
    if results:
        with display.errors_shown("Could not show the unit"):
            cv.show_unit(results, clf, gl_iters=display.PREVIEW_GL_ITERS)
    else:
        st.caption("Score the units first (tab *Consistency across depth*).")
with t_robust:
    st.subheader("The demo's classifiers: original, plain adversarial and consistent-loss training")
    cv.show_shipped_evaluation()
    cv.load_form()
    with st.expander("Train a robust classifier from the loaded one"):
        cv.training_form(clf, ld.reference)
    cv.job_panel()
