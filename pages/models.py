"""Models: choose classifier / generator / reference set, inspect them, sanity-check them."""

import numpy as np
import streamlit as st

from ui import compute, display, state, texts
from ui.model_picker import bundle_summary, picker
from xai_core.audio import load_audio_bytes, wav_bytes_set
from xai_core.viz import colour_range, prob_histogram_figure, spectrogram_grid, waveform_prob_figure

st.title("Models")
st.info(texts.MODELS)
if state.missing_demo():
    st.warning(f"The bundled demo models are missing in `{state.demo_folder()}`. {state.BUILD_HINT} "
               "You can still upload bundles below.")
ld = state.loaded()
for role, tab in zip(state.ROLES, st.tabs(["Classifier", "Generator", "Reference excerpts"]), strict=True):
    with tab:
        picker(role)
        if role in ld.errors:
            st.error(f"The {role} could not be loaded: {ld.errors[role]}")
        obj = getattr(ld, role)
        if obj is not None and role != "reference":
            bundle_summary(obj)
        elif obj is not None:
            st.write(f"{len(obj)} excerpts, {int(obj.labels.sum())} labelled vocal. Info: {obj.info}")

st.header("Sanity checks")
if ld.classifier is None:
    st.stop()
clf = ld.classifier
st.subheader("Classify audio")
up = st.file_uploader("An audio file (wav, flac, ogg, mp3)", type=["wav", "flac", "ogg", "mp3"], key="audio_up")
with display.errors_shown("Could not classify the file"):
    if up is not None:
        wave = load_audio_bytes(up.getvalue(), name=up.name, sample_rate=clf.mel.sample_rate, max_seconds=600)
        det = compute.classify_wave(clf.identity, state.digest(up.getvalue()), clf, wave)
        display.show_figure(waveform_prob_figure(wave, det.prob, cfg=clf.mel, threshold=det.threshold))
        st.audio(up.getvalue())
        segs = det.segments()
        st.caption(f"Mean p(vocal) {det.prob.mean():.2f}; {det.vocal_fraction:.0%} of the {det.duration:.0f} s "
                   f"called singing, in {len(segs)} segments: p(vocal) median-filtered over {det.median_frames} "
                   f"frames, above the threshold {det.threshold:.2f} (dashed; tuned on validation when the "
                   "classifier was trained). No labels known.")
        st.download_button("Vocal segments (CSV)", "start_s,end_s\n" + "".join(f"{a},{b}\n" for a, b in segs),
                           file_name=f"{up.name.rsplit('.', 1)[0]}_vocal_segments.csv", mime="text/csv")
    elif ld.reference is not None:
        i = int(st.number_input(f"…or a demo excerpt (0 … {len(ld.reference) - 1})", 0, len(ld.reference) - 1, 0))
        x = ld.reference.logmel[i].numpy()  # (T, M)
        wave = display.invert(x[None], clf.mel.to_dict(), display.PREVIEW_GL_ITERS)[0]
        det = compute.classify_wave(clf.identity, f"ref{compute.ref_key(ld.reference)}:{i}", clf, wave)
        label = np.full_like(det.prob, float(ld.reference.labels[i]))
        display.show_figure(waveform_prob_figure(wave, det.prob, cfg=clf.mel, labels=label, threshold=det.threshold))
        st.audio(wav_bytes_set([wave], sample_rate=clf.mel.sample_rate)[0])
        st.caption(f"{ld.reference.sources[i]} · label at the centre: "
                   f"{'singing' if ld.reference.labels[i] > 0.5 else 'no singing'} (label drawn over the "
                   f"excerpt) · audio re-synthesised from the log-mel ({display.PREVIEW_GL_ITERS} Griffin-Lim iterations)")

st.subheader("Generator samples")
if ld.generator is not None and not ld.compatible_error:
    c1, c2 = st.columns(2)
    n = int(c1.slider("Samples", 1, 16, 8))
    seed = int(c2.number_input("Sample seed", 0, 10**6, 0))
    with display.errors_shown("Could not sample the generator"):
        x, p = compute.generator_samples(clf.identity, ld.generator.identity, n, seed, clf, ld.generator)
        vmin, vmax = colour_range(x)
        display.show_figure(spectrogram_grid(x, [f"p(vocal) {v:.2f}" for v in p], cfg=clf.mel, vmin=vmin, vmax=vmax))
        wavs = wav_bytes_set(display.invert(x, clf.mel.to_dict(), display.PREVIEW_GL_ITERS),
                             sample_rate=clf.mel.sample_rate)
        display.players(wavs, [f"sample {i}: p(vocal) {v:.2f}" for i, v in enumerate(p)], key="gen")
    if ld.reference is not None:
        with st.expander("Do the generator's samples span the classifier's range?"), \
                display.errors_shown("Could not check the generator's range"):
            probs = compute.sample_range(clf.identity, ld.generator.identity, compute.ref_key(ld.reference), 512,
                                         clf, ld.generator, ld.reference)
            st.plotly_chart(prob_histogram_figure(probs, bins=20, fractions=True,
                                                  title="p(vocal) of generator samples and of real excerpts"))
            g, r = probs["generated"], probs["real"]
            st.caption(f"Generated: {np.mean(g > 0.9):.0%} above 0.9, {np.mean(g < 0.1):.0%} below 0.1; real "
                       f"excerpts: {np.mean(r > 0.9):.0%} / {np.mean(r < 0.1):.0%}. Activation maximisation and "
                       "minimisation search this generator's output: it can only find what it can generate, so "
                       "both clearly vocal and clearly non-vocal samples should occur.")
elif ld.compatible_error:
    st.error(ld.compatible_error)
