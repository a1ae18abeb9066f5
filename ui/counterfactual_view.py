"""The Counterfactuals page's parts: choosing the excerpt, the settings, the computation with a progress bar, the
display (spectrograms, differences, audio at one gain, the trajectory), saving and reopening runs."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from ui import compute, display, inputs, state
from xai_core.assets import ReferenceSet
from xai_core.audio import wav_bytes_set
from xai_core.checkpoints import Bundle
from xai_core.explain.counterfactual import (
    DIRECTION_TITLES,
    CounterfactualConfig,
    counterfactual,
    real_spread,
)
from xai_core.explain.counterfactual.viz import counterfactual_figure, spread_figure, trajectory_figure

HELP = (
    "**Counterfactuals** (this project's method; no published tool does it): instead of starting activation "
    "maximisation from a random code, start it from a *real excerpt*. The excerpt is first **inverted** into the "
    "GAN's latent space (the code whose generated spectrogram reconstructs it best, over several restarts), then "
    "Adam moves that code toward **more vocal** and **less vocal** (Mishra et al.'s objective, the vocal logit with "
    "a Gaussian prior) while a **proximity term** β‖z − z_inv‖² keeps it near the reconstruction. Read the changes "
    "against the reconstruction: that is what had to change. The GAN cannot reproduce every excerpt: the "
    "reconstruction error is judged against how far real excerpts lie from their nearest real neighbour, and the "
    "page says when the GAN fails."
)
BETA_CHOICES = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)
RESULT_KEY = "cf_result"


def _fmt(v: float) -> str:
    return "0" if v == 0 else f"{v:g}"


@st.cache_data(max_entries=8, show_spinner="Reading the excerpt…")
def _file_excerpt(path: str, mtime: float, offset: float, mel_dict: dict, frames: int) -> np.ndarray:
    from xai_core.audio.config import MelConfig
    from xai_core.audio.features import excerpt_of_file

    return excerpt_of_file(path, offset=offset, mel=MelConfig.from_dict(mel_dict), frames=frames).numpy()  # (T, M)


def choose_excerpt(clf: Bundle, ref: ReferenceSet | None) -> inputs.ChosenInput | None:
    """The shared input chooser (a reference excerpt, an upload, a kept AM example), or a file on the server."""
    if not st.toggle("An audio file on the server instead", key="cf_server",
                     help="A path readable by the server (the command line's AUDIO --offset)."):
        return inputs.choose_input(clf, ref, key="cf_in")
    c1, c2 = st.columns([3, 1])
    path = c1.text_input("Audio file on the server (wav, flac, ogg, mp3)", key="cf_path")
    offset = float(c2.number_input("Offset (s)", 0.0, 1e6, 0.0, step=0.5, key="cf_offset"))
    if not path.strip():
        st.caption("Give the path of a recording on the server and where the 1.6 s excerpt starts.")
        return None
    with display.errors_shown("Could not read this excerpt"):
        p = Path(path.strip())
        mtime = os.stat(p).st_mtime if p.is_file() else 0.0
        x = _file_excerpt(str(p), mtime, offset, clf.mel.to_dict(), clf.model.config.n_frames)
        return inputs.ChosenInput(x, f"{p.name} at {offset:g} s", f"file{p}:{mtime}:{offset}")
    return None


def settings() -> CounterfactualConfig | None:
    """The proximity slider, the directions and (folded) the inversion's and AM's budgets -> a config."""
    d = CounterfactualConfig()
    c1, c2 = st.columns([3, 2])
    beta = c1.select_slider("Proximity β (how close to the reconstruction the result must stay)", BETA_CHOICES,
                            value=d.beta, format_func=_fmt, key="cf_beta",
                            help="β‖z − z_inv‖² is subtracted from the activation-maximisation score. 0 is plain AM "
                                 "started from the excerpt's code; large values keep the code, hence the sound, near "
                                 "the reconstruction (and the change in p(vocal) small).")
    dirs = c2.multiselect("Directions", ["max", "min"], default=list(d.directions), key="cf_dirs",
                          format_func=DIRECTION_TITLES.get)
    with st.expander("Inversion and optimisation settings"):
        c3, c4, c5 = st.columns(3)
        restarts = int(c3.number_input("Inversion restarts", 1, 64, d.restarts, key="cf_restarts",
                                       help="Random starting codes, optimised together in one batch; the best is kept."))
        inv_steps = int(c4.number_input("Inversion steps", 1, 5000, d.invert_steps, step=50, key="cf_inv_steps"))
        inv_prior = float(c5.number_input("Inversion prior weight w", 0.0, 10.0, d.invert_prior, step=0.001,
                                          format="%.4f", key="cf_inv_prior",
                                          help="Loss MSE + (w/2)‖z‖²: keeps the code where the GAN was trained."))
        c6, c7, c8 = st.columns(3)
        iters = int(c6.number_input("AM steps per direction", 1, 5000, d.am_iters, step=10, key="cf_iters"))
        lr = float(c7.number_input("AM learning rate", 0.0001, 1.0, d.am_lr, step=0.005, format="%.4f", key="cf_lr"))
        lam = float(c8.number_input("AM prior weight λ (penalty (λ/2)‖z‖²)", 0.0, 10.0, d.am_lam, step=0.005,
                                    format="%.4f", key="cf_lam"))
        seed = int(st.number_input("Seed of the restarts", 0, 10**6, d.seed, key="cf_seed"))
    if not dirs:
        st.warning("Choose at least one direction.")
        return None
    with display.errors_shown("Invalid settings"):
        return CounterfactualConfig(restarts=restarts, invert_steps=inv_steps, invert_prior=inv_prior, beta=beta,
                                    am_lr=lr, am_iters=iters, am_lam=lam, directions=tuple(dirs), seed=seed)
    return None


@st.cache_data(max_entries=4, show_spinner="Measuring the real-vs-real spread of the reference set…")
def _spread(ref_id: str, clf_id: str, _ref: ReferenceSet, _clf: Bundle):
    return real_spread(_ref, _clf.normaliser)


def _clip_of(chosen: inputs.ChosenInput, ref: ReferenceSet | None) -> str | None:
    """The recording of a reference excerpt (left out of its nearest-real-excerpt MSE)."""
    if ref is None or not chosen.key.startswith("ref"):
        return None
    try:
        return ref.sources[int(chosen.key.rsplit(":", 1)[1])].rsplit("@", 1)[0]
    except (ValueError, IndexError):
        return None


def _key(chosen: inputs.ChosenInput, cfg: CounterfactualConfig, clf: Bundle, gen: Bundle) -> tuple:
    return (chosen.key, tuple(sorted(asdict(cfg).items())), clf.identity, gen.identity)


def current(chosen: inputs.ChosenInput, cfg: CounterfactualConfig, clf: Bundle, gen: Bundle):
    """This session's result for this excerpt and these settings, if it was computed."""
    held = st.session_state.get(RESULT_KEY)
    return held[1] if held is not None and held[0] == _key(chosen, cfg, clf, gen) else None


def compute_result(clf: Bundle, gen: Bundle, ref: ReferenceSet | None, chosen: inputs.ChosenInput,
                   cfg: CounterfactualConfig):
    """Run the method with a progress bar (about 10 s on the demo's models on 2 CPU cores); kept in the session."""
    spread = _spread(compute.ref_key(ref), clf.identity, ref, clf) if ref is not None else None
    bar = st.progress(0.0, text="Inverting the excerpt into the GAN's latent space…")

    def progress(done, total, info):
        if done % 5 == 0 or done == total:
            what = ("Inverting the excerpt into the GAN's latent space" if info.get("phase") == "invert"
                    else "Activation maximisation from its code")
            bar.progress(min(1.0, done / total), text=f"{what} · step {done} of {total}")

    try:
        res = counterfactual(clf, gen, torch.as_tensor(chosen.logmel), cfg, reference=ref, spread=spread,
                             exclude_clip=_clip_of(chosen, ref), label=chosen.label, device=state.DEVICE,
                             progress=progress)
    finally:
        bar.empty()
    st.session_state[RESULT_KEY] = (_key(chosen, cfg, clf, gen), res)
    return res


def _set(res) -> tuple[np.ndarray, list[str]]:
    """Log-mels ``(2 + D, T, M)`` of the original, the reconstruction and the kept examples, with captions."""
    xs = np.concatenate([np.stack([res.original.numpy(), res.reconstruction.numpy()]), res.logmel_best.numpy()])
    caps = [f"original · p(vocal) {res.prob_original:.2f}", f"GAN reconstruction · p(vocal) {res.prob_reconstruction:.2f}"]
    caps += [f"{DIRECTION_TITLES[d]} · p(vocal) {float(res.prob_best[i]):.2f} · ‖z − z_inv‖ {float(res.distance[i]):.2f}"
             for i, d in enumerate(res.directions)]
    return xs, caps


def show(res, clf: Bundle, *, key: str = "cf_live") -> None:
    """The result: p(vocal) of each version, the honesty message, spectrograms and differences, audio at one gain,
    and the trajectory with a step slider."""
    cols = st.columns(2 + len(res.directions))
    cols[0].metric("p(vocal), original", f"{res.prob_original:.2f}")
    cols[1].metric("p(vocal), reconstruction", f"{res.prob_reconstruction:.2f}",
                   f"{res.prob_reconstruction - res.prob_original:+.2f} vs original", delta_color="off")
    for i, d in enumerate(res.directions):
        p = float(res.prob_best[i])
        cols[2 + i].metric(f"p(vocal), {DIRECTION_TITLES[d]}", f"{p:.2f}",
                           f"{p - res.prob_reconstruction:+.2f} vs reconstruction")
    if res.reconstructs is False or res.beats_envelope is False:
        st.warning(res.message())
    elif res.reconstructs:
        st.success(res.message())
    else:
        st.info(res.message())
    fig = spread_figure(res)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key=f"{key}_spread")
    display.show_png(counterfactual_figure(res, cfg=clf.mel, title=res.label))
    xs, caps = _set(res)
    waves = display.invert(xs, clf.mel.to_dict(), display.PREVIEW_GL_ITERS)  # (2 + D, L)
    peak = float(np.abs(waves).max())
    display.players(wav_bytes_set(list(waves), sample_rate=clf.mel.sample_rate, peak=peak), caps,
                    ncols=len(caps), key=key)
    st.caption("All players share one gain (loudness differences are real); Griffin-Lim inversion, "
               f"{display.PREVIEW_GL_ITERS} iterations. Bottom row of the figure: each version minus the "
               "reconstruction (red louder, blue quieter); under the original, what the GAN could not reproduce.")
    _trajectory(res, clf, key=key, peak=peak)


def _trajectory(res, clf: Bundle, *, key: str, peak: float) -> None:
    st.subheader("Step by step")
    steps = [int(s) for s in res.trace_steps]
    step = st.select_slider("AM step from the reconstruction", steps, value=steps[-1], key=f"{key}_step",
                            help="The code along the optimisation, every few steps: hear the excerpt change.")
    k = steps.index(step)
    st.plotly_chart(trajectory_figure(res, step=k), width="stretch", key=f"{key}_traj")
    xs = np.concatenate([res.reconstruction.numpy()[None], res.trace_logmel[:, k].numpy()])  # (1 + D, T, M)
    waves = display.invert(xs, clf.mel.to_dict(), display.PREVIEW_GL_ITERS)
    caps = ["reconstruction (step 0)"] + [f"{DIRECTION_TITLES[d]}, step {step} · p(vocal) {float(res.trace_prob[i, k]):.2f}"
                                          for i, d in enumerate(res.directions)]
    loud = max(peak, float(np.abs(waves).max()))  # the gain of the players above unless a step is louder
    display.players(wav_bytes_set(list(waves), sample_rate=clf.mel.sample_rate, peak=loud), caps, ncols=len(caps),
                    key=f"{key}_stepaudio")
    if loud > peak:
        st.caption("This step is louder than the clips above: its players are scaled down with it.")
    display.show_png(counterfactual_figure(res, cfg=clf.mel, step=k, title=f"step {step}"))


def save_form(res, clf: Bundle, gen: Bundle) -> None:
    c1, c2 = st.columns([3, 1])
    name = c1.text_input("Name (optional)", key="cf_save_name")
    if c2.button("Save to the run store", key="cf_save",
                 help="The excerpt, its reconstruction, the kept examples and the trajectory; reopen them from the "
                      "Runs page."):
        with display.errors_shown("Could not save"):
            rid = state.run_store().save_counterfactual(res, classifier=clf, generator=gen, name=name or None)
            st.success(f"Saved as run `{rid}`.")


def reopened():
    """The counterfactual run reopened from the Runs page in this session, if any (with a button to close it)."""
    return state.reopened_run("cf_reopened", close_key="cf_close_run",
                              describe=lambda rid, res: f"{res.label}, β {res.config.beta:g}")
