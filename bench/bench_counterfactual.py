"""Counterfactual costs and numbers on real excerpts, as ratios in the same process.

1. The inversion's restarts in one batch (``restarts=8``) against the same restarts one at a time (8 calls with
   ``restarts=1`` and seeds ``seed + r``: the same codes, the same result up to float rounding).
2. AM from z_inv in both directions as two rows of one batch against one direction at a time.
3. The whole method per excerpt (spread, inversion 8 x 200, AM 2 x 100 from z_inv): the issue's budget is under
   10 s on 2 CPU cores with the demo's models.

It also prints, per excerpt, what the README reports: the reconstruction error against the real-vs-real spread
(and against the trivial "reconstruction" that keeps only the excerpt's average spectrum, the envelope), the
MSE to the nearest real excerpt of another clip, and p(vocal) of the original, the reconstruction and the two
counterfactuals. The arms alternate ``--repeats`` times and medians are compared (the machines are shared).

``python bench/bench_counterfactual.py`` (the demo, CPU, 2 threads) or ``--device cuda``; ``--excerpts 0,100``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
from common import sync

from xai_core.actmax.objective import Responder
from xai_core.assets import DemoPaths, ReferenceSet
from xai_core.checkpoints import load_bundle
from xai_core.device import resolve_device
from xai_core.explain.counterfactual import CounterfactualConfig, counterfactual, invert, real_spread
from xai_core.explain.counterfactual.engine import LAYER, UNIT, ascend_from


def _timed(fn, dev):
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-dir", help="models and reference set (default: assets/demo)")
    ap.add_argument("--excerpts", default="0,32,64,96,150,250,350", help="reference excerpts (comma-separated indices)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternations of the timed arms")
    ap.add_argument("--beta", type=float, default=CounterfactualConfig().beta)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    paths = DemoPaths.at(args.demo_dir)
    clf = load_bundle(paths.classifier, expected_kind="classifier")
    gen = load_bundle(paths.generator, expected_kind="generator")
    ref = ReferenceSet.load(paths.reference)
    idx = [int(i) for i in args.excerpts.split(",") if i.strip() and int(i) < len(ref)]
    cfg = CounterfactualConfig(beta=args.beta)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {dev} ({where}); generator {gen.preset}, classifier {clf.preset}; {len(ref)} reference excerpts; "
          f"restarts {cfg.restarts} x {cfg.invert_steps} steps, AM {cfg.am_iters} steps, beta {cfg.beta:g}")
    t, spread = _timed(lambda: real_spread(ref, clf.normaliser), dev)
    s = spread.to_dict()
    print(f"real-vs-real spread ({t:.2f} s): MSE to the nearest excerpt of another clip over {s['n']} excerpts of "
          f"{s['n_clips']} clips: median {s['q50']:.3f}, 5-95 % {s['q05']:.3f}-{s['q95']:.3f}, "
          f"threshold {s['threshold']:.3f}")

    # 1-2: the batched arms against their one-at-a-time baselines, on the first excerpt
    x = ref.logmel[idx[0]]
    seq_cfgs = [replace(cfg, restarts=1, seed=cfg.seed + r) for r in range(cfg.restarts)]
    inv = invert(gen, clf.normaliser, x, cfg, device=dev)
    z_inv = inv.z[0]
    signs = torch.tensor([1.0, -1.0])

    def am(rows):
        with Responder(clf, gen, layer=LAYER, unit=UNIT, device=dev) as resp:
            return [ascend_from(resp, z_inv[None].repeat(len(s_), 1), s_, coef=cfg.penalty, beta=cfg.beta,
                                lr=cfg.am_lr, n_iter=cfg.am_iters, record={cfg.am_iters}) for s_ in rows]

    times = {k: [] for k in ("inv_batched", "inv_sequential", "am_batched", "am_sequential")}
    for _ in range(args.repeats):
        times["inv_batched"].append(_timed(lambda: invert(gen, clf.normaliser, x, cfg, device=dev), dev)[0])
        times["inv_sequential"].append(_timed(lambda: [invert(gen, clf.normaliser, x, c, device=dev)
                                                       for c in seq_cfgs], dev)[0])
        times["am_batched"].append(_timed(lambda: am([signs]), dev)[0])
        times["am_sequential"].append(_timed(lambda: am([signs[:1], signs[1:]]), dev)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"inversion, {cfg.restarts} restarts x {cfg.invert_steps} steps: batched {med['inv_batched']:.2f} s, one "
          f"restart at a time {med['inv_sequential']:.2f} s: {med['inv_sequential'] / med['inv_batched']:.2f}x")
    print(f"AM from z_inv, 2 directions x {cfg.am_iters} steps: batched {med['am_batched']:.2f} s, one direction at "
          f"a time {med['am_sequential']:.2f} s: {med['am_sequential'] / med['am_batched']:.2f}x")

    # 3: the whole method per excerpt, and its numbers
    print("excerpt | source | rec. MSE | envelope MSE | nearest real | p original / reconstruction / more / less "
          "| |dz| more / less | reconstructs | seconds (invert + AM)")
    totals = []
    for i in idx:
        clip = ref.sources[i].rsplit("@", 1)[0]
        sec, r = _timed(lambda i=i, clip=clip: counterfactual(clf, gen, ref.logmel[i], cfg, spread=spread,
                                                               reference=ref, exclude_clip=clip, device=dev), dev)
        totals.append(sec)
        env = r.envelope_mse  # the excerpt against its own average spectrum in every frame
        p = r.prob_best.tolist()
        print(f"{i} | {ref.sources[i]} | {r.rec_mse:.3f} | {env:.3f} | {r.nearest_mse:.3f} | {r.prob_original:.3f} / "
              f"{r.prob_reconstruction:.3f} / {p[0]:.3f} / {p[1]:.3f} | {r.distance[0]:.2f} / {r.distance[1]:.2f} | "
              f"{r.reconstructs} | {sec:.2f} ({r.seconds['invert']:.2f} + {r.seconds['am']:.2f})")
    print(f"whole method per excerpt: median {statistics.median(totals):.2f} s, min {min(totals):.2f} s, max "
          f"{max(totals):.2f} s (budget 10 s on 2 CPU cores)")


if __name__ == "__main__":
    main()
