"""Clean reference excerpts (no padding, no digital silence) and the per-clip cap of top-N selections."""

from __future__ import annotations

import math

import pytest
import torch

from xai_core.assets import ReferenceSet
from xai_core.audio.config import MelConfig
from xai_core.data.quality import DEAD_LEVEL, capped, clean_mask, clip_of, dead_frames
from xai_core.errors import CheckpointError, ParameterError

T, M = 115, 80


def _music(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return -2.0 + 1.5 * torch.randn(n, T, M, generator=g)  # (n, T, M): loud, never flat


def test_dead_frames_on_hand_made_excerpts():
    x = _music(5)
    x[1, :40] = x[1].min()  # padded at the start with the clip's minimum (ExcerptPool's padding)
    x[2, 100:] = math.log(1e-7)  # digital silence at the log floor
    x[3, 50] = DEAD_LEVEL - 1.0 + 0.5 * torch.rand(M)  # one inaudible, not flat frame
    x[4, 60] = -3.0 + 0.001 * torch.arange(M) / M  # flat within 0.001 nats: constant, not sound
    dead = dead_frames(x)
    assert dead.shape == (5, T)
    assert dead[0].sum() == 0 and dead[1].sum() == 40 and dead[2].sum() == 15 and dead[3].sum() == 1 \
        and dead[4].sum() == 1
    assert clean_mask(x).tolist() == [True, False, False, False, False]
    quiet = _music(1) - 5.0  # quiet but audible music: its loudest bands stay above -9.2 nats
    assert clean_mask(quiet).tolist() == [True]
    with pytest.raises(ParameterError, match="expected log-mel excerpts"):
        clean_mask(x[0])


def test_per_clip_cap():
    sources = [f"song{i % 3}.flac@{i:.2f}" for i in range(12)]  # 3 clips, 4 excerpts each
    order = list(range(12))
    assert clip_of("a@b.flac@12.5") == "a@b.flac"
    assert capped(order, sources, 5, None) == [0, 1, 2, 3, 4]
    assert capped(order, ["one.flac@0"] * 12, 2, 2) == [0, 1]
    one_each = capped(order, sources, 3, 1)
    assert one_each == [0, 1, 2]
    took = capped(list(reversed(order)), ["a@0"] * 6 + ["b@0"] * 6, 4, 2)
    assert took == [11, 10, 5, 4]
    with pytest.raises(ParameterError, match="only 3 excerpts can be taken with at most 1 per clip from 3 clips"):
        capped(order, sources, 4, 1)
    with pytest.raises(ParameterError, match="per_clip"):
        capped(order, sources, 4, 0)


def _set(x: torch.Tensor) -> ReferenceSet:
    n = x.shape[0]
    return ReferenceSet(x, (torch.arange(n) % 2).float(), [f"clip{i // 2}.wav@{i}.00" for i in range(n)], MelConfig(),
                        {"logits": [float(i) for i in range(n)], "rule": "test"},
                        {"singer": [f"s{i}" for i in range(n)]})


def test_reference_sets_are_filtered_with_everything_per_excerpt(tmp_path):
    x = _music(6)
    x[2, :10] = x[2].min()
    x[5, -3:] = math.log(1e-7)
    ref = _set(x)
    clean = ref.clean()
    assert len(clean) == 4 and clean.info["left_out_unclean"] == 2
    assert clean.info["logits"] == [0.0, 1.0, 3.0, 4.0] and clean.tags["singer"] == ["s0", "s1", "s3", "s4"]
    assert clean.sources == [ref.sources[i] for i in (0, 1, 3, 4)] and clean.n_clips == 3
    assert torch.equal(clean.labels, ref.labels[[0, 1, 3, 4]]) and clean.info["rule"] == "test"
    assert ref.clean() is not ref and _set(_music(2)).clean().info.get("left_out_unclean") is None
    # an old file is filtered on load (with the count), kept whole on request
    p = ref.save(tmp_path / "old.safetensors", dtype=torch.float32)
    assert len(ReferenceSet.load(p)) == 4 and ReferenceSet.load(p).info["left_out_unclean"] == 2
    assert len(ReferenceSet.load(p, clean=False)) == 6
    # a set that the filter empties: a clear error naming the rule
    dead = _set(torch.full((3, T, M), math.log(1e-7)))
    with pytest.raises(ParameterError, match="every one of the 3 reference excerpts holds padding"):
        dead.clean()
    dead.save(tmp_path / "dead.safetensors")
    with pytest.raises(CheckpointError, match="every one of the 3"):
        ReferenceSet.load(tmp_path / "dead.safetensors")


def test_grid_references_take_at_most_per_clip():
    from xai_core.actmax.engine import _top

    responses = torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0])
    sources = ["a@0"] * 4 + ["b@0", "b@1", "c@0", "d@0"]
    assert _top(responses, "max", 4).tolist() == [0, 1, 2, 3]  # no cap: one clip
    assert _top(responses, "max", 4, sources=sources, per_clip=2).tolist() == [0, 1, 4, 5]
    assert _top(responses, "min", 3, sources=sources, per_clip=1).tolist() == [7, 6, 5]
    with pytest.raises(ParameterError, match="at most 1 per clip from 4 clips"):
        _top(responses, "max", 5, sources=sources, per_clip=1)


def test_select_reference_drops_padding_and_caps_clips(tiny_bundles):
    from xai_core.train.data import Track
    from xai_core.train.reference import select_reference

    clf = tiny_bundles[0]
    tracks = []
    for k in range(6):
        feats = _music(1, seed=k)[0].repeat(3, 1)[:300]  # (300, M) a 4.3 s clip
        tracks.append(Track(name=f"clip{k}", features=feats, labels=(torch.arange(300) % 2).float()))
    ref = select_reference(tracks, clf.model, clf.normaliser, n=40, extremes=8, candidates=600, per_clip=2,
                           mel=clf.mel)
    assert bool(clean_mask(ref.logmel).all())  # candidates centred near an edge (padded) were dropped
    assert ref.info["unclean_candidates"] > 0 and ref.info["per_clip"] == 2
    sel = ref.info["selection"]
    for kind in ("top", "bottom"):
        clips = [clip_of(s) for s, k in zip(ref.sources, sel, strict=True) if k == kind]
        assert len(clips) == 8 and max(clips.count(c) for c in clips) <= 2
    assert "at most 2 per clip" in ref.info["rule"]
