"""Excerpt sets for consistency (concept sets) and the comparison of classifiers (the demo's eval.json).

A *concept set* is a :class:`~xai_core.assets.ReferenceSet` (same file format) of random excerpts, half
sung and half not, carrying concept tags. Excerpts holding digital silence or padding are excluded
(:func:`silent_share`): a unit's top inputs should be music, not the log floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from xai_core.assets import ReferenceSet
from xai_core.audio.config import MelConfig
from xai_core.checkpoints import Bundle
from xai_core.errors import DataError, ParameterError
from xai_core.explain.consistency.config import AttackConfig, ConsistencyConfig

SILENT_DB_ABOVE_FLOOR = 20.0  # a frame is silent when every band lies within 20 dB of the log floor
MAX_SILENT_SHARE = 0.05  # excerpts with more silent frames than this are not used


def silent_share(logmel: torch.Tensor, mel: MelConfig) -> torch.Tensor:
    """Share of silent frames per excerpt ``(N,)``: frames whose loudest band is within
    ``SILENT_DB_ABOVE_FLOOR`` dB of the log floor (digital silence, or the padding of an excerpt cut at
    a clip's edge).

    Parameters
    ----------
    logmel : torch.Tensor, shape ``(N, T, M)``
    """
    from xai_core.explain.consistency.config import db_to_log

    limit = mel.log_min + db_to_log(SILENT_DB_ABOVE_FLOOR)
    return (logmel.amax(2) < limit).float().mean(1)  # (N,)


def concept_set(tracks: Sequence, *, n: int, seed: int = 0, mel: MelConfig = MelConfig(),
                corpus: str | Path | None = None, candidates: int | None = None) -> ReferenceSet:
    """``n`` random excerpts of ``tracks`` (half labelled vocal at the centre, half not, as far as the
    tracks allow), silence and padding excluded, tagged from ``corpus``'s ``corpus.json`` when given.

    The excerpts are drawn uniformly over all frames among ``candidates`` (default ``8 n``) draws, then
    stratified by label; ``info`` records the rule, the seed and how many candidates were excluded."""
    from xai_core.train.gan import random_excerpts

    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ParameterError(f"a concept set needs n >= 2 excerpts, got {n!r}")
    total = sum(t.frames for t in tracks)
    cand = min(candidates or 8 * n, total)
    x, y, src = random_excerpts(tracks, cand, seed=seed, frames=mel.excerpt_frames)  # (C, T, M), (C,)
    ok = silent_share(x, mel) <= MAX_SILENT_SHARE
    g = torch.Generator().manual_seed(seed + 1)
    picks = []
    for label, k in ((1.0, n // 2), (0.0, n - n // 2)):
        pool = torch.nonzero((y == label) & ok).flatten()
        picks.append(pool[torch.randperm(len(pool), generator=g)][:k])
    idx = torch.cat(picks)
    if len(idx) < n:
        left = torch.nonzero(ok).flatten()
        left = left[~torch.isin(left, idx)]
        idx = torch.cat([idx, left[torch.randperm(len(left), generator=g)][:n - len(idx)]])
    if len(idx) < n:
        raise DataError(f"only {len(idx)} usable excerpts (without silence) for a concept set of {n}")
    info = {"selection": ["random"] * n, "seed": seed,
            "rule": (f"{n} excerpts drawn uniformly over all frames among {cand} candidates (seed {seed}), "
                     f"stratified by label; {int((~ok).sum())} candidates with more than {MAX_SILENT_SHARE:.0%} "
                     f"silent frames (loudest band within {SILENT_DB_ABOVE_FLOOR:g} dB of the log floor) excluded")}
    ref = ReferenceSet(x[idx].contiguous(), y[idx].float(), [src[i] for i in idx.tolist()], mel, info)
    if corpus is not None and (Path(corpus) / "corpus.json").is_file():
        from xai_core.data.tags import demo_corpus_tags

        ref.tags = demo_corpus_tags(corpus, ref.sources, ref.labels.tolist())
    return ref


def compare_classifiers(classifiers: Mapping[str, Bundle], *, test: tuple[torch.Tensor, torch.Tensor],
                        concept_set_: ReferenceSet, eps_db: Sequence[float], curve_eps_db: Sequence[float],
                        consistency: ConsistencyConfig = ConsistencyConfig(),
                        attack_config: AttackConfig = AttackConfig(), device="auto", progress=None) -> dict:
    """The demo's comparison: for each classifier, clean and robust error, consistency real vs
    adversarial per layer, and the attack's success rate against epsilon (plain numbers, for eval.json).

    ``eps_db[0]`` is the epsilon of the consistency numbers; ``curve_eps_db`` the success-rate curve."""
    from xai_core.explain.consistency.attack import success_curve
    from xai_core.explain.consistency.robust import robust_metrics

    out: dict = {"eps_db": [float(e) for e in eps_db], "curve_eps_db": [float(e) for e in curve_eps_db],
                 "attack": attack_config.to_dict(), "consistency_config": consistency.to_dict(),
                 "n_test": int(test[0].shape[0]), "concept_set": len(concept_set_), "models": {}}
    names = list(classifiers)
    for j, (name, clf) in enumerate(classifiers.items()):
        def prog(done, total, info, _j=j, _name=name):
            return None if progress is None else progress(done, total, {**info, "model": f"{_j + 1}/{len(names)} {_name}"})
        m = robust_metrics(clf, test=test, eps_db=eps_db, concept_set=concept_set_, consistency=consistency,
                           attack_config=attack_config, device=device, progress=prog)
        m["curve"] = [{"eps_db": r["eps_db"], "success_rate": r["success_rate"], "error_after": r["error_after"]}
                      for r in success_curve(clf, test[0], labels=test[1], eps_db=curve_eps_db, config=attack_config,
                                             device=device, progress=prog)]
        ev = (clf.metrics or {}).get("eval") or {}
        m["frame_error"] = (ev.get("test") or {}).get("error")
        m["identity"] = clf.identity
        m["path"] = str(clf.path or "")
        out["models"][name] = m
    return out
