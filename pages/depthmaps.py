"""Where does it listen? Grad-CAM of the vocal logit at every depth, cumulative depth maps and the
conditional-GAN explainer (Guna, Sikha & Benitez), listening to the relevant part, deletion/insertion curves
and the model-randomisation check; training explainers."""

import streamlit as st

from ui import depthmaps_view as dv
from ui import display, inputs, state, texts

st.title("Where does it listen?")
st.info(texts.DEPTHMAPS)
ld = state.require("classifier")
clf = ld.classifier
stored = dv.reopened()
if stored is not None:
    with st.expander("The reopened run", expanded=True):
        dv.show_stored(stored, clf)
unit = dv.choose_unit(clf)
if unit is not None:
    explainers = dv.choose_explainers(clf, unit)
    chosen = inputs.choose_input(clf, ld.reference, key="dm_in")
    t_maps, t_listen, t_checks, t_train = st.tabs(["Maps at every depth", "Listen", "Do the maps hold?",
                                                   "Train an explainer"])
    res, checks = None, None
    if chosen is not None:
        with display.errors_shown("Could not compute the maps"):
            res = dv.depth_maps(clf.identity, chosen.key, unit.to_dict(), tuple(explainers), clf, chosen.logmel,
                                explainers)
    with t_maps:
        if res is not None:
            dv.show_maps(res, clf, chosen.label)
            dv.save_form(res, clf, chosen.label, st.session_state.get("dm_checks", {}).get(chosen.key))
    with t_listen:
        if res is not None:
            with display.errors_shown("Could not make the clips"):
                dv.show_listen(res, clf, gl_iters=display.PREVIEW_GL_ITERS)
    with t_checks:
        if res is not None and st.toggle("Check this excerpt's maps (deletion/insertion curves and randomisation: "
                                         "a few seconds on 2 CPU cores, then cached)", key="dm_check"):
            with display.errors_shown("Could not run the checks"):
                checks = dv.show_checks(res, clf, explainers, chosen.key)
                st.session_state["dm_checks"] = {chosen.key: checks}
        st.subheader("On the demo's unseen excerpts")
        dv.show_shipped_evaluation(clf)
    with t_train:
        dv.training_form(clf, ld.reference, unit)
        dv.job_panel()
