"""Synthetic labelled tracks for the training tests (not data: a toy problem with a known answer).

Each track is log-mel noise around -6 with "vocal" segments where a band of mel bins 30-45 is
raised by 3 nats; a detector can learn that in a few dozen steps.
"""

from __future__ import annotations

import pytest
import torch

from xai_core.train.data import Track


def synthetic_tracks(n: int = 4, frames: int = 400, *, seed: int = 0, n_mels: int = 80) -> list[Track]:
    g = torch.Generator().manual_seed(seed)
    tracks = []
    for i in range(n):
        feats = -6.0 + torch.randn(frames, n_mels, generator=g)  # (T, M)
        labels = torch.zeros(frames)
        seg = frames // 4
        for start in range(seg // 2 + (i % 2) * seg, frames - seg, 2 * seg):
            labels[start:start + seg] = 1.0
        feats[:, 30:46] += 3.0 * labels[:, None]
        tracks.append(Track(f"synth{i}.wav", feats, labels))
    return tracks


def with_stems(tracks: list[Track], *, floor: float = -16.0) -> list[Track]:
    """The same toy tracks with stems: a voice that is the raised band where labelled (the log floor
    elsewhere), an accompaniment that is the noise of each track shifted by a per-track level, and
    the features re-made as their power sum (as :func:`remix_stems` combines them)."""
    out = []
    for i, t in enumerate(tracks):
        accomp = t.features.clone()
        accomp[:, 30:46] -= 3.0 * t.labels[:, None]  # (T, M) the noise without the raised band
        accomp += float(i)  # another level per track
        voice = torch.full_like(accomp, floor)
        voice[:, 30:46] = torch.where(t.labels[:, None] > 0, accomp[:, 30:46] + 2.0, torch.tensor(floor))
        mix = 0.5 * torch.logaddexp(2 * voice, 2 * accomp)
        out.append(Track(t.name, mix, t.labels, voice=voice, accomp=accomp))
    return out


@pytest.fixture
def toy_tracks():
    """(train, valid, test) lists of synthetic tracks."""
    return synthetic_tracks(4, seed=0), synthetic_tracks(2, seed=1), synthetic_tracks(2, seed=2)
