"""The conditional GAN of the explainer: an SFT generator (global or local) and a discriminator.

Generator ``G(x, c) -> map``: ``x`` the normalised spectrogram ``(B, T, M)``, ``c`` the K cumulative
Grad-CAM maps ``(B, K, T, M)`` (deepest first), output one interpretation map ``(B, T, M)``
(in [0, 1] in eval mode; unclamped while training).
Spatial feature transform (Wang et al. 2018, SFT-GAN) layers modulate the generator's features:
``h * (1 + scale(z)) + shift(z)`` with ``scale`` and ``shift`` small 1x1 convolutions of the condition
features ``z``.

* **global**: one condition network reads all K maps and its features condition every block;
* **local**: the condition network (shared weights, as in the public code) reads each map alone and
  block ``j`` is conditioned on map ``j``, in depth order (deepest first), one block per map.

Differences from the paper's networks, and why: the blocks run at half resolution (a stride-2 stem,
a bilinear upsampling with a full-resolution skip at the end) and are 32 channels wide with 1x1 SFT
convolutions, rather than 16-32 full-resolution 64-channel blocks with 3x3 SFT convolutions, so that
training both variants fits the demo budget on two CPU cores and one map costs a few milliseconds;
the output is one scalar map (linear, clamped to [0, 1] in use), not an RGB image; the discriminator ends in a real
logit (the public code's one-unit softmax outputs 1 whatever its input, so its generator never
receives an adversarial gradient).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xai_core.errors import ParameterError
from xai_core.explain.depthmaps.config import MAX_K, VARIANTS

LEAK = 0.1


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of the map generator (stored in explainer bundles; sizes bounded)."""

    variant: str = "global"
    k: int = 6  # condition maps
    width: int = 32  # channels of the half-resolution blocks
    blocks: int = 6  # residual SFT blocks (local: == k)
    cond_width: int = 32  # channels of the condition features
    n_frames: int = 115
    n_mels: int = 80

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ParameterError(f"unknown generator variant {self.variant!r}; choose from {list(VARIANTS)}")
        for name, v, lo, hi in (("k", self.k, 1, MAX_K), ("width", self.width, 4, 256), ("blocks", self.blocks, 1, 32),
                                ("cond_width", self.cond_width, 4, 256), ("n_frames", self.n_frames, 8, 4096),
                                ("n_mels", self.n_mels, 8, 512)):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ParameterError(f"generator {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if self.variant == "local" and self.blocks != self.k:
            raise ParameterError(f"a local generator has one block per condition map: blocks={self.blocks}, k={self.k}")

    def to_dict(self) -> dict:
        return asdict(self)


class SFT(nn.Module):
    """Spatial feature transform: ``h * (1 + scale(z)) + shift(z)``."""

    def __init__(self, width: int, cond_width: int) -> None:
        super().__init__()
        self.scale = nn.Sequential(nn.Conv2d(cond_width, cond_width, 1), nn.LeakyReLU(LEAK), nn.Conv2d(cond_width, width, 1))
        self.shift = nn.Sequential(nn.Conv2d(cond_width, cond_width, 1), nn.LeakyReLU(LEAK), nn.Conv2d(cond_width, width, 1))

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return h * (1 + self.scale(z)) + self.shift(z)


class SFTBlock(nn.Module):
    """Residual block: ``h + conv(lrelu(conv(lrelu(SFT(h, z)))))``."""

    def __init__(self, width: int, cond_width: int) -> None:
        super().__init__()
        self.sft = SFT(width, cond_width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r = self.conv1(F.leaky_relu(self.sft(h, z), LEAK))
        return h + self.conv2(F.leaky_relu(r, LEAK))


def _cond_net(n_in: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, width, 3, padding=1), nn.LeakyReLU(LEAK), nn.Conv2d(width, width, 1),
                         nn.LeakyReLU(LEAK), nn.Conv2d(width, width, 1))


class MapGenerator(nn.Module):
    """``G(xn (B, T, M), cond (B, K, T, M)) -> map (B, T, M)``, in [0, 1] in eval mode (see the module doc)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        w, cw = config.width, config.cond_width
        half = max(4, w // 2)
        self.stem = nn.Conv2d(1, half, 3, padding=1)  # (B, w/2, T, M)
        self.down = nn.Conv2d(half, w, 3, stride=2, padding=1)  # (B, w, T/2, M/2)
        self.cond = _cond_net(config.k if config.variant == "global" else 1, cw)
        self.blocks = nn.ModuleList(SFTBlock(w, cw) for _ in range(config.blocks))
        self.last_sft = SFT(w, cw)
        self.merge = nn.Conv2d(w, half, 1)
        self.out = nn.Conv2d(half, 1, 3, padding=1)

    def condition_features(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """Condition features at half resolution: one tensor (global) or one per map (local)."""
        c = F.avg_pool2d(cond, 2, ceil_mode=True)  # (B, K, T/2, M/2)
        if self.config.variant == "global":
            return [self.cond(c)]
        b, k, t, m = c.shape
        z = self.cond(c.reshape(b * k, 1, t, m))  # one shared network, each map alone
        return list(z.reshape(b, k, -1, t, m).unbind(1))

    def forward(self, xn: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if xn.ndim != 3 or cond.ndim != 4 or cond.shape[1] != cfg.k or cond.shape[0] != xn.shape[0] \
                or cond.shape[2:] != xn.shape[1:]:
            raise ParameterError(f"generator expects x (B, T, M) and {cfg.k} condition maps (B, {cfg.k}, T, M), got "
                                 f"{tuple(xn.shape)} and {tuple(cond.shape)}")
        f0 = F.leaky_relu(self.stem(xn[:, None]), LEAK)  # (B, w/2, T, M)
        h = F.leaky_relu(self.down(f0), LEAK)  # (B, w, T/2, M/2)
        zs = self.condition_features(cond)
        trunk = h
        for j, block in enumerate(self.blocks):
            trunk = block(trunk, zs[0] if len(zs) == 1 else zs[j])
        h = h + self.last_sft(trunk, zs[0] if len(zs) == 1 else zs[-1])
        up = F.interpolate(self.merge(h), size=xn.shape[1:], mode="bilinear", align_corners=False)  # (B, w/2, T, M)
        out = self.out(F.leaky_relu(up + f0, LEAK))[:, 0]  # (B, T, M)
        # Linear while training: a sigmoid output learns "all zero" within a few dozen steps (most of a Grad-CAM
        # map is zero) and then saturates, with no gradient left to learn the rest (measured: L1 stuck at the
        # all-zero level, 0.09, for 150 steps at any learning rate). Clamped to the maps' range [0, 1] in use.
        return out if self.training else out.clamp(0.0, 1.0)


class MapDiscriminator(nn.Module):
    """``D(xn (B, T, M), map (B, T, M)) -> real logit (B,)``: is this map the target for this input?"""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, w, T/2, M/2)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2w, T/4, M/4)
            nn.Conv2d(2 * width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2w, T/8, M/8)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 1))  # (B, 1)

    def forward(self, xn: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return self.net(torch.stack([xn, m], 1))[:, 0]  # (B,)
