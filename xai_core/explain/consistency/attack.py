"""L-infinity attacks on the classifier's input: FGSM and PGD, untargeted and targeted, batched.

The attacks run in the un-normalised log-mel domain ``x`` (natural log of mel magnitude), with the
classifier's per-band normalisation inside the forward pass, so an epsilon in dB bounds every
time-frequency bin's level change exactly (see :mod:`.config`). Adversarial inputs stay *valid*
log-mel spectrograms: no value goes below the log floor ``log(log_floor)`` or above ``log(sum of the
STFT window)``, the largest mel magnitude a full-scale signal in [-1, 1] can have (each mel filter
sums to one, so a band cannot exceed the largest STFT bin, which cannot exceed the window's sum).
A value already outside that range (a generated example) is never pushed further out.

The decision is the classifier's own: ``p(vocal) > threshold`` with the threshold tuned on validation
when the bundle records one (else 0.5); success means crossing that boundary, which is what the
detector reports. (The attack's loss is the cross-entropy of the logit shifted by ``logit(threshold)``;
its gradient with respect to the logit, ``sigmoid(z - b) - y``, has the same sign for any ``b`` when ``y``
is 0 or 1, so the sign steps of FGSM and PGD do not depend on the threshold: only the success does.)

Why our own code rather than an attack library: torchattacks (the well-kept choice) clamps inputs to
[0, 1] images, takes one scalar epsilon and needs torchvision, which does not import beside this
project's pinned torch build; the steps themselves are a few lines, tested against a hand-computed
sign-gradient step on a tiny model (tests/explain/test_consistency.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from xai_core.audio.config import MelConfig
from xai_core.checkpoints import Bundle
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.common import check_classifier
from xai_core.explain.consistency.config import AttackConfig, auto_batch, log_to_db
from xai_core.models.hooks import frozen
from xai_core.models.svdnet import SVDNet

Progress = Callable[[int, int, dict], object]


def input_bounds(mel: MelConfig) -> tuple[float, float]:
    """Valid range of log-mel values: the log floor and the log of the STFT window's sum."""
    window_sum = float(torch.hann_window(mel.n_fft, periodic=True, dtype=torch.float64).sum())
    return mel.log_min, math.log(window_sum)


def decision_threshold(classifier: Bundle) -> float:
    """The probability threshold of the classifier's decision: the bundle's tuned one, else 0.5."""
    from xai_core.detect import bundle_threshold

    thr = bundle_threshold(classifier)
    return 0.5 if thr is None or not 0.0 < thr < 1.0 else float(thr)


def check_excerpts(logmel: torch.Tensor, model: SVDNet, name: str = "excerpts") -> None:
    cfg = model.config
    if not isinstance(logmel, torch.Tensor) or logmel.ndim != 3 or tuple(logmel.shape[1:]) != (cfg.n_frames,
                                                                                               cfg.n_mels):
        shape = tuple(logmel.shape) if isinstance(logmel, torch.Tensor) else type(logmel).__name__
        raise ParameterError(f"{name} must be log-mel (N, {cfg.n_frames}, {cfg.n_mels}), got {shape}")
    if logmel.shape[0] == 0:
        raise ParameterError(f"no {name} given")
    if not torch.isfinite(logmel).all():
        raise ParameterError(f"{name} contain non-finite values")


def perturb(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, ascend: bool, eps: float, step: float,
            steps: int, random_start: bool, bounds: tuple[float, float], mean: torch.Tensor, std: torch.Tensor,
            offset: float = 0.0, generator: torch.Generator | None = None,
            on_step: Callable[[int], object] | None = None) -> torch.Tensor:
    """The attack's inner loop on one batch (pure: no bundle, no chunking).

    Parameters
    ----------
    model : maps normalised ``(B, 1, T, M)`` to logits ``(B,)``; its parameters are not touched
        (gradients are taken with respect to the input only)
    x : torch.Tensor, shape ``(B, T, M)``, un-normalised log-mel
    target : torch.Tensor, shape ``(B,)`` in {0, 1}: the class whose cross-entropy is ascended
        (``ascend=True``: untargeted, away from it) or descended (``ascend=False``: towards it)
    eps, step : L-inf bound and step size in natural-log units
    steps : iterations (1 with ``step = eps`` and no random start is FGSM)
    bounds : valid value range (:func:`input_bounds`)
    mean, std : the normaliser's per-band statistics ``(M,)``
    offset : subtracted from the logit (``logit(threshold)``: the decision boundary at 0)

    Returns
    -------
    torch.Tensor, shape ``(B, T, M)``: within ``eps`` of ``x`` and inside the valid range (detached)
    """
    lo = torch.minimum(x, torch.full_like(x, bounds[0]))  # never push an out-of-range value further out
    hi = torch.maximum(x, torch.full_like(x, bounds[1]))
    lower, upper = torch.maximum(x - eps, lo), torch.minimum(x + eps, hi)  # (B, T, M) the feasible box
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)  # (B, T, M)
        xa = torch.minimum(torch.maximum(x + (2.0 * noise - 1.0) * eps, lower), upper)
    else:
        xa = x.clone()
    target = target.to(x.dtype)
    for i in range(steps):
        xa = xa.detach().requires_grad_(True)
        z = model(((xa - mean) / std)[:, None]) - offset  # (B,)
        loss = F.binary_cross_entropy_with_logits(z, target, reduction="sum")  # per-example gradients
        (grad,) = torch.autograd.grad(loss, xa)  # (B, T, M)
        direction = grad.sign() if ascend else -grad.sign()
        xa = torch.minimum(torch.maximum(xa.detach() + step * direction, lower), upper)
        if on_step is not None:
            on_step(i + 1)
    return xa.detach()


@dataclass
class AttackResult:
    """Excerpts and their adversarial versions, with the classifier's outputs before and after.

    Tensors are on the CPU. ``targets`` is the class each attack pushes towards (for the untargeted
    attack the class opposite the excerpt's label, or its predicted class when no labels are given).
    """

    logmel: torch.Tensor  # (B, T, M) un-normalised log-mel
    adversarial: torch.Tensor  # (B, T, M)
    labels: torch.Tensor  # (B,) 1 = singing, 0 = not (the model's own decision where labels were unknown)
    targets: torch.Tensor  # (B,) the class pushed towards
    logit: torch.Tensor  # (B,) before
    logit_adv: torch.Tensor  # (B,) after
    threshold: float  # decision threshold on p(vocal)
    config: AttackConfig
    labels_known: bool = True

    @property
    def prob(self) -> torch.Tensor:
        return torch.sigmoid(self.logit)  # (B,)

    @property
    def prob_adv(self) -> torch.Tensor:
        return torch.sigmoid(self.logit_adv)  # (B,)

    @property
    def pred(self) -> torch.Tensor:
        return (self.prob > self.threshold).float()  # (B,)

    @property
    def pred_adv(self) -> torch.Tensor:
        return (self.prob_adv > self.threshold).float()  # (B,)

    @property
    def eligible(self) -> torch.Tensor:
        """Excerpts the attack has to change: not already decided as the target class."""
        return self.pred != self.targets  # (B,) bool

    @property
    def success(self) -> torch.Tensor:
        """Eligible excerpts now decided as the target class."""
        return self.eligible & (self.pred_adv == self.targets)  # (B,) bool

    @property
    def perturbation_db(self) -> torch.Tensor:
        """Largest level change per excerpt, in dB (at most ``eps_db``)."""
        return log_to_db(1.0) * (self.adversarial - self.logmel).abs().flatten(1).amax(1)  # (B,)

    def summary(self) -> dict:
        n_elig = int(self.eligible.sum())
        d = (self.adversarial - self.logmel).abs() * log_to_db(1.0)  # (B, T, M) dB
        return {
            "attack": self.config.describe(), "eps_db": self.config.eps_db, "n": int(self.logmel.shape[0]),
            "eligible": n_elig, "succeeded": int(self.success.sum()),
            "success_rate": float(self.success.sum()) / n_elig if n_elig else float("nan"),
            "error_before": float((self.pred != self.labels).float().mean()),
            "error_after": float((self.pred_adv != self.labels).float().mean()),
            "mean_abs_change_db": float(d.mean()), "max_abs_change_db": float(d.max()),
            "mean_p_before": float(self.prob.mean()), "mean_p_after": float(self.prob_adv.mean()),
            "threshold": self.threshold, "labels_known": self.labels_known,
        }


def _targets(goal: str, labels: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(the class each example is pushed towards, whether the cross-entropy w.r.t. it is ascended)."""
    if goal == "untargeted":  # ascend CE w.r.t. the label = push towards the other class
        return labels, True
    t = torch.full_like(labels, 0.0 if goal == "to-non-vocal" else 1.0)
    return t, False


@torch.no_grad()
def logits_of(model: nn.Module, logmel: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *,
              batch: int = 256) -> torch.Tensor:
    """Logits ``(N,)`` of un-normalised excerpts ``(N, T, M)`` (on the model's device), on the CPU."""
    dev = mean.device
    return torch.cat([model(((logmel[s:s + batch].to(dev) - mean) / std)[:, None]).float().cpu()
                      for s in range(0, logmel.shape[0], batch)])


def attack(classifier: Bundle, logmel: torch.Tensor, *, labels: torch.Tensor | None = None,
           config: AttackConfig = AttackConfig(), device: str | torch.device | None = "auto",
           progress: Progress | None = None) -> AttackResult:
    """Adversarial versions of ``logmel`` for ``classifier`` (frozen, in eval mode throughout).

    Parameters
    ----------
    classifier : the classifier bundle (needs its normaliser)
    logmel : torch.Tensor, shape ``(B, T, M)``, un-normalised log-mel excerpts
    labels : torch.Tensor, shape ``(B,)`` in {0, 1}, optional: the untargeted attack pushes away from
        them; without labels it pushes away from the classifier's own decision
    config : method, epsilon (dB), steps, goal, seed, batch size
    device : ``"auto"`` (CUDA if available), ``"cpu"``, ...
    progress : ``progress(done, total, info)`` after every gradient step; False cancels

    Returns
    -------
    AttackResult (CPU tensors)
    """
    check_classifier(classifier)
    check_excerpts(logmel, classifier.model)
    n = logmel.shape[0]
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.float32).flatten()
        if labels.shape != (n,) or not bool(((labels == 0) | (labels == 1)).all()):
            raise ParameterError(f"labels must be {n} values in {{0, 1}}, got shape {tuple(labels.shape)}")
    dev = resolve_device(device)
    thr = decision_threshold(classifier)
    offset = math.log(thr / (1.0 - thr))
    bounds = input_bounds(classifier.mel)
    x_all = logmel.detach().float().cpu()
    bs, steps = auto_batch(config.batch_size, dev), config.n_steps
    n_chunks = math.ceil(n / bs)
    total = n_chunks * steps
    gen = torch.Generator(device=dev).manual_seed(config.seed)
    mean, std = classifier.normaliser.mean.to(dev), classifier.normaliser.std.to(dev)
    with frozen(classifier.model, dev) as model:
        logit = logits_of(model, x_all, mean, std)  # (B,)
        known = labels is not None
        lab = labels if known else (torch.sigmoid(logit) > thr).float()
        targets_ce, ascend = _targets(config.goal, lab)
        adv = []
        oom = out_of_memory_as_error(f"the {config.method.upper()} attack (batch {bs})",
                                     "lower the attack's batch size or run it on the CPU")
        with oom:
            for c in range(n_chunks):
                sl = slice(c * bs, (c + 1) * bs)

                def tick(i: int, _c=c) -> None:
                    if progress is not None and progress(_c * steps + i, total, {"chunk": _c + 1}) is False:
                        raise CancelledError(f"attack cancelled after {_c * steps + i} of {total} steps")

                adv.append(perturb(model, x_all[sl].to(dev), targets_ce[sl].to(dev), ascend=ascend,
                                   eps=config.eps_log, step=config.step_log, steps=steps,
                                   random_start=config.random_start and config.method == "pgd", bounds=bounds,
                                   mean=mean, std=std, offset=offset, generator=gen, on_step=tick).cpu())
        adversarial = torch.cat(adv)  # (B, T, M)
        logit_adv = logits_of(model, adversarial, mean, std)  # (B,)
    pushed_to = 1.0 - lab if config.goal == "untargeted" else targets_ce
    return AttackResult(x_all, adversarial, lab, pushed_to, logit, logit_adv, thr, config, known)


def success_curve(classifier: Bundle, logmel: torch.Tensor, *, labels: torch.Tensor | None = None,
                  eps_db: Sequence[float], config: AttackConfig = AttackConfig(),
                  device: str | torch.device | None = "auto", progress: Progress | None = None) -> list[dict]:
    """Attack success rate (and error after the attack) against epsilon: one :meth:`AttackResult.summary`
    row per epsilon, same method, goal, steps and seed."""
    eps = [float(e) for e in eps_db]
    if not eps:
        raise ParameterError("give at least one epsilon")
    rows = []
    for j, e in enumerate(eps):
        cfg = replace(config, eps_db=e)

        def prog(done, total, info, _j=j, _e=e):
            return None if progress is None else progress(_j * total + done, len(eps) * total,
                                                          {**info, "eps_db": _e})
        rows.append(attack(classifier, logmel, labels=labels, config=cfg, device=device, progress=prog).summary())
    return rows
