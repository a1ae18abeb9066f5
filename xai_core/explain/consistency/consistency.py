"""Neuron consistency (Dong, Bao, Su & Zhu, arXiv 1901.09035) on real and on adversarial inputs.

A unit is interpretable if the inputs that activate it most share a concept: consis(n) = p^T A p,
with p the distribution of concepts among its top-k inputs (:mod:`.concepts`). Every unit of every
layer is scored in one forward pass per chunk of excerpts (all layers captured at once):

* a convolutional or pooling channel's response to an excerpt is its **spatial mean** by default
  (``reduce="mean"``; ``"max"`` takes its largest value instead): the mean says "how much of the excerpt
  drives it", the max "where it fires most", and is noisier with k this small;
* a dense unit's response is its value after the non-linearity; the logit layer is one unit.

The adversarial counterpart: every excerpt of the set is attacked (untargeted by default, against its
label), the top-k of each unit are taken **among the adversarial inputs**, and each adversarial input
keeps the concepts of the excerpt it was made from (what a listener hears). The paper's claim is that
consistency drops on adversarial inputs; :meth:`ConsistencyResult.summary` says per layer whether it does
here, against the chance level of k random excerpts of the set. Beside it, the *agreement*
``p_real^T A p_adv`` of each unit says whether its adversarial top inputs still carry the concept of its
real ones: consistency alone cannot see a unit that stays pure while its concept flips.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from xai_core.assets import ReferenceSet
from xai_core.checkpoints import Bundle
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.consistency.attack import (
    AttackResult,
    Progress,
    attack,
    check_classifier,
    check_excerpts,
)
from xai_core.explain.consistency.concepts import (
    ConceptSpace,
    agreement_of,
    concept_space,
    consistency_of,
    kmeans_concepts,
)
from xai_core.explain.consistency.config import AttackConfig, ConsistencyConfig, auto_batch
from xai_core.models.hooks import capture_activations, frozen


@torch.no_grad()
def unit_responses(model: torch.nn.Module, logmel: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *,
                   layers: Sequence[str], reduce: str = "mean", batch: int = 128,
                   progress=None) -> dict[str, torch.Tensor]:
    """Every unit's response to every excerpt, all layers from one forward pass per chunk.

    Parameters
    ----------
    model : the classifier (already frozen, on the device of ``mean``)
    logmel : torch.Tensor, shape ``(N, T, M)``, un-normalised log-mel (any device)
    layers : addressable layer names
    reduce : ``"mean"`` or ``"max"`` over a channel's time x frequency map

    Returns
    -------
    dict layer -> torch.Tensor ``(N, U)`` float32 on the CPU (U units; the logit layer has U = 1)
    """
    dev = mean.device
    out: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    n = logmel.shape[0]
    with capture_activations(model, layers, detach=True) as acts:
        for s in range(0, n, batch):
            model(((logmel[s:s + batch].to(dev) - mean) / std)[:, None])
            for layer in layers:
                a = acts[layer]
                if a.ndim == 4:  # (b, C, H, W) -> (b, C)
                    a = a.mean((2, 3)) if reduce == "mean" else a.amax((2, 3))
                elif a.ndim == 1:  # the logit (b,) -> (b, 1)
                    a = a[:, None]
                out[layer].append(a.float().cpu())
            if progress is not None and progress(min(s + batch, n), n, {}) is False:
                raise CancelledError("cancelled while computing unit responses")
    return {layer: torch.cat(v) for layer, v in out.items()}


def top_k(responses: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(U, k)`` of each unit's ``k`` largest responses (columns of ``responses (N, U)``), largest
    first; ties broken by the lower excerpt index (stable)."""
    order = torch.sort(responses.T, dim=1, descending=True, stable=True).indices  # (U, N)
    return order[:, :k]


@dataclass
class ConsistencyResult:
    """Per-unit consistency of every scored layer, on real and (optionally) adversarial inputs.

    Tensors on the CPU. ``real[layer]`` and ``adv[layer]`` have shape ``(U,)``; ``topk_*[layer]``
    ``(U, k)`` index the excerpt set; ``responses_*[layer]`` ``(N, U)``.
    """

    config: ConsistencyConfig
    space: ConceptSpace
    chance: float  # expected consistency of k random excerpts of the set
    real: dict[str, torch.Tensor]
    topk_real: dict[str, torch.Tensor]
    responses_real: dict[str, torch.Tensor]
    adv: dict[str, torch.Tensor] | None = None
    topk_adv: dict[str, torch.Tensor] | None = None
    responses_adv: dict[str, torch.Tensor] | None = None
    attack: AttackResult | None = None
    classifier: dict = field(default_factory=dict)  # identity, name
    agreement: dict[str, torch.Tensor] | None = None  # (U,) p_real^T A p_adv: do adversarial top inputs keep the
    # concept of the real ones? (concepts.agreement_of)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.real)

    def dead(self, layer: str) -> torch.Tensor:
        """Units whose response is the same on every real excerpt ``(U,)`` bool: their top k is arbitrary."""
        r = self.responses_real[layer]
        return (r.max(0).values - r.min(0).values) <= 1e-12

    def summary(self) -> dict:
        """Plain numbers per layer: mean and median consistency, real vs adversarial, and the verdict."""
        layers = {}
        for layer in self.layers:
            live = ~self.dead(layer)
            real = self.real[layer][live]
            row = {"units": int(self.real[layer].numel()), "dead_units": int((~live).sum()),
                   "real_mean": float(real.mean()) if real.numel() else float("nan"),
                   "real_median": float(real.median()) if real.numel() else float("nan")}
            if self.adv is not None:
                adv = self.adv[layer][live]
                row.update({"adv_mean": float(adv.mean()) if adv.numel() else float("nan"),
                            "adv_median": float(adv.median()) if adv.numel() else float("nan"),
                            "share_units_less_consistent": float((adv < real).double().mean()) if adv.numel()
                            else float("nan")})
                row["drop"] = row["real_mean"] - row["adv_mean"]
                agree = self.agreement[layer][live] if self.agreement is not None else None
                row["agreement_mean"] = float(agree.mean()) if agree is not None and agree.numel() else float("nan")
            layers[layer] = row
        out = {"concept": self.space.name, "k": self.config.k, "reduce": self.config.reduce, "n": len(self.space),
               "chance": self.chance, "layers": layers, "classifier": self.classifier}
        if self.attack is not None:
            out["attack"] = self.attack.summary()
        return out

    def rows(self) -> list[dict]:
        """One row per unit (for CSV/JSON tables)."""
        rows = []
        for layer in self.layers:
            dead = self.dead(layer)
            for u in range(self.real[layer].numel()):
                r = {"layer": layer, "unit": u, "consistency_real": round(float(self.real[layer][u]), 6),
                     "top_concept_real": self.top_concept(self.topk_real[layer][u]), "dead": bool(dead[u])}
                if self.adv is not None:
                    r["consistency_adv"] = round(float(self.adv[layer][u]), 6)
                    if self.agreement is not None:
                        r["agreement_real_adv"] = round(float(self.agreement[layer][u]), 6)
                    r["top_concept_adv"] = self.top_concept(self.topk_adv[layer][u])
                rows.append(r)
        return rows

    def top_concept(self, idx: torch.Tensor) -> str:
        counts = torch.bincount(self.space.codes[idx], minlength=len(self.space.names))
        c = int(counts.argmax())
        return f"{self.space.names[c]} ({int(counts[c])}/{idx.numel()})"

    def csv(self) -> str:
        rows = self.rows()
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["layer"])
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()


def excerpt_set(excerpts) -> tuple[torch.Tensor, torch.Tensor, dict[str, list[str]]]:
    """``(logmel (N, T, M), labels (N,), concept tags)`` of a :class:`ReferenceSet` or such a triple."""
    if isinstance(excerpts, ReferenceSet):
        return excerpts.logmel.float(), excerpts.labels.float(), excerpts.concepts()
    if isinstance(excerpts, tuple) and len(excerpts) == 3:
        logmel, labels, concepts = excerpts
        if labels is None:
            raise ParameterError("the excerpt set has no labels: consistency needs at least vocal / non-vocal")
        labels = torch.as_tensor(labels, dtype=torch.float32).flatten()
        concepts = {"vocal": ["vocal" if float(v) > 0.5 else "non-vocal" for v in labels], **dict(concepts or {})}
        return logmel.float(), labels, concepts
    raise ParameterError("give a reference set (with labels) or (logmel, labels, tags)")


def neuron_consistency(classifier: Bundle, excerpts, *, config: ConsistencyConfig = ConsistencyConfig(),
                       attack_config: AttackConfig | None = AttackConfig(), attack_result: AttackResult | None = None,
                       device: str | torch.device | None = "auto",
                       progress: Progress | None = None) -> ConsistencyResult:
    """Consistency of every unit of ``config.layers`` on the excerpts and on their adversarial versions.

    Parameters
    ----------
    classifier : the classifier bundle (frozen and in eval mode throughout, restored afterwards)
    excerpts : a labelled :class:`~xai_core.assets.ReferenceSet` (its concept tags are used) or
        ``(logmel (N, T, M), labels (N,), tags)``
    config : k, concept scheme, reduction, layers, optional k-means clusters
    attack_config : the attack made on every excerpt (None: real inputs only)
    attack_result : an attack already made on these excerpts (reused instead of attacking again)
    progress : ``progress(done, total, info)``; False cancels

    Returns
    -------
    ConsistencyResult
    """
    check_classifier(classifier)
    logmel, labels, concepts = excerpt_set(excerpts)
    check_excerpts(logmel, classifier.model)
    n = logmel.shape[0]
    if config.k > n:
        raise ParameterError(f"k = {config.k} is larger than the excerpt set ({n} excerpts)")
    shapes = classifier.model.layer_shapes()
    unknown = [layer for layer in config.layers if layer not in shapes]
    if unknown:
        raise ParameterError(f"unknown layers {unknown}; valid layers: {list(shapes)}")
    if config.clusters:
        concepts = {**concepts, "cluster": kmeans_concepts(logmel, k=config.clusters, seed=config.seed)}
    space = concept_space(config.concept, concepts)
    if attack_result is not None and (attack_result.logmel.shape != logmel.shape
                                      or not torch.equal(attack_result.logmel, logmel.cpu())):
        raise ParameterError("the given attack result was made on other excerpts")
    dev = resolve_device(device)
    n_att = 0 if attack_config is None or attack_result is not None else \
        -(-n // auto_batch(attack_config.batch_size, dev)) * attack_config.n_steps
    total = n_att + 2 * n

    def sub(offset: int, what: str):
        def p(done, _t, info):
            return None if progress is None else progress(offset + done, total, {**info, "stage": what})
        return p

    if attack_result is None and attack_config is not None:
        attack_result = attack(classifier, logmel, labels=labels, config=attack_config, device=dev,
                               progress=sub(0, "attack"))
    mean, std = classifier.normaliser.mean.to(dev), classifier.normaliser.std.to(dev)
    batch = auto_batch(config.batch_size, dev, responses=True)
    kw = {"layers": config.layers, "reduce": config.reduce, "batch": batch}
    with frozen(classifier.model, dev) as model, out_of_memory_as_error(
            f"computing unit responses (batch {batch})", "lower the batch size or use the CPU"):
        resp = unit_responses(model, logmel, mean, std, progress=sub(n_att, "responses"), **kw)
        resp_adv = None if attack_result is None else unit_responses(
            model, attack_result.adversarial, mean, std, progress=sub(n_att + n, "adversarial responses"), **kw)
    topk = {layer: top_k(r, config.k) for layer, r in resp.items()}
    real = {layer: consistency_of(t, space) for layer, t in topk.items()}
    res = ConsistencyResult(config, space, space.chance(config.k), real, topk, resp,
                            classifier={"identity": classifier.identity, "name": classifier.name})
    if resp_adv is not None:
        res.responses_adv = resp_adv
        res.topk_adv = {layer: top_k(r, config.k) for layer, r in resp_adv.items()}
        res.adv = {layer: consistency_of(t, space) for layer, t in res.topk_adv.items()}
        res.agreement = {layer: agreement_of(topk[layer], t, space) for layer, t in res.topk_adv.items()}
        res.attack = attack_result
    return res


def layer_means(results: Mapping[str, ConsistencyResult]) -> dict[str, dict[str, list[float]]]:
    """For a depth plot: per result name, the mean real and adversarial consistency per layer."""
    out = {}
    for name, r in results.items():
        s = r.summary()["layers"]
        out[name] = {"real": [s[layer]["real_mean"] for layer in r.layers],
                     "adv": [s[layer].get("adv_mean", float("nan")) for layer in r.layers]}
    return out
