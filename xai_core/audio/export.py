"""16-bit PCM WAV export that keeps relative loudness between clips.

Streamlit's ``st.audio`` peak-normalises numpy input, so two inverted examples of different
loudness would sound equally loud.  The UI therefore hands it WAV bytes built here: a *set* of
clips is scaled by one common gain (``wav_bytes_set``), so a quiet example stays quiet.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from xai_core.errors import ParameterError
from xai_core.fileio import atomic_write_bytes

__all__ = ["common_gain", "wav_bytes", "wav_bytes_set", "zip_bytes", "write_wav", "read_wav"]


def _as_mono(wave, name: str = "wave") -> np.ndarray:
    """Validate one clip and return it as float64 ``(n_samples,)``."""
    if hasattr(wave, "detach"):  # torch tensor on any device
        wave = wave.detach().cpu().numpy()
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ParameterError(f"{name} must be mono, shape (n_samples,), got shape {x.shape}")
    if x.size == 0:
        raise ParameterError(f"{name} is empty")
    if not np.isfinite(x).all():
        raise ParameterError(f"{name} contains NaN or infinite samples")
    return x


def common_gain(waves: Sequence, *, peak: float | None = None, headroom_db: float = 1.0) -> float:
    """One gain for a set of clips: the loudest peak lands at ``-headroom_db`` dBFS.

    Parameters
    ----------
    waves : sequence of arrays ``(n_samples,)``
    peak : float, optional
        Reference peak to map to ``-headroom_db`` dBFS instead of the set's own peak (lets
        several sets, e.g. pages of results, share one scale).  Samples above it are clipped.
    headroom_db : float
        dB below full scale for the reference peak (>= 0).

    Returns
    -------
    float
        Gain to multiply every clip with; 1.0 when the set is silent (nothing to scale).
    """
    if headroom_db < 0 or not np.isfinite(headroom_db):
        raise ParameterError(f"headroom_db must be a finite number >= 0, got {headroom_db}")
    if peak is not None and (not np.isfinite(peak) or peak < 0):
        raise ParameterError(f"peak must be a finite number >= 0, got {peak}")
    ref = peak if peak is not None else max((float(np.max(np.abs(w))) for w in waves), default=0.0)
    if ref <= 0:  # silence: never divide by zero, leave it silent
        return 1.0
    return float(10 ** (-headroom_db / 20) / ref)


def _encode(x: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0).astype(np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _check_rate(sample_rate: int) -> int:
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ParameterError(f"sample_rate must be a positive integer in Hz, got {sample_rate}")
    return int(sample_rate)


def wav_bytes(wave, *, sample_rate: int = 22050, peak: float | None = None, headroom_db: float = 1.0) -> bytes:
    """Encode one clip as 16-bit PCM WAV bytes, peak at ``-headroom_db`` dBFS.

    Parameters
    ----------
    wave : array or torch.Tensor, shape ``(n_samples,)``, float in roughly ``[-1, 1]``
    sample_rate : int, Hz
    peak : float, optional
        Reference peak instead of the clip's own (see :func:`common_gain`); use it to keep
        loudness comparable with other clips.
    headroom_db : float

    Returns
    -------
    bytes, a complete RIFF/WAVE file.
    """
    return wav_bytes_set([wave], sample_rate=sample_rate, peak=peak, headroom_db=headroom_db)[0]


def wav_bytes_set(waves: Sequence, *, sample_rate: int = 22050, peak: float | None = None,
                  headroom_db: float = 1.0) -> list[bytes]:
    """Encode a set of clips with ONE common gain, keeping their relative loudness.

    Parameters
    ----------
    waves : sequence of arrays / tensors, each ``(n_samples,)`` (lengths may differ), or a 2-D
        array ``(n_clips, n_samples)``
    sample_rate, peak, headroom_db : see :func:`wav_bytes`

    Returns
    -------
    list of bytes, one WAV file per clip.  A silent clip stays all-zero; samples beyond full
    scale (only possible with an explicit ``peak``) are clipped to ``[-1, 1]``.
    """
    rate = _check_rate(sample_rate)
    clips = [_as_mono(w, f"waves[{i}]") for i, w in enumerate(waves)]
    gain = common_gain(clips, peak=peak, headroom_db=headroom_db)
    return [_encode(c * gain, rate) for c in clips]


def zip_bytes(named_wavs: dict[str, bytes]) -> bytes:
    """Bundle WAV files into one ZIP archive (stored, not deflated: PCM hardly compresses).

    Parameters
    ----------
    named_wavs : mapping file name -> WAV bytes; names must be plain relative file names.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in named_wavs.items():
            if not name or name.startswith(("/", "\\")) or ".." in Path(name).parts:
                raise ParameterError(f"zip member name {name!r} must be a relative path without '..'")
            zf.writestr(name, data)
    return buf.getvalue()


def write_wav(path: str | os.PathLike, wave, *, sample_rate: int = 22050, peak: float | None = None,
              headroom_db: float = 1.0) -> Path:
    """Write one clip atomically (temporary file in the same folder, then ``os.replace``).

    A reader never sees a half-written file, and a failed write leaves no partial file behind.
    Returns the final path.
    """
    path = Path(path)
    data = wav_bytes(wave, sample_rate=sample_rate, peak=peak, headroom_db=headroom_db)
    atomic_write_bytes(path, data)
    return path


def read_wav(data: bytes | str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode WAV bytes or a file to ``(float32 samples (n_samples,), sample_rate)``."""
    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else str(data)
    x, sr = sf.read(src, dtype="float32", always_2d=False)
    return x, int(sr)
