"""Depth-map costs, as ratios in the same process.

1. All-layer Grad-CAM in one forward/backward pass (``layer_gradcam``) against one pass per layer (the
   same function called once per spatial layer, which is what Captum's ``LayerGradCam`` does; with captum
   installed, LayerGradCam itself is timed too). One excerpt (the page) and a batch of 64 (the checks).
2. The explainer's map (one generator pass) against the all-layer Grad-CAM that produces its conditions,
   per excerpt in a batch of 64 (global and local), and one excerpt alone.

The issue's budgets (CPU): all-layer Grad-CAM of one excerpt under 0.2 s; the explainer's map under 50 ms
per excerpt. Synthetic data (random log-mel; the shapes and the work are the demo's). The arms alternate
``--repeats`` times and medians are compared (the machines are shared and noisy).

``python bench/bench_depthmaps.py`` (CPU, lite) or ``--device cuda``; ``--classifier`` for a real bundle.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import classifier, sync

from xai_core.device import resolve_device
from xai_core.explain.depthmaps.explain import generate
from xai_core.explain.depthmaps.gradcam import cumulative_maps, layer_gradcam, spatial_layers
from xai_core.explain.depthmaps.nets import GeneratorConfig, MapGenerator
from xai_core.models.hooks import frozen


def _time(fn, n: int, dev: torch.device) -> float:
    fn()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(dev)
    return 1000 * (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--classifier", help="a classifier bundle instead of a random one of --preset")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=10, help="calls per timing")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    clf = classifier(args.classifier, args.preset)
    g = torch.Generator().manual_seed(0)
    x64 = clf.normaliser.apply(-6 + 2 * torch.randn(64, 115, 80, generator=g)).to(dev)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {dev} ({where}), classifier {clf.preset or 'custom'}")
    try:
        from captum.attr import LayerGradCam
    except ImportError:
        LayerGradCam = None  # noqa: N806
    with frozen(clf.model, dev) as model:
        layers = spatial_layers(model)

        def one_pass(x):
            return layer_gradcam(model, x, layers=layers)

        def per_layer(x):
            return [layer_gradcam(model, x, layers=[n]) for n in layers]

        def captum(x):
            fwd = lambda inp: model(inp)[:, None]  # noqa: E731
            return [LayerGradCam(fwd, getattr(model, n)).attribute(x[:, None], target=0, relu_attributions=True)
                    for n in layers]

        for batch in (1, 64):
            x = x64[:batch]
            arms = {"one pass, all layers": one_pass, "one pass per layer": per_layer}
            if LayerGradCam is not None:
                arms["captum LayerGradCam per layer"] = captum
            times = {k: [] for k in arms}
            for _ in range(args.repeats):
                for k, fn in arms.items():
                    times[k].append(_time(lambda fn=fn, x=x: fn(x), args.n if batch == 1 else max(2, args.n // 5), dev))
            med = {k: statistics.median(v) for k, v in times.items()}
            base = med["one pass, all layers"]
            print(f"\nGrad-CAM at {len(layers)} layers, batch {batch}:")
            for k, v in med.items():
                print(f"  {k:32s} {v:8.1f} ms ({v / batch:6.2f} ms/excerpt)  ratio {v / base:5.2f}")

        print("\nExplainer map vs the Grad-CAM of its conditions (per excerpt):")
        lm = layer_gradcam(model, x64, layers=layers)
        cond = cumulative_maps(lm.maps)[0]
        for variant in ("global", "local"):
            k = cond.shape[1]
            gen = MapGenerator(GeneratorConfig(variant=variant, k=k, blocks=k)).to(dev).eval()
            t_gen, t_cam, t_one = [], [], []
            for _ in range(args.repeats):
                t_gen.append(_time(lambda gen=gen: generate(gen, x64, cond), max(2, args.n // 5), dev) / 64)
                t_cam.append(_time(lambda: one_pass(x64), max(2, args.n // 5), dev) / 64)
                t_one.append(_time(lambda gen=gen: generate(gen, x64[:1], cond[:1]), args.n, dev))
            mg, mc, mo = statistics.median(t_gen), statistics.median(t_cam), statistics.median(t_one)
            print(f"  {variant:6s}: map {mg:6.2f} ms/excerpt (batch 64), {mo:6.2f} ms for one excerpt alone; "
                  f"all-layer Grad-CAM {mc:6.2f} ms/excerpt; ratio map / Grad-CAM {mg / mc:5.2f}")


if __name__ == "__main__":
    main()
