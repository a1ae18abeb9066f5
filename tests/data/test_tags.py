"""Concept tags: part of the reference-set format, read from a demo corpus' description."""

from __future__ import annotations

import json

import pytest
import torch

from xai_core.assets import ReferenceSet
from xai_core.data.tags import demo_corpus_tags
from xai_core.errors import CheckpointError, DataError, ParameterError


def _ref(tags=None) -> ReferenceSet:
    return ReferenceSet(torch.zeros(3, 115, 80), torch.tensor([1.0, 0.0, 1.0]), ["a@0.00", "a@1.00", "b@0.50"],
                        tags=tags or {})


def test_tags_round_trip_and_concepts(tmp_path):
    ref = _ref({"singer_family": ["choir", "none", "formant"]})
    ref.save(tmp_path / "r.safetensors")
    back = ReferenceSet.load(tmp_path / "r.safetensors", clean=False)  # flat hand-made excerpts
    assert back.tags == ref.tags
    assert back.concepts() == {"vocal": ["vocal", "non-vocal", "vocal"], "singer_family": ["choir", "none", "formant"]}
    _ref().save(tmp_path / "plain.safetensors")
    plain = ReferenceSet.load(tmp_path / "plain.safetensors", clean=False)
    assert plain.concepts() == {"vocal": ["vocal", "non-vocal", "vocal"]}


@pytest.mark.parametrize("tags", [{"x": ["a"]}, {"x": [1, 2, 3]}, {"vocal": ["a", "b", "c"]}, {"x": "abc"}])
def test_bad_tags_are_refused(tags, tmp_path):
    with pytest.raises(ParameterError, match="tag"):
        _ref(tags)
    from safetensors.torch import save_file

    meta = {"kind": "reference", "sources": ["a@0", "a@1", "b@0"], "mel": {}, "info": {}, "tags": tags}
    save_file({"logmel": torch.zeros(3, 115, 80), "labels": torch.zeros(3)}, str(tmp_path / "bad.safetensors"),
              metadata={"vocal_xai": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="tag"):
        ReferenceSet.load(tmp_path / "bad.safetensors")


def test_demo_corpus_tags(tmp_path):
    files = [{"file": "a.flac", "singers": ["choir-FluidR3_GM-oohs"], "song": "s1", "instrument": "pad-FluidR3_GM-50",
              "vocal_to_backing_db": -2.0},
             {"file": "b.flac", "singers": [], "song": "s2", "instrument": None, "vocal_to_backing_db": 6.0}]
    (tmp_path / "corpus.json").write_text(json.dumps({"files": files}))
    ref = _ref()
    t = demo_corpus_tags(tmp_path, ref.sources, ref.labels.tolist())
    assert t == {"singer_family": ["choir", "none", "none"], "backing_song": ["s1", "s1", "s2"],
                 "instrument": ["pad", "pad", "none"], "voice_level": ["under backing", "under backing",
                                                                      "> 4 dB above"]}
    with pytest.raises(DataError, match="clip 'c' is not in"):
        demo_corpus_tags(tmp_path, ["c@0.00"], [1.0])
    with pytest.raises(DataError, match="no corpus.json"):
        demo_corpus_tags(tmp_path / "nope", ref.sources, ref.labels.tolist())
