"""Configs of ClaDec training and of its retraining evaluation (frozen, validated at construction)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from xai_core.errors import ParameterError
from xai_core.models.svdnet import SVDNet
from xai_core.validation import check_float as _float
from xai_core.validation import check_int as _int
from xai_core.validation import config_from_dict

VARIANTS = ("cladec", "refae", "random")
VARIANT_TITLES = {
    "cladec": "ClaDec (decoder of the explained classifier's layer)",
    "refae": "RefAE (reference auto-encoder: same architecture, trained end to end on reconstruction)",
    "random": "random features (decoder of a randomly re-initialised copy of the classifier)",
}
MAX_STEPS = 10_000_000  # bounds that a config read from a file cannot exceed
MAX_BATCH = 4096


@dataclass(frozen=True)
class CladecConfig:
    """Training of one decoder (ClaDec, its reference auto-encoder or the random-feature floor)."""

    layer: str = "fc2"  # decoded layer of the classifier (conv1 ... fc2, logit)
    variant: str = "cladec"  # cladec | refae | random (see VARIANT_TITLES)
    alpha: float = 0.001  # weight of the classifier term: (1-a) MSE + a BCE(C(x_hat), y); RefAE uses 0
    steps: int = 1500  # optimisation steps (batches)
    batch_size: int = 32  # excerpts per step
    lr: float = 1e-3  # Adam learning rate (betas 0.9 / 0.999)
    width: float = 1.0  # decoder channels relative to the encoder's
    seed: int = 0  # decoder (and RefAE / random encoder) initialisation and batch sampling
    checkpoint_every: int = 200  # steps between resumable checkpoints

    def __post_init__(self) -> None:
        if self.layer not in SVDNet.layer_names:
            raise ParameterError(f"unknown layer {self.layer!r}; decodable layers: {list(SVDNet.layer_names)}")
        if self.variant not in VARIANTS:
            raise ParameterError(f"unknown decoder variant {self.variant!r}; choose from {list(VARIANTS)}")
        _float("alpha", self.alpha, 0.0, 1.0, hi_open=True)
        _int("steps", self.steps, 1, MAX_STEPS)
        _int("batch_size", self.batch_size, 1, MAX_BATCH)
        _float("lr", self.lr, 0.0, 10.0, lo_open=True)
        _float("width", self.width, 0.05, 8.0)
        _int("seed", self.seed, 0, 2**62)
        _int("checkpoint_every", self.checkpoint_every, 0, MAX_STEPS)

    @property
    def effective_alpha(self) -> float:
        """The classifier term's weight actually used: 0 for RefAE (reconstruction alone)."""
        return 0.0 if self.variant == "refae" else self.alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CladecConfig:
        return config_from_dict(cls, d, "ClaDec")


@dataclass(frozen=True)
class EvalConfig:
    """The retraining evaluation: fresh classifiers trained on reconstructions, tested on the test split."""

    n_train: int = 4096  # excerpts of the training split (reconstructed once per decoder)
    n_test: int = 2048  # excerpts of the test split
    steps: int = 600  # optimisation steps of each retrained classifier
    batch_size: int = 32
    lr: float = 1e-3  # Adam; the short budget rules out the paper's slow SGD schedule
    seed: int = 0  # excerpt drawing and the retrained classifiers' initialisation

    def __post_init__(self) -> None:
        _int("n_train", self.n_train, 2, 1_000_000)
        _int("n_test", self.n_test, 2, 1_000_000)
        _int("steps", self.steps, 1, MAX_STEPS)
        _int("batch_size", self.batch_size, 1, MAX_BATCH)
        _float("lr", self.lr, 0.0, 10.0, lo_open=True)
        _int("seed", self.seed, 0, 2**62)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
