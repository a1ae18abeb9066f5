"""Batched grid engine vs the authors' way (one seed, one config, batch 1, a run per iteration count).

Same models, same device, one process. The baseline is measured on ``--baseline-seeds`` seeds of
one configuration for ``--baseline-iters`` steps; its per-step time (batch 1) is scaled to the full
grid workload: directions x lrs x lams x sum(n_iter + 1 for n_iter in iters) x seeds steps, because the
authors re-ran every iteration count from scratch. The batched engine runs the whole grid for real.

CPU here (lite, random weights): ``python bench/bench_actmax.py``
GPU, paper grid: ``python bench/bench_actmax.py --preset paper --seeds 50 --iters 100,500,1000 --baseline-seeds 2 --baseline-iters 100``
"""

from __future__ import annotations

import argparse
import time

import torch

from xai_core.actmax import GridConfig, resolve_device, run_grid
from xai_core.actmax.sequential import run_am_sequential
from xai_core.assets import ReferenceSet
from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.checkpoints import Bundle, model_identity
from xai_core.models import SpecGenerator, SVDNet


def bundles(preset: str, device):
    torch.manual_seed(0)
    mel = MelConfig()
    g = torch.Generator().manual_seed(0)
    logmel = -6.0 + 2.0 * torch.randn(64, mel.excerpt_frames, mel.n_mels, generator=g)
    norm = Normaliser.fit(logmel)
    out = []
    for kind, model in (("classifier", SVDNet(preset)), ("generator", SpecGenerator(preset))):
        model.to(device).eval()
        out.append(Bundle(kind=kind, model=model, mel=mel, normaliser=norm, preset=preset,
                          identity=model_identity(model)))
    ref = ReferenceSet(logmel, torch.zeros(64), [f"random{i}" for i in range(64)], mel, {"note": "benchmark"})
    return out[0], out[1], ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iters", default="4,20,40")
    ap.add_argument("--baseline-seeds", type=int, default=2)
    ap.add_argument("--baseline-iters", type=int, default=20)
    ap.add_argument("--max-chunk", type=int)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    clf, gen, ref = bundles(args.preset, dev)
    grid = GridConfig(iters=tuple(int(v) for v in args.iters.split(",")), n_examples=args.seeds,
                      n_reference=min(50, len(ref)), max_chunk=args.max_chunk)
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"preset {args.preset}, grid {len(grid.lrs)}x{len(grid.lams)}x{grid.iters} x {len(grid.directions)} "
          f"directions x {grid.n_examples} seeds")

    # warm-up (allocator, cuDNN autotune, lazy imports) for both paths
    run_am_sequential(clf, gen, grid.am_config("max", 0.01, 0.01, 2), device=dev)
    run_grid(clf, gen, GridConfig(**{**grid.to_dict(), "iters": (2,), "n_examples": 2}), reference=ref, device=dev)

    cfg = grid.am_config("max", 0.01, 0.01, args.baseline_iters)
    cfg = type(cfg)(**{**cfg.to_dict(), "n_examples": args.baseline_seeds})
    t0 = time.perf_counter()
    run_am_sequential(clf, gen, cfg, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    base_s = time.perf_counter() - t0
    per_step = base_s / (args.baseline_seeds * (args.baseline_iters + 1))
    steps_full = len(grid.directions) * len(grid.lrs) * len(grid.lams) * sum(n + 1 for n in grid.iters) * grid.n_examples
    base_full = per_step * steps_full
    print(f"baseline (batch 1): measured {base_s:.2f} s for {args.baseline_seeds} seeds x "
          f"{args.baseline_iters + 1} steps = {per_step * 1e3:.2f} ms/step; "
          f"full grid = {steps_full} steps -> {base_full:.1f} s (scaled)")

    t0 = time.perf_counter()
    res = run_grid(clf, gen, grid, reference=ref, device=dev)
    batched_s = time.perf_counter() - t0
    rows = len(grid.groups()) * grid.n_examples
    print(f"batched engine: {batched_s:.2f} s for {rows} rows x {grid.n_iter + 1} steps "
          f"({len(res.examples)} configurations, FID tables included)")
    print(f"speed-up vs the authors' way: {base_full / batched_s:.1f}x")


if __name__ == "__main__":
    main()
