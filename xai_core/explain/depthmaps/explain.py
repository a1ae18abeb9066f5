"""Depth maps of excerpts: every layer's Grad-CAM, the cumulative maps and the explainers' maps,
with the per-depth relevance of each explainer's conditions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from xai_core.checkpoints import Bundle
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.common import check_classifier
from xai_core.explain.depthmaps.bundle import ExplainerBundle
from xai_core.explain.depthmaps.config import UnitSpec
from xai_core.explain.depthmaps.gradcam import (
    check_unit,
    cumulative_maps,
    cumulative_names,
    layer_gradcam,
    target_map,
)
from xai_core.explain.depthmaps.nets import MapGenerator
from xai_core.models.hooks import frozen
from xai_core.train.loop import Progress


@dataclass
class DepthMapResult:
    """Maps of ``B`` excerpts (CPU tensors), all on the input grid, each in [0, 1].

    ``layer_maps[:, l]``: Grad-CAM at ``layers[l]`` (shallow to deep); ``cumulative[:, j]``: the mean of the
    ``kept[j] + 1`` deepest layers' maps (deepest first; names in ``cumulative_names``); ``gan[name]``: an
    explainer's map; ``relevance[name][:, j]``: how much that map changes (mean absolute difference) when
    condition ``j`` is dropped (set to zero).
    """

    unit: UnitSpec
    logmel: torch.Tensor  # (B, T, M) un-normalised input
    layers: list[str]
    layer_maps: torch.Tensor  # (B, L, T, M)
    peak: torch.Tensor  # (B, L) each layer map's maximum before normalisation
    kept: list[int]
    cumulative: torch.Tensor  # (B, K, T, M)
    logit: torch.Tensor  # (B,) vocal logit
    value: torch.Tensor  # (B,) the explained unit's value
    gan: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, T, M)
    relevance: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, K)
    checks: dict = field(default_factory=dict)  # faithfulness table / randomisation check, when computed and kept
    conditions: dict[str, list[str]] = field(default_factory=dict)  # explainer -> names of its K condition maps

    @property
    def cumulative_names(self) -> list[str]:
        return cumulative_names(self.layers, self.kept)

    def maps(self) -> dict[str, torch.Tensor]:
        """Every map by name: layers, ``"cumulative <names>"``, ``"GAN <name>"``; each ``(B, T, M)``."""
        out = {n: self.layer_maps[:, i] for i, n in enumerate(self.layers)}
        out.update({f"cumulative {n}": self.cumulative[:, j] for j, n in enumerate(self.cumulative_names)})
        out.update({f"GAN {n}": m for n, m in self.gan.items()})
        return out

    def summary(self) -> dict[str, float]:
        """Plain numbers: p(vocal), the unit's value, each explainer's relevance per depth (shares summing to 1)."""
        out = {"p_vocal": float(torch.sigmoid(self.logit).mean()), "unit_value": float(self.value.mean())}
        for name, rel in self.relevance.items():
            share = rel.mean(0) / rel.mean(0).sum().clamp_min(1e-12)
            for j, cname in enumerate(self.conditions[name]):
                out[f"relevance/{name}/{cname}"] = float(share[j])
        return out


@torch.no_grad()
def generate(generator: MapGenerator, xn: torch.Tensor, cond: torch.Tensor, *, batch: int = 64) -> torch.Tensor:
    """``G(xn, cond)`` in batches on ``xn``'s device: ``(B, T, M)``."""
    return torch.cat([generator(xn[s:s + batch], cond[s:s + batch]) for s in range(0, xn.shape[0], batch)])


@torch.no_grad()
def condition_relevance(generator: MapGenerator, xn: torch.Tensor, cond: torch.Tensor, *,
                        base: torch.Tensor | None = None, batch: int = 64) -> torch.Tensor:
    """Per condition map ``j``, the mean absolute change of the generated map when map ``j`` is dropped
    (set to zero: "this depth says nothing is relevant"), per excerpt: ``(B, K)``.

    A generator that ignores a condition map gets relevance exactly 0 for it.
    """
    base = generate(generator, xn, cond, batch=batch) if base is None else base  # (B, T, M)
    out = []
    for j in range(cond.shape[1]):
        c = cond.clone()
        c[:, j] = 0
        out.append((generate(generator, xn, c, batch=batch) - base).abs().flatten(1).mean(1))  # (B,)
    return torch.stack(out, 1)  # (B, K)


def _on(module: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    import copy

    return module if all(p.device == dev for p in module.parameters()) else copy.deepcopy(module).to(dev)


def check_logmel(logmel: torch.Tensor, classifier: Bundle) -> torch.Tensor:
    """``(B, T, M)`` finite log-mel of the classifier's size (a single ``(T, M)`` gets a batch axis)."""
    cfg = classifier.model.config
    if logmel.ndim == 2:
        logmel = logmel[None]
    if logmel.ndim != 3 or tuple(logmel.shape[1:]) != (cfg.n_frames, cfg.n_mels):
        raise ParameterError(f"excerpts must be (B, {cfg.n_frames}, {cfg.n_mels}) log-mel, got {tuple(logmel.shape)}")
    if logmel.shape[0] == 0:
        raise ParameterError("no excerpts to explain")
    if not torch.isfinite(logmel).all():
        raise ParameterError("the excerpts contain non-finite values")
    return logmel


def explain(classifier: Bundle, logmel: torch.Tensor, *, unit: UnitSpec = UnitSpec(), k: int | None = None,
            explainers: Mapping[str, ExplainerBundle] | Sequence[ExplainerBundle] = (), relevance: bool = True,
            device: str | torch.device | None = "auto", batch: int = 64,
            progress: Progress | None = None) -> DepthMapResult:
    """Grad-CAM depth maps of ``unit`` for excerpts, and the maps of trained explainers.

    Parameters
    ----------
    classifier : the explained classifier (frozen and in eval mode during the call)
    logmel : torch.Tensor, shape ``(B, T, M)``, un-normalised log-mel
    unit : the explained unit (default: the vocal logit)
    k : condition maps (default ``min(8, layers)``; explainers use their own K)
    explainers : trained explainer bundles (name -> bundle, or a sequence named by variant); each must
        belong to ``classifier`` and explain ``unit``
    relevance : also drop each condition of each explainer (K more generator passes per explainer)
    progress : ``progress(done, total, info)`` after each batch; False cancels

    Returns
    -------
    DepthMapResult
    """
    check_classifier(classifier)
    check_unit(classifier.model, unit)
    logmel = check_logmel(logmel, classifier)
    if not isinstance(explainers, Mapping):
        explainers = {e.variant: e for e in explainers}
    for e in explainers.values():
        e.check_classifier(classifier)
        if e.unit != unit:
            raise ParameterError(f"explainer {e.name} explains {e.unit.label}, not {unit.label}")
    dev = resolve_device(device)
    x = logmel.to(dev, torch.float32)
    parts: list[DepthMapResult] = []
    n_batches = (x.shape[0] + batch - 1) // batch
    with frozen(classifier.model, dev) as clf, out_of_memory_as_error(
            f"explaining {x.shape[0]} excerpts", "lower the batch or run on the CPU (device 'cpu')"):
        gens = {name: _on(e.generator, dev) for name, e in explainers.items()}
        for bi, s in enumerate(range(0, x.shape[0], batch)):
            xn = classifier.normaliser.apply(x[s:s + batch])  # (b, T, M)
            lm = layer_gradcam(clf, xn, unit=unit)
            cum, kept = cumulative_maps(lm.maps, k)
            part = DepthMapResult(unit=unit, logmel=logmel[s:s + batch].float().cpu(), layers=lm.layers,
                                  layer_maps=lm.maps.cpu(), peak=lm.peak.cpu(), kept=kept, cumulative=cum.cpu(),
                                  logit=lm.logit.cpu(), value=lm.value.cpu())
            for name, e in explainers.items():
                if e.layers != lm.layers:
                    raise ParameterError(f"explainer {e.name} was trained on layers {e.layers}, not {lm.layers}")
                cond = cumulative_maps(lm.maps, e.k)[0]  # (b, K_e, T, M)
                g = generate(gens[name], xn, cond, batch=batch)
                part.gan[name] = g.cpu()
                part.conditions[name] = cumulative_names(lm.layers, e.kept)
                if relevance:
                    part.relevance[name] = condition_relevance(gens[name], xn, cond, base=g, batch=batch).cpu()
            parts.append(part)
            if progress is not None and progress(bi + 1, n_batches, {}) is False:
                raise CancelledError(f"cancelled after {bi + 1} of {n_batches} batches")
    return _concat(parts)


def _concat(parts: list[DepthMapResult]) -> DepthMapResult:
    if len(parts) == 1:
        return parts[0]
    p0 = parts[0]

    def cat(attr):
        return torch.cat([getattr(p, attr) for p in parts])

    return DepthMapResult(unit=p0.unit, logmel=cat("logmel"), layers=p0.layers, layer_maps=cat("layer_maps"),
                          peak=cat("peak"), kept=p0.kept, cumulative=cat("cumulative"), logit=cat("logit"),
                          value=cat("value"),
                          gan={n: torch.cat([p.gan[n] for p in parts]) for n in p0.gan}, conditions=p0.conditions,
                          relevance={n: torch.cat([p.relevance[n] for p in parts]) for n in p0.relevance})


def evaluate_explainer(classifier: Bundle, explainer: ExplainerBundle, logmel: torch.Tensor, *,
                       device: str | torch.device | None = "auto", batch: int = 64) -> dict[str, float | list]:
    """An explainer on held-out excerpts (songs it was not trained on): L1 to its target against two
    reference points (copying the first condition map; the best constant map), and the per-depth relevance
    of its conditions (shares summing to 1, deepest first) with the first/last ratio the paper discusses."""
    res = explain(classifier, logmel, unit=explainer.unit, explainers={"e": explainer}, device=device, batch=batch)
    target = target_map(res.layer_maps, explainer.target)[:, 0]  # (B, T, M)
    g = res.gan["e"]
    cond = cumulative_maps(res.layer_maps, explainer.k)[0]
    rel = res.relevance["e"].mean(0)  # (K,)
    share = rel / rel.sum().clamp_min(1e-12)
    return {
        "n_excerpts": int(g.shape[0]),
        "l1": round(float((g - target).abs().mean()), 5),
        "l1_copy_first_condition": round(float((cond[:, 0] - target).abs().mean()), 5),
        "l1_constant": round(float((target - target.median()).abs().mean()), 5),
        "relevance": [round(float(v), 4) for v in share],
        "relevance_first_over_last": round(float(rel[0] / rel[-1].clamp_min(1e-12)), 3),
        "condition_names": res.conditions["e"],
    }
