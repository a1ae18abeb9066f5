"""WAV export: loudness kept across a set, silence, clipping, zip and atomic writes."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from xai_core.audio.export import common_gain, read_wav, wav_bytes, wav_bytes_set, write_wav, zip_bytes
from xai_core.errors import ParameterError


def sine(amp: float, n: int = 2205, freq: float = 440.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / 22050)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_set_keeps_loudness_ratio_in_decoded_wavs():
    loud, quiet = sine(0.05), sine(0.005, n=3000)
    a, b = wav_bytes_set([loud, torch.as_tensor(quiet)])
    xa, sr = read_wav(a)
    xb, _ = read_wav(b)
    assert sr == 22050 and xa.shape == (2205,) and xb.shape == (3000,)
    assert rms(xa) / rms(xb) == pytest.approx(10.0, rel=0.01)
    # The loudest clip peaks at -1 dBFS.
    assert float(np.abs(xa).max()) == pytest.approx(10 ** (-1 / 20), abs=2e-4)
    # Encoding each alone would have lost the ratio: this is what the set function is for.
    alone = read_wav(wav_bytes(quiet))[0]
    assert rms(alone) / rms(xb) > 5


def test_silence_stays_silent_and_finite():
    (b,) = wav_bytes_set([np.zeros(1000)])
    x, _ = read_wav(b)
    assert np.all(x == 0)
    loud, silent = wav_bytes_set([sine(0.3), np.zeros(500)])
    assert np.all(read_wav(silent)[0] == 0)
    assert np.isfinite(read_wav(loud)[0]).all()
    assert common_gain([np.zeros(3)]) == 1.0


def test_explicit_peak_and_clipping():
    x, _ = read_wav(wav_bytes(sine(0.5), peak=0.25, headroom_db=0.0))
    assert float(np.abs(x).max()) <= 1.0
    assert np.mean(np.abs(x) > 0.999) > 0.2  # clipped, not wrapped around
    x2, _ = read_wav(wav_bytes(sine(0.5), peak=1.0, headroom_db=0.0))
    assert float(np.abs(x2).max()) == pytest.approx(0.5, abs=2e-4)


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan, 0.1]), np.array([np.inf, 0.0])])
def test_non_finite_input_raises(bad):
    with pytest.raises(ParameterError, match="NaN or infinite"):
        wav_bytes(bad)
    with pytest.raises(ParameterError, match=r"waves\[1\]"):
        wav_bytes_set([sine(0.1), bad])


def test_bad_arguments_raise():
    with pytest.raises(ParameterError, match="mono"):
        wav_bytes(np.zeros((2, 100)))
    with pytest.raises(ParameterError, match="empty"):
        wav_bytes(np.zeros(0))
    with pytest.raises(ParameterError, match="headroom_db"):
        wav_bytes(sine(0.1), headroom_db=-3)
    with pytest.raises(ParameterError, match="sample_rate"):
        wav_bytes(sine(0.1), sample_rate=0)
    with pytest.raises(ParameterError, match="peak"):
        wav_bytes(sine(0.1), peak=float("nan"))


def test_sample_rate_and_format():
    b = wav_bytes(sine(0.1), sample_rate=16000)
    assert b[:4] == b"RIFF" and b[8:12] == b"WAVE"
    import soundfile as sf

    info = sf.info(io.BytesIO(b))
    assert info.samplerate == 16000 and info.subtype == "PCM_16" and info.channels == 1


def test_zip_bytes_round_trip_and_rejects_escaping_names():
    wavs = dict(zip(["max_01.wav", "min/ex_02.wav"], wav_bytes_set([sine(0.2), sine(0.1)]), strict=True))
    with zipfile.ZipFile(io.BytesIO(zip_bytes(wavs))) as zf:
        assert sorted(zf.namelist()) == ["max_01.wav", "min/ex_02.wav"]
        assert zf.read("max_01.wav") == wavs["max_01.wav"]
    with pytest.raises(ParameterError, match="relative"):
        zip_bytes({"../evil.wav": b""})


def test_write_wav_is_atomic_and_readable(tmp_path):
    out = write_wav(tmp_path / "sub" / "clip.wav", sine(0.2), sample_rate=22050)
    x, sr = read_wav(out)
    assert sr == 22050 and x.shape == (2205,)
    assert [p.name for p in out.parent.iterdir()] == ["clip.wav"]  # no temporary left over
    with pytest.raises(ParameterError):
        write_wav(tmp_path / "bad.wav", np.array([np.nan]))
    assert not (tmp_path / "bad.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
