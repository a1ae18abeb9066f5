"""The classifier's front end, as a frozen configuration (METHODS section 1)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from xai_core.errors import ParameterError

# Bounds of a front end (the same as xai_core.schema.LIMITS for files): the paper's 22050 Hz, 1024, 80, 115 lie
# well inside; beyond them one STFT frame or one excerpt no longer fits a sane amount of memory.
MAX_SAMPLE_RATE = 192_000
MAX_N_FFT = 65_536
MAX_N_MELS = 256
MAX_EXCERPT_FRAMES = 1024


@dataclass(frozen=True)
class MelConfig:
    """Log-mel front end of Schlüter & Grill (ISMIR 2015); defaults are the paper's values.

    Frames are not centred: frame ``i`` covers samples ``[i * hop, i * hop + n_fft)`` and its
    centre lies at ``(i * hop + n_fft / 2) / sample_rate`` seconds.
    """

    sample_rate: int = 22050  # Hz, mono
    n_fft: int = 1024  # STFT frame length in samples (Hann window)
    hop_length: int = 315  # samples; 22050 / 315 = 70 frames per second
    n_mels: int = 80  # triangular bands, each normalised to unit sum
    fmin: float = 27.5  # Hz, lower edge of the lowest band
    fmax: float = 8000.0  # Hz, upper edge of the highest band
    log_floor: float = 1e-7  # natural log of max(mel, log_floor)
    excerpt_frames: int = 115  # network input length in frames (about 1.64 s)

    def __post_init__(self) -> None:
        for name, f in self.__dataclass_fields__.items():
            v = getattr(self, name)
            ok = (isinstance(v, int) and not isinstance(v, bool)) if f.type in ("int", int) else \
                (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            if not ok:
                raise ParameterError(f"MelConfig.{name}={v!r} must be a finite "
                                     f"{'integer' if f.type in ('int', int) else 'number'}")
        checks = [
            (1000 <= self.sample_rate <= MAX_SAMPLE_RATE, "sample_rate", self.sample_rate),
            (16 <= self.n_fft <= MAX_N_FFT, "n_fft", self.n_fft),
            (0 < self.hop_length <= self.n_fft, "hop_length", self.hop_length),
            (1 <= self.n_mels <= MAX_N_MELS, "n_mels", self.n_mels),
            (0 <= self.fmin < self.fmax, "fmin", self.fmin),
            (self.fmax <= self.sample_rate / 2, "fmax", self.fmax),
            (0 < self.log_floor < 1, "log_floor", self.log_floor),
            (1 <= self.excerpt_frames <= MAX_EXCERPT_FRAMES, "excerpt_frames", self.excerpt_frames),
        ]
        for ok, name, value in checks:
            if not ok:
                raise ParameterError(f"MelConfig.{name}={value!r} is invalid (limits: sample_rate 1000-"
                                     f"{MAX_SAMPLE_RATE}, n_fft 16-{MAX_N_FFT}, 0 < hop_length <= n_fft, n_mels 1-"
                                     f"{MAX_N_MELS}, 0 <= fmin < fmax <= sample_rate / 2, 0 < log_floor < 1, "
                                     f"excerpt_frames 1-{MAX_EXCERPT_FRAMES})")

    @property
    def frame_rate(self) -> float:
        """Frames per second (70 for the defaults)."""
        return self.sample_rate / self.hop_length

    @property
    def n_bins(self) -> int:
        """Number of STFT magnitude bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def log_min(self) -> float:
        """Smallest log-mel value, ``log(log_floor)``."""
        return math.log(self.log_floor)

    @property
    def excerpt_seconds(self) -> float:
        return self.excerpt_frames / self.frame_rate

    def frame_times(self, n_frames: int):
        """Centre time in seconds of each of ``n_frames`` frames, shape ``(n_frames,)``."""
        import numpy as np

        return (np.arange(n_frames) * self.hop_length + self.n_fft / 2) / self.sample_rate

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MelConfig:
        if not isinstance(d, dict):
            raise ParameterError(f"a MelConfig must be a mapping of its fields, got {type(d).__name__}")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ParameterError(f"unknown MelConfig fields {unknown}")
        return cls(**known)
