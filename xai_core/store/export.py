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
    from xai_core.audio.config import MelConfig
    from xai_core.viz import colour_range, spectrogram_grid

    x = r.logmel_best.numpy()  # (S, T, M)
    vmin, vmax = colour_range(x, hi=100)
    fig = spectrogram_grid(x, [f"p={float(p):.2f}" for p in r.prob_best], cfg=MelConfig(), ncols=min(len(x), 8),
                           vmin=vmin, vmax=vmax, panel_size=(2.6, 2.4))
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
    return path


def _wavs(folder: Path, r: AMResult, *, n_iter: int) -> list[Path]:
    from xai_core.audio.config import MelConfig
    from xai_core.audio.export import write_wav
    from xai_core.audio.inversion import mel_to_audio

    cfg = MelConfig()
    wave = mel_to_audio(r.logmel_best, cfg=cfg, n_iter=n_iter).numpy()  # (S, n_samples)
    peak = float(np.abs(wave).max())  # one reference peak for the set: relative loudness kept
    return [write_wav(folder / f"example{i:03d}_seed{int(r.seeds[i])}.wav", w, sample_rate=cfg.sample_rate,
                      peak=peak) for i, w in enumerate(wave)]


def export_result(result: AMResult | GridResult, out: Path, *, run_id: str, wav: bool, png: bool, csv: bool,
                  griffin_lim_iter: int = 100) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if hasattr(result, "cumulative"):  # a depth-map run: every map as NPZ, the figure, the checks
        import json

        from xai_core.explain.depthmaps.viz import depth_maps_figure
        from xai_core.fileio import atomic_write_bytes

        np.savez_compressed(out / "depthmaps.npz", logmel=result.logmel.numpy(),
                            **{k.replace(" ", "_"): v.numpy() for k, v in result.maps().items()})
        files.append(out / "depthmaps.npz")
        files.append(atomic_write_bytes(out / "depthmaps_summary.json", json.dumps(
            {"summary": result.summary(), "checks": result.checks}, indent=1).encode()))
        if png:
            fig = depth_maps_figure(result, title=f"{run_id} · {result.unit.label}")
            fig.savefig(out / "depthmaps.png", dpi=110)
            files.append(out / "depthmaps.png")
        if csv and result.checks.get("faithfulness"):
            import io

            buf = io.StringIO()
            w = _csv.DictWriter(buf, fieldnames=list(result.checks["faithfulness"][0]))
            w.writeheader()
            w.writerows(result.checks["faithfulness"])
            files.append(atomic_write_bytes(out / "faithfulness.csv", buf.getvalue().encode()))
        return files
    if hasattr(result, "topk_real"):  # a consistency run: the per-unit table and the summary
        import json

        from xai_core.fileio import atomic_write_bytes

        files.append(atomic_write_bytes(out / "consistency_units.csv", result.csv().encode()))
        files.append(atomic_write_bytes(out / "consistency_summary.json",
                                        json.dumps(result.summary(), indent=1).encode()))
        return files
    if hasattr(result, "claim"):  # a ClaDec evaluation: its table
        import json

        from xai_core.fileio import atomic_write_bytes

        files.append(atomic_write_bytes(out / "cladec_eval.csv", result.csv().encode()))
        files.append(atomic_write_bytes(out / "cladec_eval.json", json.dumps(result.to_dict(), indent=1).encode()))
        return files
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
