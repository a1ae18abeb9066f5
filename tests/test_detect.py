"""Singing detection on whole recordings (xai_core.detect) and its CLI, ``python -m xai_core classify``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from xai_core.cli import main
from xai_core.detect import Detection, bundle_threshold, detect_singing
from xai_core.errors import ParameterError

HOP = 315 / 22050


def _detection(smoothed, threshold=0.5):
    smoothed = np.asarray(smoothed, dtype=float)
    t = np.arange(smoothed.size) * HOP
    return Detection(times=t, prob=smoothed, smoothed=smoothed, threshold=threshold, median_frames=1,
                     hop_seconds=HOP)


def test_segments_and_fraction_by_hand():
    d = _detection([0.9, 0.9, 0.1, 0.1, 0.6, 0.7, 0.8, 0.2])
    assert d.vocal.tolist() == [True, True, False, False, True, True, True, False]
    assert d.vocal_fraction == pytest.approx(5 / 8)
    # runs [0, 2) and [4, 7): from half a hop before the first frame's centre to half a hop after the last
    assert d.segments() == [(0.0, round(1.5 * HOP, 3)), (round(3.5 * HOP, 3), round(6.5 * HOP, 3))]
    assert d.segments(min_seconds=2.5 * HOP) == [(round(3.5 * HOP, 3), round(6.5 * HOP, 3))]
    assert _detection([0.2, 0.3]).segments() == [] and _detection([]).vocal_fraction == 0.0
    assert _detection([0.7, 0.7], threshold=0.8).segments() == []


def test_detect_singing_on_a_tiny_model(tiny_bundles):
    clf = tiny_bundles[0]
    wave = 0.1 * np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)
    d = detect_singing(clf, wave, median_frames=5, threshold=0.3)
    n = d.times.size
    assert n == d.prob.size == d.smoothed.size and abs(n - 3 * 70) <= 4  # 70 frames per second
    assert d.threshold == 0.3 and d.median_frames == 5 and np.all((d.prob >= 0) & (d.prob <= 1))
    assert d.duration == pytest.approx(3.0, abs=0.05)
    assert bundle_threshold(clf) is None  # untrained: nothing tuned, so 0.5 and the paper's filter
    d0 = detect_singing(clf, wave)
    assert d0.threshold == 0.5 and d0.median_frames == 56
    for bad in ({"threshold": 1.5}, {"median_frames": 0}):
        with pytest.raises(ParameterError, match=str(next(iter(bad.values())))):
            detect_singing(clf, wave, **bad)
    with pytest.raises(ParameterError, match="mono"):
        detect_singing(clf, np.zeros((2, 100), np.float32))
    with pytest.raises(ParameterError, match="classifier bundle"):
        detect_singing(tiny_bundles[1], wave)
    with pytest.raises(ParameterError, match="normaliser"):
        detect_singing(dataclasses.replace(clf, normaliser=None), wave)


def test_classify_cli_goes_on_past_a_bad_file(tiny_demo_dir, tmp_path, capsys):
    good = tmp_path / "tone.wav"
    t = np.arange(22050 * 2) / 22050
    sf.write(good, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    out = tmp_path / "r.json"
    rc = main(["classify", str(bad), str(good), "--demo-dir", str(tiny_demo_dir), "--threshold", "0.0",
               "--median-frames", "3", "--segments", "--json", str(out), "--device", "cpu"])
    assert rc == 1  # one file failed (a bad file: exit status 1) ...
    cap = capsys.readouterr()
    assert "broken.wav" in cap.err
    rows = json.loads(out.read_text())  # ... and the other was still classified
    assert [r["file"] for r in rows] == [str(good)]
    assert rows[0]["vocal_fraction"] == 1.0 and rows[0]["segments"][0][0] == 0.0  # threshold 0: all vocal
    assert "tone.wav" in cap.out and " - " in cap.out
    assert main(["classify", str(good), "--demo-dir", str(tiny_demo_dir), "--duration", "1.8", "--device", "cpu"]) == 0
    capsys.readouterr()
    # shorter than one excerpt (1.68 s): refused with the lengths, not classified as padding ("0.0 s, nan")
    assert main(["classify", str(good), "--demo-dir", str(tiny_demo_dir), "--duration", "1", "--device", "cpu"]) != 0
    assert "shorter than one excerpt of the classifier (1.68 s)" in capsys.readouterr().err
