"""``python -m xai_core am ...`` and ``python -m xai_core grid ...``: headless AM and FID grids."""

from __future__ import annotations

import argparse

from xai_core.actmax.config import (
    MAX_EXAMPLES,
    MAX_ITER,
    MAX_LAM,
    MAX_LR,
    MAX_UNIT,
    PRIOR_HELP,
    AMConfig,
    GridConfig,
)
from xai_core.cliargs import SEED, add_device, float_list, float_range, int_list, int_range
from xai_core.errors import ParameterError

# the configurations' own bounds (AMConfig / GridConfig), refused already by argparse
LR = float_range(0.0, MAX_LR, lo_open=True)  # Adam learning rate on z; the paper's grid: 0.001 .. 0.1
LAM = float_range(0.0, MAX_LAM)  # prior weight; the paper's grid: 0.001 .. 0.1
ITERS = int_range(1, MAX_ITER)
UNIT = int_range(0, MAX_UNIT)

PRIOR_TEXT = ("prior convention: 'paper' = objective a(z) + lam*log N(z;0,I), i.e. penalty (lam/2)*||z||^2; "
              "'code' = the authors' code, penalty lam*||z||^2 (the paper's grid values 0.1/0.01/0.001 "
              "are this rp)")


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (default: the demo folder, $XAI_DEMO_DIR or assets/demo)")
    g.add_argument("--demo-dir", help="folder with classifier/generator/reference .safetensors")
    g.add_argument("--classifier", help="classifier bundle (overrides the demo's)")
    g.add_argument("--generator", help="generator bundle (overrides the demo's)")
    p.add_argument("--layer", default="logit", help="explained layer (default: logit)")
    p.add_argument("--unit", type=UNIT, default=0,
                   help="unit index in the layer's flattened output")
    p.add_argument("--seed", type=SEED, default=0, help="example i starts from z0 with seed (seed + i)")
    p.add_argument("--examples", type=int_range(1, MAX_EXAMPLES), default=50,
                   help="examples (seeds) per configuration")
    add_device(p)
    p.add_argument("--runs-dir", help="run store folder (default: $XAI_RUNS_DIR or ./runs)")
    p.add_argument("--name", help="a name for the stored run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load(args):
    from xai_core.assets import DemoPaths
    from xai_core.checkpoints import load_bundle

    paths = DemoPaths.at(args.demo_dir)
    clf = load_bundle(args.classifier or paths.classifier, expected_kind="classifier")
    gen = load_bundle(args.generator or paths.generator, expected_kind="generator")
    return clf, gen, paths


class _Bar:
    """Wrap the engine's progress callback in tqdm."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.enabled, self.desc, self.bar = enabled, desc, None

    def __call__(self, done, total, info) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="row-step", unit_scale=True)
        self.bar.update(done - self.bar.n)
        if "best_response" in info:
            self.bar.set_postfix(best=f"{float(info['best_response'].mean()):.3f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _am(args) -> int:
    from xai_core.actmax.engine import run_am
    from xai_core.store import RunStore

    cfg = AMConfig(layer=args.layer, unit=args.unit, direction=args.direction, lr=args.lr, lam=args.lam,
                   prior=args.prior, n_iter=args.iters, n_examples=args.examples, seed=args.seed)
    clf, gen, paths = _load(args)
    store = RunStore(args.runs_dir)  # an unusable store fails before the computation, not after
    real_range = _real_range(args, clf, paths, cfg)
    bar = _Bar(not args.no_progress, f"AM {cfg.direction}")
    try:
        res = run_am(clf, gen, cfg, device=args.device, progress=bar, real_range=real_range)
    finally:
        bar.close()
    run_id = store.save_am(res, classifier=clf, generator=gen, name=args.name)
    print(f"AM {cfg.direction} {cfg.layer}[{cfg.unit}] lr={cfg.lr} lam={cfg.lam} ({PRIOR_HELP[cfg.prior]}), "
          f"{cfg.n_iter} iterations, {cfg.n_examples} examples on {res.device} in {res.seconds:.1f} s")
    print(f"  kept response: mean {float(res.response_best.mean()):.4f}  min {float(res.response_best.min()):.4f}"
          f"  max {float(res.response_best.max()):.4f};  p(vocal) mean {float(res.prob_best.mean()):.3f}")
    print(format_flags(res.flags))
    print(f"run {run_id} stored in {store.root.resolve()}")
    store.ensure_complete(run_id)  # NaN / inf results: stored as failed, exit status 1
    return 0


def _real_range(args, clf, paths, cfg):
    """The real range of ``--reference`` (default: the demo's reference set, if there is one), or None."""
    from xai_core.actmax.flags import RealRange
    from xai_core.assets import ReferenceSet

    if args.no_reference:
        return None
    path = args.reference or (paths.reference if paths is not None else None)
    if path is None:
        print("no reference set (models given as files; --reference): the response and loudness flags are unknown")
        return None
    if args.reference is None and not path.is_file():
        print(f"no reference set at {path}: the response and loudness flags are unknown (--reference)")
        return None
    return RealRange.from_reference(clf, ReferenceSet.load(path), layer=cfg.layer, unit=cfg.unit, device=args.device)


def format_flags(flags, indent: str = "  ") -> str:
    """The out-of-range flags of one set of kept examples: share in range, what fired, the thresholds."""
    from xai_core.actmax.flags import z_bounds

    if flags is None:
        return f"{indent}out-of-range flags: none computed"
    lo, hi = z_bounds(flags.z_dim, flags.alpha)
    lines = [f"{indent}out-of-range flags: {flags.describe()}",
             f"{indent}  ||z|| outside [{lo:.2f}, {hi:.2f}] fires (chi({flags.z_dim}) two-sided p < {flags.alpha:g})"]
    rr = flags.real_range
    if rr is not None:
        rlo, rhi = rr.response_bounds(flags.margin)
        llo, lhi = rr.level_bounds(flags.level_margin)
        side = f"above {rhi:.4g}" if flags.direction == "max" else f"below {rlo:.4g}"
        lines.append(f"{indent}  real range ({rr.source or f'{rr.n} excerpts'}): response [{rr.response_min:.4g}, "
                     f"{rr.response_max:.4g}], {side} fires; mean log-mel level [{rr.level_min:.3g}, "
                     f"{rr.level_max:.3g}], outside [{llo:.3g}, {lhi:.3g}] fires (margins: {flags.margin:g} / "
                     f"{flags.level_margin:g} of the real span)")
    return "\n".join(lines)


def format_grid(result) -> str:
    """FID tables (rows n_iter x lr, columns lam) and the selection, as text; then the share of in-range
    examples per cell and the flags of each selected configuration."""
    from xai_core.actmax.flags import cell_shares

    c = result.config
    lines = []
    for (d, f), arr in result.fid.items():
        lines.append(f"FID {d} / feature {f}   (rows: n_iter, lr; columns: lam {list(c.lams)}; prior {c.prior})")
        for i, n in enumerate(c.iters):
            for j, lr in enumerate(c.lrs):
                lines.append(f"  {n:>5} {lr:>7g} " + " ".join(f"{arr[i, j, k]:>11.4g}" for k in range(len(c.lams))))
    for d, arr in cell_shares(result).items():
        lines.append(f"in range {d}   (share of examples inside the real range; rows: n_iter, lr; columns: lam)")
        for i, n in enumerate(c.iters):
            for j, lr in enumerate(c.lrs):
                lines.append(f"  {n:>5} {lr:>7g} " + " ".join(f"{arr[i, j, k]:>11.2f}" for k in range(len(c.lams))))
    for d, s in result.selected.items():
        lines.append(f"selected {d}: lr={s['lr']:g} lam={s['lam']:g} n_iter={s['n_iter']} "
                     f"FID({s['feature']})={s['fid']:.4g}")
        r = result.examples.get((d, s["lr"], s["lam"], s["n_iter"]))
        if r is not None:
            lines.append(format_flags(r.flags))
    return "\n".join(lines)


def _grid(args) -> int:
    from xai_core.actmax.engine import run_grid
    from xai_core.assets import ReferenceSet
    from xai_core.store import RunStore

    cfg = GridConfig(lrs=args.lrs, lams=args.lams, iters=args.iters, directions=args.directions,
                     layer=args.layer, unit=args.unit, prior=args.prior, n_examples=args.examples, seed=args.seed,
                     n_reference=args.n_reference,
                     per_clip=args.per_clip or None, feature_layers=args.features, max_chunk=args.max_chunk)
    clf, gen, paths = _load(args)
    reference = ReferenceSet.load(args.reference or paths.reference)
    store = RunStore(args.runs_dir)
    bar = _Bar(not args.no_progress, "grid")
    try:
        res = run_grid(clf, gen, cfg, reference=reference, device=args.device, progress=bar, store=store,
                       run_id=args.resume)
    finally:
        bar.close()
    print(format_grid(res))
    print(f"{len(res.examples)} configurations x {cfg.n_examples} examples on {res.device} in {res.seconds:.1f} s")
    print(f"run {res.run_id} stored in {store.root.resolve()}")
    store.ensure_complete(res.run_id)  # a NaN FID or no finite selection: stored as failed, exit status 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("am", help="GAN-based activation maximisation of one configuration",
                       description="Activation maximisation: Adam on z, keep the best iterate. " + PRIOR_TEXT)
    _model_args(p)
    p.add_argument("--direction", choices=("max", "min"), default="max")
    p.add_argument("--lr", type=LR, default=0.01, help="Adam learning rate on z")
    p.add_argument("--lam", type=LAM, default=0.01, help="prior weight (see --prior)")
    p.add_argument("--prior", choices=("paper", "code"), default="paper", help=PRIOR_TEXT)
    p.add_argument("--iters", type=ITERS, default=100, help="Adam updates")
    p.add_argument("--reference", help="reference excerpts whose range the kept examples are flagged against "
                                       "(.safetensors ReferenceSet; default: the demo's, if present)")
    p.add_argument("--no-reference", action="store_true",
                   help="no reference set: only the ||z|| flag is checked (response and loudness unknown)")
    p.set_defaults(func=_am)

    p = sub.add_parser("grid", help="the paper's lr x lambda x iterations grid with FID selection",
                       description="Batched grid of activation maximisation with FID selection. " + PRIOR_TEXT)
    _model_args(p)
    p.add_argument("--reference", help="reference excerpts (.safetensors ReferenceSet; default: the demo's)")
    p.add_argument("--lrs", type=float_list(0.0, MAX_LR, lo_open=True), default=(0.1, 0.01, 0.001),
                   help="Adam learning rates, comma-separated")
    p.add_argument("--lams", type=float_list(0.0, MAX_LAM), default=(0.1, 0.01, 0.001),
                   help="prior weights (see --prior), comma-separated")
    p.add_argument("--iters", type=int_list(1, MAX_ITER), default=(100, 500, 1000),
                   help="iteration counts (snapshots of one trajectory), comma-separated")
    p.add_argument("--directions", type=_names, default=("max", "min"))
    p.add_argument("--prior", choices=("paper", "code"), default="code", help=PRIOR_TEXT + " (default: code)")
    p.add_argument("--n-reference", type=int_range(2, 1_000_000), default=50,
                   help="top/bottom-N real excerpts for the FID")
    p.add_argument("--per-clip", type=int_range(0, 1_000_000), default=4,
                   help="at most this many of them from one source clip (0 = no cap; default 4)")
    p.add_argument("--features", type=_names, default=("response", "fc2"),
                   help="FID feature spaces: 'response' (scalar unit response) and/or layer names")
    p.add_argument("--max-chunk", type=int_range(1, MAX_EXAMPLES), help="max rows per device batch (default: automatic)")
    p.add_argument("--resume", metavar="RUN_ID", help="resume an interrupted grid run of the store")
    p.set_defaults(func=_grid)


__all__ = ["ParameterError", "format_grid", "register"]
