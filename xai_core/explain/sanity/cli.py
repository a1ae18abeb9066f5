"""``python -m xai_core sanity am``: the model-randomisation check of activation maximisation."""

from __future__ import annotations

import json
from pathlib import Path

from xai_core.actmax.cli import ITERS, LAM, LR, UNIT
from xai_core.actmax.config import MAX_EXAMPLES
from xai_core.cliargs import MAX_COUNT, SEED, THREADS, add_device, add_force, int_range
from xai_core.text import printable

HELP = ("Model-parameter randomisation (Adebayo et al. 2018) for GAN-based activation maximisation: run one "
        "configuration on the classifier and on copies re-initialised from the top (logit, fc2, ... conv1), same "
        "seeds, and compare the kept examples (rank correlation of the spectrograms and of AM's changes from the "
        "starting sample, level difference in dB), the trained classifier's response to them and their FID.")


def _sanity_am(args) -> int:
    import torch

    from xai_core.actmax.config import AMConfig
    from xai_core.assets import DemoPaths, ReferenceSet
    from xai_core.checkpoints import load_bundle
    from xai_core.explain.sanity.am import am_randomisation_check
    from xai_core.fileio import atomic_write_bytes, check_output_file
    from xai_core.progress import tqdm_progress

    check_output_file(args.json, force=args.force, what="--json")
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = DemoPaths.at(args.demo_dir)
    clf = load_bundle(args.classifier or paths.classifier, expected_kind="classifier")
    gen = load_bundle(args.generator or paths.generator, expected_kind="generator")
    ref = None if args.no_reference else ReferenceSet.load(args.reference or paths.reference)
    cfg = AMConfig(layer=args.layer, unit=args.unit, direction=args.direction, lr=args.lr, lam=args.lam,
                   prior=args.prior, n_iter=args.iters, n_examples=args.examples, seed=args.seed)
    bar = tqdm_progress("randomised runs", ("stage",))
    try:
        res = am_randomisation_check(clf, gen, cfg, reference=ref, n_reference=args.n_reference,
                                     fid_feature=args.fid_feature, seed=args.seed, device=args.device, progress=bar)
    finally:
        bar.close()
    print(printable(res.format()))
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(res.to_dict(), indent=1).encode(), overwrite=args.force)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("sanity", help="model-randomisation sanity checks of the explanations", description=HELP)
    ssub = s.add_subparsers(dest="sanity_command", required=True)
    a = ssub.add_parser("am", help="the randomisation check of activation maximisation", description=HELP)
    a.add_argument("--demo-dir", help="folder with classifier/generator/reference .safetensors")
    a.add_argument("--classifier", help="classifier bundle (default: the demo's)")
    a.add_argument("--generator", help="generator bundle (default: the demo's)")
    a.add_argument("--reference", help="reference excerpts for the FID (default: the demo's)")
    a.add_argument("--no-reference", action="store_true", help="skip the FID")
    a.add_argument("--n-reference", type=int_range(2, MAX_COUNT), default=50, help="top real excerpts of the FID")
    a.add_argument("--fid-feature", default="fc2", help="hidden layer of the FID features")
    a.add_argument("--layer", default="logit")
    a.add_argument("--unit", type=UNIT, default=0)
    a.add_argument("--direction", choices=("max", "min"), default="max")
    a.add_argument("--lr", type=LR, default=0.01)
    a.add_argument("--lam", type=LAM, default=0.01)
    a.add_argument("--prior", choices=("paper", "code"), default="paper")
    a.add_argument("--iters", type=ITERS, default=30,
                   help="Adam updates (default: the AM page's preview)")
    a.add_argument("--examples", type=int_range(1, MAX_EXAMPLES), default=4, help="examples (seeds)")
    a.add_argument("--seed", type=SEED, default=0, help="first seed of the examples, and of the re-initialisation")
    add_device(a)
    a.add_argument("--threads", type=THREADS, default=0, help="CPU threads for torch (0 = torch's default)")
    a.add_argument("--json", type=Path, help="write the report here")
    add_force(a, "an existing --json file")
    a.set_defaults(func=_sanity_am)
