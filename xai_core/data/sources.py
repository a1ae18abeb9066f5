"""Dataset sources -> :class:`Track` (log-mel features with per-frame vocal labels).

Three layouts are read:

* Jamendo (and the demo corpus): ``ROOT/audio/*.{ogg,mp3,wav,flac}``, ``ROOT/labels/NAME.lab`` with
  lines ``start end sing|nosing`` in seconds, optional ``ROOT/filelists/{train,valid,test}``.
* MUSDB18-HQ: ``ROOT/{train,test}/TRACK/mixture.wav`` and ``vocals.wav``; a frame is vocal when the
  vocal stem's frame RMS exceeds a threshold in dB.
* a folder of audio plus a CSV of ``file,start,end,label`` rows.

Each source first lists :class:`TrackEntry` objects (cheap: no decoding), then
:func:`load_tracks` computes features through the :class:`~xai_core.data.cache.FeatureCache`.
Per-frame labels use the frame centre times of :meth:`MelConfig.frame_times`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xai_core.audio.config import MelConfig
from xai_core.audio.io import AUDIO_EXTENSIONS, load_audio
from xai_core.data.cache import FeatureCache
from xai_core.errors import CancelledError, DataError, ParameterError

__all__ = [
    "Track", "TrackEntry", "SPLITS", "parse_lab", "segments_to_frame_labels", "read_jamendo_index",
    "jamendo_tracks", "musdb_index", "musdb_tracks", "csv_index", "csv_tracks", "load_tracks",
]

SPLITS = ("train", "valid", "test")
_POS = {"sing", "1", "vocal", "voice", "singing"}
_NEG = {"nosing", "0", "novocal", "no-vocal", "non-vocal", "instrumental"}

ProgressFn = Callable[[int, int, dict], "bool | None"]


@dataclass(eq=False)
class Track:
    """One labelled recording.

    Attributes
    ----------
    name : track name (audio file stem)
    features : torch.Tensor, shape ``(T, n_mels)``, float32 natural-log mel (un-normalised)
    labels : torch.Tensor, shape ``(T,)``, float32 in {0, 1}: 1 where singing voice is present
    audio_path : the source audio file (the mixture)
    split : "train", "valid", "test" or None when the dataset defines none
    voice, accomp : optional log-mel ``(T, n_mels)`` of the isolated voice and of the accompaniment
        (loaded with ``load_tracks(..., stems=True)`` where the dataset has stems); their
        magnitudes add up to roughly the mixture's
    """

    name: str
    features: torch.Tensor
    labels: torch.Tensor
    audio_path: Path
    split: str | None = None
    voice: torch.Tensor | None = None
    accomp: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise ParameterError(f"Track {self.name!r}: features must be (T, n_mels), got {tuple(self.features.shape)}")
        if self.labels.shape != self.features.shape[:1]:
            raise ParameterError(f"Track {self.name!r}: labels {tuple(self.labels.shape)} do not match "
                                 f"{self.features.shape[0]} frames")
        for kind in ("voice", "accomp"):
            stem = getattr(self, kind)
            if stem is not None and stem.shape != self.features.shape:
                raise ParameterError(f"Track {self.name!r}: {kind} stem features {tuple(stem.shape)} do not match "
                                     f"the mixture's {tuple(self.features.shape)}")

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def vocal_fraction(self) -> float:
        return float(self.labels.mean()) if self.n_frames else 0.0


@dataclass(frozen=True)
class TrackEntry:
    """A track before feature extraction: audio file plus how to label its frames.

    ``segments`` are vocal intervals in seconds (Jamendo, CSV); ``vocal_stem`` is the isolated
    vocal track (MUSDB), labelled by energy with ``threshold_db``/``relative``.
    """

    name: str
    audio_path: Path
    split: str | None = None
    segments: tuple[tuple[float, float], ...] = ()
    duration: float = 0.0  # seconds, from the labels (or the file header)
    vocal_stem: Path | None = None
    stems: tuple[Path, Path] | None = None  # (voice, accompaniment) audio summing to the mixture
    threshold_db: float = -30.0
    relative: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def vocal_seconds(self) -> float:
        return float(sum(b - a for a, b in self.segments))


def _label_value(tok: str, where: str) -> bool:
    t = tok.strip().lower()
    if t in _POS:
        return True
    if t in _NEG:
        return False
    raise DataError(f"{where}: label {tok!r} is neither sing/1 nor nosing/0")


def parse_lab(path: str | os.PathLike) -> tuple[list[tuple[float, float]], float]:
    """Read a Jamendo ``.lab`` file.

    Returns
    -------
    segments : vocal intervals ``[(start, end), ...]`` in seconds, merged and sorted
    end : the largest end time in the file (the annotated duration)
    """
    p = Path(path)
    segs, last = [], 0.0
    for i, line in enumerate(p.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        where = f"{p}:{i}"
        if len(parts) < 3:
            raise DataError(f"{where}: expected 'start end sing|nosing', got {line!r}")
        try:
            a, b = float(parts[0]), float(parts[1])
        except ValueError as exc:
            raise DataError(f"{where}: bad time in {line!r}") from exc
        if not (np.isfinite(a) and np.isfinite(b)) or b < a or a < 0:
            raise DataError(f"{where}: bad interval {a}..{b}")
        last = max(last, b)
        if _label_value(parts[2], where):
            segs.append((a, b))
    return _merge(segs), last


def _merge(segs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(segs):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def segments_to_frame_labels(segments, n_frames: int, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """Per-frame labels ``(n_frames,)`` float32: 1 where the frame centre lies in a vocal segment."""
    times = cfg.frame_times(n_frames)  # (T,) seconds
    lab = np.zeros(n_frames, np.float32)
    for a, b in segments:
        lab[(times >= a) & (times < b)] = 1.0
    return lab


def _audio_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_EXTENSIONS}


def read_jamendo_index(root: str | os.PathLike, *, split: str | None = None) -> list[TrackEntry]:
    """List the tracks of a Jamendo-layout folder (no decoding).

    Parameters
    ----------
    root : folder with ``audio/``, ``labels/`` and optionally ``filelists/``
    split : keep only this split ("train", "valid", "test"); requires ``filelists/``
    """
    root = Path(root)
    audio_dir, label_dir = root / "audio", root / "labels"
    if not audio_dir.is_dir() or not label_dir.is_dir():
        raise DataError(f"{str(root)!r} is not a Jamendo-layout folder (needs audio/ and labels/)")
    if split is not None and split not in SPLITS:
        raise ParameterError(f"split={split!r} must be one of {SPLITS}")
    files = _audio_files(audio_dir)
    split_of: dict[str, str] = {}
    lists = root / "filelists"
    if lists.is_dir():
        for s in SPLITS:
            fl = lists / s
            if not fl.is_file():
                continue
            for line in fl.read_text().splitlines():
                line = line.strip()
                if not line:
                    continue
                if not (audio_dir / line).is_file():
                    raise DataError(f"{fl}: listed file {line!r} is not in {audio_dir}")
                split_of[Path(line).stem] = s
    elif split is not None:
        raise DataError(f"{str(root)!r} has no filelists/ folder, so split={split!r} is undefined")
    entries = []
    stem_pairs = _stem_pairs(root / "stems")
    for stem, path in files.items():
        lab = label_dir / f"{stem}.lab"
        if not lab.is_file():
            raise DataError(f"no label file {lab.name!r} for {path.name!r} in {label_dir}")
        s = split_of.get(stem)
        if split is not None and s != split:
            continue
        segs, end = parse_lab(lab)
        entries.append(TrackEntry(stem, path, s, tuple(segs), end, stems=stem_pairs.get(stem)))
    return entries


def _stem_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """``{NAME: (voice, accomp)}`` for the files ``folder/NAME.voice.EXT`` and ``NAME.accomp.EXT``
    (names with both stems only; one listing of the folder for the whole corpus)."""
    found: dict[str, dict[str, Path]] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            name, _, kind = p.stem.rpartition(".")
            if p.suffix.lower() in AUDIO_EXTENSIONS and kind in ("voice", "accomp") and name:
                found.setdefault(name, {}).setdefault(kind, p)
    return {name: (k["voice"], k["accomp"]) for name, k in found.items() if len(k) == 2}


def musdb_index(root: str | os.PathLike, *, subsets: tuple[str, ...] = ("train", "test"),
                threshold_db: float = -30.0, relative: bool = True) -> list[TrackEntry]:
    """List MUSDB18-HQ tracks ``ROOT/{train,test}/TRACK/{mixture,vocals}.wav``; split = subset."""
    root = Path(root)
    entries = []
    for sub in subsets:
        d = root / sub
        if not d.is_dir():
            raise DataError(f"MUSDB18-HQ folder {str(d)!r} does not exist")
        for t in sorted(p for p in d.iterdir() if p.is_dir()):
            mix, voc = t / "mixture.wav", t / "vocals.wav"
            if not mix.is_file() or not voc.is_file():
                raise DataError(f"MUSDB18-HQ track {str(t)!r} lacks mixture.wav or vocals.wav")
            entries.append(TrackEntry(t.name, mix, sub, vocal_stem=voc, threshold_db=threshold_db,
                                      relative=relative))
    return entries


def csv_index(csv_path: str | os.PathLike, *, audio_root: str | os.PathLike | None = None) -> list[TrackEntry]:
    """List tracks from a CSV of ``file,start,end,label`` rows (header optional).

    ``file`` is relative to ``audio_root`` (default: the CSV's folder); label is sing/nosing or 1/0.
    Files appear in first-mention order; a file with only ``nosing`` rows is fully non-vocal.
    """
    csv_path = Path(csv_path)
    base = Path(audio_root) if audio_root is not None else csv_path.parent
    order: list[str] = []
    segs: dict[str, list[tuple[float, float]]] = {}
    ends: dict[str, float] = {}
    with open(csv_path, newline="") as f:
        for i, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#"):
                continue
            if i == 1 and row[0].strip().lower() == "file":
                continue
            where = f"{csv_path}:{i}"
            if len(row) < 4:
                raise DataError(f"{where}: expected file,start,end,label, got {row!r}")
            name = row[0].strip()
            try:
                a, b = float(row[1]), float(row[2])
            except ValueError as exc:
                raise DataError(f"{where}: bad time in {row!r}") from exc
            if b < a or a < 0:
                raise DataError(f"{where}: bad interval {a}..{b}")
            if name not in segs:
                if not (base / name).is_file():
                    raise DataError(f"{where}: audio file {str(base / name)!r} does not exist")
                order.append(name)
                segs[name] = []
                ends[name] = 0.0
            ends[name] = max(ends[name], b)
            if _label_value(row[3], where):
                segs[name].append((a, b))
    return [TrackEntry(Path(n).stem, base / n, None, tuple(_merge(segs[n])), ends[n]) for n in order]


def _stem_labels(entry: TrackEntry, n_frames: int, cfg: MelConfig) -> np.ndarray:
    """Vocal-stem energy labels: frame RMS (same framing as the STFT) above the threshold."""
    v = load_audio(entry.vocal_stem, sample_rate=cfg.sample_rate, allow_silent=True).astype(np.float64)
    need = (n_frames - 1) * cfg.hop_length + cfg.n_fft
    v = np.pad(v, (0, max(0, need - v.shape[0])))
    frames = np.lib.stride_tricks.sliding_window_view(v, cfg.n_fft)[:: cfg.hop_length][:n_frames]  # (T, n_fft)
    rms = np.sqrt(np.mean(frames**2, axis=1))  # (T,)
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    if entry.relative:
        db = db - (db.max() if db.size else 0.0)
    return (db > entry.threshold_db).astype(np.float32)


def load_tracks(entries: list[TrackEntry], *, cfg: MelConfig = MelConfig(),
                cache: FeatureCache | None = None, stems: bool = False,
                progress: ProgressFn | None = None) -> list[Track]:
    """Compute (or read from the cache) the features and labels of ``entries``.

    With ``stems=True`` the voice and accompaniment stems are loaded too (``Track.voice`` /
    ``Track.accomp``); every entry must have them (:class:`~xai_core.errors.DataError` otherwise).
    """
    cache = cache if cache is not None else FeatureCache()
    if stems:
        lacking = [e.name for e in entries if e.stems is None]
        if lacking:
            raise DataError(f"{len(lacking)} of {len(entries)} tracks have no voice/accompaniment stems "
                            f"(e.g. {lacking[0]!r}); a demo corpus has them when built with --stems")
    tracks = []
    for k, e in enumerate(entries):
        feats = cache.log_mel(e.audio_path, cfg)  # (T, M)
        n = feats.shape[0]
        if e.vocal_stem is not None:
            labels = _stem_labels(e, n, cfg)
        else:
            labels = segments_to_frame_labels(e.segments, n, cfg)
        voice = accomp = None
        if stems:
            voice, accomp = (torch.from_numpy(_fit_frames(cache.log_mel(p, cfg), n, e.name)) for p in e.stems)
        tracks.append(Track(e.name, torch.from_numpy(feats), torch.from_numpy(labels), e.audio_path, e.split,
                            voice=voice, accomp=accomp))
        if progress is not None and progress(k + 1, len(entries), {"track": e.name}) is False:
            raise CancelledError("loading tracks cancelled")
    return tracks


def _fit_frames(stem: np.ndarray, n: int, name: str) -> np.ndarray:
    """A stem's features cut to the mixture's ``n`` frames (decoders may differ by a frame)."""
    if abs(stem.shape[0] - n) > 1:
        raise DataError(f"track {name!r}: a stem has {stem.shape[0]} frames, the mixture {n}")
    if stem.shape[0] < n:
        stem = np.concatenate([stem, np.full((n - stem.shape[0], stem.shape[1]), stem.min(), stem.dtype)])
    return stem[:n]


def jamendo_tracks(root: str | os.PathLike, *, split: str | None = None, cfg: MelConfig = MelConfig(),
                   cache: FeatureCache | None = None, stems: bool = False,
                   progress: ProgressFn | None = None) -> list[Track]:
    """Tracks of a Jamendo-layout folder (e.g. the demo corpus), optionally one split; ``stems=True``
    also loads the ``stems/NAME.voice.*`` and ``stems/NAME.accomp.*`` features (see :func:`load_tracks`)."""
    return load_tracks(read_jamendo_index(root, split=split), cfg=cfg, cache=cache, stems=stems,
                       progress=progress)


def musdb_tracks(root: str | os.PathLike, *, subsets: tuple[str, ...] = ("train", "test"),
                 threshold_db: float = -30.0, relative: bool = True, cfg: MelConfig = MelConfig(),
                 cache: FeatureCache | None = None, progress: ProgressFn | None = None) -> list[Track]:
    """MUSDB18-HQ tracks labelled by vocal-stem energy.

    Parameters
    ----------
    threshold_db : a frame is vocal when the vocal stem's frame RMS exceeds this level, in dB
        relative to the stem's loudest frame (``relative=True``) or in dBFS (``relative=False``)
    """
    return load_tracks(musdb_index(root, subsets=subsets, threshold_db=threshold_db, relative=relative),
                       cfg=cfg, cache=cache, progress=progress)


def csv_tracks(csv_path: str | os.PathLike, *, audio_root: str | os.PathLike | None = None,
               cfg: MelConfig = MelConfig(), cache: FeatureCache | None = None,
               progress: ProgressFn | None = None) -> list[Track]:
    """Tracks of a folder of audio described by a ``file,start,end,label`` CSV."""
    return load_tracks(csv_index(csv_path, audio_root=audio_root), cfg=cfg, cache=cache, progress=progress)
