"""Display helpers: errors, figures and loudness-keeping audio players.

The figures themselves are built by :mod:`xai_core.viz`; this module only hands them to
Streamlit.  Audio is inverted with :func:`xai_core.audio.mel_to_audio` and given to ``st.audio``
as WAV bytes of one set scaled by one common gain (:func:`xai_core.audio.wav_bytes_set`), so
relative loudness between clips is kept (Streamlit would peak-normalise each numpy array on its own).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import streamlit as st

from xai_core.audio.config import MelConfig
from xai_core.errors import XaiError

PREVIEW_GL_ITERS = 32  # Griffin-Lim iterations for live previews (the paper uses 100)
FULL_GL_ITERS = 100
BAND_PROFILE_PX = 800  # the band profile's width on the page (it would otherwise fill a wide page)


@contextmanager
def errors_shown(what: str = "") -> Iterator[None]:
    """Show an :class:`XaiError` as ``st.error`` (no traceback); the page carries on after the block."""
    try:
        yield
    except XaiError as exc:
        st.error(f"{what + ': ' if what else ''}{exc}")


def show_figure(fig, *, width: int | str = "stretch") -> None:
    """Render a matplotlib figure (from :mod:`xai_core.viz`, built without pyplot) and clear it.

    ``width``: ``"stretch"`` (the container's width), ``"content"`` or pixels; a pixel width keeps
    a single-axes figure from growing to the height of a screen on a wide page.
    """
    st.pyplot(fig, clear_figure=True, width=width)


def show_png(fig, *, dpi: int = 110) -> None:
    """Render a figure with a fixed layout (:func:`xai_core.viz.decoded_rows_figure`) as a PNG at ``dpi``.

    ``st.pyplot`` saves at 200 dpi with a tight bounding box, which draws the figure twice: for the
    decoded-rows figure that is 2.2 s against 0.5 s here (4 x 4 panels, measured).
    """
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    st.image(buf.getvalue(), width="stretch")


@st.cache_data(max_entries=64, show_spinner="Turning spectrograms into audio…")
def invert(logmels: np.ndarray, mel_dict: dict, n_iter: int) -> np.ndarray:
    """Griffin-Lim inversion of ``(N, T, M)`` log-mel to ``(N, L)`` waveforms (cached on the data)."""
    import torch

    from xai_core.audio.inversion import mel_to_audio

    mel = MelConfig.from_dict(mel_dict)
    with torch.no_grad():
        wave = mel_to_audio(torch.as_tensor(np.asarray(logmels, dtype=np.float32)), cfg=mel, n_iter=n_iter)
    return wave.cpu().numpy()  # (N, L)


def players(wavs: Sequence[bytes], captions: Sequence[str], *, ncols: int = 4, key: str = "",
            downloads: bool = False) -> None:
    """One ``st.audio`` per clip (already-encoded WAV bytes), with its caption and optional download."""
    cols = st.columns(max(1, min(ncols, len(wavs))))
    for i, (w, c) in enumerate(zip(wavs, captions, strict=True)):
        with cols[i % len(cols)]:
            st.caption(c)
            st.audio(w, format="audio/wav")
            if downloads:
                st.download_button("WAV", w, file_name=f"{key or 'clip'}_{i}.wav", mime="audio/wav",
                                   key=f"dl_{key}_{i}")
