import numpy as np
import pytest
import soundfile as sf
import torch

import xai_core.data.cache as cache_mod
from xai_core.audio.config import MelConfig
from xai_core.data.cache import FeatureCache
from xai_core.data.sampler import ExcerptSampler, track_excerpts
from xai_core.data.sources import (
    csv_tracks,
    jamendo_tracks,
    musdb_tracks,
    parse_lab,
    read_jamendo_index,
)
from xai_core.errors import DataError

SR = 22050
CFG = MelConfig()


def _noise(seconds, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(SR * seconds))).astype(np.float32)


@pytest.fixture
def jamendo(tmp_path):
    root = tmp_path / "jam"
    for d in ("audio", "labels", "filelists"):
        (root / d).mkdir(parents=True)
    for k, name in enumerate(["a", "b", "c"]):
        sf.write(root / "audio" / f"{name}.wav", _noise(3.0, k), SR)
        (root / "labels" / f"{name}.lab").write_text("0 1.0 nosing\n1.0 2.0 sing\n2.0 3.0 nosing\n")
    (root / "filelists" / "train").write_text("a.wav\nb.wav\n")
    (root / "filelists" / "test").write_text("c.wav\n")
    return root


def test_jamendo_labels_follow_frame_centres(jamendo, tmp_path):
    tracks = jamendo_tracks(jamendo, cache=FeatureCache(tmp_path / "cache"))
    assert [t.name for t in tracks] == ["a", "b", "c"]
    assert [t.split for t in tracks] == ["train", "train", "test"]
    t = tracks[0]
    assert t.features.shape == (1 + (3 * SR - CFG.n_fft) // CFG.hop_length, 80)
    assert t.features.dtype == torch.float32 and t.labels.dtype == torch.float32
    centres = CFG.frame_times(t.n_frames)
    expected = ((centres >= 1.0) & (centres < 2.0)).astype(np.float32)
    np.testing.assert_array_equal(t.labels.numpy(), expected)
    assert 0.3 < t.vocal_fraction < 0.37
    assert [e.name for e in read_jamendo_index(jamendo, split="test")] == ["c"]


def test_jamendo_errors(jamendo):
    (jamendo / "labels" / "b.lab").write_text("0 1 sing\n1 2 maybe\n")
    with pytest.raises(DataError, match=r"b.lab:2.*maybe"):
        read_jamendo_index(jamendo)
    (jamendo / "labels" / "b.lab").unlink()
    with pytest.raises(DataError, match="b.lab"):
        read_jamendo_index(jamendo)
    with pytest.raises(DataError, match="Jamendo-layout"):
        read_jamendo_index(jamendo / "audio")


def test_parse_lab_merges_and_accepts_numeric(tmp_path):
    p = tmp_path / "x.lab"
    p.write_text("0 1 1\n1 2 sing\n2.5 3 0\n")
    segs, end = parse_lab(p)
    assert segs == [(0.0, 2.0)] and end == 3.0


def test_csv_source(tmp_path):
    sf.write(tmp_path / "x.wav", _noise(2.0), SR)
    sf.write(tmp_path / "y.flac", _noise(2.0, 1), SR)
    (tmp_path / "labels.csv").write_text("file,start,end,label\nx.wav,0.5,1.0,sing\nx.wav,1.0,2.0,nosing\n"
                                         "y.flac,0,2,0\n")
    tracks = csv_tracks(tmp_path / "labels.csv", cache=FeatureCache(tmp_path / "c"))
    assert [t.name for t in tracks] == ["x", "y"]
    c = CFG.frame_times(tracks[0].n_frames)
    np.testing.assert_array_equal(tracks[0].labels.numpy(), ((c >= 0.5) & (c < 1.0)).astype(np.float32))
    assert tracks[1].labels.sum() == 0
    (tmp_path / "bad.csv").write_text("missing.wav,0,1,sing\n")
    with pytest.raises(DataError, match="missing.wav"):
        csv_tracks(tmp_path / "bad.csv")


def test_musdb_stem_energy_labels(tmp_path):
    d = tmp_path / "musdb" / "train" / "Song"
    d.mkdir(parents=True)
    n = 2 * SR
    sf.write(d / "mixture.wav", _noise(2.0), SR)
    voc = np.zeros(n, np.float32)
    t = np.arange(n) / SR
    voc[SR:] = 0.3 * np.sin(2 * np.pi * 330 * t[SR:])  # voice only in the second second
    sf.write(d / "vocals.wav", voc, SR)
    (tmp_path / "musdb" / "test").mkdir()
    [tr] = musdb_tracks(tmp_path / "musdb", threshold_db=-30.0, cache=FeatureCache(tmp_path / "c"))
    assert tr.split == "train"
    start = np.arange(tr.n_frames) * CFG.hop_length
    fully_voiced = start >= SR
    silent = start + CFG.n_fft <= SR
    assert tr.labels.numpy()[fully_voiced].all() and not tr.labels.numpy()[silent].any()
    # absolute threshold above the stem's level: nothing is vocal
    [tr2] = musdb_tracks(tmp_path / "musdb", threshold_db=0.0, relative=False, cache=FeatureCache(tmp_path / "c"))
    assert tr2.labels.sum() == 0


def test_cache_computes_once_and_keys_on_content_and_config(jamendo, tmp_path, monkeypatch):
    calls = []
    real = cache_mod.compute_log_mel

    def counting(path, cfg, **kw):
        calls.append(path)
        return real(path, cfg, **kw)

    monkeypatch.setattr(cache_mod, "compute_log_mel", counting)
    cache = FeatureCache(tmp_path / "cache")
    first = jamendo_tracks(jamendo, cache=cache)
    assert len(calls) == 3
    second = jamendo_tracks(jamendo, cache=FeatureCache(tmp_path / "cache"))
    assert len(calls) == 3  # all read back
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a.features, b.features, rtol=0, atol=0)
    assert not list((tmp_path / "cache").glob("*.tmp"))
    jamendo_tracks(jamendo, cfg=MelConfig(n_mels=40), cache=cache)
    assert len(calls) == 6  # another configuration is another key
    sf.write(jamendo / "audio" / "a.wav", _noise(3.0, 99), SR)  # new content, same name
    jamendo_tracks(jamendo, cache=cache)
    assert len(calls) == 7


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path / "env"))
    assert FeatureCache().cache_dir == tmp_path / "env"


def test_sampler_deterministic_and_centre_labels(jamendo, tmp_path):
    tracks = jamendo_tracks(jamendo, cache=FeatureCache(tmp_path / "cache"))
    s = ExcerptSampler(tracks, excerpt_frames=31)
    assert len(s) == sum(t.n_frames - 30 for t in tracks)
    x1, y1 = s.sample(64, generator=torch.Generator().manual_seed(3))
    x2, y2 = s.sample(64, generator=torch.Generator().manual_seed(3))
    assert x1.shape == (64, 31, 80) and y1.shape == (64,)
    torch.testing.assert_close(x1, x2)
    torch.testing.assert_close(y1, y2)
    # every excerpt is a real window and carries the label of its centre frame
    feats = torch.cat([t.features for t in tracks])
    labs = torch.cat([t.labels for t in tracks])
    for i in range(8):
        hit = (feats.unfold(0, 31, 1).transpose(1, 2) == x1[i]).flatten(1).all(1).nonzero()
        assert len(hit) >= 1
        assert labs[hit[0, 0] + 15] == y1[i]
    assert 0.0 < y1.mean() < 1.0
    b = list(s.batches(8, 2, seed=1))
    assert len(b) == 2 and b[0][0].shape == (8, 31, 80)


def test_track_excerpts_one_per_frame(jamendo, tmp_path):
    [t] = jamendo_tracks(jamendo, split="test", cache=FeatureCache(tmp_path / "cache"))
    x, y = track_excerpts(t, excerpt_frames=115)
    assert x.shape == (t.n_frames, 115, 80)
    torch.testing.assert_close(y, t.labels)
    torch.testing.assert_close(x[:, 57], t.features)
    x2, _ = track_excerpts(t, excerpt_frames=115, hop=10, pad=False)
    assert x2.shape[0] == (t.n_frames - 115) // 10 + 1
