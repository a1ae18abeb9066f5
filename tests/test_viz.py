"""Figure builders: types, axes/trace counts, Hz ticks, selected-cell marking."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

from xai_core import viz
from xai_core.audio.config import MelConfig
from xai_core.audio.features import mel_filterbank
from xai_core.errors import ParameterError

CFG = MelConfig()
RNG = np.random.default_rng(0)


def logmel(t: int = 30) -> np.ndarray:
    return RNG.normal(-5, 2, size=(t, CFG.n_mels))


def test_band_positions_match_filterbank_peaks():
    # The tick helper and the real filterbank must agree on where a frequency sits.
    fb = mel_filterbank(CFG).numpy()  # (M, K)
    bin_hz = np.arange(CFG.n_bins) * CFG.sample_rate / CFG.n_fft
    for band in (20, 40, 79):
        peak_hz = bin_hz[fb[band].argmax()]
        assert abs(viz.hz_to_band_position(peak_hz, CFG) - band) < 0.6
    centres = viz.mel_band_centres(CFG)
    assert centres.shape == (CFG.n_mels,)
    np.testing.assert_allclose(viz.hz_to_band_position(centres, CFG), np.arange(CFG.n_mels), atol=1e-9)


def test_spectrogram_figure_axes_ticks_and_time():
    fig = viz.spectrogram_figure(torch.as_tensor(logmel(70)), cfg=CFG, title="t")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # image + colourbar
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["100 Hz", "250 Hz", "500 Hz", "1 kHz", "2 kHz", "4 kHz", "8 kHz"]
    ticks = ax.get_yticks()
    assert np.all(np.diff(ticks) > 0)
    # 1 kHz at its mel-band position (not linear in Hz: it sits above the axis middle's lower third).
    assert ticks[3] == pytest.approx(viz.hz_to_band_position(1000.0, CFG))
    assert "Hz" in ax.get_ylabel() and "s" in ax.get_xlabel()
    x0, x1 = ax.get_xlim()
    assert x1 == pytest.approx(70 / CFG.frame_rate + CFG.n_fft / 2 / CFG.sample_rate, abs=0.02)
    assert "log" in fig.axes[1].get_ylabel()


def test_spectrogram_figure_into_given_axes_and_colour_range():
    fig = Figure()
    ax = fig.add_subplot()
    out = viz.spectrogram_figure(logmel(), cfg=CFG, ax=ax, vmin=-10, vmax=0)
    assert out is fig
    assert ax.images[0].get_clim() == (-10, 0)


def test_spectrogram_rejects_wrong_shape():
    with pytest.raises(ParameterError, match="time x mel"):
        viz.spectrogram_figure(np.zeros((80, 30))[:, :20], cfg=CFG)


def test_spectrogram_grid_axes_and_shared_scale():
    xs = [logmel(), logmel(), logmel() + 3]
    fig = viz.spectrogram_grid(xs, ["a", "b", "c"], cfg=CFG, ncols=2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 + 1  # unused fourth panel removed, one colourbar
    clims = {ax.images[0].get_clim() for ax in fig.axes[:3]}
    assert len(clims) == 1
    assert clims.pop() == (pytest.approx(min(x.min() for x in xs)), pytest.approx(max(x.max() for x in xs)))
    with pytest.raises(ParameterError, match="titles"):
        viz.spectrogram_grid(xs, ["a"], cfg=CFG)


def test_waveform_prob_figure_shades_label_runs():
    n = 40
    wave = np.sin(np.arange(CFG.n_fft + (n - 1) * CFG.hop_length) / 10)
    labels = np.zeros(n)
    labels[5:10] = 1
    labels[20:30] = 1
    fig = viz.waveform_prob_figure(wave, np.linspace(0, 1, n), cfg=CFG, labels=labels, threshold=0.7)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_w, ax_p = fig.axes
    assert len(ax_p.patches) == 2 and len(ax_w.patches) == 2  # two vocal runs on both axes
    assert ax_p.lines[1].get_ydata()[0] == pytest.approx(0.7)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        viz.waveform_prob_figure(wave, np.full(n, 1.5), cfg=CFG)
    with pytest.raises(ParameterError, match="labels"):
        viz.waveform_prob_figure(wave, np.zeros(n), cfg=CFG, labels=np.zeros(n - 1))


def test_mean_band_profile_figure_lines_and_hz_axis():
    fig = viz.mean_band_profile_figure({"real": RNG.normal(size=(4, 10, 80)), "gan": RNG.normal(size=(3, 10, 80))},
                                       cfg=CFG)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert all("Hz" in t.get_text() for t in ax.get_xticklabels())
    with pytest.raises(ParameterError):
        viz.mean_band_profile_figure({}, cfg=CFG)


def test_fid_heatmap_marks_selected_cell_and_carries_click_data():
    table = np.array([[1.65, 20.0, 300.0], [5.0, 0.5, np.nan], [1558.0, 90.0, 12.0]])
    lrs, lams = [0.1, 0.01, 0.001], [0.1, 0.01, 0.001]
    fig = viz.fid_heatmap(table, lrs, lams, title="max", selected=(1, 1))
    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data] == ["heatmap", "scatter"]
    heat, mark = fig.data
    assert list(heat.x) == ["0.1", "0.01", "0.001"] and list(heat.y) == ["0.1", "0.01", "0.001"]
    assert tuple(heat.customdata[2][0]) == (0.001, 0.1)  # (lr, lambda) of row 2, column 0
    assert heat.z[0][0] == pytest.approx(np.log10(1.65))  # log-scaled colour
    assert heat.hovertext[2][0] == repr(1558.0) and heat.hovertext[1][2] == "missing"
    assert (mark.x[0], mark.y[0]) == ("0.01", "0.01")
    assert fig.layout.xaxis.title.text.startswith("lambda")
    assert len(viz.fid_heatmap(table, lrs, lams).data) == 1  # no marker without a selection
    with pytest.raises(ParameterError, match="outside"):
        viz.fid_heatmap(table, lrs, lams, selected=(3, 0))
    with pytest.raises(ParameterError, match="shape"):
        viz.fid_heatmap(table[:2], lrs, lams)



def test_fid_heatmap_colourbar_ticks_inside_the_range():
    def ticks(table):
        bar = viz.fid_heatmap(np.array(table), [0.1, 0.01], [0.1]).data[0].colorbar
        return list(bar.tickvals), list(bar.ticktext)

    vals, text = ticks([[1.0], [1000.0]])  # three decades: whole decades
    assert text == ["1", "10", "100", "1e+03"]
    vals, text = ticks([[1.5], [30.0]])  # 1-2-5 steps
    assert text == ["2", "5", "10", "20"]
    vals, text = ticks([[1.26], [1.28]])  # inside one decade: still labelled, at the ends and middle
    assert len(vals) == 3 and text[0] == "1.26" and text[-1] == "1.28"
    vals, text = ticks([[1.2800], [1.2803]])  # closer still: more digits, never three equal labels
    assert text == ["1.28", "1.2801", "1.2803"]


def test_score_trace_figure_best_so_far():
    traces = np.array([[1.0, 3.0, 2.0, 5.0], [0.0, -1.0, 4.0, 1.0]])
    fig = viz.score_trace_figure(traces, title="scores")
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    assert list(fig.data[1].y) == [1.0, 3.0, 3.0, 5.0]
    assert fig.data[1].line.dash == "dash"
    fig_min = viz.score_trace_figure({"a": traces[0]}, maximise=False)
    assert len(fig_min.data) == 2 and list(fig_min.data[1].y) == [1.0, 1.0, 1.0, 1.0]



def test_score_trace_figure_steps_kept_markers_and_no_running_best():
    traces = np.array([[1.0, 3.0, 2.0, 5.0], [0.0, -1.0, 4.0, 1.0]])
    fig = viz.score_trace_figure(traces, steps=[0, 5, 10, 15], kept=[1, 9], running_best=False)
    assert [t.mode for t in fig.data] == ["lines", "lines", "markers"]
    assert list(fig.data[0].x) == [0, 5, 10, 15]
    mark = fig.data[2]
    assert list(mark.x) == [5, 15] and list(mark.y) == [3.0, 1.0]  # index 9 clipped to the last column
    with pytest.raises(ParameterError, match="kept"):
        viz.score_trace_figure(traces, kept=[1])
    with pytest.raises(ParameterError, match="steps"):
        viz.score_trace_figure(traces, steps=[0, 1])


def test_colour_range_percentiles_over_all_sets():
    a, b = np.arange(100.0), np.arange(100.0, 200.0)
    assert viz.colour_range(a, None, b, lo=0, hi=100) == (0.0, 199.0)
    lo, hi = viz.colour_range(a, b)
    assert lo == pytest.approx(np.percentile(np.r_[a, b], 1)) and hi == pytest.approx(np.percentile(np.r_[a, b], 99.9))
    with pytest.raises(ParameterError):
        viz.colour_range(a, lo=50, hi=10)


def test_spectrogram_grid_panel_size():
    fig = viz.spectrogram_grid([logmel(), logmel()], cfg=CFG, ncols=1, panel_size=(2.0, 1.5))
    assert tuple(fig.get_size_inches()) == pytest.approx((3.0, 3.0))


def test_waveform_prob_figure_long_wave_drawn_as_envelope():
    n = 40
    wave = np.zeros(CFG.n_fft + (n - 1) * CFG.hop_length)
    wave[1234] = 0.9  # one click: the envelope keeps it, plain decimation would drop it
    fig = viz.waveform_prob_figure(wave, np.full(n, 0.5), cfg=CFG, max_points=200)
    ax_w = fig.axes[0]
    assert not ax_w.lines and len(ax_w.collections) == 1
    assert ax_w.dataLim.ymax == pytest.approx(0.9)
    assert ax_w.dataLim.xmax < wave.size / CFG.sample_rate


def test_prob_histogram_figure_one_trace_per_set():
    fig = viz.prob_histogram_figure({"real": RNG.uniform(size=50), "gan": torch.rand(20)}, bins=10)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    assert all(t.type == "histogram" for t in fig.data)
    assert fig.data[0].histnorm in (None, "") and fig.layout.yaxis.title.text == "count"
    frac = viz.prob_histogram_figure({"real": RNG.uniform(size=50)}, fractions=True)
    assert frac.data[0].histnorm == "probability" and "fraction" in frac.layout.yaxis.title.text
    with pytest.raises(ParameterError):
        viz.prob_histogram_figure({"bad": np.array([1.2])})


def test_no_pyplot_state_is_touched():
    import sys

    before = "matplotlib.pyplot" in sys.modules
    viz.spectrogram_figure(logmel(), cfg=CFG)
    if not before:
        assert "matplotlib.pyplot" not in sys.modules
    else:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_share_heatmap_and_range_band():
    import plotly.graph_objects as go

    from xai_core.viz import add_range_band, share_heatmap

    fig = share_heatmap(np.array([[1.0, 0.5, np.nan], [0.0, 0.25, 1.0]]), [0.1, 0.01], [0.1, 0.01, 0.001],
                        selected=(1, 2))
    heat = fig.data[0]
    assert list(heat.text[0]) == ["100 %", "50 %", "unknown"] and heat.zmin == 0 and heat.zmax == 1
    assert list(heat.customdata[1][2]) == [0.01, 0.001] and fig.data[1].x == ("0.001",)
    with pytest.raises(ParameterError, match="shares"):
        share_heatmap(np.array([[1.5]]), [0.1], [0.1])
    with pytest.raises(ParameterError, match="shape"):
        share_heatmap(np.zeros((2, 2)), [0.1], [0.1, 0.2])
    fig = add_range_band(go.Figure(go.Scatter(y=[0, 60])), -5.0, 10.0, limit=12.0, limit_label="flagged beyond")
    shapes = [s.type for s in fig.layout.shapes]
    assert shapes == ["rect", "line"] and fig.layout.shapes[0].y0 == -5.0 and fig.layout.shapes[1].y0 == 12.0
    with pytest.raises(ParameterError, match="lo <= hi"):
        add_range_band(go.Figure(), 1.0, 0.0)
