"""Choosing an input excerpt, shared by the explanation pages (EXPLAIN.md: build once, reuse).

Three sources, one result: a reference excerpt, a segment of an uploaded recording, or a kept
example of a stored activation-maximisation run or grid. :func:`choose_input` draws the widgets and
returns a :class:`ChosenInput` (un-normalised log-mel ``(T, M)`` and a label), or ``None`` while
nothing usable is chosen (the reason is shown on the page).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from ui import compute, display, state
from xai_core.assets import ReferenceSet
from xai_core.audio import load_audio_bytes, log_mel
from xai_core.audio.features import excerpt_at
from xai_core.checkpoints import Bundle

SOURCES = ("Reference excerpt", "Uploaded audio", "Kept example of a stored run")
MAX_UPLOAD_SECONDS = 600


@dataclass(frozen=True)
class ChosenInput:
    logmel: np.ndarray  # (T, M) un-normalised natural-log mel
    label: str  # where it comes from, for captions and file names
    key: str  # a stable identity of the excerpt (cache key)
    truth: float | None = None  # 1 = singing at the centre, 0 = not, None = unknown


@st.cache_data(max_entries=8, show_spinner="Computing the log-mel spectrogram…")
def _upload_features(digest: str, mel_dict: dict, _data: bytes, name: str) -> np.ndarray:
    from xai_core.audio.config import MelConfig

    mel = MelConfig.from_dict(mel_dict)
    wave = load_audio_bytes(_data, name=name, sample_rate=mel.sample_rate, max_seconds=MAX_UPLOAD_SECONDS)
    return log_mel(wave, mel).numpy()  # (T, M)


@st.cache_resource(max_entries=4, show_spinner="Loading the run…")
def _load_run(run_id: str, status: str):
    return state.run_store().load(run_id)


def _from_reference(ref: ReferenceSet, key: str) -> ChosenInput:
    sel = ref.info.get("selection")
    kinds = {"top": "most vocal", "bottom": "least vocal", "random": "random"}
    c1, c2 = st.columns([1, 3])
    i = int(c1.number_input(f"Excerpt (0 … {len(ref) - 1})", 0, len(ref) - 1, 0, key=f"{key}_ref"))
    what = f" · {kinds.get(sel[i], sel[i])}" if sel and i < len(sel) else ""
    truth = float(ref.labels[i])
    c2.caption(f"{ref.sources[i]}{what} · label at the centre: {'singing' if truth > 0.5 else 'no singing'}")
    return ChosenInput(ref.logmel[i].numpy(), f"reference excerpt {i} ({ref.sources[i]})",
                       f"ref{compute.ref_key(ref)}:{i}", truth)


def _from_upload(clf: Bundle, key: str) -> ChosenInput | None:
    up = st.file_uploader("An audio file (wav, flac, ogg, mp3)", type=["wav", "flac", "ogg", "mp3"],
                          key=f"{key}_upload")
    if up is None:
        st.caption("Upload a recording, then choose the 1.6 s segment to explain.")
        return None
    data = up.getvalue()
    digest = state.digest(data)
    feats = torch.from_numpy(_upload_features(digest, clf.mel.to_dict(), data, up.name))  # (T, M)
    frames = clf.model.config.n_frames
    hop_s = clf.mel.hop_length / clf.mel.sample_rate
    total_s = feats.shape[0] * hop_s
    if feats.shape[0] < frames:
        excerpt_at(feats, start=0, excerpt_frames=frames, name=up.name)  # raises the clear error
    last = (feats.shape[0] - frames) * hop_s
    start_s = st.slider(f"Segment start (s) of {total_s:.1f} s", 0.0, float(round(last, 2)), 0.0,
                        step=max(0.01, round(hop_s, 3)), key=f"{key}_offset",
                        help=f"The classifier reads {frames} frames ({frames * hop_s:.2f} s) at a time.")
    start = min(int(round(start_s / hop_s)), feats.shape[0] - frames)
    x = excerpt_at(feats, start=start, excerpt_frames=frames, name=up.name)
    return ChosenInput(x.numpy(), f"{up.name} at {start * hop_s:.2f} s", f"up{digest[:16]}:{start}")


def _from_run(key: str) -> ChosenInput | None:
    runs = [r for r in state.run_store().list_runs() if r["kind"] in ("am", "grid") and r["status"] == "complete"]
    if not runs:
        st.caption("No complete activation-maximisation run or grid in the run store yet (run one on the "
                   "Activation maximisation or FID grid page).")
        return None
    c1, c2, c3 = st.columns([2, 2, 1])
    labels = {r["id"]: f"{r['id']} ({r['kind']}{', ' + r['name'] if r['name'] else ''})" for r in runs}
    rid = c1.selectbox("Run", list(labels), format_func=labels.get, key=f"{key}_run")
    run = _load_run(rid, next(r["status"] for r in runs if r["id"] == rid))
    if hasattr(run, "examples"):  # a grid: the selected configuration of a direction
        dirs = list(run.selected) or list(run.config.directions)
        d = c2.selectbox("Direction (selected configuration)", dirs, key=f"{key}_dir")
        sel = run.selected.get(d)
        if not sel:
            st.caption("This grid has no selected configuration for that direction.")
            return None
        cell = (d, sel["lr"], sel["lam"], sel["n_iter"])
        res, what = run.examples[cell], f"{d}, lr {sel['lr']:g}, lambda {sel['lam']:g}, {sel['n_iter']} it."
    else:
        res, what = run, f"{run.config.direction}, lr {run.config.lr:g}, {run.config.n_iter} it."
        c2.caption(what)
    n = res.logmel_best.shape[0]
    i = int(c3.number_input(f"Example (0 … {n - 1})", 0, n - 1, 0, key=f"{key}_ex"))
    return ChosenInput(res.logmel_best[i].float().numpy(), f"kept example {i} of {rid} ({what})",
                       f"run{rid}:{what}:{i}")


def choose_input(clf: Bundle, ref: ReferenceSet | None, *, key: str) -> ChosenInput | None:
    """Widgets for the input of an explanation; None while nothing usable is chosen."""
    src = st.radio("Input", SOURCES, horizontal=True, key=f"{key}_src",
                   help="A real excerpt of the reference set, 1.6 s of your own recording, or what activation "
                        "maximisation made (decoding what the classifier keeps of its own maximised example).")
    with display.errors_shown("Could not use this input"):
        if src == SOURCES[0]:
            if ref is None:
                st.warning("No reference set loaded (Models page).")
                return None
            return _from_reference(ref, key)
        if src == SOURCES[1]:
            return _from_upload(clf, key)
        return _from_run(key)
    return None
