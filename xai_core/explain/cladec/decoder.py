"""Decoders from a layer of SVDNet back to its (115, 80) normalised log-mel input.

A decoder mirrors the encoder from layer ``L`` back to the input, one inverse stage per encoder
operation, so that it fits *any* input size and layer exactly (no power-of-two assumption):

* a valid 3x3 convolution (the spatial size shrinks by 2) is undone by a 3x3 transposed
  convolution (it grows by exactly 2) to the channel count the encoder had before it;
* a 3x3 max-pool is undone by nearest-neighbour upsampling to the exact size before the pool
  followed by a 3x3 "same" convolution;
* a dense layer (``fc1``, ``fc2``, ``logit``) is decoded by a linear projection to the small grid
  after ``pool2`` (``(c4, 11, 7)`` for 115 x 80), then the spatial stages above.

Leaky ReLU between stages; the last stage is linear (no sigmoid: the target is a standardised
log-mel, not pixels in [0, 1] as in the public code).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from xai_core.errors import ParameterError
from xai_core.models.svdnet import SVDNet, SVDNetConfig

DENSE_LAYERS = ("fc1", "fc2", "logit")
MAX_WIDTH = 8.0  # bound on the decoder width multiplier (a hostile bundle cannot ask for more)


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of one decoder (the rest follows from the classifier and the layer)."""

    layer: str = "fc2"  # the decoded SVDNet layer
    width: float = 1.0  # decoder channels = this x the encoder's channels at each stage (>= 4)
    leak: float = 0.01  # leaky ReLU slope between stages

    def __post_init__(self) -> None:
        if self.layer not in SVDNet.layer_names:
            raise ParameterError(f"unknown layer {self.layer!r}; decodable layers: {list(SVDNet.layer_names)}")
        if not isinstance(self.width, (int, float)) or not 0.05 <= float(self.width) <= MAX_WIDTH:
            raise ParameterError(f"decoder width must be in [0.05, {MAX_WIDTH}], got {self.width!r}")
        if not isinstance(self.leak, (int, float)) or not 0.0 <= float(self.leak) < 1.0:
            raise ParameterError(f"decoder leak must be in [0, 1), got {self.leak!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _stages(arch: SVDNetConfig, layer: str) -> list[tuple[str, int, tuple[int, int]]]:
    """Encoder operations from the input up to ``layer``: (op, in_channels, in_size) each."""
    c1, c2, c3, c4 = arch.conv_channels
    t, f = arch.n_frames, arch.n_mels
    ops = []
    for name, op, cin in (("conv1", "conv", 1), ("conv2", "conv", c1), ("pool1", "pool", c2),
                          ("conv3", "conv", c2), ("conv4", "conv", c3), ("pool2", "pool", c4)):
        ops.append((op, cin, (t, f)))
        t, f = (t - 2, f - 2) if op == "conv" else (t // 3, f // 3)
        if name == layer:
            return ops
    return ops


class LayerDecoder(nn.Module):
    """``D``: activations of ``layer`` ``(B, *layer_shape)`` -> normalised log-mel ``(B, T, M)``."""

    def __init__(self, arch: SVDNetConfig, config: DecoderConfig) -> None:
        super().__init__()
        self.arch, self.config = arch, config
        c4 = arch.conv_channels[3]
        gt, gf = arch.feature_map_size

        def width(c: int) -> int:
            return 1 if c == 1 else max(4, round(c * config.width))

        act = lambda: nn.LeakyReLU(config.leak)  # noqa: E731
        ops = _stages(arch, config.layer)
        blocks: list[nn.Module] = []
        if config.layer in DENSE_LAYERS:
            d_in = {"fc1": arch.dense_units[0], "fc2": arch.dense_units[1], "logit": 1}[config.layer]
            self.grid = (width(c4), gt, gf)
            self.project: nn.Module | None = nn.Sequential(
                nn.Linear(d_in, width(c4) * gt * gf), act())  # (B, c4' * 11 * 7)
            ch = width(c4)
        else:
            self.project = None
            ch = layer_shapes(arch)[config.layer][0]  # the activation's own channels
        for k, (op, cin, size) in enumerate(reversed(ops)):
            last = k == len(ops) - 1
            out = width(cin)
            if op == "conv":
                blocks.append(nn.ConvTranspose2d(ch, out, 3))  # (B, out, t + 2, f + 2)
            else:
                blocks.append(nn.Upsample(size=size, mode="nearest"))  # (B, ch, size)
                blocks.append(nn.Conv2d(ch, out, 3, padding=1))  # (B, out, size)
            if not last:
                blocks.append(act())
            ch = out
        self.body = nn.Sequential(*blocks)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Layer activations ``(B, ...)`` -> normalised log-mel ``(B, T, M)``."""
        b = h.shape[0]
        if self.project is not None:
            h = self.project(h.reshape(b, -1)).reshape(b, *self.grid)  # (B, c4', 11, 7)
        x = self.body(h)  # (B, 1, T, M)
        return x[:, 0]  # (B, T, M)


def layer_shapes(arch: SVDNetConfig) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of every layer of an SVDNet of ``arch``, in closed form (no
    model is built: a decoder bundle's metadata can be checked before anything is allocated)."""
    c1, c2, c3, c4 = arch.conv_channels
    t, f = arch.n_frames, arch.n_mels
    out = {"conv1": (c1, t - 2, f - 2), "conv2": (c2, t - 4, f - 4)}
    t, f = (t - 4) // 3, (f - 4) // 3
    out["pool1"] = (c2, t, f)
    out["conv3"] = (c3, t - 2, f - 2)
    out["conv4"] = (c4, t - 4, f - 4)
    out["pool2"] = (c4, *arch.feature_map_size)
    out["fc1"] = (arch.dense_units[0],)
    out["fc2"] = (arch.dense_units[1],)
    out["logit"] = ()
    return out
