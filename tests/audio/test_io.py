import io
import os

import numpy as np
import pytest
import soundfile as sf

from xai_core.audio.io import load_audio, load_audio_bytes
from xai_core.errors import ParameterError


def _sine(sr=44100, seconds=1.0, freq=440.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _peak_freq(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)]


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_sine_resampled_to_mono(tmp_path, fmt):
    p = tmp_path / f"sine.{fmt}"
    sf.write(p, _sine(channels=2), 44100)
    x = load_audio(p, sample_rate=22050)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 22050) <= 2
    assert abs(_peak_freq(x, 22050) - 440.0) < 2.0
    assert 0.4 < np.abs(x).max() < 0.6


def test_offset_and_duration(tmp_path):
    p = tmp_path / "sine.wav"
    sf.write(p, _sine(sr=22050, seconds=2.0), 22050)
    x = load_audio(p, offset=0.5, duration=1.0)
    assert len(x) == 22050
    np.testing.assert_allclose(x, load_audio(p)[11025:33075], atol=1e-4)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ParameterError, match="nope.wav.*does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_garbage_and_truncated(tmp_path):
    g = tmp_path / "garbage.wav"
    g.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ParameterError, match="garbage.wav"):
        load_audio(g)
    good = tmp_path / "good.wav"
    sf.write(good, _sine(), 44100)
    t = tmp_path / "truncated.wav"
    t.write_bytes(good.read_bytes()[:30])
    with pytest.raises(ParameterError, match="truncated.wav"):
        load_audio(t)


def test_empty_silent_nan_long(tmp_path):
    e = tmp_path / "empty.wav"
    sf.write(e, np.zeros(0, np.float32), 22050)
    with pytest.raises(ParameterError, match="empty"):
        load_audio(e)
    s = tmp_path / "silent.wav"
    sf.write(s, np.zeros(22050, np.float32), 22050)
    with pytest.raises(ParameterError, match="silent"):
        load_audio(s)
    assert load_audio(s, allow_silent=True).shape == (22050,)
    n = tmp_path / "nan.wav"
    x = _sine(sr=22050)
    x[100] = np.nan
    sf.write(n, x, 22050, subtype="FLOAT")
    with pytest.raises(ParameterError, match="nan.wav.*non-finite"):
        load_audio(n)
    long = tmp_path / "long.wav"
    sf.write(long, _sine(sr=22050), 22050)
    with pytest.raises(ParameterError, match="long.wav.*max_seconds"):
        load_audio(long, max_seconds=0.5)


def test_bytes_same_as_file(tmp_path):
    p = tmp_path / "sine.flac"
    sf.write(p, _sine(), 44100)
    np.testing.assert_array_equal(load_audio_bytes(p.read_bytes(), name="sine.flac"), load_audio(p))
    with pytest.raises(ParameterError, match="junk.mp3"):
        load_audio_bytes(b"not audio at all" * 100, name="junk.mp3")
    with pytest.raises(ParameterError, match="empty"):
        load_audio_bytes(b"", name="x.wav")
    buf = io.BytesIO()
    sf.write(buf, np.zeros(2205, np.float32), 22050, format="WAV")
    with pytest.raises(ParameterError, match="silent"):
        load_audio_bytes(buf.getvalue(), name="quiet.wav")


def test_mp3_bytes(tmp_path):
    p = tmp_path / "sine.mp3"
    try:
        sf.write(p, _sine(), 44100, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        # the libsndfile bundled with soundfile's wheels (>= 1.1) writes MP3; CI must have it
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("libsndfile without MP3 support")
    x = load_audio_bytes(p.read_bytes(), name="sine.mp3")
    assert abs(_peak_freq(x, 22050) - 440.0) < 3.0
