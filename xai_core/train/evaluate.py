"""Evaluation of a singing-voice detector: frame predictions, median filter, threshold, metrics.

The protocol of Schlüter & Grill (METHODS sections 1-2): pad each file by half an excerpt on each
side, slide the 115-frame window one frame at a time to get one prediction per frame, smooth the
probabilities with a 56-frame median filter, pick the threshold that minimises the frame error on
the validation files, and report error, precision, recall, specificity, F1 and ROC-AUC on test.

Sliding the window frame by frame would cost one full forward pass per frame. Instead
:func:`frame_logits` runs the network *densely*: the two max-pools (stride 3 in time) become
stride-1 pools and every later layer is dilated in time by the product of the strides before it
("a trous"), so one pass over the padded file yields the logit of every window position, exactly
(up to float rounding) what the sliding window gives - at about 1/30 of the cost.

Layers, pure to impure: metric functions on arrays; frame predictions for one spectrogram;
reports over lists of tracks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from xai_core.audio.features import Normaliser
from xai_core.errors import CancelledError, ParameterError
from xai_core.models.svdnet import SVDNet

Progress = Callable[[int, int, dict], object]
MEDIAN_FRAMES = 56  # median-filter length of the original evaluation (frames, 0.8 s)


class LabelledTrack(Protocol):
    """What evaluation needs of a track: un-normalised log-mel and per-frame labels."""

    name: str
    features: torch.Tensor  # (T, M) natural-log mel
    labels: torch.Tensor  # (T,) 1 = singing


# --------------------------------------------------------------------------- metrics (numpy)

def median_smooth(prob: np.ndarray, size: int = MEDIAN_FRAMES) -> np.ndarray:
    """Median filter of length ``size`` frames along the last axis (edges: nearest value).

    ``size`` <= 1 returns the input unchanged. An even ``size`` (56, as in the original) uses
    SciPy's convention: the window spans ``size // 2`` frames before and ``size // 2 - 1`` after.
    """
    import scipy.ndimage

    prob = np.asarray(prob, dtype=np.float64)
    if size <= 1 or prob.size == 0:
        return prob
    return scipy.ndimage.median_filter(prob, size=size, mode="nearest", axes=(-1,))


def binary_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Frame classification metrics from binary predictions and targets (both shape ``(N,)``).

    Returns error, accuracy, precision, recall (sensitivity), specificity, F1 and the
    confusion counts tp, fp, tn, fn. Ratios with an empty denominator are reported as NaN.
    """
    pred = np.asarray(pred).astype(bool).ravel()
    target = np.asarray(target).astype(bool).ravel()
    if pred.shape != target.shape:
        raise ParameterError(f"predictions {pred.shape} and targets {target.shape} differ in shape")
    tp = int(np.sum(pred & target))
    fp = int(np.sum(pred & ~target))
    tn = int(np.sum(~pred & ~target))
    fn = int(np.sum(~pred & target))
    n = tp + fp + tn + fn

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else float("nan")

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "error": ratio(fp + fn, n), "accuracy": ratio(tp + tn, n), "precision": precision,
        "recall": recall, "specificity": ratio(tn, tn + fp),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn, "frames": n,
    }


def roc_auc(scores: np.ndarray, target: np.ndarray) -> float:
    """Area under the ROC curve, the Mann-Whitney statistic with ties counted one half.

    NaN when only one class is present.
    """
    import scipy.stats

    scores = np.asarray(scores, dtype=np.float64).ravel()
    target = np.asarray(target).astype(bool).ravel()
    n_pos, n_neg = int(target.sum()), int((~target).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(scores)  # average ranks for ties
    return float((ranks[target].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tune_threshold(prob: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Threshold on ``prob`` minimising the frame error; returns ``(threshold, error)``.

    Predictions are ``prob > threshold``. All distinct midpoints between sorted scores are
    tried (plus both extremes); among equal errors the one closest to 0.5 wins.
    """
    prob = np.asarray(prob, dtype=np.float64).ravel()
    target = np.asarray(target).astype(bool).ravel()
    if prob.size == 0:
        raise ParameterError("cannot tune a threshold on zero frames")
    order = np.argsort(prob, kind="stable")
    p, t = prob[order], target[order]
    # Threshold between p[k-1] and p[k]: frames 0..k-1 negative, k..N-1 positive.
    fn = np.concatenate([[0], np.cumsum(t)])  # positives at or below the cut
    fp = t.size - np.arange(t.size + 1) - (t.sum() - fn)  # negatives above the cut
    errors = (fn + fp) / t.size  # (N + 1,)
    distinct = np.concatenate([[True], p[1:] > p[:-1], [True]])  # valid cut positions
    cuts = np.concatenate([[p[0] - 1e-6], (p[:-1] + p[1:]) / 2, [p[-1]]])
    errors = np.where(distinct, errors, np.inf)
    best = np.flatnonzero(errors <= errors.min() + 1e-12)
    k = best[np.argmin(np.abs(cuts[best] - 0.5))]
    return float(cuts[k]), float(errors[k])


# --------------------------------------------------------------------------- dense prediction

def _dense_forward(model: SVDNet, x: torch.Tensor) -> torch.Tensor:
    """Logits of every 115-frame window of a normalised spectrogram.

    ``x`` (B, L, M) -> (B, L - n_frames + 1); the pools keep stride 3 across mel bands and
    become stride 1 in time, later layers dilated by 3 and 9 in time.
    """
    cfg = model.config
    leak = cfg.leak
    h = x[:, None]  # (B, 1, L, M)
    h = F.leaky_relu(model.conv1[0](h), leak)  # (B, c1, L-2, M-2)
    h = F.leaky_relu(model.conv2[0](h), leak)  # (B, c2, L-4, M-4)
    h = F.max_pool2d(h, kernel_size=3, stride=(1, 3))  # (B, c2, L-6, (M-4)//3)
    c3, c4 = model.conv3[0], model.conv4[0]
    h = F.leaky_relu(F.conv2d(h, c3.weight, c3.bias, dilation=(3, 1)), leak)  # (B, c3, L-12, .)
    h = F.leaky_relu(F.conv2d(h, c4.weight, c4.bias, dilation=(3, 1)), leak)  # (B, c4, L-18, .)
    h = F.max_pool2d(h, kernel_size=3, stride=(1, 3), dilation=(3, 1))  # (B, c4, L-24, f)
    t_feat, f_feat = cfg.feature_map_size
    fc1 = model.fc1[2]
    w1 = fc1.weight.view(fc1.out_features, cfg.conv_channels[3], t_feat, f_feat)  # Flatten order c, t, f
    h = F.leaky_relu(F.conv2d(h, w1, fc1.bias, dilation=(9, 1)), leak)  # (B, d1, L-114, 1)
    h = h[..., 0].transpose(1, 2)  # (B, T, d1)
    h = F.leaky_relu(model.fc2[1](h), leak)  # (B, T, d2)
    return model.logit[1](h)[..., 0]  # (B, T)


@torch.no_grad()
def frame_logits(model: SVDNet, features: torch.Tensor, normaliser: Normaliser, *,
                 chunk_frames: int = 4096, device: str | torch.device | None = None) -> torch.Tensor:
    """One logit per frame of a file, as if the 115-frame window were slid over it.

    Parameters
    ----------
    model : SVDNet (used in eval mode; its mode is restored afterwards)
    features : torch.Tensor, shape ``(T, M)``, un-normalised natural-log mel of one file
    normaliser : the classifier's per-band normaliser
    chunk_frames : output frames computed per pass (bounds memory)
    device : where to compute (default: the model's device)

    Returns
    -------
    torch.Tensor, shape ``(T,)`` on the CPU: logit of the window centred on each frame. The
    file is padded by ``n_frames // 2`` frames of its minimum value on each side, as
    :func:`xai_core.audio.features.slice_excerpts` with ``pad=True`` does.
    """
    if features.ndim != 2 or features.shape[1] != model.config.n_mels:
        raise ParameterError(f"features must be (T, {model.config.n_mels}), got {tuple(features.shape)}")
    if chunk_frames < 1:
        raise ParameterError(f"chunk_frames must be >= 1, got {chunk_frames}")
    n = model.config.n_frames
    t = features.shape[0]
    if t == 0:
        return torch.zeros(0)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    half = n // 2
    feats = features.to(dev, torch.float32)
    fill = feats.min()
    padded = torch.cat([fill.expand(half, feats.shape[1]), feats,
                        fill.expand(n - 1 - half, feats.shape[1])])  # (T + n - 1, M)
    padded = normaliser.apply(padded)  # (T + n - 1, M)
    was_training = model.training
    model.eval()
    try:
        out = []
        for s in range(0, t, chunk_frames):
            e = min(t, s + chunk_frames)
            out.append(_dense_forward(model, padded[None, s:e + n - 1])[0].float().cpu())  # (e - s,)
    finally:
        model.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------- reports

@dataclass
class FileResult:
    """Per-file evaluation row."""

    name: str
    frames: int
    vocal_fraction: float  # fraction of frames labelled singing
    error: float
    precision: float
    recall: float
    specificity: float
    f1: float


@dataclass
class EvalReport:
    """Test-set evaluation of a classifier (all numbers after median filtering unless named raw)."""

    threshold: float  # tuned on validation, applied to median-filtered probabilities
    valid_error: float  # validation error at that threshold
    test: dict[str, float]  # binary_metrics + roc_auc on all test frames
    test_raw: dict[str, float]  # the same without median filtering, threshold 0.5
    per_file: list[FileResult] = field(default_factory=list)
    median_frames: int = MEDIAN_FRAMES

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_file"] = [asdict(r) for r in self.per_file]
        return d

    def table(self) -> str:
        """Plain-text per-file table plus the totals."""
        head = f"{'file':<40} {'frames':>7} {'vocal':>6} {'error':>7} {'prec':>6} {'recall':>6} {'spec':>6} {'F1':>6}"
        lines = [head, "-" * len(head)]
        fmt = "{:<40} {:>7d} {:>6.1%} {:>7.2%} {:>6.3f} {:>6.3f} {:>6.3f} {:>6.3f}"
        for r in self.per_file:
            lines.append(fmt.format(r.name[-40:], r.frames, r.vocal_fraction, r.error, r.precision,
                                    r.recall, r.specificity, r.f1))
        t = self.test
        lines.append("-" * len(head))
        lines.append(fmt.format("ALL (median-filtered)", int(t["frames"]), (t["tp"] + t["fn"]) / max(1, t["frames"]),
                                t["error"], t["precision"], t["recall"], t["specificity"], t["f1"]))
        source = "given" if np.isnan(self.valid_error) else f"valid error {self.valid_error:.2%}"
        lines.append(f"ROC-AUC {t['roc_auc']:.4f}   threshold {self.threshold:.3f} ({source})   "
                     f"raw error at 0.5: {self.test_raw['error']:.2%}")
        return "\n".join(lines)


def predict_tracks(model: SVDNet, normaliser: Normaliser, tracks: Sequence[LabelledTrack], *,
                   device=None, progress: Progress | None = None) -> list[np.ndarray]:
    """Per-frame p(vocal) of each track, list of arrays ``(T_i,)``."""
    probs = []
    for i, tr in enumerate(tracks):
        probs.append(torch.sigmoid(frame_logits(model, tr.features, normaliser, device=device)).numpy())
        if progress is not None and progress(i + 1, len(tracks), {"file": tr.name}) is False:
            raise CancelledError("evaluation cancelled")
    return probs


def _labels(tracks: Sequence[LabelledTrack]) -> list[np.ndarray]:
    return [np.asarray(torch.as_tensor(tr.labels).cpu().numpy() > 0.5) for tr in tracks]


def validation_error(model: SVDNet, normaliser: Normaliser, tracks: Sequence[LabelledTrack], *,
                     median_frames: int = MEDIAN_FRAMES, device=None) -> dict[str, float]:
    """Quick validation numbers for training progress: tuned-threshold error after median
    filtering, raw error at 0.5 and ROC-AUC of the raw probabilities."""
    probs = predict_tracks(model, normaliser, tracks, device=device)
    labels = _labels(tracks)
    raw = np.concatenate(probs)
    y = np.concatenate(labels)
    smooth = np.concatenate([median_smooth(p, median_frames) for p in probs])
    thr, err = tune_threshold(smooth, y)
    return {"error": err, "threshold": thr, "raw_error": binary_metrics(raw > 0.5, y)["error"],
            "auc": roc_auc(raw, y)}


def evaluate_classifier(model: SVDNet, normaliser: Normaliser, *, valid: Sequence[LabelledTrack],
                        test: Sequence[LabelledTrack], median_frames: int = MEDIAN_FRAMES,
                        threshold: float | None = None, device=None,
                        progress: Progress | None = None) -> EvalReport:
    """Full evaluation: threshold tuned on ``valid`` (unless given), metrics on ``test``.

    Parameters
    ----------
    valid, test : tracks with ``features (T, M)`` and ``labels (T,)``; ``valid`` may be empty
        when ``threshold`` is given.
    median_frames : median-filter length in frames (56 in the original; 1 disables it)
    threshold : fixed threshold on the filtered probabilities, skipping the tuning
    progress : ``progress(done, total, info)`` per file
    """
    if not test:
        raise ParameterError("evaluate_classifier needs at least one test track")
    total = (0 if threshold is not None else len(valid)) + len(test)
    done = [0]

    def step(_d, _t, info):
        done[0] += 1
        return None if progress is None else progress(done[0], total, info)

    if threshold is None:
        if not valid:
            raise ParameterError("no validation tracks to tune the threshold on; pass threshold=")
        vp = predict_tracks(model, normaliser, valid, device=device, progress=step)
        vs = np.concatenate([median_smooth(p, median_frames) for p in vp])
        threshold, valid_error = tune_threshold(vs, np.concatenate(_labels(valid)))
    else:
        valid_error = float("nan")
    tp = predict_tracks(model, normaliser, test, device=device, progress=step)
    tl = _labels(test)
    smooth = [median_smooth(p, median_frames) for p in tp]
    rows = []
    for tr, p, y in zip(test, smooth, tl, strict=True):
        m = binary_metrics(p > threshold, y)
        rows.append(FileResult(tr.name, int(y.size), float(y.mean()) if y.size else float("nan"),
                               m["error"], m["precision"], m["recall"], m["specificity"], m["f1"]))
    y_all = np.concatenate(tl)
    s_all = np.concatenate(smooth)
    r_all = np.concatenate(tp)
    test_m = binary_metrics(s_all > threshold, y_all)
    test_m["roc_auc"] = roc_auc(s_all, y_all)
    raw_m = binary_metrics(r_all > 0.5, y_all)
    raw_m["roc_auc"] = roc_auc(r_all, y_all)
    return EvalReport(threshold=float(threshold), valid_error=float(valid_error), test=test_m,
                      test_raw=raw_m, per_file=rows, median_frames=median_frames)
