"""SVDNet: the singing-voice detector of Schlüter & Grill (ISMIR 2015), METHODS section 2.

conv3x3-64, conv3x3-32, maxpool3x3, conv3x3-128, conv3x3-64, maxpool3x3, dropout, dense256,
dropout, dense64, dropout, dense1 (logit). All convolutions "valid", leaky ReLU 0.01,
orthogonal initialisation. Input (B, 1, 115, 80) = batch x channel x time x mel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from xai_core.errors import ParameterError


@dataclass(frozen=True)
class SVDNetConfig:
    """Architecture of an SVDNet; ``paper`` and ``lite`` presets share the topology."""

    conv_channels: tuple[int, int, int, int] = (64, 32, 128, 64)  # conv1..conv4 widths
    dense_units: tuple[int, int] = (256, 64)  # fc1, fc2 widths (the logit layer has 1 unit)
    dropout: float = 0.5  # before fc1, fc2 and the logit layer
    leak: float = 0.01  # leaky ReLU slope
    n_frames: int = 115  # input excerpt length (time)
    n_mels: int = 80  # input bands

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        object.__setattr__(self, "dense_units", tuple(int(c) for c in self.dense_units))
        if len(self.conv_channels) != 4 or min(self.conv_channels) < 1:
            raise ParameterError(f"conv_channels must be 4 positive ints, got {self.conv_channels}")
        if len(self.dense_units) != 2 or min(self.dense_units) < 1:
            raise ParameterError(f"dense_units must be 2 positive ints, got {self.dense_units}")
        if not 0.0 <= self.dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {self.dropout}")
        t, f = self.feature_map_size
        if t < 1 or f < 1:
            raise ParameterError(f"input {self.n_frames}x{self.n_mels} is too small for SVDNet")

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """Spatial size after the second pooling: (11, 7) for 115 x 80."""
        t, f = self.n_frames - 4, self.n_mels - 4  # two valid 3x3 convs
        t, f = t // 3 - 4, f // 3 - 4  # pool 3, two valid 3x3 convs
        return t // 3, f // 3

    @property
    def flat_features(self) -> int:
        t, f = self.feature_map_size
        return t * f * self.conv_channels[3]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        d["dense_units"] = list(self.dense_units)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SVDNetConfig:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


SVDNET_PRESETS: dict[str, SVDNetConfig] = {
    "paper": SVDNetConfig(),
    "lite": SVDNetConfig(conv_channels=(16, 16, 32, 16), dense_units=(64, 32)),
    "tiny": SVDNetConfig(conv_channels=(4, 4, 4, 4), dense_units=(8, 4)),  # unit tests only
}


class SVDNet(nn.Module):
    """The classifier; ``forward`` returns the vocal logit, shape ``(B,)``.

    Addressable layers (outputs after their non-linearity) are listed in ``layer_names``:
    conv1, conv2, pool1, conv3, conv4, pool2, fc1, fc2, logit.
    """

    layer_names = ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "fc1", "fc2", "logit")

    def __init__(self, config: SVDNetConfig | str = "paper") -> None:
        super().__init__()
        if isinstance(config, str):
            config = svdnet_preset(config)
        self.config = config
        c1, c2, c3, c4 = config.conv_channels
        d1, d2 = config.dense_units
        act = lambda: nn.LeakyReLU(config.leak)  # noqa: E731
        self.conv1 = nn.Sequential(nn.Conv2d(1, c1, 3), act())  # (B, c1, 113, 78)
        self.conv2 = nn.Sequential(nn.Conv2d(c1, c2, 3), act())  # (B, c2, 111, 76)
        self.pool1 = nn.MaxPool2d(3)  # (B, c2, 37, 25)
        self.conv3 = nn.Sequential(nn.Conv2d(c2, c3, 3), act())  # (B, c3, 35, 23)
        self.conv4 = nn.Sequential(nn.Conv2d(c3, c4, 3), act())  # (B, c4, 33, 21)
        self.pool2 = nn.MaxPool2d(3)  # (B, c4, 11, 7)
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout),
                                 nn.Linear(config.flat_features, d1), act())  # (B, d1)
        self.fc2 = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d1, d2), act())  # (B, d2)
        self.logit = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d2, 1), nn.Flatten(0))  # (B,)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Orthogonal weights (gain for leaky ReLU), zero biases, as in the original."""
        gain = nn.init.calculate_gain("leaky_relu", self.config.leak)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(m.weight, gain=gain, generator=generator)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``(B, 1, T, M)`` or ``(B, T, M)`` -> logit ``(B,)``."""
        if x.ndim == 3:
            x = x.unsqueeze(1)  # (B, 1, T, M)
        expected = (1, self.config.n_frames, self.config.n_mels)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ParameterError(f"SVDNet expects input (B, {expected}), got {tuple(x.shape)}")
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Output shape (without batch) of every addressable layer."""
        from xai_core.models.hooks import capture_activations

        param = next(self.parameters())
        x = torch.zeros(1, 1, self.config.n_frames, self.config.n_mels, device=param.device, dtype=param.dtype)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad(), capture_activations(self, self.layer_names) as acts:
                self(x)
        finally:
            self.train(was_training)
        return {n: tuple(acts[n].shape[1:]) for n in self.layer_names}


def svdnet_preset(name: str) -> SVDNetConfig:
    if name not in SVDNET_PRESETS:
        raise ParameterError(f"unknown SVDNet preset {name!r}; choose from {sorted(SVDNET_PRESETS)}")
    return SVDNET_PRESETS[name]
