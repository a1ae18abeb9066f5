"""Neuron-consistency costs, as ratios in the same process.

1. The batched attack against a per-excerpt loop: PGD (10 steps) on N excerpts in chunks of the automatic
   batch size (16 on the CPU), in one batch of N, and as N calls on one excerpt each; speeds relative to
   the loop. On the CPU large batches are slower than cache-sized chunks (the conv1 maps of a lite
   excerpt take 0.56 MB); on a GPU batching is what makes it fast.
2. Consistency of every unit of every layer over the concept set, attacks included (the issue's target:
   under 30 s for the shipped 256-excerpt set on 2 CPU cores), against the attack alone (how much of it
   the attack is).

The arms alternate ``--repeats`` times and medians are compared (the machines are shared and noisy).
``python bench/bench_consistency.py`` (the demo's classifier and concept set, CPU) or ``--device cuda``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from xai_core.assets import DemoPaths, ReferenceSet
from xai_core.checkpoints import load_bundle
from xai_core.explain.consistency import AttackConfig, attack, neuron_consistency


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=64, help="excerpts of the batched-vs-loop comparison")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = DemoPaths.at()
    clf = load_bundle(paths.classifier, expected_kind="classifier")
    cset = ReferenceSet.load(paths.concepts if paths.concepts.is_file() else paths.reference)
    x, y = cset.logmel[:args.n].float(), cset.labels[:args.n]
    auto = AttackConfig()  # chunks of 16 on the CPU (config.AUTO_BATCH)
    one = AttackConfig(batch_size=len(x))  # everything in one batch
    arms = {"chunked (auto)": [], "one batch": [], "per-excerpt loop": []}
    attack(clf, x[:2], labels=y[:2], config=auto, device=args.device)  # warm-up
    for _ in range(args.repeats):
        arms["chunked (auto)"].append(_time(lambda: attack(clf, x, labels=y, config=auto, device=args.device)))
        arms["one batch"].append(_time(lambda: attack(clf, x, labels=y, config=one, device=args.device)))
        arms["per-excerpt loop"].append(_time(lambda: [attack(clf, x[i:i + 1], labels=y[i:i + 1], config=auto,
                                                              device=args.device) for i in range(len(x))]))
    med = {k: statistics.median(v) for k, v in arms.items()}
    base = med["per-excerpt loop"]
    print(f"PGD-10 on {len(x)} excerpts ({args.device}), median of {args.repeats}: "
          + ", ".join(f"{k} {v:.2f} s ({base / v:.2f}x the loop's speed)" for k, v in med.items()))
    cfg = auto
    full, att = [], []
    for _ in range(max(1, args.repeats - 1)):
        full.append(_time(lambda: neuron_consistency(clf, cset, device=args.device)))
        att.append(_time(lambda: attack(clf, cset.logmel.float(), labels=cset.labels, config=cfg,
                                        device=args.device)))
    f, a = statistics.median(full), statistics.median(att)
    print(f"consistency of every unit of every layer over {len(cset)} excerpts, real and adversarial: {f:.1f} s "
          f"(target < 30 s on 2 CPU cores); the attack alone {a:.1f} s ({a / f:.0%} of it)")


if __name__ == "__main__":
    main()
