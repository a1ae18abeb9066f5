"""The demo's reference set: real excerpts with their classifier responses.

FID-based selection (METHODS section 5) compares generated examples with the dataset excerpts of
highest (or lowest) classifier response. The app must do that without rebuilding the corpus, so
the demo ships a small :class:`~xai_core.assets.ReferenceSet`: the ``extremes`` most- and
least-vocal excerpts (by logit) among ``candidates`` random ones, plus a random selection of the
rest stratified by label, with the classifier's logit of every excerpt in ``info["logits"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xai_core.assets import ReferenceSet
from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.errors import ParameterError
from xai_core.models.svdnet import SVDNet
from xai_core.train.data import Track
from xai_core.train.gan import classifier_responses, random_excerpts


def select_reference(tracks: Sequence[Track], classifier: SVDNet, normaliser: Normaliser, *, n: int = 384,
                     extremes: int = 64, candidates: int = 6000, seed: int = 0,
                     mel: MelConfig = MelConfig()) -> ReferenceSet:
    """Choose ``n`` reference excerpts from ``tracks``.

    Parameters
    ----------
    n : excerpts in the set (``2 * extremes`` of them are the extremes)
    extremes : excerpts of highest and of lowest logit (each) among the candidates
    candidates : random excerpts drawn uniformly over all frames and scored by the classifier
    seed : drawing seed

    Returns
    -------
    ReferenceSet with ``info["logits"]`` (one per excerpt), ``info["selection"]`` ("top", "bottom"
    or "random" per excerpt) and the selection rule.
    """
    if not 0 <= 2 * extremes <= n:
        raise ParameterError(f"need 0 <= 2 * extremes <= n, got extremes={extremes}, n={n}")
    total = sum(t.frames for t in tracks)
    candidates = min(candidates, total)
    if candidates < n:
        raise ParameterError(f"only {candidates} candidate excerpts for a set of {n}")
    x, y, src = random_excerpts(tracks, candidates, seed=seed, frames=mel.excerpt_frames)  # (C, T, M), (C,)
    _, logits = classifier_responses(classifier, normaliser, x)  # (C,)
    order = torch.argsort(logits, descending=True)
    top, bottom = order[:extremes], order[len(order) - extremes:] if extremes else order[:0]
    taken = torch.zeros(candidates, dtype=torch.bool)
    taken[top] = True
    taken[bottom] = True
    rest = n - 2 * extremes
    g = torch.Generator().manual_seed(seed + 1)
    picks = []
    for label, k in ((1.0, rest // 2), (0.0, rest - rest // 2)):
        pool = torch.nonzero((y == label) & ~taken).flatten()
        pool = pool[torch.randperm(len(pool), generator=g)]
        picks.append(pool[:k])
    random_idx = torch.cat(picks)
    if len(random_idx) < rest:  # one class too rare: fill from the other
        left = torch.nonzero(~taken).flatten()
        left = left[~torch.isin(left, random_idx)]
        random_idx = torch.cat([random_idx, left[torch.randperm(len(left), generator=g)][:rest - len(random_idx)]])
    idx = torch.cat([top, bottom, random_idx])
    kind = ["top"] * len(top) + ["bottom"] * len(bottom) + ["random"] * len(random_idx)
    info = {
        "logits": [round(float(v), 4) for v in logits[idx]],
        "selection": kind,
        "rule": (f"{extremes} highest- and {extremes} lowest-logit excerpts among {candidates} drawn "
                 f"uniformly over all frames (seed {seed}), plus {rest} random others stratified by label"),
        "seed": seed,
    }
    return ReferenceSet(x[idx].contiguous(), y[idx].float(), [src[i] for i in idx.tolist()], mel, info)
