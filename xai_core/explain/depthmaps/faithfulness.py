"""Deletion and insertion curves (Petsiuk et al. 2018) of saliency maps: does removing the bins a map calls
relevant change the explained unit, more than removing bins in a random order?

For each excerpt and map, time-frequency bins are ranked from the most relevant down (ties in a seeded
random order: Grad-CAM maps are zero over large areas). At each fraction ``f`` of ``0, 1/S, ..., 1``:

* **deletion**: the top ``f`` share of bins takes the baseline value, the unit is measured;
* **insertion**: the excerpt starts as all baseline and the top ``f`` share is revealed.

The baseline is 0 in the classifier's normalised input, its per-band training mean: "an average
spectrum" rather than silence, which would itself be out of distribution. Areas under the curves
(trapezoid over ``f``) are compared in two ways:

* with **random blobs**: ``n_random`` random maps drawn on a coarse grid (a tenth of the input's size, about
  the deepest layer's 11 x 7) and upsampled like the Grad-CAM maps. These are the fair random reference: a
  random order over single bins (**random bins**, also reported) punches thousands of scattered holes, an
  input the classifier has never seen, and on the demo that alone drives the logit down faster than any
  map does (measured: every map "loses" to scattered random deletion on 95 % of the excerpts while also
  "beating" it in insertion, the signature of the artefact, not of the maps);
* with itself: ``gap = AUC(insertion) - AUC(deletion)``, the same masks seen from both sides. Deleting the
  *least* relevant bins first (Samek et al. 2017) is the insertion curve read backwards (at share ``f`` it
  keeps the top ``1 - f``: the insertion input at ``1 - f``), so its area equals the insertion area and the
  gap is also "least relevant first minus most relevant first". A positive gap says the map's top bins
  matter more than its bottom ones, with no random reference at all.

A faithful map has a *lower* deletion area and a *higher* insertion area than random blobs, and a positive
gap.

Written here rather than taken from Quantus: Quantus' region-perturbation metrics run per sample in
numpy with one model call per step; these curves batch every step of every excerpt and map into a few
forward passes on the classifier's device, and are tested on a linear toy model whose curves are known in
closed form (``tests/explain/test_depthmaps_faithfulness.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from xai_core.checkpoints import Bundle
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.depthmaps.config import FaithConfig, UnitSpec
from xai_core.explain.depthmaps.gradcam import unit_output
from xai_core.models.hooks import forward_until, frozen
from xai_core.train.loop import Progress


@dataclass
class FaithCurves:
    """Curves of ``B`` excerpts (CPU tensors): the explained unit against the share of bins removed / revealed."""

    fractions: torch.Tensor  # (S + 1,) from 0 to 1
    deletion: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, S + 1), most relevant first
    insertion: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, S + 1)
    random_deletion: torch.Tensor | None = None  # (B, S + 1), mean over the random-blob orders
    random_insertion: torch.Tensor | None = None  # (B, S + 1)
    scattered_deletion: torch.Tensor | None = None  # (B, S + 1), mean over random orders of single bins
    scattered_insertion: torch.Tensor | None = None  # (B, S + 1)

    def auc(self, curve: torch.Tensor) -> torch.Tensor:
        """Area under ``(B, S + 1)`` curves over the fractions: ``(B,)``."""
        return torch.trapezoid(curve, self.fractions, dim=1)

    def table(self, *, references: bool = False) -> list[dict]:
        """One row per map: mean areas (deletion, insertion), the random-blob baselines, the gains over them
        (``random - deletion`` and ``insertion - random``: positive = more faithful than random), the gap
        ``insertion - deletion`` and the share of excerpts where the map beats random blobs in deletion.
        ``references``: also rows for the random orders themselves ("random blobs", "random bins")."""
        rd, ri = self.auc(self.random_deletion), self.auc(self.random_insertion)
        curves = {n: (self.deletion[n], self.insertion[n]) for n in self.deletion}
        if references:
            curves["random blobs"] = (self.random_deletion, self.random_insertion)
            if self.scattered_deletion is not None:
                curves["random bins"] = (self.scattered_deletion, self.scattered_insertion)
        rows = []
        for name, (dc, ic) in curves.items():
            d, i = self.auc(dc), self.auc(ic)
            rows.append({"map": name, "deletion_auc": round(float(d.mean()), 4),
                         "insertion_auc": round(float(i.mean()), 4), "gap": round(float((i - d).mean()), 4),
                         "random_deletion_auc": round(float(rd.mean()), 4),
                         "random_insertion_auc": round(float(ri.mean()), 4),
                         "deletion_gain": round(float((rd - d).mean()), 4), "insertion_gain": round(float((i - ri).mean()), 4),
                         "beats_random": round(float((d < rd).float().mean()), 3)})
        return rows


def random_blobs(shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    """Random saliency maps ``(B, T, M)`` with the spatial structure of deep Grad-CAM maps: uniform noise on a
    grid a tenth of the input's size, upsampled bilinearly."""
    b, t, m = shape
    coarse = torch.rand(b, 1, max(2, t // 10), max(2, m // 10), generator=generator)
    return F.interpolate(coarse, size=(t, m), mode="bilinear", align_corners=False)[:, 0]


def _ranks(saliency: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rank of each bin (0 = most relevant) per excerpt, ties broken at random: ``(B, N)``."""
    s = saliency.flatten(1).double()  # (B, N)
    b, n = s.shape
    perm = torch.stack([torch.randperm(n, generator=generator) for _ in range(b)]).to(s.device)  # (B, N)
    shuffled = torch.gather(s, 1, perm)
    order_in_perm = torch.argsort(-shuffled, dim=1, stable=True)  # stable sort of a random permutation
    order = torch.gather(perm, 1, order_in_perm)  # (B, N) bin indices, most relevant first
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(n, device=s.device).expand(b, n))
    return ranks


def unit_values(model: torch.nn.Module, xn: torch.Tensor, unit: UnitSpec, batch: int) -> torch.Tensor:
    """The explained unit for normalised excerpts ``(N, T, M)``: ``(N,)`` (runs the model only up to the unit)."""
    return torch.cat([unit_output(forward_until(model, unit.layer, xn[s:s + batch]), unit)
                      for s in range(0, xn.shape[0], batch)])


@torch.no_grad()
def curves(model: torch.nn.Module, xn: torch.Tensor, saliency: torch.Tensor, *, unit: UnitSpec,
           fractions: torch.Tensor, ranks: torch.Tensor | None = None, generator: torch.Generator | None = None,
           batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Deletion and insertion curves ``(B, S + 1)`` each of ``saliency (B, T, M)`` for ``xn (B, T, M)``.

    ``ranks`` (``(B, T * M)``, 0 = removed first) replaces the saliency's order (random orders)."""
    b, t, m = xn.shape
    n = t * m
    if ranks is None:
        ranks = _ranks(saliency, generator or torch.Generator().manual_seed(0))
    ranks = ranks.to(xn.device)
    counts = torch.round(fractions.to(xn.device) * n).long()  # (S + 1,)
    base = torch.zeros_like(xn[0])  # (T, M): the per-band training mean, normalised
    dele, ins = [], []
    for i in range(b):
        gone = (ranks[i][None, :] < counts[:, None]).reshape(-1, t, m)  # (S + 1, T, M)
        x = xn[i][None]
        dele.append(unit_values(model, torch.where(gone, base, x), unit, batch))
        ins.append(unit_values(model, torch.where(gone, x, base), unit, batch))
    return torch.stack(dele).cpu(), torch.stack(ins).cpu()


def faithfulness(classifier: Bundle, logmel: torch.Tensor, maps: Mapping[str, torch.Tensor], *,
                 unit: UnitSpec = UnitSpec(), config: FaithConfig = FaithConfig(),
                 device: str | torch.device | None = "auto", progress: Progress | None = None) -> FaithCurves:
    """Deletion and insertion curves of every map in ``maps`` (name -> ``(B, T, M)``) and of random orders
    (blobs and single bins).

    Parameters
    ----------
    classifier : the explained classifier (frozen and in eval mode during the call)
    logmel : torch.Tensor, shape ``(B, T, M)``, un-normalised log-mel (the excerpts the maps explain)
    maps : saliency maps, higher = more relevant
    progress : ``progress(done, total, info)`` after each map; False cancels

    Returns
    -------
    FaithCurves
    """
    for name, s in maps.items():
        if tuple(s.shape) != tuple(logmel.shape):
            raise ParameterError(f"map {name!r} has shape {tuple(s.shape)}, the excerpts {tuple(logmel.shape)}")
        if not torch.isfinite(s).all():
            raise ParameterError(f"map {name!r} contains non-finite values")
    dev = resolve_device(device)
    fr = torch.linspace(0, 1, config.steps + 1, dtype=torch.float64)
    out = FaithCurves(fractions=fr.float())
    gen = torch.Generator().manual_seed(config.seed)
    total = len(maps) + 2 * config.n_random
    with frozen(classifier.model, dev) as clf, out_of_memory_as_error(
            "the deletion curves", "lower the batch or run on the CPU (device 'cpu')"):
        xn = classifier.normaliser.apply(logmel.to(dev, torch.float32))
        done = 0

        def tick(what: str) -> None:
            nonlocal done
            done += 1
            if progress is not None and progress(done, total, {"map": what}) is False:
                raise CancelledError(f"cancelled after {done} of {total} curves")

        for name, s in maps.items():
            out.deletion[name], out.insertion[name] = curves(clf, xn, s.to(dev), unit=unit, fractions=fr.float(),
                                                             generator=gen, batch=config.batch)
            tick(name)
        rand: dict[str, list] = {"blobs": [], "bins": []}
        for _ in range(config.n_random):
            blobs = random_blobs(tuple(logmel.shape), gen)
            rand["blobs"].append(curves(clf, xn, blobs.to(dev), unit=unit, fractions=fr.float(), generator=gen,
                                        batch=config.batch))
            tick("random blobs")
        for _ in range(config.n_random):
            ranks = _ranks(torch.zeros(logmel.shape), gen)  # all ties: a uniformly random order of single bins
            rand["bins"].append(curves(clf, xn, None, unit=unit, fractions=fr.float(), ranks=ranks,
                                       batch=config.batch))
            tick("random bins")
    out.random_deletion = torch.stack([d for d, _ in rand["blobs"]]).mean(0)
    out.random_insertion = torch.stack([i for _, i in rand["blobs"]]).mean(0)
    out.scattered_deletion = torch.stack([d for d, _ in rand["bins"]]).mean(0)
    out.scattered_insertion = torch.stack([i for _, i in rand["bins"]]).mean(0)
    return out


def depth_map_faithfulness(classifier: Bundle, logmel: torch.Tensor, *, unit: UnitSpec = UnitSpec(),
                           explainers: Mapping = {}, config: FaithConfig = FaithConfig(),  # noqa: B006
                           device: str | torch.device | None = "auto",
                           progress: Progress | None = None) -> FaithCurves:
    """:func:`faithfulness` of every layer's Grad-CAM, the cumulative maps and each explainer's map."""
    from xai_core.explain.depthmaps.explain import explain

    res = explain(classifier, logmel, unit=unit, explainers=explainers, relevance=False, device=device)
    return faithfulness(classifier, res.logmel, res.maps(), unit=unit, config=config, device=device,
                        progress=progress)


def format_table(rows: list[dict]) -> str:
    """The table as aligned text (CLI): deletion, insertion, their gap, gains over random blobs, share of
    excerpts beating random blobs in deletion."""
    head = (f"{'map':28s} {'deletion':>9s} {'insertion':>10s} {'gap':>7s} {'del gain':>9s} {'ins gain':>9s} "
            f"{'beats':>6s}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['map']:28s} {r['deletion_auc']:9.3f} {r['insertion_auc']:10.3f} {r['gap']:7.3f} "
                     f"{r['deletion_gain']:9.3f} {r['insertion_gain']:9.3f} {r['beats_random']:6.0%}")
    return "\n".join(lines)


def as_numpy(curves_: FaithCurves) -> dict[str, np.ndarray]:
    """Mean curves per map (and ``random``) as arrays ``(S + 1,)`` (for figures)."""
    out = {f"deletion/{k}": v.mean(0).numpy() for k, v in curves_.deletion.items()}
    out.update({f"insertion/{k}": v.mean(0).numpy() for k, v in curves_.insertion.items()})
    out["deletion/random"] = curves_.random_deletion.mean(0).numpy()
    out["insertion/random"] = curves_.random_insertion.mean(0).numpy()
    if curves_.scattered_deletion is not None:
        out["deletion/random bins"] = curves_.scattered_deletion.mean(0).numpy()
        out["insertion/random bins"] = curves_.scattered_insertion.mean(0).numpy()
    return out


def evaluation_report(classifier: Bundle, logmel: torch.Tensor, *, unit: UnitSpec = UnitSpec(),
                      explainers: Mapping = {}, config: FaithConfig = FaithConfig(),  # noqa: B006
                      sanity_n: int = 32, data: str = "", device: str | torch.device | None = "auto",
                      progress: Progress | None = None) -> dict:
    """The checks of every depth map as one JSON-ready report (the CLI's ``faithfulness --json`` and the demo's
    ``explainers/eval.json``): the deletion/insertion table and, with ``sanity_n > 0``, the randomisation check
    on the first ``sanity_n`` excerpts."""
    from xai_core.explain.depthmaps.sanity import randomisation_check

    faith = depth_map_faithfulness(classifier, logmel, unit=unit, explainers=explainers, config=config, device=device,
                                   progress=progress)
    report = {"classifier": classifier.identity, "unit": unit.to_dict(), "data": data or f"{logmel.shape[0]} excerpts",
              "config": config.to_dict(), "explainers": sorted(explainers),
              "faithfulness": faith.table(references=True),
              "curves": {k: [round(float(v), 4) for v in c] for k, c in as_numpy(faith).items()},
              "fractions": [round(float(v), 4) for v in faith.fractions]}
    if sanity_n > 0:
        san = randomisation_check(classifier, logmel[:sanity_n], unit=unit, explainers=explainers, seed=config.seed,
                                  device=device)
        report["sanity"] = san.to_dict()
    return report
