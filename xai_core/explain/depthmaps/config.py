"""Configs of the depth-map method (frozen, validated at construction; the CLI and the page build the same)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from xai_core.errors import ParameterError
from xai_core.models.svdnet import SVDNet
from xai_core.validation import check_float as _float
from xai_core.validation import check_int as _int
from xai_core.validation import config_from_dict

VARIANTS = ("global", "local")
VARIANT_TITLES = {
    "global": "global SFT (one condition network over all K maps, shared by every block)",
    "local": "local SFT (one condition map per block, deepest first)",
}
TARGETS = ("deepest", "mean")
TARGET_TITLES = {
    "deepest": "Grad-CAM of the deepest spatial layer (the paper's training target)",
    "mean": "the mean of every layer's Grad-CAM (the last cumulative map)",
}
MAX_K = 16
MAX_STEPS = 10_000_000
MAX_BATCH = 4096


@dataclass(frozen=True)
class UnitSpec:
    """The explained unit: ``index`` of layer ``layer`` (the vocal logit by default).

    A fully connected unit is its activation; a convolutional unit (a channel) is its mean over time
    and frequency. ``sign = -1`` explains the negated unit (for the logit: "what speaks against voice").
    """

    layer: str = "logit"
    index: int = 0
    sign: int = 1

    def __post_init__(self) -> None:
        if self.layer not in SVDNet.layer_names:
            raise ParameterError(f"unknown layer {self.layer!r}; layers: {list(SVDNet.layer_names)}")
        _int("unit index", self.index, 0, 1_000_000)
        if self.sign not in (1, -1):
            raise ParameterError(f"sign must be 1 or -1, got {self.sign!r}")

    @property
    def label(self) -> str:
        return f"{'-' if self.sign < 0 else ''}{self.layer}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UnitSpec:
        return config_from_dict(cls, d, "unit")


@dataclass(frozen=True)
class ExplainerConfig:
    """Training of one conditional-GAN explainer (Guna, Sikha & Benitez): generator G(x, K maps) -> map.

    Loss of G: ``l1_weight * L1(G, target) + adv_weight * BCE(D(x, G), real)``; D: a real logit
    (the public code's one-unit softmax is constant, so it passes no gradient). Adam ``lr``, betas
    ``(beta1, 0.999)`` for both.
    """

    variant: str = "global"  # global | local (VARIANT_TITLES)
    k: int = 0  # condition maps; 0 = min(8, spatial layers of the classifier)
    target: str = "deepest"  # deepest | mean (TARGET_TITLES)
    width: int = 32  # generator channels (at half resolution)
    blocks: int = 0  # residual SFT blocks; 0 = K (local: one per condition map, as in the paper)
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-4
    beta1: float = 0.5
    l1_weight: float = 100.0
    adv_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ParameterError(f"unknown explainer variant {self.variant!r}; choose from {list(VARIANTS)}")
        if self.target not in TARGETS:
            raise ParameterError(f"unknown explainer target {self.target!r}; choose from {list(TARGETS)}")
        _int("k", self.k, 0, MAX_K)
        _int("width", self.width, 4, 256)
        _int("blocks", self.blocks, 0, 32)
        _int("steps", self.steps, 1, MAX_STEPS)
        _int("batch_size", self.batch_size, 1, MAX_BATCH)
        _float("lr", self.lr, 0.0, 1.0, lo_open=True)
        _float("beta1", self.beta1, 0.0, 1.0, hi_open=True)
        _float("l1_weight", self.l1_weight, 0.0, 1e6)
        _float("adv_weight", self.adv_weight, 0.0, 1e6)
        if self.l1_weight == 0 and self.adv_weight == 0:
            raise ParameterError("l1_weight and adv_weight are both 0: nothing to train")
        _int("seed", self.seed, 0, 2**62)
        _int("checkpoint_every", self.checkpoint_every, 0, MAX_STEPS)
        if self.variant == "local" and self.blocks not in (0, self.k) and self.k:
            raise ParameterError(f"a local explainer has one block per condition map: blocks must be 0 or k={self.k}, "
                                 f"got {self.blocks}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExplainerConfig:
        return config_from_dict(cls, d, "explainer")


@dataclass(frozen=True)
class FaithConfig:
    """Deletion and insertion curves: bins removed (or revealed) from the most relevant down.

    ``steps`` fractions from 0 to 1; removed bins take the value 0 of the classifier's normalised input
    (its per-band training mean); ``n_random`` random orders give the baseline area.
    """

    steps: int = 20
    n_random: int = 3
    seed: int = 0
    batch: int = 256  # perturbed excerpts per forward pass

    def __post_init__(self) -> None:
        _int("steps", self.steps, 2, 1000)
        _int("n_random", self.n_random, 1, 100)
        _int("seed", self.seed, 0, 2**62)
        _int("batch", self.batch, 1, 65536)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
