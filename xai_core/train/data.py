"""Training data on the device: labelled tracks and a batched random-excerpt sampler.

Training needs excerpts *wider* than the network's 115 frames (time stretching reads beyond the
excerpt's edges), drawn uniformly over all frames of the training split, in batches, on the
training device. :class:`ExcerptPool` keeps every track's log-mel in one padded tensor on the
device and cuts a batch with a single gather, so sampling costs nothing next to the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xai_core.audio.config import MelConfig
from xai_core.errors import DataError, ParameterError


@dataclass
class Track:
    """One labelled file: un-normalised log-mel and per-frame labels."""

    name: str
    features: torch.Tensor  # (T, M) natural-log mel
    labels: torch.Tensor  # (T,) float, 1 = singing at the frame centre

    def __post_init__(self) -> None:
        self.features = torch.as_tensor(self.features, dtype=torch.float32)
        self.labels = torch.as_tensor(np.asarray(self.labels), dtype=torch.float32)
        if self.features.ndim != 2 or self.labels.shape != (self.features.shape[0],):
            raise DataError(f"track {self.name!r}: features (T, M) and labels (T,) expected, got "
                            f"{tuple(self.features.shape)} and {tuple(self.labels.shape)}")

    @property
    def frames(self) -> int:
        return int(self.features.shape[0])


def as_tracks(items: Sequence) -> list[Track]:
    """Adapt any objects with ``features`` and ``labels`` (and ``name``) to :class:`Track`."""
    out = []
    for i, it in enumerate(items):
        if isinstance(it, Track):
            out.append(it)
            continue
        name = getattr(it, "name", None) or str(getattr(it, "path", f"track{i}"))
        out.append(Track(str(name), it.features, it.labels))
    return out


def load_split(root: str | Path, split: str, *, mel: MelConfig = MelConfig(),
               cache_dir: str | Path | None = None) -> list[Track]:
    """Tracks of one split (``train``, ``valid``, ``test``, or ``all``) of a Jamendo-layout folder.

    Reads through the project's data sources (:func:`xai_core.data.sources.jamendo_tracks`) and
    its feature cache (``cache_dir``, default the cache's own default folder).
    """
    from xai_core.data.cache import FeatureCache
    from xai_core.data.sources import jamendo_tracks

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist")
    if split not in ("train", "valid", "test", "all"):
        raise ParameterError(f"split {split!r} must be 'train', 'valid', 'test' or 'all'")
    cache = FeatureCache(cache_dir)
    tracks = jamendo_tracks(root, split=None if split == "all" else split, cfg=mel, cache=cache)
    if not tracks:
        raise DataError(f"{str(root)!r} has no tracks in split {split!r}")
    return as_tracks(tracks)


class ExcerptPool:
    """Random excerpts of ``width`` frames centred on uniformly drawn frames of the tracks.

    Each track is padded by ``width // 2`` frames of its minimum on both sides (as for per-frame
    prediction), so every frame can be an excerpt centre; the label of an excerpt is the label of
    its centre frame.

    Parameters
    ----------
    tracks : labelled tracks (un-normalised log-mel)
    width : excerpt length in frames (odd keeps the centre frame exact)
    device : where the pool and the batches live
    """

    def __init__(self, tracks: Sequence[Track], *, width: int, device: str | torch.device = "cpu") -> None:
        if not tracks:
            raise DataError("no tracks to draw excerpts from")
        if width < 1:
            raise ParameterError(f"width must be >= 1, got {width}")
        self.width = int(width)
        half = self.width // 2
        chunks, centres, labels = [], [], []
        offset = 0
        for tr in tracks:
            if tr.frames == 0:
                continue
            fill = tr.features.min()
            m = tr.features.shape[1]
            padded = torch.cat([fill.expand(half, m), tr.features, fill.expand(self.width - 1 - half, m)])
            chunks.append(padded)
            centres.append(offset + half + torch.arange(tr.frames))
            labels.append(tr.labels)
            offset += padded.shape[0]
        if not chunks:
            raise DataError("all tracks are empty")
        self.device = torch.device(device)
        self.data = torch.cat(chunks).to(self.device)  # (N_all, M)
        self.centres = torch.cat(centres).to(self.device)  # (N_frames,) index of each centre in data
        self.labels = torch.cat(labels).to(self.device)  # (N_frames,)
        self._window = torch.arange(self.width, device=self.device) - half  # (W,)
        self._by_label: dict[float, torch.Tensor] = {}

    def __len__(self) -> int:
        return int(self.centres.shape[0])

    @property
    def vocal_fraction(self) -> float:
        return float(self.labels.mean())

    def frames(self) -> torch.Tensor:
        """All un-padded frames, ``(N_frames, M)`` (for fitting the normaliser)."""
        return self.data[self.centres]

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Excerpts centred on frames ``index`` (B,): ``(B, width, M)`` and labels ``(B,)``."""
        rows = self.centres[index][:, None] + self._window  # (B, W)
        return self.data[rows], self.labels[index]  # (B, W, M), (B,)

    def sample(self, batch: int, *, generator: torch.Generator | None = None,
               label: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random excerpts ``(B, width, M)`` and their labels ``(B,)``; with ``label``,
        only excerpts whose centre frame has that label."""
        if label is None:
            index = torch.randint(len(self), (batch,), generator=generator, device=self.device)  # (B,)
            return self.take(index)
        if label not in self._by_label:
            self._by_label[label] = torch.nonzero(self.labels == label).flatten()
        pool = self._by_label[label]
        if len(pool) == 0:
            raise DataError(f"no frames labelled {label} to draw excerpts from")
        pick = torch.randint(len(pool), (batch,), generator=generator, device=self.device)  # (B,)
        return self.take(pool[pick])
