"""``python -m xai_core gradcam``, ``faithfulness`` and ``train explainer``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from xai_core.cliargs import (
    BATCH,
    FRACTION,
    LR,
    MAX_COUNT,
    SECONDS,
    SEED,
    STEPS,
    THREADS,
    add_device,
    add_force,
    float_range,
    int_range,
)
from xai_core.errors import ParameterError
from xai_core.fileio import atomic_write_bytes, check_new_files, check_output_file
from xai_core.text import printable

MAX_K = 16  # = explain.depthmaps.config.MAX_K (spelt out: --help imports no torch)

HELP = ("Where does the classifier listen? Grad-CAM of one unit (the vocal logit by default) at every convolution "
        "and pooling layer, cumulative depth maps (deepest layer first) and the conditional-GAN explainer of Guna, "
        "Sikha & Benitez, checked by deletion/insertion curves and a model-randomisation test.")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classifier", type=Path, help="classifier bundle (default: the demo's)")
    add_device(p)
    p.add_argument("--threads", type=THREADS, default=0, help="CPU threads for torch (0 = torch's default)")
    p.add_argument("--unit-layer", default="logit", help="layer of the explained unit (default: the vocal logit)")
    p.add_argument("--unit", type=int_range(0, MAX_COUNT), default=0, help="index of the explained unit in its layer (a channel of a "
                   "convolutional layer: its mean over time and frequency)")
    p.add_argument("--negate", action="store_true", help="explain the negated unit (for the logit: evidence "
                   "against voice)")


def _setup(args):
    import torch

    from xai_core.assets import DemoPaths
    from xai_core.checkpoints import load_bundle
    from xai_core.explain.depthmaps.config import UnitSpec

    if args.threads:
        torch.set_num_threads(args.threads)
    clf = load_bundle(args.classifier or DemoPaths.at().classifier, expected_kind="classifier")
    return clf, UnitSpec(layer=args.unit_layer, index=args.unit, sign=-1 if args.negate else 1)


def _explainers(paths, clf) -> dict:
    from xai_core.explain.depthmaps.bundle import load_explainer

    out = {}
    for p in paths or ():
        e = load_explainer(p, classifier=clf)
        out[Path(p).stem] = e
    return out


def _inputs(args, clf):
    """(logmel (N, T, M), names) from --audio files (excerpts at --start seconds) or a --reference set."""
    import torch

    from xai_core.assets import DemoPaths, ReferenceSet

    if args.audio:
        from xai_core.audio.features import excerpt_of_file

        xs, names = [], []
        for p in args.audio:
            xs.append(excerpt_of_file(p, offset=args.start, mel=clf.mel, frames=clf.model.config.n_frames))
            names.append(f"{Path(p).stem}@{args.start:g}s")
        return torch.stack(xs), names
    ref = ReferenceSet.load(args.reference or DemoPaths.at().reference)
    idx = _index(args.excerpts, len(ref))
    return ref.logmel[idx], [f"excerpt{i}" for i in idx]


def _index(text: str, n: int) -> list[int]:
    if text == "all":
        return list(range(n))
    try:
        idx = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise ParameterError(f"--excerpts must be 'all' or comma-separated indices, got {text!r}") from exc
    bad = [i for i in idx if not 0 <= i < n]
    if bad or not idx:
        raise ParameterError(f"excerpt indices {bad or text!r} outside 0..{n - 1}")
    return idx


def _gradcam(args) -> int:
    from xai_core.explain.depthmaps.explain import explain
    from xai_core.explain.depthmaps.viz import depth_maps_figure
    from xai_core.fileio import figure_png, npz_bytes, prepare_output_dir

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {str(out)!r} exists and is not a folder")
    clf, unit = _setup(args)
    x, names = _inputs(args, clf)
    names = [re.sub(r"[\x00-\x1f\x7f-\x9f/\\]", "_", n) for n in names]  # no control characters in file names
    res = explain(clf, x, unit=unit, k=args.k or None, explainers=_explainers(args.explainer, clf),
                  device=args.device)
    out = prepare_output_dir(out)
    check_new_files(out, [f"{n}.{ext}" for n in names for ext in ("npz", "png")], force=args.force)
    maps = res.maps()
    for i, name in enumerate(names):
        atomic_write_bytes(out / f"{name}.npz", npz_bytes(logmel=res.logmel[i].numpy(),
                                                          **{k.replace(" ", "_"): v[i].numpy() for k, v in maps.items()}),
                           overwrite=args.force, root=out)
        fig = depth_maps_figure(res, index=i, cfg=clf.mel, title=f"{name} · {unit.label}")
        atomic_write_bytes(out / f"{name}.png", figure_png(fig, dpi=110), overwrite=args.force, root=out)
    print(json.dumps({"excerpts": names, "layers": res.layers, "cumulative": res.cumulative_names,
                      "explainers": list(res.gan), **res.summary()}, indent=1))
    print(f"wrote {len(names)} PNG + NPZ files (one array per map, (T, M), in [0, 1]) to {out}")
    return 0


def _faithfulness(args) -> int:
    from xai_core.explain.depthmaps.config import FaithConfig
    from xai_core.explain.depthmaps.faithfulness import evaluation_report, format_table
    from xai_core.explain.depthmaps.sanity import SanityResult
    from xai_core.progress import tqdm_progress

    check_output_file(args.json, force=args.force, what="--json")
    clf, unit = _setup(args)
    if args.data:
        from xai_core.explain.cladec.evaluate import draw_excerpts
        from xai_core.train.data import load_split

        tracks = load_split(args.data, args.split, mel=clf.mel, cache_dir=args.cache_dir)
        x, _ = draw_excerpts(tracks, args.n, seed=args.seed, frames=clf.model.config.n_frames)
        where = f"{args.n} excerpts of the {args.split} split of {args.data}"
    else:
        x, _names = _inputs(args, clf)
        where = f"{x.shape[0]} excerpts"
    exps = _explainers(args.explainer, clf)
    cfg = FaithConfig(steps=args.steps, n_random=args.n_random, seed=args.seed)
    bar = tqdm_progress("faithfulness")
    try:
        report = evaluation_report(clf, x, unit=unit, explainers=exps, config=cfg, data=where, device=args.device,
                                   sanity_n=0 if args.no_sanity else args.n_sanity, progress=bar)
    finally:
        bar.close()
    print(f"Deletion / insertion of {unit.label} on {where} (areas under the unit's curve over the share of "
          "bins removed / revealed; gain = better than a random order):")
    print(printable(format_table(report["faithfulness"])))
    if "sanity" in report:
        print(SanityResult.format_dict(report["sanity"]))
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(report, indent=1).encode(), overwrite=args.force)
        print(f"wrote {args.json}")
    return 0


def _train_explainer(args) -> int:
    import torch

    from xai_core.explain.cladec.evaluate import draw_excerpts
    from xai_core.explain.depthmaps.bundle import save_explainer
    from xai_core.explain.depthmaps.config import ExplainerConfig
    from xai_core.explain.depthmaps.explain import evaluate_explainer
    from xai_core.explain.depthmaps.train import train_explainer
    from xai_core.progress import tqdm_progress
    from xai_core.train.data import load_split

    clf, unit = _setup(args)
    # a folder / exists without --force (or --resume: the resumed run replaces it) / a link
    check_output_file(args.out, force=args.force or args.resume, what="--out")
    cfg = ExplainerConfig(variant=args.variant, k=args.k, target=args.target, width=args.width, steps=args.steps,
                          batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, l1_weight=args.l1_weight,
                          adv_weight=args.adv_weight, seed=args.seed, checkpoint_every=args.checkpoint_every)
    train = load_split(args.data, "train", mel=clf.mel, cache_dir=args.cache_dir)
    bar = tqdm_progress(f"{cfg.variant} explainer", ("l1", "adv", "d_real", "d_fake"))
    try:
        exp = train_explainer(clf, train, cfg, unit=unit, device=args.device, checkpoint=args.checkpoint,
                              resume=args.resume, progress=bar,
                              provenance={"data": str(args.data), "split": "train",
                                          "command": "python -m xai_core train explainer"})
    finally:
        bar.close()
    if args.n_test:
        test = load_split(args.data, "test", mel=clf.mel, cache_dir=args.cache_dir)
        x, _ = draw_excerpts(test, args.n_test, seed=args.seed + 1, frames=clf.model.config.n_frames)
        exp.metrics["heldout"] = {"data": str(args.data), "split": "test",
                                  **evaluate_explainer(clf, exp, x, device=args.device)}
    save_explainer(args.out, exp, classifier=clf, dtype=torch.float16 if args.float16 else None)
    if args.checkpoint is not None:
        Path(args.checkpoint).unlink(missing_ok=True)
    print(f"wrote {args.out} ({cfg.variant} explainer of {unit.label}, K={exp.k}, {cfg.steps} steps)")
    h = exp.metrics.get("heldout")
    if h:
        print(f"  held-out L1 to the target {h['l1']:.4f} (copying the first condition map {h['l1_copy_first_condition']:.4f}, "
              f"a constant map {h['l1_constant']:.4f})")
        print("  relevance per condition (deepest first): "
              + ", ".join(f"{n} {v:.2f}" for n, v in zip(h["condition_names"], h["relevance"], strict=True)))
    return 0


def _map_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audio", type=Path, nargs="*", help="audio files (an excerpt of each, from --start)")
    p.add_argument("--start", type=SECONDS, default=0.0, help="excerpt start in seconds (with --audio)")
    p.add_argument("--reference", type=Path, help="reference set (default: the demo's), with --excerpts")
    p.add_argument("--excerpts", default="0", help="indices into the reference set, comma-separated, or 'all'")
    p.add_argument("--explainer", type=Path, nargs="*", help="trained explainer bundles (.safetensors)")


def register(sub) -> None:
    g = sub.add_parser("gradcam", help="Grad-CAM depth maps of excerpts (PNG + NPZ)", description=HELP)
    _common(g)
    _map_args(g)
    g.add_argument("--k", type=int_range(0, MAX_K), default=0, help="cumulative maps kept (default min(8, layers))")
    g.add_argument("--out", type=Path, required=True, help="output folder")
    add_force(g, "files of an earlier run in --out")
    g.set_defaults(func=_gradcam)

    f = sub.add_parser("faithfulness", help="deletion/insertion table of every map, and the randomisation check",
                       description=HELP)
    _common(f)
    _map_args(f)
    f.add_argument("--data", type=Path, help="corpus folder: draw --n excerpts of its --split instead")
    f.add_argument("--split", default="test", choices=("train", "valid", "test"))
    f.add_argument("--n", type=int_range(1, MAX_COUNT), default=64, help="excerpts drawn from --data")
    f.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder")
    f.add_argument("--steps", type=int_range(1, 1000), default=20,
                   help="fractions of the curve (0 to 1 in this many steps)")
    f.add_argument("--n-random", type=int_range(1, 100), default=3, help="random orders of the baseline")
    f.add_argument("--seed", type=SEED, default=0)
    f.add_argument("--no-sanity", action="store_true", help="skip the model-randomisation check")
    f.add_argument("--n-sanity", type=int_range(0, MAX_COUNT), default=32, help="excerpts of the randomisation check")
    f.add_argument("--json", type=Path, help="write the report here")
    add_force(f, "an existing --json file")
    f.set_defaults(func=_faithfulness)


def register_train(tsub) -> None:
    """``train explainer``: registered under ``train`` by :mod:`xai_core.train.cli`."""
    t = tsub.add_parser("explainer", help="train the conditional-GAN explainer (global or local SFT) of a classifier",
                        description=HELP)
    _common(t)
    t.add_argument("--data", type=Path, required=True, help="corpus folder: trained on its train split, evaluated on "
                   "--n-test excerpts of its test split (other songs)")
    t.add_argument("--variant", default="global", choices=("global", "local"))
    t.add_argument("--k", type=int_range(0, 1000), default=0, help="condition maps (default min(8, spatial layers))")
    t.add_argument("--target", default="deepest", choices=("deepest", "mean"),
                   help="training target: the deepest layer's Grad-CAM (the paper) or the mean of all layers")
    t.add_argument("--width", type=int_range(1, 4096), default=32, help="generator channels")
    t.add_argument("--steps", type=STEPS, default=1500, help="steps (about 0.7 s each for the demo on 2 cores)")
    t.add_argument("--batch-size", type=BATCH, default=16)
    t.add_argument("--lr", type=LR, default=2e-4)
    t.add_argument("--beta1", type=FRACTION, default=0.5)
    t.add_argument("--l1-weight", type=float_range(0.0, 1e6), default=100.0)
    t.add_argument("--adv-weight", type=float_range(0.0, 1e6), default=1.0)
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--checkpoint", type=Path, help="resumable checkpoint file")
    t.add_argument("--checkpoint-every", type=int_range(0, 10_000_000), default=200)
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint (an existing --out is then "
                   "replaced)")
    t.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder")
    t.add_argument("--n-test", type=int_range(0, MAX_COUNT), default=256,
                   help="held-out excerpts of the evaluation (0: none)")
    t.add_argument("--float16", action="store_true", help="store the weights as float16")
    t.add_argument("--force", action="store_true", help="overwrite --out")
    t.add_argument("--out", type=Path, required=True, help="output explainer bundle (.safetensors)")
    t.set_defaults(func=_train_explainer)
