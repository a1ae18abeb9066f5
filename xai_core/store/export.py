"""Export stored runs: CSV tables, PNG spectrogram grids, WAV audio (Griffin-Lim inversion)."""

from __future__ import annotations

import csv as _csv
from pathlib import Path

import numpy as np

from xai_core.actmax.engine import AMResult, GridResult

_EXAMPLE_COLS = ("seed", "score_best", "response_best", "logit_best", "prob_best", "best_step", "score_last",
                 "response_last", "z_norm_best")


def _example_records(r: AMResult, extra: dict | None = None) -> list[dict]:
    cols = {k: (r.seeds if k == "seed" else getattr(r, k)).tolist() for k in _EXAMPLE_COLS}
    return [{**(extra or {}), "idx": i, **{k: cols[k][i] for k in _EXAMPLE_COLS}} for i in range(len(cols["seed"]))]


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = _csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["empty"])
        w.writeheader()
        w.writerows(rows)
    return path


def _png(path: Path, r: AMResult, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = r.logmel_best.shape[0]
    cols = min(n, 10)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.5), squeeze=False)
    x = r.logmel_best.numpy()
    vmin, vmax = float(np.percentile(x, 1)), float(x.max())
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(x[i].T, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
            ax.set_title(f"p={float(r.prob_best[i]):.2f}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _wavs(folder: Path, r: AMResult, *, n_iter: int) -> list[Path]:
    import soundfile as sf

    from xai_core.audio.config import MelConfig
    from xai_core.audio.inversion import mel_to_audio

    folder.mkdir(parents=True, exist_ok=True)
    cfg = MelConfig()
    wave = mel_to_audio(r.logmel_best, cfg=cfg, n_iter=n_iter).numpy()  # (S, n_samples)
    peak = float(np.abs(wave).max()) or 1.0
    wave = wave * (0.9 / peak)  # one gain for the set: relative loudness kept
    out = []
    for i, w in enumerate(wave):
        p = folder / f"example{i:03d}_seed{int(r.seeds[i])}.wav"
        sf.write(str(p), w, cfg.sample_rate, subtype="PCM_16")
        out.append(p)
    return out


def export_result(result: AMResult | GridResult, out: Path, *, run_id: str, wav: bool, png: bool, csv: bool,
                  griffin_lim_iter: int = 100) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if isinstance(result, AMResult):
        c = result.config
        if csv:
            files.append(_write_csv(out / "examples.csv", _example_records(result)))
        if png:
            files.append(_png(out / "spectrograms.png", result,
                              f"{run_id}: {c.direction} {c.layer}[{c.unit}] lr={c.lr} lam={c.lam} ({c.prior})"))
        if wav:
            files += _wavs(out / "wav", result, n_iter=griffin_lim_iter)
        return files
    if csv:
        files.append(_write_csv(out / "fid.csv", result.table()))
        recs = []
        for (d, lr, lam, n_iter), r in sorted(result.examples.items()):
            recs += _example_records(r, {"direction": d, "lr": lr, "lam": lam, "n_iter": n_iter})
        files.append(_write_csv(out / "examples.csv", recs))
    for d, sel in result.selected.items():
        r = result.examples.get((d, sel["lr"], sel["lam"], sel["n_iter"]))
        if r is None:
            continue
        tag = f"{d}_lr{sel['lr']:g}_lam{sel['lam']:g}_it{sel['n_iter']}"
        if png:
            files.append(_png(out / f"selected_{tag}.png", r, f"{run_id}: selected {tag} FID={sel['fid']:.3g}"))
        if wav:
            files += _wavs(out / f"wav_{tag}", r, n_iter=griffin_lim_iter)
    return files
