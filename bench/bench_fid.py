"""FID: the exact float64 route of xai_core.metrics vs scipy.linalg.sqrtm (pytorch-fid's way).

n = 50 samples per set, d in {1, 64, 256, 2048}; prints agreement and the speed ratio.
Run: ``python bench/bench_fid.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg
import torch

from xai_core.metrics import fid_from_features


def scipy_fid(x: np.ndarray, y: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance on sample statistics (sqrtm of the d x d product)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # product might be almost singular: pytorch-fid's offset
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--dims", default="1,64,256,2048")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch threads {torch.get_num_threads()}, n = {args.n}")
    print(f"{'d':>6} {'exact FID':>14} {'scipy FID':>14} {'rel diff':>9} {'exact s':>9} {'scipy s':>9} {'speed-up':>8}")
    for d in (int(v) for v in args.dims.split(",")):
        rng = np.random.default_rng(d)
        x = rng.normal(size=(args.n, d)) * rng.uniform(0.5, 2.0, size=d)
        y = rng.normal(size=(args.n, d)) * 1.3 + 0.2
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        a, b = fid_from_features(xt, yt), scipy_fid(x, y)
        ta = best_time(lambda: fid_from_features(xt, yt), args.repeats)  # noqa: B023
        tb = best_time(lambda: scipy_fid(x, y), args.repeats)  # noqa: B023
        print(f"{d:>6} {a:>14.8g} {b:>14.8g} {abs(a - b) / max(abs(b), 1e-12):>9.1e} {ta:>9.4f} {tb:>9.4f} "
              f"{tb / ta:>7.1f}x")


if __name__ == "__main__":
    main()
