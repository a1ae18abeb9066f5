"""Excerpts for training and evaluation (115-frame windows labelled by their centre frame)."""

from __future__ import annotations

import torch

from xai_core.audio.features import slice_excerpts
from xai_core.data.sources import Track
from xai_core.errors import ParameterError

__all__ = ["ExcerptSampler", "track_excerpts"]


class ExcerptSampler:
    """Uniform random excerpts over all positions of all tracks, reproducible from a generator.

    Every window start of every track is equally likely (long tracks weigh more), and the label of
    an excerpt is the label of its centre frame, as in Schlüter & Grill (2015).

    Parameters
    ----------
    tracks : tracks with features ``(T, n_mels)``; tracks shorter than one excerpt are skipped
    excerpt_frames : window length in frames (115 in the paper)
    """

    def __init__(self, tracks: list[Track], *, excerpt_frames: int = 115) -> None:
        if excerpt_frames < 1:
            raise ParameterError(f"excerpt_frames={excerpt_frames} must be >= 1")
        self.excerpt_frames = excerpt_frames
        self._views: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        for t in tracks:
            ex, lab = slice_excerpts(t.features, excerpt_frames=excerpt_frames, hop=1, labels=t.labels)
            if ex.shape[0]:
                self._views.append(ex)  # (N_t, E, M) view, no copy
                self._labels.append(lab)  # (N_t,)
        if not self._views:
            raise ParameterError(f"no track is at least {excerpt_frames} frames long")
        counts = torch.tensor([v.shape[0] for v in self._views])
        self._offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])  # (K+1,)

    def __len__(self) -> int:
        """Number of distinct excerpt positions."""
        return int(self._offsets[-1])

    @property
    def positive_fraction(self) -> float:
        """Fraction of positions whose centre frame is vocal."""
        return float(torch.cat(self._labels).float().mean())

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` excerpts with replacement.

        Returns
        -------
        x : torch.Tensor, shape ``(n, excerpt_frames, n_mels)``, float32
        y : torch.Tensor, shape ``(n,)``, float32 centre-frame labels
        """
        if n < 0:
            raise ParameterError(f"n={n} must be >= 0")
        idx = torch.randint(len(self), (n,), generator=generator)  # (n,)
        which = torch.searchsorted(self._offsets, idx, right=True) - 1  # (n,) track index
        local = idx - self._offsets[which]
        x = torch.stack([self._views[int(k)][int(i)] for k, i in zip(which, local, strict=True)]) if n else \
            self._views[0][:0].clone()  # (n, E, M)
        y = torch.stack([self._labels[int(k)][int(i)] for k, i in zip(which, local, strict=True)]).float() if n else \
            torch.zeros(0)  # (n,)
        return x, y

    def batches(self, batch_size: int, n_batches: int, *, seed: int = 0):
        """Yield ``n_batches`` batches ``(x (B, E, M), y (B,))`` from a generator seeded with ``seed``."""
        g = torch.Generator().manual_seed(seed)
        for _ in range(n_batches):
            yield self.sample(batch_size, generator=g)


def track_excerpts(track: Track, *, excerpt_frames: int = 115, hop: int = 1,
                   pad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All excerpts of one track for evaluation.

    With ``pad=True`` (default) the track is padded by ``excerpt_frames // 2`` frames each side, so
    with ``hop=1`` there is one excerpt per frame, centred on it (the paper's per-frame prediction).

    Returns
    -------
    x : torch.Tensor, shape ``(N, excerpt_frames, n_mels)`` (a view)
    y : torch.Tensor, shape ``(N,)`` centre-frame labels
    """
    ex, lab = slice_excerpts(track.features, excerpt_frames=excerpt_frames, hop=hop,
                             labels=track.labels, pad=pad)
    return ex, lab
