"""``python -m xai_core cladec train|eval|decode``: ClaDec decoders from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xai_core.cliargs import (
    BATCH,
    FRACTION,
    GL_ITERS,
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
from xai_core.cliargs import names as _names
from xai_core.errors import ParameterError
from xai_core.text import one_line, printable

HELP = ("ClaDec (Schneider & Vlachos): decoders that reconstruct the input from one layer's activations "
        "of the frozen classifier, against a reference auto-encoder (RefAE: same architecture, trained end to "
        "end on reconstruction alone) and a decoder of a randomly re-initialised classifier (the floor).")


def _bar(desc: str):
    from xai_core.progress import tqdm_progress

    return tqdm_progress(desc, ("layer", "variant", "loss", "mse", "training"))


def _setup(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def _classifier(args):
    from xai_core.assets import DemoPaths
    from xai_core.checkpoints import load_bundle

    return load_bundle(args.classifier or DemoPaths.at().classifier, expected_kind="classifier")


def _split(args, split: str):
    from xai_core.train.data import load_split

    return load_split(args.data, split, cache_dir=args.cache_dir)


def _train(args) -> int:
    import torch

    from xai_core.assets import ReferenceSet
    from xai_core.explain.cladec import CladecConfig, decoder_file_name, save_decoder, train_decoder

    _setup(args)
    if (args.data is None) == (args.reference is None):
        raise ParameterError("give exactly one of --data (a corpus folder: its train split) or --reference "
                             "(a reference-excerpt file)")
    clf = _classifier(args)
    configs = [CladecConfig(layer=layer, variant=v, alpha=args.alpha, steps=args.steps, batch_size=args.batch_size,
                            lr=args.lr, width=args.width, seed=args.seed, checkpoint_every=args.checkpoint_every)
               for layer in args.layers for v in args.variants]
    shapes = clf.model.layer_shapes()
    for c in configs:
        if c.layer not in shapes:
            raise ParameterError(f"unknown layer {c.layer!r}; valid layers: {list(shapes)}")
    from xai_core.fileio import check_new_files, prepare_output_dir, refuse_symlink

    out = prepare_output_dir(args.out)
    check_new_files(out, [decoder_file_name(c.layer, c.variant) for c in configs], force=True)  # no links
    refuse_symlink(out / ".checkpoints", what="checkpoint folder")
    todo = []
    for c in configs:
        path = out / decoder_file_name(c.layer, c.variant)
        if path.exists() and not (args.resume or args.force):
            raise ParameterError(f"{path} exists: pass --resume to keep finished decoders, --force to retrain")
        if path.exists() and args.resume and not args.force:
            print(f"{path.name}: done already")
            continue
        todo.append((c, path))
    data = ReferenceSet.load(args.reference) if args.reference is not None else _split(args, "train")
    source = {"data": str(args.data), "split": "train"} if args.data is not None else {"reference": str(args.reference)}
    prov = {"command": "python -m xai_core cladec train", "classifier_path": str(clf.path), **source}
    ck_dir = out / ".checkpoints"
    for k, (c, path) in enumerate(todo):
        bar = _bar(f"[{k + 1}/{len(todo)}] {c.layer} {c.variant}")
        try:
            b = train_decoder(clf, data, c, device=args.device, checkpoint=ck_dir / f"{path.stem}.ckpt.pt",
                              resume=args.resume, progress=bar, provenance=prov)
        finally:
            bar.close()
        save_decoder(path, b, classifier=clf, dtype=torch.float16 if args.float16 else None)
        (ck_dir / f"{path.stem}.ckpt.pt").unlink(missing_ok=True)
        print(f"{path}: {b.metrics}")
    if ck_dir.is_dir() and not any(ck_dir.iterdir()):
        ck_dir.rmdir()
    return 0


def _eval(args) -> int:
    from xai_core.explain.cladec import EvalConfig, draw_excerpts, evaluate_decoders, load_decoder_set
    from xai_core.explain.cladec.bundle import EVAL_FILE
    from xai_core.fileio import atomic_write_bytes, check_output_file

    check_output_file(args.json, force=args.force, what="--json")
    check_output_file(args.csv, force=args.force, what="--csv")
    _setup(args)
    clf = _classifier(args)
    store = None
    if not args.no_store:  # an unusable run store fails before the evaluation, not after
        from xai_core.store import RunStore

        store = RunStore(args.runs_dir)
    dset = load_decoder_set(args.decoders, classifier=clf)
    for name, why in dset.skipped.items():
        print(f"skipped {one_line(name)}: {one_line(why)}")
    layers = args.layers or dset.layers
    decoders = [d for d in dset.ordered() if d.layer in layers]
    if not decoders:
        raise ParameterError(f"no decoders of layers {list(layers)} in {args.decoders}; it has {dset.layers}")
    cfg = EvalConfig(n_train=args.n_train, n_test=args.n_test, steps=args.steps, batch_size=args.batch_size,
                     lr=args.lr, seed=args.seed)
    frames = clf.model.config.n_frames
    train = draw_excerpts(_split(args, "train"), cfg.n_train, seed=cfg.seed, frames=frames)
    test = draw_excerpts(_split(args, args.test_split), cfg.n_test, seed=cfg.seed + 1, frames=frames)
    bar = _bar("retraining")
    try:
        ev = evaluate_decoders(clf, decoders, train=train, test=test, config=cfg, device=args.device, progress=bar,
                               data_info={"data": str(args.data), "test_split": args.test_split})
    finally:
        bar.close()
    print(printable(ev.format()))
    for layer, c in ev.claim().items():
        print(f"{layer}: ClaDec more informative than RefAE: {c['cladec_more_informative']}; RefAE reconstructs "
              f"better: {c['refae_reconstructs_better']}"
              + (f"; ClaDec beats the random floor: {c['cladec_beats_random']}" if "cladec_beats_random" in c else ""))
    blob = json.dumps(ev.to_dict(), indent=1).encode()
    if not args.no_save:  # the decoder folder's own evaluation file: rewritten by design
        atomic_write_bytes(Path(args.decoders) / EVAL_FILE, blob)
    if args.json:
        atomic_write_bytes(Path(args.json), blob, overwrite=args.force)
    if args.csv:
        atomic_write_bytes(Path(args.csv), ev.csv().encode(), overwrite=args.force)
    if store is not None:
        rid = store.save_cladec_eval(ev, classifier=clf, decoders=args.decoders)
        print(f"stored as run {rid} in {store.root.resolve()}")
        store.ensure_complete(rid)  # NaN / inf in the table: stored as failed, exit status 1
    return 0


def _decode(args) -> int:
    import torch

    from xai_core.assets import DemoPaths, ReferenceSet
    from xai_core.audio import load_audio, log_mel, mel_to_audio
    from xai_core.audio.export import wav_bytes
    from xai_core.audio.features import excerpt_at
    from xai_core.explain.cladec import VARIANTS, decode, load_decoder, load_decoder_set, rows_figure
    from xai_core.fileio import atomic_write_bytes, check_new_files, figure_png, prepare_output_dir

    _setup(args)
    out = prepare_output_dir(args.out)
    clf = _classifier(args)
    src = Path(args.decoders)
    decoders = [load_decoder(src, classifier=clf)] if src.is_file() else \
        load_decoder_set(src, classifier=clf).ordered()
    frames = clf.model.config.n_frames
    if args.input == "excerpt" or args.input is None:
        ref = ReferenceSet.load(args.reference or DemoPaths.at().reference)
        if not 0 <= args.excerpt < len(ref):
            raise ParameterError(f"--excerpt {args.excerpt} is outside [0, {len(ref) - 1}] for {len(ref)} excerpts")
        x = ref.logmel[args.excerpt]
        label = f"excerpt {args.excerpt} ({ref.sources[args.excerpt]})"
    else:
        if not args.offset >= 0:
            raise ParameterError(f"--offset {args.offset} must be >= 0 seconds")
        wave = load_audio(args.input, sample_rate=clf.mel.sample_rate, offset=args.offset,
                          duration=frames * clf.mel.hop_length / clf.mel.sample_rate + 0.2)
        x = excerpt_at(log_mel(wave, clf.mel), start=0, excerpt_frames=frames, name=f"{args.input} from {args.offset} s")
        label = f"{args.input} at {args.offset} s"
    res = decode(clf, decoders, x[None], device=args.device)
    names = ["input"] + [f"{layer}_{v}" for layer, v in res.keys]
    check_new_files(out, ["decoded.png"] + [f"{name}.wav" for name in names], force=args.force)
    layers = list(dict.fromkeys(layer for layer, _ in res.keys))
    variants = [v for v in VARIANTS if any(v == vv for _, vv in res.keys)]
    atomic_write_bytes(out / "decoded.png", figure_png(rows_figure(res, layers, variants, cfg=clf.mel), dpi=110),
                       overwrite=args.force, root=out)
    panels = [res.logmel[0]] + [res.recon[k][0] for k in res.keys]
    with torch.no_grad():
        waves = mel_to_audio(torch.stack(panels), cfg=clf.mel, n_iter=args.gl_iters).numpy()
    gain_peak = max(float(abs(w).max()) for w in waves) or 1.0
    for name, w in zip(names, waves, strict=True):
        atomic_write_bytes(out / f"{name}.wav", wav_bytes(w, sample_rate=clf.mel.sample_rate, peak=gain_peak),
                           overwrite=args.force, root=out)
    print(f"decoded {printable(label, keep='')} with {len(decoders)} decoders -> {out}/decoded.png and {len(names)} WAVs "
          "(one common gain: relative loudness kept)")
    for k, v in res.summary().items():
        print(f"  {k}: {v:.4f}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classifier", type=Path, help="classifier bundle (default: the demo's)")
    add_device(p)
    p.add_argument("--threads", type=THREADS, default=0, help="CPU threads for torch (0 = torch's default)")


def register(sub) -> None:
    p = sub.add_parser("cladec", help="ClaDec: decode layer activations (train, evaluate, decode)", description=HELP)
    s = p.add_subparsers(dest="cladec_command", metavar="WHAT", required=True)

    t = s.add_parser("train", help="train decoders of layers (ClaDec, RefAE, random-feature floor)", description=HELP)
    _common(t)
    t.add_argument("--layers", type=_names, default=("conv2", "conv4", "fc1", "fc2"),
                   help="comma-separated layers to decode (conv1 ... fc2, logit)")
    t.add_argument("--variants", type=_names, default=("cladec", "refae", "random"),
                   help="cladec (the classifier's layer), refae (reference auto-encoder), random (decoder of a "
                        "randomly re-initialised classifier)")
    t.add_argument("--alpha", type=FRACTION, default=0.001,
                   help="classifier-term weight in [0, 1): (1-alpha) MSE + alpha BCE(C(x_hat), y); RefAE uses 0")
    t.add_argument("--data", type=Path, help="corpus folder (Jamendo layout): trains on its train split")
    t.add_argument("--reference", type=Path, help="...or a reference-excerpt file (.safetensors)")
    t.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder")
    t.add_argument("--steps", type=STEPS, default=1500, help="optimisation steps per decoder")
    t.add_argument("--batch-size", type=BATCH, default=32)
    t.add_argument("--lr", type=LR, default=1e-3, help="Adam learning rate")
    t.add_argument("--width", type=float_range(0.05, 8.0), default=1.0,
                   help="decoder channels relative to the encoder's")
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--checkpoint-every", type=int_range(0, 10_000_000), default=200,
                   help="steps between resumable checkpoints")
    t.add_argument("--out", type=Path, required=True, help="output folder: LAYER_VARIANT.safetensors per decoder")
    t.add_argument("--resume", action="store_true", help="keep finished decoders, continue interrupted ones")
    t.add_argument("--force", action="store_true", help="retrain and overwrite existing decoders")
    t.add_argument("--float16", action="store_true", help="store the weights as float16")
    t.set_defaults(func=_train)

    e = s.add_parser("eval", help="the paper's evaluation: retrain classifiers on reconstructions, test on the "
                                  "test split", description=HELP)
    _common(e)
    e.add_argument("--decoders", type=Path, required=True, help="decoder folder (cladec train --out)")
    e.add_argument("--data", type=Path, required=True, help="corpus folder (Jamendo layout)")
    e.add_argument("--test-split", default="test", choices=("test", "valid"), help="split the retrained models are "
                   "tested on (never the training split)")
    e.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder")
    e.add_argument("--layers", type=_names, default=None, help="only these layers (default: all in the folder)")
    e.add_argument("--n-train", type=int_range(2, MAX_COUNT), default=4096,
                   help="training-split excerpts (reconstructed per decoder)")
    e.add_argument("--n-test", type=int_range(2, MAX_COUNT), default=2048, help="test-split excerpts")
    e.add_argument("--steps", type=STEPS, default=600, help="steps of each retrained classifier")
    e.add_argument("--batch-size", type=BATCH, default=32)
    e.add_argument("--lr", type=LR, default=1e-3, help="Adam learning rate of the retrained classifiers")
    e.add_argument("--seed", type=SEED, default=0)
    e.add_argument("--json", type=Path, help="also write the table as JSON here")
    e.add_argument("--csv", type=Path, help="also write the table as CSV here")
    add_force(e, "existing --json / --csv files")
    e.add_argument("--no-save", action="store_true", help="do not write eval.json into the decoder folder")
    e.add_argument("--runs-dir", type=Path, default=None, help="run store (default $XAI_RUNS_DIR or ./runs)")
    e.add_argument("--no-store", action="store_true", help="do not record the evaluation in the run store")
    e.set_defaults(func=_eval)

    d = s.add_parser("decode", help="reconstruct one excerpt at every decoded layer: PNG and WAVs", description=HELP)
    _common(d)
    d.add_argument("decoders", help="a decoder folder or one decoder bundle")
    d.add_argument("input", nargs="?", default=None,
                   help="an audio file (excerpt from --offset), or 'excerpt' / nothing: a reference excerpt")
    d.add_argument("--offset", type=SECONDS, default=0.0, help="start of the excerpt in the audio file (s)")
    d.add_argument("--excerpt", type=int_range(0, MAX_COUNT), default=0,
                   help="reference excerpt index (with 'excerpt')")
    d.add_argument("--reference", type=Path, help="reference-excerpt file (default: the demo's)")
    d.add_argument("--gl-iters", type=GL_ITERS, default=100, help="Griffin-Lim iterations for the WAVs")
    d.add_argument("--out", type=Path, required=True, help="output folder for decoded.png and the WAVs")
    add_force(d, "decoded.png and WAVs of an earlier run in --out")
    d.set_defaults(func=_decode)
