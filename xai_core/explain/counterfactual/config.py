"""The counterfactual method's settings: one frozen, validated dataclass (the CLI and the page build the same).

The method is this project's own (issue 19, part 4; no paper): invert a real excerpt into the generator's
latent space, then run GAN-based activation maximisation (METHODS section 4) from that code, toward more
and/or less vocal, with a proximity term that keeps the code near the inverted one. Every default below is
a choice made here, measured on the demo (README, "Counterfactuals"), not a published setting.

Conventions
-----------
* Inversion: minimise, per restart, ``MSE(norm(G(z)), norm(x)) + (invert_prior / 2) * ||z||^2``, the
  mean squared error in the classifier's normalised input space (per-band z-scores) plus the negative
  log-density of ``N(0, I)`` weighted by ``invert_prior`` (the "paper" convention of
  :mod:`xai_core.actmax.config`).
* Counterfactual AM: ascend ``sign * a(z) - c * ||z||^2 - beta * ||z - z_inv||^2`` with ``a`` the vocal
  logit, ``sign`` +1 (max, more vocal) or -1 (min, less vocal), and ``c`` the penalty of ``am_lam`` under
  ``prior`` (exactly AM's score); ``beta = 0`` is plain AM started from ``z_inv``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from xai_core.actmax.config import MAX_ITER, MAX_LAM, MAX_LR, PRIORS, direction_sign, penalty_coefficient
from xai_core.errors import ParameterError
from xai_core.validation import check_float, check_int, config_from_dict

MAX_RESTARTS = 256
MAX_BETA = 1e6
MAX_SEED = 2**32 - 1  # the CLI's seed range; restart r starts from the code of seed + r
DIRECTION_TITLES = {"max": "more vocal", "min": "less vocal"}
WAV_NAMES = {"max": "more_vocal.wav", "min": "less_vocal.wav"}  # the kept examples' files (CLI, export)


@dataclass(frozen=True)
class CounterfactualConfig:
    """Inversion of one excerpt, then activation maximisation from the inverted code toward max and/or min."""

    restarts: int = 8  # inversion restarts, optimised together in one batch; restart r starts from z0 of seed + r
    invert_steps: int = 200  # Adam updates of the inversion (the restarts have converged by then on the demo)
    invert_lr: float = 0.1  # Adam learning rate of the inversion
    invert_prior: float = 0.001  # weight w of the Gaussian prior in the inversion: + (w / 2) ||z||^2
    beta: float = 0.1  # proximity weight: - beta ||z - z_inv||^2 in the ascended AM score (0 = plain AM)
    am_lr: float = 0.01  # Adam learning rate of the AM from z_inv (the AM page's default)
    am_iters: int = 100  # AM updates per direction; the iterates z_0 = z_inv .. z_am_iters are scored
    am_lam: float = 0.01  # AM prior weight (meaning set by ``prior``)
    prior: str = "paper"  # AM prior convention: "paper" (lam/2)||z||^2 or "code" lam ||z||^2
    directions: tuple[str, ...] = ("max", "min")  # "max": more vocal, "min": less vocal
    trace_every: int = 5  # trajectory: z, logit, p(vocal) and log-mel every this many AM steps (and the last)
    spread_quantile: float = 0.5  # the reconstruction fails above this quantile of the real-vs-real spread
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("restarts", self.restarts, 1, MAX_RESTARTS)
        check_int("invert_steps", self.invert_steps, 1, MAX_ITER)
        check_float("invert_lr", self.invert_lr, 0.0, MAX_LR, lo_open=True)
        check_float("invert_prior", self.invert_prior, 0.0, MAX_LAM)
        check_float("beta (proximity weight)", self.beta, 0.0, MAX_BETA)
        check_float("am_lr", self.am_lr, 0.0, MAX_LR, lo_open=True)
        check_int("am_iters", self.am_iters, 1, MAX_ITER)
        check_float("am_lam", self.am_lam, 0.0, MAX_LAM)
        if self.prior not in PRIORS:
            raise ParameterError(f"unknown prior convention {self.prior!r}; choose from {PRIORS}")
        dirs = self.directions
        if isinstance(dirs, str) or not hasattr(dirs, "__iter__"):
            raise ParameterError(f"directions must be a sequence of 'max' / 'min', got {dirs!r}")
        dirs = tuple(dirs)
        if not dirs or len(set(dirs)) != len(dirs):
            raise ParameterError(f"directions must name 'max' and/or 'min' once each, got {dirs!r}")
        for d in dirs:
            direction_sign(d)
        object.__setattr__(self, "directions", dirs)
        check_int("trace_every", self.trace_every, 1, MAX_ITER)
        check_float("spread_quantile", self.spread_quantile, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("seed", self.seed, 0, MAX_SEED)

    @property
    def penalty(self) -> float:
        """Coefficient ``c`` of AM's prior penalty ``c * ||z||^2``."""
        return penalty_coefficient(self.prior, self.am_lam)

    @property
    def trace_steps(self) -> tuple[int, ...]:
        """The AM steps recorded in the trajectory: ``0, k, 2k, ...`` and always the last one."""
        steps = list(range(0, self.am_iters + 1, self.trace_every))
        if steps[-1] != self.am_iters:
            steps.append(self.am_iters)
        return tuple(steps)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["directions"] = list(self.directions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CounterfactualConfig:
        if isinstance(d, dict) and isinstance(d.get("directions"), list):
            d = {**d, "directions": tuple(d["directions"])}
        return config_from_dict(cls, d, "counterfactual")
