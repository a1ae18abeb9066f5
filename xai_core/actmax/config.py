"""Configurations of GAN-based activation maximisation (METHODS section 4) and its FID grid (section 5).

Two conventions for the latent prior are offered, because the paper and the authors' code differ:

* ``prior="paper"``: the objective is ``a(z) + lam * log N(z; 0, I)``, i.e. the penalty is
  ``(lam / 2) * ||z||^2`` (the paper's definition).
* ``prior="code"``: the authors' code applies its grid value directly: penalty ``lam * ||z||^2``.
  The paper's published grid values (0.1, 0.01, 0.001) are values of this ``rp``, hence the grid's
  default ``prior="code"``.

Both conventions use the correct sign for minimisation: the ascended objective is always
``sign * a(z) - penalty(z)`` with ``sign = +1`` (max) or ``-1`` (min).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from xai_core.errors import ParameterError
from xai_core.models.svdnet import SVDNet

DIRECTIONS = ("max", "min")
PRIORS = ("paper", "code")
PRIOR_HELP = {
    "paper": "paper: objective a(z) + lam*log N(z;0,I), i.e. penalty (lam/2)*||z||^2",
    "code": "code: the authors' code, penalty lam*||z||^2 (the paper's grid values are this rp)",
}
FEATURE_RESPONSE = "response"  # FID feature space: the explained unit's scalar response


def penalty_coefficient(prior: str, lam: float) -> float:
    """Coefficient ``c`` of the penalty ``c * ||z||^2`` for a prior convention and weight ``lam``."""
    if prior == "paper":
        return lam / 2.0
    if prior == "code":
        return float(lam)
    raise ParameterError(f"unknown prior convention {prior!r}; choose from {PRIORS}")


def direction_sign(direction: str) -> float:
    """+1 for ``"max"``, -1 for ``"min"``."""
    if direction not in DIRECTIONS:
        raise ParameterError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return 1.0 if direction == "max" else -1.0


def _check_layer(layer: str) -> None:
    if layer not in SVDNet.layer_names:
        raise ParameterError(f"unknown layer {layer!r}; valid layers: {list(SVDNet.layer_names)}")


# Upper bounds of the settings (the paper's grid: lr <= 0.1, lam <= 0.1, 1000 iterations, 50 examples); far
# beyond them a run only burns the machine (10**9 iterations) or overflows (lam = 1e308 makes the penalty inf).
MAX_LR = 100.0
MAX_LAM = 1e6
MAX_ITER = 100_000
MAX_EXAMPLES = 4096
MAX_SEED = 2**63 - 1 - MAX_EXAMPLES  # seeds seed .. seed + n_examples - 1 must fit torch's 64-bit seed
MAX_UNIT = 2**31 - 1  # checked against the layer's real size when the model is known


def _check_positive(name: str, value: float, maximum: float = MAX_LR) -> None:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                       and 0 < value <= maximum):
        raise ParameterError(f"{name} must be a finite number in (0, {maximum:g}], got {value!r}")


def _check_lam(value: float) -> None:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                       and 0 <= value <= MAX_LAM):
        raise ParameterError(f"lam (prior weight) must be a finite number in [0, {MAX_LAM:g}], got {value!r}")


def _check_int(name: str, value, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum \
            or (maximum is not None and value > maximum):
        accepted = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ParameterError(f"{name} must be an integer {accepted}, got {value!r}")


@dataclass(frozen=True)
class AMConfig:
    """One activation-maximisation configuration (S examples from seeds ``seed .. seed+S-1``)."""

    layer: str = "logit"  # any SVDNet layer name
    unit: int = 0  # index into the layer's flattened per-example output (0 for the logit)
    direction: str = "max"  # "max" or "min"
    lr: float = 0.01  # Adam learning rate on z
    lam: float = 0.01  # prior weight (meaning set by ``prior``)
    prior: str = "paper"  # "paper": penalty (lam/2)||z||^2 ; "code": penalty lam*||z||^2
    n_iter: int = 100  # Adam updates; iterates z_0 .. z_n_iter are scored
    n_examples: int = 50  # S independent runs
    seed: int = 0  # example i starts from z0 drawn with seed (seed + i)

    def __post_init__(self) -> None:
        _check_layer(self.layer)
        _check_int("unit", self.unit, 0, MAX_UNIT)
        direction_sign(self.direction)
        _check_positive("lr", self.lr)
        _check_lam(self.lam)
        penalty_coefficient(self.prior, self.lam)
        _check_int("n_iter", self.n_iter, 1, MAX_ITER)
        _check_int("n_examples", self.n_examples, 1, MAX_EXAMPLES)
        _check_int("seed", self.seed, 0, MAX_SEED)

    @property
    def penalty(self) -> float:
        """Coefficient ``c`` of the penalty ``c * ||z||^2`` actually used."""
        return penalty_coefficient(self.prior, self.lam)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AMConfig:
        if not isinstance(d, dict):
            raise ParameterError(f"an AMConfig must be a mapping of its fields, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class GridConfig:
    """The paper's selection grid: lrs x lams x iteration counts x directions, FID per cell."""

    lrs: tuple[float, ...] = (0.1, 0.01, 0.001)  # Adam learning rates
    lams: tuple[float, ...] = (0.1, 0.01, 0.001)  # prior weights (meaning set by ``prior``)
    iters: tuple[int, ...] = (100, 500, 1000)  # snapshots of one trajectory of max(iters) updates
    directions: tuple[str, ...] = ("max", "min")
    layer: str = "logit"  # explained layer
    unit: int = 0  # explained unit (flattened index)
    prior: str = "code"  # the paper's grid values are the code's rp (penalty lam*||z||^2)
    n_examples: int = 50  # seeds seed .. seed+n_examples-1, the same z0 for every configuration
    seed: int = 0
    n_reference: int = 50  # top-/bottom-N real excerpts by the explained unit's response
    per_clip: int | None = 4  # at most this many of them from one source clip (None: no cap; data/quality.py)
    feature_layers: tuple[str, ...] = ("response", "fc2")  # FID spaces: scalar response, hidden layers
    max_chunk: int | None = None  # max examples per device batch (None = automatic)

    def __post_init__(self) -> None:
        for name in ("lrs", "lams", "iters", "directions", "feature_layers"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ParameterError(f"{name} must be a sequence, got {value!r}")
            value = tuple(value)
            if not value:
                raise ParameterError(f"{name} must not be empty")
            if len(set(value)) != len(value):
                raise ParameterError(f"{name} has repeated values: {value!r}")
            object.__setattr__(self, name, value)
        for lr in self.lrs:
            _check_positive("lr", lr)
        for lam in self.lams:
            _check_lam(lam)
        for it in self.iters:
            _check_int("iteration count", it, 1, MAX_ITER)
        object.__setattr__(self, "lrs", tuple(float(v) for v in self.lrs))
        object.__setattr__(self, "lams", tuple(float(v) for v in self.lams))
        object.__setattr__(self, "iters", tuple(sorted(int(v) for v in self.iters)))
        for d in self.directions:
            direction_sign(d)
        _check_layer(self.layer)
        _check_int("unit", self.unit, 0, MAX_UNIT)
        penalty_coefficient(self.prior, 0.0)
        _check_int("n_examples", self.n_examples, 2, MAX_EXAMPLES)  # FID needs a covariance
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_int("n_reference", self.n_reference, 2, 100_000)
        if self.per_clip is not None:
            _check_int("per_clip", self.per_clip, 1, 100_000)
        for f in self.feature_layers:
            if f != FEATURE_RESPONSE:
                try:
                    _check_layer(f)
                except ParameterError as exc:
                    raise ParameterError(f"feature layer {f!r} is neither {FEATURE_RESPONSE!r} nor a "
                                         f"layer: {exc}") from None
        if self.max_chunk is not None:
            _check_int("max_chunk", self.max_chunk, 1, MAX_EXAMPLES)

    @property
    def n_iter(self) -> int:
        """Length of the one trajectory whose prefixes give every iteration count."""
        return max(self.iters)

    @property
    def n_configs(self) -> int:
        """Configurations per direction (the paper: 27)."""
        return len(self.lrs) * len(self.lams) * len(self.iters)

    def groups(self) -> list[tuple[str, float, float]]:
        """The (direction, lr, lam) groups; each is one trajectory per seed."""
        return [(d, lr, lam) for d in self.directions for lr in self.lrs for lam in self.lams]

    def am_config(self, direction: str, lr: float, lam: float, n_iter: int) -> AMConfig:
        """The single configuration of one grid cell."""
        return AMConfig(layer=self.layer, unit=self.unit, direction=direction, lr=lr, lam=lam,
                        prior=self.prior, n_iter=n_iter, n_examples=self.n_examples, seed=self.seed)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("lrs", "lams", "iters", "directions", "feature_layers"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GridConfig:
        if not isinstance(d, dict):
            raise ParameterError(f"a GridConfig must be a mapping of its fields, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})
