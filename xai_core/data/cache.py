"""On-disk cache of log-mel features, keyed by file content and front-end configuration.

Key = sha256 of the audio file's bytes + sha256 of the canonical JSON of the ``MelConfig`` and the
loader version, so an edited file, a changed configuration or a changed loader never reuses stale
features, while a renamed or copied file does. Entries are ``.npy`` float32 arrays ``(T, n_mels)``
written atomically (temporary file + ``os.replace``), so concurrent builders never read halves.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from xai_core.audio.config import MelConfig
from xai_core.audio.io import load_audio
from xai_core.errors import ParameterError

__all__ = ["LOADER_VERSION", "FeatureCache", "default_cache_dir", "file_sha256", "compute_log_mel"]

LOADER_VERSION = 1  # bump when decoding/resampling/feature code changes its numbers


def default_cache_dir() -> Path:
    """``$XAI_CACHE_DIR`` if set, else ``~/.cache/vocal-xai/features``."""
    env = os.environ.get("XAI_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vocal-xai" / "features"


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def compute_log_mel(path: str | os.PathLike, cfg: MelConfig, *, max_seconds: float = 3600.0) -> np.ndarray:
    """Decode ``path`` and compute its log-mel spectrogram, float32 ``(T, n_mels)``."""
    from xai_core.audio.features import log_mel

    wave = load_audio(path, sample_rate=cfg.sample_rate, max_seconds=max_seconds, allow_silent=True)
    return log_mel(wave, cfg).numpy().astype(np.float32, copy=False)  # (T, M)


class FeatureCache:
    """Content-addressed ``.npy`` store of log-mel features.

    Parameters
    ----------
    cache_dir : folder of the entries (created on first write); default :func:`default_cache_dir`
    enabled : False computes every time and writes nothing (for read-only environments)
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, enabled: bool = True) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    @staticmethod
    def config_key(cfg: MelConfig) -> str:
        blob = json.dumps({"mel": cfg.to_dict(), "loader_version": LOADER_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def path_for(self, audio_path: str | os.PathLike, cfg: MelConfig) -> Path:
        return self.cache_dir / f"{file_sha256(audio_path)[:40]}_{self.config_key(cfg)[:16]}.npy"

    def log_mel(self, audio_path: str | os.PathLike, cfg: MelConfig = MelConfig()) -> np.ndarray:
        """Features of ``audio_path``, float32 ``(T, n_mels)``; computed once, then read back."""
        p = Path(audio_path)
        if not p.is_file():
            raise ParameterError(f"audio file {str(p)!r} does not exist")
        if not self.enabled:
            self.misses += 1
            return compute_log_mel(p, cfg)
        entry = self.path_for(p, cfg)
        if entry.is_file():
            try:
                feats = np.load(entry, allow_pickle=False)
                if feats.ndim == 2 and feats.shape[1] == cfg.n_mels and feats.dtype == np.float32:
                    self.hits += 1
                    return feats
            except (OSError, ValueError):
                pass  # unreadable entry (e.g. disk trouble): recompute and overwrite it
        self.misses += 1
        feats = compute_log_mel(p, cfg)
        self._atomic_save(entry, feats)
        return feats

    def _atomic_save(self, entry: Path, feats: np.ndarray) -> None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=entry.stem + ".", suffix=".tmp", dir=entry.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, feats, allow_pickle=False)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
