"""GAN inversion: the latent code whose generated excerpt reconstructs a real one.

For each excerpt ``x (T, M)``, ``R`` restarts from the codes of seeds ``seed .. seed + R - 1`` (the AM
engine's :func:`~xai_core.actmax.objective.initial_codes`) are optimised together in one batch with Adam
(beta 0.9/0.999, eps 1e-8) on::

    loss(z) = mean((norm(G(z)) - norm(x))^2) + (w / 2) ||z||^2

``norm`` the classifier's per-band normaliser (so the error is measured where the classifier reads it) and
``w`` the prior weight (``-w log N(z; 0, I)`` up to a constant). Rows never interact (frozen generator,
per-element Adam), so a batched restart equals the same restart alone up to float rounding. Each restart keeps
its best iterate (lowest loss; ``z_0`` is scored, ties keep the earlier one), and the excerpt keeps its best
restart. The reported error is the MSE alone, without the prior term. These choices are this project's (the
issue specifies them; there is no paper for this part).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from xai_core.actmax.objective import Progress, call_progress, frozen, initial_codes, resolve_device
from xai_core.checkpoints import Bundle
from xai_core.errors import ParameterError
from xai_core.explain.counterfactual.config import CounterfactualConfig


@dataclass
class Inversion:
    """The kept codes of a batch of excerpts; CPU tensors. B excerpts, R restarts, S inversion steps."""

    z: torch.Tensor  # (B, d) the best restart's kept code per excerpt
    logmel: torch.Tensor  # (B, T, M) G(z), un-normalised log-mel
    mse: torch.Tensor  # (B,) reconstruction MSE of z, normalised units
    restart_mse: torch.Tensor  # (B, R) MSE of each restart's kept iterate
    best_restart: torch.Tensor  # (B,) long, index of the kept restart
    trace: torch.Tensor  # (B, R, S + 1) MSE of every restart at steps 0 .. S
    seconds: float


def _check_excerpts(logmel: torch.Tensor, generator: Bundle) -> torch.Tensor:
    x = torch.as_tensor(logmel)
    if x.ndim == 2:
        x = x[None]
    cfg = generator.model.config
    if x.ndim != 3 or tuple(x.shape[1:]) != (cfg.n_frames, cfg.n_mels):
        raise ParameterError(f"excerpts must be (T, M) or (B, T, M) log-mel with T={cfg.n_frames}, M={cfg.n_mels} "
                             f"(the generator's output), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ParameterError("no excerpt to invert")
    if not bool(torch.isfinite(x).all()):
        raise ParameterError("the excerpt's log-mel holds NaN or infinity")
    return x


def invert(generator: Bundle, normaliser, logmel: torch.Tensor, config: CounterfactualConfig = CounterfactualConfig(),
           *, device=None, progress: Progress | None = None) -> Inversion:
    """Invert excerpts into the generator's latent space.

    Parameters
    ----------
    generator : Bundle of kind ``"generator"`` (not modified; copied if on another device)
    normaliser : :class:`~xai_core.audio.features.Normaliser`, the classifier's (the space of the MSE)
    logmel : torch.Tensor ``(T, M)`` or ``(B, T, M)``, un-normalised natural-log mel
    config : its ``restarts``, ``invert_steps``, ``invert_lr``, ``invert_prior`` and ``seed`` are used
    device : ``None``/"auto" (CUDA if available, else CPU) or a torch device
    progress : ``progress(done, total, info)`` once per step (``done`` counts steps, ``total`` =
        ``invert_steps``; ``info`` has ``phase="invert"`` and ``mse``, the best restart's current MSE per
        excerpt); return False to cancel (:class:`~xai_core.errors.CancelledError`)

    Returns
    -------
    Inversion
    """
    if generator.kind != "generator":
        raise ParameterError(f"expected a generator bundle, got a {generator.kind!r} bundle")
    if normaliser is None:
        raise ParameterError("the inversion needs the classifier's normaliser (its input space); this classifier "
                             "has none")
    dev = resolve_device(device)
    x = _check_excerpts(logmel, generator)
    t0 = time.perf_counter()
    b, r, steps = x.shape[0], config.restarts, config.invert_steps
    with frozen(generator.model, dev) as gen:
        dt = next(gen.parameters()).dtype
        mean, std = normaliser.mean.to(dev, dt), normaliser.std.to(dev, dt)
        target = ((x.to(dev, dt) - mean) / std).repeat_interleave(r, 0)  # (B * R, T, M), restarts of one excerpt adjacent
        z = initial_codes(config.seed, r, gen.z_dim).repeat(b, 1).to(dev, dt).requires_grad_(True)  # (B * R, d)
        opt = torch.optim.Adam([z], lr=config.invert_lr, betas=(0.9, 0.999), eps=1e-8)
        half_w = config.invert_prior / 2.0
        best_loss = torch.full((b * r,), math.inf, device=dev, dtype=dt)
        best_mse = torch.zeros(b * r, device=dev, dtype=dt)
        best_z = z.detach().clone()  # (B * R, d)
        trace = []
        for t in range(steps + 1):
            with torch.set_grad_enabled(t < steps):
                y = (gen(z) - mean) / std  # (B * R, T, M) normalised reconstruction
                mse = ((y - target) ** 2).mean((1, 2))  # (B * R,)
                loss = mse + half_w * (z * z).sum(1)  # (B * R,)
            with torch.no_grad():
                ld, md = loss.detach(), mse.detach()
                better = ld < best_loss  # NaN never wins
                best_loss = torch.where(better, ld, best_loss)
                best_mse = torch.where(better, md, best_mse)
                best_z = torch.where(better[:, None], z.detach(), best_z)
                trace.append(md.clone())
            if t == steps:
                break
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # rows are independent: the sum's gradient is each row's own
            opt.step()
            call_progress(progress, t + 1, steps,
                          {"phase": "invert", "mse": float(best_mse.view(b, r).min(1).values.mean())})
        with torch.no_grad():
            keep = best_loss.view(b, r).argmin(1)  # (B,) the restart with the lowest loss
            rows = torch.arange(b, device=dev) * r + keep  # (B,)
            z_keep = best_z[rows]  # (B, d)
            rec = gen(z_keep)  # (B, T, M)
            mse_keep = (((rec - mean) / std - target[rows]) ** 2).mean((1, 2))  # (B,)
    return Inversion(z=z_keep.float().cpu(), logmel=rec.float().cpu(), mse=mse_keep.float().cpu(),
                     restart_mse=best_mse.view(b, r).float().cpu(), best_restart=keep.cpu(),
                     trace=torch.stack(trace, 1).view(b, r, steps + 1).float().cpu(),
                     seconds=time.perf_counter() - t0)
