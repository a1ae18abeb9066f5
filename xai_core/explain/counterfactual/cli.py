"""``python -m xai_core counterfactual AUDIO --offset S``: make an excerpt of a recording more or less vocal."""

from __future__ import annotations

import json
from pathlib import Path

from xai_core.cliargs import GL_ITERS, SECONDS, SEED, THREADS, add_device, add_force, float_range, int_range

# the config's bounds (xai_core.explain.counterfactual.config; spelt out here: --help imports no torch)
MAX_ITER, MAX_LR, MAX_LAM, MAX_BETA, MAX_RESTARTS = 100_000, 100.0, 1e6, 1e6, 256

HELP = ("Counterfactuals (this project's method): invert a real excerpt into the GAN's latent space (batched "
        "restarts), then run activation maximisation from that code toward more and/or less vocal with a proximity "
        "term beta * ||z - z_inv||^2; the reconstruction error is judged against the real-vs-real spread of the "
        "reference set. Prints the numbers, writes a PNG and WAVs (one common gain) to --out and stores the run.")

DIRECTIONS = {"max": ("max",), "min": ("min",), "both": ("max", "min")}
WAV_NAMES = {"max": "more_vocal.wav", "min": "less_vocal.wav"}  # = config.WAV_NAMES (--help imports no torch)


def _planned(directions) -> list[str]:
    return ["counterfactual.png", "counterfactual.json", "original.wav", "reconstruction.wav",
            *[WAV_NAMES[d] for d in directions]]


def _config(args):
    from xai_core.explain.counterfactual.config import CounterfactualConfig

    return CounterfactualConfig(restarts=args.restarts, invert_steps=args.invert_steps, invert_lr=args.invert_lr,
                                invert_prior=args.invert_prior, beta=args.beta, am_lr=args.lr, am_iters=args.iters,
                                am_lam=args.lam, prior=args.prior, directions=DIRECTIONS[args.direction],
                                trace_every=args.trace_every, spread_quantile=args.spread_quantile, seed=args.seed)


def _run(args) -> int:
    import torch

    from xai_core.assets import DemoPaths, ReferenceSet
    from xai_core.audio.export import wav_bytes_set
    from xai_core.audio.features import excerpt_of_file
    from xai_core.audio.inversion import mel_to_audio
    from xai_core.checkpoints import load_bundle
    from xai_core.explain.counterfactual.config import DIRECTION_TITLES
    from xai_core.explain.counterfactual.engine import counterfactual
    from xai_core.explain.counterfactual.viz import counterfactual_figure
    from xai_core.fileio import atomic_write_bytes, check_new_files, figure_png, prepare_output_dir
    from xai_core.progress import tqdm_progress
    from xai_core.store import RunStore
    from xai_core.text import printable

    cfg = _config(args)
    out = None
    if args.out is not None:  # an unusable output folder fails before the computation, not after
        out = prepare_output_dir(args.out)
        check_new_files(out, _planned(cfg.directions), force=args.force)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = DemoPaths.at(args.demo_dir)
    clf = load_bundle(args.classifier or paths.classifier, expected_kind="classifier")
    gen = load_bundle(args.generator or paths.generator, expected_kind="generator")
    reference = None
    if not args.no_reference:
        ref_path = args.reference or paths.reference
        if args.reference is None and not Path(ref_path).is_file():
            print(f"no reference set at {ref_path}: the real-vs-real spread is unknown (--reference)")
        else:
            reference = ReferenceSet.load(ref_path)
    store = RunStore(args.runs_dir)  # an unusable store fails before the computation, not after
    x = excerpt_of_file(args.audio, offset=args.offset, mel=clf.mel, frames=clf.model.config.n_frames)  # (T, M)
    label = f"{Path(args.audio).name} at {args.offset:g} s"
    bar = tqdm_progress("counterfactual", ("phase", "mse")) if not args.no_progress else None
    try:
        res = counterfactual(clf, gen, x, cfg, reference=reference, label=label, device=args.device, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    print(printable(f"{label}: inverted with {cfg.restarts} restarts x {cfg.invert_steps} steps, then AM "
                    f"({cfg.am_iters} steps, beta {cfg.beta:g}) on {res.device} in {res.seconds['total']:.1f} s "
                    f"(inversion {res.seconds['invert']:.1f} s, AM {res.seconds['am']:.1f} s)"))
    print(f"  reconstruction error {res.rec_mse:.4f} (normalised units; restarts {res.restart_mse.min():.4f}-"
          f"{res.restart_mse.max():.4f})" + (f", real-vs-real spread threshold {res.threshold:.4f} "
                                             f"({res.spread['quantile']:.0%} quantile of {res.spread['n']} excerpts, "
                                             f"5-95 %: {res.spread['q05']:.4f}-{res.spread['q95']:.4f})"
                                             if res.spread else ""))
    print(f"  p(vocal): original {res.prob_original:.3f} · reconstruction {res.prob_reconstruction:.3f}"
          + "".join(f" · {DIRECTION_TITLES[d]} {float(res.prob_best[i]):.3f} (|z - z_inv| {float(res.distance[i]):.2f})"
                    for i, d in enumerate(res.directions)))
    flag = {True: "ok", False: "CANNOT RECONSTRUCT", None: "unknown"}[res.reconstructs]
    if res.beats_envelope is False:
        flag += f" (but no closer than its own average spectrum, MSE {res.envelope_mse:.4f}: the envelope only)"
    print(f"  reconstruction: {flag}. {res.message()}")
    if out is not None:
        wave = mel_to_audio(torch.cat([torch.stack([res.original, res.reconstruction]), res.logmel_best]),
                            cfg=clf.mel, n_iter=args.gl_iters)  # (2 + D, L)
        wavs = wav_bytes_set(list(wave.numpy()), sample_rate=clf.mel.sample_rate)  # one gain: loudness kept
        names = ["original.wav", "reconstruction.wav", *[WAV_NAMES[d] for d in res.directions]]
        for name, data in zip(names, wavs, strict=True):
            atomic_write_bytes(out / name, data, overwrite=args.force, root=out)
        fig = counterfactual_figure(res, cfg=clf.mel, title=label)
        atomic_write_bytes(out / "counterfactual.png", figure_png(fig, dpi=110), overwrite=args.force, root=out)
        atomic_write_bytes(out / "counterfactual.json", json.dumps(res.to_dict(), indent=1).encode(),
                           overwrite=args.force, root=out)
        print(f"wrote counterfactual.png, counterfactual.json and {len(names)} WAVs (one common gain) to {out}")
    run_id = store.save_counterfactual(res, classifier=clf, generator=gen, name=args.name)
    print(f"run {run_id} stored in {store.root.resolve()}")
    store.ensure_complete(run_id)  # NaN / inf results: stored as failed, exit status 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("counterfactual", help="make an excerpt more / less vocal: GAN inversion, then AM from its code",
                       description=HELP)
    p.add_argument("audio", type=Path, help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("--offset", type=SECONDS, default=0.0, help="excerpt start in seconds (default 0)")
    p.add_argument("--direction", choices=list(DIRECTIONS), default="both",
                   help="max: more vocal, min: less vocal, both (default)")
    p.add_argument("--beta", type=float_range(0.0, MAX_BETA), default=0.1,
                   help="proximity weight: beta * ||z - z_inv||^2 is subtracted from AM's score (0 = plain AM from "
                        "z_inv; default %(default)s)")
    p.add_argument("--restarts", type=int_range(1, MAX_RESTARTS), default=8, help="inversion restarts, in one batch")
    p.add_argument("--invert-steps", type=int_range(1, MAX_ITER), default=200, help="Adam steps of the inversion")
    p.add_argument("--invert-lr", type=float_range(0.0, MAX_LR, lo_open=True), default=0.1,
                   help="Adam learning rate of the inversion")
    p.add_argument("--invert-prior", type=float_range(0.0, MAX_LAM), default=0.001,
                   help="Gaussian prior weight w of the inversion: loss MSE + (w/2)*||z||^2")
    p.add_argument("--iters", type=int_range(1, MAX_ITER), default=100, help="AM steps per direction")
    p.add_argument("--lr", type=float_range(0.0, MAX_LR, lo_open=True), default=0.01, help="AM learning rate")
    p.add_argument("--lam", type=float_range(0.0, MAX_LAM), default=0.01, help="AM prior weight")
    p.add_argument("--prior", choices=("paper", "code"), default="paper",
                   help="AM prior convention: paper = penalty (lam/2)*||z||^2, code = lam*||z||^2")
    p.add_argument("--trace-every", type=int_range(1, MAX_ITER), default=5,
                   help="keep the trajectory (z, logit, log-mel) every this many AM steps")
    p.add_argument("--spread-quantile", type=float_range(0.0, 1.0, lo_open=True, hi_open=True), default=0.5,
                   help="the reconstruction fails above this quantile of the real-vs-real spread")
    p.add_argument("--seed", type=SEED, default=0, help="restart r starts from the code of seed + r")
    g = p.add_argument_group("models (default: the demo folder, $XAI_DEMO_DIR or assets/demo)")
    g.add_argument("--demo-dir", help="folder with classifier/generator/reference .safetensors")
    g.add_argument("--classifier", type=Path, help="classifier bundle (overrides the demo's)")
    g.add_argument("--generator", type=Path, help="generator bundle (overrides the demo's)")
    g.add_argument("--reference", type=Path, help="reference set of the real-vs-real spread (default: the demo's)")
    g.add_argument("--no-reference", action="store_true", help="no reference set: the spread is unknown")
    p.add_argument("--out", type=Path, help="output folder: counterfactual.png, counterfactual.json, WAVs")
    add_force(p, "files of an earlier run in --out")
    p.add_argument("--gl-iters", type=GL_ITERS, default=100, help="Griffin-Lim iterations of the WAVs")
    add_device(p)
    p.add_argument("--threads", type=THREADS, default=0, help="CPU threads for torch (0 = torch's default)")
    p.add_argument("--runs-dir", help="run store folder (default: $XAI_RUNS_DIR or ./runs)")
    p.add_argument("--name", help="a name for the stored run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

