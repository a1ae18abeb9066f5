"""Model-randomisation sanity check (Adebayo et al. 2018) of the depth maps and the explainers.

The classifier's weighted layers are re-initialised cumulatively from the top (logit, then fc2, fc1,
conv4, ..., conv1; pooling layers have no weights), and after each stage the same maps are computed again.
Their Spearman rank correlation with the trained model's maps, per excerpt, says whether a map depends on
what the model learned: a method whose maps barely change once the whole network is random explains the
input (or its own prior), not the model, and **fails**. Constant maps (all zero, e.g. after a ReLU kills
everything) have no ranking: their correlation counts as 0 (nothing of the trained map is left).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from xai_core.checkpoints import Bundle
from xai_core.device import resolve_device
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.depthmaps.config import UnitSpec
from xai_core.explain.sanity.randomise import FAIL_ABOVE, randomise, spearman_rows, weighted_layers
from xai_core.train.loop import Progress

MapFn = Callable[[nn.Module, torch.Tensor], Mapping[str, torch.Tensor]]


@dataclass
class SanityResult:
    """Rank correlation of each map with the trained model's, after each randomisation stage."""

    stages: list[str]  # layers randomised so far: "logit", "logit..fc2", ...
    correlation: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (S, B)
    fail_above: float = FAIL_ABOVE

    def mean(self) -> dict[str, list[float]]:
        return {k: [round(float(v), 4) for v in c.mean(1)] for k, c in self.correlation.items()}

    def verdict(self) -> dict[str, bool]:
        """Map name -> passes (its maps changed: mean correlation after full randomisation <= ``fail_above``)."""
        return {k: bool(c[-1].mean() <= self.fail_above) for k, c in self.correlation.items()}

    def to_dict(self) -> dict:
        return {"stages": self.stages, "mean_correlation": self.mean(), "passes": self.verdict(),
                "fail_above": self.fail_above}

    def format(self) -> str:
        return self.format_dict(self.to_dict())

    @staticmethod
    def format_dict(d: dict) -> str:
        """A :meth:`to_dict` report as aligned text (CLI)."""
        lines = [f"Model randomisation (cascading from the top): Spearman correlation with the trained maps, "
                 f"fails above {d['fail_above']:g} once every layer is random",
                 f"{'map':28s} " + " ".join(f"{s.split('..')[-1]:>7s}" for s in d["stages"]) + "  verdict"]
        for k, m in d["mean_correlation"].items():
            lines.append(f"{k:28s} " + " ".join(f"{x:7.3f}" for x in m) + f"  {'passes' if d['passes'][k] else 'FAILS'}")
        return "\n".join(lines)


def randomisation_check(classifier: Bundle, logmel: torch.Tensor, *, unit: UnitSpec = UnitSpec(),
                        explainers: Mapping = {}, map_fn: MapFn | None = None,  # noqa: B006
                        seed: int = 0, fail_above: float = FAIL_ABOVE, device: str | torch.device | None = "auto",
                        progress: Progress | None = None) -> SanityResult:
    """Correlation of the maps of a cascadingly randomised classifier with the trained one's.

    Parameters
    ----------
    classifier : the explained classifier (never modified: randomised copies are used)
    logmel : torch.Tensor, shape ``(B, T, M)``, un-normalised log-mel
    explainers : explainer bundles whose maps are checked too (conditioned on the randomised model's maps)
    map_fn : ``map_fn(model, logmel) -> {name: (B, T, M)}`` replacing the depth maps (tests, other methods)
    progress : ``progress(done, total, info)`` after each stage; False cancels

    Returns
    -------
    SanityResult
    """
    from xai_core.explain.depthmaps.explain import check_logmel, explain

    logmel = check_logmel(logmel, classifier)
    dev = resolve_device(device)
    if map_fn is None:
        def map_fn(model, x):
            b = Bundle(kind="classifier", model=model, mel=classifier.mel, normaliser=classifier.normaliser,
                       identity=classifier.identity)
            return explain(b, x, unit=unit, explainers=explainers, relevance=False, device=dev).maps()
    order = weighted_layers(classifier.model)
    if not order:
        raise ParameterError("the classifier has no weighted layer to randomise")
    ref = {k: v.flatten(1).cpu().double().numpy() for k, v in map_fn(classifier.model, logmel).items()}
    res = SanityResult(stages=[], fail_above=fail_above)
    per: dict[str, list[np.ndarray]] = {k: [] for k in ref}
    for s in range(len(order)):
        model = randomise(classifier.model, order[:s + 1], seed=seed + s)
        res.stages.append(order[0] if s == 0 else f"{order[0]}..{order[s]}")
        maps = map_fn(model, logmel)
        for k, v in maps.items():
            per[k].append(spearman_rows(ref[k], v.flatten(1).cpu().double().numpy()))
        if progress is not None and progress(s + 1, len(order), {"stage": res.stages[-1]}) is False:
            raise CancelledError(f"cancelled after {s + 1} of {len(order)} stages")
    res.correlation = {k: np.stack(v) for k, v in per.items()}
    return res
