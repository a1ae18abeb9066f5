"""Cost of stem remixing in classifier training: training steps with ``remix_prob`` 0.5 vs off.

Same process, same synthetic tracks with stems (random log-mel; the numbers are not the point, the
shapes and the work are the demo's), same preset and batch; the arms alternate ``--repeats`` times
and the ratio of the medians is printed (the machines are shared and noisy: absolute times mean
little). Each run is one epoch of ``--batches`` batches with the paper's augmentation, no validation.

``python bench/bench_remix.py`` (CPU, lite) or ``--device cuda``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from xai_core.train.classifier import ClassifierTrainConfig, resolve_device, train_classifier
from xai_core.train.data import Track


def tracks(n: int, frames: int, n_mels: int = 80) -> list[Track]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        labels = (torch.arange(frames) // 200 % 2).float()  # (T,)
        accomp = -4.0 + torch.randn(frames, n_mels, generator=g)  # (T, M)
        voice = torch.where(labels[:, None] > 0, -3.0 + torch.randn(frames, n_mels, generator=g),
                            torch.tensor(-16.0))  # (T, M)
        out.append(Track(f"t{i}", 0.5 * torch.logaddexp(2 * voice, 2 * accomp), labels, voice=voice, accomp=accomp))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tracks", type=int, default=40, help="synthetic tracks of 2,000 frames each")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    data = tracks(args.tracks, 2000)
    times: dict[float, list[float]] = {0.0: [], 0.5: []}
    for _ in range(args.repeats):
        for p in times:
            cfg = ClassifierTrainConfig(preset=args.preset, epochs=1, batches_per_epoch=args.batches,
                                        remix_prob=p, validate=False)
            t0 = time.perf_counter()
            train_classifier(data, [], cfg, device=dev)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times[p].append((time.perf_counter() - t0) / args.batches)
    base, remix = statistics.median(times[0.0]), statistics.median(times[0.5])
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {dev} ({where}), preset {args.preset}, batch 32, {args.batches} batches x {args.repeats} repeats")
    print(f"paper recipe      {1000 * base:7.1f} ms/batch")
    print(f"+ remix_prob 0.5  {1000 * remix:7.1f} ms/batch   ratio {remix / base:.3f}")


if __name__ == "__main__":
    main()
