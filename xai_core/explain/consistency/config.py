"""Configs of the attacks, of neuron consistency and of consistent-loss adversarial training.

Frozen dataclasses validated at construction (a :class:`ParameterError` names the bad value); the
CLI and the page build the same objects.

Units. The classifier reads natural-log mel magnitudes (METHODS section 1), normalised per band.
Epsilons are given in **dB of the un-normalised mel magnitude**: an L-infinity bound of ``e`` dB lets
every time-frequency bin get at most ``e`` dB louder or quieter. ``e`` dB is ``e * ln(10) / 20``
natural-log units (:func:`db_to_log`); the attacks run in that log-mel domain and normalise inside
the forward pass, so the bound holds exactly in dB for every band (the per-band z-score turns it into
``e * ln(10) / 20 / std_b`` in the normalised input, different per band).

Defaults (the paper published no code; its epsilons, k and loss weights are unknown):

* ``eps_db = 1.0``: about the just-noticeable difference of level of a steady sound (about 1 dB), so
  a 1 dB attack is, per bin, at the edge of audibility, while it changes the normalised input by only
  about 0.1 of a band's standard deviation (the demo's bands have std 1.0-1.5 natural-log units).
  On the demo classifier PGD changes every decision on test-split excerpts there (78 % at 0.25 dB), and
  about half of those of its adversarially trained versions (README, measured).
* PGD with 10 steps of ``2.5 * eps / steps`` and a random start (Madry et al. 2018's recipe).
* ``k = 20`` top inputs per unit: about 8 % of the shipped 256-excerpt concept set, small enough to be
  the units' strongest inputs, large enough that purity is not dominated by the 1/k diagonal term.
* ``mu = 1.0`` on the mean squared feature difference of ``fc2``: the feature term is a mean over
  units (not a sum), so ``mu`` does not grow with the layer's width; at 1.0 it is of the order of the
  two cross-entropy terms at the start of fine-tuning on the demo (measured, README).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from xai_core.errors import ParameterError
from xai_core.models.svdnet import SVDNet
from xai_core.validation import check_float as _float
from xai_core.validation import check_int as _int
from xai_core.validation import config_from_dict as _from_dict

METHODS = ("fgsm", "pgd")
GOALS = ("untargeted", "to-non-vocal", "to-vocal")
GOAL_TITLES = {
    "untargeted": "away from its label (vocal -> non-vocal, non-vocal -> vocal)",
    "to-non-vocal": "targeted: make it read as non-vocal",
    "to-vocal": "targeted: make it read as vocal",
}
REDUCTIONS = ("mean", "max")
MAX_EPS_DB = 60.0  # beyond this an "adversarial example" is a different sound, not a perturbation
MAX_STEPS = 10_000_000
MAX_ATTACK_STEPS = 10_000
MAX_BATCH = 4096
# Excerpts per pass when a config says 0 ("auto"). On the CPU small chunks are fastest: one lite excerpt's
# conv1 map is 0.56 MB, and 8-16 of them stay in cache (measured, 2 cores: PGD-10 on 64 excerpts 1.7-2.0 s
# in chunks of 8-16, 2.3-2.6 s in 32s, 3.8-4.0 s in one batch of 64, 2.3-2.7 s one excerpt at a time;
# forward passes for the responses 0.3 s per 256 excerpts in chunks of 8-32, 0.7 s in 64 or more).
# A GPU wants large batches.
AUTO_BATCH = {"cpu": (16, 32), "cuda": (512, 1024)}  # device type -> (attack, responses)


def auto_batch(batch_size: int, device, *, responses: bool = False) -> int:
    """``batch_size``, or for 0 the measured good size on ``device`` (``AUTO_BATCH``)."""
    if batch_size:
        return batch_size
    sizes = AUTO_BATCH.get(getattr(device, "type", str(device)), AUTO_BATCH["cuda"])
    return sizes[1] if responses else sizes[0]


def db_to_log(db: float) -> float:
    """``db`` decibels of magnitude as a difference of natural-log magnitude: ``db * ln(10) / 20``."""
    return db * math.log(10.0) / 20.0


def log_to_db(d: float) -> float:
    return d * 20.0 / math.log(10.0)


@dataclass(frozen=True)
class AttackConfig:
    """An L-infinity attack on the classifier's input (log-mel, bounded in dB)."""

    method: str = "pgd"  # fgsm (one step of size eps) | pgd (iterated, projected)
    eps_db: float = 1.0  # L-inf bound in dB of mel magnitude per time-frequency bin
    steps: int = 10  # PGD iterations (FGSM: 1)
    step_db: float | None = None  # PGD step size in dB; None = 2.5 * eps / steps
    random_start: bool = True  # PGD starts at a uniform random point of the eps-ball
    goal: str = "untargeted"  # see GOAL_TITLES
    seed: int = 0  # the random start
    batch_size: int = 0  # excerpts per forward/backward pass; 0 = auto (16 on the CPU, 512 on CUDA)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"unknown attack {self.method!r}; choose from {list(METHODS)}")
        if self.goal not in GOALS:
            raise ParameterError(f"unknown attack goal {self.goal!r}; choose from {list(GOALS)}")
        _float("eps_db", self.eps_db, 0.0, MAX_EPS_DB, lo_open=True)
        _int("steps", self.steps, 1, MAX_ATTACK_STEPS)
        if self.step_db is not None:
            _float("step_db", self.step_db, 0.0, MAX_EPS_DB, lo_open=True)
        if not isinstance(self.random_start, bool):
            raise ParameterError(f"random_start must be True or False, got {self.random_start!r}")
        _int("seed", self.seed, 0, 2**62)
        _int("batch_size", self.batch_size, 0, MAX_BATCH)

    @property
    def n_steps(self) -> int:
        return 1 if self.method == "fgsm" else self.steps

    @property
    def eps_log(self) -> float:
        """The bound in natural-log units of mel magnitude."""
        return db_to_log(self.eps_db)

    @property
    def step_log(self) -> float:
        if self.method == "fgsm":
            return self.eps_log
        return db_to_log(self.step_db) if self.step_db is not None else 2.5 * self.eps_log / self.steps

    def describe(self) -> str:
        if self.method == "fgsm":
            return f"FGSM, eps {self.eps_db:g} dB, {self.goal}"
        step = self.step_db if self.step_db is not None else 2.5 * self.eps_db / self.steps
        return (f"PGD, eps {self.eps_db:g} dB, {self.steps} steps of {step:.3g} dB"
                f"{', random start' if self.random_start else ''}, {self.goal}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AttackConfig:
        return _from_dict(cls, d, "attack")


@dataclass(frozen=True)
class ConsistencyConfig:
    """consis(n) = p^T A p over the top-k inputs of every unit of the chosen layers."""

    k: int = 20  # top-activating inputs per unit
    concept: str = "graded"  # a concept scheme (see concepts.SCHEMES) or a tag name of the excerpt set
    reduce: str = "mean"  # a conv channel's response: its spatial mean (default) or max
    layers: tuple[str, ...] = SVDNet.layer_names  # layers whose units are scored
    clusters: int = 0  # > 0: add a "cluster" tag, k-means of the log-mel into this many concepts
    seed: int = 0  # the k-means initialisation
    batch_size: int = 0  # excerpts per forward pass; 0 = auto (32 on the CPU, 1024 on CUDA)

    def __post_init__(self) -> None:
        layers = (self.layers,) if isinstance(self.layers, str) else self.layers  # one name, not its letters
        object.__setattr__(self, "layers", tuple(layers))
        _int("k", self.k, 1, 1_000_000)
        if not isinstance(self.concept, str) or not self.concept:
            raise ParameterError(f"concept must be a scheme or tag name, got {self.concept!r}")
        if self.reduce not in REDUCTIONS:
            raise ParameterError(f"unknown reduction {self.reduce!r}; choose from {list(REDUCTIONS)}")
        if not self.layers:
            raise ParameterError("give at least one layer")
        for layer in self.layers:
            if layer not in SVDNet.layer_names:
                raise ParameterError(f"unknown layer {layer!r}; valid layers: {list(SVDNet.layer_names)}")
        if self.clusters != 0:
            _int("clusters", self.clusters, 2, 100_000)
        _int("seed", self.seed, 0, 2**62)
        _int("batch_size", self.batch_size, 0, MAX_BATCH)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ConsistencyConfig:
        return _from_dict(cls, d, "consistency")


@dataclass(frozen=True)
class RobustConfig:
    """Consistent-loss adversarial training (Dong et al.):
    ``CE(f(x), y) + CE(f(x_adv), y) + mu * mean((phi_l(x) - phi_l(x_adv))^2)``; ``mu = 0`` is plain
    adversarial training (the ablation)."""

    mu: float = 1.0  # weight of the consistent (feature) term; 0 = plain adversarial training
    layer: str = "fc2"  # phi_l: the layer whose features are pulled together
    eps_db: float = 1.0  # the training attack's bound (dB)
    attack_steps: int = 3  # PGD steps of the on-the-fly attack (random start, step 2.5 eps / steps)
    init: str = "finetune"  # finetune (start from the given classifier) | scratch (fresh weights)
    steps: int = 2000  # optimisation steps (batches)
    batch_size: int = 32
    lr: float = 1e-4  # Adam; small, since fine-tuning starts from a trained model
    smoothing: float = 0.02  # label smoothing of both CE terms (the classifier's own recipe)
    seed: int = 0
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        _float("mu", self.mu, 0.0, 1e6)
        if self.layer not in SVDNet.layer_names:
            raise ParameterError(f"unknown layer {self.layer!r}; valid layers: {list(SVDNet.layer_names)}")
        _float("eps_db", self.eps_db, 0.0, MAX_EPS_DB, lo_open=True)
        _int("attack_steps", self.attack_steps, 1, MAX_ATTACK_STEPS)
        if self.init not in ("finetune", "scratch"):
            raise ParameterError(f"init must be 'finetune' or 'scratch', got {self.init!r}")
        _int("steps", self.steps, 1, MAX_STEPS)
        _int("batch_size", self.batch_size, 1, MAX_BATCH)
        _float("lr", self.lr, 0.0, 10.0, lo_open=True)
        _float("smoothing", self.smoothing, 0.0, 0.49)
        _int("seed", self.seed, 0, 2**62)
        _int("checkpoint_every", self.checkpoint_every, 0, MAX_STEPS)

    @property
    def name(self) -> str:
        return "consistent-loss adversarial training" if self.mu > 0 else "plain adversarial training"

    def attack(self) -> AttackConfig:
        """The on-the-fly attack (PGD, untargeted, random start)."""
        return AttackConfig(method="pgd", eps_db=self.eps_db, steps=self.attack_steps, goal="untargeted",
                            seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RobustConfig:
        return _from_dict(cls, d, "robust training")
