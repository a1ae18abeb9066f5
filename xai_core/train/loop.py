"""One small training loop with callbacks (minGPT style), shared by the trainables of the methods.

The loop knows nothing of models or losses: it calls ``step(i)`` (one optimisation step, returning
a dict of float numbers such as the loss) for ``i`` in ``[start, total)``, keeps a running mean of
those numbers, reports through ``progress(done, total, info)`` and calls ``on_checkpoint(i)`` every
``checkpoint_every`` steps and at the end, so that logging, progress bars, cancelling and
resumable checkpoints all stay outside the method's code.

The classifier and GAN trainers predate it and keep their own loops (their shipped demo models
are reproduced bit for bit by them); new trainables (ClaDec decoders, reference auto-encoders,
retrained evaluation classifiers) use this one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xai_core.errors import CancelledError, CheckpointError, ParameterError, XaiError

StepFn = Callable[[int], dict[str, float]]
Progress = Callable[[int, int, dict], object]


@dataclass
class LoopResult:
    """What :func:`run_loop` did: steps run, per-window means of the step numbers."""

    start: int  # first step of this call (> 0 after a resume)
    steps: int  # total steps done, resumed ones included
    history: list[dict] = field(default_factory=list)  # one entry per report window: step + means


def run_loop(step: StepFn, *, total: int, start: int = 0, progress: Progress | None = None,
             report_every: int = 10, on_checkpoint: Callable[[int, list[dict]], None] | None = None,
             checkpoint_every: int = 0, history: list[dict] | None = None,
             info: dict | None = None) -> LoopResult:
    """Run ``step(i)`` for ``i = start .. total - 1`` with progress and checkpoint callbacks.

    Parameters
    ----------
    step : one optimisation step; returns numbers (floats) to average, e.g. ``{"loss": 0.3}``
    total : steps in all (a resumed run passes the same total and its saved ``start``)
    progress : ``progress(done, total, info)`` every ``report_every`` steps and at the end;
        ``info`` holds the running means since the last report (and ``info``'s constant keys);
        returning False (or raising :class:`CancelledError`) stops the loop with CancelledError
    on_checkpoint : ``on_checkpoint(done, history)`` every ``checkpoint_every`` steps (0: only at the
        end) and at the end
    history : the history of a resumed run, continued

    Returns
    -------
    LoopResult
    """
    if total < 0 or not 0 <= start <= total:
        raise ParameterError(f"need 0 <= start <= total, got start={start}, total={total}")
    if report_every < 1:
        raise ParameterError(f"report_every must be >= 1, got {report_every}")
    hist = list(history or [])
    sums: dict[str, float] = {}
    n = 0
    for i in range(start, total):
        numbers = step(i)
        for k, v in numbers.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
        done = i + 1
        if done % report_every == 0 or done == total:
            entry = {"step": done, **{k: v / n for k, v in sums.items()}}
            hist.append(entry)
            sums, n = {}, 0
            if progress is not None and progress(done, total, {**(info or {}), **entry}) is False:
                if on_checkpoint is not None:
                    on_checkpoint(done, hist)
                raise CancelledError(f"cancelled after {done} of {total} steps")
        if on_checkpoint is not None and checkpoint_every and done % checkpoint_every == 0 and done < total:
            on_checkpoint(done, hist)
    if on_checkpoint is not None and total > start:
        on_checkpoint(total, hist)
    return LoopResult(start=start, steps=total, history=hist)


# --------------------------------------------------------------------------- checkpoints

def rng_state(generator: torch.Generator | None = None) -> dict:
    """Random states to store in a checkpoint (torch CPU, CUDA, an explicit generator)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state() if generator is not None else None,
    }


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a training checkpoint atomically (tensors and plain containers only)."""
    from xai_core.fileio import atomic_write_with

    atomic_write_with(Path(path), lambda tmp: torch.save(state, tmp))  # private temp folder: no planted links


def load_checkpoint(path: str | Path, *, key: str = "step") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (or a trainer's own); never unpickles code.

    Bounded like every untrusted file (:func:`xai_core.checkpoints.load_torch_file`), and every floating
    tensor in it must be finite: resuming from a diverged checkpoint would only continue the divergence.
    """
    from xai_core.checkpoints import load_torch_file

    path = Path(path)
    state = load_torch_file(path, what="training checkpoint")
    if not isinstance(state, dict) or key not in state:
        raise CheckpointError(f"{path}: not a training checkpoint of this program (no {key!r} entry)")
    for k in ("step", "epoch"):
        v = state.get(k, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise CheckpointError(f"{path}: the training checkpoint's {k!r} must be a count >= 0, got {v!r}")
    for k in ("config", "history"):
        if k in state and not isinstance(state[k], (dict if k == "config" else list)):
            raise CheckpointError(f"{path}: the training checkpoint's {k!r} has the wrong type "
                                  f"({type(state[k]).__name__})")
    stack = [state]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, torch.Tensor) and o.is_floating_point() and not bool(torch.isfinite(o).all()):
            raise CheckpointError(f"{path}: the training checkpoint holds NaN or infinite values; start afresh "
                                  "(without resume)")
    return state


@contextmanager
def restoring(path: str | Path):
    """Turn any failure while restoring models, optimisers and generators from the checkpoint at ``path``
    (a missing entry, a tensor of the wrong shape, a foreign optimiser state) into a :class:`CheckpointError`."""
    try:
        yield
    except XaiError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(f"{path}: the training checkpoint does not fit this run ({type(exc).__name__}: "
                              f"{msg}); start afresh (without resume)") from exc


def resume_state(path: str | Path, *, config: dict, identity: str, steps: int,
                 free: tuple[str, ...] = ("steps", "checkpoint_every"), what: str = "classifier") -> dict:
    """The checkpoint at ``path`` if it was written for the same settings (``config``, except the ``free``
    keys: the budget and the checkpoint interval may change on resume) and the same explained
    classifier (``identity``), with at most ``steps`` steps done; else a :class:`CheckpointError`."""
    state = load_checkpoint(path)
    saved = {k: v for k, v in dict(state.get("config", {})).items() if k not in free}
    mine = {k: v for k, v in config.items() if k not in free}
    if saved != mine or state.get("classifier") != identity:
        raise CheckpointError(f"{path}: was written for other settings or another {what}; start afresh "
                              "without resume or use the same settings")
    if int(state["step"]) > steps:
        raise CheckpointError(f"{path}: already {int(state['step'])} steps, more than the {steps} asked for")
    return state


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) for a run that must repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
