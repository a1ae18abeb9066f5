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
    """One labelled file: un-normalised log-mel and per-frame labels, optionally with stems."""

    name: str
    features: torch.Tensor  # (T, M) natural-log mel
    labels: torch.Tensor  # (T,) float, 1 = singing at the frame centre
    voice: torch.Tensor | None = None  # (T, M) log-mel of the isolated voice
    accomp: torch.Tensor | None = None  # (T, M) log-mel of the accompaniment

    def __post_init__(self) -> None:
        self.features = torch.as_tensor(self.features, dtype=torch.float32)
        self.labels = torch.as_tensor(np.asarray(self.labels), dtype=torch.float32)
        if self.features.ndim != 2 or self.labels.shape != (self.features.shape[0],):
            raise DataError(f"track {self.name!r}: features (T, M) and labels (T,) expected, got "
                            f"{tuple(self.features.shape)} and {tuple(self.labels.shape)}")
        for kind in ("voice", "accomp"):
            stem = getattr(self, kind)
            if stem is not None:
                stem = torch.as_tensor(stem, dtype=torch.float32)
                if stem.shape != self.features.shape:
                    raise DataError(f"track {self.name!r}: {kind} stem {tuple(stem.shape)} does not match the "
                                    f"features {tuple(self.features.shape)}")
                setattr(self, kind, stem)

    @property
    def has_stems(self) -> bool:
        return self.voice is not None and self.accomp is not None

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
        out.append(Track(str(name), it.features, it.labels, voice=getattr(it, "voice", None),
                         accomp=getattr(it, "accomp", None)))
    return out


def load_split(root: str | Path, split: str, *, mel: MelConfig = MelConfig(),
               cache_dir: str | Path | None = None, stems: bool = False) -> list[Track]:
    """Tracks of one split (``train``, ``valid``, ``test``, or ``all``) of a Jamendo-layout folder.

    Reads through the project's data sources (:func:`xai_core.data.sources.jamendo_tracks`) and
    its feature cache (``cache_dir``, default the cache's own default folder); ``stems=True`` also
    loads the voice and accompaniment stems (for stem remixing).
    """
    from xai_core.data.cache import FeatureCache
    from xai_core.data.sources import jamendo_tracks

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist")
    if split not in ("train", "valid", "test", "all"):
        raise ParameterError(f"split {split!r} must be 'train', 'valid', 'test' or 'all'")
    cache = FeatureCache(cache_dir)
    tracks = jamendo_tracks(root, split=None if split == "all" else split, cfg=mel, cache=cache, stems=stems)
    if not tracks:
        raise DataError(f"{str(root)!r} has no tracks in split {split!r}")
    return as_tracks(tracks)


class ExcerptPool:
    """Random excerpts of ``width`` frames centred on uniformly drawn frames of the tracks.

    Each track is padded by ``width // 2`` frames of its minimum on both sides (as for per-frame
    prediction), so every frame can be an excerpt centre; the label of an excerpt is the label of
    its centre frame. When every track has stems (``Track.voice`` / ``Track.accomp``), the pool
    keeps them in the same layout, so :meth:`take_stem` cuts the voice and the accompaniment of
    the very excerpt :meth:`take` cuts from the mixture (for stem remixing).

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
        tracks = [tr for tr in tracks if tr.frames > 0]
        if not tracks:
            raise DataError("all tracks are empty")
        with_stems = all(tr.has_stems for tr in tracks)

        def padded(x: torch.Tensor) -> torch.Tensor:  # (T, M) -> (T + width - 1, M)
            fill = x.min()
            return torch.cat([fill.expand(half, x.shape[1]), x, fill.expand(self.width - 1 - half, x.shape[1])])

        chunks, centres, labels = [], [], []
        stems: dict[str, list[torch.Tensor]] = {"voice": [], "accomp": []}
        offset = 0
        for tr in tracks:
            chunks.append(padded(tr.features))
            if with_stems:
                stems["voice"].append(padded(tr.voice))
                stems["accomp"].append(padded(tr.accomp))
            centres.append(offset + half + torch.arange(tr.frames))
            labels.append(tr.labels)
            offset += chunks[-1].shape[0]
        self.device = torch.device(device)
        self.data = torch.cat(chunks).to(self.device)  # (N_all, M)
        self.stems = {k: torch.cat(v).to(self.device) for k, v in stems.items()} if with_stems else {}
        self.centres = torch.cat(centres).to(self.device)  # (N_frames,) index of each centre in data
        self.labels = torch.cat(labels).to(self.device)  # (N_frames,)
        self._window = torch.arange(self.width, device=self.device) - half  # (W,)
        self._by_label: dict[float, torch.Tensor] = {}

    def __len__(self) -> int:
        return int(self.centres.shape[0])

    @property
    def vocal_fraction(self) -> float:
        return float(self.labels.mean())

    @property
    def has_stems(self) -> bool:
        return bool(self.stems)

    def frames(self) -> torch.Tensor:
        """All un-padded frames, ``(N_frames, M)`` (for fitting the normaliser)."""
        return self.data[self.centres]

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.centres[index][:, None] + self._window  # (B, W)

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Excerpts centred on frames ``index`` (B,): ``(B, width, M)`` and labels ``(B,)``."""
        return self.data[self._rows(index)], self.labels[index]  # (B, W, M), (B,)

    def take_stem(self, kind: str, index: torch.Tensor) -> torch.Tensor:
        """The ``"voice"`` or ``"accomp"`` stem of the excerpts :meth:`take` cuts: ``(B, width, M)``."""
        if kind not in self.stems:
            raise DataError(f"this pool has no {kind!r} stem (tracks without stems, or kind not in "
                            "'voice', 'accomp')")
        return self.stems[kind][self._rows(index)]

    def draw(self, batch: int, *, generator: torch.Generator | None = None,
             label: float | None = None) -> torch.Tensor:
        """Indices ``(B,)`` of random excerpts; with ``label``, only excerpts whose centre frame has it."""
        if label is None:
            return torch.randint(len(self), (batch,), generator=generator, device=self.device)  # (B,)
        if label not in self._by_label:
            self._by_label[label] = torch.nonzero(self.labels == label).flatten()
        pool = self._by_label[label]
        if len(pool) == 0:
            raise DataError(f"no frames labelled {label} to draw excerpts from")
        pick = torch.randint(len(pool), (batch,), generator=generator, device=self.device)  # (B,)
        return pool[pick]

    def sample(self, batch: int, *, generator: torch.Generator | None = None,
               label: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random excerpts ``(B, width, M)`` and their labels ``(B,)``; with ``label``,
        only excerpts whose centre frame has that label."""
        return self.take(self.draw(batch, generator=generator, label=label))


class TensorExcerpts:
    """A fixed set of excerpts with :class:`ExcerptPool`'s sampling interface.

    For training on a reference set (a few hundred excerpts) rather than on whole tracks: ``draw``
    picks rows uniformly with replacement, ``take`` returns them with their labels.

    Parameters
    ----------
    logmel : torch.Tensor, shape ``(N, W, M)``, un-normalised log-mel excerpts
    labels : torch.Tensor, shape ``(N,)``
    device : where the excerpts and the batches live
    """

    def __init__(self, logmel: torch.Tensor, labels: torch.Tensor, *, device: str | torch.device = "cpu") -> None:
        if logmel.ndim != 3 or labels.shape != (logmel.shape[0],):
            raise DataError(f"excerpts (N, W, M) and labels (N,) expected, got {tuple(logmel.shape)} and "
                            f"{tuple(labels.shape)}")
        if logmel.shape[0] == 0:
            raise DataError("no excerpts to draw from")
        if not torch.isfinite(logmel).all():
            raise DataError("the excerpts contain non-finite values")
        self.device = torch.device(device)
        self.data = logmel.to(self.device, torch.float32)  # (N, W, M)
        self.labels = labels.to(self.device, torch.float32)  # (N,)
        self.width = int(logmel.shape[1])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def vocal_fraction(self) -> float:
        return float(self.labels.mean())

    def draw(self, batch: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(len(self), (batch,), generator=generator, device=self.device)  # (B,)

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.labels[index]  # (B, W, M), (B,)

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.take(self.draw(batch, generator=generator))


def excerpt_source(data, *, frames: int, device: torch.device) -> ExcerptPool | TensorExcerpts:
    """Training excerpts from tracks (a corpus split), a reference set or excerpt tensors.

    ``data``: a sequence of :class:`~xai_core.train.data.Track` (random excerpts centred on any
    frame), a :class:`~xai_core.assets.ReferenceSet`, ``(logmel (N, T, M), labels (N,))``, or an
    existing pool. Raises :class:`DataError` when it holds no excerpt.
    """
    if isinstance(data, (ExcerptPool, TensorExcerpts)):
        if data.width != frames:
            raise DataError(f"excerpts are {data.width} frames wide, the classifier takes {frames}")
        return data
    from xai_core.assets import ReferenceSet

    if isinstance(data, ReferenceSet):
        if data.logmel.shape[1] != frames:
            raise DataError(f"reference excerpts have {data.logmel.shape[1]} frames, the classifier takes {frames}")
        return TensorExcerpts(data.logmel, data.labels, device=device)
    if isinstance(data, tuple) and len(data) == 2:
        src = TensorExcerpts(*data, device=device)
        if src.width != frames:
            raise DataError(f"excerpts are {src.width} frames wide, the classifier takes {frames}")
        return src
    tracks = list(data)
    if not tracks or not all(isinstance(t, Track) for t in tracks):
        raise DataError("no training data: give labelled tracks, a reference set or (logmel, labels)")
    return ExcerptPool(tracks, width=frames, device=device)
