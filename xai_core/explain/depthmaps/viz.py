"""Figures of the depth-map method (no streamlit): map overlays, per-depth relevance, deletion/insertion
curves and the randomisation check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure

from xai_core.audio.config import MelConfig
from xai_core.errors import ParameterError
from xai_core.explain.sanity.viz import sanity_figure  # noqa: F401  (the depth-map page's check uses it)
from xai_core.viz import _set_mel_axis, colour_range


def _overlay(ax, x: np.ndarray, m: np.ndarray | None, cfg: MelConfig, vmin: float, vmax: float, title: str) -> None:
    """The spectrogram in grey with map ``m`` (in [0, 1]) on top, transparent where it is zero."""
    t = cfg.frame_times(x.shape[0])
    dt = cfg.hop_length / cfg.sample_rate
    extent = (t[0] - dt / 2, t[-1] + dt / 2, -0.5, cfg.n_mels - 0.5)
    ax.imshow(x.T, origin="lower", aspect="auto", extent=extent, cmap="gray", vmin=vmin, vmax=vmax,
              interpolation="nearest")
    if m is not None:
        rgba = np.zeros((*m.T.shape, 4), dtype=np.float32)  # (M, T, 4) orange, alpha = relevance
        rgba[..., 0], rgba[..., 1], rgba[..., 2] = 1.0, 0.45, 0.0
        rgba[..., 3] = np.clip(m.T, 0, 1) * 0.85
        ax.imshow(rgba, origin="lower", aspect="auto", extent=extent, interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    _set_mel_axis(ax, cfg)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=7)


def maps_grid_figure(logmel, rows: Sequence[Sequence[tuple[str, np.ndarray | None]]], *,
                     cfg: MelConfig = MelConfig(), title: str | None = None) -> Figure:
    """Rows of overlays of maps on one excerpt.

    Parameters
    ----------
    logmel : array ``(T, M)``, un-normalised log-mel
    rows : per row, ``(panel title, map (T, M) in [0, 1] or None for the bare spectrogram)``
    """
    x = np.asarray(logmel, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != cfg.n_mels:
        raise ParameterError(f"logmel must be (T, {cfg.n_mels}), got {x.shape}")
    ncols = max(len(r) for r in rows)
    vmin, vmax = colour_range(x)
    fig = Figure(figsize=(2.3 * ncols + 0.6, 2.2 * len(rows) + (0.4 if title else 0)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), ncols, squeeze=False))
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(row):
                ax.set_visible(False)
                continue
            name, m = row[c]
            if m is not None and np.asarray(m).shape != x.shape:
                raise ParameterError(f"map {name!r} has shape {np.asarray(m).shape}, the excerpt {x.shape}")
            _overlay(ax, x, None if m is None else np.asarray(m, dtype=np.float32), cfg, vmin, vmax, name)
            if c:
                ax.set_ylabel("")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def depth_maps_figure(res, *, index: int = 0, cfg: MelConfig = MelConfig(), title: str | None = None) -> Figure:
    """A :class:`~xai_core.explain.depthmaps.explain.DepthMapResult` excerpt: each layer's Grad-CAM (shallow to
    deep), the cumulative maps (deepest first) and the explainers' maps."""
    x = res.logmel[index].numpy()
    rows = [[("input", None)] + [(n, res.layer_maps[index, i].numpy()) for i, n in enumerate(res.layers)],
            [(f"cum. {n}", res.cumulative[index, j].numpy()) for j, n in enumerate(res.cumulative_names)]]
    if res.gan:
        rows.append([(f"GAN {n}", m[index].numpy()) for n, m in res.gan.items()])
    return maps_grid_figure(x, rows, cfg=cfg, title=title)


def relevance_figure(relevance: Mapping[str, tuple[Sequence[str], Sequence[float]]], *,
                     title: str | None = None) -> go.Figure:
    """Bars of each explainer's per-depth relevance (shares summing to 1): explainer -> (its condition names,
    deepest first; their shares)."""
    fig = go.Figure()
    for name, (names, vals) in relevance.items():
        vals = [float(v) for v in vals]
        if len(vals) != len(names):
            raise ParameterError(f"explainer {name!r} has {len(vals)} relevances for {len(names)} conditions")
        fig.add_trace(go.Bar(x=list(names), y=vals, name=name, hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>"))
    fig.update_layout(title=title, barmode="group", xaxis_title="condition map dropped (cumulative, deepest first)",
                      yaxis_title="share of the change", height=320, margin=dict(l=50, r=10, t=50, b=40),
                      legend=dict(orientation="h", y=-0.35))
    return fig


def faithfulness_figure(fractions, curves: Mapping[str, Sequence[float]], *, kind: str = "deletion",
                        title: str | None = None, y_title: str = "vocal logit") -> go.Figure:
    """Mean deletion (or insertion) curves: the unit against the share of bins removed (revealed); curves whose
    name starts with "random" (the references) dotted."""
    fr = np.asarray(fractions, dtype=float)
    fig = go.Figure()
    for name, ys in curves.items():
        ys = np.asarray(ys, dtype=float)
        if ys.shape != fr.shape:
            raise ParameterError(f"curve {name!r} has {ys.shape[0]} points for {fr.shape[0]} fractions")
        fig.add_trace(go.Scatter(x=fr, y=ys, mode="lines", name=name,
                                 line=dict(dash="dot", color="black" if name == "random bins" else "grey")
                                 if name.startswith("random") else None,
                                 hovertemplate="%{x:.0%}: %{y:.3f}<extra>" + name + "</extra>"))
    verb = "removed" if kind == "deletion" else "revealed"
    fig.update_layout(title=title, xaxis_title=f"share of time-frequency bins {verb} (most relevant first)",
                      xaxis_tickformat=".0%", yaxis_title=y_title, height=340, margin=dict(l=50, r=10, t=50, b=40),
                      legend=dict(orientation="h", y=-0.3))
    return fig
