"""Export stored runs: CSV tables, PNG spectrogram grids, WAV audio (Griffin-Lim inversion).

The files of an export are planned first (names, then how to render them): the output folder is
checked before anything is rendered, so an existing file (without ``force``) or a symbolic link
inside it is refused up front, and every file is then written atomically, never through a link.
"""

from __future__ import annotations

import csv as _csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xai_core.actmax.engine import AMResult, GridResult
from xai_core.fileio import atomic_write_bytes, check_new_files, figure_png, npz_bytes, prepare_output_dir

_EXAMPLE_COLS = ("seed", "score_best", "response_best", "logit_best", "prob_best", "best_step", "score_last",
                 "response_last", "z_norm_best")

# one planned step: the file names (relative to the output folder) and a function rendering their bytes
_Step = tuple[list[str], Callable[[], list[bytes]]]


def _safe_name(text: str) -> str:
    """A file-name fragment: anything but letters, digits, ``.``, ``_``, ``-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(text))[:100].strip(".") or "_"


def _example_records(r: AMResult, extra: dict | None = None) -> list[dict]:
    cols = {k: (r.seeds if k == "seed" else getattr(r, k)).tolist() for k in _EXAMPLE_COLS}
    f = r.flags  # out-of-range flags (every loaded run has them: stored, or ||z|| only for older runs)
    flag_cols = (lambda i: {}) if f is None else (lambda i: {
        "in_range": bool(f.in_range[i]), "flags": f.badge(i), "level": float(f.level[i]), "z_p": float(f.z_p[i])})
    return [{**(extra or {}), "idx": i, **{k: cols[k][i] for k in _EXAMPLE_COLS}, **flag_cols(i)}
            for i in range(len(cols["seed"]))]


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO(newline="")
    w = _csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["empty"])
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def _png(r: AMResult, title: str) -> bytes:
    from xai_core.audio.config import MelConfig
    from xai_core.viz import colour_range, spectrogram_grid

    x = r.logmel_best.numpy()  # (S, T, M)
    vmin, vmax = colour_range(x, hi=100)
    fig = spectrogram_grid(x, [f"p={float(p):.2f}" for p in r.prob_best], cfg=MelConfig(), ncols=min(len(x), 8),
                           vmin=vmin, vmax=vmax, panel_size=(2.6, 2.4))
    fig.suptitle(title, fontsize=9)
    return figure_png(fig, dpi=100)


def _wav_names(folder: str, r: AMResult) -> list[str]:
    return [f"{folder}/example{i:03d}_seed{int(r.seeds[i])}.wav" for i in range(len(r.seeds))]


def _wavs(r: AMResult, *, n_iter: int) -> list[bytes]:
    from xai_core.audio.config import MelConfig
    from xai_core.audio.export import wav_bytes_set
    from xai_core.audio.inversion import mel_to_audio

    cfg = MelConfig()
    wave = mel_to_audio(r.logmel_best, cfg=cfg, n_iter=n_iter).numpy()  # (S, n_samples)
    peak = float(np.abs(wave).max())  # one reference peak for the set: relative loudness kept
    return wav_bytes_set(list(wave), sample_rate=cfg.sample_rate, peak=peak)


def _one(name: str, make: Callable[[], bytes]) -> _Step:
    return [name], lambda: [make()]


def _plan(result: AMResult | GridResult, *, run_id: str, wav: bool, png: bool, csv: bool,
          griffin_lim_iter: int) -> list[_Step]:
    steps: list[_Step] = []
    label = _safe_name(run_id)
    if hasattr(result, "z_inv"):  # a counterfactual run: the figure, the summary, the WAVs at one gain
        return _counterfactual_plan(result, label=label, wav=wav, png=png, griffin_lim_iter=griffin_lim_iter)
    if hasattr(result, "cumulative"):  # a depth-map run: every map as NPZ, the figure, the checks
        from xai_core.explain.depthmaps.viz import depth_maps_figure

        steps.append(_one("depthmaps.npz", lambda: npz_bytes(
            logmel=result.logmel.numpy(), **{k.replace(" ", "_"): v.numpy() for k, v in result.maps().items()})))
        steps.append(_one("depthmaps_summary.json", lambda: json.dumps(
            {"summary": result.summary(), "checks": result.checks}, indent=1).encode()))
        if png:
            steps.append(_one("depthmaps.png", lambda: figure_png(
                depth_maps_figure(result, title=f"{label} · {result.unit.label}"), dpi=110)))
        if csv and result.checks.get("faithfulness"):
            steps.append(_one("faithfulness.csv", lambda: _csv_bytes(result.checks["faithfulness"])))
        return steps
    if hasattr(result, "topk_real"):  # a consistency run: the per-unit table and the summary
        steps.append(_one("consistency_units.csv", lambda: result.csv().encode()))
        steps.append(_one("consistency_summary.json", lambda: json.dumps(result.summary(), indent=1).encode()))
        return steps
    if hasattr(result, "claim"):  # a ClaDec evaluation: its table
        steps.append(_one("cladec_eval.csv", lambda: result.csv().encode()))
        steps.append(_one("cladec_eval.json", lambda: json.dumps(result.to_dict(), indent=1).encode()))
        return steps
    if isinstance(result, AMResult):
        c = result.config
        if csv:
            steps.append(_one("examples.csv", lambda: _csv_bytes(_example_records(result))))
        if png:
            steps.append(_one("spectrograms.png", lambda: _png(
                result, f"{label}: {c.direction} {c.layer}[{c.unit}] lr={c.lr} lam={c.lam} ({c.prior})")))
        if wav:
            steps.append((_wav_names("wav", result), lambda: _wavs(result, n_iter=griffin_lim_iter)))
        return steps
    if csv:
        def examples_csv() -> bytes:
            recs = []
            for (d, lr, lam, n_iter), r in sorted(result.examples.items()):
                recs += _example_records(r, {"direction": d, "lr": lr, "lam": lam, "n_iter": n_iter})
            return _csv_bytes(recs)

        steps.append(_one("fid.csv", lambda: _csv_bytes(result.table())))
        steps.append(_one("examples.csv", examples_csv))
    for d, sel in result.selected.items():
        r = result.examples.get((d, sel["lr"], sel["lam"], sel["n_iter"]))
        if r is None:
            continue
        tag = _safe_name(f"{d}_lr{sel['lr']:g}_lam{sel['lam']:g}_it{sel['n_iter']}")
        if png:
            steps.append(_one(f"selected_{tag}.png", lambda r=r, tag=tag, sel=sel: _png(
                r, f"{label}: selected {tag} FID={sel['fid']:.3g}")))
        if wav:
            steps.append((_wav_names(f"wav_{tag}", r), lambda r=r: _wavs(r, n_iter=griffin_lim_iter)))
    return steps


def _counterfactual_plan(result, *, label: str, wav: bool, png: bool, griffin_lim_iter: int) -> list[_Step]:
    from xai_core.explain.counterfactual.config import WAV_NAMES

    steps = [_one("counterfactual.json", lambda: json.dumps(result.to_dict(), indent=1).encode())]
    if png:
        from xai_core.explain.counterfactual.viz import counterfactual_figure

        steps.append(_one("counterfactual.png", lambda: figure_png(
            counterfactual_figure(result, title=f"{label} · {result.label}"), dpi=110)))
    if wav:
        def wavs() -> list[bytes]:
            import torch

            from xai_core.audio.config import MelConfig
            from xai_core.audio.export import wav_bytes_set
            from xai_core.audio.inversion import mel_to_audio

            cfg = MelConfig()
            x = torch.cat([torch.stack([result.original, result.reconstruction]), result.logmel_best])  # (2 + D, T, M)
            wave = mel_to_audio(x, cfg=cfg, n_iter=griffin_lim_iter).numpy()
            return wav_bytes_set(list(wave), sample_rate=cfg.sample_rate)  # one gain: relative loudness kept

        steps.append((["wav/original.wav", "wav/reconstruction.wav",
                       *[f"wav/{WAV_NAMES[d]}" for d in result.directions]], wavs))
    return steps


def export_result(result: AMResult | GridResult, out: Path, *, run_id: str, wav: bool, png: bool, csv: bool,
                  griffin_lim_iter: int = 100, force: bool = False) -> list[Path]:
    """Write the export of one loaded run into folder ``out``; returns the files written.

    Raises :class:`~xai_core.errors.ParameterError` (``out`` is a file; a planned file exists and not
    ``force``) or :class:`~xai_core.errors.OutputError` (``out`` or anything planned inside it is a
    symbolic link, or cannot be written) before rendering anything.
    """
    out = Path(out)
    steps = _plan(result, run_id=run_id, wav=wav, png=png, csv=csv, griffin_lim_iter=griffin_lim_iter)
    prepare_output_dir(out)
    check_new_files(out, [n for names, _ in steps for n in names], force=force)
    files: list[Path] = []
    for names, make in steps:
        blobs = make()
        for name, data in zip(names, blobs, strict=True):
            files.append(atomic_write_bytes(out / name, data, overwrite=force, root=out))
    return files
