"""Singing-voice detection on whole recordings with a classifier bundle.

The classifier sees 115-frame excerpts; :func:`detect_singing` slides that window over a file
(:func:`xai_core.train.evaluate.frame_logits`), median-filters the frame probabilities over
``median_frames`` frames and thresholds them, as the paper's evaluation does, and returns the
result as a :class:`Detection` with its vocal segments in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xai_core.audio.features import log_mel
from xai_core.checkpoints import Bundle
from xai_core.errors import ParameterError
from xai_core.train.evaluate import MEDIAN_FRAMES, frame_logits, median_smooth

__all__ = ["Detection", "detect_singing", "bundle_threshold"]

MAX_MEDIAN_FRAMES = 10_000  # 143 s at 70 frames/s (= xai_core.schema.LIMITS["median_frames"])


@dataclass(frozen=True)
class Detection:
    """Frame-wise singing detection of one recording.

    Attributes
    ----------
    times : np.ndarray, shape ``(T,)``, centre time of each frame in seconds
    prob : np.ndarray, shape ``(T,)``, p(vocal) of the window centred on each frame
    smoothed : np.ndarray, shape ``(T,)``, ``prob`` median-filtered over ``median_frames``
    threshold : decision threshold on ``smoothed``
    median_frames : median-filter length in frames (1 = none)
    hop_seconds : time between frames
    """

    times: np.ndarray
    prob: np.ndarray
    smoothed: np.ndarray
    threshold: float
    median_frames: int
    hop_seconds: float

    @property
    def vocal(self) -> np.ndarray:
        """``(T,)`` bool: the frames called singing."""
        return self.smoothed > self.threshold

    @property
    def vocal_fraction(self) -> float:
        return float(self.vocal.mean()) if self.vocal.size else 0.0

    @property
    def duration(self) -> float:
        return float(self.times.size * self.hop_seconds)

    def segments(self, *, min_seconds: float = 0.0) -> list[tuple[float, float]]:
        """``(start, end)`` seconds of each run of vocal frames lasting at least ``min_seconds``."""
        v = self.vocal.astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], v, [0]])))  # run starts and ends, alternating
        half = self.hop_seconds / 2
        out = []
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            start = 0.0 if a == 0 else max(0.0, float(self.times[a]) - half)  # a run from the first frame starts the file
            end = float(self.times[b - 1]) + half
            if end - start >= min_seconds:
                out.append((round(start, 3), round(end, 3)))
        return out


def bundle_threshold(classifier: Bundle) -> float | None:
    """The decision threshold tuned on validation when the classifier was trained, if recorded."""
    thr = (classifier.metrics or {}).get("eval", {}).get("threshold")
    return float(thr) if thr is not None and np.isfinite(thr) else None


def detect_singing(classifier: Bundle, wave: np.ndarray, *, threshold: float | None = None,
                   median_frames: int | None = None, device: str | torch.device | None = None) -> Detection:
    """Detect singing in a waveform.

    Parameters
    ----------
    classifier : a classifier bundle with a normaliser
    wave : np.ndarray, shape ``(n_samples,)``, mono at ``classifier.mel.sample_rate``
    threshold : on the median-filtered p(vocal); default: the bundle's tuned threshold, else 0.5
    median_frames : median-filter length; default: the bundle's (56 in the paper's evaluation)
    device : where to compute (default: the model's device)

    Returns
    -------
    Detection
    """
    if classifier.kind != "classifier":
        raise ParameterError(f"detect_singing needs a classifier bundle, got a {classifier.kind!r} bundle")
    if classifier.normaliser is None:
        raise ParameterError("the classifier bundle has no normaliser: cannot classify audio")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ParameterError(f"wave must be mono (n_samples,), got shape {wave.shape}")
    if threshold is None:
        threshold = bundle_threshold(classifier)
        threshold = 0.5 if threshold is None else threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"threshold={threshold} must be a probability in [0, 1]")
    if median_frames is None:
        median_frames = int((classifier.metrics or {}).get("eval", {}).get("median_frames", MEDIAN_FRAMES))
    if isinstance(median_frames, bool) or not isinstance(median_frames, (int, np.integer)) \
            or not 1 <= median_frames <= MAX_MEDIAN_FRAMES:
        raise ParameterError(f"median_frames={median_frames!r} must be an integer in [1, {MAX_MEDIAN_FRAMES}] "
                             "(the paper: 56)")
    mel = classifier.mel
    need = mel.n_fft + (mel.excerpt_frames - 1) * mel.hop_length  # samples of one excerpt
    if wave.size < need:
        raise ParameterError(f"the audio is {wave.size / mel.sample_rate:.2f} s long ({wave.size} samples), shorter "
                             f"than one excerpt of the classifier ({need / mel.sample_rate:.2f} s): nothing to detect "
                             "without classifying padding")
    feats = log_mel(torch.as_tensor(wave), mel)  # (T, M)
    prob = torch.sigmoid(frame_logits(classifier.model, feats, classifier.normaliser, device=device)).numpy()  # (T,)
    return Detection(times=np.asarray(mel.frame_times(feats.shape[0])), prob=prob,
                     smoothed=median_smooth(prob, median_frames), threshold=float(threshold),
                     median_frames=int(median_frames), hop_seconds=mel.hop_length / mel.sample_rate)
