"""Mel inversion on synthetic tones (librosa style): closeness, batching, silence, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xai_core.audio.config import MelConfig
from xai_core.audio.features import log_mel, mel_filterbank, stft_magnitude
from xai_core.audio.inversion import (
    griffin_lim,
    mel_spectral_convergence,
    mel_to_audio,
    mel_to_magnitude,
    natural_length,
    spectral_convergence,
)
from xai_core.errors import CancelledError, ParameterError

CFG = MelConfig()


def tone(freq: float, n_frames: int, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(natural_length(n_frames, CFG), dtype=torch.float64) / CFG.sample_rate
    return (amp * torch.sin(2 * torch.pi * freq * t)).float()  # (L,)


def test_natural_length_round_trips_frame_count():
    for n in (1, 7, 115):
        assert stft_magnitude(torch.zeros(natural_length(n, CFG)), CFG).shape[0] == n
    with pytest.raises(ParameterError, match="n_frames"):
        natural_length(0, CFG)


def test_sine_inverts_close_in_mel_domain():
    # Measured for this 40-frame 440 Hz sine: mel SC 0.52 with no Griffin-Lim iteration (random
    # phase), about 0.05-0.06 after 100 (classic and mel-consistent alike; 0.04-0.09 on the
    # bench signals).  0.1 leaves room for float/BLAS differences while a broken phase update,
    # wrong framing or wrong filterbank scaling all land above 0.3.
    lm = log_mel(tone(440.0, 40), CFG)  # (T, M)
    wave = mel_to_audio(lm, n_iter=100)  # (1, L)
    assert wave.shape == (1, natural_length(40, CFG))
    sc = float(mel_spectral_convergence(lm, wave[0], CFG))
    assert sc < 0.1
    untouched = float(mel_spectral_convergence(lm, mel_to_audio(lm, n_iter=0)[0], CFG))
    assert untouched > 0.3 > sc
    # The loudness is kept: a unit-sum inverse with a wrong scale would miss by the band width.
    assert 0.3 < float(wave.abs().max()) < 0.8


def test_batch_of_two_equals_two_singles():
    lms = torch.stack([log_mel(tone(440.0, 20), CFG), log_mel(tone(1234.0, 20, 0.1), CFG)])  # (2, T, M)
    batch = mel_to_audio(lms, n_iter=12)  # (2, L)
    for i in range(2):
        single = mel_to_audio(lms[i], n_iter=12)[0]
        torch.testing.assert_close(batch[i], single, atol=1e-5, rtol=1e-4)
    assert torch.isfinite(batch).all()


def test_deterministic_given_seed_and_seed_matters():
    lm = log_mel(tone(700.0, 12), CFG)
    a, b = mel_to_audio(lm, n_iter=5, seed=3), mel_to_audio(lm, n_iter=5, seed=3)
    c = mel_to_audio(lm, n_iter=5, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_silence_gives_near_silent_finite_audio():
    lm = torch.full((2, 10, CFG.n_mels), CFG.log_min)  # (B, T, M) all at the log floor
    wave = mel_to_audio(lm, n_iter=10)
    assert torch.isfinite(wave).all()
    assert float(wave.abs().max()) < 1e-5


def test_edges_have_no_clicks():
    # Non-centred framing used to amplify the outermost samples ~300x; the middle sets the scale.
    wave = mel_to_audio(log_mel(tone(440.0, 30), CFG), n_iter=30)[0]
    mid = float(wave[1500:-1500].abs().max())
    assert float(wave[:400].abs().max()) < 1.5 * mid
    assert float(wave[-400:].abs().max()) < 1.5 * mid


def test_length_crops_or_pads_and_numpy_input():
    lm = log_mel(tone(300.0, 8), CFG).numpy()  # numpy (T, M)
    nat = natural_length(8, CFG)
    short = mel_to_audio(lm, n_iter=3, length=nat - 100)
    long = mel_to_audio(lm, n_iter=3, length=nat + 100)
    assert short.shape == (1, nat - 100) and long.shape == (1, nat + 100)
    torch.testing.assert_close(long[0, : nat - 100], short[0])
    assert torch.all(long[0, nat:] == 0)


def test_float64_input_stays_float64():
    lm = log_mel(tone(500.0, 6), CFG).double()
    assert mel_to_audio(lm, n_iter=2).dtype == torch.float64


def test_nnls_inverse_is_nonnegative_and_beats_clipped_pinv():
    # A sparse spectrum (a chord) makes the clipped pseudo-inverse leave a visible residual.
    chord = tone(220.0, 10) + tone(277.2, 10) + tone(3300.0, 10, 0.2)
    mel = torch.exp(log_mel(chord, CFG))  # (T, M)
    fb = mel_filterbank(CFG)  # (M, K)

    def residual(mag):
        return float(torch.linalg.norm(mag @ fb.T - mel) / torch.linalg.norm(mel))

    pinv_only = mel_to_magnitude(mel, cfg=CFG, n_iter=0, log_input=False)
    solved = mel_to_magnitude(mel, cfg=CFG, log_input=False)
    assert solved.shape == (10, CFG.n_bins) and (solved >= 0).all()
    assert residual(solved) < 1e-3
    assert residual(solved) <= residual(pinv_only)
    # Unit-sum rows: a flat mel of height c comes back as a flat spectrum of height c in the
    # bands' range (away from the outer half-bands), not c times a band width.
    flat = mel_to_magnitude(torch.full((1, CFG.n_mels), 2.0), cfg=CFG, log_input=False)[0]
    inner = flat[10:300]  # about 215 Hz to 6.4 kHz
    torch.testing.assert_close(inner, torch.full_like(inner, 2.0), atol=0.05, rtol=0)


def test_spectral_convergence_is_zero_for_own_audio_and_positive_otherwise():
    wave = tone(440.0, 10)
    mag = stft_magnitude(wave, CFG)
    assert float(spectral_convergence(mag, wave, CFG)) < 1e-6
    assert float(mel_spectral_convergence(log_mel(wave, CFG), wave, CFG)) < 1e-6
    assert float(spectral_convergence(mag, tone(880.0, 10), CFG)) > 0.5
    # Per item over leading axes.
    both = torch.stack([wave, tone(880.0, 10)])  # (2, L)
    assert spectral_convergence(mag.expand(2, -1, -1), both, CFG).shape == (2,)


def test_griffin_lim_on_consistent_magnitude_converges():
    wave = tone(523.25, 30) + tone(1046.5, 30, 0.2)
    mag = stft_magnitude(wave, CFG)  # (T, K)
    rec = griffin_lim(mag, n_iter=60)  # (L,)
    assert rec.shape == wave.shape
    assert float(spectral_convergence(mag, rec, CFG)) < 0.1


def test_progress_is_called_and_can_cancel():
    lm = log_mel(tone(440.0, 6), CFG)
    calls = []
    mel_to_audio(lm, n_iter=4, progress=lambda d, t, info: calls.append((d, t, info["stage"])))
    assert calls == [(i, 4, "griffin_lim") for i in range(1, 5)]

    def cancel(done, total, info):
        if done == 2:
            raise CancelledError("stop")

    with pytest.raises(CancelledError):
        mel_to_audio(lm, n_iter=10, progress=cancel)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(5, 40), "n_mels"),
        (torch.zeros(2, 2, 5, 80), "shape"),
        (torch.full((5, 80), float("nan")), "NaN"),
    ],
)
def test_bad_inputs_raise_parameter_error(bad, match):
    with pytest.raises(ParameterError, match=match):
        mel_to_audio(bad, n_iter=1)


def test_bad_parameters_raise_parameter_error():
    lm = torch.zeros(3, 80)
    with pytest.raises(ParameterError, match="n_iter"):
        mel_to_audio(lm, n_iter=-1)
    with pytest.raises(ParameterError, match="momentum"):
        mel_to_audio(lm, n_iter=1, momentum=-0.5)
    with pytest.raises(ParameterError, match="length"):
        mel_to_audio(lm, n_iter=1, length=0)
    with pytest.raises(ParameterError, match="magnitude"):
        griffin_lim(-torch.ones(3, CFG.n_bins), n_iter=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    lm = torch.stack([log_mel(tone(440.0, 20), CFG), log_mel(tone(900.0, 20), CFG)])
    cpu = mel_to_audio(lm, n_iter=10)
    gpu = mel_to_audio(lm.cuda(), n_iter=10)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)


def test_numpy_wave_for_metrics():
    wave = np.asarray(tone(440.0, 5))
    mag = stft_magnitude(torch.as_tensor(wave), CFG)
    assert float(spectral_convergence(mag, torch.as_tensor(wave), CFG)) < 1e-6
