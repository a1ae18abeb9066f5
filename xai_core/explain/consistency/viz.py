"""Figures of the neuron-consistency method (no streamlit): the attack pair, consistency across depth,
success rate against epsilon, and a unit's top inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure

from xai_core.audio.config import MelConfig
from xai_core.errors import ParameterError
from xai_core.explain.consistency.config import log_to_db
from xai_core.viz import _draw_spectrogram, _set_mel_axis, colour_range, spectrogram_grid


def attack_pair_figure(x: np.ndarray, x_adv: np.ndarray, *, cfg: MelConfig = MelConfig(),
                       titles: Sequence[str] = ("original", "adversarial"), eps_db: float | None = None) -> Figure:
    """Original and adversarial log-mel on one colour scale, and their difference in dB.

    Parameters
    ----------
    x, x_adv : arrays ``(T, M)``, un-normalised natural-log mel
    eps_db : the attack's bound: the difference panel's colour range (default: the largest change)
    """
    x, x_adv = np.asarray(x, dtype=np.float32), np.asarray(x_adv, dtype=np.float32)
    if x.shape != x_adv.shape or x.ndim != 2:
        raise ParameterError(f"need two log-mel arrays (T, M) of one shape, got {x.shape} and {x_adv.shape}")
    diff = (x_adv - x) * log_to_db(1.0)  # (T, M) dB
    lim = float(eps_db) if eps_db else max(float(np.abs(diff).max()), 1e-6)
    vmin, vmax = colour_range(x, x_adv)
    fig = Figure(figsize=(13, 3.1), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    im = None
    for ax, data, title in zip(axes[:2], (x, x_adv), titles, strict=True):
        im = _draw_spectrogram(ax, data, cfg, vmin, vmax)
        ax.set_title(title, fontsize=10)
    axes[1].set_ylabel("")
    fig.colorbar(im, ax=list(axes[:2]), label="log mel magnitude", pad=0.01)
    t = np.arange(x.shape[0] + 1) / cfg.frame_rate
    f = np.arange(x.shape[1] + 1)
    im2 = axes[2].pcolormesh(t, f, diff.T, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat", rasterized=True)
    _set_mel_axis(axes[2], cfg)
    axes[2].set_ylabel("")
    axes[2].set_xlabel("time (s)")
    axes[2].set_title(f"change (dB), max |change| {float(np.abs(diff).max()):.2f} dB", fontsize=10)
    fig.colorbar(im2, ax=axes[2], label="dB", pad=0.01)
    return fig


def consistency_depth_figure(results: Mapping[str, object], *, title: str | None = None) -> go.Figure:
    """Per layer (shallow to deep), the distribution of consistency over units: a box per model and
    input kind (real / adversarial), the chance level of k random excerpts as a dotted line.

    ``results``: name -> :class:`~xai_core.explain.consistency.ConsistencyResult`."""
    fig = go.Figure()
    chance = None
    for name, r in results.items():
        for kind, scores in (("real", r.real), ("adversarial", r.adv)):
            if scores is None:
                continue
            xs, ys = [], []
            for layer in r.layers:
                v = scores[layer][~r.dead(layer)].tolist()
                xs += [layer] * len(v)
                ys += v
            fig.add_trace(go.Box(x=xs, y=ys, name=f"{name} · {kind}", boxmean=True,
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + f"{name} · {kind}" + "</extra>"))
        if r.agreement is not None:  # mean agreement of the real and adversarial top inputs' concepts
            ys = [float(r.agreement[layer][~r.dead(layer)].mean()) for layer in r.layers]
            fig.add_trace(go.Scatter(x=list(r.layers), y=ys, mode="lines+markers", line_dash="dot",
                                     name=f"{name} · agreement real ↔ adv.",
                                     hovertemplate="%{x}: %{y:.3f}<extra>" + f"{name} · agreement" + "</extra>"))
        chance = r.chance
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dot", annotation_text=f"chance (k random excerpts) {chance:.2f}",
                      annotation_position="bottom right")
    fig.update_layout(title=title, boxmode="group", xaxis_title="layer (shallow → deep)",
                      yaxis_title="consistency p^T A p", yaxis_range=[0, 1.05], height=380,
                      margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def success_curve_figure(curves: Mapping[str, Sequence[Mapping]], *, title: str | None = None) -> go.Figure:
    """Attack success rate (share of decisions changed) against epsilon in dB, one line per model."""
    fig = go.Figure()
    for name, rows in curves.items():
        fig.add_trace(go.Scatter(x=[r["eps_db"] for r in rows], y=[r["success_rate"] for r in rows],
                                 mode="lines+markers", name=name,
                                 hovertemplate="%{x:g} dB: %{y:.1%}<extra>" + name + "</extra>"))
    fig.update_layout(title=title, xaxis_title="epsilon (dB per time-frequency bin)", xaxis_type="log",
                      yaxis_title="decisions changed", yaxis_tickformat=".0%", yaxis_range=[0, 1.02], height=340,
                      margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def unit_grid_figure(real: np.ndarray, adv: np.ndarray, real_titles: Sequence[str], adv_titles: Sequence[str], *,
                     cfg: MelConfig = MelConfig(), ncols: int = 4) -> tuple[Figure, Figure]:
    """A unit's top real and top adversarial inputs as two grids on one shared colour scale."""
    vmin, vmax = colour_range(real, adv)
    kw = {"cfg": cfg, "ncols": ncols, "vmin": vmin, "vmax": vmax, "panel_size": (2.9, 2.2)}
    return spectrogram_grid(real, list(real_titles), **kw), spectrogram_grid(adv, list(adv_titles), **kw)
