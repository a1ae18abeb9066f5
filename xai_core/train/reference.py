"""The demo's reference set: real excerpts with their classifier responses.

FID-based selection (METHODS section 5) compares generated examples with the dataset excerpts of
highest (or lowest) classifier response. The app must do that without rebuilding the corpus, so
the demo ships a small :class:`~xai_core.assets.ReferenceSet`: the ``extremes`` most- and
least-vocal excerpts (by logit) among ``candidates`` random ones, plus a random selection of the
rest stratified by label, with the classifier's logit of every excerpt in ``info["logits"]``. No excerpt
holds padding or digital silence, and the extremes take at most ``per_clip`` excerpts of one clip
(:mod:`xai_core.data.quality`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xai_core.assets import ReferenceSet
from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.data.quality import DEFAULT_PER_CLIP, RULE, capped, clean_mask
from xai_core.errors import ParameterError
from xai_core.models.svdnet import SVDNet
from xai_core.train.data import Track
from xai_core.train.gan import classifier_responses, random_excerpts


def select_reference(tracks: Sequence[Track], classifier: SVDNet, normaliser: Normaliser, *, n: int = 384,
                     extremes: int = 64, candidates: int = 6000, seed: int = 0, per_clip: int | None = DEFAULT_PER_CLIP,
                     mel: MelConfig = MelConfig()) -> ReferenceSet:
    """Choose ``n`` reference excerpts from ``tracks``.

    Parameters
    ----------
    n : excerpts in the set (``2 * extremes`` of them are the extremes)
    extremes : excerpts of highest and of lowest logit (each) among the clean candidates, at most ``per_clip``
        of one clip (:mod:`xai_core.data.quality`; ``None``: no cap)
    candidates : random excerpts drawn uniformly over all frames; those with padding or digital silence
        (:func:`~xai_core.data.quality.clean_mask`) are dropped before anything is chosen
    seed : drawing seed

    Returns
    -------
    ReferenceSet with ``info["logits"]`` (one per excerpt), ``info["selection"]`` ("top", "bottom"
    or "random" per excerpt), the selection rule and how many candidates were unclean.
    """
    if not 0 <= 2 * extremes <= n:
        raise ParameterError(f"need 0 <= 2 * extremes <= n, got extremes={extremes}, n={n}")
    total = sum(t.frames for t in tracks)
    candidates = min(candidates, total)
    x, y, src = random_excerpts(tracks, candidates, seed=seed, frames=mel.excerpt_frames)  # (C, T, M), (C,)
    clean = clean_mask(x)  # (C,)
    unclean = int((~clean).sum())
    keep = torch.nonzero(clean).flatten()
    x, y, src = x[keep], y[keep], [src[i] for i in keep.tolist()]
    if len(src) < n:
        raise ParameterError(f"only {len(src)} clean candidate excerpts ({unclean} of {candidates} held padding or "
                             f"digital silence) for a set of {n}")
    _, logits = classifier_responses(classifier, normaliser, x)  # (C',)
    order = torch.argsort(logits, descending=True)
    top = torch.tensor(capped(order, src, extremes, per_clip), dtype=torch.long) if extremes else order[:0]
    bottom = torch.tensor(capped(order.flip(0), src, extremes, per_clip), dtype=torch.long) if extremes else order[:0]
    taken = torch.zeros(len(src), dtype=torch.bool)
    taken[top] = True
    taken[bottom] = True
    rest = n - len(top) - len(bottom)
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
    cap = f"at most {per_clip} per clip" if per_clip is not None else "no cap per clip"
    info = {
        "logits": [round(float(v), 4) for v in logits[idx]],
        "selection": kind,
        "rule": (f"{extremes} highest- and {extremes} lowest-logit excerpts ({cap}) among the {len(src)} clean of "
                 f"{candidates} drawn uniformly over all frames (seed {seed}), plus {rest} random others stratified "
                 f"by label; clean: {RULE}"),
        "seed": seed,
        "per_clip": per_clip,
        "unclean_candidates": unclean,
    }
    return ReferenceSet(x[idx].contiguous(), y[idx].float(), [src[i] for i in idx.tolist()], mel, info)
