"""ClaDec costs, as ratios against the classifier's forward pass in the same process.

1. Decoder training throughput: one training step of a decoder (batch 32) for each variant and a few
   layers, against one forward pass of the classifier on the same batch (no gradient). The ratio
   says how many classifier forwards one decoder step costs; the absolute ms/step tell what the
   shipped budget (``make demo-assets``: 1,000 steps per decoder) takes on this machine.
2. The page's decode: one excerpt through every decoder of a set (4 layers x ClaDec + RefAE) plus
   Griffin-Lim of the 9 spectrograms at the page's 32 iterations, against one classifier forward of
   one excerpt.

Synthetic data (random log-mel; the shapes and the work are the demo's). The arms alternate
``--repeats`` times and medians are compared (the machines are shared and noisy).

``python bench/bench_cladec.py`` (CPU, lite) or ``--device cuda``; ``--classifier`` for a real bundle.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import torch
from common import classifier, sync

from xai_core.audio.inversion import mel_to_audio
from xai_core.device import resolve_device
from xai_core.explain.cladec import CladecConfig, decode, train_decoder
from xai_core.viz import decoded_rows_figure

LAYERS = ("conv2", "conv4", "fc1", "fc2")




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--classifier", help="a classifier bundle instead of a random one of --preset")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=30, help="decoder steps per timing")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.steps < 20:
        ap.error(f"--steps {args.steps}: give at least 20 (the timing runs between progress reports 10 steps apart)")
    dev = resolve_device(args.device)
    clf = classifier(args.classifier, args.preset)
    g = torch.Generator().manual_seed(0)
    data = (-6 + 2 * torch.randn(512, 115, 80, generator=g), (torch.rand(512, generator=g) > 0.5).float())
    model = clf.model.to(dev)
    xb = clf.normaliser.apply(data[0][:32].to(dev))

    def forward_ms(x: torch.Tensor, n: int = 20) -> float:
        with torch.no_grad():
            model(x)
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(n):
                model(x)
            sync(dev)
        return 1000 * (time.perf_counter() - t0) / n

    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {dev} ({where}), classifier {clf.preset or 'custom'}, batch 32")
    arms = [(layer, v) for layer in LAYERS for v in ("cladec", "refae", "random")]
    step_ms: dict[tuple[str, str], list[float]] = {a: [] for a in arms}
    fwd: list[float] = []
    for _ in range(args.repeats):
        fwd.append(forward_ms(xb))
        for layer, v in arms:
            cfg = CladecConfig(layer=layer, variant=v, steps=args.steps + 5, checkpoint_every=0)
            marks = {}

            def prog(done, _t, _i, marks=marks):
                sync(dev)
                marks[done] = time.perf_counter()

            train_decoder(clf, data, cfg, device=dev, progress=prog)
            # from the first report (step 10) to the last: set-up and warm-up excluded
            first, last = min(marks), max(marks)
            step_ms[(layer, v)].append(1000 * (marks[last] - marks[first]) / (last - first))
    base = statistics.median(fwd)
    print(f"classifier forward (no grad)          {base:8.1f} ms/batch   ratio 1.00")
    for (layer, v), ts in step_ms.items():
        m = statistics.median(ts)
        print(f"decoder step {layer:<6} {v:<7}           {m:8.1f} ms/step    ratio {m / base:5.2f}   "
              f"(1,000 steps: {m:.0f} s)")

    decoders = [train_decoder(clf, data, CladecConfig(layer=layer, variant=v, steps=1), device="cpu")
                for layer in LAYERS for v in ("cladec", "refae")]
    x1 = data[0][:1]
    one = clf.normaliser.apply(x1.to(dev))
    dec_s, gl_s, fig_s, fwd1 = [], [], [], []
    with torch.no_grad():  # warm-up: the filterbank pseudo-inverse, first-call kernel set-up
        mel_to_audio(x1, cfg=clf.mel, n_iter=2)
    for _ in range(args.repeats):
        fwd1.append(forward_ms(one))
        t0 = time.perf_counter()
        res = decode(clf, decoders, x1, device=dev)
        sync(dev)
        t1 = time.perf_counter()
        spec = torch.cat([res.logmel] + [res.recon[k] for k in res.keys])  # (9, T, M)
        with torch.no_grad():
            mel_to_audio(spec, cfg=clf.mel, n_iter=32)
        sync(dev)
        t2 = time.perf_counter()
        rows = [[res.logmel[0]] + [res.recon[(layer, v)][0] for v in ("cladec", "refae")]
                + [res.recon[(layer, "cladec")][0] - res.recon[(layer, "refae")][0]] for layer in LAYERS]
        fig = decoded_rows_figure(rows, [["t"] * 4] * len(LAYERS), cfg=clf.mel, diff_columns=[3])
        fig.savefig(io.BytesIO(), format="png", dpi=110)  # what the page does (display.show_png)
        t3 = time.perf_counter()
        dec_s.append(t1 - t0)
        gl_s.append(t2 - t1)
        fig_s.append(t3 - t2)
    f1 = statistics.median(fwd1)
    d, gl, fg = (1000 * statistics.median(v) for v in (dec_s, gl_s, fig_s))
    print(f"page decode of 1 excerpt x {len(decoders)} decoders: {d:.0f} ms (ratio {d / f1:.0f} x one classifier "
          f"forward of one excerpt, {f1:.2f} ms); Griffin-Lim (32 it.) of the 9 spectrograms {gl:.0f} ms; the "
          f"4 x 4 figure as PNG {fg:.0f} ms; in all {d + gl + fg:.0f} ms")


if __name__ == "__main__":
    main()
