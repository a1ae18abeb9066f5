"""Training the conditional-GAN explainer (Guna, Sikha & Benitez) for one classifier.

Each step draws a batch of training excerpts, computes every spatial layer's Grad-CAM of the explained
unit with the frozen classifier (one forward/backward pass, :func:`~.gradcam.layer_gradcam`), forms the K
cumulative condition maps and the target map, then takes one discriminator step
(``BCE(D(x, target), 1) + BCE(D(x, G(x, c)), 0)``) and one generator step
(``l1_weight * L1(G(x, c), target) + adv_weight * BCE(D(x, G(x, c)), 1)``), Adam ``lr`` with betas
``(beta1, 0.999)``, the paper's 2e-4 / 0.5 / 100 / 1 by default. The public code updates its
discriminator only every 100th step; here both networks step every step, as in pix2pix.

Split by song: the trainer draws from the training data only; :func:`evaluate_explainer` measures the
result on held-out excerpts (the test split's songs), against two reference points: copying the first
condition map (the deepest layer's cumulative map) and a constant map.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from xai_core.checkpoints import Bundle, default_provenance
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import ParameterError
from xai_core.explain.common import check_classifier
from xai_core.explain.depthmaps.bundle import ExplainerBundle
from xai_core.explain.depthmaps.config import ExplainerConfig, UnitSpec
from xai_core.explain.depthmaps.gradcam import (
    check_unit,
    cumulative_maps,
    default_k,
    depth_indices,
    explainable_layers,
    layer_gradcam,
    target_map,
)
from xai_core.explain.depthmaps.nets import GeneratorConfig, MapDiscriminator, MapGenerator
from xai_core.models.hooks import frozen
from xai_core.train.data import excerpt_source
from xai_core.train.loop import (
    Progress,
    restoring,
    resume_state,
    rng_state,
    run_loop,
    save_checkpoint,
    set_rng_state,
)


def generator_config(classifier: Bundle, config: ExplainerConfig, unit: UnitSpec) -> tuple[GeneratorConfig, list[str]]:
    """The generator's architecture for ``classifier`` and the spatial layers it is conditioned on."""
    layers = explainable_layers(classifier.model, unit)
    if not layers:
        raise ParameterError(f"{unit.label} has no spatial layer before it to explain")
    k = config.k or default_k(len(layers))
    if k > len(layers):
        raise ParameterError(f"K={k} condition maps but the classifier has only {len(layers)} spatial layers up to "
                             f"{unit.layer!r} ({layers}): choose K <= {len(layers)}")
    blocks = k if config.variant == "local" else (config.blocks or k)
    arch = classifier.model.config
    return GeneratorConfig(variant=config.variant, k=k, width=config.width, blocks=blocks,
                           n_frames=arch.n_frames, n_mels=arch.n_mels), layers


def conditions(clf, xn: torch.Tensor, unit: UnitSpec, layers: list[str], k: int, target: str):
    """``(cond (B, K, T, M), target (B, T, M), layer maps (B, L, T, M))`` of normalised excerpts ``xn``."""
    lm = layer_gradcam(clf, xn, unit=unit, layers=layers)
    cond, _ = cumulative_maps(lm.maps, k)
    return cond, target_map(lm.maps, target)[:, 0], lm.maps


def train_explainer(classifier: Bundle, data, config: ExplainerConfig, *, unit: UnitSpec = UnitSpec(),
                    device: str | torch.device | None = "auto", checkpoint: str | Path | None = None,
                    resume: bool = False, progress: Progress | None = None,
                    provenance: dict | None = None) -> ExplainerBundle:
    """Train one explainer (``config.variant``) of ``unit`` for ``classifier``.

    Parameters
    ----------
    classifier : the explained classifier (frozen and in eval mode throughout, restored afterwards)
    data : training excerpts (un-normalised log-mel): tracks of a training split, a reference set or
        ``(logmel (N, T, M), labels (N,))``; see :func:`~xai_core.train.data.excerpt_source`
    config : variant, K, target, budget, optimiser, seed
    unit : the explained unit (the vocal logit by default)
    checkpoint : file written every ``config.checkpoint_every`` steps and at the end (generator,
        discriminator, both optimisers, random states); ``resume`` continues from it
    progress : ``progress(done, total, info)`` every 10 steps (info: l1, adv, d_loss, d_real, d_fake); False
        cancels after a checkpoint

    Returns
    -------
    ExplainerBundle on the CPU, in eval mode, ``metrics`` holding the final training losses
    """
    check_classifier(classifier)
    check_unit(classifier.model, unit)
    gcfg, layers = generator_config(classifier, config, unit)
    dev = resolve_device(device)
    arch = classifier.model.config
    src = excerpt_source(data, frames=arch.n_frames, device=dev)
    torch.manual_seed(config.seed)
    gen = MapGenerator(gcfg).to(dev)
    disc = MapDiscriminator().to(dev)
    betas = (config.beta1, 0.999)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=betas)
    rng = torch.Generator(device=dev).manual_seed(config.seed)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    start, history, seconds = 0, [], 0.0
    full = {**config.to_dict(), "unit": unit.to_dict()}
    if resume and ckpt is not None and ckpt.is_file():
        with restoring(ckpt):
            state = resume_state(ckpt, config=full, identity=classifier.identity, steps=config.steps, what="classifier")
            gen.load_state_dict(state["generator"])
            disc.load_state_dict(state["discriminator"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            set_rng_state(state["rng"], rng)
            start, history, seconds = int(state["step"]), list(state["history"]), float(state["seconds"])
    t0 = time.perf_counter()
    bce = F.binary_cross_entropy_with_logits

    with frozen(classifier.model, dev) as clf:
        norm = classifier.normaliser

        def step(_i: int) -> dict[str, float]:
            x, _y = src.sample(config.batch_size, generator=rng)  # (B, T, M)
            xn = norm.apply(x)  # (B, T, M)
            cond, target, _ = conditions(clf, xn, unit, layers, gcfg.k, config.target)  # (B, K, T, M), (B, T, M)
            fake = gen(xn, cond)  # (B, T, M)
            d_real = disc(xn, target)  # (B,)
            d_fake = disc(xn, fake.detach())
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            l1 = (fake - target).abs().mean()
            g_fake = disc(xn, fake)
            adv = bce(g_fake, torch.ones_like(g_fake))
            loss = config.l1_weight * l1 + config.adv_weight * adv
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            return {"l1": float(l1.detach()), "adv": float(adv.detach()), "d_loss": float(d_loss.detach()),
                    "d_real": float(torch.sigmoid(d_real.detach()).mean()),
                    "d_fake": float(torch.sigmoid(d_fake.detach()).mean())}

        def save(done: int, hist: list[dict]) -> None:
            if ckpt is None:
                return
            save_checkpoint(ckpt, {
                "step": done, "generator": gen.state_dict(), "discriminator": disc.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "history": hist, "rng": rng_state(rng),
                "config": full, "classifier": classifier.identity, "seconds": seconds + time.perf_counter() - t0})

        gen.train()
        disc.train()
        oom = out_of_memory_as_error(f"training the {config.variant} explainer (batch {config.batch_size})",
                                     "lower the batch size or train on the CPU (device 'cpu'); the last checkpoint "
                                     "is kept")
        try:
            with oom:
                result = run_loop(step, total=config.steps, start=start, progress=progress, history=history,
                                  on_checkpoint=save, checkpoint_every=config.checkpoint_every,
                                  info={"variant": config.variant})
        finally:
            gen.eval()
    seconds += time.perf_counter() - t0
    last = result.history[-1] if result.history else {}
    metrics = {"train_" + k: round(v, 6) for k, v in last.items() if k != "step"}
    metrics.update({"steps": config.steps, "seconds": round(seconds, 1), "device": str(dev), "excerpts": len(src)})
    gen.cpu().requires_grad_(False)
    return ExplainerBundle(generator=gen, unit=unit, layers=layers, kept=depth_indices(len(layers), gcfg.k),
                           target=config.target, classifier_identity=classifier.identity, config=config,
                           provenance={**default_provenance(), **(provenance or {})}, metrics=metrics)
