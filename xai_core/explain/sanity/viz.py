"""Figures of the randomisation checks (no streamlit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go


def sanity_figure(stages: Sequence[str], correlation: Mapping[str, Sequence[float]], *, fail_above: float,
                  title: str | None = None, y_title: str = "Spearman ρ with the trained maps") -> go.Figure:
    """Mean rank correlation with the trained model's explanation as more layers are randomised (from the top);
    also used by the AM randomisation check."""
    fig = go.Figure()
    labels = [s.split("..")[-1] for s in stages]
    for name, ys in correlation.items():
        fig.add_trace(go.Scatter(x=labels, y=[float(v) for v in ys], mode="lines+markers", name=name,
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>"))
    fig.add_hline(y=fail_above, line_dash="dot", annotation_text="fails above", annotation_position="top left")
    fig.update_layout(title=title, xaxis_title="randomised down to (cascading from the logit)",
                      yaxis_title=y_title, yaxis_range=[-0.5, 1.05], height=360,
                      margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.3))
    return fig
