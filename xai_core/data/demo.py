"""Offline demo corpus: real backing music + synthetic singers, in the Jamendo layout.

The corpus is built from what is installed on the machine, deterministically from a seed:

* backing music: the Frets on Fire song packs of Debian (``fretsonfire-songs-muldjord``, CC BY-SA
  3.0, and ``fretsonfire-songs-sectoid``, MIT-style licence): the backing track ``song.ogg`` mixed
  with the lead guitar ``guitar.ogg``. The lead guitar stays in the *non-vocal* class: it is the
  classic false positive of singing-voice detectors. Without the packages a synthetic backing
  (chords, bass, drums and a square-wave lead) is used and recorded as such.
* non-vocal hard negatives: most clips also get an instrument track in the accompaniment (GM
  strings, winds, organs, synth leads and pads through fluidsynth, or a numpy additive synthesiser
  with vibrato), playing melodies and chords like the singers but labelled *non-vocal*, so the
  detector cannot get away with "sustained harmonic tone = voice".
* singing: several synthetic singers (:mod:`xai_core.data.singers`): a numpy formant singer in
  four voice types, sampled GM choir vowels through fluidsynth, and Festival's singing mode;
  whatever is unavailable is skipped and the reason recorded in ``corpus.json``.

Layout written (readable by :func:`xai_core.data.sources.jamendo_tracks`)::

    OUT/audio/NAME.flac          22050 Hz mono mixes
    OUT/labels/NAME.lab          "start end sing|nosing" lines in seconds, covering the clip
    OUT/filelists/{train,valid,test}   audio file names, split by backing song
    OUT/CREDITS.md               sources and licences
    OUT/corpus.json              seed, parameters, singers, per-file statistics

The same seed and parameters give byte-identical files (timings go to ``build_info.json``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from xai_core.audio.config import MelConfig
from xai_core.audio.io import load_audio
from xai_core.data.singers import (
    CONSONANTS,
    LEAD_PROGRAMS,
    PAD_PROGRAMS,
    VOICE_RANGES,
    VOWELS,
    AdditiveInstrument,
    ChoirSinger,
    Event,
    FestivalSinger,
    FluidInstrument,
    FormantSinger,
    Note,
    Phrase,
    available_singers,
    find_soundfonts,
    phrase_events,
)
from xai_core.data.sources import segments_to_frame_labels
from xai_core.errors import CancelledError, DataError, ParameterError

__all__ = ["DemoConfig", "BackingSong", "find_backing_songs", "find_game_music_songs", "synthetic_backing_songs",
           "build_demo_corpus", "FRETSONFIRE_DIR", "GAME_MUSIC", "CORPUS_VERSION"]

CORPUS_VERSION = 2  # bump when the generation changes what a seed produces
FRETSONFIRE_DIR = Path("/usr/share/games/fretsonfire/data/songs")

BACKINGS = ("auto", "fretsonfire", "synthetic", "game-music")

ProgressFn = Callable[[int, int, dict], "bool | None"]


@dataclass(frozen=True)
class DemoConfig:
    """Parameters of the demo corpus (all durations in seconds, levels in dB)."""

    minutes: float = 24.0  # target total duration of the mixes
    clip_seconds: tuple[float, float] = (20.0, 40.0)  # length range of one clip (one audio file)
    phrase_seconds: tuple[float, float] = (1.5, 6.0)  # sung phrase length range
    gap_seconds: tuple[float, float] = (1.0, 6.5)  # silence between phrases (tuned for ~45 % vocal)
    vocal_to_backing_db: tuple[float, float] = (-6.0, 9.0)  # per-clip vocal-to-accompaniment ratio
    phrase_level_jitter_db: float = 2.0  # +- per-phrase deviation from the clip's ratio
    guitar_gain_db: tuple[float, float] = (-4.0, 2.0)  # lead-guitar level relative to the stems' mix
    skip_intro_seconds: float = 4.0  # do not cut clips from the first seconds of a song
    sample_rate: int = 22050
    audio_format: str = "flac"  # "flac" or "wav" (16-bit PCM either way)
    singer_weights: tuple[tuple[str, float], ...] = (("formant", 0.5), ("choir", 0.35), ("festival", 0.15))
    max_festival_phrases: int = 40  # Festival renders ~1x real time: cap its share of the build time
    # non-vocal instrument track (hard negatives) in the accompaniment of a fraction of the clips
    instrument_prob: float = 0.6  # fraction of clips with an instrument track
    # per-clip level against the backing: under the voice (-6..+9 dB) as in a real mix, where the lead
    # vocal sits on top; at -9..+6 dB the voice drowned and a lite detector learnt nothing (valid AUC 0.73)
    instrument_to_backing_db: tuple[float, float] = (-15.0, -3.0)
    instrument_part_seconds: tuple[float, float] = (2.0, 9.0)  # length of one melody / chord part
    instrument_gap_seconds: tuple[float, float] = (0.3, 5.0)  # silence between parts
    instrument_weights: tuple[tuple[str, float], ...] = (("lead", 0.45), ("pad", 0.35), ("additive", 0.2))
    valid_fraction: float = 0.125  # fraction of backing songs held out for validation
    test_fraction: float = 0.25  # fraction of backing songs held out for testing (unseen songs)

    def __post_init__(self) -> None:
        for name in ("clip_seconds", "phrase_seconds", "gap_seconds", "vocal_to_backing_db", "guitar_gain_db",
                     "instrument_to_backing_db", "instrument_part_seconds", "instrument_gap_seconds"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ParameterError(f"DemoConfig.{name}={(lo, hi)} must be an ordered (low, high) pair")
        if not self.minutes > 0:
            raise ParameterError(f"DemoConfig.minutes={self.minutes} must be positive")
        if self.clip_seconds[0] < 2.0:
            raise ParameterError(f"DemoConfig.clip_seconds={self.clip_seconds} must be at least 2 s")
        if self.phrase_seconds[0] < 0.3:
            raise ParameterError(f"DemoConfig.phrase_seconds={self.phrase_seconds} must be at least 0.3 s")
        if self.gap_seconds[0] < 0.2:
            raise ParameterError(f"DemoConfig.gap_seconds={self.gap_seconds} must be at least 0.2 s")
        if self.audio_format not in ("flac", "wav"):
            raise ParameterError(f"DemoConfig.audio_format={self.audio_format!r} must be 'flac' or 'wav'")
        if self.sample_rate != 22050:
            raise ParameterError(f"DemoConfig.sample_rate={self.sample_rate}: the corpus is 22050 Hz")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1
                and self.valid_fraction + self.test_fraction < 1):
            raise ParameterError(
                f"DemoConfig valid_fraction={self.valid_fraction}, test_fraction={self.test_fraction} "
                "must be in [0, 1) with a sum below 1")
        if any(w < 0 for _, w in self.singer_weights) or sum(w for _, w in self.singer_weights) <= 0:
            raise ParameterError(f"DemoConfig.singer_weights={self.singer_weights} need non-negative weights")
        if not 0 <= self.instrument_prob <= 1:
            raise ParameterError(f"DemoConfig.instrument_prob={self.instrument_prob} must be in [0, 1]")
        if self.instrument_part_seconds[0] < 0.5:
            raise ParameterError(f"DemoConfig.instrument_part_seconds={self.instrument_part_seconds} "
                                 "must be at least 0.5 s")
        fams = dict(self.instrument_weights)
        if set(fams) - {"lead", "pad", "additive"} or any(w < 0 for w in fams.values()) \
                or (self.instrument_prob > 0 and sum(fams.values()) <= 0):
            raise ParameterError(f"DemoConfig.instrument_weights={self.instrument_weights}: families "
                                 "'lead', 'pad', 'additive' with non-negative weights, not all zero")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["singer_weights"] = dict(self.singer_weights)
        d["instrument_weights"] = dict(self.instrument_weights)
        return d


# ----------------------------------------------------------------------------------------------
# backing songs

_LICENCES = {
    "muldjord": {
        "licence": "CC BY-SA 3.0",
        "url": "https://creativecommons.org/licenses/by-sa/3.0/",
        "credit": ("The songs, performances and fret files are all Copyright (c) 2009 El Senator "
                   "<elsenator@gmail.com> and are licenced under the terms of the Creative Commons "
                   "Attribution ShareAlike licence 3.0. \"This song was composed by El Senator of the "
                   "danish metal band Muldjord. [...] Feel free to adapt my work to suit your needs, as "
                   "long as you give credit to Muldjord as the original author and make sure to include "
                   "this text file and the license with the redistribution of the work.\" (www.muldjord.com)"),
        "package": "fretsonfire-songs-muldjord",
    },
    "sectoid": {
        "licence": "MIT-style (Expat) permission notice",
        "url": "",
        "credit": ("The songs, performances and fret files are all Copyright (c) 2006/2007 Carlos Viola "
                   "Iborra <karuritosu@gmail.com> (Sectoid). Permission is hereby granted, free of charge, "
                   "to any person obtaining a copy of this software and associated documentation files "
                   "(the \"Software\"), to deal in the Software without restriction, including without "
                   "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, "
                   "and/or sell copies of the Software, and to permit persons to whom the Software is "
                   "furnished to do so, subject to the following conditions: The above copyright notice "
                   "and this permission notice shall be included in all copies or substantial portions "
                   "of the Software. THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, "
                   "EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, "
                   "FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS "
                   "OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN "
                   "AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH "
                   "THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."),
        "package": "fretsonfire-songs-sectoid",
    },
}


@dataclass(frozen=True)
class BackingSong:
    """One backing song: accompaniment stem, optional lead-guitar stem, credits."""

    artist: str  # pack / artist key, e.g. "muldjord"
    title: str
    slug: str  # file-name friendly "artist_title"
    backing_path: Path | None  # None for synthetic songs
    guitar_path: Path | None
    duration: float  # seconds
    licence: str
    synthetic_seed: int | None = None  # set for synthetic songs


def _slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "_" for c in text)
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def find_backing_songs(root: str | os.PathLike = FRETSONFIRE_DIR) -> list[BackingSong]:
    """Frets on Fire songs under ``root/PACK/SONG/{song.ogg,guitar.ogg}``, sorted by slug.

    Only packs with a known licence (muldjord, sectoid) are used; others are ignored because
    their redistribution terms are unknown.
    """
    import configparser

    import soundfile as sf

    root = Path(root)
    songs = []
    if not root.is_dir():
        return songs
    for pack in sorted(p for p in root.iterdir() if p.is_dir()):
        if pack.name not in _LICENCES:
            continue
        for d in sorted(p for p in pack.iterdir() if p.is_dir()):
            backing = d / "song.ogg"
            if not backing.is_file():
                continue
            guitar = d / "guitar.ogg"
            title = d.name.replace("_", " ").title() if "_" in d.name else d.name
            ini = d / "song.ini"
            if ini.is_file():
                cp = configparser.ConfigParser(interpolation=None)
                try:
                    cp.read(ini)
                    title = cp.get("song", "name", fallback=title)
                except configparser.Error:
                    pass
            try:
                duration = sf.info(str(backing)).duration
            except RuntimeError:
                continue
            songs.append(BackingSong(pack.name, title, _slug(f"{pack.name}_{title}"), backing,
                                     guitar if guitar.is_file() else None, float(duration),
                                     _LICENCES[pack.name]["licence"]))
    return sorted(songs, key=lambda s: s.slug)


# Instrumental game soundtracks packaged by Debian: many more (and more varied: orchestral, ambient,
# electronic) backing songs than the eight Frets on Fire songs, for extra training renderings
# (``--backing game-music``). One file is one song; there is no lead-guitar stem. Remastered
# duplicates ("*_enhanced") are left out so a piece cannot sit in two splits.
GAME_MUSIC: dict[str, dict] = {
    "warzone2100": {
        "package": "warzone2100-music", "root": "/usr/share/games/warzone2100/music",
        "licence": "GPL-2+", "url": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
        "credit": ("Warzone 2100 soundtracks (original, legacy, aftermath), Copyright 1999-2004 Eidos "
                   "Interactive, 2005-2013 Warzone 2100 Project, GPL-2+ (Debian copyright file)."),
    },
    "hyperrogue": {
        "package": "hyperrogue-music", "root": "/usr/share/hyperrogue/music",
        "licence": "CC BY-SA 3.0", "url": "https://creativecommons.org/licenses/by-sa/3.0/",
        "credit": ("HyperRogue music by Shawn Parrotte (hr3-*), Lincoln Domina (hr-domina-*) and Will "
                   "Savino (hr-savino-*), CC-BY-SA-3.0 (Debian copyright file)."),
    },
    "singularity": {
        "package": "singularity-music", "root": "/usr/share/games/singularity/music",
        "licence": "CC BY-SA 3.0", "url": "https://creativecommons.org/licenses/by-sa/3.0/",
        "credit": "Endgame: Singularity music, Copyright (C) 2007-2008, 2012 Max McCracken, CC BY-SA 3.0.",
    },
}


_AUDIO_SUFFIXES = (".ogg", ".opus", ".flac", ".wav", ".mp3")


def find_game_music_songs(roots: dict[str, str | os.PathLike] | None = None) -> list[BackingSong]:
    """Songs of the installed :data:`GAME_MUSIC` packages, sorted by slug.

    ``roots`` overrides a package's folder (key -> folder), e.g. in tests. Files that cannot be
    read are skipped.
    """
    import soundfile as sf

    songs = []
    for key, pkg in GAME_MUSIC.items():
        root = Path((roots or {}).get(key, pkg["root"]))
        if not root.is_dir():
            continue
        for f in sorted(root.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in _AUDIO_SUFFIXES or "_enhanced" in f.stem:
                continue
            try:
                duration = sf.info(str(f)).duration
            except RuntimeError:
                continue
            rel = f.relative_to(root).with_suffix("")
            songs.append(BackingSong(key, str(rel), _slug(f"{key}_{rel}"), f, None, float(duration),
                                     pkg["licence"]))
    return sorted(songs, key=lambda s: s.slug)


def synthetic_backing_songs(n: int = 4, *, seconds: float = 60.0) -> list[BackingSong]:
    """Descriptors of ``n`` synthetic backing songs (rendered on demand by :func:`_synth_backing`)."""
    return [BackingSong("synthetic", f"Synthetic {i}", f"synthetic_{i}", None, None, seconds,
                        "generated (no licence needed)", synthetic_seed=1000 + i) for i in range(n)]


def _synth_backing(song: BackingSong, offset: float, duration: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic accompaniment and lead (both ``(n,)``) for one clip of a synthetic song."""
    rng = np.random.default_rng(song.synthetic_seed)
    bpm = rng.uniform(90, 140)
    beat = 60.0 / bpm
    tonic = 40 + int(rng.integers(0, 12))
    prog = [0, 5, 7, 3, 8, 5, 0, 7]
    n = int(round(duration * sr))
    t = offset + np.arange(n) / sr
    bar = (t // (4 * beat)).astype(int)
    root = tonic + np.array(prog)[bar % len(prog)]

    def saw(freq):
        return 2 * ((np.cumsum(freq) / sr) % 1.0) - 1

    f = 440 * 2 ** ((root - 69) / 12)
    acc = 0.3 * saw(f) + 0.15 * saw(f * 1.5) + 0.15 * saw(f * 2.0) + 0.1 * saw(f * 2.52)
    import scipy.signal

    acc = scipy.signal.sosfilt(scipy.signal.butter(2, 2500 / (sr / 2), output="sos"), acc)
    pos = (t % beat) / beat
    noise = np.random.default_rng(int(offset * 1000) + song.synthetic_seed).standard_normal(n)
    kick = np.sin(2 * np.pi * 55 * (t % beat)) * np.exp(-pos * 12)
    hat = noise * np.exp(-((t % (beat / 2)) / (beat / 2)) * 30) * 0.3
    acc = acc + 0.8 * kick + hat
    step = (t // (beat / 2)).astype(int)
    lead_notes = tonic + 24 + np.array([0, 3, 5, 7, 10, 12, 7, 5])[(step * 7 + bar) % 8]
    lead = np.sign(np.sin(2 * np.pi * np.cumsum(440 * 2 ** ((lead_notes - 69) / 12)) / sr)) * 0.2
    lead *= (bar % 4 >= 2)  # lead plays half of the time
    return (0.3 * acc).astype(np.float32), lead.astype(np.float32)


def _load_clip_stems(song: BackingSong, offset: float, duration: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    if song.backing_path is None:
        return _synth_backing(song, offset, duration, sr)
    backing = load_audio(song.backing_path, sample_rate=sr, offset=offset, duration=duration, allow_silent=True)
    n = backing.shape[0]
    if song.guitar_path is not None:
        guitar = load_audio(song.guitar_path, sample_rate=sr, offset=offset, duration=duration, allow_silent=True)
        guitar = np.pad(guitar[:n], (0, max(0, n - guitar.shape[0])))
    else:
        guitar = np.zeros(n, np.float32)
    return backing, guitar


# ----------------------------------------------------------------------------------------------
# planning


@dataclass
class _PhrasePlan:
    phrase: Phrase
    singer: str  # singer identity, e.g. "formant-tenor", "choir-FluidR3_GM-aahs", "festival-kal"
    gap_before: float
    level_jitter_db: float
    formant_params: dict = field(default_factory=dict)
    audio: np.ndarray | None = None


@dataclass
class _PartPlan:
    events: list[Event]  # (onset s, MIDI pitch, duration s) from the part's start
    instrument: str  # identity, e.g. "lead-FluidR3_GM-40-violin", "pad-...", "additive"
    gap_before: float
    level_jitter_db: float
    additive_params: dict = field(default_factory=dict)
    audio: np.ndarray | None = None


@dataclass
class _ClipPlan:
    name: str
    song: BackingSong
    offset: float
    duration: float
    singer: str
    vocal_to_backing_db: float
    guitar_gain_db: float
    phrases: list[_PhrasePlan]
    seed: list[int]
    instrument: str | None = None
    instrument_to_backing_db: float = 0.0
    parts: list[_PartPlan] = field(default_factory=list)


_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
           "pentatonic": (0, 2, 4, 7, 9), "dorian": (0, 2, 3, 5, 7, 9, 10)}


def _melody(rng: np.random.Generator, seconds: float, lo: int, hi: int, tonic: int, scale: str,
            bpm: float) -> Phrase:
    """Scale-aware random walk filling ``seconds``; syllables with random consonant onsets."""
    steps = _SCALES[scale]
    pitches = [p for p in range(lo, hi + 1) if (p - tonic) % 12 in steps]
    i = int(np.clip(len(pitches) // 2 + rng.integers(-2, 3), 0, len(pitches) - 1))
    beat = 60.0 / bpm
    notes, total = [], 0.0
    moves, probs = np.array([-3, -2, -1, 0, 1, 2, 3, 4]), np.array([.04, .14, .27, .1, .27, .12, .04, .02])
    while total < seconds - 0.15:
        beats = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0, 3.0], p=[.25, .3, .15, .12, .12, .06]))
        dur = min(beats * beat, seconds - total)
        if seconds - total - dur < 0.15:
            dur = seconds - total
        cons = "" if rng.random() < (0.5 if not notes else 0.4) else str(rng.choice(CONSONANTS[1:]))
        notes.append(Note(pitches[i], dur, str(rng.choice(VOWELS)), cons))
        total += dur
        i = int(np.clip(i + rng.choice(moves, p=probs), 0, len(pitches) - 1))
    if not notes:
        notes.append(Note(pitches[i], seconds, "a", ""))
    return Phrase(tuple(notes))


def _split_songs(durations: dict[str, float], rng: np.random.Generator, cfg: DemoConfig) -> dict[str, str]:
    """Assign each backing song to train/valid/test, so test songs are never heard in training.

    Songs are visited in a seeded random order; test, then valid take songs while that brings their
    share of the corpus duration closer to ``test_fraction`` / ``valid_fraction``; at least one
    song stays in train (two songs: one train, one test).
    """
    slugs = sorted(durations)
    order = [slugs[i] for i in rng.permutation(len(slugs))]
    split = dict.fromkeys(order, "train")
    total = sum(durations.values())
    if len(order) == 2 and cfg.test_fraction > 0:
        split[order[1]] = "test"
        return split
    if len(order) < 3:
        return split
    for name, frac in (("test", cfg.test_fraction), ("valid", cfg.valid_fraction)):
        target, have = frac * total, 0.0
        for s in order:
            if frac <= 0 or have >= target or sum(v == "train" for v in split.values()) <= 1:
                break
            if split[s] != "train":
                continue
            d = durations[s]
            if have == 0.0 or abs(have + d - target) < abs(have - target):
                split[s] = name
                have += d
    return split


def _singer_identities(families: list[str]) -> list[str]:
    ids = []
    if "formant" in families:
        ids += [f"formant-{v}" for v in VOICE_RANGES]
    if "choir" in families:
        for sf2 in find_soundfonts():
            ids += [f"choir-{sf2.stem}-aahs", f"choir-{sf2.stem}-oohs"]
    if "festival" in families:
        ids.append("festival-kal")
    return ids


def _instrument_identities(families: list[str]) -> dict[str, list[str]]:
    """Instrument identities per family ("lead", "pad", "additive") usable on this machine."""
    ids: dict[str, list[str]] = {"additive": ["additive"]}
    if "choir" in families:  # fluidsynth + a GM SoundFont are there
        sf2 = find_soundfonts()[0]
        ids["lead"] = [FluidInstrument(sf2, p, "lead").name for p in sorted(LEAD_PROGRAMS)]
        ids["pad"] = [FluidInstrument(sf2, p, "pad").name for p in sorted(PAD_PROGRAMS)]
    return ids


def _instrument_of(identity: str) -> FluidInstrument:
    role, stem, program = identity.split("-")[:3]
    sf2 = next(s for s in find_soundfonts() if s.stem == stem)
    return FluidInstrument(sf2, int(program), role)


def _chords(rng: np.random.Generator, seconds: float, lo: int, hi: int, tonic: int, scale: str,
            bpm: float) -> list[Event]:
    """Sustained diatonic triads (sometimes with the octave or a seventh) filling ``seconds``."""
    steps = _SCALES[scale]
    beat = 60.0 / bpm
    events, t = [], 0.0
    base = lo + (tonic - lo) % 12
    while t < seconds - 0.3:
        dur = min(float(rng.choice([2, 4, 4, 8])) * beat, seconds - t)
        if seconds - t - dur < 0.3:
            dur = seconds - t
        degree = int(rng.integers(0, len(steps)))
        chord = [base + steps[(degree + j) % len(steps)] + 12 * ((degree + j) // len(steps)) for j in (0, 2, 4)]
        if rng.random() < 0.3:
            chord.append(chord[0] + 12)
        elif rng.random() < 0.2:
            chord.append(base + steps[(degree + 6) % len(steps)] + 12 * ((degree + 6) // len(steps)))
        shift = 12 * int(rng.integers(0, 2)) if max(chord) + 12 <= hi else 0
        events += [(t, int(np.clip(c + shift, lo, hi)), dur) for c in sorted(set(chord))]
        t += dur
    return events


def _plan_parts(rng: np.random.Generator, instrument: str, clip_len: float, cfg: DemoConfig) -> list[_PartPlan]:
    """Melody (lead, additive) or chord (pad) parts with gaps, filling the clip."""
    if instrument == "additive":
        lo, hi = 43, 84
        params = dict(tilt=float(rng.uniform(0.8, 2.2)), odd_only=bool(rng.random() < 0.3),
                      vibrato_rate=float(rng.uniform(4.5, 7.0)),
                      vibrato_depth=float(rng.choice([0.0, rng.uniform(10, 80)])),
                      attack=float(rng.uniform(0.01, 0.25)), release=float(rng.uniform(0.05, 0.4)))
        chordal = bool(rng.random() < 0.3)
    else:
        inst = _instrument_of(instrument)
        lo, hi = inst.range
        params, chordal = {}, inst.role == "pad"
    tonic = int(rng.integers(0, 12))
    scale = str(rng.choice(list(_SCALES)))
    bpm = float(rng.uniform(70, 150))
    span = min(hi - lo, int(rng.integers(12, 25)))  # a melody uses part of the instrument's range
    lo = int(rng.integers(lo, hi - span + 1))
    hi = lo + span
    parts, t = [], float(rng.uniform(0.0, 3.0))
    gap = t
    end = clip_len - 0.2
    while t + cfg.instrument_part_seconds[0] <= end:
        length = min(float(rng.uniform(*cfg.instrument_part_seconds)), end - t)
        events = (_chords(rng, length, lo, hi, tonic, scale, bpm) if chordal
                  else phrase_events(_melody(rng, length, lo, hi, tonic, scale, bpm)))
        parts.append(_PartPlan(events, instrument, gap, float(rng.uniform(-2, 2)), params))
        gap = float(rng.uniform(*cfg.instrument_gap_seconds))
        t += length + gap
    return parts


def _plan(songs: list[BackingSong], families: list[str], cfg: DemoConfig, seed: int) -> list[_ClipPlan]:
    rng = np.random.default_rng([seed, 0])
    total_target = cfg.minutes * 60.0
    mean_clip = sum(cfg.clip_seconds) / 2
    usable = [max(0.0, s.duration - cfg.skip_intro_seconds - 1.0) for s in songs]
    n_total = max(1, int(round(total_target / mean_clip)))
    # clips per song: proportional to usable length (largest remainder, ties in seed order)
    share = np.array(usable) / max(sum(usable), 1e-9) * n_total
    counts = np.floor(share).astype(int)
    order = rng.permutation(len(songs))
    rema = share - counts
    for k in sorted(order, key=lambda k: -rema[k])[: n_total - counts.sum()]:
        counts[k] += 1
    identities = _singer_identities(families)
    fam_w = dict(cfg.singer_weights)
    instruments = _instrument_identities(families)
    inst_fams = [f for f, w in cfg.instrument_weights if w > 0 and f in instruments]
    inst_w = np.array([dict(cfg.instrument_weights)[f] for f in inst_fams])
    plans = []
    for si, song in enumerate(songs):
        srng = np.random.default_rng([seed, 1, si])
        lens = [float(srng.uniform(*cfg.clip_seconds)) for _ in range(counts[si])]
        while lens and sum(lens) > usable[si]:
            lens.pop()  # the song is too short for that many clips
        free = usable[si] - sum(lens)
        gaps = srng.dirichlet(np.ones(len(lens) + 1)) * free if lens else []
        t = cfg.skip_intro_seconds
        for k, length in enumerate(lens):
            t += float(gaps[k])
            crng_seed = [seed, 2, si, k]
            crng = np.random.default_rng(crng_seed)
            fams = [f for f in families if fam_w.get(f, 0) > 0] or ["formant"]
            w = np.array([fam_w.get(f, 0.0) for f in fams]) if any(fam_w.get(f, 0) for f in fams) \
                else np.ones(len(fams))
            fam = str(crng.choice(fams, p=w / w.sum()))
            singer = str(crng.choice([i for i in identities if i.startswith(fam)]))
            plan = _ClipPlan(
                name=f"{song.slug}_{k + 1:02d}", song=song, offset=round(t, 3), duration=round(length, 3),
                singer=singer, vocal_to_backing_db=float(crng.uniform(*cfg.vocal_to_backing_db)),
                guitar_gain_db=float(crng.uniform(*cfg.guitar_gain_db)),
                phrases=_plan_phrases(crng, singer, length, cfg), seed=crng_seed)
            # the instrument track has its own random stream: the singing (and so the labels) of a
            # seed do not depend on it
            irng = np.random.default_rng([seed, 5, si, k])
            if inst_fams and irng.random() < cfg.instrument_prob:
                fam = str(irng.choice(inst_fams, p=inst_w / inst_w.sum()))
                plan.instrument = str(irng.choice(instruments[fam]))
                plan.instrument_to_backing_db = float(irng.uniform(*cfg.instrument_to_backing_db))
                plan.parts = _plan_parts(irng, plan.instrument, length, cfg)
            plans.append(plan)
            t += length
    return plans


def _plan_phrases(rng: np.random.Generator, singer: str, clip_len: float, cfg: DemoConfig) -> list[_PhrasePlan]:
    if singer.startswith("formant-"):
        voice = singer.split("-", 1)[1]
    elif singer.startswith("festival"):
        voice = str(rng.choice(["bass", "tenor"]))  # Festival's kal voice is male
    else:
        voice = str(rng.choice(list(VOICE_RANGES)))
    lo, hi = VOICE_RANGES[voice]
    tonic = int(rng.integers(0, 12))
    scale = str(rng.choice(list(_SCALES)))
    bpm = float(rng.uniform(70, 150))
    formant = {}
    if singer.startswith("formant-"):
        formant = dict(voice=voice, vibrato_rate=float(rng.uniform(4.8, 6.2)),
                       vibrato_depth=float(rng.uniform(20, 90)), jitter=float(rng.uniform(0.002, 0.012)),
                       shimmer=float(rng.uniform(0.02, 0.08)), breathiness=float(rng.uniform(0.02, 0.5)),
                       open_quotient=float(rng.uniform(0.35, 0.6)),
                       formant_shift=float(rng.uniform(0.9, 1.1)))
    phrases = []
    t = float(rng.uniform(0.3, 3.0))  # first phrase start (nominal)
    gap = t
    end = clip_len - 0.3
    while t + cfg.phrase_seconds[0] <= end:
        length = min(float(rng.uniform(*cfg.phrase_seconds)), end - t)
        phrases.append(_PhrasePlan(_melody(rng, length, lo, hi, tonic, scale, bpm), singer, gap,
                                   float(rng.uniform(-1, 1) * cfg.phrase_level_jitter_db), formant))
        gap = float(rng.uniform(*cfg.gap_seconds))
        t += length + gap
    return phrases


# ----------------------------------------------------------------------------------------------
# rendering and mixing


def _render_all(plans: list[_ClipPlan], cfg: DemoConfig, seed: int, tick: Callable[[dict], None],
                notes: dict) -> None:
    """Render every phrase (choir: one fluidsynth call per patch; Festival: capped, then formant)."""
    sr = cfg.sample_rate
    by_singer: dict[str, list[_PhrasePlan]] = {}
    for c in plans:
        for p in c.phrases:
            by_singer.setdefault(p.singer, []).append(p)
    fallback = 0
    for singer in sorted(by_singer):
        items = by_singer[singer]
        if singer.startswith("choir-"):
            _, stem, patch = singer.split("-")
            sf2 = next(s for s in find_soundfonts() if s.stem == stem)
            choir = ChoirSinger(sf2, 52 if patch == "aahs" else 53)
            for a, audio in zip(items, choir.render_many([p.phrase for p in items], sample_rate=sr), strict=True):
                a.audio = audio
        elif singer.startswith("festival"):
            fest = FestivalSinger()
            for k, p in enumerate(items):
                if k < cfg.max_festival_phrases:
                    try:
                        p.audio = fest.render(p.phrase, sample_rate=sr)
                        continue
                    except ParameterError as exc:
                        notes.setdefault("festival_errors", []).append(str(exc)[:200])
                # over the cap or failed: a formant tenor sings it instead (recorded)
                p.singer = "formant-tenor"
                p.formant_params = dict(voice="tenor")
                fallback += 1
        tick({"stage": "render", "singer": singer, "phrases": len(items)})
    if fallback:
        notes["festival_phrases_sung_by_formant_tenor"] = fallback
    by_inst: dict[str, list[_PartPlan]] = {}
    for c in plans:
        for part in c.parts:
            by_inst.setdefault(part.instrument, []).append(part)
    for name in sorted(by_inst):
        items = by_inst[name]
        if name == "additive":
            for k, part in enumerate(items):
                part.audio = AdditiveInstrument(**part.additive_params).render(
                    part.events, sample_rate=sr, rng=np.random.default_rng([seed, 6, k]))
        else:
            rendered = _instrument_of(name).render_many([part.events for part in items], sample_rate=sr)
            for part, audio in zip(items, rendered, strict=True):
                part.audio = audio
        tick({"stage": "render", "instrument": name, "parts": len(items)})
    k = 0
    for c in plans:
        for p in c.phrases:
            if p.audio is None:
                rng = np.random.default_rng([seed, 3, k])
                p.audio = FormantSinger(**p.formant_params).render(p.phrase, sample_rate=sr, rng=rng)
            k += 1


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _mix_clip(c: _ClipPlan, cfg: DemoConfig) -> tuple[np.ndarray, list[tuple[int, int]], dict, dict]:
    """Mix one clip: ``(mix (n,), vocal segments in samples, stats, stems)``.

    ``stems`` holds ``"voice"`` and ``"accomp"`` (backing, lead guitar and instrument track), both
    float32 ``(n,)`` with the mix's output gain applied, so ``mix == voice + accomp`` up to rounding.
    """
    sr = cfg.sample_rate
    backing, guitar = _load_clip_stems(c.song, c.offset, c.duration, sr)
    n = backing.shape[0]
    acc = backing.astype(np.float64) + 10 ** (c.guitar_gain_db / 20) * guitar.astype(np.float64)  # (n,)
    acc_rms_clip = _rms(acc)
    # instrument track: level relative to the backing's clip level; parts are cut at the clip end
    inst = np.zeros(n)
    t = 0
    inst_seconds = 0.0
    for part in c.parts:
        start = t + int(round(part.gap_before * sr))
        if start >= n - int(0.3 * sr):
            break
        audio = part.audio[: n - start].astype(np.float64)
        fade = min(audio.shape[0], int(0.05 * sr))
        if audio.shape[0] < part.audio.shape[0]:
            audio[-fade:] *= np.linspace(1, 0, fade)
        gain = 10 ** ((c.instrument_to_backing_db + part.level_jitter_db) / 20) * max(acc_rms_clip, 1e-4) \
            / max(_rms(audio), 1e-9)
        inst[start:start + audio.shape[0]] += gain * audio
        inst_seconds += audio.shape[0] / sr
        t = start + audio.shape[0]
    voc = np.zeros(n)
    segments: list[tuple[int, int]] = []
    t = 0
    for p in c.phrases:
        start = t + int(round(p.gap_before * sr))
        audio = p.audio
        if start + audio.shape[0] > n - int(0.05 * sr):
            break  # does not fit any more (renders can be a little longer than planned)
        stop = start + audio.shape[0]
        target_db = c.vocal_to_backing_db + p.level_jitter_db
        # accompaniment level where the phrase sits; floor it at -6 dB of the clip level so a
        # quiet break does not make the voice vanish or a lone voice explode
        ref = max(_rms(acc[start:stop]), 0.5 * acc_rms_clip, 1e-4)
        gain = 10 ** (target_db / 20) * ref / max(_rms(audio), 1e-9)
        voc[start:stop] += gain * audio
        segments.append((start, stop))
        t = stop
    mix = acc + inst + voc
    peak = float(np.max(np.abs(mix))) if n else 0.0
    out_gain = min(1.0, 0.99 / peak) if peak > 0 else 1.0
    mix *= out_gain
    stems = {"voice": (voc * out_gain).astype(np.float32), "accomp": ((acc + inst) * out_gain).astype(np.float32)}
    stats = {"output_gain_db": round(20 * math.log10(out_gain), 6),
             "peak_before_gain": round(peak, 4),
             "backing_rms_db": round(20 * math.log10(max(acc_rms_clip, 1e-9)), 2),
             "instrument": c.instrument, "instrument_seconds": round(inst_seconds, 3),
             "instrument_to_backing_db": round(c.instrument_to_backing_db, 2) if c.instrument else None}
    return mix.astype(np.float32), segments, stats, stems


def _lab_lines(segments: list[tuple[int, int]], n: int, sr: int) -> list[str]:
    lines, t = [], 0
    for a, b in segments:
        if a > t:
            lines.append(f"{t / sr:.6f} {a / sr:.6f} nosing")
        lines.append(f"{a / sr:.6f} {b / sr:.6f} sing")
        t = b
    if t < n:
        lines.append(f"{t / sr:.6f} {n / sr:.6f} nosing")
    return lines


def _credits(songs_used: list[BackingSong], singers_used: dict[str, int], skipped: dict[str, str],
             instruments_used: dict[str, int] | None = None) -> str:
    lines = ["# Demo corpus credits", "",
             "Every file in `audio/` is a mix made by `xai_core.data.demo` (Vocal XAI Studio): an excerpt",
             "of a backing song (accompaniment plus lead guitar, down-mixed to mono, resampled to 22050 Hz,",
             "level-adjusted) with **synthetic** singing added. The singing voices are generated; no",
             "recorded singer is included. Changes were made to every original work.", "",
             "## Backing music", ""]
    packs = sorted({s.artist for s in songs_used})
    for pack in packs:
        titles = ", ".join(sorted(s.title for s in songs_used if s.artist == pack))
        if pack == "synthetic":
            lines += ["### Synthetic backing", "",
                      f"Generated chords, bass, drums and square-wave lead ({titles}); the Frets on Fire",
                      "songs were not installed.", ""]
            continue
        lic = _LICENCES.get(pack) or GAME_MUSIC[pack]
        lines += [f"### {pack} ({lic['package']}, Debian)", "", f"Songs: {titles}.", "",
                  f"Licence: **{lic['licence']}**" + (f" <{lic['url']}>" if lic["url"] else "") + ".", "",
                  "Credit, quoted from the package's copyright file:", "", "> " + lic["credit"], ""]
        if lic["licence"].startswith("CC BY-SA"):
            lines += ["Mixes derived from these songs are adaptations and are distributed under the same",
                      f"licence, {lic['licence']}.", ""]
    lines += ["## Synthetic singers", ""]
    for s, k in sorted(singers_used.items()):
        if s.startswith("formant"):
            src = "numpy/scipy source-filter synthesis (this project, MIT)"
        elif s.startswith("choir-FluidR3"):
            src = ("FluidR3 GM SoundFont (Frank Wen, MIT licence; Debian fluid-soundfont-gm), rendered "
                   "with FluidSynth (LGPL-2.1)")
        elif s.startswith("choir-TimGM6mb"):
            src = ("TimGM6mb SoundFont (Tim Brechbill, GPL-2+; Debian timgm6mb-soundfont), rendered "
                   "with FluidSynth (LGPL-2.1)")
        else:
            src = ("Festival speech synthesis system singing mode (University of Edinburgh, X11-style "
                   "licence) with the CMU kal diphone voice (festvox-kallpc16k)")
        lines.append(f"- `{s}` ({k} phrases): {src}")
    for fam, why in sorted(skipped.items()):
        lines.append(f"- `{fam}` not used: {why}")
    if instruments_used:
        lines += ["", "## Non-vocal instrument tracks (labelled non-vocal)", ""]
        for s, k in sorted(instruments_used.items()):
            if s == "additive":
                src = "numpy additive synthesis with vibrato (this project, MIT)"
            elif "FluidR3" in s:
                src = "FluidR3 GM SoundFont (Frank Wen, MIT licence), rendered with FluidSynth (LGPL-2.1)"
            else:
                src = "TimGM6mb SoundFont (Tim Brechbill, GPL-2+), rendered with FluidSynth (LGPL-2.1)"
            lines.append(f"- `{s}` ({k} parts): {src}")
    lines += ["", "Melodies and chord sequences are generated scale-aware random walks (no melody from any "
              "score is used).", ""]
    return "\n".join(lines)


def build_demo_corpus(out_dir: str | os.PathLike, *, seed: int = 0, minutes: float | None = None,
                      config: DemoConfig | None = None, backing: str = "auto",
                      songs_root: str | os.PathLike = FRETSONFIRE_DIR,
                      game_music_roots: dict[str, str | os.PathLike] | None = None,
                      singers: tuple[str, ...] | None = None, split_seed: int = 0, overwrite: bool = False,
                      stems: bool = False, progress: ProgressFn | None = None) -> dict:
    """Build the demo corpus in ``out_dir`` (Jamendo layout), deterministically from ``seed``.

    Parameters
    ----------
    out_dir : output folder; built in a temporary sibling and renamed at the end
    seed : generation seed (same seed and parameters -> byte-identical files)
    minutes : target total duration, overrides ``config.minutes``
    config : generation parameters (:class:`DemoConfig`)
    backing : ``"auto"`` (Frets on Fire songs when installed, else synthetic), ``"fretsonfire"``
        (error when absent), ``"synthetic"`` or ``"game-music"`` (the instrumental Debian game
        soundtracks of :data:`GAME_MUSIC`: more backing songs for extra training renderings)
    songs_root : where the Frets on Fire song packs live
    game_music_roots : folder overrides for :func:`find_game_music_songs`
    singers : restrict the singer families (subset of ``"formant", "choir", "festival"``)
    split_seed : seed of the song-level train/valid/test split; kept apart from ``seed`` so corpora
        rendered with other seeds (e.g. a held-out rendering) keep the same unseen test songs
    overwrite : replace an existing corpus in ``out_dir`` (only one with a ``corpus.json``)
    stems : also write each clip's isolated voice and accompaniment (``stems/NAME.voice.EXT`` and
        ``stems/NAME.accomp.EXT``, summing to the mix), for stem remixing in training
        (:func:`xai_core.train.classifier.remix_stems`); the mixes are the same either way
    progress : ``progress(done, total, info)``; returning False (or raising CancelledError) cancels

    Returns
    -------
    dict : the content written to ``corpus.json``
    """
    cfg = config or DemoConfig()
    if minutes is not None:
        cfg = DemoConfig(**{**asdict(cfg), "minutes": float(minutes)})
    if backing not in BACKINGS:
        raise ParameterError(f"backing={backing!r} must be one of {', '.join(map(repr, BACKINGS))}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ParameterError(f"output folder {str(out)!r} is not empty (use overwrite=True / --force)")
        if not (out / "corpus.json").is_file():
            raise ParameterError(f"refusing to overwrite {str(out)!r}: it has no corpus.json, so it is "
                                 "not a demo corpus")
    t0 = time.perf_counter()

    if backing == "game-music":
        songs = find_game_music_songs(game_music_roots)
        if not songs:
            raise DataError("no game music found (apt install " + " ".join(p["package"] for p in GAME_MUSIC.values())
                            + ")")
    else:
        songs = [] if backing == "synthetic" else find_backing_songs(songs_root)
    if not songs:
        if backing == "fretsonfire":
            raise DataError(f"no Frets on Fire songs found under {str(songs_root)!r} "
                            "(apt install fretsonfire-songs-muldjord fretsonfire-songs-sectoid)")
        songs = synthetic_backing_songs()
    families, skipped = available_singers(sample_rate=cfg.sample_rate)
    if singers is not None:
        unknown = set(singers) - {"formant", "choir", "festival"}
        if unknown:
            raise ParameterError(f"unknown singer families {sorted(unknown)}")
        for f in families:
            if f not in singers:
                skipped[f] = "not requested"
        families = [f for f in families if f in singers] or ["formant"]

    plans = _plan(songs, families, cfg, seed)
    if not plans:
        raise DataError("the backing songs are too short for even one clip")
    n_singers = len({p.singer for c in plans for p in c.phrases})
    n_instruments = len({part.instrument for c in plans for part in c.parts})
    total = n_singers + n_instruments + len(plans)
    done = 0

    def tick(info: dict) -> None:
        nonlocal done
        done += 1
        if progress is not None and progress(done, total, info) is False:
            raise CancelledError("demo corpus build cancelled")

    notes: dict = {}
    t_plan = time.perf_counter()
    _render_all(plans, cfg, seed, tick, notes)
    t_render = time.perf_counter()

    tmp = out.parent / f".{out.name}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("audio", "labels", "filelists") + (("stems",) if stems else ()):
        (tmp / sub).mkdir(parents=True)
    # balance on the songs' full durations (not this seed's clips), so every seed splits alike
    split = _split_songs({c.song.slug: c.song.duration for c in plans}, np.random.default_rng([split_seed, 4]), cfg)
    mel = MelConfig(sample_rate=cfg.sample_rate)
    sr = cfg.sample_rate
    files = []
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    singer_phrases: dict[str, int] = {}
    singer_seconds: dict[str, float] = {}
    inst_parts: dict[str, int] = {}
    inst_seconds: dict[str, float] = {}
    import soundfile as sf

    try:
        for c in plans:
            mix, segments, stats, stem_audio = _mix_clip(c, cfg)
            fname = f"{c.name}.{cfg.audio_format}"
            sf.write(str(tmp / "audio" / fname), mix, sr, subtype="PCM_16",
                     format=cfg.audio_format.upper())
            if stems:
                for kind, wave in stem_audio.items():  # float: PCM_16 would add its own rounding noise
                    sf.write(str(tmp / "stems" / f"{c.name}.{kind}.{cfg.audio_format}"), wave, sr,
                             subtype="FLOAT" if cfg.audio_format == "wav" else "PCM_24",
                             format=cfg.audio_format.upper())
            (tmp / "labels" / f"{c.name}.lab").write_text("\n".join(_lab_lines(segments, mix.shape[0], sr)) + "\n")
            lists[split[c.song.slug]].append(fname)
            n_frames = max(0, 1 + (mix.shape[0] - mel.n_fft) // mel.hop_length)
            fl = segments_to_frame_labels([(a / sr, b / sr) for a, b in segments], n_frames, mel)
            used = [p for p, _ in zip(c.phrases, segments, strict=False)]
            for p, (a, b) in zip(used, segments, strict=True):
                singer_phrases[p.singer] = singer_phrases.get(p.singer, 0) + 1
                singer_seconds[p.singer] = singer_seconds.get(p.singer, 0.0) + (b - a) / sr
            files.append({
                "file": fname, "song": c.song.slug, "artist": c.song.artist, "split": split[c.song.slug],
                "source_offset_s": c.offset, "duration_s": round(mix.shape[0] / sr, 4),
                "singers": sorted({p.singer for p in used}), "n_phrases": len(segments),
                "vocal_seconds": round(sum(b - a for a, b in segments) / sr, 4),
                "vocal_fraction": round(sum(b - a for a, b in segments) / max(mix.shape[0], 1), 4),
                "vocal_fraction_frames": round(float(fl.mean()) if n_frames else 0.0, 4),
                "vocal_to_backing_db": round(c.vocal_to_backing_db, 2),
                "guitar_gain_db": round(c.guitar_gain_db, 6), **stats,
            })
            if c.instrument:
                inst_parts[c.instrument] = inst_parts.get(c.instrument, 0) + len(c.parts)
                inst_seconds[c.instrument] = inst_seconds.get(c.instrument, 0.0) + stats["instrument_seconds"]
            tick({"stage": "mix", "file": fname})
        for k, v in lists.items():
            (tmp / "filelists" / k).write_text("".join(f"{x}\n" for x in sorted(v)))
        songs_used = sorted({c.song for c in plans}, key=lambda s: s.slug)
        (tmp / "CREDITS.md").write_text(_credits(songs_used, singer_phrases, skipped, inst_parts))
        dur = sum(f["duration_s"] for f in files)
        voc = sum(f["vocal_seconds"] for f in files)
        corpus = {
            "corpus_version": CORPUS_VERSION, "generator": "xai_core.data.demo.build_demo_corpus",
            "seed": seed, "split_seed": split_seed, "parameters": cfg.to_dict(), "sample_rate": sr,
            **({"stems": ["voice", "accomp"]} if stems else {}),
            "backing": {"kind": ("synthetic" if songs[0].backing_path is None
                                 else "game-music" if backing == "game-music" else "fretsonfire"),
                        "songs": [{"slug": s.slug, "artist": s.artist, "title": s.title,
                                   "licence": s.licence, "duration_s": round(s.duration, 3),
                                   "split": split.get(s.slug), "lead_guitar": s.guitar_path is not None}
                                  for s in songs]},
            "singers": {"families_available": families, "families_skipped": skipped,
                        "identities_used": {s: {"phrases": singer_phrases[s],
                                                "seconds": round(singer_seconds[s], 3)}
                                            for s in sorted(singer_phrases)},
                        "notes": notes},
            "instruments": {"identities_used": {s: {"parts": inst_parts[s], "seconds": round(inst_seconds[s], 3)}
                                                for s in sorted(inst_parts)},
                            "clips_with_instrument": sum(1 for c in plans if c.instrument),
                            "note": "non-vocal hard negatives mixed into the accompaniment"},
            "melodies": "generated scale-aware random walks (major, minor, dorian, pentatonic)",
            "totals": {"files": len(files), "duration_s": round(dur, 3), "vocal_seconds": round(voc, 3),
                       "vocal_fraction": round(voc / max(dur, 1e-9), 4),
                       "per_split": {k: {"files": len(v),
                                         "duration_s": round(sum(f["duration_s"] for f in files
                                                                 if f["split"] == k), 3)}
                                     for k, v in lists.items()}},
            "files": files,
        }
        (tmp / "corpus.json").write_text(json.dumps(corpus, indent=1, sort_keys=True) + "\n")
        t_end = time.perf_counter()
        (tmp / "build_info.json").write_text(json.dumps({
            "seconds_total": round(t_end - t0, 2), "seconds_plan": round(t_plan - t0, 2),
            "seconds_render": round(t_render - t_plan, 2), "seconds_mix_write": round(t_end - t_render, 2),
        }, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return corpus
