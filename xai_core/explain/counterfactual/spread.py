"""The real-vs-real spread: how far a real excerpt lies from the nearest *other* real excerpt.

A counterfactual is only about the excerpt if the GAN can reconstruct it. "Reconstruct" needs a scale, and
the one chosen here (this project's choice; the issue offered two) is the distribution of the MSE between
each excerpt of the reference set and its nearest excerpt **of another clip** (the part of its source before
``@``: overlapping windows of one recording would be near-copies), in the classifier's normalised space, the
space the inversion minimises. A reconstruction whose MSE is above that distribution's ``quantile`` (the
median by default) is farther from the excerpt than a typical real excerpt is from its nearest neighbour of
another recording: picking that neighbour would "reconstruct" it as well, so what AM then changes is a change
of some other excerpt, and the result says so.

The other candidate, the MSE between a real excerpt and the GAN's best reconstruction of *other* real
excerpts, costs one inversion per reference excerpt (minutes on a CPU) and measures the GAN again rather than
the data, so it was not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xai_core.assets import ReferenceSet
from xai_core.audio.features import Normaliser
from xai_core.errors import ParameterError

RULE = ("MSE (normalised units) between each reference excerpt and its nearest excerpt of another clip; the "
        "reconstruction fails above the {q:.0%} quantile")


def _clip(source: str) -> str:
    return source.rsplit("@", 1)[0]


@dataclass
class RealSpread:
    """Nearest-neighbour MSEs of a reference set and the threshold of a reconstruction."""

    nn_mse: torch.Tensor  # (N,) float64, each excerpt's MSE to its nearest excerpt of another clip
    quantile: float  # the threshold is this quantile of nn_mse
    n_clips: int  # clips (recordings) the excerpts come from
    same_clip_fallback: int = 0  # excerpts with no other clip, compared with any other excerpt instead

    @property
    def threshold(self) -> float:
        return float(torch.quantile(self.nn_mse, self.quantile))

    @property
    def rule(self) -> str:
        return RULE.format(q=self.quantile)

    def percentile(self, mse: float) -> float:
        """Share of the reference excerpts whose nearest-neighbour MSE is below ``mse`` (0 .. 1)."""
        return float((self.nn_mse < mse).double().mean())

    def quantiles(self) -> dict[str, float]:
        qs = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
        vals = torch.quantile(self.nn_mse, torch.tensor(qs, dtype=self.nn_mse.dtype))
        return {f"q{round(q * 100):02d}": float(v) for q, v in zip(qs, vals, strict=True)}

    def to_dict(self) -> dict:
        return {"n": int(self.nn_mse.numel()), "n_clips": self.n_clips, "quantile": self.quantile,
                "threshold": self.threshold, "same_clip_fallback": self.same_clip_fallback, "rule": self.rule,
                **self.quantiles()}


def _flat(logmel: torch.Tensor, normaliser: Normaliser) -> torch.Tensor:
    return normaliser.apply(logmel.double()).reshape(logmel.shape[0], -1)  # (N, T * M)


@torch.no_grad()
def real_spread(reference: ReferenceSet, normaliser: Normaliser, *, quantile: float = 0.5,
                batch: int = 512) -> RealSpread:
    """The nearest-other-clip MSE of every excerpt of ``reference`` (see the module's text).

    Parameters
    ----------
    reference : ReferenceSet, ``N >= 2`` excerpts ``(N, T, M)``
    normaliser : the classifier's per-band statistics (the space of the MSE)
    quantile : float in (0, 1), the threshold's quantile
    """
    n = len(reference)
    if n < 2:
        raise ParameterError(f"the real-vs-real spread needs a reference set of >= 2 excerpts, got {n}")
    if not 0 < quantile < 1:
        raise ParameterError(f"quantile must be in (0, 1), got {quantile!r}")
    clips = [_clip(s) for s in reference.sources]
    ids = {c: i for i, c in enumerate(dict.fromkeys(clips))}
    clip_id = torch.tensor([ids[c] for c in clips])  # (N,)
    x = _flat(reference.logmel, normaliser)  # (N, D)
    sq = (x * x).sum(1)  # (N,)
    dims = x.shape[1]
    nn_other = torch.empty(n, dtype=torch.float64)
    nn_any = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, batch):
        xb = x[s:s + batch]  # (b, D)
        d = (sq[s:s + batch, None] + sq[None] - 2 * xb @ x.T).clamp_min(0) / dims  # (b, N) MSE, float64
        rows = torch.arange(s, s + xb.shape[0])
        d[torch.arange(xb.shape[0]), rows] = float("inf")  # never itself
        nn_any[s:s + batch] = d.min(1).values
        d[clip_id[rows][:, None] == clip_id[None]] = float("inf")  # nor its own clip
        nn_other[s:s + batch] = d.min(1).values
    lone = ~torch.isfinite(nn_other)  # excerpts of the only clip there is
    nn_other[lone] = nn_any[lone]
    return RealSpread(nn_mse=nn_other, quantile=float(quantile), n_clips=len(ids), same_clip_fallback=int(lone.sum()))


@torch.no_grad()
def nearest_real_mse(logmel: torch.Tensor, reference: ReferenceSet, normaliser: Normaliser, *,
                     exclude_clip: str | None = None) -> float:
    """MSE (normalised units) between one excerpt ``(T, M)`` and its nearest reference excerpt, leaving out
    excerpts of ``exclude_clip`` (an excerpt of the reference set itself: its own recording) and exact copies."""
    x = _flat(logmel[None], normaliser)  # (1, D)
    r = _flat(reference.logmel, normaliser)  # (N, D)
    d = ((r - x) ** 2).mean(1)  # (N,)
    keep = d > 1e-12
    if exclude_clip is not None:
        keep &= torch.tensor([_clip(s) != exclude_clip for s in reference.sources])
    return float(d[keep].min()) if bool(keep.any()) else float("nan")
