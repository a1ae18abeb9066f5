"""A sanity check for GAN-based activation maximisation (no published AM tool has one).

With a strong GAN prior, AM's examples can look plausible whatever the classifier: the prior alone makes
them spectrogram-like. The test of Adebayo et al. (2018) asks whether they depend on the model: the same
configuration (same seeds, so the same starting codes) is run again on copies of the classifier whose weighted
layers are re-initialised cascading from the top (logit, fc2, fc1, conv4, ..., conv1), and at each depth the
kept examples are compared with the trained model's:

* **rank correlation** (Spearman, per example, over the time-frequency bins) of the two log-mels;
* **change correlation**: the same for what AM changed, ``x - G(z0)`` of both runs (they start from the same
  codes, so the examples can correlate only because both stay near the GAN's starting sample);
* **level difference**: mean absolute difference in dB;
* **response**: the *trained* classifier's mean response to the randomised model's examples (do they still
  drive the unit?), beside its response to its own;
* **FID** (with a reference set): the trained classifier's hidden-layer features of the examples against the
  real excerpts it responds to most (max) or least (min), as on the FID page.

Examples that barely change once every layer is random (correlation above ``fail_above``) explain the GAN, not
the classifier: the check **fails**. The change correlation says whether at least AM's *edits* depend on the
model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from xai_core.actmax.config import AMConfig
from xai_core.actmax.engine import AMResult, reference_features, run_am, top_reference
from xai_core.actmax.objective import describe_codes, initial_codes
from xai_core.assets import ReferenceSet
from xai_core.checkpoints import Bundle, model_identity
from xai_core.device import resolve_device
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.common import check_classifier
from xai_core.explain.sanity.randomise import FAIL_ABOVE, randomise, spearman_rows, weighted_layers
from xai_core.metrics.fid import fid_from_features
from xai_core.train.loop import Progress

DB_PER_LOG = 20.0 / math.log(10.0)  # natural-log mel magnitude -> dB


@dataclass
class AMSanityResult:
    """The trained model's AM run and, per randomisation stage, how much its examples changed."""

    config: AMConfig
    stages: list[str]  # "logit", "logit..fc2", ...
    correlation: np.ndarray  # (S_stages, n_examples) Spearman of the log-mels
    change_correlation: np.ndarray  # (S_stages, n_examples) Spearman of x - G(z0)
    level_db: np.ndarray  # (S_stages, n_examples) mean |difference| in dB
    response: np.ndarray  # (S_stages, n_examples) the trained classifier's response to the randomised examples
    response_trained: np.ndarray  # (n_examples,) its response to its own examples
    fid: list[float] = field(default_factory=list)  # per stage (empty without a reference set)
    fid_trained: float | None = None
    fid_feature: str = "fc2"
    fail_above: float = FAIL_ABOVE
    trained: AMResult | None = None  # the trained model's run (kept examples for display)
    last: AMResult | None = None  # the fully randomised model's run

    @property
    def passes(self) -> bool:
        """The examples changed: mean correlation after full randomisation at most ``fail_above``."""
        return bool(self.correlation[-1].mean() <= self.fail_above)

    @property
    def changes_pass(self) -> bool:
        """AM's edits (``x - G(z0)``) changed: their mean correlation after full randomisation at most ``fail_above``."""
        return bool(self.change_correlation[-1].mean() <= self.fail_above)

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "stages": self.stages,
                "correlation": [round(float(v), 4) for v in self.correlation.mean(1)],
                "change_correlation": [round(float(v), 4) for v in self.change_correlation.mean(1)],
                "level_db": [round(float(v), 3) for v in self.level_db.mean(1)],
                "response": [round(float(v), 4) for v in self.response.mean(1)],
                "response_trained": round(float(self.response_trained.mean()), 4),
                "fid": [round(v, 4) for v in self.fid], "fid_trained": self.fid_trained,
                "fid_feature": self.fid_feature, "fail_above": self.fail_above, "passes": self.passes,
                "changes_pass": self.changes_pass}

    def format(self) -> str:
        d = self.to_dict()
        lines = [f"AM randomisation check ({self.config.direction}, lr {self.config.lr:g}, lambda {self.config.lam:g}, "
                 f"{self.config.n_iter} it., {self.config.n_examples} examples); trained model's response "
                 f"{d['response_trained']:.3f}" + (f", FID {self.fid_trained:.3f}" if self.fid_trained is not None
                                                   else ""),
                 f"{'randomised down to':20s} {'rho':>7s} {'rho chg':>7s} {'|dB|':>7s} {'response':>9s}"
                 + ("   FID" if self.fid else "")]
        for i, st in enumerate(self.stages):
            lines.append(f"{st.split('..')[-1]:20s} {d['correlation'][i]:7.3f} {d['change_correlation'][i]:7.3f} "
                         f"{d['level_db'][i]:7.2f} "
                         f"{d['response'][i]:9.3f}" + (f" {d['fid'][i]:7.3f}" if self.fid else ""))
        lines.append(f"verdict: examples {'pass' if self.passes else 'FAIL'}, AM's changes "
                     f"{'pass' if self.changes_pass else 'FAIL'} (fails above rho {self.fail_above:g} once every layer "
                     "is random)")
        return "\n".join(lines)


def am_randomisation_check(classifier: Bundle, generator: Bundle, config: AMConfig, *,
                           reference: ReferenceSet | None = None, n_reference: int = 50, per_clip: int | None = 4,
                           fid_feature: str = "fc2",
                           seed: int = 0, fail_above: float = FAIL_ABOVE, device: str | torch.device | None = "auto",
                           progress: Progress | None = None) -> AMSanityResult:
    """Run ``config`` on the trained classifier and on its cascadingly randomised copies; compare the examples.

    Parameters
    ----------
    classifier, generator : compatible bundles (never modified: the randomised models are copies)
    config : one AM configuration (its seeds fix the starting codes of every run)
    reference : real excerpts for the FID against the top ``n_reference`` (by the trained classifier), at most
        ``per_clip`` of one source clip (``None``: no cap)
    fid_feature : hidden layer of the trained classifier whose features the FID compares
    seed : seed of the re-initialisation
    progress : ``progress(done, total, info)`` after each run (1 + stages); False cancels

    Returns
    -------
    AMSanityResult
    """
    check_classifier(classifier)
    if fid_feature not in classifier.model.layer_names:
        raise ParameterError(f"unknown FID feature layer {fid_feature!r}; layers: {list(classifier.model.layer_names)}")
    dev = resolve_device(device)
    order = weighted_layers(classifier.model)
    total = 1 + len(order)

    def tick(done: int, what: str) -> None:
        if progress is not None and progress(done, total, {"stage": what}) is False:
            raise CancelledError(f"cancelled after {done} of {total} runs")

    ref_feats = None
    if reference is not None:
        idx = top_reference(classifier, reference, layer=config.layer, unit=config.unit, direction=config.direction,
                            n=n_reference, per_clip=per_clip, device=dev)
        sub = ReferenceSet(reference.logmel[idx], reference.labels[idx], [reference.sources[int(i)] for i in idx],
                           reference.mel)
        ref_feats = reference_features(classifier, sub, layer=config.layer, unit=config.unit,
                                       feature_layers=(fid_feature,), device=dev)["feature:" + fid_feature]

    def judged(res: AMResult) -> tuple[torch.Tensor, float | None]:
        """The trained classifier's response to ``res``'s kept examples, and their FID against the reference."""
        d = describe_codes(classifier, generator, res.z_best, layer=config.layer, unit=config.unit,
                           feature_layers=(fid_feature,) if ref_feats is not None else (), device=dev)
        fid = None
        if ref_feats is not None:
            x = d["feature:" + fid_feature]
            fid = fid_from_features(x, ref_feats) if torch.isfinite(x).all() else math.inf
        return d["response"], fid

    trained = run_am(classifier, generator, config, device=dev)
    resp0, fid0 = judged(trained)
    tick(1, "trained")
    x0 = trained.logmel_best.flatten(1).double().numpy()  # (S, T * M)
    start = describe_codes(classifier, generator, initial_codes(config.seed, config.n_examples, generator.model.z_dim),
                           layer=config.layer, unit=config.unit, device=dev)["logmel"].flatten(1).double().numpy()
    out = AMSanityResult(config=config, stages=[], correlation=np.zeros((0, config.n_examples)),
                         change_correlation=np.zeros((0, config.n_examples)),
                         level_db=np.zeros((0, config.n_examples)), response=np.zeros((0, config.n_examples)),
                         response_trained=resp0.numpy(), fid_trained=None if fid0 is None else round(fid0, 4),
                         fid_feature=fid_feature, fail_above=fail_above, trained=trained)
    corr, chg, level, resp = [], [], [], []
    for s in range(len(order)):
        model = randomise(classifier.model, order[:s + 1], seed=seed + s)
        rb = Bundle(kind="classifier", model=model, mel=classifier.mel, normaliser=classifier.normaliser,
                    preset=classifier.preset, identity=model_identity(model))
        res = run_am(rb, generator, config, device=dev)
        x = res.logmel_best.flatten(1).double().numpy()
        corr.append(spearman_rows(x0, x))
        chg.append(spearman_rows(x0 - start, x - start))
        level.append(np.abs(x - x0).mean(1) * DB_PER_LOG)
        r, f = judged(res)
        resp.append(r.numpy())
        if f is not None:
            out.fid.append(float(f))
        out.stages.append(order[0] if s == 0 else f"{order[0]}..{order[s]}")
        out.last = res
        tick(s + 2, out.stages[-1])
    out.correlation, out.change_correlation = np.stack(corr), np.stack(chg)
    out.level_db, out.response = np.stack(level), np.stack(resp)
    return out
