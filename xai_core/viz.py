"""Figure builders: matplotlib for spectrograms and waveforms, plotly for interactive tables.

No streamlit here: the UI displays what these return.  Matplotlib figures are built with
:class:`matplotlib.figure.Figure` directly, never through ``pyplot``, so no global figure
state is touched (safe in Streamlit's threads) and nothing needs closing: a figure is freed
when the last reference to it goes.  Inputs may be numpy arrays or torch tensors (any device).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure

from xai_core.audio.config import MelConfig
from xai_core.errors import ParameterError

__all__ = [
    "mel_band_centres",
    "hz_to_band_position",
    "colour_range",
    "spectrogram_figure",
    "spectrogram_grid",
    "waveform_prob_figure",
    "mean_band_profile_figure",
    "fid_heatmap",
    "share_heatmap",
    "add_range_band",
    "score_trace_figure",
    "prob_histogram_figure",
    "decoded_rows_figure",
    "depth_curve_figure",
]

HZ_TICKS = (100, 250, 500, 1000, 2000, 4000, 8000)  # candidate tick frequencies, Hz
LOG_MEL_LABEL = "log mel (natural log of magnitude)"


def _np(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.size and not np.isfinite(a).all():
        raise ParameterError(f"{name} contains NaN or infinite values")
    return a


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)  # HTK, like the filterbank


def mel_band_centres(cfg: MelConfig = MelConfig()) -> np.ndarray:
    """Centre frequency in Hz of each mel band, shape ``(n_mels,)`` (HTK mel scale)."""
    lo, hi = _hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax)
    mels = np.linspace(lo, hi, cfg.n_mels + 2)[1:-1]
    return 700.0 * (10 ** (mels / 2595.0) - 1.0)


def hz_to_band_position(freqs, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """Fractional band index of frequencies in Hz (linear in mel between band centres).

    Frequencies outside the band centres' range extrapolate linearly in mel.
    """
    lo, hi = _hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax)
    step = (hi - lo) / (cfg.n_mels + 1)  # mel distance between neighbouring band centres
    return (_hz_to_mel(freqs) - lo) / step - 1.0


def _hz_label(f: float) -> str:
    return f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz"


def _mel_ticks(cfg: MelConfig) -> tuple[np.ndarray, list[str]]:
    """Tick positions (band index) and labels for the candidate frequencies on the axis.

    The axis shows band cells ``-0.5 .. n_mels - 0.5``; ``fmax`` itself (8 kHz by default) is
    the upper edge of the top filter, at position ``n_mels``.  Ticks up to half a band outside
    the cells are drawn at the axis edge (8 kHz sits 0.5 band above the top cell's edge,
    about 130 Hz), the rest are dropped.
    """
    pos = hz_to_band_position(np.array(HZ_TICKS, dtype=float), cfg)
    keep = (pos >= -1.0) & (pos <= cfg.n_mels)
    pos = np.clip(pos[keep], -0.5, cfg.n_mels - 0.5)
    return pos, [_hz_label(f) for f, k in zip(HZ_TICKS, keep, strict=True) if k]


def _set_mel_axis(ax, cfg: MelConfig, *, axis: str = "y") -> None:
    pos, labels = _mel_ticks(cfg)
    if axis == "y":
        ax.set_yticks(pos, labels)
        ax.set_ylim(-0.5, cfg.n_mels - 0.5)
        ax.set_ylabel("frequency (Hz, mel scale)")
    else:
        ax.set_xticks(pos, labels)
        ax.set_xlim(-0.5, cfg.n_mels - 0.5)
        ax.set_xlabel("frequency (Hz, mel scale)")


def _check_logmel(log_mel, cfg: MelConfig, name: str = "log_mel") -> np.ndarray:
    x = _np(log_mel, name)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]  # (1, T, M) -> (T, M)
    if x.ndim != 2 or x.shape[1] != cfg.n_mels:
        raise ParameterError(f"{name} must be (T, {cfg.n_mels}) time x mel, got shape {x.shape}")
    return x


def colour_range(*sets, lo: float = 1.0, hi: float = 99.9) -> tuple[float, float]:
    """Shared colour range ``(vmin, vmax)``: percentiles ``lo`` / ``hi`` over all values of all sets.

    Percentiles rather than the extremes, so that one outlying bin does not wash out every panel.
    ``None`` entries are skipped (e.g. an optional comparison set).
    """
    if not 0 <= lo < hi <= 100:
        raise ParameterError(f"need 0 <= lo < hi <= 100, got lo={lo}, hi={hi}")
    arrs = [_np(x, f"sets[{i}]").ravel() for i, x in enumerate(sets) if x is not None]
    vals = np.concatenate(arrs) if arrs else np.zeros(0)
    if vals.size == 0:
        raise ParameterError("colour_range needs at least one non-empty set")
    return float(np.percentile(vals, lo)), float(np.percentile(vals, hi))


def _draw_spectrogram(ax, x: np.ndarray, cfg: MelConfig, vmin, vmax):
    t = cfg.frame_times(x.shape[0])  # (T,) frame centres, s
    dt = cfg.hop_length / cfg.sample_rate
    extent = (t[0] - dt / 2, t[-1] + dt / 2, -0.5, cfg.n_mels - 0.5)
    im = ax.imshow(x.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
                   vmin=vmin, vmax=vmax, interpolation="nearest")  # (M, T) image
    ax.set_xlabel("time (s)")
    _set_mel_axis(ax, cfg)
    return im


def spectrogram_figure(log_mel, *, cfg: MelConfig = MelConfig(), title: str | None = None, ax=None,
                       vmin: float | None = None, vmax: float | None = None) -> Figure:
    """Log-mel spectrogram: time in seconds on x, Hz on a mel-spaced y axis, colourbar in log units.

    Parameters
    ----------
    log_mel : array, shape ``(T, n_mels)`` (or ``(1, T, n_mels)``), natural-log mel
    cfg : MelConfig
    title : str, optional
    ax : matplotlib Axes, optional
        Draw into this axes (its figure gets the colourbar); a new figure otherwise.
    vmin, vmax : float, optional
        Colour range in log units (default: the data's range); pass the same values to make
        several figures comparable.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = _check_logmel(log_mel, cfg)
    if ax is None:
        fig = Figure(figsize=(7, 3.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    im = _draw_spectrogram(ax, x, cfg, vmin, vmax)
    fig.colorbar(im, ax=ax, label=LOG_MEL_LABEL)
    if title:
        ax.set_title(title)
    return fig


def spectrogram_grid(log_mels: Sequence, titles: Sequence[str] | None = None, *, cfg: MelConfig = MelConfig(),
                     ncols: int = 4, vmin: float | None = None, vmax: float | None = None,
                     panel_size: tuple[float, float] = (3.2, 2.6)) -> Figure:
    """Several spectrograms on one shared colour scale, one colourbar for all.

    Parameters
    ----------
    log_mels : sequence of arrays ``(T, n_mels)`` or an array ``(N, T, n_mels)``
    titles : sequence of str, optional, one per spectrogram
    ncols : int, panels per row
    vmin, vmax : float, optional, default the range over all panels (see :func:`colour_range`)
    panel_size : (width, height) of one panel in inches (the colourbar adds 1 inch of width)

    Returns
    -------
    matplotlib.figure.Figure with ``N`` spectrogram axes plus one colourbar axes.
    """
    xs = [_check_logmel(x, cfg, f"log_mels[{i}]") for i, x in enumerate(log_mels)]
    if not xs:
        raise ParameterError("spectrogram_grid needs at least one spectrogram")
    if ncols < 1:
        raise ParameterError(f"ncols must be >= 1, got {ncols}")
    if titles is not None and len(titles) != len(xs):
        raise ParameterError(f"got {len(titles)} titles for {len(xs)} spectrograms")
    vmin = min(float(x.min()) for x in xs) if vmin is None else vmin
    vmax = max(float(x.max()) for x in xs) if vmax is None else vmax
    ncols = min(ncols, len(xs))
    nrows = -(-len(xs) // ncols)
    fig = Figure(figsize=(panel_size[0] * ncols + 1.0, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=False, sharey=True)
    im = None
    for i, ax in enumerate(axes.flat):
        if i >= len(xs):
            fig.delaxes(ax)
            continue
        im = _draw_spectrogram(ax, xs[i], cfg, vmin, vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        if i % ncols:
            ax.set_ylabel("")
        if i < len(xs) - ncols:
            ax.set_xlabel("")
    fig.colorbar(im, ax=[a for a in axes.flat if a.figure is fig and a in fig.axes], label=LOG_MEL_LABEL)
    return fig


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index runs where a boolean array is True."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2], strict=True))


def _envelope(w: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min / max of ``w`` over ``max_points // 2`` equal buckets, with each bucket's start index."""
    n_buckets = max(1, max_points // 2)
    size = -(-w.size // n_buckets)  # samples per bucket, rounded up
    padded = np.pad(w, (0, size * n_buckets - w.size), mode="edge").reshape(n_buckets, size)  # (B, size)
    return np.arange(n_buckets) * size, padded.min(1), padded.max(1)


def waveform_prob_figure(wave, frame_probs, *, cfg: MelConfig = MelConfig(), labels=None,
                         threshold: float = 0.5, title: str | None = None, max_points: int = 20000) -> Figure:
    """Waveform above the per-frame p(vocal) curve, ground-truth vocal frames shaded.

    Parameters
    ----------
    wave : array ``(n_samples,)`` at ``cfg.sample_rate``
    frame_probs : array ``(T,)`` of probabilities in ``[0, 1]``, frame ``i`` centred at
        ``cfg.frame_times(T)[i]``
    labels : array ``(T,)`` of 0/1 ground truth, optional; vocal frames are shaded on both axes
    threshold : float, drawn as a dashed line on the probability axes
    max_points : int, a longer waveform is drawn as its min/max envelope over ``max_points // 2``
        buckets (every peak stays visible; a 10-minute upload stays quick to draw)

    Returns
    -------
    matplotlib.figure.Figure with two axes (waveform, probability) sharing the time axis.
    """
    w = _np(wave, "wave").reshape(-1)
    p = _np(frame_probs, "frame_probs").reshape(-1)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ParameterError(f"frame_probs must lie in [0, 1], got range [{p.min():.3g}, {p.max():.3g}]")
    if not 0 <= threshold <= 1:
        raise ParameterError(f"threshold must lie in [0, 1], got {threshold}")
    t_frames = cfg.frame_times(p.size)  # (T,) s
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax_w, ax_p = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.2])
    if w.size > max_points:
        start, lo, hi = _envelope(w, max_points)
        ax_w.fill_between(start / cfg.sample_rate, lo, hi, color="0.25", lw=0, step="post")
    else:
        ax_w.plot(np.arange(w.size) / cfg.sample_rate, w, lw=0.5, color="0.25")
    ax_w.set_ylabel("amplitude")
    ax_p.plot(t_frames, p, color="C0", lw=1.2, label="p(vocal)")
    ax_p.axhline(threshold, color="C3", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    ax_p.set_ylim(-0.02, 1.02)
    ax_p.set_ylabel("p(vocal)")
    ax_p.set_xlabel("time (s)")
    if labels is not None:
        lab = _np(labels, "labels").reshape(-1)
        if lab.size != p.size:
            raise ParameterError(f"labels has {lab.size} frames, frame_probs {p.size}")
        dt = cfg.hop_length / cfg.sample_rate
        for k, (a, b) in enumerate(_runs(lab > 0.5)):
            for ax in (ax_w, ax_p):
                ax.axvspan(t_frames[a] - dt / 2, t_frames[b - 1] + dt / 2, color="C2", alpha=0.18, lw=0,
                           label="vocal (ground truth)" if (k == 0 and ax is ax_p) else None)
    ax_p.legend(loc="upper right", fontsize=8)
    if title:
        ax_w.set_title(title)
    return fig


def mean_band_profile_figure(sets: Mapping[str, object], *, cfg: MelConfig = MelConfig(),
                             title: str | None = None) -> Figure:
    """Mean log-mel per band (over examples and frames) for several sets, +-1 std shaded.

    Parameters
    ----------
    sets : mapping name -> array ``(N, T, n_mels)`` (or ``(T, n_mels)``)

    Returns
    -------
    matplotlib.figure.Figure with one axes; x is frequency in Hz on a mel-spaced axis.
    """
    if not sets:
        raise ParameterError("mean_band_profile_figure needs at least one set")
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.add_subplot()
    bands = np.arange(cfg.n_mels)
    for i, (name, arr) in enumerate(sets.items()):
        x = _np(arr, f"sets[{name!r}]")
        if x.ndim < 2 or x.shape[-1] != cfg.n_mels or x.size == 0:
            raise ParameterError(f"sets[{name!r}] must be (N, T, {cfg.n_mels}), got shape {x.shape}")
        flat = x.reshape(-1, cfg.n_mels)  # (N * T, M)
        mean, std = flat.mean(0), flat.std(0)  # (M,)
        ax.plot(bands, mean, color=f"C{i}", lw=1.5, label=f"{name} (n={x.shape[0] if x.ndim == 3 else 1})")
        ax.fill_between(bands, mean - std, mean + std, color=f"C{i}", alpha=0.15, lw=0)
    _set_mel_axis(ax, cfg, axis="x")
    ax.set_ylabel("mean log mel")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def _log_ticks(lo: float, hi: float) -> np.ndarray:
    """log10 positions of colourbar ticks inside ``[lo, hi]``: 1-2-5 steps per decade, else 3 even ones.

    Without the fallback a range inside one decade (every FID between 1.2 and 1.3) gets no tick.
    """
    decades = np.arange(np.floor(lo) - 1, np.ceil(hi) + 1)
    cands = np.log10(np.outer(10.0 ** decades, [1.0, 2.0, 5.0]).ravel())
    inside = cands[(cands >= lo - 1e-9) & (cands <= hi + 1e-9)]
    if inside.size > 8:  # many decades: whole decades only
        inside = inside[np.isclose(inside, np.round(inside))]
    return inside if inside.size >= 2 else np.linspace(lo, hi, 3)


def _distinct_labels(values: np.ndarray) -> list[str]:
    """Labels with 3 significant digits, or as few more (up to 8) as keep them apart."""
    for digits in range(3, 9):
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            break
    return labels


def fid_heatmap(table, lrs: Sequence[float], lambdas: Sequence[float], *, title: str | None = None,
                selected: tuple[int, int] | None = None) -> go.Figure:
    """FID over a learning-rate x lambda grid, colour on a log scale, selected cell marked.

    Parameters
    ----------
    table : array ``(len(lrs), len(lambdas))`` of FID values (NaN for a missing cell)
    lrs : learning rates, one per row (y axis)
    lambdas : prior weights, one per column (x axis)
    title : str, optional
    selected : ``(row, column)`` indices of the chosen configuration, optional

    Returns
    -------
    plotly.graph_objects.Figure: a heatmap trace (``customdata[i][j] = [lr, lambda]`` for click
    handling, hover with the exact FID) plus, when ``selected`` is given, a marker trace on it.
    """
    z = np.asarray(table, dtype=np.float64)
    if z.shape != (len(lrs), len(lambdas)):
        raise ParameterError(f"table shape {z.shape} does not match {len(lrs)} lrs x {len(lambdas)} lambdas")
    if np.isinf(z).any():
        raise ParameterError("table contains infinite FID values")
    # FID >= 0 in exact arithmetic; tiny negatives from round-off are floored for the log colour.
    logz = np.log10(np.clip(z, 1e-6, None))  # (R, C), NaN stays NaN
    xs = [f"{v:g}" for v in lambdas]
    ys = [f"{v:g}" for v in lrs]
    custom = np.stack(np.broadcast_arrays(np.asarray(lrs, float)[:, None], np.asarray(lambdas, float)[None, :]),
                      axis=-1)  # (R, C, 2)
    text = [[("" if np.isnan(v) else f"{v:.3g}") for v in row] for row in z]
    finite = logz[np.isfinite(logz)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    ticks = _log_ticks(lo, hi)
    heat = go.Heatmap(
        z=logz, x=xs, y=ys, customdata=custom, text=text, texttemplate="%{text}",
        colorscale="Viridis", reversescale=True, zmin=lo, zmax=max(hi, lo + 1e-9),
        colorbar=dict(title="FID (log scale)", tickvals=ticks.tolist(), ticktext=_distinct_labels(10**ticks)),
        # Exact values in the hover; the cell text shows 3 significant digits.
        hovertext=[[("missing" if np.isnan(v) else repr(float(v))) for v in row] for row in z],
        hovertemplate="lr %{customdata[0]:g}<br>lambda %{customdata[1]:g}<br>FID %{hovertext}<extra></extra>",
    )
    return _grid_frame(go.Figure(heat), xs, ys, lrs, lambdas, selected=selected, colour="red", title=title)


def _grid_frame(fig: go.Figure, xs, ys, lrs, lambdas, *, selected, colour: str, title) -> go.Figure:
    """The selected cell's marker and the axes shared by the lr x lambda heatmaps."""
    if selected is not None:
        r, c = selected
        if not (0 <= r < len(lrs) and 0 <= c < len(lambdas)):
            raise ParameterError(f"selected={selected!r} lies outside the {len(lrs)} x {len(lambdas)} grid")
        fig.add_trace(go.Scatter(
            x=[xs[c]], y=[ys[r]], mode="markers", name="selected",
            marker=dict(symbol="square-open", size=46, color=colour, line=dict(width=3)),
            customdata=[[float(lrs[r]), float(lambdas[c])]], hoverinfo="skip", showlegend=False,
        ))
    fig.update_layout(title=title, xaxis_title="lambda (prior weight)", yaxis_title="learning rate",
                      xaxis_type="category", yaxis_type="category", margin=dict(l=60, r=20, t=50, b=50))
    return fig


def share_heatmap(table, lrs: Sequence[float], lambdas: Sequence[float], *, title: str | None = None,
                  selected: tuple[int, int] | None = None) -> go.Figure:
    """Share of in-range examples (0 to 1) over a learning-rate x lambda grid, selected cell marked.

    Laid out like :func:`fid_heatmap` (rows lrs, columns lambdas, ``customdata[i][j] = [lr, lambda]`` for
    click handling), on a linear red (none in range) to green (all in range) scale; NaN cells are
    "unknown" (no flags).
    """
    z = np.asarray(table, dtype=np.float64)
    if z.shape != (len(lrs), len(lambdas)):
        raise ParameterError(f"table shape {z.shape} does not match {len(lrs)} lrs x {len(lambdas)} lambdas")
    finite = z[np.isfinite(z)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ParameterError("shares must lie in [0, 1]")
    xs = [f"{v:g}" for v in lambdas]
    ys = [f"{v:g}" for v in lrs]
    custom = np.stack(np.broadcast_arrays(np.asarray(lrs, float)[:, None], np.asarray(lambdas, float)[None, :]),
                      axis=-1)  # (R, C, 2)
    text = [[("unknown" if np.isnan(v) else f"{100 * v:.0f} %") for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=xs, y=ys, customdata=custom, text=text, texttemplate="%{text}", colorscale="RdYlGn", zmin=0.0,
        zmax=1.0, colorbar=dict(title="in range", tickformat=".0%"),
        hovertemplate="lr %{customdata[0]:g}<br>lambda %{customdata[1]:g}<br>in range %{text}<extra></extra>"))
    return _grid_frame(fig, xs, ys, lrs, lambdas, selected=selected, colour="black", title=title)


def add_range_band(fig: go.Figure, lo: float, hi: float, *, label: str = "real range",
                   limit: float | None = None, limit_label: str | None = None) -> go.Figure:
    """Shade ``y`` in ``[lo, hi]`` (what real excerpts produce) behind the traces of ``fig``; a dotted line
    at ``limit`` (where a flag fires), optional. Returns ``fig``."""
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ParameterError(f"a range band needs finite lo <= hi, got {lo!r}, {hi!r}")
    fig.add_hrect(y0=lo, y1=hi, fillcolor="seagreen", opacity=0.15, line_width=0, layer="below",
                  annotation_text=label, annotation_position="top left", annotation_font_size=10)
    if limit is not None and np.isfinite(limit):
        fig.add_hline(y=limit, line_dash="dot", line_color="firebrick", line_width=1,
                      annotation_text=limit_label, annotation_position="top right", annotation_font_size=10)
    return fig


def score_trace_figure(traces, *, title: str | None = None, maximise: bool = True,
                       ylabel: str = "score", steps=None, kept=None, running_best: bool = True,
                       xlabel: str = "step") -> go.Figure:
    """Score per optimisation step, one solid line per run plus its best-so-far dashed.

    Parameters
    ----------
    traces : array ``(S, n_steps)`` (runs named "seed i") or mapping name -> array ``(n_steps,)``
    maximise : bool, best-so-far is the running maximum (True) or minimum (False)
    steps : array ``(n_steps,)``, optional, x value of each column (default ``1 .. n_steps``)
    kept : array ``(S,)`` of column indices, optional: the kept iterate of each run, marked
        with one marker trace "kept iterate" (indices are clipped to the trace)
    running_best : bool, draw the dashed best-so-far lines (off for traces that already are one)

    Returns
    -------
    plotly.graph_objects.Figure with ``S`` (score) traces, ``S`` more (best so far) when
    ``running_best``, in legend groups, then one marker trace when ``kept`` is given.
    """
    if isinstance(traces, Mapping):
        items = [(str(k), _np(v, f"traces[{k!r}]").reshape(-1)) for k, v in traces.items()]
    else:
        arr = _np(traces, "traces")
        arr = arr[None] if arr.ndim == 1 else arr
        if arr.ndim != 2:
            raise ParameterError(f"traces must be (S, n_steps), got shape {arr.shape}")
        items = [(f"seed {i}", row) for i, row in enumerate(arr)]
    if not items:
        raise ParameterError("score_trace_figure needs at least one trace")
    acc = np.maximum.accumulate if maximise else np.minimum.accumulate
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    n_steps = max(y.size for _, y in items)
    xs = np.arange(1, n_steps + 1) if steps is None else _np(steps, "steps").reshape(-1)
    if xs.size != n_steps:
        raise ParameterError(f"steps has {xs.size} values for traces of {n_steps} steps")
    fig = go.Figure()
    for i, (name, y) in enumerate(items):
        colour = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=xs[:y.size], y=y, mode="lines", name=name, legendgroup=name,
                                 line=dict(color=colour, width=1.2)))
        if running_best:
            fig.add_trace(go.Scatter(x=xs[:y.size], y=acc(y), mode="lines", name=f"{name} best so far",
                                     legendgroup=name, showlegend=False,
                                     line=dict(color=colour, width=1.2, dash="dash")))
    if kept is not None:
        k = np.asarray(_np(kept, "kept"), dtype=int).reshape(-1)
        if k.size != len(items):
            raise ParameterError(f"kept has {k.size} indices for {len(items)} traces")
        k = np.array([np.clip(j, 0, y.size - 1) for j, (_, y) in zip(k, items, strict=True)], dtype=int)
        fig.add_trace(go.Scatter(x=xs[k], y=[y[j] for j, (_, y) in zip(k, items, strict=True)], mode="markers",
                                 name="kept iterate", marker=dict(size=7, color="black", symbol="circle-open",
                                                                  line=dict(width=2))))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, hovermode="x unified")
    return fig


def prob_histogram_figure(probs: Mapping[str, object], *, bins: int = 20, title: str | None = None,
                          fractions: bool = False) -> go.Figure:
    """Overlaid histograms of p(vocal) for several sets, on ``[0, 1]``.

    Parameters
    ----------
    probs : mapping name -> array of probabilities (any shape; flattened)
    bins : number of equal-width bins on ``[0, 1]``
    fractions : plot each set's fraction per bin instead of counts (sets of different sizes)

    Returns
    -------
    plotly.graph_objects.Figure with one histogram trace per set.
    """
    if bins < 1:
        raise ParameterError(f"bins must be >= 1, got {bins}")
    fig = go.Figure()
    for name, p in probs.items():
        x = _np(p, f"probs[{name!r}]").reshape(-1)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ParameterError(f"probs[{name!r}] must lie in [0, 1]")
        fig.add_trace(go.Histogram(x=x, name=f"{name} (n={x.size})", opacity=0.6,
                                   histnorm="probability" if fractions else None,
                                   xbins=dict(start=0.0, end=1.0, size=1.0 / bins)))
    fig.update_layout(title=title, barmode="overlay", xaxis_title="p(vocal)",
                      yaxis_title="fraction of the set" if fractions else "count", xaxis_range=[0, 1])
    return fig


def decoded_rows_figure(rows: Sequence[Sequence], titles: Sequence[Sequence[str]], *, cfg: MelConfig = MelConfig(),
                        diff_columns: Sequence[int] = (), vmin: float | None = None, vmax: float | None = None,
                        panel_size: tuple[float, float] = (2.9, 2.0)) -> Figure:
    """A grid of spectrograms, one row per decoded layer (ClaDec's "what each layer keeps").

    Parameters
    ----------
    rows : one sequence per row of arrays ``(T, n_mels)`` (``None`` leaves a panel empty)
    titles : the same nesting as ``rows``
    diff_columns : columns holding *differences* of log-mel (e.g. ClaDec - RefAE): drawn on a
        diverging colour map symmetric around 0 with their own colourbar
    vmin, vmax : the log-mel panels' shared colour range (default :func:`colour_range` of them)

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not rows or not all(len(r) == len(rows[0]) for r in rows) or len(titles) != len(rows):
        raise ParameterError("decoded_rows_figure needs rows of equal length and one title per panel")
    ncols, diff = len(rows[0]), set(diff_columns)
    plain = [_check_logmel(x, cfg) for r in rows for j, x in enumerate(r) if x is not None and j not in diff]
    diffs = [_check_logmel(x, cfg) for r in rows for j, x in enumerate(r) if x is not None and j in diff]
    if vmin is None or vmax is None:
        lo, hi = colour_range(*plain) if plain else (0.0, 1.0)
        vmin, vmax = (lo if vmin is None else vmin), (hi if vmax is None else vmax)
    dlim = max((float(np.percentile(np.abs(d), 99.5)) for d in diffs), default=1.0) or 1.0
    # A fixed layout rather than "constrained": the layout solver doubled the time to draw this figure
    # (4 x 4 panels: 1.2 s -> 0.5 s as a 100-dpi PNG, measured), and this one is redrawn per input.
    width, height = panel_size[0] * ncols + 1.8, panel_size[1] * len(rows) + 0.6
    fig = Figure(figsize=(width, height))
    right = 1 - 1.3 / width
    fig.subplots_adjust(left=1.1 / width, right=right, bottom=0.45 / height, top=1 - 0.3 / height,
                        wspace=0.08, hspace=0.35)
    axes = fig.subplots(len(rows), ncols, squeeze=False, sharex=True, sharey=True)
    im = dim = None
    for i, (r, tr) in enumerate(zip(rows, titles, strict=True)):
        for j, x in enumerate(r):
            ax = axes[i, j]
            if x is None:
                ax.set_axis_off()
                continue
            x = _check_logmel(x, cfg)
            if j in diff:
                t = cfg.frame_times(x.shape[0])
                dt = cfg.hop_length / cfg.sample_rate
                dim = ax.imshow(x.T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-dlim, vmax=dlim,
                                extent=(t[0] - dt / 2, t[-1] + dt / 2, -0.5, cfg.n_mels - 0.5),
                                interpolation="nearest")
                ax.set_xlabel("time (s)")
                _set_mel_axis(ax, cfg)
            else:
                im = _draw_spectrogram(ax, x, cfg, vmin, vmax)
            ax.set_title(tr[j], fontsize=8)
            if j:
                ax.set_ylabel("")
            if i < len(rows) - 1:
                ax.set_xlabel("")
    bar_w, gap = 0.12 / width, 0.15 / width
    bottom, top = 0.45 / height, 1 - 0.3 / height
    if im is not None:
        h = (top - bottom) * (0.48 if dim is not None else 1.0)
        fig.colorbar(im, cax=fig.add_axes((right + gap, top - h, bar_w, h)), label="log mel")
    if dim is not None:
        fig.colorbar(dim, cax=fig.add_axes((right + gap, bottom, bar_w, (top - bottom) * 0.48)),
                     label="difference (log units)")
    return fig


def depth_curve_figure(layers: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str | None = None,
                       y_title: str = "", reference: Mapping[str, float] | None = None) -> go.Figure:
    """Lines of a measure against depth (one x position per layer, shallow to deep), with optional
    horizontal reference lines (e.g. the classifier on the original input)."""
    fig = go.Figure()
    for name, ys in series.items():
        ys = [float(v) if v is not None else None for v in ys]
        if len(ys) != len(layers):
            raise ParameterError(f"series {name!r} has {len(ys)} values for {len(layers)} layers")
        fig.add_trace(go.Scatter(x=list(layers), y=ys, mode="lines+markers", name=name,
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>"))
    for name, v in (reference or {}).items():
        fig.add_hline(y=float(v), line_dash="dot", annotation_text=name, annotation_position="top left")
    fig.update_layout(title=title, xaxis_title="decoded layer (shallow → deep)", yaxis_title=y_title,
                      height=340, margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.25))
    return fig
