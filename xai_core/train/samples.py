"""Sample artefacts of a trained generator: a PNG grid of spectrograms and WAV renderings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xai_core.audio.config import MelConfig


def save_spectrogram_grid(logmel: torch.Tensor, path: str | Path, *, titles: list[str] | None = None,
                          columns: int = 4, mel: MelConfig = MelConfig(), suptitle: str = "") -> Path:
    """Write a grid of log-mel excerpts as a PNG.

    Parameters
    ----------
    logmel : torch.Tensor, shape ``(N, T, M)``, un-normalised natural-log mel
    titles : one caption per excerpt (e.g. its p(vocal))
    columns : images per row

    The colour scale is shared (the 1st to 99.9th percentile of all excerpts), time in seconds
    on x, mel band on y, low bands at the bottom.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = logmel.detach().float().cpu().numpy()
    n = x.shape[0]
    rows = int(np.ceil(n / columns))
    lo, hi = np.percentile(x, [1.0, 99.9])
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.1 * rows), squeeze=False,
                             constrained_layout=True)
    secs = x.shape[1] / mel.frame_rate
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(x[i].T, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                  extent=(0.0, secs, 0, x.shape[2]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        ax.tick_params(labelsize=6)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def save_wavs(logmel: torch.Tensor, paths: list[str | Path], *, mel: MelConfig = MelConfig(),
              n_iter: int = 100, peak: float = 0.9) -> list[Path]:
    """Invert excerpts ``(N, T, M)`` to audio (mel pseudo-inverse + Griffin-Lim) and write WAVs.

    All files share one gain (the loudest sample peaks at ``peak``), so their relative loudness
    is kept.
    """
    import soundfile as sf

    from xai_core.audio.inversion import mel_to_audio

    wave = mel_to_audio(logmel.detach().float().cpu(), cfg=mel, n_iter=n_iter).numpy()  # (N, L)
    gain = peak / max(float(np.abs(wave).max()), 1e-9)
    out = []
    for w, p in zip(wave, paths, strict=True):
        p = Path(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), (w * gain).astype(np.float32), mel.sample_rate, subtype="PCM_16")
        out.append(p)
    return out
