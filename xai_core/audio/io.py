"""Audio loading with validation: files and uploaded bytes -> mono float32 at a target rate.

Every problem a user can cause (missing file, corrupt data, empty or silent audio, NaNs,
excessive length) raises :class:`~xai_core.errors.ParameterError` naming the file and the problem,
so the UI can show the message as is.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from xai_core.errors import ParameterError

__all__ = ["AUDIO_EXTENSIONS", "load_audio", "load_audio_bytes", "resample"]

# Extensions accepted by the data sources and the upload widget.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")

SILENCE_PEAK = 1e-6  # peak amplitude below which a signal counts as silent
SAMPLE_RATES = (1000, 384_000)  # Hz accepted from a file's header (telephone to high-resolution audio)
PCM_BITS = (8, 16, 24, 32, 64)  # bits per sample of uncompressed WAV data


def _check_rate(sample_rate) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not SAMPLE_RATES[0] <= sample_rate <= SAMPLE_RATES[1]:
        raise ParameterError(f"sample_rate={sample_rate!r} must be an integer number of Hz in "
                             f"[{SAMPLE_RATES[0]}, {SAMPLE_RATES[1]}]")


def check_wav_header(head: bytes, *, name: str) -> None:
    """Refuse a RIFF/WAVE header that libsndfile would decode into the wrong number of samples.

    libsndfile accepts, for example, a header claiming 7 bits per sample and then reads a 3 s file as
    6 s of noise; here a PCM or float ``fmt `` chunk must have a standard sample width, a block
    alignment of ``channels * bits / 8``, a byte rate of ``rate * block_align`` and a sample rate in
    :data:`SAMPLE_RATES`. Other containers and compressed WAV codecs are left to libsndfile.
    """
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            if size < 16 or pos + 24 > len(head):
                raise ParameterError(f"audio file {name!r} has a truncated WAV format chunk")
            fmt, ch, sr, byte_rate, align, bits = struct.unpack("<HHIIHH", head[pos + 8:pos + 24])
            if fmt not in (1, 3, 0xFFFE):  # PCM, IEEE float, extensible; compressed codecs: libsndfile decides
                return
            problems = []
            if not 1 <= ch <= 64:
                problems.append(f"{ch} channels")
            if bits not in PCM_BITS:
                problems.append(f"{bits} bits per sample (expected one of {PCM_BITS})")
            elif align != ch * bits // 8 or byte_rate != sr * align:
                problems.append(f"block alignment {align} / byte rate {byte_rate} inconsistent with {ch} channels "
                                f"of {bits} bits at {sr} Hz")
            if not SAMPLE_RATES[0] <= sr <= SAMPLE_RATES[1]:
                problems.append(f"a sample rate of {sr} Hz (expected {SAMPLE_RATES[0]}-{SAMPLE_RATES[1]})")
            if problems:
                raise ParameterError(f"audio file {name!r} has an invalid WAV header: {'; '.join(problems)}")
            return
        pos += 8 + size + (size & 1)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D signal with libsoxr (high quality; librosa's own default backend).

    soxr is called directly rather than through ``librosa.resample`` because the latter's
    first call costs about a second of import/JIT work, which dominates short uploads.
    """
    if orig_sr == target_sr:
        return wave
    import soxr

    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def _validate(wave: np.ndarray, *, name: str, sample_rate: int, allow_silent: bool) -> np.ndarray:
    if wave.size == 0:
        raise ParameterError(f"audio file {name!r} is empty (0 samples)")
    if not np.all(np.isfinite(wave)):
        bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise ParameterError(f"audio file {name!r} contains {bad} non-finite samples (NaN or inf)")
    peak = float(np.max(np.abs(wave)))
    if not allow_silent and peak < SILENCE_PEAK:
        raise ParameterError(
            f"audio file {name!r} is silent (peak {peak:.2e} < {SILENCE_PEAK:g}); "
            "pass allow_silent=True to accept it"
        )
    return wave


def _decode(source, *, name: str, sample_rate: int, max_seconds: float, offset: float,
            duration: float | None) -> np.ndarray:
    """Decode with libsndfile (wav, flac, ogg, mp3 since libsndfile 1.1) into mono float32."""
    import soundfile as sf

    if not (isinstance(offset, (int, float)) and math.isfinite(offset) and offset >= 0):
        raise ParameterError(f"offset={offset!r} for {name!r} must be a finite number of seconds >= 0")
    if duration is not None and not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise ParameterError(f"duration={duration!r} for {name!r} must be a finite number of seconds > 0")
    if isinstance(source, io.BytesIO):
        check_wav_header(source.getvalue()[:65536], name=name)
    else:
        with open(source, "rb") as fh:
            check_wav_header(fh.read(65536), name=name)
    try:
        with sf.SoundFile(source) as f:
            sr = f.samplerate
            total = f.frames
            if not SAMPLE_RATES[0] <= sr <= SAMPLE_RATES[1]:
                raise ParameterError(f"audio file {name!r} declares a sample rate of {sr} Hz; expected "
                                     f"{SAMPLE_RATES[0]}-{SAMPLE_RATES[1]} Hz")
            start = int(round(offset * sr))
            stop = total if duration is None else min(total, start + int(round(duration * sr)))
            n = max(0, stop - start)
            if n > max_seconds * sr:
                raise ParameterError(
                    f"audio file {name!r} is {n / sr:.1f} s long, more than max_seconds={max_seconds:g}"
                )
            if start:
                f.seek(min(start, total))
            data = f.read(n, dtype="float32", always_2d=True)  # (n, channels)
    except ParameterError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ParameterError(f"cannot decode audio file {name!r}: {exc}") from exc
    if data.shape[0] < n:
        # libsndfile returns short reads for truncated files instead of raising.
        if data.shape[0] == 0 and n > 0:
            raise ParameterError(f"cannot decode audio file {name!r}: no samples could be read (truncated?)")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]  # (n,)
    if not np.all(np.isfinite(mono)):
        # check before resampling, which would smear NaNs over the whole file
        _validate(mono, name=name, sample_rate=sr, allow_silent=True)
    return resample(np.ascontiguousarray(mono), sr, sample_rate)


def load_audio(path: str | os.PathLike, *, sample_rate: int = 22050, max_seconds: float = 3600.0,
               allow_silent: bool = False, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Load an audio file as mono float32 at ``sample_rate``.

    Parameters
    ----------
    path : path to a wav, flac, ogg or mp3 file
    sample_rate : target rate in Hz (resampled with soxr when the file differs)
    max_seconds : longest accepted duration in seconds (of the part read)
    allow_silent : accept all-silent audio (peak below 1e-6) instead of raising
    offset, duration : read only ``duration`` seconds starting at ``offset`` seconds
        (``duration=None`` reads to the end)

    Returns
    -------
    np.ndarray, shape ``(n_samples,)``, float32, mono

    Raises
    ------
    ParameterError
        missing/unreadable/corrupt file, 0 samples, silent audio, non-finite samples, or
        longer than ``max_seconds``; the message names the file.
    """
    _check_rate(sample_rate)
    if not (isinstance(max_seconds, (int, float)) and math.isfinite(max_seconds) and max_seconds > 0):
        raise ParameterError(f"max_seconds={max_seconds!r} must be a finite number of seconds > 0")
    p = Path(path)
    if not p.exists():
        raise ParameterError(f"audio file {str(p)!r} does not exist")
    if not p.is_file():
        raise ParameterError(f"audio path {str(p)!r} is not a file")
    if not os.access(p, os.R_OK):
        raise ParameterError(f"audio file {str(p)!r} is not readable (permission denied)")
    wave = _decode(str(p), name=str(p), sample_rate=sample_rate, max_seconds=max_seconds,
                   offset=offset, duration=duration)
    return _validate(wave, name=str(p), sample_rate=sample_rate, allow_silent=allow_silent)


def load_audio_bytes(data: bytes, *, name: str = "upload", sample_rate: int = 22050,
                     max_seconds: float = 3600.0, allow_silent: bool = False) -> np.ndarray:
    """Decode an uploaded file's bytes; same checks and result as :func:`load_audio`.

    ``name`` (the uploaded file name) is used in error messages and, for its extension, when the
    bytes have to go through a temporary file (formats libsndfile cannot sniff from memory).
    """
    _check_rate(sample_rate)
    if not data:
        raise ParameterError(f"audio file {name!r} is empty (0 bytes)")
    try:
        wave = _decode(io.BytesIO(data), name=name, sample_rate=sample_rate, max_seconds=max_seconds,
                       offset=0.0, duration=None)
    except ParameterError as first:
        if "max_seconds" in str(first) or "non-finite" in str(first):
            raise
        # libsndfile detects mp3 only from a seekable file with a matching extension
        suffix = Path(name).suffix.lower() or ".bin"
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / f"upload{suffix}"
            tmp_path.write_bytes(data)
            try:
                wave = _decode(str(tmp_path), name=name, sample_rate=sample_rate,
                               max_seconds=max_seconds, offset=0.0, duration=None)
            except ParameterError:
                raise first from None
    return _validate(wave, name=name, sample_rate=sample_rate, allow_silent=allow_silent)
