"""Mel inversion: ours (batched torch NNLS + fast Griffin-Lim) against librosa, same inputs.

librosa's ``feature.inverse.mel_to_audio`` rebuilds its own filterbank and cannot take ours
(unit-sum HTK rows), so the baseline is its two building blocks with our exact filterbank:
``librosa.util.nnls(F, mel)`` (L-BFGS-B, clipped pinv start) then ``librosa.griffinlim``
with ``center=False``, periodic Hann, hop 315, momentum 0.99, random initial phase.

For every signal and iteration count it prints spectral convergence (lower is better)
- ``SC true``: against the STFT magnitude of the original signal,
- ``SC own``: against the method's own non-negative mel inverse (what Griffin-Lim aims at),
- ``SC mel``: re-analysed mel against the input mel (the quantity the classifier sees),
- ``fixed``: our ``SC mel`` with the classic fixed magnitude target (``mel_consistent=False``,
  the same algorithm as librosa's; differences to librosa there are the random phase draw),
and wall-clock seconds of both in this process, with the ratio ours / librosa.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_inversion.py [--quick]``.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xai_core.audio.config import MelConfig  # noqa: E402
from xai_core.audio.features import log_mel, mel_filterbank, stft_magnitude  # noqa: E402
from xai_core.audio.inversion import (  # noqa: E402
    griffin_lim,
    mel_spectral_convergence,
    mel_to_magnitude,
    natural_length,
    spectral_convergence,
)

SONGS = "/usr/share/games/fretsonfire/data/songs/*/*/song.ogg"


def synthetic_signals(cfg: MelConfig, n_frames: int) -> dict[str, np.ndarray]:
    """Harmonic 'sung' tone with vibrato, a chirp, gated noise bursts and a chord."""
    sr = cfg.sample_rate
    t = np.arange(natural_length(n_frames, cfg)) / sr
    rng = np.random.default_rng(0)
    f0 = 220 * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    sung = sum(np.sin(k * phase) / k for k in range(1, 13)) * 0.3
    chirp = 0.4 * np.sin(2 * np.pi * (100 * t + 0.5 * (4000 - 100) / t[-1] * t**2))
    gate = (np.sin(2 * np.pi * 2 * t) > 0.3).astype(float)
    bursts = 0.2 * rng.standard_normal(t.size) * gate
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0, 523.25))
    return {"sung tone": sung, "chirp": chirp, "noise bursts": bursts, "C chord": chord}


def song_excerpts(cfg: MelConfig, n_frames: int, n_songs: int) -> dict[str, np.ndarray]:
    import librosa

    out = {}
    for path in sorted(glob.glob(SONGS))[:n_songs]:
        y, _ = librosa.load(path, sr=cfg.sample_rate, mono=True, offset=30.0,
                            duration=natural_length(n_frames, cfg) / cfg.sample_rate + 0.01)
        y = y[: natural_length(n_frames, cfg)]
        if y.size == natural_length(n_frames, cfg):
            out["song: " + Path(path).parent.name[:18]] = y
    return out


def librosa_inverse(mel: np.ndarray, fb: np.ndarray, cfg: MelConfig, n_iter: int, length: int):
    """``mel (M, T)`` -> (nnls magnitude (K, T), wave, nnls seconds, GL seconds)."""
    import librosa

    t0 = time.perf_counter()
    mag = librosa.util.nnls(fb, mel)  # (K, T)
    t1 = time.perf_counter()
    wave = librosa.griffinlim(mag, n_iter=n_iter, hop_length=cfg.hop_length, win_length=cfg.n_fft,
                              n_fft=cfg.n_fft, window="hann", center=False, momentum=0.99,
                              init="random", random_state=0, length=length)
    t2 = time.perf_counter()
    return mag, wave, t1 - t0, t2 - t1


def ours_inverse(lm: torch.Tensor, cfg: MelConfig, n_iter: int, *, mel_consistent: bool = True):
    """``lm (T, M)`` -> (magnitude (T, K), wave, nnls seconds, GL seconds).

    The same steps as ``mel_to_audio`` (timed separately).
    """
    t0 = time.perf_counter()
    mel = torch.exp(lm)  # (T, M)
    mag = mel_to_magnitude(mel, cfg=cfg, log_input=False)  # (T, K)
    t1 = time.perf_counter()
    wave = griffin_lim(mag, cfg=cfg, n_iter=n_iter, momentum=0.99, seed=0,
                       mel=mel if mel_consistent else None)  # (L,)
    t2 = time.perf_counter()
    return mag, wave, t1 - t0, t2 - t1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="32 iterations, synthetic signals only")
    ap.add_argument("--frames", type=int, default=210, help="frames per signal (210 = 3 s)")
    ap.add_argument("--songs", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # same footing as single-threaded numpy/scipy
    cfg = MelConfig()
    fb = mel_filterbank(cfg, dtype=torch.float32).numpy()  # (M, K)
    signals = synthetic_signals(cfg, args.frames)
    if not args.quick:
        signals.update(song_excerpts(cfg, args.frames, args.songs))
    iters = [32] if args.quick else [32, 100]

    hdr = (f"{'signal':<24}{'iter':>5} | {'SC true':>8}{'SC own':>8}{'SC mel':>8}{'fixed':>7}{'sec':>6} |"
           f" {'SC true':>8}{'SC own':>8}{'SC mel':>8}{'sec':>6} | {'NNLS res':>17} | speed")
    print(f"{'':<30}| {'ours (torch)':^37} | {'librosa':^30} | {'NNLS residual':^17} |")
    print(hdr)
    print("-" * len(hdr))
    worse, totals = [], {n: [0.0, 0.0] for n in iters}
    for name, sig in signals.items():
        wav = torch.as_tensor(np.asarray(sig, dtype=np.float32))  # (L,)
        lm = log_mel(wav, cfg)  # (T, M)
        true_mag = stft_magnitude(wav, cfg)  # (T, K)
        mel = torch.exp(lm).T.numpy()  # (M, T)
        for n_iter in iters:
            o_mag, o_wave, o_nn, o_gl = ours_inverse(lm, cfg, n_iter)
            l_mag, l_wave, l_nn, l_gl = librosa_inverse(mel, fb, cfg, n_iter, wav.numel())
            f_wave = ours_inverse(lm, cfg, n_iter, mel_consistent=False)[1]
            l_wave = torch.as_tensor(l_wave)
            l_mag_t = torch.as_tensor(l_mag).T  # (T, K)
            o = [spectral_convergence(true_mag, o_wave, cfg), spectral_convergence(o_mag, o_wave, cfg),
                 mel_spectral_convergence(lm, o_wave, cfg)]
            lb = [spectral_convergence(true_mag, l_wave, cfg), spectral_convergence(l_mag_t, l_wave, cfg),
                  mel_spectral_convergence(lm, l_wave, cfg)]
            o, lb = [float(v) for v in o], [float(v) for v in lb]
            fixed = float(mel_spectral_convergence(lm, f_wave, cfg))
            res_o = float(torch.linalg.norm(o_mag @ torch.as_tensor(fb).T - torch.exp(lm)) / torch.linalg.norm(torch.exp(lm)))
            res_l = float(np.linalg.norm(fb @ l_mag - mel) / np.linalg.norm(mel))
            t_o, t_l = o_nn + o_gl, l_nn + l_gl
            totals[n_iter][0] += t_o
            totals[n_iter][1] += t_l
            print(f"{name:<24}{n_iter:>5} | {o[0]:>8.4f}{o[1]:>8.4f}{o[2]:>8.4f}{fixed:>7.4f}{t_o:>6.2f} |"
                  f" {lb[0]:>8.4f}{lb[1]:>8.4f}{lb[2]:>8.4f}{t_l:>6.2f} | {res_o:.1e} / {res_l:.1e} |"
                  f" {t_o / t_l:5.2f}x")
            if o[2] > lb[2] * 1.02:
                worse.append((name, n_iter))
    print("-" * len(hdr))
    for n_iter, (t_o, t_l) in totals.items():
        print(f"total seconds at {n_iter:>3} iterations: ours {t_o:.2f}, librosa {t_l:.2f}, "
              f"ratio ours / librosa {t_o / t_l:.2f}")
    if worse:
        print(f"ours is worse than librosa in the mel domain (by > 2 %) on: {worse}")
        return 1
    print("ours is at least as good as librosa in the mel domain on every signal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
