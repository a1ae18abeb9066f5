"""Counterfactuals: make this real excerpt more, or less, vocal (issue 19, part 4; this project's method).

1. **Invert** the excerpt into the generator's latent space (:mod:`.invert`): ``z_inv``, its reconstruction
   ``G(z_inv)``, the reconstruction error, and the classifier's response to the reconstruction beside the
   original's.
2. **Activation maximisation from z_inv** toward max (more vocal) and/or min (less vocal), the directions as
   rows of one batch, ascending AM's own score (:mod:`xai_core.actmax`: the vocal logit, the same Adam, the
   same prior conventions and signs, the same best-so-far rule) minus a proximity term::

       score(z) = sign * a(z) - c ||z||^2 - beta ||z - z_inv||^2

   so ``beta = 0`` is plain AM started from ``z_inv`` (tested against :func:`~xai_core.actmax.engine.run_am`),
   and a large ``beta`` keeps the code, hence the excerpt, near the reconstruction. The trajectory (z, logit,
   p(vocal) and log-mel every ``trace_every`` steps) lets one hear the change step by step.
3. **Honesty**: the reconstruction error is compared with the real-vs-real spread (:mod:`.spread`); above its
   threshold the GAN cannot reconstruct this excerpt and the result says so (:attr:`CounterfactualResult.reconstructs`).
   It is also compared with the excerpt's own average spectrum repeated in every frame (:func:`envelope_mse`): a
   reconstruction no closer than that keeps the spectral envelope only, and the message says so too
   (:attr:`CounterfactualResult.beats_envelope`; added here after the demo's reconstructions passed the spread
   but not this, see the README).

The explained unit is the vocal logit. The changes to read are the kept examples minus the *reconstruction*
(what had to change), not minus the original: the original-minus-reconstruction difference is what the GAN
could not represent in the first place.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from xai_core.actmax.config import direction_sign
from xai_core.actmax.objective import (
    Progress,
    Responder,
    call_progress,
    check_models,
    describe_codes,
    resolve_device,
)
from xai_core.assets import ReferenceSet
from xai_core.checkpoints import Bundle
from xai_core.errors import ParameterError
from xai_core.explain.common import check_classifier
from xai_core.explain.consistency.data import SILENT_DB_ABOVE_FLOOR, silent_share
from xai_core.explain.counterfactual.config import DIRECTION_TITLES, CounterfactualConfig
from xai_core.explain.counterfactual.invert import invert
from xai_core.explain.counterfactual.spread import RealSpread, nearest_real_mse, real_spread
from xai_core.models.hooks import frozen

LAYER, UNIT = "logit", 0  # the explained unit: the vocal logit
MAX_SILENT_SHARE = 0.5  # an excerpt with more silent frames than this is refused (consistency's rule of a silent frame)


@dataclass
class CounterfactualResult:
    """One excerpt, its reconstruction and its counterfactuals; CPU tensors.

    D = ``len(directions)`` (rows in that order), K = ``len(trace_steps)``, d = the latent size, R restarts,
    S inversion steps.
    """

    config: CounterfactualConfig
    label: str  # where the excerpt comes from
    original: torch.Tensor  # (T, M) the excerpt's un-normalised log-mel
    reconstruction: torch.Tensor  # (T, M) G(z_inv)
    z_inv: torch.Tensor  # (d,) the inverted code
    rec_mse: float  # MSE(norm(G(z_inv)), norm(original))
    restart_mse: torch.Tensor  # (R,) MSE of each restart's kept iterate
    invert_trace: torch.Tensor  # (R, S + 1) MSE of every restart at every inversion step
    logit_original: float  # vocal logit of the original
    logit_reconstruction: float  # ... of the reconstruction
    directions: tuple[str, ...]  # "max" / "min", the rows below
    z_best: torch.Tensor  # (D, d) kept (best-scoring) AM iterate per direction
    logmel_best: torch.Tensor  # (D, T, M) G(z_best)
    logit_best: torch.Tensor  # (D,) vocal logit of the kept examples
    score_best: torch.Tensor  # (D,) ascended score incl. prior and proximity terms
    best_step: torch.Tensor  # (D,) long, AM step of the kept iterate
    trace_steps: torch.Tensor  # (K,) long, AM steps recorded in the trajectory
    trace_z: torch.Tensor  # (D, K, d) codes along the trajectory
    trace_logit: torch.Tensor  # (D, K) vocal logit along the trajectory
    trace_logmel: torch.Tensor  # (D, K, T, M) G(z) along the trajectory
    spread: dict | None = None  # RealSpread.to_dict() of the reference set (None: no reference set given)
    spread_nn: torch.Tensor | None = None  # (N,) the spread's nearest-neighbour MSEs (for its histogram)
    nearest_mse: float | None = None  # MSE between the original and its nearest reference excerpt (another clip)
    envelope_mse: float | None = None  # MSE between the original and its own average spectrum (every frame the mean)
    seconds: dict = field(default_factory=dict)  # "invert", "am", "total"
    device: str = "cpu"

    # ---- derived numbers ---------------------------------------------------------------------
    @property
    def prob_original(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit_original))

    @property
    def prob_reconstruction(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit_reconstruction))

    @property
    def prob_best(self) -> torch.Tensor:
        """(D,) p(vocal) of the kept examples."""
        return torch.sigmoid(self.logit_best)

    @property
    def trace_prob(self) -> torch.Tensor:
        """(D, K) p(vocal) along the trajectory."""
        return torch.sigmoid(self.trace_logit)

    @property
    def distance(self) -> torch.Tensor:
        """(D,) ||z_best - z_inv||."""
        return (self.z_best - self.z_inv[None]).norm(dim=1)

    @property
    def threshold(self) -> float | None:
        return None if self.spread is None else float(self.spread["threshold"])

    @property
    def beats_envelope(self) -> bool | None:
        """True when the reconstruction is closer to the excerpt than the excerpt's own average spectrum (the
        same spectrum in every frame): the GAN then keeps some of its changes over time, not only its envelope."""
        return None if self.envelope_mse is None else bool(self.rec_mse < self.envelope_mse)

    @property
    def reconstructs(self) -> bool | None:
        """True when the reconstruction error is within the real-vs-real spread's threshold; None without a
        reference set."""
        return None if self.threshold is None else bool(self.rec_mse <= self.threshold)

    def row(self, direction: str) -> int:
        if direction not in self.directions:
            raise ParameterError(f"direction {direction!r} was not run; this result has {list(self.directions)}")
        return self.directions.index(direction)

    def message(self) -> str:
        """The honesty line: can the GAN reconstruct this excerpt?"""
        if self.spread is None:
            return (f"Reconstruction error {self.rec_mse:.3f}; no reference set was given, so there is no real-vs-real "
                    "spread to judge it against.")
        s = self.spread
        where = (f"reconstruction error {self.rec_mse:.3f} (normalised units) against the real-vs-real spread: the "
                 f"{s['quantile']:.0%} quantile of the MSE between {s['n']} reference excerpts and their nearest "
                 f"excerpt of another clip is {s['threshold']:.3f} (5-95 %: {s['q05']:.3f}-{s['q95']:.3f})")
        envelope = ""
        if self.beats_envelope is False:
            envelope = (f" But it is no closer than the excerpt's own average spectrum (MSE {self.envelope_mse:.3f}, the same "
                        "spectrum in every frame): it keeps the spectral envelope, not what changes over time.")
        if self.reconstructs:
            return f"The GAN reconstructs this excerpt: {where}.{envelope}"
        return (f"The GAN cannot reconstruct this excerpt: {where}. A real excerpt of another recording typically lies "
                f"this close; the counterfactuals below change the GAN's version of it, not the excerpt itself.{envelope}")

    def summary(self) -> dict:
        """Plain numbers for tables and the run store."""
        out = {"rec_mse": self.rec_mse, "p_original": self.prob_original,
               "p_reconstruction": self.prob_reconstruction, "logit_original": self.logit_original,
               "logit_reconstruction": self.logit_reconstruction, "beta": self.config.beta}
        if self.spread is not None:
            out["spread_threshold"] = self.threshold
            out["reconstructs"] = self.reconstructs
        if self.nearest_mse is not None and math.isfinite(self.nearest_mse):
            out["nearest_real_mse"] = self.nearest_mse
        if self.envelope_mse is not None:
            out["envelope_mse"] = self.envelope_mse
            out["beats_envelope"] = self.beats_envelope
        for i, d in enumerate(self.directions):
            out[f"p_{d}"] = float(self.prob_best[i])
            out[f"logit_{d}"] = float(self.logit_best[i])
            out[f"dz_{d}"] = float(self.distance[i])
        out["seconds"] = float(self.seconds.get("total", 0.0))
        return out

    def to_dict(self) -> dict:
        """JSON-ready: the configuration, the summary, the spread, the message."""
        return {"label": self.label, "config": self.config.to_dict(), "summary": self.summary(),
                "spread": self.spread, "message": self.message(), "device": self.device, "seconds": self.seconds,
                "directions": {d: DIRECTION_TITLES[d] for d in self.directions}}


# ----------------------------------------------------------------------------------------------
# the proximity-penalised AM loop


def ascend_from(resp: Responder, z_start: torch.Tensor, signs: torch.Tensor, *, coef: float, beta: float,
                lr: float, n_iter: int, record: set[int], progress: Progress | None = None,
                offset: int = 0, total: int | None = None) -> dict[str, torch.Tensor]:
    """AM from ``z_start (D, d)`` (one row per direction sign ``signs (D,)``), AM's conventions throughout.

    The loop is :func:`xai_core.actmax.engine._optimise_chunk`'s with one term added: the ascended score is
    ``sign * a - coef ||z||^2 - beta ||z - z_start||^2`` (the term is left out when ``beta == 0``, so that
    case is AM's loop exactly). Iterates ``z_0 .. z_n_iter`` are scored, each before the update after it; the
    best-scoring one is kept (ties keep the earlier). Steps in ``record`` are kept in the trajectory.
    Returns CPU tensors: ``z_best (D, d)``, ``score_best``, ``response_best``, ``best_step``, ``trace_z (D, K, d)``,
    ``trace_response (D, K)``.
    """
    dev, dt = resp.device, resp.dtype
    anchor = z_start.to(dev, dt)  # (D, d)
    parts = [anchor.clone().requires_grad_(True)]  # one leaf, as the engine's one learning-rate group
    opt = torch.optim.Adam([{"params": parts, "lr": lr}], betas=(0.9, 0.999), eps=1e-8)
    sign = signs.to(dev, dt)  # (D,)
    n = anchor.shape[0]
    best_score = torch.full((n,), -math.inf, device=dev, dtype=dt)
    best_resp = torch.zeros(n, device=dev, dtype=dt)
    best_z = anchor.clone()
    best_step = torch.zeros(n, dtype=torch.long, device=dev)
    tz, ta = [], []
    total = n_iter if total is None else total
    for t in range(n_iter + 1):
        with torch.set_grad_enabled(t < n_iter):
            z = torch.cat(parts)  # (D, d)
            a = resp(z)  # (D,) vocal logit
            score = sign * a - coef * (z * z).sum(1)  # (D,) AM's score, same expression as the engine's
            if beta:
                score = score - beta * ((z - anchor) ** 2).sum(1)  # the proximity term
        with torch.no_grad():
            zd, sd, ad = z.detach(), score.detach(), a.detach()
            better = sd > best_score  # NaN never wins
            best_score = torch.where(better, sd, best_score)
            best_resp = torch.where(better, ad, best_resp)
            best_z = torch.where(better[:, None], zd, best_z)
            best_step = torch.where(better, torch.full_like(best_step, t), best_step)
            if t in record:
                tz.append(zd.clone())
                ta.append(ad.clone())
        if t == n_iter:
            break
        opt.zero_grad(set_to_none=True)
        (-score.sum()).backward()
        opt.step()
        call_progress(progress, offset + t + 1, total,
                      {"phase": "am", "step": t + 1, "n_steps": n_iter, "logit": ad.float().cpu()})
    return {"z_best": best_z.cpu(), "score_best": best_score.cpu(), "response_best": best_resp.cpu(),
            "best_step": best_step.cpu(), "trace_z": torch.stack(tz, 1).cpu(), "trace_response": torch.stack(ta, 1).cpu()}


# ----------------------------------------------------------------------------------------------
# inputs


def check_excerpt(classifier: Bundle, logmel, *, name: str = "the excerpt") -> torch.Tensor:
    """The excerpt as a float32 ``(T, M)`` tensor, refused (ParameterError naming it) when its shape is not the
    classifier's input, it holds NaN or infinity, or it is mostly silence."""
    x = torch.as_tensor(logmel).detach().float().cpu()
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    cfg = classifier.model.config
    want = (cfg.n_frames, classifier.mel.n_mels)
    if x.ndim != 2 or tuple(x.shape) != want:
        raise ParameterError(f"{name} must be one log-mel excerpt of shape {want} (time x mel), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ParameterError(f"{name} holds NaN or infinite log-mel values")
    share = float(silent_share(x[None], classifier.mel)[0])
    if share > MAX_SILENT_SHARE:
        raise ParameterError(f"{name} is silence ({share:.0%} of its frames have every band within "
                             f"{SILENT_DB_ABOVE_FLOOR:g} dB of the log floor): nothing to make more or less vocal; "
                             "choose another offset")
    return x


def envelope_mse(logmel: torch.Tensor, normaliser) -> float:
    """MSE (normalised units) between an excerpt ``(T, M)`` and its own average spectrum repeated in every frame:
    what a "reconstruction" keeping only the spectral envelope, nothing of the changes over time, would score."""
    y = normaliser.apply(logmel.double())  # (T, M)
    return float(((y - y.mean(0, keepdim=True)) ** 2).mean())


# ----------------------------------------------------------------------------------------------
# the method


def counterfactual(classifier: Bundle, generator: Bundle, logmel,
                   config: CounterfactualConfig = CounterfactualConfig(), *, reference: ReferenceSet | None = None,
                   spread: RealSpread | None = None, exclude_clip: str | None = None, label: str = "",
                   device=None, progress: Progress | None = None) -> CounterfactualResult:
    """Invert one real excerpt and make it more and/or less vocal by AM from its code.

    Parameters
    ----------
    classifier, generator : compatible bundles (not modified)
    logmel : ``(T, M)`` un-normalised natural-log mel of the excerpt (T = the classifier's excerpt frames)
    config : CounterfactualConfig
    reference : ReferenceSet, optional
        Real excerpts: the real-vs-real spread (:func:`~.spread.real_spread`) and the original's nearest real
        excerpt come from it. Without it (and without ``spread``) :attr:`CounterfactualResult.reconstructs` is None.
    spread : RealSpread, optional
        A spread computed beforehand (the page caches it); ``config.spread_quantile`` still sets the threshold.
    exclude_clip : str, optional
        The excerpt's own recording in ``reference`` (the part of its source before ``@``), left out of its
        nearest-real-excerpt MSE.
    label : where the excerpt comes from (kept in the result)
    device : ``None``/"auto" (CUDA if available, else CPU) or a torch device
    progress : ``progress(done, total, info)``: ``total = invert_steps + am_iters``; ``info["phase"]`` is
        ``"invert"`` then ``"am"``. Return False to cancel (:class:`~xai_core.errors.CancelledError`).

    Returns
    -------
    CounterfactualResult
    """
    if not isinstance(config, CounterfactualConfig):
        raise ParameterError(f"config must be a CounterfactualConfig, got {type(config).__name__}")
    check_classifier(classifier)
    check_models(classifier, generator, LAYER, UNIT)
    dev = resolve_device(device)
    x = check_excerpt(classifier, logmel)
    ts = time.perf_counter()
    total = config.invert_steps + config.am_iters

    if spread is None and reference is not None:
        spread = real_spread(reference, classifier.normaliser, quantile=config.spread_quantile)
    elif spread is not None:
        spread = RealSpread(spread.nn_mse, config.spread_quantile, spread.n_clips, spread.same_clip_fallback)
    nearest = (nearest_real_mse(x, reference, classifier.normaliser, exclude_clip=exclude_clip)
               if reference is not None else None)
    t0 = time.perf_counter()

    def inv_progress(done, _total, info):
        return progress(done, total, info) if progress is not None else None

    inv = invert(generator, classifier.normaliser, x, config, device=dev, progress=inv_progress)
    t1 = time.perf_counter()
    z_inv = inv.z[0]  # (d,)
    signs = torch.tensor([direction_sign(d) for d in config.directions])  # (D,)
    steps = config.trace_steps
    with Responder(classifier, generator, layer=LAYER, unit=UNIT, device=dev) as resp:
        res = ascend_from(resp, z_inv[None].repeat(len(signs), 1), signs, coef=config.penalty, beta=config.beta,
                          lr=config.am_lr, n_iter=config.am_iters, record=set(steps), progress=progress,
                          offset=config.invert_steps, total=total)
    t2 = time.perf_counter()
    d_rows, k = len(signs), len(steps)
    kept = describe_codes(classifier, generator, res["z_best"], layer=LAYER, unit=UNIT, device=dev)
    traj = describe_codes(classifier, generator, res["trace_z"].reshape(d_rows * k, -1), layer=LAYER, unit=UNIT,
                          device=dev)
    with torch.no_grad():
        both = torch.stack([x, inv.logmel[0]]).to(dev, next(classifier.model.parameters()).dtype)  # (2, T, M)
        with frozen(classifier.model, dev) as clf:
            logits = clf(classifier.normaliser.apply(both)).float().cpu()  # (2,)
    return CounterfactualResult(
        config=config, label=label, original=x, reconstruction=inv.logmel[0], z_inv=z_inv, rec_mse=float(inv.mse[0]),
        restart_mse=inv.restart_mse[0], invert_trace=inv.trace[0], logit_original=float(logits[0]),
        logit_reconstruction=float(logits[1]), directions=tuple(config.directions), z_best=res["z_best"].float(),
        logmel_best=kept["logmel"], logit_best=kept["logit"], score_best=res["score_best"].float(),
        best_step=res["best_step"], trace_steps=torch.tensor(steps, dtype=torch.long), trace_z=res["trace_z"].float(),
        trace_logit=traj["logit"].reshape(d_rows, k), trace_logmel=traj["logmel"].reshape(d_rows, k, *x.shape),
        spread=spread.to_dict() if spread is not None else None,
        spread_nn=spread.nn_mse.float() if spread is not None else None, nearest_mse=nearest,
        envelope_mse=envelope_mse(x, classifier.normaliser),
        seconds={"spread": t0 - ts, "invert": t1 - t0, "am": t2 - t1, "total": time.perf_counter() - ts}, device=str(dev))
