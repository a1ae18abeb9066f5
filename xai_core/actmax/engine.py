"""The batched activation-maximisation engine and the FID grid (METHODS sections 4-5).

One engine serves a single configuration (:func:`run_am`) and the whole grid (:func:`run_grid`):
every row of a batch is one (direction, lr, lambda, seed) run. ``z`` is split into one leaf tensor
per learning rate, each its own parameter group of ``torch.optim.Adam`` (beta 0.9/0.999, eps 1e-8),
and the loss is ``-sum(score)``. Models are frozen and in eval mode, so rows do not interact and
Adam is per element: a batched row equals the same run alone (up to float rounding of batched
convolutions).

Conventions
-----------
* ``n_iter`` Adam updates; the iterates ``z_0 .. z_n_iter`` are all scored. At step ``t`` the
  iterate ``z_t`` is scored *before* update ``t + 1``, so ``z_0`` can be the kept example. Ties keep
  the earlier iterate. ``best_step`` is the index ``t`` of the kept iterate; ``*_last`` is ``z_n_iter``.
* Iteration counts of a grid are prefixes of one trajectory of ``max(iters)`` updates: the
  best-so-far and the iterate at ``t = k`` are snapshotted for each ``k`` in ``iters``.
* Scores are ascended: ``score = sign * a(z) - coef * ||z||^2`` (sign +1 max, -1 min; coef from the
  prior convention).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from xai_core.actmax.config import FEATURE_RESPONSE, AMConfig, GridConfig, direction_sign, penalty_coefficient
from xai_core.actmax.flags import ExampleFlags, RealRange, flag_examples, mean_level
from xai_core.actmax.objective import (
    Progress,
    Responder,
    call_progress,
    check_models,
    describe_codes,
    frozen,
    initial_codes,
    resolve_device,
)
from xai_core.assets import ReferenceSet
from xai_core.checkpoints import Bundle
from xai_core.errors import ParameterError
from xai_core.metrics.fid import fid_from_features
from xai_core.models.hooks import capture_activations


@dataclass
class AMResult:
    """Kept examples of one configuration; all tensors on the CPU. S = ``config.n_examples``."""

    config: AMConfig
    z_best: torch.Tensor  # (S, z_dim) kept (best-scoring) iterates
    z_last: torch.Tensor  # (S, z_dim) iterate after n_iter updates
    score_best: torch.Tensor  # (S,) ascended objective incl. prior of the kept iterates
    score_last: torch.Tensor  # (S,)
    response_best: torch.Tensor  # (S,) raw unit activation a(z)
    response_last: torch.Tensor  # (S,)
    logit_best: torch.Tensor  # (S,) vocal logit of the kept examples
    prob_best: torch.Tensor  # (S,) sigmoid(logit_best)
    logmel_best: torch.Tensor  # (S, T, M) un-normalised log-mel of the kept examples
    trace: torch.Tensor  # (S, n_steps) response at steps 0, e, 2e, ... <= n_iter (e = trace_every)
    best_step: torch.Tensor  # (S,) long, step t of the kept iterate
    z_norm_best: torch.Tensor  # (S,) ||z_best||
    seconds: float  # optimisation wall time (for grid cells: the group's share, scaled by n_iter)
    device: str
    trace_every: int = 1
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # FID features of kept examples
    flags: ExampleFlags | None = None  # out-of-range flags of the kept examples (actmax/flags.py)

    @property
    def seeds(self) -> torch.Tensor:
        """(S,) long: the seed of each example's z0."""
        return torch.arange(self.config.seed, self.config.seed + self.z_best.shape[0])

    @property
    def trace_steps(self) -> torch.Tensor:
        """(n_steps,) long: the step index of each trace column."""
        return torch.arange(self.trace.shape[1]) * self.trace_every

    def summary(self) -> dict:
        """Plain numbers for tables and the run store."""
        return {"n_examples": int(self.z_best.shape[0]),
                "response_best_mean": float(self.response_best.mean()),
                "response_best_max": float(self.response_best.max()),
                "response_best_min": float(self.response_best.min()),
                "prob_best_mean": float(self.prob_best.mean()),
                "best_step_mean": float(self.best_step.float().mean()),
                "z_norm_best_mean": float(self.z_norm_best.mean()),
                "seconds": self.seconds, "device": self.device,
                **({} if self.flags is None else self.flags.summary_fields())}


@dataclass
class GridResult:
    """FID tables of a grid and the selected configuration per direction."""

    config: GridConfig
    fid: dict  # (direction, feature) -> np.ndarray (len(iters), len(lrs), len(lams)) float64
    selected: dict  # direction -> {"lr", "lam", "n_iter", "fid", "feature"}
    examples: dict  # (direction, lr, lam, n_iter) -> AMResult
    reference: dict  # direction -> LongTensor (n_reference,) indices into the ReferenceSet
    seconds: float
    device: str
    reference_response: dict = field(default_factory=dict)  # direction -> (n_reference,) responses
    status: str = "complete"
    real_range: RealRange | None = None  # what the whole reference set produces (the cells' flags use it)

    @property
    def selection_feature(self) -> str:
        fl = self.config.feature_layers
        return FEATURE_RESPONSE if FEATURE_RESPONSE in fl else fl[0]

    def table(self) -> list[dict]:
        """One row per (direction, feature, n_iter, lr, lam) with its FID and selection flag."""
        rows = []
        c = self.config
        for (direction, feature), arr in self.fid.items():
            sel = self.selected.get(direction, {})
            for i, n_iter in enumerate(c.iters):
                for j, lr in enumerate(c.lrs):
                    for k, lam in enumerate(c.lams):
                        rows.append({"direction": direction, "feature": feature, "n_iter": n_iter, "lr": lr,
                                     "lam": lam, "fid": float(arr[i, j, k]),
                                     "selected": bool(feature == sel.get("feature") and lr == sel.get("lr")
                                                      and lam == sel.get("lam") and n_iter == sel.get("n_iter"))})
        return rows


# ----------------------------------------------------------------------------------------------
# the batched optimiser


def _row_bytes(classifier: Bundle, generator: Bundle) -> int:
    """Rough memory per row for forward + backward: every module output, x 4 bytes x 4."""
    numel = [0]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            numel[0] += out.numel()

    handles = []
    models = (generator.model, classifier.model)
    try:
        for m in models:
            for sub in m.modules():
                if not list(sub.children()):
                    handles.append(sub.register_forward_hook(hook))
        gp, cp = next(generator.model.parameters()), next(classifier.model.parameters())
        with torch.no_grad():
            x = generator.model(torch.zeros(1, generator.model.z_dim, device=gp.device, dtype=gp.dtype))
            classifier.model(x.to(cp.device, cp.dtype))
    finally:
        for h in handles:
            h.remove()
    return numel[0] * 4 * 4


def auto_chunk(classifier: Bundle, generator: Bundle, device: torch.device, *, rows: int) -> int:
    """Rows per device batch: about 60 % of free CUDA memory, or <= 1 GiB and 256 rows on the CPU."""
    per_row = max(1, _row_bytes(classifier, generator))
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        n = int(0.6 * free) // per_row
    else:
        budget = 1 << 30
        try:
            budget = min(budget, os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)
        except (ValueError, OSError, AttributeError):
            pass
        n = min(256, budget // per_row)
    return int(max(1, min(rows, n)))


@dataclass
class _Rows:
    z0: torch.Tensor  # (R, d)
    lr: list[float]  # (R,)
    sign: torch.Tensor  # (R,)
    coef: torch.Tensor  # (R,)

    def __len__(self) -> int:
        return self.z0.shape[0]

    def slice(self, a: int, b: int) -> _Rows:
        return _Rows(self.z0[a:b], self.lr[a:b], self.sign[a:b], self.coef[a:b])


def _optimise_chunk(resp: Responder, rows: _Rows, *, snaps: Sequence[int], trace_every: int,
                    on_step) -> dict:
    """Run one chunk for ``max(snaps)`` updates; returns per-snapshot CPU tensors, rows in input order."""
    dev = resp.device
    groups: dict[float, list[int]] = {}
    for i, lr in enumerate(rows.lr):
        groups.setdefault(lr, []).append(i)
    perm = torch.tensor([i for idx in groups.values() for i in idx])
    inv = torch.argsort(perm)
    dt = resp.dtype
    parts = [rows.z0[idx].to(dev, dt).clone().requires_grad_(True) for idx in groups.values()]  # (r_g, d)
    opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(parts, groups, strict=True)],
                           betas=(0.9, 0.999), eps=1e-8)
    sign = rows.sign[perm].to(dev, dt)  # (C,)
    coef = rows.coef[perm].to(dev, dt)  # (C,)
    n = len(rows)
    steps = max(snaps)
    snapset = set(snaps)
    best_score = torch.full((n,), -math.inf, device=dev, dtype=dt)
    best_resp = torch.zeros(n, device=dev, dtype=dt)
    best_z = torch.cat([p.detach() for p in parts]).clone()  # (C, d)
    best_step = torch.zeros(n, dtype=torch.long, device=dev)
    trace: list[torch.Tensor] = []
    out: dict[int, dict[str, torch.Tensor]] = {}
    for t in range(steps + 1):
        with torch.set_grad_enabled(t < steps):
            z = torch.cat(parts)  # (C, d)
            a = resp(z)  # (C,)
            score = sign * a - coef * (z * z).sum(1)  # (C,)
        with torch.no_grad():
            zd, sd, ad = z.detach(), score.detach(), a.detach()
            better = sd > best_score  # (C,) NaN never wins
            best_score = torch.where(better, sd, best_score)
            best_resp = torch.where(better, ad, best_resp)
            best_z = torch.where(better[:, None], zd, best_z)
            best_step = torch.where(better, torch.full_like(best_step, t), best_step)
            if t % trace_every == 0:
                trace.append(ad.clone())
            if t in snapset:
                out[t] = {k: v.clone() for k, v in (("z_best", best_z), ("score_best", best_score),
                                                     ("response_best", best_resp), ("best_step", best_step),
                                                     ("z_last", zd), ("score_last", sd), ("response_last", ad))}
        if t == steps:
            break
        opt.zero_grad(set_to_none=True)
        (-score.sum()).backward()
        opt.step()
        on_step(t + 1, ad, best_resp)
    tr = torch.stack(trace, 1)  # (C, n_steps)
    res = {k: {name: v[inv].cpu() for name, v in d.items()} for k, d in out.items()}
    res["trace"] = tr[inv].cpu()
    return res


def _run_rows(classifier: Bundle, generator: Bundle, rows: _Rows, *, layer: str, unit: int,
              snaps: Sequence[int], trace_every: int, device: torch.device, chunk: int,
              progress: Progress | None, info: dict) -> Iterator[tuple[int, int, dict, float]]:
    """Yield ``(start, n, chunk result, seconds)`` over chunks of rows; on CUDA OOM halve the chunk."""
    total_rows = len(rows)
    steps = max(snaps)
    total = total_rows * steps
    every = max(1, steps // 200)
    start = 0
    with Responder(classifier, generator, layer=layer, unit=unit, device=device) as resp:
        while start < total_rows:
            n = min(chunk, total_rows - start)

            def on_step(t, a, best, _start=start, _n=n):
                if t % every == 0 or t == steps:
                    call_progress(progress, _start * steps + _n * t, total,
                                  {**info, "phase": "optimise", "step": t, "n_steps": steps,
                                   "rows": (_start, _start + _n), "chunk": _n,
                                   "response": a.detach().float().cpu(),
                                   "best_response": best.detach().float().cpu()})

            t0 = time.perf_counter()
            try:
                res = _optimise_chunk(resp, rows.slice(start, start + n), snaps=snaps,
                                      trace_every=trace_every, on_step=on_step)
            except torch.OutOfMemoryError:
                if n <= 1:
                    raise
                chunk = max(1, n // 2)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                info["chunk_halved_to"] = chunk
                continue
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            yield start, n, res, time.perf_counter() - t0
            start += n


def _assemble(config: AMConfig, snap: dict, trace: torch.Tensor, described: dict, *, seconds: float,
              device: torch.device, trace_every: int, feature_layers: Sequence[str] = (),
              real_range: RealRange | None = None) -> AMResult:
    n_cols = config.n_iter // trace_every + 1
    feats = {f: described["feature:" + f] for f in feature_layers}
    res = AMResult(config=config, z_best=snap["z_best"], z_last=snap["z_last"], score_best=snap["score_best"],
                    score_last=snap["score_last"], response_best=snap["response_best"],
                    response_last=snap["response_last"], logit_best=described["logit"],
                    prob_best=described["prob"], logmel_best=described["logmel"], trace=trace[:, :n_cols].clone(),
                    best_step=snap["best_step"], z_norm_best=snap["z_best"].norm(dim=1), seconds=seconds,
                    device=str(device), trace_every=trace_every, features=feats)
    res.flags = flag_examples(res, real_range)  # ||z|| always; response and loudness need a real range
    return res


def run_am(classifier: Bundle, generator: Bundle, config: AMConfig, *, device=None,
           progress: Progress | None = None, trace_every: int = 1, max_chunk: int | None = None,
           real_range: RealRange | None = None) -> AMResult:
    """Run one activation-maximisation configuration for ``config.n_examples`` seeds, batched.

    Parameters
    ----------
    classifier, generator : Bundle
        Compatible bundles; they are not modified (copied if on another device).
    config : AMConfig
    device : ``None``/"auto" (CUDA if available, else CPU), or a torch device.
    progress : callable ``progress(done, total, info)``, optional
        ``done``/``total`` count row-steps; ``info`` has ``step``, ``n_steps``, ``response (C,)`` and
        ``best_response (C,)`` of the current chunk (for live plots). Return ``False`` to cancel
        (raises :class:`~xai_core.errors.CancelledError`).
    trace_every : int
        Record the response every this many steps.
    max_chunk : int, optional
        Max rows per device batch (default: automatic).
    real_range : RealRange, optional
        What real excerpts produce (:meth:`RealRange.from_reference`); the kept examples' response and
        loudness flags are checked against it (without it they are unknown; ``||z||`` is always checked).

    Returns
    -------
    AMResult
    """
    if not isinstance(config, AMConfig):
        raise ParameterError(f"config must be an AMConfig, got {type(config).__name__}")
    if isinstance(trace_every, bool) or not isinstance(trace_every, int) or trace_every < 1:
        raise ParameterError(f"trace_every must be an integer >= 1, got {trace_every!r}")
    dev = resolve_device(device)
    check_models(classifier, generator, config.layer, config.unit)
    t0 = time.perf_counter()
    S = config.n_examples
    rows = _Rows(initial_codes(config.seed, S, generator.model.z_dim), [config.lr] * S,
                 torch.full((S,), direction_sign(config.direction)),
                 torch.full((S,), penalty_coefficient(config.prior, config.lam)))
    chunk = max_chunk or auto_chunk(classifier, generator, dev, rows=S)
    acc: dict[str, list] = {}
    traces = []
    for _s, _n, res, _sec in _run_rows(classifier, generator, rows, layer=config.layer, unit=config.unit,
                                       snaps=(config.n_iter,), trace_every=trace_every, device=dev,
                                       chunk=chunk, progress=progress, info={"config": config}):
        for k, v in res[config.n_iter].items():
            acc.setdefault(k, []).append(v)
        traces.append(res["trace"])
    snap = {k: torch.cat(v) for k, v in acc.items()}
    described = describe_codes(classifier, generator, snap["z_best"], layer=config.layer, unit=config.unit,
                               device=dev)
    return _assemble(config, snap, torch.cat(traces), described, seconds=time.perf_counter() - t0,
                     device=dev, trace_every=trace_every, real_range=real_range)


# ----------------------------------------------------------------------------------------------
# reference sets and FID


@torch.no_grad()
def reference_features(classifier: Bundle, reference: ReferenceSet, *, layer: str, unit: int,
                       feature_layers: Sequence[str] = (), device=None, batch: int = 256) -> dict[str, torch.Tensor]:
    """Responses ``(N,)`` (key ``"response"``) and ``feature:<name>`` ``(N, D)`` of real excerpts."""
    dev = resolve_device(device)
    if reference.mel != classifier.mel:
        raise ParameterError(f"reference excerpts use {reference.mel}, the classifier {classifier.mel}")
    shapes = classifier.model.layer_shapes()
    if layer not in shapes:
        raise ParameterError(f"unknown layer {layer!r}; valid layers: {list(shapes)}")
    size = math.prod(shapes[layer])
    if not 0 <= unit < size:
        raise ParameterError(f"unit {unit} is out of range for layer {layer!r} ({size} units: 0 .. {size - 1})")
    hidden = [f for f in feature_layers if f != FEATURE_RESPONSE]
    names = list(dict.fromkeys([layer, *hidden]))
    parts: dict[str, list[torch.Tensor]] = {}
    with frozen(classifier.model, dev) as clf, capture_activations(clf, names) as acts:
        for s in range(0, len(reference), batch):
            x = reference.logmel[s:s + batch].to(dev, next(clf.parameters()).dtype)  # (b, T, M)
            clf(classifier.normaliser.apply(x))
            b = x.shape[0]
            resp = acts[layer].reshape(b, -1)[:, unit]  # (b,)
            out = {"response": resp}
            for f in feature_layers:
                out["feature:" + f] = resp[:, None] if f == FEATURE_RESPONSE else acts[f].reshape(b, -1)
            for k, v in out.items():
                parts.setdefault(k, []).append(v.float().cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def reference_responses(classifier: Bundle, reference: ReferenceSet, *, layer: str = "logit", unit: int = 0,
                        device=None) -> torch.Tensor:
    """Response ``(N,)`` of the explained unit to every reference excerpt (CPU)."""
    return reference_features(classifier, reference, layer=layer, unit=unit, device=device)["response"]


def _top(responses: torch.Tensor, direction: str, n: int, *, sources: Sequence[str] | None = None,
         per_clip: int | None = None) -> torch.Tensor:
    """Indices ``(n,)`` of the highest (max) / lowest (min) responses, at most ``per_clip`` of one clip."""
    from xai_core.data.quality import capped

    direction_sign(direction)
    if not 1 <= n <= responses.numel():
        raise ParameterError(f"n_reference={n} but the reference set has {responses.numel()} excerpts")
    order = torch.argsort(responses, descending=(direction == "max"), stable=True)
    if per_clip is None or sources is None:
        return order[:n]
    return torch.tensor(capped(order, sources, n, per_clip), dtype=torch.long)


def top_reference(classifier: Bundle, reference: ReferenceSet, *, layer: str = "logit", unit: int = 0,
                  direction: str = "max", n: int = 50, per_clip: int | None = None, device=None) -> torch.Tensor:
    """Indices ``(n,)`` of the excerpts with the highest (max) or lowest (min) response, at most ``per_clip``
    of one source clip (``None``: no cap)."""
    return _top(reference_responses(classifier, reference, layer=layer, unit=unit, device=device), direction, n,
                sources=reference.sources, per_clip=per_clip)


def _safe_fid(x: torch.Tensor, y: torch.Tensor) -> float:
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.inf  # a diverged configuration is never selected
    return fid_from_features(x, y)


# ----------------------------------------------------------------------------------------------
# the grid


def _group_key(direction: str, lr: float, lam: float) -> tuple[str, float, float]:
    return (direction, float(lr), float(lam))


def run_grid(classifier: Bundle, generator: Bundle, config: GridConfig, *, reference: ReferenceSet,
             device=None, progress: Progress | None = None, store=None, run_id: str | None = None,
             trace_every: int = 1) -> GridResult:
    """Run the whole grid in one batched engine and select the lowest-FID configuration per direction.

    Parameters
    ----------
    classifier, generator : Bundle
    config : GridConfig
    reference : ReferenceSet
        Real excerpts; the ``n_reference`` with the highest (max) / lowest (min) response form the
        FID reference sets.
    device : ``None``/"auto" or a torch device.
    progress : ``progress(done, total, info)``; ``info["phase"]`` is ``"optimise"`` (with the live
        ``response`` of the chunk) or ``"group_done"`` (with ``group`` and ``finished`` groups).
        Return ``False`` to cancel.
    store : RunStore, optional
        Persist each finished (direction, lr, lam) group as it completes, then the result.
    run_id : str, optional
        Resume this grid run of ``store``: finished groups are loaded, not recomputed.

    Returns
    -------
    GridResult
    """
    if not isinstance(config, GridConfig):
        raise ParameterError(f"config must be a GridConfig, got {type(config).__name__}")
    dev = resolve_device(device)
    check_models(classifier, generator, config.layer, config.unit)
    for f in config.feature_layers:
        if f != FEATURE_RESPONSE:
            check_models(classifier, generator, f, 0)
    t0 = time.perf_counter()
    S = config.n_examples
    # reference sets first: cheap, and fails early on a bad reference file
    ref = reference_features(classifier, reference, layer=config.layer, unit=config.unit,
                             feature_layers=config.feature_layers, device=dev)
    ref_idx = {d: _top(ref["response"], d, config.n_reference, sources=reference.sources, per_clip=config.per_clip)
               for d in config.directions}
    # out-of-range flags of every cell: against the whole reference set, not only its top/bottom N
    real_range = RealRange.from_values(ref["response"], mean_level(reference.logmel), layer=config.layer,
                                       unit=config.unit, source=f"{len(reference)} excerpts of the reference set")

    if store is not None and run_id is None:
        run_id = store.start_grid(config, classifier=classifier, generator=generator)
    examples: dict[tuple, AMResult] = {}
    done_groups: set = set()
    if store is not None:
        store.check_resumable(run_id, config, classifier=classifier, generator=generator)
        for key, cells in store.load_grid_groups(run_id).items():
            done_groups.add(key)
            for n_iter, r in cells.items():
                examples[(*key, n_iter)] = r
    elif run_id is not None:
        raise ParameterError("run_id needs a store to resume from")

    pending = [g for g in config.groups() if _group_key(*g) not in done_groups]
    z0 = initial_codes(config.seed, S, generator.model.z_dim)  # (S, d), shared by every group
    try:
        if pending:
            rows = _Rows(z0.repeat(len(pending), 1), [lr for (_d, lr, _l) in pending for _ in range(S)],
                         torch.tensor([direction_sign(d) for (d, _r, _l) in pending]).repeat_interleave(S),
                         torch.tensor([penalty_coefficient(config.prior, lam)
                                       for (_d, _r, lam) in pending]).repeat_interleave(S))
            chunk = config.max_chunk or auto_chunk(classifier, generator, dev, rows=len(rows))
            _run_pending(classifier, generator, config, rows, pending, examples, done_groups, dev=dev,
                         chunk=chunk, progress=progress, store=store, run_id=run_id, trace_every=trace_every,
                         real_range=real_range)
    except BaseException as exc:
        if store is not None:
            try:
                store.mark(run_id, "cancelled" if type(exc).__name__ == "CancelledError" else "failed",
                           message=f"{type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001 - a broken store must not hide the error that stopped the grid
                pass
        raise

    fid: dict = {}
    for d in config.directions:
        for f in config.feature_layers:
            arr = np.zeros((len(config.iters), len(config.lrs), len(config.lams)), dtype=np.float64)
            yref = ref["feature:" + f][ref_idx[d]]  # (n_ref, D)
            for i, n_iter in enumerate(config.iters):
                for j, lr in enumerate(config.lrs):
                    for k, lam in enumerate(config.lams):
                        arr[i, j, k] = _safe_fid(examples[(d, lr, lam, n_iter)].features[f], yref)
            fid[(d, f)] = arr
    sel_feature = FEATURE_RESPONSE if FEATURE_RESPONSE in config.feature_layers else config.feature_layers[0]
    selected = {}
    for d in config.directions:
        arr = fid[(d, sel_feature)]
        i, j, k = np.unravel_index(int(np.argmin(arr)), arr.shape)
        selected[d] = {"lr": config.lrs[j], "lam": config.lams[k], "n_iter": config.iters[i],
                       "fid": float(arr[i, j, k]), "feature": sel_feature}
    result = GridResult(config=config, fid=fid, selected=selected, examples=examples, reference=ref_idx,
                        seconds=time.perf_counter() - t0, device=str(dev),
                        reference_response={d: ref["response"][ref_idx[d]] for d in config.directions},
                        real_range=real_range)
    if store is not None:
        store.finish_grid(run_id, result)
        result.run_id = run_id  # type: ignore[attr-defined]
    return result


def _run_pending(classifier, generator, config: GridConfig, rows: _Rows, pending, examples, done_groups, *,
                 dev, chunk, progress, store, run_id, trace_every, real_range=None) -> None:
    S = config.n_examples
    T = config.n_iter
    buf: dict[int, dict] = {}  # group index -> accumulated chunk pieces
    info: dict = {"grid": config, "groups_total": len(config.groups())}
    for start, n, res, sec in _run_rows(classifier, generator, rows, layer=config.layer, unit=config.unit,
                                        snaps=config.iters, trace_every=trace_every, device=dev, chunk=chunk,
                                        progress=progress, info=info):
        for g in range(start // S, (start + n - 1) // S + 1):
            a, b = max(start, g * S), min(start + n, (g + 1) * S)
            piece = buf.setdefault(g, {"rows": 0, "seconds": 0.0, "snaps": {}, "trace": []})
            piece["rows"] += b - a
            piece["seconds"] += sec * (b - a) / n
            for k in config.iters:
                for name, v in res[k].items():
                    piece["snaps"].setdefault(k, {}).setdefault(name, []).append(v[a - start:b - start])
            piece["trace"].append(res["trace"][a - start:b - start])
            if piece["rows"] == S:
                d, lr, lam = pending[g]
                trace = torch.cat(piece["trace"])
                cells = {}
                for k in config.iters:
                    snap = {name: torch.cat(v) for name, v in piece["snaps"][k].items()}
                    described = describe_codes(classifier, generator, snap["z_best"], layer=config.layer,
                                               unit=config.unit, feature_layers=config.feature_layers, device=dev)
                    cells[k] = _assemble(config.am_config(d, lr, lam, k), snap, trace, described,
                                         seconds=piece["seconds"] * k / T, device=dev, trace_every=trace_every,
                                         feature_layers=config.feature_layers, real_range=real_range)
                    examples[(d, lr, lam, k)] = cells[k]
                key = _group_key(d, lr, lam)
                if store is not None:
                    store.save_grid_group(run_id, key, cells)
                done_groups.add(key)
                del buf[g]
                call_progress(progress, (start + n) * T, len(rows) * T,
                              {**info, "phase": "group_done", "group": key, "finished": sorted(done_groups)})
