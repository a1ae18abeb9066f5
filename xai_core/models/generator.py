"""Spectrogram GAN of Mishra et al. (METHODS section 3): generator and a discriminator.

Generator: z in R^128 -> dense 5x8xC0 (leaky ReLU 0.2) -> four 5x5 stride-2 "same"
transposed convolutions (leaky ReLU 0.2) -> 80 mel x 128 frames -> 5x5 conv to one channel,
linear -> floored at log(1e-7) -> centre crop to 115 frames. No batch norm.
Output is un-normalised log-mel, time x mel ``(B, 115, 80)`` like the classifier's input.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from xai_core.errors import ParameterError


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a :class:`SpecGenerator`."""

    z_dim: int = 128  # latent size, z ~ N(0, I)
    base_channels: int = 128  # channels of the dense 5 x 8 seed map
    up_channels: tuple[int, int, int, int] = (64, 32, 16, 8)  # the four transposed convs
    leak: float = 0.2
    n_mels: int = 80  # output bands (= 5 * 2**4)
    n_frames: int = 115  # output frames after centre crop (<= 8 * 2**4 = 128)
    log_floor: float = 1e-7  # output floored at log(log_floor)

    def __post_init__(self) -> None:
        object.__setattr__(self, "up_channels", tuple(int(c) for c in self.up_channels))
        if self.z_dim < 1 or self.base_channels < 1:
            raise ParameterError(f"z_dim and base_channels must be >= 1, got {self.z_dim}, {self.base_channels}")
        if len(self.up_channels) != 4 or min(self.up_channels) < 1:
            raise ParameterError(f"up_channels must be 4 positive ints, got {self.up_channels}")
        if self.n_mels != 80 or not 1 <= self.n_frames <= 128:
            raise ParameterError(
                f"the generator makes 80 mel x 128 frames before cropping; got n_mels={self.n_mels}, "
                f"n_frames={self.n_frames}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["up_channels"] = list(self.up_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


GENERATOR_PRESETS: dict[str, GeneratorConfig] = {
    "paper": GeneratorConfig(),
    "lite": GeneratorConfig(base_channels=64, up_channels=(48, 32, 16, 8)),
    "tiny": GeneratorConfig(z_dim=16, base_channels=8, up_channels=(4, 4, 4, 4)),  # unit tests only
}


def generator_preset(name: str) -> GeneratorConfig:
    if name not in GENERATOR_PRESETS:
        raise ParameterError(f"unknown generator preset {name!r}; choose from {sorted(GENERATOR_PRESETS)}")
    return GENERATOR_PRESETS[name]


class SpecGenerator(nn.Module):
    """Mishra et al.'s DCGAN-style generator; ``forward(z (B, z_dim)) -> (B, T, M)`` log-mel."""

    def __init__(self, config: GeneratorConfig | str = "paper") -> None:
        super().__init__()
        if isinstance(config, str):
            config = generator_preset(config)
        self.config = config
        c0 = config.base_channels
        self.fc = nn.Linear(config.z_dim, 5 * 8 * c0)
        layers: list[nn.Module] = []
        cin = c0
        for cout in config.up_channels:
            layers += [nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1),
                       nn.LeakyReLU(config.leak)]
            cin = cout
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(cin, 1, 5, padding=2)
        self.act = nn.LeakyReLU(config.leak)
        self.floor = math.log(config.log_floor)
        crop = 128 - config.n_frames
        self._t0 = crop // 2

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.z_dim:
            raise ParameterError(f"z must be (B, {self.config.z_dim}), got {tuple(z.shape)}")
        h = self.act(self.fc(z)).view(z.shape[0], self.config.base_channels, 5, 8)  # (B, C0, 5, 8) mel x time
        h = self.up(h)  # (B, 8, 80, 128)
        x = self.out(h)[:, 0]  # (B, 80, 128)
        x = torch.clamp(x, min=self.floor)
        x = x[:, :, self._t0:self._t0 + self.config.n_frames]  # (B, 80, 115)
        return x.transpose(1, 2)  # (B, 115, 80) time x mel


@dataclass(frozen=True)
class DiscriminatorConfig:
    """A convolutional critic on log-mel excerpts (the original's is not public)."""

    channels: tuple[int, ...] = (32, 64, 128, 256)  # 5x5 stride-2 convolutions
    leak: float = 0.2
    spectral_norm: bool = True  # for the hinge loss; WGAN-GP uses plain layers
    n_frames: int = 115
    n_mels: int = 80

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not self.channels or min(self.channels) < 1:
            raise ParameterError(f"channels must be positive ints, got {self.channels}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DiscriminatorConfig:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


DISCRIMINATOR_PRESETS: dict[str, DiscriminatorConfig] = {
    "paper": DiscriminatorConfig(),
    "lite": DiscriminatorConfig(channels=(16, 32, 64, 128)),
    "tiny": DiscriminatorConfig(channels=(4, 4)),
}


class SpecDiscriminator(nn.Module):
    """Critic: log-mel ``(B, T, M)`` (normalised by the caller) -> real-valued score ``(B,)``."""

    def __init__(self, config: DiscriminatorConfig | str = "paper") -> None:
        super().__init__()
        if isinstance(config, str):
            if config not in DISCRIMINATOR_PRESETS:
                raise ParameterError(f"unknown discriminator preset {config!r}")
            config = DISCRIMINATOR_PRESETS[config]
        self.config = config
        sn = nn.utils.parametrizations.spectral_norm if config.spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        cin, t, f = 1, config.n_frames, config.n_mels
        for cout in config.channels:
            layers += [sn(nn.Conv2d(cin, cout, 5, stride=2, padding=2)), nn.LeakyReLU(config.leak)]
            cin, t, f = cout, (t + 1) // 2, (f + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Linear(cin * t * f, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)  # (B, 1, T, M)
        h = self.features(x)  # (B, C, T', M')
        return self.head(h.flatten(1)).squeeze(1)  # (B,)
