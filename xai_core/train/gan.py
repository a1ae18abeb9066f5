"""Training the spectrogram GAN (Mishra et al.'s generator) and reporting its sample quality.

The original discriminator and loss are not public (METHODS section 3). The recipe here is a
standard stable one: hinge loss with a spectral-norm critic (Miyato et al. 2018) and Adam
(2e-4, betas 0 / 0.9), or WGAN-GP (Gulrajani et al. 2017) with a plain critic, and an exponential
moving average of the generator's weights.

Snapshot selection (``select_every`` with a ``scorer``): every so many steps both the raw generator
and its weight average are scored, by default (:func:`fid_scorer`) with the FID on the classifier's
hidden layer against real excerpts of the *validation* split, and the best-scoring snapshot is what
gets saved, as GAN practice selects snapshots by FID. On the demo the weight average alone was not
the best choice: after 9,000 steps it had FID 2.32 and 7.6 % of samples below p(vocal) 0.1, the raw
generator beside it FID 1.58 and 25 % (the average of an oscillating generator blends modes into
middling excerpts). Without selection the weight average (or the raw generator without EMA) is saved.

The generator produces *un-normalised* log-mel; the critic sees the classifier's normalised
version of real and generated excerpts (the same per-band normaliser), so its input is on a
sane scale and generation is judged in the space the classifier works in.

Quality (:func:`gan_quality_report`): Fréchet distances between generated and real excerpts on
the classifier's 64-unit hidden layer (``fc2``) and on its logit, next to the same distance
between two disjoint real subsets of equal size (the floor a perfect generator would reach),
and the p(vocal) histograms of generated and real excerpts.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.errors import CancelledError, CheckpointError, ParameterError
from xai_core.models.generator import (
    DISCRIMINATOR_PRESETS,
    GENERATOR_PRESETS,
    SpecDiscriminator,
    SpecGenerator,
    generator_preset,
)
from xai_core.models.hooks import capture_activations
from xai_core.models.svdnet import SVDNet
from xai_core.train.classifier import _load_checkpoint, _save_checkpoint, resolve_device
from xai_core.train.data import ExcerptPool, Track
from xai_core.train.loop import restoring

Progress = Callable[[int, int, dict], object]
SampleHook = Callable[[int, torch.Tensor], None]
Scorer = Callable[[SpecGenerator], float]  # lower is better (e.g. an FID)
LOSSES = ("hinge", "wgan-gp")


@dataclass(frozen=True)
class GanTrainConfig:
    """Hyper-parameters of GAN training."""

    preset: str = "lite"  # generator preset (SpecGenerator)
    critic_preset: str = "lite"  # discriminator preset (SpecDiscriminator channels)
    loss: str = "hinge"  # "hinge" (spectral-norm critic) or "wgan-gp" (plain critic + gradient penalty)
    steps: int = 6000  # generator updates
    batch_size: int = 32
    critic_steps: int = 1  # critic updates per generator update
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0  # Adam betas of both optimisers
    beta2: float = 0.9
    gp_weight: float = 10.0  # WGAN-GP only
    ema_decay: float = 0.999  # generator weight averaging (0 disables); the EMA is what is saved
    init_bias_to_mean: bool = True  # start the generator's output at the data's mean log-mel
    seed: int = 0
    sample_every: int = 500  # steps between sample hooks (0 = never)
    checkpoint_every: int = 250  # steps between checkpoints (the last step always writes one)
    select_every: int = 0  # steps between scoring the raw and averaged generators (0 = no selection)

    def __post_init__(self) -> None:
        if self.preset not in GENERATOR_PRESETS:
            raise ParameterError(f"unknown generator preset {self.preset!r}; choose from {sorted(GENERATOR_PRESETS)}")
        if self.critic_preset not in DISCRIMINATOR_PRESETS:
            raise ParameterError(f"unknown critic preset {self.critic_preset!r}; choose from "
                                 f"{sorted(DISCRIMINATOR_PRESETS)}")
        if self.loss not in LOSSES:
            raise ParameterError(f"GanTrainConfig.loss={self.loss!r}; choose from {LOSSES}")
        for name in ("steps", "batch_size", "critic_steps", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ParameterError(f"GanTrainConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.batch_size < 2 and self.loss == "wgan-gp":
            raise ParameterError("GanTrainConfig.batch_size must be >= 2")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"GanTrainConfig.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("beta1", "beta2", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ParameterError(f"GanTrainConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.gp_weight < 0 or self.sample_every < 0 or self.select_every < 0:
            raise ParameterError(f"gp_weight={self.gp_weight!r}, sample_every={self.sample_every!r} and "
                                 f"select_every={self.select_every!r} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GanRun:
    """Result of :func:`train_gan`."""

    generator: SpecGenerator  # the selected snapshot, else the weight average (or raw generator), eval mode
    config: GanTrainConfig
    history: list[dict] = field(default_factory=list)  # losses every 50 steps
    seconds: float = 0.0
    resumed_from_step: int = 0
    selection: list[dict] = field(default_factory=list)  # {"step", "raw", "ema"} scores at each selection
    selected: dict | None = None  # {"step", "which": "raw" | "ema", "score"} of the saved snapshot


def _critic_losses(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()
    return d_fake.mean() - d_real.mean()


def _gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    a = torch.rand(real.shape[0], 1, 1, generator=gen, device=real.device)  # (B, 1, 1)
    mix = (a * real + (1 - a) * fake).requires_grad_(True)  # (B, T, M)
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def train_gan(train: Sequence[Track], normaliser: Normaliser, config: GanTrainConfig, *,
              mel: MelConfig = MelConfig(), device: str | torch.device | None = "auto",
              checkpoint: str | Path | None = None, resume: bool = False,
              progress: Progress | None = None, sample_hook: SampleHook | None = None,
              n_hook_samples: int = 16, scorer: Scorer | None = None) -> GanRun:
    """Train a :class:`SpecGenerator` on random 115-frame excerpts of the training tracks.

    Parameters
    ----------
    train : labelled tracks (labels are not used: the GAN is unconditional)
    normaliser : the classifier's per-band normaliser; the critic sees normalised excerpts
    config : hyper-parameters
    device : ``"auto"`` (CUDA if available), ``"cpu"``, ...
    checkpoint : file written every ``config.checkpoint_every`` steps and at the end
    resume : continue from ``checkpoint`` if it exists (same config except ``steps``)
    progress : ``progress(done, total, info)`` every 10 steps (info: d_loss, g_loss, d_real,
        d_fake); returning False or raising :class:`CancelledError` stops the run
    sample_hook : ``sample_hook(step, logmel (n, T, M))`` every ``config.sample_every`` steps, with
        samples of the current (averaged) generator from fixed latents (for sample images)
    scorer : ``scorer(generator) -> float``, lower is better (e.g. :func:`fid_scorer`); required when
        ``config.select_every > 0``: every ``select_every`` steps and at the end the raw generator
        and its weight average are scored and the best snapshot seen is returned

    Returns
    -------
    GanRun
    """
    if config.select_every and scorer is None:
        raise ParameterError(f"GanTrainConfig.select_every={config.select_every} needs a scorer")
    dev = resolve_device(device)
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    torch.manual_seed(config.seed)
    gcfg = generator_preset(config.preset)
    if (gcfg.n_frames, gcfg.n_mels) != (mel.excerpt_frames, mel.n_mels):
        raise ParameterError(f"generator makes {gcfg.n_frames}x{gcfg.n_mels}, front end needs "
                             f"{mel.excerpt_frames}x{mel.n_mels}")
    gnet = SpecGenerator(gcfg)
    dcfg = DISCRIMINATOR_PRESETS[config.critic_preset]
    dcfg = type(dcfg)(**{**dcfg.to_dict(), "channels": tuple(dcfg.channels),
                         "spectral_norm": config.loss == "hinge",
                         "n_frames": mel.excerpt_frames, "n_mels": mel.n_mels})
    critic = SpecDiscriminator(dcfg)
    pool = ExcerptPool(train, width=mel.excerpt_frames, device=dev)
    if config.init_bias_to_mean:
        with torch.no_grad():
            gnet.out.bias.fill_(float(pool.frames().mean()))
    gnet.to(dev)
    critic.to(dev)
    ema = copy.deepcopy(gnet).eval().requires_grad_(False) if config.ema_decay > 0 else None
    opt_g = torch.optim.Adam(gnet.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    gen = torch.Generator(device=dev).manual_seed(config.seed)
    z_fixed = torch.randn(n_hook_samples, gcfg.z_dim, generator=torch.Generator().manual_seed(config.seed + 1))
    z_fixed = z_fixed.to(dev)
    norm = Normaliser(normaliser.mean.to(dev), normaliser.std.to(dev))
    start, seconds, history = 0, 0.0, []
    selection: list[dict] = []
    best: dict[str, Any] = {"state": None, "info": None}
    if resume and ckpt_path is not None and ckpt_path.is_file():
        with restoring(ckpt_path):
            state = _load_checkpoint(ckpt_path)
            mine = config.to_dict()
            bad = sorted(k for k in mine if k not in ("steps", "sample_every", "checkpoint_every")
                         and state["config"].get(k) != mine[k])
            if bad:
                raise CheckpointError(f"{ckpt_path}: was written with different settings {bad}")
            gnet.load_state_dict(state["generator"])
            critic.load_state_dict(state["critic"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            start, seconds, history = int(state["step"]), float(state["seconds"]), list(state["history"])
        selection = list(state.get("selection", []))
        best = {"state": state.get("best_state"), "info": state.get("best_info")}
        gen.set_state(state["sample_rng"])
        torch.set_rng_state(state["torch_rng"])
    resumed_from = start

    def save(step: int) -> None:
        if ckpt_path is None:
            return
        _save_checkpoint(ckpt_path, {
            "generator": gnet.state_dict(), "critic": critic.state_dict(),
            "ema": ema.state_dict() if ema is not None else {}, "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(), "step": step, "seconds": seconds, "history": history,
            "config": config.to_dict(), "sample_rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "selection": selection, "best_state": best["state"], "best_info": best["info"],
        })

    def select(step: int) -> None:
        scores = {}
        for which, net in (("raw", gnet), ("ema", ema)):
            if net is None:
                continue
            net.eval()
            with torch.no_grad():
                scores[which] = float(scorer(net))
            if best["info"] is None or scores[which] < best["info"]["score"]:
                best["state"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                best["info"] = {"step": step, "which": which, "score": scores[which]}
        gnet.train()
        selection.append({"step": step, **{k: round(v, 5) for k, v in scores.items()}})

    def draw_z(n: int) -> torch.Tensor:
        return torch.randn(n, gcfg.z_dim, generator=gen, device=dev)  # (B, z_dim)

    t0 = time.perf_counter()
    gnet.train()
    critic.train()
    acc: dict[str, float] = {}
    bs = config.batch_size
    for step in range(start, config.steps):
        for _ in range(config.critic_steps):
            real, _ = pool.sample(bs, generator=gen)  # (B, T, M)
            real = norm.apply(real)  # (B, T, M)
            with torch.no_grad():
                fake = norm.apply(gnet(draw_z(bs)))  # (B, T, M)
            d_real, d_fake = critic(real), critic(fake)  # (B,), (B,)
            d_loss = _critic_losses(config.loss, d_real, d_fake)
            if config.loss == "wgan-gp" and config.gp_weight > 0:
                d_loss = d_loss + config.gp_weight * _gradient_penalty(critic, real, fake, gen)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        g_loss = -critic(norm.apply(gnet(draw_z(bs)))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if ema is not None:
            with torch.no_grad():
                for pe, pg in zip(ema.parameters(), gnet.parameters(), strict=True):
                    pe.lerp_(pg, 1.0 - config.ema_decay)
        for k, v in (("d_loss", d_loss), ("g_loss", g_loss), ("d_real", d_real.mean()), ("d_fake", d_fake.mean())):
            acc[k] = acc.get(k, 0.0) + v.item()
        done = step + 1
        if done % 50 == 0 or done == config.steps:
            n_acc = 50 if done % 50 == 0 else (done % 50)
            history.append({"step": done, **{k: round(v / n_acc, 5) for k, v in acc.items()}})
            acc = {}
        if config.select_every and (done % config.select_every == 0 or done == config.steps):
            select(done)
        if done % config.checkpoint_every == 0 or done == config.steps:
            seconds_now = seconds + time.perf_counter() - t0
            seconds, t0 = seconds_now, time.perf_counter()
            save(done)
        if sample_hook is not None and config.sample_every and (done % config.sample_every == 0 or done == config.steps):
            with torch.no_grad():
                sample_hook(done, (ema or gnet).eval()(z_fixed).cpu())
            gnet.train()
        if progress is not None and (done % 10 == 0 or done == config.steps):
            info = {"step": done, "d_loss": d_loss.item(), "g_loss": g_loss.item()}
            if progress(done, config.steps, info) is False:
                raise CancelledError("GAN training cancelled")
    seconds += time.perf_counter() - t0
    out = ema if ema is not None else gnet
    if best["state"] is not None:
        out = copy.deepcopy(gnet)
        out.load_state_dict(best["state"])
    out.eval().requires_grad_(False)
    return GanRun(generator=out, config=config, history=history, seconds=seconds, resumed_from_step=resumed_from,
                  selection=selection, selected=best["info"])


# --------------------------------------------------------------------------- quality report

@torch.no_grad()
def classifier_responses(classifier: SVDNet, normaliser: Normaliser, logmel: torch.Tensor, *,
                         batch: int = 256, layer: str = "fc2") -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden-layer features and logits of un-normalised excerpts.

    Parameters
    ----------
    logmel : torch.Tensor, shape ``(N, T, M)``

    Returns
    -------
    features : ``(N, d)`` float64 (``layer``'s output, flattened); logits : ``(N,)`` float64
    """
    dev = next(classifier.parameters()).device
    feats, logits = [], []
    was = classifier.training
    classifier.eval()
    try:
        with capture_activations(classifier, [layer]) as acts:
            for s in range(0, logmel.shape[0], batch):
                x = normaliser.apply(logmel[s:s + batch].to(dev, torch.float32))  # (b, T, M)
                logits.append(classifier(x).double().cpu())  # (b,)
                feats.append(acts[layer].flatten(1).double().cpu())  # (b, d)
    finally:
        classifier.train(was)
    return torch.cat(feats), torch.cat(logits)


@torch.no_grad()
def generate(generator: SpecGenerator, n: int, *, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """``n`` samples ``(n, T, M)`` (CPU) from z ~ N(0, I) drawn with ``seed``."""
    dev = next(generator.parameters()).device
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))  # (n, z_dim)
    return torch.cat([generator(z[s:s + batch].to(dev)).cpu() for s in range(0, n, batch)])


def fid_scorer(classifier: SVDNet, normaliser: Normaliser, real: torch.Tensor, *, n: int = 1000, seed: int = 0,
               layer: str = "fc2") -> Scorer:
    """A snapshot scorer: FID on ``layer`` between ``n`` samples (fixed latents) and real excerpts.

    Parameters
    ----------
    classifier, normaliser : the classifier whose hidden layer defines the space (any device)
    real : real excerpts ``(N, T, M)``, un-normalised; use data the report does not use (the
        validation split), so that selection does not peek at the test
    n : samples drawn from each generator scored (latents from ``seed``, the same every call)

    Returns
    -------
    ``scorer(generator) -> float``, the FID (lower is better)
    """
    from xai_core.metrics.fid import fid_from_features

    if real.ndim != 3 or real.shape[0] < 2:
        raise ParameterError(f"fid_scorer needs real excerpts (N >= 2, T, M), got {tuple(real.shape)}")
    if n < 2:
        raise ParameterError(f"fid_scorer n={n} must be >= 2")
    real_feats, _ = classifier_responses(classifier, normaliser, real, layer=layer)  # (N, d)

    def score(generator: SpecGenerator) -> float:
        feats, _ = classifier_responses(classifier, normaliser, generate(generator, n, seed=seed), layer=layer)
        return fid_from_features(feats, real_feats)

    return score


def _hist(p: np.ndarray, bins: np.ndarray) -> list[float]:
    h, _ = np.histogram(p, bins=bins)
    return (h / max(1, p.size)).round(4).tolist()


def gan_quality_report(generator: SpecGenerator, classifier: SVDNet, normaliser: Normaliser,
                       real: torch.Tensor, *, n: int = 1000, seed: int = 0, layer: str = "fc2") -> dict[str, Any]:
    """Sample quality of a generator as judged through the classifier.

    Parameters
    ----------
    generator, classifier, normaliser : the models (any device)
    real : real excerpts ``(N_real, T, M)`` un-normalised, N_real >= 2 n, ideally from data the
        generator was not trained on; they are shuffled with ``seed`` and split into two disjoint
        subsets A and B of ``n`` excerpts each
    n : generated excerpts (and size of each real subset)
    layer : the hidden layer for the FID (``fc2``, the 64-unit dense layer in ``paper``)

    Returns
    -------
    dict with ``fid_hidden`` = FID(generated, A) on ``layer``, ``fid_hidden_floor`` = FID(A, B),
    the same on the logit (``fid_logit``, ``fid_logit_floor``), p(vocal) histograms (10 bins) and
    the fractions of excerpts with p > 0.9 and p < 0.1, generated and real, mean logits, and the
    mean per-band log-mel of both sets (``band_mean_*``, for a profile plot).
    """
    from xai_core.metrics.fid import fid_from_features

    if real.ndim != 3 or real.shape[0] < 2 * n:
        raise ParameterError(f"need at least 2 n = {2 * n} real excerpts (N, T, M), got {tuple(real.shape)}")
    perm = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(seed))
    a, b = real[perm[:n]], real[perm[n:2 * n]]
    fake = generate(generator, n, seed=seed)  # (n, T, M)
    fa, la = classifier_responses(classifier, normaliser, a, layer=layer)
    fb, lb = classifier_responses(classifier, normaliser, b, layer=layer)
    fg, lg = classifier_responses(classifier, normaliser, fake, layer=layer)
    pg, pr = torch.sigmoid(lg).numpy(), torch.sigmoid(torch.cat([la, lb])).numpy()
    bins = np.linspace(0.0, 1.0, 11)
    return {
        "n": n, "layer": layer, "seed": seed,
        "fid_hidden": fid_from_features(fg, fa), "fid_hidden_floor": fid_from_features(fb, fa),
        "fid_logit": fid_from_features(lg, la), "fid_logit_floor": fid_from_features(lb, la),
        "p_bins": bins.round(2).tolist(), "p_hist_generated": _hist(pg, bins), "p_hist_real": _hist(pr, bins),
        "frac_vocal_generated": float((pg > 0.9).mean()), "frac_nonvocal_generated": float((pg < 0.1).mean()),
        "frac_vocal_real": float((pr > 0.9).mean()), "frac_nonvocal_real": float((pr < 0.1).mean()),
        "logit_mean_generated": float(lg.mean()), "logit_std_generated": float(lg.std()),
        "logit_mean_real": float(torch.cat([la, lb]).mean()), "logit_std_real": float(torch.cat([la, lb]).std()),
        "band_mean_generated": fake.double().mean((0, 1)).float().round(decimals=3).tolist(),
        "band_mean_real": a.double().mean((0, 1)).float().round(decimals=3).tolist(),
    }


def format_quality(report: dict[str, Any]) -> str:
    """Human-readable summary of :func:`gan_quality_report`."""
    r = report
    lines = [
        f"GAN sample quality ({r['n']} generated vs {r['n']} real excerpts, classifier layer {r['layer']}):",
        f"  FID hidden: generated {r['fid_hidden']:.3f}   real-vs-real floor {r['fid_hidden_floor']:.3f}",
        f"  FID logit:  generated {r['fid_logit']:.3f}   real-vs-real floor {r['fid_logit_floor']:.3f}",
        f"  logit mean/std: generated {r['logit_mean_generated']:.2f}/{r['logit_std_generated']:.2f}   "
        f"real {r['logit_mean_real']:.2f}/{r['logit_std_real']:.2f}",
        f"  p(vocal) > 0.9: generated {r['frac_vocal_generated']:.1%}   real {r['frac_vocal_real']:.1%}",
        f"  p(vocal) < 0.1: generated {r['frac_nonvocal_generated']:.1%}   real {r['frac_nonvocal_real']:.1%}",
        "  p(vocal) histogram (10 bins 0..1):",
        "    generated " + " ".join(f"{v:5.3f}" for v in r["p_hist_generated"]),
        "    real      " + " ".join(f"{v:5.3f}" for v in r["p_hist_real"]),
    ]
    return "\n".join(lines)


def random_excerpts(tracks: Sequence[Track], n: int, *, seed: int = 0,
                    frames: int = 115) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` excerpts drawn uniformly over all frames of ``tracks``: ``(n, T, M)``, centre labels
    ``(n,)`` and sources ``"file@start_seconds"`` (start of the excerpt, hop 315 at 22050 Hz)."""
    pool = ExcerptPool(tracks, width=frames)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(pool), generator=g)[:n]
    x, y = pool.take(idx)
    names, starts = [], []
    for tr in tracks:
        names += [tr.name] * tr.frames
        starts += list(range(tr.frames))
    half = frames // 2
    mel = MelConfig()
    src = [f"{names[i]}@{max(0, starts[i] - half) * mel.hop_length / mel.sample_rate:.2f}" for i in idx.tolist()]
    return x, y, src
