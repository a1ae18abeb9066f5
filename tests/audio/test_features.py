import math

import numpy as np
import pytest
import torch

from xai_core.audio import MelConfig, Normaliser, log_mel, mel_filterbank, slice_excerpts
from xai_core.errors import ParameterError


def test_melconfig_defaults_are_the_papers():
    c = MelConfig()
    assert (c.sample_rate, c.n_fft, c.hop_length, c.n_mels) == (22050, 1024, 315, 80)
    assert (c.fmin, c.fmax, c.log_floor, c.excerpt_frames) == (27.5, 8000.0, 1e-7, 115)
    assert c.frame_rate == pytest.approx(70.0)
    assert c.excerpt_seconds == pytest.approx(115 / 70)


@pytest.mark.parametrize("field,value", [("hop_length", 0), ("fmax", 12000.0), ("fmin", -1.0),
                                         ("log_floor", 0.0), ("n_mels", 0)])
def test_melconfig_rejects_impossible_values(field, value):
    with pytest.raises(ParameterError, match=field):
        MelConfig(**{field: value})


def test_melconfig_dict_round_trip_and_unknown_field():
    c = MelConfig(n_mels=40)
    assert MelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ParameterError, match="bogus"):
        MelConfig.from_dict({**c.to_dict(), "bogus": 1})


def test_filterbank_rows_sum_to_one_and_cover_range():
    c = MelConfig()
    fb = mel_filterbank(c, dtype=torch.float64)
    assert fb.shape == (80, 513)
    assert torch.allclose(fb.sum(1), torch.ones(80, dtype=torch.float64), atol=1e-12)
    assert (fb >= 0).all()
    freqs = np.fft.rfftfreq(c.n_fft, 1 / c.sample_rate)
    support = freqs[(fb > 0).any(0).numpy()]
    assert support.min() >= c.fmin - 1 and support.max() <= c.fmax + 1
    # centres increase monotonically with band index
    centres = (fb * torch.as_tensor(freqs)).sum(1)
    assert (centres[1:] > centres[:-1]).all()


@pytest.mark.parametrize("freq", [220.0, 440.0, 1000.0, 3000.0])
def test_sine_log_mel_peaks_in_the_right_band(freq):
    c = MelConfig()
    t = np.arange(c.sample_rate) / c.sample_rate
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    m = log_mel(x, c)  # (T, 80)
    assert m.shape == (1 + (c.sample_rate - c.n_fft) // c.hop_length, 80)
    band = int(m.mean(0).argmax())
    fb = mel_filterbank(c, dtype=torch.float64)
    freqs = torch.as_tensor(np.fft.rfftfreq(c.n_fft, 1 / c.sample_rate))
    centres = (fb * freqs).sum(1)
    assert abs(float(centres[band]) - freq) <= 0.12 * freq + 25


def test_log_mel_floor_on_silence_and_batching():
    c = MelConfig()
    z = torch.zeros(2, 4096)
    m = log_mel(z, c)
    assert m.shape == (2, 1 + (4096 - 1024) // 315, 80)
    assert torch.allclose(m, torch.full_like(m, math.log(1e-7)))
    x = torch.randn(3, 5000)
    assert torch.allclose(log_mel(x, c)[1], log_mel(x[1], c), atol=1e-5)


def test_normaliser_fit_apply_invert():
    x = torch.randn(500, 80) * torch.linspace(0.5, 3, 80) + torch.linspace(-8, 2, 80)
    n = Normaliser.fit(x)
    y = n.apply(x)
    assert torch.allclose(y.mean(0), torch.zeros(80), atol=1e-4)
    assert torch.allclose(y.std(0), torch.ones(80), atol=1e-3)
    assert torch.allclose(n.invert(y), x, atol=1e-4)
    again = Normaliser.from_tensors(n.to_tensors())
    assert torch.equal(again.mean, n.mean) and torch.equal(again.std, n.std)


def test_normaliser_rejects_bad_stats():
    with pytest.raises(ParameterError):
        Normaliser(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ParameterError):
        Normaliser(torch.tensor([0.0, float("nan")]), torch.ones(2))
    with pytest.raises(ParameterError, match="at least 2"):
        Normaliser.fit(torch.zeros(1, 80))


def test_slice_excerpts_labels_are_centre_frames():
    feats = torch.arange(200 * 2, dtype=torch.float32).view(200, 2)
    labels = (torch.arange(200) >= 100).float()
    ex, lab = slice_excerpts(feats, excerpt_frames=115, hop=5, labels=labels)
    assert ex.shape == (18, 115, 2)
    assert torch.equal(ex[3, 0], feats[15])
    assert torch.equal(lab, labels[torch.arange(18) * 5 + 57])
    padded, plab = slice_excerpts(feats, excerpt_frames=115, labels=labels, pad=True)
    assert padded.shape == (200, 115, 2) and torch.equal(plab, labels)
    assert torch.equal(padded[10, 57], feats[10])
    short, _ = slice_excerpts(feats[:50], excerpt_frames=115)
    assert short.shape == (0, 115, 2)
