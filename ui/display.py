"""Display helpers: errors, spectrogram figures, loudness-keeping audio players, plotly charts.

Figures are built from numpy arrays; audio is inverted with :func:`xai_core.audio.inversion.mel_to_audio`
and handed to ``st.audio`` as encoded WAV bytes of one set scaled by one common gain, so relative
loudness between clips is kept (Streamlit would peak-normalise each numpy array on its own).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

from xai_core.audio.config import MelConfig  # noqa: E402
from xai_core.errors import XaiError  # noqa: E402

PREVIEW_GL_ITERS = 32  # Griffin-Lim iterations for live previews (the paper uses 100)
FULL_GL_ITERS = 100


@contextmanager
def errors_shown(what: str = "") -> Iterator[None]:
    """Show an :class:`XaiError` as ``st.error`` (no traceback); the page carries on after the block."""
    try:
        yield
    except XaiError as exc:
        st.error(f"{what + ': ' if what else ''}{exc}")


def mel_band_hz(mel: MelConfig) -> np.ndarray:
    """Centre frequency in Hz of each mel band (HTK scale, as the filterbank), shape ``(n_mels,)``."""
    import librosa

    return librosa.mel_frequencies(n_mels=mel.n_mels + 2, fmin=mel.fmin, fmax=mel.fmax, htk=True)[1:-1]


def _hz_ticks(mel: MelConfig) -> tuple[list[float], list[str]]:
    hz = mel_band_hz(mel)
    wanted = [50, 100, 200, 500, 1000, 2000, 4000, 8000]
    pos, lab = [], []
    for f in wanted:
        if hz[0] <= f <= hz[-1] * 1.001:
            pos.append(float(np.interp(f, hz, np.arange(len(hz)))))
            lab.append(f"{f // 1000}k" if f >= 1000 else str(f))
    return pos, lab


def spectrogram_grid(logmels: np.ndarray, mel: MelConfig, *, titles: Sequence[str] = (), ncols: int = 4,
                     vmin: float | None = None, vmax: float | None = None, height: float = 2.2):
    """Matplotlib figure of log-mel spectrograms, time in s on x, Hz on a mel axis on y.

    Parameters
    ----------
    logmels : array, shape ``(N, T, M)``, natural-log mel (un-normalised)
    titles : N strings shown above the panels
    vmin, vmax : shared colour range (default: the set's 1st / 99.9th percentile)
    """
    x = np.asarray(logmels, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    n, t, _ = x.shape
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    vmin = float(np.percentile(x, 1)) if vmin is None else vmin
    vmax = float(np.percentile(x, 99.9)) if vmax is None else vmax
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, height * nrows), squeeze=False,
                             constrained_layout=True)
    dur = t / mel.frame_rate
    pos, lab = _hz_ticks(mel)
    im = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        im = ax.imshow(x[i].T, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                       extent=(0, dur, -0.5, x.shape[2] - 0.5), interpolation="nearest")
        ax.set_yticks(pos, lab, fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        if i % ncols == 0:
            ax.set_ylabel("Hz (mel scale)", fontsize=7)
        if i // ncols == nrows - 1:
            ax.set_xlabel("time (s)", fontsize=7)
        if i < len(titles):
            ax.set_title(titles[i], fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="log mel")
    return fig


def show_figure(fig) -> None:
    """Render a matplotlib figure and free it (no figure accumulates across reruns)."""
    st.pyplot(fig, clear_figure=True)
    plt.close(fig)


@st.cache_data(max_entries=64, show_spinner="Turning spectrograms into audio…")
def invert(logmels: np.ndarray, mel_dict: dict, n_iter: int) -> np.ndarray:
    """Griffin-Lim inversion of ``(N, T, M)`` log-mel to ``(N, L)`` waveforms (cached on the data)."""
    import torch

    from xai_core.audio.inversion import mel_to_audio

    mel = MelConfig.from_dict(mel_dict)
    with torch.no_grad():
        wave = mel_to_audio(torch.as_tensor(np.asarray(logmels, dtype=np.float32)), cfg=mel, n_iter=n_iter)
    return wave.cpu().numpy()  # (N, L)


def wav_set(waves: np.ndarray, sample_rate: int) -> list[bytes]:
    """Encode a set of clips as WAV bytes with one shared gain (relative loudness kept)."""
    try:
        from xai_core.audio.export import wav_bytes_set
    except ImportError:
        return _wav_bytes_set(waves, sample_rate)
    return list(wav_bytes_set(waves, sample_rate=sample_rate))


def _wav_bytes_set(waves: np.ndarray, sample_rate: int, *, headroom: float = 0.89) -> list[bytes]:
    import soundfile as sf

    w = np.asarray(waves, dtype=np.float64)
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    gain = headroom / peak if peak > 0 else 1.0
    out = []
    for clip in w:
        buf = io.BytesIO()
        sf.write(buf, (clip * gain).astype(np.float32), sample_rate, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def zip_set(named: dict[str, bytes]) -> bytes:
    """A zip of name -> bytes."""
    try:
        from xai_core.audio.export import zip_bytes
    except ImportError:
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for k, v in named.items():
                z.writestr(k, v)
        return buf.getvalue()
    return zip_bytes(named)


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


def trace_figure(trace: np.ndarray, *, title: str = "response per step", best_step=None) -> go.Figure:
    """Plotly lines of ``(S, n_steps)`` responses, one per example, best steps marked."""
    tr = np.asarray(trace, dtype=np.float64)
    fig = go.Figure()
    steps = np.arange(tr.shape[1])
    for i, row in enumerate(tr):
        fig.add_trace(go.Scatter(x=steps, y=row, mode="lines", name=f"seed +{i}", line={"width": 1},
                                 showlegend=False))
    if best_step is not None:
        b = np.asarray(best_step, dtype=int)
        fig.add_trace(go.Scatter(x=b, y=tr[np.arange(len(b)), np.clip(b, 0, tr.shape[1] - 1)],
                                 mode="markers", name="kept (best) iterate", marker={"size": 7}))
    fig.update_layout(title=title, xaxis_title="Adam step", yaxis_title="response", height=300,
                      margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return fig


def band_profile_figure(sets: dict[str, np.ndarray], mel: MelConfig) -> go.Figure:
    """Mean log-mel per band (averaged over examples and time) of each named ``(N, T, M)`` set."""
    hz = mel_band_hz(mel)
    fig = go.Figure()
    for name, x in sets.items():
        prof = np.asarray(x, dtype=np.float64).mean(axis=(0, 1))  # (M,)
        fig.add_trace(go.Scatter(x=hz, y=prof, mode="lines", name=name))
    fig.update_layout(xaxis={"type": "log", "title": "frequency (Hz, log axis)"}, yaxis_title="mean log mel",
                      height=340, margin={"l": 40, "r": 10, "t": 30, "b": 40},
                      title="What changed, by frequency: mean log-mel per band")
    return fig


def fid_heatmap(fid: np.ndarray, lrs: Sequence[float], lams: Sequence[float], *, title: str,
                selected: tuple[float, float] | None = None) -> go.Figure:
    """Plotly heatmap of FID over lr (rows) x lambda (columns); each cell's customdata is (lr, lam).

    The colour is log10(FID) so that cells spanning decades stay readable; the text is the FID.
    """
    f = np.asarray(fid, dtype=np.float64)  # (L, A)
    xs = [f"{v:g}" for v in lams]
    ys = [f"{v:g}" for v in lrs]
    custom = np.array([[[lr, lam] for lam in lams] for lr in lrs])  # (L, A, 2)
    z = np.log10(np.maximum(f, 1e-6))
    fig = go.Figure(go.Heatmap(
        z=z, x=xs, y=ys, customdata=custom, text=[[f"{v:.3g}" for v in row] for row in f],
        texttemplate="%{text}", colorscale="Viridis_r", colorbar={"title": "log10 FID"},
        hovertemplate="lr %{customdata[0]:g}, lambda %{customdata[1]:g}<br>FID %{text}<extra></extra>"))
    if selected is not None and selected[0] in lrs and selected[1] in lams:
        fig.add_trace(go.Scatter(x=[f"{selected[1]:g}"], y=[f"{selected[0]:g}"], mode="markers",
                                 marker={"symbol": "star", "size": 18, "color": "red",
                                         "line": {"color": "white", "width": 1}},
                                 name="selected (lowest FID)", hoverinfo="skip"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    fig.update_layout(title=title, xaxis_title="lambda", yaxis_title="learning rate", height=300,
                      margin={"l": 50, "r": 10, "t": 40, "b": 40}, showlegend=False)
    return fig


def waveform_prob_figure(wave: np.ndarray, sample_rate: int, times: np.ndarray, prob: np.ndarray,
                         labels: np.ndarray | None = None) -> go.Figure:
    """Waveform (top) and per-frame p(vocal) with ground-truth labels if known (bottom)."""
    from plotly.subplots import make_subplots

    w = np.asarray(wave, dtype=np.float32)
    step = max(1, len(w) // 20000)  # plot at most ~20k points
    t = np.arange(0, len(w), step) / sample_rate
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.4, 0.6], vertical_spacing=0.05)
    fig.add_trace(go.Scatter(x=t, y=w[::step], mode="lines", name="waveform", line={"width": 0.6}), 1, 1)
    fig.add_trace(go.Scatter(x=times, y=prob, mode="lines", name="p(vocal)"), 2, 1)
    if labels is not None:
        fig.add_trace(go.Scatter(x=times, y=labels, mode="lines", name="label (1 = singing)",
                                 line={"dash": "dot"}), 2, 1)
    fig.update_yaxes(range=[-0.05, 1.05], title_text="p(vocal)", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    fig.update_layout(height=380, margin={"l": 40, "r": 10, "t": 20, "b": 40})
    return fig


def prob(logit) -> np.ndarray:
    """Sigmoid of logits as numpy."""
    x = np.asarray(logit, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x))
