"""Log-mel features, per-band normaliser and excerpt slicing, in batched torch.

Everything here runs on whatever device its input lives on, so the same code serves
training (GPU batches), the app (CPU) and inversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from xai_core.audio.config import MelConfig
from xai_core.errors import ParameterError


@lru_cache(maxsize=8)
def _mel_filterbank_np(cfg: MelConfig) -> np.ndarray:
    import librosa

    # HTK mel scale as in f0k/ismir2015; librosa evaluates the triangles at bin centres.
    fb = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        htk=True, norm=None,
    ).astype(np.float64)  # (n_mels, n_bins)
    sums = fb.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        empty = np.flatnonzero(sums[:, 0] <= 0).tolist()
        raise ParameterError(
            f"mel bands {empty} contain no STFT bin for n_fft={cfg.n_fft}, fmin={cfg.fmin}: "
            "raise n_fft or fmin, or lower n_mels"
        )
    return fb / sums  # each filter normalised to unit sum


def mel_filterbank(cfg: MelConfig, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Triangular mel filterbank with unit-sum rows.

    Returns
    -------
    torch.Tensor, shape ``(n_mels, n_fft // 2 + 1)``
    """
    return torch.as_tensor(_mel_filterbank_np(cfg), dtype=dtype, device=device)


def stft_magnitude(wave: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Magnitude STFT without centring.

    Parameters
    ----------
    wave : torch.Tensor, shape ``(..., n_samples)``

    Returns
    -------
    torch.Tensor, shape ``(..., n_frames, n_bins)`` with
    ``n_frames = 1 + (n_samples - n_fft) // hop`` (0 frames for shorter input).
    """
    if wave.shape[-1] < cfg.n_fft:
        return wave.new_zeros(*wave.shape[:-1], 0, cfg.n_bins)
    lead = wave.shape[:-1]
    flat = wave.reshape(-1, wave.shape[-1])
    window = torch.hann_window(cfg.n_fft, periodic=True, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(flat, cfg.n_fft, hop_length=cfg.hop_length, window=window,
                      center=False, return_complex=True)  # (B, n_bins, T)
    return spec.abs().transpose(-1, -2).reshape(*lead, -1, cfg.n_bins)


def log_mel(wave: torch.Tensor | np.ndarray, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Natural-log mel spectrogram, time x mel.

    Parameters
    ----------
    wave : array, shape ``(..., n_samples)``, mono at ``cfg.sample_rate``

    Returns
    -------
    torch.Tensor, shape ``(..., n_frames, n_mels)``, ``log(max(mel, cfg.log_floor))``
    """
    w = torch.as_tensor(wave)
    if not w.is_floating_point():
        w = w.float()
    mag = stft_magnitude(w, cfg)  # (..., T, n_bins)
    fb = mel_filterbank(cfg, device=w.device, dtype=mag.dtype)  # (M, n_bins)
    mel = mag @ fb.T  # (..., T, M)
    return torch.log(torch.clamp(mel, min=cfg.log_floor))


@dataclass(frozen=True)
class Normaliser:
    """Per-band z-score with training-set statistics (saved with the models).

    ``mean`` and ``std`` have shape ``(n_mels,)``; features are ``(..., n_mels)``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ParameterError(
                f"Normaliser mean/std must be 1-D and equal in shape, got "
                f"{tuple(self.mean.shape)} and {tuple(self.std.shape)}"
            )
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all()):
            raise ParameterError("Normaliser statistics contain non-finite values")
        if (self.std <= 0).any():
            raise ParameterError("Normaliser std must be positive in every band")

    @classmethod
    def fit(cls, frames: torch.Tensor | np.ndarray, *, min_std: float = 1e-4) -> Normaliser:
        """Fit on log-mel frames of shape ``(..., n_mels)`` (all leading axes are pooled)."""
        x = torch.as_tensor(frames, dtype=torch.float64)
        x = x.reshape(-1, x.shape[-1])
        if x.shape[0] < 2:
            raise ParameterError(f"need at least 2 frames to fit a Normaliser, got {x.shape[0]}")
        mean = x.mean(0)
        std = x.std(0).clamp(min=min_std)
        return cls(mean.float(), std.float())

    @classmethod
    def identity(cls, n_mels: int) -> Normaliser:
        return cls(torch.zeros(n_mels), torch.ones(n_mels))

    @property
    def n_mels(self) -> int:
        return int(self.mean.shape[0])

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape ``(..., n_mels)``; differentiable."""
        return (x - self.mean.to(x)) / self.std.to(x)

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x) + self.mean.to(x)

    def to_tensors(self, prefix: str = "normaliser.") -> dict[str, torch.Tensor]:
        return {prefix + "mean": self.mean.float().contiguous(), prefix + "std": self.std.float().contiguous()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "normaliser.") -> Normaliser:
        return cls(tensors[prefix + "mean"].float(), tensors[prefix + "std"].float())


def slice_excerpts(features: torch.Tensor, *, excerpt_frames: int, hop: int = 1,
                   labels: torch.Tensor | np.ndarray | None = None, pad: bool = False):
    """Slide a window of ``excerpt_frames`` over a spectrogram.

    Parameters
    ----------
    features : torch.Tensor, shape ``(T, n_mels)``
    hop : int, frames between excerpt starts
    labels : optional per-frame labels, shape ``(T,)``; the label of an excerpt is the
        label of its centre frame ``start + excerpt_frames // 2``
    pad : if True, pad ``excerpt_frames // 2`` frames of the minimum value on each side, so
        there is one excerpt per input frame (used for per-frame prediction).

    Returns
    -------
    excerpts : torch.Tensor, shape ``(N, excerpt_frames, n_mels)`` (a view when possible)
    excerpt_labels : torch.Tensor ``(N,)`` or None
    """
    if features.ndim != 2:
        raise ParameterError(f"features must be (T, n_mels), got shape {tuple(features.shape)}")
    if hop < 1:
        raise ParameterError(f"hop must be >= 1, got {hop}")
    half = excerpt_frames // 2
    if pad:
        fill = features.min() if features.numel() else torch.tensor(0.0)
        left = fill.expand(half, features.shape[1])
        right = fill.expand(excerpt_frames - 1 - half, features.shape[1])
        features = torch.cat([left, features, right], 0)
        if labels is not None:
            labels = torch.as_tensor(labels)
            labels = torch.cat([labels.new_zeros(half), labels, labels.new_zeros(excerpt_frames - 1 - half)])
    if features.shape[0] < excerpt_frames:
        ex = features.new_zeros(0, excerpt_frames, features.shape[1])
        return ex, (None if labels is None else torch.as_tensor(labels)[:0])
    ex = features.unfold(0, excerpt_frames, hop).transpose(1, 2)  # (N, excerpt_frames, n_mels)
    if labels is None:
        return ex, None
    labels = torch.as_tensor(labels)
    centres = torch.arange(ex.shape[0]) * hop + half
    return ex, labels[centres]


def excerpt_at(features: torch.Tensor, *, start: int, excerpt_frames: int, name: str = "audio") -> torch.Tensor:
    """The excerpt of ``excerpt_frames`` frames starting at frame ``start`` of ``features (T, M)``.

    Raises :class:`ParameterError` (naming ``name``) when the recording is shorter than one excerpt
    or ``start`` leaves less than one excerpt after it. Returns ``(excerpt_frames, M)``.
    """
    if features.ndim != 2:
        raise ParameterError(f"features must be (T, n_mels), got shape {tuple(features.shape)}")
    t = int(features.shape[0])
    if t < excerpt_frames:
        raise ParameterError(f"{name} is {t} frames long, shorter than one excerpt of {excerpt_frames} frames "
                             f"({excerpt_frames * 315 / 22050:.2f} s at the default front end)")
    if not 0 <= start <= t - excerpt_frames:
        raise ParameterError(f"excerpt start frame {start} is outside [0, {t - excerpt_frames}] for {name} "
                             f"({t} frames)")
    return features[start:start + excerpt_frames]


def excerpt_of_file(path, *, offset: float, mel: MelConfig, frames: int) -> torch.Tensor:
    """The log-mel excerpt ``(frames, M)`` of an audio file starting ``offset`` seconds in (only that part is read).

    Raises :class:`ParameterError` for a negative or infinite offset, a file too short for one excerpt after
    ``offset``, and (through :func:`~xai_core.audio.io.load_audio`) unreadable or silent audio.
    """
    import math

    from xai_core.audio.io import load_audio

    if not (isinstance(offset, (int, float)) and math.isfinite(offset) and offset >= 0):
        raise ParameterError(f"offset {offset!r} must be a finite number of seconds >= 0")
    wave = load_audio(path, sample_rate=mel.sample_rate, offset=offset,
                      duration=frames * mel.hop_length / mel.sample_rate + 0.2)
    return excerpt_at(log_mel(wave, mel), start=0, excerpt_frames=frames, name=f"{path} from {offset} s")
