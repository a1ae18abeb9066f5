"""Figures of the counterfactual method (no streamlit): the excerpts with their differences, the trajectory, the
spread."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure

from xai_core.audio.config import MelConfig
from xai_core.explain.counterfactual.config import DIRECTION_TITLES
from xai_core.viz import LOG_MEL_LABEL, _draw_spectrogram, colour_range

DIFF_LABEL = "difference (natural log units)"


def _diff(ax, d: np.ndarray, cfg: MelConfig, lim: float):
    im = _draw_spectrogram(ax, d, cfg, -lim, lim)
    im.set_cmap("RdBu_r")
    return im


def panels(res) -> list[tuple[str, np.ndarray, float | None]]:
    """``(title, log-mel (T, M), p(vocal) or None)`` of the original, the reconstruction and each kept example."""
    out = [("original", res.original.numpy(), res.prob_original),
           ("GAN reconstruction", res.reconstruction.numpy(), res.prob_reconstruction)]
    for i, d in enumerate(res.directions):
        out.append((DIRECTION_TITLES[d], res.logmel_best[i].numpy(), float(res.prob_best[i])))
    return out


def counterfactual_figure(res, *, cfg: MelConfig = MelConfig(), title: str | None = None,
                          step: int | None = None) -> Figure:
    """Top row: original, reconstruction and the kept examples on one colour scale, p(vocal) in each title.
    Bottom row, under each: its difference from the **reconstruction** (what had to change; under the original:
    what the GAN could not represent), on one symmetric red-blue scale.

    ``step``: show the trajectory's iterate at that AM step (an index into ``res.trace_steps``) instead of the
    kept examples.
    """
    items = panels(res)
    if step is not None:
        k = int(step)
        s = int(res.trace_steps[k])
        items = items[:2] + [(f"{DIRECTION_TITLES[d]}, step {s}", res.trace_logmel[i, k].numpy(),
                              float(res.trace_prob[i, k])) for i, d in enumerate(res.directions)]
    rec = res.reconstruction.numpy()
    xs = [x for _, x, _ in items]
    vmin, vmax = colour_range(*xs)
    diffs = [x - rec for x in xs]
    diffs[1] = None  # the reconstruction against itself: nothing
    lim = max(float(np.percentile(np.abs(d), 99.5)) for d in diffs if d is not None) or 1.0
    n = len(items)
    fig = Figure(figsize=(3.0 * n + 1.4, 5.0 + (0.3 if title else 0)), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, sharey=True)
    im = imd = None
    for c, (name, x, p) in enumerate(items):
        im = _draw_spectrogram(axes[0, c], x, cfg, vmin, vmax)
        axes[0, c].set_title(f"{name}" + (f"\np(vocal) {p:.2f}" if p is not None else ""), fontsize=9)
        axes[0, c].set_xlabel("")
        if diffs[c] is None:
            axes[1, c].set_visible(False)
            continue
        imd = _diff(axes[1, c], diffs[c], cfg, lim)
        axes[1, c].set_title(("original − reconstruction\n(what the GAN misses)" if c == 0
                              else f"{name} − reconstruction"), fontsize=9)
        if c:
            axes[0, c].set_ylabel("")
            axes[1, c].set_ylabel("")
    fig.colorbar(im, ax=list(axes[0]), label=LOG_MEL_LABEL, shrink=0.9)
    if imd is not None:
        fig.colorbar(imd, ax=[a for a in axes[1] if a.get_visible()], label=DIFF_LABEL, shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def trajectory_figure(res, *, step: int | None = None, title: str | None = None) -> go.Figure:
    """p(vocal) along the AM trajectory of each direction, with the original's and the reconstruction's as lines;
    ``step`` (an index into ``res.trace_steps``) marked."""
    steps = res.trace_steps.numpy()
    prob = res.trace_prob.numpy()  # (D, K)
    colours = {"max": "#d62728", "min": "#1f77b4"}
    fig = go.Figure()
    for i, d in enumerate(res.directions):
        fig.add_trace(go.Scatter(x=steps, y=prob[i], mode="lines+markers", name=DIRECTION_TITLES[d],
                                 line=dict(color=colours[d]), marker=dict(size=4)))
    fig.add_hline(y=res.prob_original, line_dash="dot", line_color="black", annotation_text="original",
                  annotation_position="top left", annotation_font_size=10)
    fig.add_hline(y=res.prob_reconstruction, line_dash="dash", line_color="grey",
                  annotation_text="reconstruction", annotation_position="bottom left", annotation_font_size=10)
    if step is not None:
        fig.add_vline(x=int(steps[int(step)]), line_color="black", line_width=1)
    fig.update_layout(title=title, xaxis_title="AM step from z_inv", yaxis_title="p(vocal)",
                      yaxis=dict(range=[-0.02, 1.02]), hovermode="x unified", height=320,
                      margin=dict(t=40 if title else 20))
    return fig


def spread_figure(res, *, title: str | None = None) -> go.Figure | None:
    """Histogram of the real-vs-real spread with the threshold and this excerpt's reconstruction error; None
    without a spread."""
    if res.spread_nn is None or res.spread is None:
        return None
    fig = go.Figure(go.Histogram(x=res.spread_nn.numpy(), nbinsx=40, name="real vs nearest real of another clip",
                                 marker_color="seagreen", opacity=0.7))
    fig.add_vline(x=res.threshold, line_dash="dot", line_color="black",
                  annotation_text=f"threshold ({res.spread['quantile']:.0%} quantile)", annotation_font_size=10)
    fig.add_vline(x=res.rec_mse, line_color="firebrick" if not res.reconstructs else "royalblue", line_width=2,
                  annotation_text="this reconstruction", annotation_position="top right", annotation_font_size=10)
    fig.update_layout(title=title, xaxis_title="MSE (normalised units)", yaxis_title="reference excerpts",
                      height=280, margin=dict(t=40 if title else 20), showlegend=False)
    return fig
