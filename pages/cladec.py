"""Decode a layer (ClaDec): what each layer of the classifier keeps of an input, against a reference
auto-encoder and a random-feature decoder; the paper's retraining evaluation; training decoders."""

import streamlit as st

from ui import cladec_view, display, inputs, state, texts

st.title("Decode a layer")
st.info(texts.CLADEC)
ld = state.require("classifier")
clf = ld.classifier
dset = cladec_view.choose_set(clf)
if dset is not None:
    variants = tuple(st.multiselect("Reconstructions", list(cladec_view.VARIANTS), default=["cladec", "refae"],
                                    format_func=cladec_view.NAMES.get, key="cladec_variants",
                                    help="ClaDec and RefAE side by side (and their difference); add the "
                                         "random-feature decoder to see how much a decoder makes up on its own."))
    chosen = inputs.choose_input(clf, ld.reference, key="cladec_in")
    if chosen is not None and variants:
        with display.errors_shown("Could not decode"):
            res = cladec_view.decoded(clf.identity, str(dset.folder), cladec_view.folder_stamp(dset.folder), chosen.key,
                                      variants, clf, dset, chosen.logmel)
            cladec_view.show_rows(res, dset, variants, clf, label=chosen.label, gl_iters=display.PREVIEW_GL_ITERS)
    st.header("Does the claim hold? The retraining evaluation")
    with display.errors_shown("Could not show the evaluation"):
        ev, where = cladec_view.current_evaluation(dset)
        if ev is None:
            st.caption("No evaluation stored with these decoders: evaluate them on a corpus below, or run "
                       f"`python -m xai_core cladec eval --decoders {dset.folder} --data CORPUS`.")
        else:
            st.caption(f"From {where}.")
            cladec_view.show_evaluation(ev, dset)
    with st.expander("Evaluate these decoders on a corpus folder"):
        cladec_view.evaluation_form(clf, dset)
    cladec_view.eval_job_panel()
with st.expander("Train decoders for this classifier", expanded=dset is None):
    cladec_view.training_form(clf, ld.reference)
cladec_view.job_panel()
