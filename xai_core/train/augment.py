"""Spectrogram data augmentation on the device, in batches (METHODS section 2).

Schlüter & Grill (ISMIR 2015) augment with pitch shifting and time stretching (up to +-30 %)
and random frequency filters (up to +-10 dB). They apply them to linear STFT magnitudes before
the mel filterbank; here they act directly on the un-normalised log-mel excerpts, which is what
the data pipeline holds:

* **pitch shift** by a factor ``s``: the output band centred at ``f`` reads the input at
  ``f / s``, located on the (HTK) mel scale, so harmonics move by the same ratio at every height;
* **time stretch** by a factor ``r``: the output frame ``t`` reads the input at
  ``c_in + (t - c_out) * r`` around the excerpt's centre, so the centre frame (the one the label
  belongs to) stays where it is; the input must therefore be wider than the output;
* **random filter**: a smooth bump of random centre, width and gain (``+-max_db``) added to the
  log magnitudes, i.e. a multiplicative equaliser curve.

Both resamplings are done by one bilinear ``grid_sample`` per batch. At zero strength each
transform is skipped, so augmentation is an exact no-op (only the centre crop remains).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from xai_core.audio.config import MelConfig
from xai_core.errors import ParameterError

DB_TO_LOG_MAGNITUDE = math.log(10.0) / 20.0  # +1 dB of magnitude in natural-log units


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the spectrogram augmentations (0 disables each)."""

    pitch_shift: float = 0.3  # max relative frequency scaling, factor drawn from [1 - p, 1 + p]
    time_stretch: float = 0.3  # max relative tempo change, factor drawn from [1 - r, 1 + r]
    filter_db: float = 10.0  # max absolute gain (dB) of the random frequency filter
    filter_min_width: float = 5.0  # bump width (std, in mel bands), drawn in [min, max]
    filter_max_width: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.pitch_shift < 1.0:
            raise ParameterError(f"AugmentConfig.pitch_shift must be in [0, 1), got {self.pitch_shift!r}")
        if not 0.0 <= self.time_stretch < 1.0:
            raise ParameterError(f"AugmentConfig.time_stretch must be in [0, 1), got {self.time_stretch!r}")
        if not 0.0 <= self.filter_db <= 60.0:
            raise ParameterError(f"AugmentConfig.filter_db must be in [0, 60] dB, got {self.filter_db!r}")
        if not 0.0 < self.filter_min_width <= self.filter_max_width:
            raise ParameterError(
                f"AugmentConfig filter widths must satisfy 0 < min <= max, got "
                f"{self.filter_min_width!r}, {self.filter_max_width!r}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """All augmentations off."""
        return cls(pitch_shift=0.0, time_stretch=0.0, filter_db=0.0)

    @property
    def enabled(self) -> bool:
        return self.pitch_shift > 0 or self.time_stretch > 0 or self.filter_db > 0

    def input_frames(self, out_frames: int) -> int:
        """Frames an input excerpt needs so that the strongest stretch of an ``out_frames``
        output stays inside it (odd, so that input and output share a centre frame)."""
        need = math.ceil((out_frames - 1) * (1.0 + self.time_stretch)) + 1
        need += (need - out_frames) % 2  # same parity as out_frames: centres align exactly
        return need

    def to_dict(self) -> dict:
        return asdict(self)


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def band_centres(cfg: MelConfig, *, device=None) -> torch.Tensor:
    """Centre frequency (Hz) of each of the ``n_mels`` HTK mel bands, shape ``(n_mels,)``."""
    lo = _hz_to_mel(torch.tensor(cfg.fmin, dtype=torch.float64))
    hi = _hz_to_mel(torch.tensor(cfg.fmax, dtype=torch.float64))
    mels = torch.linspace(float(lo), float(hi), cfg.n_mels + 2, dtype=torch.float64)[1:-1]
    return _mel_to_hz(mels).to(device=device, dtype=torch.float32)


def _band_position(freq: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Fractional band index (0 .. n_mels - 1) of frequencies ``freq`` (Hz) on the mel axis."""
    lo = _hz_to_mel(torch.tensor(cfg.fmin, dtype=torch.float64))
    hi = _hz_to_mel(torch.tensor(cfg.fmax, dtype=torch.float64))
    step = float((hi - lo) / (cfg.n_mels + 1))
    return (_hz_to_mel(freq.clamp(min=0.0)) - float(lo)) / step - 1.0


def random_filter_gains(batch: int, n_mels: int, *, max_db: float, min_width: float, max_width: float,
                        generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Smooth random equaliser curves in natural-log magnitude units, shape ``(B, n_mels)``.

    Each curve is a Gaussian bump over the mel bands with uniform random centre, width
    (std in bands) and gain in ``[-max_db, +max_db]`` dB.
    """
    u = torch.rand(batch, 3, generator=generator, device=device)  # (B, 3)
    centre = u[:, :1] * (n_mels - 1)  # (B, 1)
    width = min_width + u[:, 1:2] * (max_width - min_width)  # (B, 1)
    gain = (2.0 * u[:, 2:3] - 1.0) * max_db * DB_TO_LOG_MAGNITUDE  # (B, 1)
    bands = torch.arange(n_mels, device=device, dtype=torch.float32)  # (M,)
    return gain * torch.exp(-0.5 * ((bands - centre) / width) ** 2)  # (B, M)


def augment_batch(x: torch.Tensor, config: AugmentConfig, *, out_frames: int | None = None,
                  mel: MelConfig = MelConfig(), generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a batch of un-normalised log-mel excerpts.

    Parameters
    ----------
    x : torch.Tensor, shape ``(B, T_in, M)``
        Natural-log mel excerpts, time x mel, centred on the labelled frame; ``T_in`` must be at
        least ``config.input_frames(out_frames)`` when time stretching is on.
    config : AugmentConfig
    out_frames : int, optional
        Output length in frames (default ``mel.excerpt_frames``); the output is centred on the
        input's centre frame ``T_in // 2``.
    mel : MelConfig
        Front end the excerpts were computed with (for the mel scale of the pitch shift).
    generator : torch.Generator, optional
        Random source on ``x.device`` (for reproducible augmentation).

    Returns
    -------
    torch.Tensor, shape ``(B, out_frames, M)``, on ``x.device``. With all strengths zero this is
    exactly the centre crop of ``x``.
    """
    if x.ndim != 3:
        raise ParameterError(f"augment_batch expects (B, T, M) excerpts, got shape {tuple(x.shape)}")
    b, t_in, m = x.shape
    t_out = mel.excerpt_frames if out_frames is None else int(out_frames)
    if t_out < 1 or t_in < t_out or (t_in - t_out) % 2:
        raise ParameterError(f"input of {t_in} frames cannot be centre-cropped to {t_out} frames "
                             "(need T_in >= T_out with the same parity)")
    if m != mel.n_mels:
        raise ParameterError(f"excerpts have {m} bands, MelConfig {mel.n_mels}")
    if config.time_stretch > 0 and t_in < config.input_frames(t_out):
        raise ParameterError(f"time_stretch={config.time_stretch} needs {config.input_frames(t_out)} input "
                             f"frames for {t_out} output frames, got {t_in}")
    c_in, c_out = t_in // 2, t_out // 2
    out = x
    if config.pitch_shift > 0 or config.time_stretch > 0:
        dev = x.device
        u = torch.rand(b, 2, generator=generator, device=dev)  # (B, 2)
        stretch = 1.0 + (2.0 * u[:, 0] - 1.0) * config.time_stretch  # (B,)
        shift = 1.0 + (2.0 * u[:, 1] - 1.0) * config.pitch_shift  # (B,)
        t = torch.arange(t_out, device=dev, dtype=torch.float32) - c_out  # (T_out,)
        src_t = c_in + t[None, :] * stretch[:, None]  # (B, T_out) input frame positions
        f = band_centres(mel, device=dev)  # (M,)
        src_f = _band_position((f[None, :] / shift[:, None]).double(), mel).float()  # (B, M)
        # grid_sample, align_corners=True: index i of a size-n axis sits at 2 i / (n - 1) - 1.
        gy = (2.0 * src_t / (t_in - 1) - 1.0)[:, :, None].expand(b, t_out, m)  # (B, T_out, M)
        gx = (2.0 * src_f / (m - 1) - 1.0)[:, None, :].expand(b, t_out, m)  # (B, T_out, M)
        grid = torch.stack([gx, gy], dim=-1)  # (B, T_out, M, 2)
        out = F.grid_sample(x[:, None].float(), grid, mode="bilinear", padding_mode="border",
                            align_corners=True)[:, 0]  # (B, T_out, M)
    else:
        out = x[:, c_in - c_out:c_in - c_out + t_out]  # (B, T_out, M) exact centre crop
    if config.filter_db > 0:
        gains = random_filter_gains(b, m, max_db=config.filter_db, min_width=config.filter_min_width,
                                    max_width=config.filter_max_width, generator=generator,
                                    device=x.device)  # (B, M)
        out = out + gains[:, None, :].to(out.dtype)  # (B, T_out, M)
    return out
