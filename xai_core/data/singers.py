"""Synthetic singers for the offline demo corpus.

Three families, so a detector trained on the corpus has to learn voice cues (harmonic series
under formants, vibrato, consonant onsets) rather than one synthesiser's artefacts:

* :class:`FormantSinger` - pure numpy/scipy source-filter voice: Rosenberg glottal pulses with
  jitter, shimmer and vibrato, aspiration noise, a cascade of formant resonators per vowel and
  noise-burst consonants. Always available.
* :class:`ChoirSinger` - sampled choir vowels ("Choir Aahs" / "Voice Oohs") of a General MIDI
  SoundFont rendered with the ``fluidsynth`` command-line program.
* :class:`FestivalSinger` - Festival's singing mode (``text2wave -mode singing``), diphone speech
  pitched to the notes.

Non-vocal hard negatives live here too: :class:`FluidInstrument` (bowed strings, winds, organs,
synth leads and pads of a GM SoundFont) and :class:`AdditiveInstrument` (a harmonic tone with
vibrato but no formants). The demo corpus mixes them into the accompaniment, labelled non-vocal.

Every singer renders a :class:`Phrase` (a list of notes) to mono float32 audio at a given rate
whose first and last samples are the phrase on- and offset (leading/trailing silence trimmed), so
the corpus labels can be exact.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.signal

from xai_core.errors import ParameterError

__all__ = [
    "VOICE_RANGES", "Note", "Phrase", "FormantSinger", "ChoirSinger", "FestivalSinger",
    "FluidInstrument", "AdditiveInstrument", "LEAD_PROGRAMS", "PAD_PROGRAMS", "Event",
    "available_singers", "find_soundfonts", "midi_to_hz", "trim_silence", "write_midi",
    "render_fluidsynth", "phrase_events", "part_seconds",
]

# Comfortable MIDI pitch range of each voice type (lowest, highest).
VOICE_RANGES: dict[str, tuple[int, int]] = {
    "bass": (41, 62),  # F2 - D4
    "tenor": (48, 69),  # C3 - A4
    "alto": (55, 74),  # G3 - D5
    "soprano": (60, 81),  # C4 - A5
}

# Formant frequencies (Hz), levels (dB) and bandwidths (Hz) of sung vowels, after the classic
# Csound "formant values" table (Appendix of the Csound manual, after Sundberg).
_FORMANTS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]]] = {
    "soprano": {
        "a": ((800, 1150, 2900, 3900, 4950), (0, -6, -32, -20, -50), (80, 90, 120, 130, 140)),
        "e": ((350, 2000, 2800, 3600, 4950), (0, -20, -15, -40, -56), (60, 100, 120, 150, 200)),
        "i": ((270, 2140, 2950, 3900, 4950), (0, -12, -26, -26, -44), (60, 90, 100, 120, 120)),
        "o": ((450, 800, 2830, 3800, 4950), (0, -11, -22, -22, -50), (70, 80, 100, 130, 135)),
        "u": ((325, 700, 2700, 3800, 4950), (0, -16, -35, -40, -60), (50, 60, 170, 180, 200)),
    },
    "alto": {
        "a": ((800, 1150, 2800, 3500, 4950), (0, -4, -20, -36, -60), (80, 90, 120, 130, 140)),
        "e": ((400, 1600, 2700, 3300, 4950), (0, -24, -30, -35, -60), (60, 80, 120, 150, 200)),
        "i": ((350, 1700, 2700, 3700, 4950), (0, -20, -30, -36, -60), (50, 100, 120, 150, 200)),
        "o": ((450, 800, 2830, 3500, 4950), (0, -9, -16, -28, -55), (70, 80, 100, 130, 135)),
        "u": ((325, 700, 2530, 3500, 4950), (0, -12, -30, -40, -64), (50, 60, 170, 180, 200)),
    },
    "tenor": {
        "a": ((650, 1080, 2650, 2900, 3250), (0, -6, -7, -8, -22), (80, 90, 120, 130, 140)),
        "e": ((400, 1700, 2600, 3200, 3580), (0, -14, -12, -14, -20), (70, 80, 100, 120, 120)),
        "i": ((290, 1870, 2800, 3250, 3540), (0, -15, -18, -20, -30), (40, 90, 100, 120, 120)),
        "o": ((400, 800, 2600, 2800, 3000), (0, -10, -12, -12, -26), (40, 80, 100, 120, 120)),
        "u": ((350, 600, 2700, 2900, 3300), (0, -20, -17, -14, -26), (40, 60, 100, 120, 120)),
    },
    "bass": {
        "a": ((600, 1040, 2250, 2450, 2750), (0, -7, -9, -9, -20), (60, 70, 110, 120, 130)),
        "e": ((400, 1620, 2400, 2800, 3100), (0, -12, -9, -12, -18), (40, 80, 100, 120, 120)),
        "i": ((250, 1750, 2600, 3050, 3340), (0, -30, -16, -22, -28), (60, 90, 100, 120, 120)),
        "o": ((400, 750, 2400, 2600, 2900), (0, -11, -21, -20, -40), (40, 80, 100, 120, 120)),
        "u": ((350, 600, 2400, 2675, 2950), (0, -20, -32, -28, -36), (40, 80, 100, 120, 120)),
    },
}
VOWELS = ("a", "e", "i", "o", "u")
CONSONANTS = ("", "s", "t", "k", "p", "l", "m", "n", "sh", "h", "d")


def midi_to_hz(p: float) -> float:
    """Equal-tempered frequency in Hz of MIDI pitch ``p`` (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((p - 69.0) / 12.0)


@dataclass(frozen=True)
class Note:
    """One sung note: MIDI ``pitch``, ``duration`` in seconds, a syllable (consonant + vowel)."""

    pitch: int
    duration: float
    vowel: str = "a"
    consonant: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ParameterError(f"Note.pitch={self.pitch} must be a MIDI pitch 0..127")
        if not self.duration > 0:
            raise ParameterError(f"Note.duration={self.duration} must be positive seconds")
        if self.vowel not in VOWELS:
            raise ParameterError(f"Note.vowel={self.vowel!r} not in {VOWELS}")
        if self.consonant not in CONSONANTS:
            raise ParameterError(f"Note.consonant={self.consonant!r} not in {CONSONANTS}")

    @property
    def syllable(self) -> str:
        return self.consonant + self.vowel


@dataclass(frozen=True)
class Phrase:
    """A legato phrase of notes (no rests inside)."""

    notes: tuple[Note, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.notes:
            raise ParameterError("Phrase.notes must not be empty")

    @property
    def duration(self) -> float:
        return float(sum(n.duration for n in self.notes))


def trim_silence(wave: np.ndarray, *, sample_rate: int, threshold_db: float = -50.0,
                 win_seconds: float = 0.005, fade_seconds: float = 0.005) -> np.ndarray:
    """Cut leading/trailing parts quieter than ``threshold_db`` relative to the peak window.

    The envelope is the RMS over ``win_seconds`` windows; short linear fades avoid clicks.
    Returns ``wave[first:last]`` (an empty array for an all-silent input).
    """
    win = max(1, int(win_seconds * sample_rate))
    n = wave.shape[0] // win
    if n == 0:
        return wave[:0]
    rms = np.sqrt(np.mean(wave[: n * win].reshape(n, win).astype(np.float64) ** 2, axis=1))  # (n,)
    peak = rms.max()
    if peak <= 0:
        return wave[:0]
    active = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-12) / peak) > threshold_db)
    out = wave[active[0] * win: (active[-1] + 1) * win].astype(np.float32, copy=True)
    nf = min(int(fade_seconds * sample_rate), out.shape[0] // 2)
    if nf > 0:
        ramp = np.linspace(0.0, 1.0, nf, endpoint=False, dtype=np.float32)
        out[:nf] *= ramp
        out[-nf:] *= ramp[::-1]
    return out


# ----------------------------------------------------------------------------------------------
# (a) numpy source-filter singer


def _resonator_sos(freq: float, bw: float, sr: float) -> np.ndarray:
    """Klatt two-pole resonator with unit gain at DC, as one second-order section (6,)."""
    r = np.exp(-np.pi * bw / sr)
    b1 = 2 * r * np.cos(2 * np.pi * freq / sr)
    b2 = -r * r
    a0 = 1 - b1 - b2
    return np.array([a0, 0.0, 0.0, 1.0, -b1, -b2])


def _smooth_noise(rng: np.random.Generator, n: int, sr: float, cutoff: float) -> np.ndarray:
    """Unit-variance low-pass noise (n,) with the given cutoff in Hz."""
    if n == 0:
        return np.zeros(0)
    sos = scipy.signal.butter(2, min(cutoff / (sr / 2), 0.99), output="sos")
    x = scipy.signal.sosfilt(sos, rng.standard_normal(n + 2048))[2048:]
    return x / (x.std() + 1e-12)


@dataclass(frozen=True)
class FormantSinger:
    """Source-filter singing voice in numpy.

    Parameters
    ----------
    voice : one of ``VOICE_RANGES`` (bass, tenor, alto, soprano); selects formants
    vibrato_rate : Hz (singers: 5-6 Hz)
    vibrato_depth : cents, peak deviation
    jitter : relative std of slow f0 perturbation (0.005 = 0.5 %)
    shimmer : relative std of slow amplitude perturbation
    breathiness : level of aspiration noise relative to the voiced source (0..1)
    open_quotient : fraction of the glottal period the glottis is opening (Rosenberg ``Tp``)
    formant_shift : multiplies all formant frequencies (vocal-tract length variation)
    """

    voice: str = "tenor"
    vibrato_rate: float = 5.5
    vibrato_depth: float = 50.0
    jitter: float = 0.006
    shimmer: float = 0.04
    breathiness: float = 0.15
    open_quotient: float = 0.45
    formant_shift: float = 1.0

    def __post_init__(self) -> None:
        if self.voice not in _FORMANTS:
            raise ParameterError(f"FormantSinger.voice={self.voice!r} not in {sorted(_FORMANTS)}")
        if not 0 < self.open_quotient < 0.8:
            raise ParameterError(f"FormantSinger.open_quotient={self.open_quotient} must be in (0, 0.8)")
        if not 0 <= self.breathiness <= 1:
            raise ParameterError(f"FormantSinger.breathiness={self.breathiness} must be in [0, 1]")
        if not 0.7 <= self.formant_shift <= 1.4:
            raise ParameterError(f"FormantSinger.formant_shift={self.formant_shift} must be in [0.7, 1.4]")

    @property
    def name(self) -> str:
        return f"formant-{self.voice}"

    def render(self, phrase: Phrase, *, sample_rate: int = 22050,
               rng: np.random.Generator | None = None) -> np.ndarray:
        """Render ``phrase`` to mono float32 ``(n,)`` at ``sample_rate``, peak about 0.5.

        The source is synthesised at twice the output rate and decimated, which keeps the
        aliasing of the glottal closure's harmonics out of the band.
        """
        rng = np.random.default_rng(0) if rng is None else rng
        sr = 2 * sample_rate
        notes = phrase.notes
        cons_len = [self._consonant_seconds(n.consonant) for n in notes]
        # consonants precede their vowel; the first one extends the phrase at its start
        lead = cons_len[0]
        n_total = int(round((lead + phrase.duration) * sr))
        t = np.arange(n_total) / sr

        # --- f0 contour: note steps with ~60 ms portamento, vibrato with delayed onset, jitter
        bounds = lead + np.concatenate([[0.0], np.cumsum([n.duration for n in notes])])  # (N+1,)
        idx = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, len(notes) - 1)  # (n,)
        semis = np.array([n.pitch for n in notes], dtype=np.float64)[idx]
        glide = max(1, int(0.06 * sr))
        semis = np.convolve(np.pad(semis, (glide // 2, glide - 1 - glide // 2), mode="edge"),
                            np.ones(glide) / glide, mode="valid")
        note_t = t - bounds[idx]  # time since the note started
        vib_env = np.clip((note_t - 0.15) / 0.3, 0, 1)  # vibrato builds up after 150 ms
        vib_rate = self.vibrato_rate * (1 + 0.05 * _smooth_noise(rng, n_total, sr, 2.0))
        vib_phase = 2 * np.pi * np.cumsum(vib_rate) / sr + rng.uniform(0, 2 * np.pi)
        cents = self.vibrato_depth * vib_env * np.sin(vib_phase)
        f0 = 440.0 * 2 ** ((semis - 69) / 12 + cents / 1200)
        f0 *= 1 + self.jitter * _smooth_noise(rng, n_total, sr, 30.0)

        # --- Rosenberg glottal flow, differentiated (lip radiation)
        phase = np.cumsum(f0 / sr) % 1.0  # (n,)
        tp, tn = self.open_quotient, 0.16
        flow = np.where(phase < tp, 0.5 * (1 - np.cos(np.pi * phase / tp)),
                        np.where(phase < tp + tn, np.cos(np.pi * (phase - tp) / (2 * tn)), 0.0))
        source = np.diff(flow, prepend=0.0) * sr / (2 * np.pi * f0.mean())
        # aspiration noise, pulsed with the open glottis
        noise = rng.standard_normal(n_total) * (0.3 + flow)
        noise = scipy.signal.sosfilt(scipy.signal.butter(2, 1500 / (sr / 2), "high", output="sos"), noise)
        source = source + self.breathiness * 0.25 * noise * np.std(source) / (np.std(noise) + 1e-12)
        amp = 1 + self.shimmer * _smooth_noise(rng, n_total, sr, 20.0)
        source *= amp

        # --- vocal tract: one formant cascade per vowel, cross-faded along the phrase
        voice = np.zeros(n_total)
        used = sorted({n.vowel for n in notes})
        vowel_idx = np.array([used.index(n.vowel) for n in notes])[idx]
        fade = max(1, int(0.04 * sr))
        for k, v in enumerate(used):
            w = (vowel_idx == k).astype(np.float64)
            w = np.convolve(np.pad(w, (fade // 2, fade - 1 - fade // 2), mode="edge"),
                            np.ones(fade) / fade, mode="valid")
            if not w.any():
                continue
            voice += w * self._vowel_filter(source, v, sr)

        # --- amplitude envelope: attack, release, slight dip between notes, consonant gaps
        env = np.ones(n_total)
        att, rel = int(0.04 * sr), int(0.08 * sr)
        env[:att] = np.linspace(0, 1, att)
        env[-rel:] = np.linspace(1, 0, rel)
        out = voice * env
        # consonants: voiceless ones replace the voicing briefly, voiced ones dampen it
        for i, n in enumerate(notes):
            if not n.consonant:
                continue
            start = int(round((bounds[i] - (lead if i == 0 else cons_len[i])) * sr))
            start = max(0, start)
            burst = self._consonant(n.consonant, cons_len[i], sr, rng)
            end = min(n_total, start + burst.shape[0])
            burst = burst[: end - start]
            level = np.sqrt(np.mean(out[max(0, end - 2 * fade): end + 2 * fade] ** 2) + 1e-12)
            if n.consonant in ("m", "n", "l"):
                out[start:end] *= np.linspace(0.3, 1.0, end - start)
            elif n.consonant != "h" and i > 0:
                out[start:end] *= np.linspace(1.0, 0.1, end - start)
            out[start:end] += burst * level * (0.35 if n.consonant in ("s", "sh") else 0.6)

        out = scipy.signal.resample_poly(out, 1, 2)  # back to sample_rate
        out = out / (np.max(np.abs(out)) + 1e-12) * 0.5
        return out.astype(np.float32)

    @staticmethod
    def _consonant_seconds(c: str) -> float:
        return {"": 0.0, "s": 0.09, "sh": 0.1, "t": 0.03, "k": 0.035, "p": 0.025, "d": 0.025,
                "h": 0.06, "l": 0.05, "m": 0.06, "n": 0.05}[c]

    def _vowel_filter(self, source: np.ndarray, vowel: str, sr: float) -> np.ndarray:
        freqs, levels, bws = _FORMANTS[self.voice][vowel]
        sos = np.stack([_resonator_sos(f * self.formant_shift, b, sr) for f, b in zip(freqs, bws, strict=True)])
        # the cascade (serial) resonators give the formant levels by themselves; the table's levels
        # are used only to pick a brighter or darker spectral tilt for the vowel
        tilt_db = float(np.mean(levels[2:]))
        y = scipy.signal.sosfilt(sos, source)
        # higher resonances (F6+) are not modelled one by one: a parallel high-passed branch of the
        # source keeps harmonics up to ~8 kHz about 25-30 dB below the formant peaks, as in real voices
        hf = scipy.signal.sosfilt(scipy.signal.butter(2, 3800 / (sr / 2), "high", output="sos"), source)
        y = y + hf * (0.04 * np.std(y) / (np.std(hf) + 1e-12))
        if tilt_db < -25:  # dark vowels (u, o of high voices): gentle low-pass
            y = scipy.signal.sosfilt(scipy.signal.butter(1, 3000 / (sr / 2), output="sos"), y)
        return y

    @staticmethod
    def _consonant(c: str, seconds: float, sr: float, rng: np.random.Generator) -> np.ndarray:
        n = max(1, int(seconds * sr))
        x = rng.standard_normal(n)
        band = {"s": (4500, 9500), "sh": (2000, 6000), "t": (3000, 8000), "k": (1500, 4000),
                "p": (500, 3000), "d": (1500, 5000), "h": (800, 5000), "l": (200, 1500),
                "m": (150, 900), "n": (150, 1200)}[c]
        hi = min(band[1], 0.45 * sr)
        x = scipy.signal.sosfilt(scipy.signal.butter(2, (band[0] / (sr / 2), hi / (sr / 2)), "band",
                                                     output="sos"), x)
        x /= np.std(x) + 1e-12
        if c in ("t", "k", "p", "d"):  # plosive: sharp attack, fast decay
            env = np.exp(-np.arange(n) / (0.25 * n))
        else:  # fricative / nasal / liquid: smooth hump
            env = np.sin(np.linspace(0, np.pi, n)) ** 0.7
        if c in ("m", "n", "l"):
            x *= 0.3
        return x * env


# ----------------------------------------------------------------------------------------------
# (b) sampled choir through fluidsynth


def write_midi(path: str | Path, events: list[tuple[float, int, float]], *, program: int,
               velocity: int = 100, tempo_bpm: float = 120.0) -> None:
    """Write a format-0 MIDI file of notes ``(start_seconds, pitch, duration_seconds)``.

    A 30-line writer instead of music21: importing music21 alone costs about two seconds, and
    only note-on/off and a program change are needed here.
    """
    tpq = 480
    ticks_per_s = tpq * tempo_bpm / 60.0

    def vlq(n: int) -> bytes:
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes(reversed(out))

    us_per_beat = int(round(60e6 / tempo_bpm))
    ev: list[tuple[int, int, bytes]] = [
        (0, 0, b"\xff\x51\x03" + us_per_beat.to_bytes(3, "big")),
        (0, 1, bytes([0xC0, program & 0x7F])),
    ]
    for start, pitch, dur in events:
        on = int(round(start * ticks_per_s))
        off = int(round((start + dur) * ticks_per_s))
        ev.append((off, 2, bytes([0x80, pitch, 0])))  # offs sort before ons at equal ticks
        ev.append((on, 3, bytes([0x90, pitch, velocity])))
    ev.sort(key=lambda e: (e[0], e[1]))
    body = bytearray()
    last = 0
    for tick, _, msg in ev:
        body += vlq(tick - last) + msg
        last = tick
    body += vlq(0) + b"\xff\x2f\x00"
    Path(path).write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq)
                           + b"MTrk" + struct.pack(">I", len(body)) + bytes(body))


SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))

# Event = (onset seconds from the part's start, MIDI pitch, duration seconds); a part is a list of
# events that may overlap (chords).
Event = tuple[float, int, float]


def phrase_events(phrase: Phrase) -> list[Event]:
    """The notes of a legato ``phrase`` as consecutive events starting at 0."""
    events, t = [], 0.0
    for n in phrase.notes:
        events.append((t, n.pitch, n.duration))
        t += n.duration
    return events


def part_seconds(events: list[Event]) -> float:
    """Length of a part: its last note-off."""
    return max(a + d for a, _, d in events)


def render_fluidsynth(parts: list[list[Event]], *, soundfont: Path, program: int, sample_rate: int = 22050,
                      gap_seconds: float = 3.0, release_seconds: float = 0.06,
                      velocity: int = 100) -> list[np.ndarray]:
    """Render several parts with one fluidsynth call (loading a SoundFont costs ~1 s).

    The parts are laid out ``gap_seconds`` apart on one MIDI track and cut back out; each is cut
    at its last note-off plus a ``release_seconds`` fade, so a render ends where its label ends,
    and its start is trimmed to the first audible sample (slow attacks).

    Returns
    -------
    list of float32 ``(n_i,)`` arrays, one per part
    """
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise ParameterError("fluidsynth is not installed")
    if not parts or any(not p for p in parts):
        raise ParameterError("render_fluidsynth needs non-empty parts")
    events, starts = [], []
    t = 0.5
    for part in parts:
        starts.append(t)
        events += [(t + a, pitch, d) for a, pitch, d in part]
        t += part_seconds(part) + gap_seconds
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        write_midi(mid, events, program=program, velocity=velocity)
        cmd = [exe, "-ni", "-q", "-g", "0.8", "-o", "synth.reverb.active=0",
               "-o", "synth.chorus.active=0", "-o", "synth.cpu-cores=1",
               "-T", "wav", "-F", str(wav), "-r", str(sample_rate), str(soundfont), str(mid)]
        res = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
        if res.returncode != 0 or not wav.exists():
            raise ParameterError(f"fluidsynth failed ({res.returncode}): {res.stderr.decode()[-300:]}")
        import soundfile as sf

        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    out = []
    rel = max(1, int(release_seconds * sample_rate))
    for st, part in zip(starts, parts, strict=True):
        a = int(round(st * sr))
        b = int(round((st + part_seconds(part)) * sr)) + rel
        seg = mono[a:b].copy()
        seg[-rel:] *= np.linspace(1, 0, rel, dtype=np.float32)
        if not np.any(np.abs(seg) > 1e-5):
            raise ParameterError(f"fluidsynth rendered silence for program {program} of {soundfont.name}")
        out.append(_trim_start(seg, sr))
    return out


def _trim_start(seg: np.ndarray, sr: int) -> np.ndarray:
    """Drop the inaudible start (below -45 dB of the loudest 5 ms window) of a render."""
    win = int(0.005 * sr)
    n = seg.shape[0] // win
    rms = np.sqrt(np.mean(seg[: n * win].reshape(n, win).astype(np.float64) ** 2, axis=1))
    first = int(np.argmax(20 * np.log10(rms / rms.max() + 1e-12) > -45.0))
    return seg[first * win:].astype(np.float32)


@dataclass(frozen=True)
class ChoirSinger:
    """General MIDI choir patch of a SoundFont, rendered by the fluidsynth CLI.

    ``program`` is the zero-based GM program: 52 = "Choir Aahs", 53 = "Voice Oohs".
    """

    soundfont: Path
    program: int = 52

    @property
    def name(self) -> str:
        patch = {52: "aahs", 53: "oohs"}.get(self.program, str(self.program))
        return f"choir-{self.soundfont.stem}-{patch}"

    def render_many(self, phrases: list[Phrase], *, sample_rate: int = 22050,
                    gap_seconds: float = 3.0) -> list[np.ndarray]:
        """Render several phrases with one fluidsynth call; see :func:`render_fluidsynth`."""
        return render_fluidsynth([phrase_events(p) for p in phrases], soundfont=self.soundfont,
                                 program=self.program, sample_rate=sample_rate, gap_seconds=gap_seconds)


# ----------------------------------------------------------------------------------------------
# non-vocal instruments: hard negatives for the detector
#
# A detector trained on singers over rock backings learns "sustained harmonic tone = voice" unless
# the non-vocal class also has sustained harmonic sources: bowed strings, winds, organs and synth
# pads playing the same kind of melodies and chords. Voice-like GM patches are left out on purpose:
# 52-54 (choir, voice oohs, synth voice), 85 (lead 6 "voice"), 91 (pad 4 "choir"), 94 (pad 7 "halo").

# zero-based GM program -> (name, lowest, highest MIDI pitch it plays here)
LEAD_PROGRAMS: dict[int, tuple[str, int, int]] = {
    16: ("drawbar-organ", 43, 79), 19: ("church-organ", 41, 77), 21: ("accordion", 53, 81),
    22: ("harmonica", 60, 84), 40: ("violin", 55, 88), 41: ("viola", 48, 79), 42: ("cello", 36, 67),
    56: ("trumpet", 54, 80), 57: ("trombone", 40, 70), 60: ("french-horn", 41, 72),
    64: ("soprano-sax", 56, 84), 65: ("alto-sax", 49, 79), 66: ("tenor-sax", 44, 75), 68: ("oboe", 58, 86),
    70: ("bassoon", 34, 65), 71: ("clarinet", 50, 84), 73: ("flute", 60, 91), 80: ("square-lead", 45, 81),
    81: ("saw-lead", 45, 81), 82: ("calliope-lead", 55, 84),
}
PAD_PROGRAMS: dict[int, tuple[str, int, int]] = {
    16: ("drawbar-organ", 48, 76), 19: ("church-organ", 41, 76), 48: ("string-ensemble", 43, 79),
    49: ("slow-strings", 43, 79), 50: ("synth-strings", 43, 79), 51: ("synth-strings-2", 43, 79),
    61: ("brass-section", 45, 74), 88: ("new-age-pad", 45, 79), 89: ("warm-pad", 43, 76),
    90: ("polysynth-pad", 43, 76), 92: ("bowed-pad", 45, 79), 95: ("sweep-pad", 45, 79),
}


@dataclass(frozen=True)
class FluidInstrument:
    """A non-vocal General MIDI patch of a SoundFont (``LEAD_PROGRAMS`` / ``PAD_PROGRAMS``)."""

    soundfont: Path
    program: int
    role: str = "lead"  # "lead" (melodies) or "pad" (chords)

    def __post_init__(self) -> None:
        table = LEAD_PROGRAMS if self.role == "lead" else PAD_PROGRAMS if self.role == "pad" else None
        if table is None:
            raise ParameterError(f"FluidInstrument.role={self.role!r} must be 'lead' or 'pad'")
        if self.program not in table:
            raise ParameterError(f"FluidInstrument.program={self.program} is not a {self.role} program "
                                 f"(choose from {sorted(table)})")

    @property
    def range(self) -> tuple[int, int]:
        table = LEAD_PROGRAMS if self.role == "lead" else PAD_PROGRAMS
        return table[self.program][1:]

    @property
    def name(self) -> str:
        table = LEAD_PROGRAMS if self.role == "lead" else PAD_PROGRAMS
        return f"{self.role}-{self.soundfont.stem}-{self.program}-{table[self.program][0]}"

    def render_many(self, parts: list[list[Event]], *, sample_rate: int = 22050) -> list[np.ndarray]:
        return render_fluidsynth(parts, soundfont=self.soundfont, program=self.program,
                                 sample_rate=sample_rate, velocity=90 if self.role == "pad" else 100)


@dataclass(frozen=True)
class AdditiveInstrument:
    """Numpy additive synthesiser: a harmonic tone with vibrato but no vocal-tract formants.

    The hardest negative for a singing detector that relies on "harmonics + vibrato": only the
    missing formant structure, the smooth spectral tilt and the instrument-like envelopes tell
    it from a voice. Always available (used alone when fluidsynth is not installed).

    Parameters
    ----------
    tilt : harmonic ``k`` has amplitude ``k ** -tilt`` (1 = sawtooth-like, 2 = mellow)
    odd_only : only odd harmonics (clarinet / square-like)
    vibrato_rate, vibrato_depth : Hz and cents (0 = none)
    attack, release : seconds of the linear note envelope
    """

    tilt: float = 1.2
    odd_only: bool = False
    vibrato_rate: float = 5.5
    vibrato_depth: float = 20.0
    attack: float = 0.03
    release: float = 0.1

    @property
    def name(self) -> str:
        return "additive"

    def render(self, events: list[Event], *, sample_rate: int = 22050,
               rng: np.random.Generator | None = None) -> np.ndarray:
        """Render a part to float32 ``(n,)``, peak 0.5, ending at the last note-off."""
        rng = np.random.default_rng(0) if rng is None else rng
        sr = sample_rate
        n_total = int(round(part_seconds(events) * sr))
        out = np.zeros(n_total)
        for a, pitch, d in events:
            i0, n = int(round(a * sr)), int(round(d * sr))
            n = min(n, n_total - i0)
            if n <= 0:
                continue
            t = np.arange(n) / sr
            cents = self.vibrato_depth * np.clip((t - 0.2) / 0.3, 0, 1) * np.sin(
                2 * np.pi * self.vibrato_rate * t + rng.uniform(0, 2 * np.pi))
            f0 = midi_to_hz(pitch) * 2 ** (cents / 1200)  # (n,)
            phase = 2 * np.pi * np.cumsum(f0) / sr
            tone = np.zeros(n)
            for k in range(1, 40, 2 if self.odd_only else 1):
                if k * midi_to_hz(pitch) * 1.03 >= 0.45 * sr:
                    break
                tone += k ** -self.tilt * np.sin(k * phase)
            env = np.ones(n)
            att, rel = min(n, max(1, int(self.attack * sr))), min(n, max(1, int(self.release * sr)))
            env[:att] = np.linspace(0, 1, att)
            env[-rel:] *= np.linspace(1, 0, rel)
            out[i0:i0 + n] += tone * env
        return (out / (np.max(np.abs(out)) + 1e-12) * 0.5).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# (c) Festival singing mode


@dataclass(frozen=True)
class FestivalSinger:
    """Festival's singing mode (``text2wave -mode singing``) with its default diphone voice."""

    executable: str = "text2wave"

    @property
    def name(self) -> str:
        return "festival-kal"

    @staticmethod
    def _note_name(p: int) -> str:
        names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
        return f"{names[p % 12]}{p // 12 - 1}"

    def render(self, phrase: Phrase, *, sample_rate: int = 22050) -> np.ndarray:
        """Render one phrase; returns the trimmed mono float32 voice at ``sample_rate``."""
        exe = shutil.which(self.executable)
        if exe is None:
            raise ParameterError("Festival's text2wave is not installed")
        bpm = 60.0
        words = []
        for n in phrase.notes:
            word = _FESTIVAL_WORDS.get(n.syllable) or _FESTIVAL_WORDS["la"]
            words.append(f'<PITCH NOTE="{self._note_name(n.pitch)}"><DURATION SECONDS="{n.duration:.3f}">'
                         f"{word}</DURATION></PITCH>")
        xml = ('<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
               f'"Singing.v0_1.dtd" []>\n<SINGING BPM="{bpm:.0f}">' + "".join(words) + "</SINGING>\n")
        with tempfile.TemporaryDirectory() as tmp:
            src, wav = Path(tmp) / "song.xml", Path(tmp) / "out.wav"
            src.write_text(xml)
            res = subprocess.run([exe, "-mode", "singing", str(src), "-o", str(wav)],
                                 capture_output=True, timeout=120, check=False, cwd=tmp)
            if res.returncode != 0 or not wav.exists() or wav.stat().st_size < 100:
                raise ParameterError(f"text2wave failed ({res.returncode}): {res.stderr.decode()[-300:]}")
            import soundfile as sf

            audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        from xai_core.audio.io import resample

        mono = resample(audio.mean(axis=1), sr, sample_rate)
        out = trim_silence(mono, sample_rate=sample_rate, threshold_db=-40.0)
        if out.size == 0:
            raise ParameterError("text2wave rendered silence")
        return out


# Real English words whose pronunciation approximates each syllable (Festival needs lexicon words).
_FESTIVAL_WORDS = {
    "la": "la", "a": "ah", "e": "eh", "i": "ee", "o": "oh", "u": "oo", "sa": "saw", "ta": "ta",
    "ka": "car", "pa": "pa", "ma": "ma", "na": "nah", "da": "da", "ha": "ha", "sha": "shah",
    "le": "let", "se": "say", "te": "tell", "ke": "ken", "pe": "pay", "me": "may", "ne": "neigh",
    "de": "day", "he": "hey", "li": "lee", "si": "see", "ti": "tea", "ki": "key", "pi": "pea",
    "mi": "me", "ni": "knee", "di": "dee", "hi": "he", "shi": "she", "lo": "low", "so": "so",
    "to": "toe", "ko": "go", "po": "po", "mo": "mow", "no": "no", "do": "doe", "ho": "hoe",
    "sho": "show", "lu": "loo", "su": "sue", "tu": "two", "ku": "coo", "pu": "pooh", "mu": "moo",
    "nu": "new", "du": "do", "hu": "who", "shu": "shoe", "she": "shed", "le_": "lay",
}


def available_singers(*, sample_rate: int = 22050) -> tuple[list[str], dict[str, str]]:
    """Which singer families work on this machine.

    Returns
    -------
    available : names of usable singer families (``formant`` always)
    skipped : family name -> reason it is unavailable
    """
    available, skipped = ["formant"], {}
    if shutil.which("fluidsynth") is None:
        skipped["choir"] = "fluidsynth executable not found"
    elif not find_soundfonts():
        skipped["choir"] = "no General MIDI SoundFont (.sf2) found in " + ", ".join(map(str, SOUNDFONT_DIRS))
    else:
        available.append("choir")
    if shutil.which("text2wave") is None:
        skipped["festival"] = "Festival's text2wave not found"
    else:
        # text2wave without a voice (Debian's festival without festvox-kallpc16k) runs but cannot
        # sing: probe one short note so that the family is skipped with a reason instead of failing
        # on every phrase of a build
        try:
            FestivalSinger().render(Phrase((Note(60, 0.3, "a", "l"),)), sample_rate=sample_rate)
        except (ParameterError, OSError, subprocess.SubprocessError) as exc:
            skipped["festival"] = (f"Festival cannot sing here ({str(exc).splitlines()[0][:120]}); "
                                   "apt install festvox-kallpc16k")
        else:
            available.append("festival")
    return available, skipped


def find_soundfonts() -> list[Path]:
    """General MIDI SoundFonts with choir patches, best first (FluidR3 GM, then TimGM6mb)."""
    found = []
    for d in SOUNDFONT_DIRS:
        for name in ("FluidR3_GM.sf2", "TimGM6mb.sf2"):
            p = d / name
            if p.is_file() and p.resolve() not in [f.resolve() for f in found]:
                found.append(p)
    return found
