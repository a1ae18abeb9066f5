"""``python -m xai_core train classifier|gan|reference`` and ``python -m xai_core eval classifier``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path

from xai_core.cliargs import (
    BATCH,
    FRACTION,
    LR,
    MAX_COUNT,
    PROBABILITY,
    SEED,
    STEPS,
    THREADS,
    add_device,
    add_force,
    float_range,
    int_range,
)
from xai_core.errors import DataError, ParameterError
from xai_core.fileio import atomic_write_text, check_output_file, prepare_output_dir


def _command_line(args) -> str:
    """The full command of this run with every option spelled out (defaults included), rebuilt
    from the parsed arguments, so the provenance is exact however the command was invoked."""
    parser = args._parser
    words = ["python", "-m", "xai_core", *args._words]
    for action in parser._actions:
        if action.dest in ("help", "func") or not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if not action.option_strings:
            words += [str(v) for v in (value if isinstance(value, list) else [value])]
        elif isinstance(action, argparse._StoreTrueAction):
            words += [action.option_strings[0]] if value else []
        elif isinstance(action, argparse._StoreFalseAction):
            words += [] if value else [action.option_strings[0]]
        elif isinstance(action, argparse._AppendAction):  # a repeatable option: once per value
            for v in value or []:
                words += [action.option_strings[0], str(v)]
        elif value is not None:
            words += [action.option_strings[0], str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _setup_torch(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.cuda.is_available():
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False


def _read_corpus_json(cj: Path) -> dict:
    try:
        c = json.loads(cj.read_text())
        if not isinstance(c, dict):
            raise TypeError("not a JSON object")
        return c
    except (OSError, ValueError, TypeError, RecursionError) as exc:
        raise DataError(f"{str(cj)!r} is not a readable corpus description ({type(exc).__name__}: {exc})") from None


def _corpus_info(root: Path) -> dict:
    info = {"path": str(root)}
    cj = root / "corpus.json"
    if cj.is_file():
        c = _read_corpus_json(cj)
        info.update({"corpus_seed": c.get("seed"), "corpus_version": c.get("corpus_version"),
                     "generator": c.get("generator"), "totals": c.get("totals")})
    return info


def _song_splits(root: Path) -> dict[str, str] | None:
    """song -> split of a demo-corpus folder (from its corpus.json), None for other corpora."""
    cj = root / "corpus.json"
    if not cj.is_file():
        return None
    try:
        return {f["song"]: f["split"] for f in _read_corpus_json(cj).get("files", [])}
    except (TypeError, KeyError) as exc:
        raise DataError(f"{str(cj)!r}: its file list is damaged ({type(exc).__name__}: {exc})") from None


def _check_extra_corpora(main: Path, extras: list[Path]) -> None:
    """Refuse extra renderings that would train on the songs of ``main``'s test split."""
    test_songs = {s for s, sp in (_song_splits(main) or {}).items() if sp == "test"}
    for e in extras:
        if Path(e).resolve() == Path(main).resolve():
            raise ParameterError(f"--extra-data {str(e)!r} is the --data corpus itself")
        splits = _song_splits(Path(e))
        if splits is None:
            if test_songs:
                raise ParameterError(f"--extra-data {str(e)!r} has no corpus.json: cannot check that it "
                                     "does not contain the test songs of --data")
            continue
        leak = sorted(s for s, sp in splits.items() if sp in ("train", "valid") and s in test_songs)
        if leak:
            raise ParameterError(f"--extra-data {str(e)!r} trains on test songs of --data: {leak} "
                                 "(build it with the same --split-seed)")


def _bar(desc: str, total: int | None = None):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=1.0)


def _common(p: argparse.ArgumentParser) -> None:
    add_device(p)
    p.add_argument("--threads", type=THREADS, default=0, help="CPU threads for torch (0 = torch's default)")
    p.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder")
    p.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="allow non-deterministic kernels")


def _eval_threshold(text: str) -> str:
    if text in ("tune", "bundle"):
        return text
    try:
        PROBABILITY(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'tune', 'bundle' or a probability in [0, 1], got {text!r}") \
            from None
    return text


def register(sub) -> None:
    tr = sub.add_parser("train", help="train the classifier, the spectrogram GAN or a robust classifier; build a reference set")
    tsub = tr.add_subparsers(dest="train_command", metavar="WHAT", required=True)

    c = tsub.add_parser("classifier", help="train an SVDNet singing-voice detector (paper recipe)")
    c.add_argument("--data", type=Path, required=True, help="corpus folder (Jamendo layout)")
    c.add_argument("--extra-data", type=Path, action="append", default=[], metavar="FOLDER",
                   help="another rendering of the corpus (repeatable): its train and valid splits join "
                        "training and validation; test comes from --data only, and no song of that test "
                        "split may be in an extra corpus' train or valid split")
    c.add_argument("--out", type=Path, required=True, help="output bundle (.safetensors)")
    c.add_argument("--preset", default="lite", help="SVDNet preset: paper, lite, tiny")
    c.add_argument("--epochs", type=int_range(1, 100_000), default=20)
    c.add_argument("--batches-per-epoch", type=STEPS, default=2000)
    c.add_argument("--batch-size", type=BATCH, default=32)
    c.add_argument("--lr", type=LR, default=0.01)
    c.add_argument("--lr-decay", type=float_range(0.0, 1.0, lo_open=True), default=0.85,
                   help="learning-rate factor per epoch")
    c.add_argument("--momentum", type=FRACTION, default=0.95)
    c.add_argument("--no-nesterov", dest="nesterov", action="store_false")
    c.add_argument("--label-smoothing", type=float_range(0.0, 0.5, hi_open=True), default=0.02,
                   help="targets 0.02/0.98; 0 = hard")
    c.add_argument("--dropout", type=FRACTION, default=0.5)
    c.add_argument("--no-augment", action="store_true", help="switch all augmentation off")
    c.add_argument("--pitch-shift", type=FRACTION, default=0.3, help="max pitch shift (fraction)")
    c.add_argument("--time-stretch", type=FRACTION, default=0.3, help="max time stretch (fraction)")
    c.add_argument("--filter-db", type=float_range(0.0, 60.0), default=10.0, help="max random filter gain (dB)")
    c.add_argument("--mix-prob", type=PROBABILITY, default=0.0,
                   help="chance of mixing a random non-vocal excerpt into an example (0 = paper recipe)")
    c.add_argument("--mix-attenuation-db", type=float_range(0.0, 60.0), default=12.0,
                   help="the mixed-in excerpt is attenuated by 0..this many dB")
    c.add_argument("--remix-prob", type=PROBABILITY, default=0.0,
                   help="stem remixing: chance that an example's voice is put over the accompaniment of "
                        "another random excerpt, at its own voice-to-accompaniment ratio (needs corpora "
                        "built with 'data build-demo --stems'; 0 = paper recipe)")
    c.add_argument("--remix-jitter-db", type=float_range(0.0, 24.0), default=3.0,
                   help="the remixed voice-to-accompaniment ratio moves by up to +-this many dB")
    c.add_argument("--ema", type=FRACTION, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay per batch and "
                        "save it instead of the last SGD iterate (e.g. 0.999; 0 = off, the paper's recipe); "
                        "both are validated every epoch and the iterate's test metrics are stored too")
    c.add_argument("--median-frames", type=int_range(1, 100_000), default=56)
    c.add_argument("--seed", type=SEED, default=0)
    c.add_argument("--checkpoint", type=Path, default=None, help="training checkpoint (default OUT.ckpt.pt)")
    c.add_argument("--resume", action="store_true", help="continue from the checkpoint if present (an existing "
                   "--out is then replaced)")
    c.add_argument("--float16", action="store_true", help="store the weights as float16")
    add_force(c, "an existing --out bundle")
    _common(c)
    c.set_defaults(func=_train_classifier, _parser=c, _words=["train", "classifier"])

    g = tsub.add_parser("gan", help="train the spectrogram GAN and report its sample quality")
    g.add_argument("--data", type=Path, required=True, help="corpus folder (Jamendo layout); trains on train")
    g.add_argument("--classifier", type=Path, required=True, help="classifier bundle (normaliser, quality)")
    g.add_argument("--out", type=Path, required=True, help="output generator bundle (.safetensors)")
    g.add_argument("--preset", default="lite", help="generator preset: paper, lite, tiny")
    g.add_argument("--critic-preset", default=None, help="discriminator preset (default: --preset)")
    g.add_argument("--loss", default="hinge", choices=("hinge", "wgan-gp"))
    g.add_argument("--steps", type=STEPS, default=6000)
    g.add_argument("--batch-size", type=BATCH, default=32)
    g.add_argument("--critic-steps", type=int_range(1, 100), default=1)
    g.add_argument("--lr-g", type=LR, default=2e-4)
    g.add_argument("--lr-d", type=LR, default=2e-4)
    g.add_argument("--beta1", type=FRACTION, default=0.0)
    g.add_argument("--beta2", type=FRACTION, default=0.9)
    g.add_argument("--gp-weight", type=float_range(0.0, 1e6), default=10.0)
    g.add_argument("--ema", type=FRACTION, default=0.999, help="generator weight averaging (0 = off)")
    g.add_argument("--seed", type=SEED, default=0)
    g.add_argument("--checkpoint", type=Path, default=None, help="training checkpoint (default OUT.ckpt.pt)")
    g.add_argument("--checkpoint-every", type=STEPS, default=250)
    g.add_argument("--select-every", type=int_range(0, 10_000_000), default=500,
                   help="every this many steps score the raw generator and its weight average by FID on the "
                        "classifier's hidden layer against the validation split of --data, and save the best "
                        "snapshot (0 = save the final weight average)")
    g.add_argument("--select-n", type=int_range(2, 100_000), default=1000,
                   help="samples (and real excerpts) per selection FID")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint if present (an existing "
                   "--out and the samples / artefacts of the run it continues are then replaced)")
    g.add_argument("--sample-dir", type=Path, default=None, help="write a sample grid PNG every --sample-every steps")
    g.add_argument("--sample-every", type=STEPS, default=500)
    g.add_argument("--report-n", type=int_range(2, 100_000), default=1000,
                   help="excerpts per set for the quality report")
    g.add_argument("--report-data", type=Path, default=None,
                   help="corpus whose test split gives the real excerpts of the report (default --data)")
    g.add_argument("--artefacts", type=Path, default=None,
                   help="folder for samples.png and samples_*.wav of the final generator")
    g.add_argument("--n-wavs", type=int_range(0, 64), default=6)
    g.add_argument("--float16", action="store_true", help="store the weights as float16")
    add_force(g, "an existing --out bundle and sample / artefact files of an earlier run")
    _common(g)
    g.set_defaults(func=_train_gan, _parser=g, _words=["train", "gan"])

    r = tsub.add_parser("reference", help="write a reference set of real excerpts with classifier responses")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--classifier", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True, help="reference .safetensors")
    r.add_argument("--n", type=int_range(1, MAX_COUNT), default=384, help="excerpts in the set")
    r.add_argument("--extremes", type=int_range(0, MAX_COUNT), default=64,
                   help="most- and least-vocal excerpts included (each)")
    r.add_argument("--candidates", type=int_range(1, 10_000_000), default=6000,
                   help="random excerpts scored to choose from (those with padding or digital silence are dropped)")
    r.add_argument("--per-clip", type=int_range(0, MAX_COUNT), default=4,
                   help="at most this many of the extremes from one clip (0 = no cap; default 4: the 64 most vocal "
                        "span at least 16 clips)")
    r.add_argument("--seed", type=SEED, default=0)
    add_force(r, "an existing --out file")
    _common(r)
    r.set_defaults(func=_reference, _parser=r, _words=["train", "reference"])

    # ``train robust`` (consistent-loss adversarial training) lives with its method; the CLI is glue, so this
    # one import upwards is the price of keeping every trainer under ``train``
    from xai_core.explain.consistency.cli import register_train

    register_train(tsub)
    from xai_core.explain.depthmaps.cli import register_train as register_explainer

    register_explainer(tsub)

    x = tsub.add_parser("export", help="copy a bundle, optionally with float16 weights")
    x.add_argument("bundle", type=Path)
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--float16", action="store_true", help="store floating weights as float16")
    add_force(x, "an existing --out bundle")
    x.set_defaults(func=_export)

    rep = tsub.add_parser("report", help="collect the demo build's numbers into report.json; judge the generator "
                                        "through the shipped classifier, write samples.png and samples_*.wav")
    rep.add_argument("--classifier", type=Path, required=True, help="the float32 classifier bundle")
    rep.add_argument("--generator", type=Path, required=True, help="the float32 generator bundle")
    rep.add_argument("--assets", type=Path, required=True, help="the demo folder (float16 bundles, reference)")
    rep.add_argument("--heldout", type=Path, required=True, help="held-out corpus (fp16 cost on its test split)")
    rep.add_argument("--timings", type=Path, default=None, help="JSON of stage durations (seconds)")
    rep.add_argument("--seed", type=SEED, default=0)
    rep.add_argument("--report-n", type=int_range(2, 100_000), default=1000,
                     help="excerpts per set for the float32 and float16 quality reports")
    rep.add_argument("--n-wavs", type=int_range(0, 64), default=6,
                     help="WAVs of the most and least vocal generator samples written next to samples.png")
    _common(rep)
    rep.set_defaults(func=_report)

    ev = sub.add_parser("eval", help="evaluate models")
    esub = ev.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    e = esub.add_parser("classifier", help="frame-wise evaluation of a classifier bundle on a corpus")
    e.add_argument("bundle", type=Path)
    e.add_argument("--data", type=Path, required=True, help="corpus folder (Jamendo layout)")
    e.add_argument("--split", default="test", choices=("train", "valid", "test", "all"),
                   help="split to test on (default test)")
    e.add_argument("--threshold", type=_eval_threshold, default="tune",
                   help="'tune' (on the corpus's valid split), 'bundle' (the bundle's stored one) or a "
                        "probability in [0, 1]")
    e.add_argument("--median-frames", type=int_range(1, 100_000), default=56)
    e.add_argument("--key", default=None, help="metrics key in the bundle (default eval:<folder name>:<split>)")
    e.add_argument("--no-write", action="store_true", help="do not write the metrics into the bundle")
    e.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    add_force(e, "an existing --json file")
    _common(e)
    e.set_defaults(func=_eval_classifier, _parser=e, _words=["eval", "classifier"])


# --------------------------------------------------------------------------- handlers

def _train_classifier(args) -> int:
    import torch

    from xai_core.audio.config import MelConfig
    from xai_core.checkpoints import default_provenance, save_bundle
    from xai_core.train.augment import AugmentConfig
    from xai_core.train.classifier import ClassifierTrainConfig, resolve_device, train_classifier
    from xai_core.train.data import load_split
    from xai_core.train.evaluate import evaluate_classifier

    # before hours of training, not after; a resumed run replaces the --out of the run it continues
    check_output_file(args.out, force=args.force or args.resume, what="--out")
    _setup_torch(args)
    mel = MelConfig()
    aug = AugmentConfig.none() if args.no_augment else AugmentConfig(
        pitch_shift=args.pitch_shift, time_stretch=args.time_stretch, filter_db=args.filter_db)
    cfg = ClassifierTrainConfig(
        preset=args.preset, epochs=args.epochs, batches_per_epoch=args.batches_per_epoch,
        batch_size=args.batch_size, lr=args.lr, lr_decay=args.lr_decay, momentum=args.momentum,
        nesterov=args.nesterov, label_smoothing=args.label_smoothing, dropout=args.dropout, augment=aug,
        seed=args.seed, median_frames=args.median_frames, mix_prob=args.mix_prob,
        mix_attenuation_db=args.mix_attenuation_db, remix_prob=args.remix_prob,
        remix_jitter_db=args.remix_jitter_db, ema_decay=args.ema)
    t0 = time.perf_counter()
    _check_extra_corpora(args.data, args.extra_data)
    stems = cfg.remix_prob > 0
    train = load_split(args.data, "train", mel=mel, cache_dir=args.cache_dir, stems=stems)
    valid = load_split(args.data, "valid", mel=mel, cache_dir=args.cache_dir)
    test = load_split(args.data, "test", mel=mel, cache_dir=args.cache_dir)
    for extra in args.extra_data:
        train = train + load_split(extra, "train", mel=mel, cache_dir=args.cache_dir, stems=stems)
        valid = valid + load_split(extra, "valid", mel=mel, cache_dir=args.cache_dir)
    print(f"data: {len(train)} train / {len(valid)} valid / {len(test)} test files, "
          f"{sum(t.frames for t in train)} train frames ({time.perf_counter() - t0:.1f} s)")
    ckpt = args.checkpoint or args.out.with_name(args.out.name + ".ckpt.pt")
    dev = resolve_device(args.device)
    bar = _bar(f"classifier {cfg.preset}", cfg.epochs * cfg.batches_per_epoch)
    last_valid: dict = {}

    def progress(done, total, info):
        if info.get("epoch_done"):
            v = info.get("valid") or {}
            last_valid.update(v)
            ve = info.get("valid_ema")
            bar.write(f"epoch {info['epoch']}: loss {info['train_loss']:.4f}, lr {info['lr']:.5f}"
                      + (f", valid error {v['error']:.2%} (raw {v['raw_error']:.2%}), AUC {v['auc']:.4f}"
                         if v else "")
                      + (f"; weight average {ve['error']:.2%}, AUC {ve['auc']:.4f}" if ve else "")
                      + f", {info['seconds']:.0f} s")
            if ve:
                last_valid.update(ve)
        post = {"ep": info["epoch"], "loss": f"{info.get('loss', info.get('train_loss', 0)):.4f}"}
        if last_valid:
            post["val_err"] = f"{last_valid['error']:.2%}"
        bar.set_postfix(post, refresh=False)
        bar.update(done - bar.n)
        return True

    try:
        run = train_classifier(train, valid, cfg, mel=mel, device=dev, checkpoint=ckpt, resume=args.resume,
                               progress=progress)
    finally:
        bar.close()
    report = evaluate_classifier(run.model, run.normaliser, valid=valid, test=test,
                                 median_frames=cfg.median_frames, device=dev)
    print(report.table())
    metrics = {"eval": {"data": str(args.data), "split": "test", **report.to_dict()},
               "history": run.history, "train_seconds": round(run.seconds, 1)}
    if run.raw_model is not None:  # what the averaging bought, on the same test split
        raw = evaluate_classifier(run.raw_model, run.normaliser, valid=valid, test=test,
                                  median_frames=cfg.median_frames, device=dev)
        metrics["eval_last_iterate"] = {"threshold": raw.threshold, "valid_error": raw.valid_error,
                                        "test": raw.test}
        print(f"weight average: test error {report.test['error']:.2%} (valid {report.valid_error:.2%}); "
              f"last SGD iterate: {raw.test['error']:.2%} (valid {raw.valid_error:.2%})")
    data_info = _corpus_info(args.data)
    if args.extra_data:
        data_info["extra"] = [_corpus_info(e) for e in args.extra_data]
    prov = default_provenance(command=_command_line(args), seed=cfg.seed, data=data_info,
                              train_config=cfg.to_dict(), device=str(dev), threads=torch.get_num_threads(),
                              weights_dtype="float16" if args.float16 else "float32")
    save_bundle(args.out, model=run.model.cpu(), kind="classifier", mel=mel, normaliser=run.normaliser,
                preset=cfg.preset, provenance=prov, metrics=metrics,
                dtype=torch.float16 if args.float16 else None)
    print(f"wrote {args.out} (test error {report.test['error']:.2%}, F1 {report.test['f1']:.4f}, "
          f"AUC {report.test['roc_auc']:.4f}; training {run.seconds:.0f} s)")
    return 0


def _eval_classifier(args) -> int:
    from xai_core.checkpoints import load_bundle, update_bundle_metadata
    from xai_core.errors import ParameterError
    from xai_core.train.classifier import resolve_device
    from xai_core.train.data import load_split
    from xai_core.train.evaluate import evaluate_classifier

    check_output_file(args.json, force=args.force, what="--json")
    _setup_torch(args)
    dev = resolve_device(args.device)
    b = load_bundle(args.bundle, device=dev, expected_kind="classifier")
    if b.normaliser is None:
        raise ParameterError(f"{args.bundle}: classifier bundle has no normaliser")
    test = load_split(args.data, args.split, mel=b.mel, cache_dir=args.cache_dir)
    valid: list = []
    threshold: float | None
    if args.threshold == "tune":
        valid = load_split(args.data, "valid", mel=b.mel, cache_dir=args.cache_dir)
        threshold = None
    elif args.threshold == "bundle":
        try:
            threshold = float(b.metrics["eval"]["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"{args.bundle}: has no stored threshold (metrics.eval.threshold)") from exc
    else:
        try:
            threshold = float(args.threshold)
        except ValueError as exc:
            raise ParameterError(f"--threshold {args.threshold!r}: expected tune, bundle or a number") from exc
    bar = _bar("eval", None)

    def progress(done, total, info):
        bar.total = total
        bar.update(done - bar.n)
        return True

    try:
        report = evaluate_classifier(b.model, b.normaliser, valid=valid, test=test, threshold=threshold,
                                     median_frames=args.median_frames, device=dev, progress=progress)
    finally:
        bar.close()
    print(report.table())
    key = args.key or f"eval:{args.data.resolve().name}:{args.split}"
    doc = {"data": str(args.data), "split": args.split, "threshold_source": args.threshold,
           "corpus": _corpus_info(args.data), **report.to_dict()}
    if not args.no_write:
        update_bundle_metadata(args.bundle, metrics={key: doc})
        print(f"metrics written to {args.bundle} under {key!r}")
    if args.json:
        atomic_write_text(args.json, json.dumps(doc, indent=1, default=float) + "\n", overwrite=args.force)
    return 0


def _train_gan(args) -> int:
    import torch

    from xai_core.checkpoints import default_provenance, load_bundle, save_bundle
    from xai_core.train.classifier import resolve_device
    from xai_core.train.data import load_split
    from xai_core.train.gan import (
        GanTrainConfig,
        fid_scorer,
        format_quality,
        gan_quality_report,
        random_excerpts,
        train_gan,
    )
    # before hours of training, not after; a resumed run replaces the --out of the run it continues
    check_output_file(args.out, force=args.force or args.resume, what="--out")
    if args.sample_dir:
        _check_folder(args.sample_dir, "--sample-dir", ["samples_*.png"], force=args.force or args.resume)
    if args.artefacts:
        _check_folder(args.artefacts, "--artefacts", ["samples.png", "samples_vocal_*.wav",
                                                      "samples_nonvocal_*.wav"], force=args.force or args.resume)
    _setup_torch(args)
    dev = resolve_device(args.device)
    clf = load_bundle(args.classifier, device=dev, expected_kind="classifier")
    if clf.normaliser is None:
        raise ParameterError(f"{args.classifier}: classifier bundle has no normaliser")
    mel = clf.mel
    cfg = GanTrainConfig(preset=args.preset, critic_preset=args.critic_preset or args.preset, loss=args.loss,
                         steps=args.steps, batch_size=args.batch_size, critic_steps=args.critic_steps,
                         lr_g=args.lr_g, lr_d=args.lr_d, beta1=args.beta1, beta2=args.beta2,
                         gp_weight=args.gp_weight, ema_decay=args.ema, seed=args.seed,
                         sample_every=args.sample_every if args.sample_dir else 0,
                         checkpoint_every=args.checkpoint_every, select_every=args.select_every)
    train = load_split(args.data, "train", mel=mel, cache_dir=args.cache_dir)
    scorer = None
    if cfg.select_every:  # selection looks at the validation split only; the report uses test data
        valid = load_split(args.data, "valid", mel=mel, cache_dir=args.cache_dir)
        valid_x, _, _ = random_excerpts(valid, args.select_n, seed=args.seed, frames=mel.excerpt_frames)
        scorer = fid_scorer(clf.model, clf.normaliser, valid_x, n=args.select_n, seed=args.seed + 3)
    ckpt = args.checkpoint or args.out.with_name(args.out.name + ".ckpt.pt")
    bar = _bar(f"gan {cfg.preset}", cfg.steps)

    def progress(done, total, info):
        bar.set_postfix({"d": f"{info['d_loss']:.3f}", "g": f"{info['g_loss']:.3f}"}, refresh=False)
        bar.update(done - bar.n)
        return True

    def hook(step, x):
        p = torch.sigmoid(clf.model(clf.normaliser.apply(x.to(dev)))).cpu()
        _save_grid(x, args.sample_dir / f"samples_{step:06d}.png", [f"p={v:.2f}" for v in p.tolist()],
                   mel, f"GAN samples after {step} steps (fixed latents), p = classifier p(vocal)")

    try:
        run = train_gan(train, clf.normaliser, cfg, mel=mel, device=dev, checkpoint=ckpt, resume=args.resume,
                        progress=progress, sample_hook=hook if args.sample_dir else None, scorer=scorer)
    finally:
        bar.close()
    if run.selected is not None:
        sel = run.selected
        print(f"selected the {'weight average' if sel['which'] == 'ema' else 'raw generator'} after step "
              f"{sel['step']} (validation FID {sel['score']:.3f}; scored {len(run.selection)} times)")
    report_root = args.report_data or args.data
    real_tracks = load_split(report_root, "test", mel=mel, cache_dir=args.cache_dir)
    real, _, _ = random_excerpts(real_tracks, 2 * args.report_n, seed=args.seed, frames=mel.excerpt_frames)
    quality = gan_quality_report(run.generator, clf.model, clf.normaliser, real, n=args.report_n, seed=args.seed)
    quality["real_data"] = f"{report_root} (test split)"
    print(format_quality(quality))
    metrics = {"quality": quality, "history": run.history, "train_seconds": round(run.seconds, 1),
               "classifier_identity": clf.identity, "selection": run.selection, "selected": run.selected}
    prov = default_provenance(command=_command_line(args), seed=cfg.seed, data=_corpus_info(args.data),
                              classifier=str(args.classifier), train_config=cfg.to_dict(), device=str(dev),
                              threads=torch.get_num_threads(),
                              weights_dtype="float16" if args.float16 else "float32")
    save_bundle(args.out, model=run.generator.cpu(), kind="generator", mel=mel, normaliser=clf.normaliser,
                preset=cfg.preset, provenance=prov, metrics=metrics,
                dtype=torch.float16 if args.float16 else None)
    print(f"wrote {args.out} (training {run.seconds:.0f} s)")
    if args.artefacts:
        _write_artefacts(run.generator.to(dev), clf, args.artefacts, seed=args.seed + 7, n_wavs=args.n_wavs)
    return 0


def _check_folder(folder: Path, what: str, patterns: list[str], *, force: bool) -> None:
    """An output folder (created now) without files matching ``patterns`` unless ``force``, before any work."""
    folder = prepare_output_dir(folder, what=what)
    found = sorted(p.name for pat in patterns for p in folder.glob(pat))
    if found and not force:
        raise ParameterError(f"{what} {str(folder)!r} already has {', '.join(found[:3])}"
                             f"{f' and {len(found) - 3} more' if len(found) > 3 else ''}; pass --force to overwrite")


def _save_grid(logmel, path: Path, titles: list[str], mel, title: str) -> None:
    from xai_core.fileio import atomic_write_bytes, figure_png
    from xai_core.viz import spectrogram_grid

    fig = spectrogram_grid(logmel.numpy(), titles, cfg=mel, ncols=4)
    fig.suptitle(title, fontsize=9)
    atomic_write_bytes(path, figure_png(fig, dpi=72))


def _write_artefacts(generator, clf, folder: Path, *, seed: int, n_wavs: int) -> None:
    """samples.png (16 samples with their p(vocal)) and WAVs of the most and least vocal ones,
    rendered with the mel pseudo-inverse + 100 Griffin-Lim iterations, sharing one gain."""
    import torch

    from xai_core.audio.export import wav_bytes_set
    from xai_core.audio.inversion import mel_to_audio
    from xai_core.train.gan import generate

    dev = next(clf.model.parameters()).device
    x = generate(generator, 16, seed=seed)  # (16, T, M)
    with torch.no_grad():
        p = torch.sigmoid(clf.model(clf.normaliser.apply(x.to(dev)))).cpu()  # (16,)
    _save_grid(x, folder / "samples.png", [f"p(vocal)={v:.2f}" for v in p.tolist()], clf.mel,
               f"generator samples (z seed {seed}), p = classifier p(vocal)")
    order = torch.argsort(p, descending=True).tolist()
    k = max(1, n_wavs // 2)
    pick = order[:k] + order[-k:]
    waves = mel_to_audio(x[pick], cfg=clf.mel, n_iter=100)  # (2k, L)
    names = [f"samples_vocal_{j + 1}.wav" for j in range(k)] + [f"samples_nonvocal_{j + 1}.wav" for j in range(k)]
    from xai_core.fileio import atomic_write_bytes

    for name, data in zip(names, wav_bytes_set(list(waves), sample_rate=clf.mel.sample_rate), strict=True):
        atomic_write_bytes(folder / name, data, root=folder)
    print(f"wrote samples.png and {len(names)} WAVs to {folder} "
          f"(p(vocal) of the WAVs: {[round(float(p[i]), 3) for i in pick]})")


def _reference(args) -> int:
    import torch

    from xai_core.assets import ReferenceSet
    from xai_core.checkpoints import load_bundle
    from xai_core.fileio import atomic_write_with
    from xai_core.train.classifier import resolve_device
    from xai_core.train.data import load_split
    from xai_core.train.reference import select_reference

    check_output_file(args.out, force=args.force, what="--out")
    _setup_torch(args)
    dev = resolve_device(args.device)
    clf = load_bundle(args.classifier, device=dev, expected_kind="classifier")
    tracks = load_split(args.data, "train", mel=clf.mel, cache_dir=args.cache_dir) + \
        load_split(args.data, "valid", mel=clf.mel, cache_dir=args.cache_dir)
    ref: ReferenceSet = select_reference(tracks, clf.model, clf.normaliser, n=args.n, extremes=args.extremes,
                                         candidates=args.candidates, seed=args.seed, mel=clf.mel,
                                         per_clip=args.per_clip or None)
    ref.info.update({"data": _corpus_info(args.data), "classifier_identity": clf.identity,
                     "command": _command_line(args)})
    if (Path(args.data) / "corpus.json").is_file():  # a demo corpus: it knows each clip's singer, song, ...
        from xai_core.data.tags import demo_corpus_tags

        ref.tags = demo_corpus_tags(args.data, ref.sources, ref.labels.tolist())
    atomic_write_with(args.out, ref.save, overwrite=args.force)
    lg = torch.tensor(ref.info["logits"])
    print(f"wrote {args.out}: {len(ref)} excerpts from {ref.n_clips} clips, {int(ref.labels.sum())} labelled vocal, "
          f"logits {float(lg.min()):.2f} .. {float(lg.max()):.2f}; {ref.info['unclean_candidates']} candidates with "
          "padding or digital silence left out")
    return 0


def _export(args) -> int:
    import torch

    from xai_core.checkpoints import load_bundle, save_bundle

    check_output_file(args.out, force=args.force, what="--out")
    b = load_bundle(args.bundle)
    prov = {**b.provenance, "exported_from": str(args.bundle), "source_identity": b.identity,
            "weights_dtype": "float16" if args.float16 else "float32"}
    save_bundle(args.out, model=b.model, kind=b.kind, mel=b.mel, normaliser=b.normaliser, preset=b.preset,
                provenance=prov, metrics=b.metrics, dtype=torch.float16 if args.float16 else None)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"{'float16' if args.float16 else 'float32'} weights)")
    return 0


def _report(args) -> int:
    """Numbers of the demo build: classifier and GAN metrics, float16 cost, sizes, timings."""
    import torch

    from xai_core.assets import DemoPaths, ReferenceSet
    from xai_core.checkpoints import load_bundle
    from xai_core.train.classifier import resolve_device
    from xai_core.train.data import load_split
    from xai_core.train.evaluate import evaluate_classifier
    from xai_core.train.gan import gan_quality_report, random_excerpts

    _setup_torch(args)
    dev = resolve_device(args.device)
    paths = DemoPaths.at(args.assets)
    c32 = load_bundle(args.classifier, device=dev, expected_kind="classifier")
    g32 = load_bundle(args.generator, device=dev, expected_kind="generator")
    c16 = load_bundle(paths.classifier, device=dev, expected_kind="classifier")
    g16 = load_bundle(paths.generator, device=dev, expected_kind="generator")
    ref = ReferenceSet.load(paths.reference)
    # The generator is judged through the classifier it ships with, whichever run trained it against
    # a classifier: both must share the normaliser (the critic saw the data through it), i.e. the
    # classifier must come from the same training data.
    if g32.normaliser is None or not (torch.allclose(g32.normaliser.mean.cpu(), c32.normaliser.mean.cpu())
                                      and torch.allclose(g32.normaliser.std.cpu(), c32.normaliser.std.cpu())):
        raise ParameterError(f"{args.generator} was trained against another normaliser than {args.classifier}'s "
                             "(another training set): retrain the GAN with this classifier")
    test = load_split(args.heldout, "test", mel=c32.mel, cache_dir=args.cache_dir)
    try:
        thr = float(c32.metrics["eval"]["threshold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"{args.classifier}: has no stored threshold (metrics.eval.threshold)") from exc
    r32 = evaluate_classifier(c32.model, c32.normaliser, valid=[], test=test, threshold=thr, device=dev)
    r16 = evaluate_classifier(c16.model, c16.normaliser, valid=[], test=test, threshold=thr, device=dev)
    real, _, _ = random_excerpts(test, 2 * args.report_n, seed=args.seed, frames=c32.mel.excerpt_frames)
    q32 = gan_quality_report(g32.model, c32.model, c32.normaliser, real, n=args.report_n, seed=args.seed)
    q16 = gan_quality_report(g16.model, c16.model, c16.normaliser, real, n=args.report_n, seed=args.seed)
    for q in (q32, q16):
        q["real_data"] = f"{args.heldout} (test split)"
    _write_artefacts(g32.model, c32, Path(args.assets), seed=args.seed + 7, n_wavs=args.n_wavs)
    with torch.no_grad():
        z = torch.randn(256, g32.model.z_dim, generator=torch.Generator().manual_seed(args.seed)).to(dev)
        x32, x16 = g32.model(z), g16.model(z)  # (256, T, M)
        gen_dev = float((x32 - x16).abs().max())
        l32 = c32.model(c32.normaliser.apply(x32))
        l16 = c16.model(c16.normaliser.apply(x32))
        logit_dev = float((l32 - l16).abs().max())
    keys = ("error", "precision", "recall", "specificity", "f1", "roc_auc")
    doc = {
        "classifier": {
            "preset": c32.preset, "parameters": c32.n_parameters, "threshold": thr,
            "corpus_test": {k: c32.metrics["eval"]["test"][k] for k in keys},
            "corpus_test_raw_error": c32.metrics["eval"]["test_raw"]["error"],
            "heldout_test_float32": {k: r32.test[k] for k in keys},
            "heldout_test_float16": {k: r16.test[k] for k in keys},
            "heldout_per_file_float16": [vars(r) for r in r16.per_file],
            "float16_max_abs_logit_change": logit_dev,
            "train_seconds": c32.metrics.get("train_seconds"), "history": c32.metrics.get("history"),
            "provenance": c32.provenance,
        },
        "generator": {
            "preset": g32.preset, "parameters": g32.n_parameters,
            "quality_float32": {k: v for k, v in q32.items() if not k.startswith("band_mean")},
            "quality_float16": {k: v for k, v in q16.items() if not k.startswith("band_mean")},
            "float16_max_abs_logmel_change": gen_dev,
            "train_seconds": g32.metrics.get("train_seconds"), "provenance": g32.provenance,
            "selected": g32.metrics.get("selected"), "selection": g32.metrics.get("selection"),
            "judged_by_classifier": c32.identity,
        },
        "reference": {"n": len(ref), "vocal_labelled": int(ref.labels.sum()), "rule": ref.info.get("rule")},
        "heldout": _corpus_info(args.heldout),
        "files_bytes": {p.name: p.stat().st_size for p in sorted(Path(args.assets).iterdir()) if p.is_file()},
    }
    if args.timings and args.timings.is_file():
        try:
            doc["timings_seconds"] = json.loads(args.timings.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise DataError(f"--timings {str(args.timings)!r} is not readable JSON ({exc})") from None
    out = Path(args.assets) / "report.json"  # the report's own files in --assets are rewritten by design
    atomic_write_text(out, json.dumps(doc, indent=1, default=float) + "\n")
    print(f"held-out test error: float32 {r32.test['error']:.2%}, float16 {r16.test['error']:.2%} "
          f"(max logit change {logit_dev:.2e}); generator FID hidden fp32 {q32['fid_hidden']:.3f}, "
          f"fp16 {q16['fid_hidden']:.3f} (floor {q16['fid_hidden_floor']:.3f})")
    print(f"wrote {out}")
    return 0
