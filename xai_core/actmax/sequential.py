"""The authors' way: one seed, one configuration, batch 1, a separate run per iteration count.

A deliberately plain loop, kept as the reference the batched engine is tested against and as the
benchmark baseline. Same conventions as :mod:`xai_core.actmax.engine` (z_t scored before update
t + 1; ties keep the earlier iterate).
"""

from __future__ import annotations

import math
import time

import torch

from xai_core.actmax.config import AMConfig
from xai_core.actmax.engine import AMResult, _assemble
from xai_core.actmax.objective import Responder, check_models, describe_codes, initial_codes, resolve_device
from xai_core.checkpoints import Bundle


def run_am_sequential(classifier: Bundle, generator: Bundle, config: AMConfig, *, device=None,
                      trace_every: int = 1) -> AMResult:
    """Run ``config`` seed by seed with batch 1 (slow; the reference implementation)."""
    dev = resolve_device(device)
    check_models(classifier, generator, config.layer, config.unit)
    t0 = time.perf_counter()
    sign = 1.0 if config.direction == "max" else -1.0
    coef = config.penalty
    z0 = initial_codes(config.seed, config.n_examples, generator.model.z_dim)  # (S, d)
    snap: dict[str, list] = {}
    traces = []
    with Responder(classifier, generator, layer=config.layer, unit=config.unit, device=dev) as resp:
        for i in range(config.n_examples):
            z = z0[i:i + 1].to(dev, resp.dtype).clone().requires_grad_(True)  # (1, d)
            opt = torch.optim.Adam([z], lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
            best = (-math.inf, None, None, 0)
            trace = []
            for t in range(config.n_iter + 1):
                with torch.set_grad_enabled(t < config.n_iter):
                    a = resp(z)  # (1,)
                    score = sign * a - coef * (z * z).sum(1)  # (1,)
                s = float(score.detach())
                if t % trace_every == 0:
                    trace.append(float(a.detach()))
                if s > best[0]:
                    best = (s, z.detach().clone(), float(a.detach()), t)
                if t == config.n_iter:
                    break
                opt.zero_grad()
                (-score.sum()).backward()
                opt.step()
            for k, v in (("z_best", best[1][0]), ("score_best", best[0]), ("response_best", best[2]),
                         ("best_step", best[3]), ("z_last", z.detach()[0].clone()), ("score_last", s),
                         ("response_last", float(a.detach()))):
                snap.setdefault(k, []).append(v)
            traces.append(trace)
    out = {k: (torch.stack(v).cpu() if k.startswith("z_") else
               torch.tensor(v, dtype=torch.long if k == "best_step" else resp.dtype)) for k, v in snap.items()}
    described = describe_codes(classifier, generator, out["z_best"], layer=config.layer, unit=config.unit,
                               device=dev)
    return _assemble(config, out, torch.tensor(traces, dtype=resp.dtype), described, seconds=time.perf_counter() - t0,
                     device=dev, trace_every=trace_every)
