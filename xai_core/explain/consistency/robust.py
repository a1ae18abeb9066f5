"""Consistent-loss adversarial training (Dong et al.), with plain adversarial training as the ablation.

Each step draws a batch ``x`` (un-normalised log-mel) with labels ``y``, makes ``x_adv`` on the fly
with a PGD attack against the current weights (untargeted, random start, ``attack_steps`` steps,
bound ``eps_db``), and descends::

    CE(f(x), y) + CE(f(x_adv), y) + mu * mean over units of (phi_l(x) - phi_l(x_adv))^2

``mu = 0`` is plain adversarial training (clean + adversarial cross-entropy, Goodfellow et al.'s
mixture). Both cross-entropies use the classifier recipe's label smoothing (0.02 / 0.98).

Where this differs from the paper, and why: the classifier runs **without dropout** during this
training (eval mode; SVDNet has no batch norm, so eval mode only switches dropout off). The
consistent term compares the features of ``x`` and ``x_adv``; with dropout they would pass through
different random masks and the term would penalise the masks' noise rather than the attack's effect.
The feature term is a mean over units rather than a sum, so ``mu`` does not scale with the layer's width.
The training attack shifts no decision threshold (plain cross-entropy on the labels); the evaluation's
attacks use each model's own tuned threshold.

The result is a classifier bundle like any other (:class:`~xai_core.checkpoints.Bundle`, kind
``classifier``: every page and command takes it, activation maximisation included), with the base
classifier's identity and the config in its provenance and, once :func:`robust_metrics` has run, clean
error, robust error at two epsilons and consistency per layer in its metrics.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from xai_core.checkpoints import Bundle, default_provenance, model_identity
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import ParameterError
from xai_core.explain.consistency.attack import (
    Progress,
    attack,
    check_classifier,
    input_bounds,
    perturb,
)
from xai_core.explain.consistency.config import AttackConfig, ConsistencyConfig, RobustConfig
from xai_core.explain.consistency.consistency import neuron_consistency
from xai_core.models.hooks import capture_activations
from xai_core.models.svdnet import SVDNet
from xai_core.train.data import excerpt_source
from xai_core.train.loop import restoring, resume_state, rng_state, run_loop, save_checkpoint, set_rng_state


def _smoothed_bce(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    from xai_core.train.classifier import smoothed_bce

    return smoothed_bce(logits, labels, smoothing)


def robust_loss(model: SVDNet, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, *, mu: float, layer: str,
                mean: torch.Tensor, std: torch.Tensor, smoothing: float = 0.02) -> dict[str, torch.Tensor]:
    """The consistent loss of one batch (one forward pass over ``[x; x_adv]``).

    Parameters
    ----------
    x, x_adv : torch.Tensor, shape ``(B, T, M)``, un-normalised log-mel
    y : torch.Tensor, shape ``(B,)`` in {0, 1}

    Returns
    -------
    dict with ``loss`` (to descend), ``ce_clean``, ``ce_adv``, ``feature`` (the mean squared feature
    difference, before ``mu``)
    """
    b = x.shape[0]
    xn = (torch.cat([x, x_adv]) - mean) / std  # (2B, T, M)
    with capture_activations(model, [layer]) as acts:
        z = model(xn[:, None])  # (2B,)
        f = acts[layer].reshape(2 * b, -1)  # (2B, d)
    ce_clean = _smoothed_bce(z[:b], y, smoothing)
    ce_adv = _smoothed_bce(z[b:], y, smoothing)
    feature = ((f[:b] - f[b:]) ** 2).mean()
    return {"loss": ce_clean + ce_adv + mu * feature, "ce_clean": ce_clean, "ce_adv": ce_adv, "feature": feature}


def train_robust(classifier: Bundle, data, config: RobustConfig = RobustConfig(), *,
                 device: str | torch.device | None = "auto", checkpoint: str | Path | None = None,
                 resume: bool = False, progress: Progress | None = None, provenance: dict | None = None) -> Bundle:
    """Fine-tune (or train from scratch) ``classifier`` with the consistent loss.

    Parameters
    ----------
    classifier : the base classifier bundle (never modified: a copy is trained)
    data : training excerpts: labelled tracks (a corpus split), a reference set or ``(logmel, labels)``
        (see :func:`xai_core.train.data.excerpt_source`)
    config : mu, layer, epsilon, attack steps, init, budget, seed
    checkpoint : written every ``config.checkpoint_every`` steps and at the end; ``resume`` continues it
        (same settings and base classifier, any ``steps``)
    progress : ``progress(done, total, info)`` every 10 steps (info: loss, ce_clean, ce_adv, feature);
        False cancels (a checkpoint is written first)

    Returns
    -------
    Bundle of kind ``classifier`` on the CPU, in eval mode, with the base's MelConfig and normaliser and
    ``metrics["robust_training"]`` (final losses, seconds, steps)
    """
    check_classifier(classifier)
    dev = resolve_device(device)
    arch = classifier.model.config
    src = excerpt_source(data, frames=arch.n_frames, device=dev)
    torch.manual_seed(config.seed)
    model = copy.deepcopy(classifier.model).float()
    if config.init == "scratch":
        model.reset_parameters(generator=torch.Generator().manual_seed(config.seed))
    model.to(dev).eval().requires_grad_(True)  # eval: no dropout (module docstring)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator(device=dev).manual_seed(config.seed)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    start, history, seconds = 0, [], 0.0
    if resume and ckpt is not None and ckpt.is_file():
        with restoring(ckpt):
            state = resume_state(ckpt, config=config.to_dict(), identity=classifier.identity, steps=config.steps,
                                 what="base classifier")
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"], gen)
            start, history, seconds = int(state["step"]), list(state["history"]), float(state["seconds"])
    mean, std = classifier.normaliser.mean.to(dev), classifier.normaliser.std.to(dev)
    bounds = input_bounds(classifier.mel)
    att = config.attack()
    t0 = time.perf_counter()

    def step(_i: int) -> dict[str, float]:
        x, y = src.sample(config.batch_size, generator=gen)  # (B, T, M), (B,)
        x_adv = perturb(model, x, y, ascend=True, eps=att.eps_log, step=att.step_log, steps=att.n_steps,
                        random_start=True, bounds=bounds, mean=mean, std=std, generator=gen)  # (B, T, M)
        out = robust_loss(model, x, x_adv, y, mu=config.mu, layer=config.layer, mean=mean, std=std,
                          smoothing=config.smoothing)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        return {k: float(v.detach()) for k, v in out.items()}

    def save(done: int, hist: list[dict]) -> None:
        if ckpt is None:
            return
        save_checkpoint(ckpt, {"step": done, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "history": hist, "rng": rng_state(gen), "config": config.to_dict(),
                               "classifier": classifier.identity,
                               "seconds": seconds + time.perf_counter() - t0})

    with out_of_memory_as_error(f"{config.name} (batch {config.batch_size})",
                                "lower the batch size or train on the CPU (device 'cpu'); the last checkpoint is kept"):
        result = run_loop(step, total=config.steps, start=start, progress=progress, history=history,
                          on_checkpoint=save, checkpoint_every=config.checkpoint_every,
                          info={"mu": config.mu, "layer": config.layer})
    seconds += time.perf_counter() - t0
    model.cpu().eval().requires_grad_(False)
    last = result.history[-1] if result.history else {}
    prov = default_provenance(**(provenance or {}))
    prov.update({"base_classifier": classifier.identity, "base_classifier_path": str(classifier.path or ""),
                 "robust_config": config.to_dict(), "method": config.name})
    metrics = {"robust_training": {**{k: round(v, 6) for k, v in last.items() if k != "step"},
                                   "steps": config.steps, "seconds": round(seconds, 1), "device": str(dev),
                                   "excerpts": len(src)}}
    return Bundle(kind="classifier", model=model, mel=classifier.mel, normaliser=classifier.normaliser,
                  preset=classifier.preset, provenance=prov, metrics=metrics, identity=model_identity(model))


def robust_metrics(classifier: Bundle, *, test: tuple[torch.Tensor, torch.Tensor], eps_db: Sequence[float],
                   concept_set=None, consistency: ConsistencyConfig = ConsistencyConfig(),
                   attack_config: AttackConfig = AttackConfig(), device: str | torch.device | None = "auto",
                   progress: Progress | None = None) -> dict:
    """Clean and robust excerpt error (each epsilon) on ``test``, and consistency on ``concept_set``.

    Parameters
    ----------
    test : ``(logmel (N, T, M), labels (N,))`` excerpts the classifier was not trained on
    eps_db : epsilons of the robust errors (the untargeted ``attack_config`` at each)
    concept_set : a labelled, tagged excerpt set (None: no consistency numbers)

    Returns
    -------
    dict: ``clean_error``, ``robust_error`` {eps: error}, ``success_rate`` {eps: rate}, ``attack``,
    ``consistency`` {concept, k, chance, real {layer: mean}, adv {layer: mean}} (plain numbers)
    """
    x, y = test
    if not len(eps_db):
        raise ParameterError("give at least one epsilon for the robust error")
    out: dict = {"n_test": int(x.shape[0]), "attack": replace(attack_config, eps_db=float(eps_db[0])).describe(),
                 "robust_error": {}, "success_rate": {}}
    stages = len(eps_db) + (1 if concept_set is not None else 0)
    for j, e in enumerate(eps_db):
        def prog(done, total, info, _j=j):
            return None if progress is None else progress(_j * total + done, stages * total, info)
        r = attack(classifier, x, labels=y, config=replace(attack_config, eps_db=float(e)), device=device,
                   progress=prog)
        s = r.summary()
        out["clean_error"] = s["error_before"]
        out["robust_error"][f"{float(e):g}"] = s["error_after"]
        out["success_rate"][f"{float(e):g}"] = s["success_rate"]
    if concept_set is not None:
        res = neuron_consistency(classifier, concept_set, config=consistency,
                                 attack_config=replace(attack_config, eps_db=float(eps_db[0])), device=device)
        s = res.summary()
        out["consistency"] = {"concept": s["concept"], "k": s["k"], "reduce": s["reduce"], "n": s["n"],
                              "chance": s["chance"], "eps_db": float(eps_db[0]),
                              "real": {k: v["real_mean"] for k, v in s["layers"].items()},
                              "adv": {k: v["adv_mean"] for k, v in s["layers"].items()},
                              "agreement": {k: v["agreement_mean"] for k, v in s["layers"].items()}}
    return out
