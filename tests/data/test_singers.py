import os

import numpy as np
import pytest

from xai_core.data.singers import (
    LEAD_PROGRAMS,
    PAD_PROGRAMS,
    AdditiveInstrument,
    ChoirSinger,
    FluidInstrument,
    FormantSinger,
    Note,
    Phrase,
    available_singers,
    find_soundfonts,
    midi_to_hz,
    trim_silence,
    write_midi,
)
from xai_core.errors import ParameterError

SR = 22050


def _f0_autocorr(x, sr, fmin=60.0, fmax=1200.0):
    x = x - x.mean()
    ac = np.correlate(x, x, mode="full")[len(x) - 1:]
    lo, hi = int(sr / fmax), int(sr / fmin)
    lag = lo + int(np.argmax(ac[lo:hi]))
    # parabolic interpolation of the peak
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    return sr / (lag + 0.5 * (a - c) / (a - 2 * b + c))


@pytest.mark.parametrize("voice,pitch", [("bass", 48), ("tenor", 57), ("alto", 64), ("soprano", 72)])
def test_formant_singer_sings_the_requested_pitch(voice, pitch):
    singer = FormantSinger(voice=voice, vibrato_depth=0.0, jitter=0.0)
    y = singer.render(Phrase((Note(pitch, 0.6, "a"),)), sample_rate=SR, rng=np.random.default_rng(0))
    assert y.dtype == np.float32 and np.isfinite(y).all()
    mid = y[int(0.2 * SR): int(0.45 * SR)]
    f0 = _f0_autocorr(mid, SR)
    assert abs(1200 * np.log2(f0 / midi_to_hz(pitch))) < 25  # within a quarter semitone


def test_formant_singer_vibrato_and_determinism():
    ph = Phrase((Note(57, 1.5, "o", "s"),))
    a = FormantSinger(vibrato_depth=80).render(ph, rng=np.random.default_rng(1))
    b = FormantSinger(vibrato_depth=80).render(ph, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    # the consonant lengthens the phrase at its start
    assert len(a) > 1.5 * SR
    # vibrato: f0 measured on 60 ms windows moves by tens of cents after the onset
    f0s = [_f0_autocorr(a[i: i + 1323], SR) for i in range(int(0.7 * SR), int(1.4 * SR), 441)]
    cents = 1200 * np.log2(np.array(f0s) / midi_to_hz(57))
    assert cents.max() - cents.min() > 40
    assert np.abs(np.median(cents)) < 30


def test_formant_singer_rejects_bad_voice():
    with pytest.raises(ParameterError, match="voice"):
        FormantSinger(voice="baritone")
    with pytest.raises(ParameterError, match="pitch"):
        Note(200, 1.0)


def test_trim_silence():
    x = np.zeros(SR, np.float32)
    x[5000:9000] = 0.5
    y = trim_silence(x, sample_rate=SR)
    assert abs(len(y) - 4000) <= 2 * int(0.005 * SR)


def test_write_midi_header(tmp_path):
    p = tmp_path / "m.mid"
    write_midi(p, [(0.0, 60, 0.5), (0.5, 64, 0.5)], program=52)
    data = p.read_bytes()
    assert data[:4] == b"MThd" and b"MTrk" in data and bytes([0xC0, 52]) in data
    assert data.count(bytes([0x90, 60])) == 1 and data.endswith(b"\xff\x2f\x00")


def test_choir_singer_pitch():
    import os
    import shutil

    if shutil.which("fluidsynth") is None or not find_soundfonts():
        # CI installs fluidsynth and a GM soundfont (.ci/run): there, their absence is a failure
        if os.environ.get("CI") == "true":
            pytest.fail("fluidsynth or a General MIDI soundfont is missing: see .ci/run")
        pytest.skip("fluidsynth or a GM soundfont is not installed")
    sf2 = find_soundfonts()[-1]  # the smallest (TimGM6mb) loads fastest when present
    [y] = ChoirSinger(sf2, 52).render_many([Phrase((Note(57, 1.0, "a"),))], sample_rate=SR)
    assert 0.9 * SR < len(y) < 1.2 * SR
    f0 = _f0_autocorr(y[int(0.4 * SR): int(0.7 * SR)], SR)
    assert abs(1200 * np.log2(f0 / 220.0)) < 50


def _need_fluidsynth():
    import os
    import shutil

    if shutil.which("fluidsynth") is None or not find_soundfonts():
        if os.environ.get("CI") == "true":
            pytest.fail("fluidsynth or a General MIDI soundfont is missing: see .ci/run")
        pytest.skip("fluidsynth or a GM soundfont is not installed")


def test_fluid_instruments_render_parts_with_chords():
    _need_fluidsynth()
    sf2 = find_soundfonts()[-1]
    melody = [(0.0, 69, 0.5), (0.5, 72, 0.5)]
    chord = [(0.0, 57, 1.2), (0.0, 60, 1.2), (0.0, 64, 1.2)]
    a, b = FluidInstrument(sf2, 40, "lead").render_many([melody, melody])
    [c] = FluidInstrument(sf2, 48, "pad").render_many([chord])
    for y, seconds in ((a, 1.0), (b, 1.0), (c, 1.2)):
        assert y.dtype == np.float32 and 0.8 * seconds * SR < len(y) <= (seconds + 0.07) * SR
        assert np.abs(y).max() > 1e-3
    f0 = _f0_autocorr(a[int(0.15 * SR): int(0.45 * SR)], SR)
    assert abs(1200 * np.log2(f0 / 440.0)) < 50
    with pytest.raises(ParameterError, match="not a lead program"):
        FluidInstrument(sf2, 52, "lead")  # the choir is a voice, never a negative
    with pytest.raises(ParameterError, match="role"):
        FluidInstrument(sf2, 40, "drum")


def test_voice_like_patches_are_not_negatives():
    voice_like = {52, 53, 54, 85, 91, 94}
    assert not voice_like & (set(LEAD_PROGRAMS) | set(PAD_PROGRAMS))


def test_additive_instrument_pitch_and_length():
    ev = [(0.0, 57, 0.8), (0.8, 64, 0.4)]
    y = AdditiveInstrument(vibrato_depth=0.0).render(ev, sample_rate=SR)
    assert len(y) == round(1.2 * SR) and abs(np.abs(y).max() - 0.5) < 1e-6
    f0 = _f0_autocorr(y[int(0.2 * SR): int(0.6 * SR)], SR)
    assert abs(1200 * np.log2(f0 / 220.0)) < 30
    chord = AdditiveInstrument().render([(0.0, 60, 1.0), (0.0, 64, 1.0)], sample_rate=SR)
    assert len(chord) == SR


def test_festival_without_a_voice_is_skipped_with_a_reason(tmp_path, monkeypatch):
    # Debian's festival without festvox-kallpc16k: text2wave runs, prints an error, writes nothing
    fake = tmp_path / "text2wave"
    fake.write_text("#!/bin/sh\necho 'SIOD ERROR: no voice' >&2\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    available, skipped = available_singers()
    assert "festival" not in available
    assert "festvox-kallpc16k" in skipped["festival"] and "text2wave failed" in skipped["festival"]
