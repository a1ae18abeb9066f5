"""Argument types shared by the command modules (argparse ``type=`` callables).

Every number a command takes is bounded: a finite value in a documented range (NaN, infinity,
``1e308`` and negative counts are refused by argparse with the accepted range, exit status 2).
The ranges are appended to each option's ``--help`` by :func:`document_ranges`. Common bounds:

* seeds: ``0 .. 2**32 - 1`` (:data:`SEED_MAX`; numpy's seed range; ``torch.manual_seed`` accepts more,
  the CLI keeps seeds portable, and ``seed + i`` of every example still fits a 64-bit integer);
* activation maximisation: the bounds of its configurations (:mod:`xai_core.actmax.config`: examples
  per run ``1 .. 4096``, iterations ``1 .. 100000``, learning rate ``(0, 100]``, prior weight
  ``[0, 1e6]``); training steps ``1 .. 10**7``, batch sizes ``1 .. 4096``, CPU threads ``0 .. 1024``;
* devices: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (:func:`device`).
"""

from __future__ import annotations

import argparse
import math
import re

SEED_MAX = 2**32 - 1  # numpy's seed range; torch's is larger
MAX_STEPS = 10_000_000  # training steps (the trainers' own bound)
MAX_BATCH = 4096
MAX_COUNT = 1_000_000  # excerpts drawn, reference sizes, unit indices
MAX_SECONDS = 1e6  # offsets / durations in an audio file (11.6 days)
MAX_GL_ITERS = 10_000  # Griffin-Lim iterations
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _fmt(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


class _Bounded:
    """An argparse type: a number in a range; ``range_text`` is what :func:`document_ranges` shows."""

    def __init__(self, kind: type, lo, hi, *, lo_open: bool = False, hi_open: bool = False) -> None:
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        self.range_text = f"{left}{_fmt(lo)}, {_fmt(hi)}{right}"
        self.__name__ = "integer" if kind is int else "number"

    def check(self, value, text: str):
        ok = (value > self.lo if self.lo_open else value >= self.lo) and \
             (value < self.hi if self.hi_open else value <= self.hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if self.kind is int else 'a number'} in "
                                             f"{self.range_text}, got {text!r}")
        return value

    def parse(self, text: str):
        t = text.strip()
        if self.kind is int:
            if not re.fullmatch(r"[+-]?\d{1,30}", t):
                raise argparse.ArgumentTypeError(f"expected an integer in {self.range_text}, got {text!r}")
            return self.check(int(t), text)
        try:
            v = float(t)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {self.range_text}, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number in {self.range_text}, got {text!r}")
        return self.check(v, text)

    def __call__(self, text: str):
        return self.parse(text)

    def __repr__(self) -> str:
        return f"{self.__name__} in {self.range_text}"


def int_range(lo: int, hi: int) -> _Bounded:
    """Type: an integer in ``[lo, hi]``."""
    return _Bounded(int, lo, hi)


def float_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> _Bounded:
    """Type: a finite number in ``[lo, hi]`` (``lo_open`` / ``hi_open``: the bound excluded)."""
    return _Bounded(float, lo, hi, lo_open=lo_open, hi_open=hi_open)


class _BoundedList(_Bounded):
    """Type: comma-separated numbers, each in the range; at least one."""

    def __call__(self, text: str):
        parts = [t for t in text.split(",") if t.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers in "
                                             f"{self.range_text}")
        out = []
        for t in parts:
            try:
                out.append(self.parse(t))
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(f"in {text!r}: {exc}") from None
        return tuple(out)


def int_list(lo: int, hi: int) -> _BoundedList:
    """Type: ``"100,500"`` -> ``(100, 500)``, each an integer in ``[lo, hi]``."""
    return _BoundedList(int, lo, hi)


def float_list(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> _BoundedList:
    """Type: ``"0.1,0.01"`` -> ``(0.1, 0.01)``, each a finite number in the range."""
    return _BoundedList(float, lo, hi, lo_open=lo_open, hi_open=hi_open)


SEED = int_range(0, SEED_MAX)
THREADS = int_range(0, 1024)
STEPS = int_range(1, MAX_STEPS)
BATCH = int_range(1, MAX_BATCH)
SECONDS = float_range(0.0, MAX_SECONDS)
GL_ITERS = int_range(0, MAX_GL_ITERS)
LR = float_range(0.0, 10.0, lo_open=True)
PROBABILITY = float_range(0.0, 1.0)
FRACTION = float_range(0.0, 1.0, hi_open=True)  # decays, momenta, dropout: [0, 1)


def device(text: str) -> str:
    """Type: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``; a CUDA / MPS device that this machine
    does not have is refused here, with what it has."""
    t = text.strip().lower()
    if t in ("auto", "cpu"):
        return t
    m = re.fullmatch(r"cuda(?::(\d{1,4}))?", t)
    if m is None and t != "mps":
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose from {', '.join(DEVICES)}")
    import torch

    if t == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise argparse.ArgumentTypeError("device 'mps' requested but Apple MPS is not available here; use cpu")
        return t
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {text!r} requested but CUDA is not available here; use cpu "
                                         "(or auto)")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"device {text!r}: this machine has {torch.cuda.device_count()} CUDA "
                                         f"device(s), cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return t


def add_device(p: argparse.ArgumentParser, *, default: str = "auto") -> None:
    """``--device`` with :func:`device` as its type."""
    p.add_argument("--device", type=device, default=default,
                   help="auto (CUDA if available), cpu, cuda, cuda:N or mps (default: %(default)s)")


def add_force(p: argparse.ArgumentParser, what: str = "existing output files") -> None:
    """``--force``: overwrite ``what`` (without it a command refuses to replace a file)."""
    p.add_argument("--force", action="store_true", help=f"overwrite {what}")


def names(text: str) -> tuple[str, ...]:
    """``"conv2, fc2"`` -> ``("conv2", "fc2")``; an empty list is refused."""
    out = tuple(t.strip() for t in text.split(",") if t.strip())
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of names")
    return out


def floats(text: str) -> tuple[float, ...]:
    """``"0.5,1,2"`` -> ``(0.5, 1.0, 2.0)``; an empty list, a non-number, NaN or infinity is refused."""
    try:
        out = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of finite numbers")
    return out


def document_ranges(parser: argparse.ArgumentParser) -> None:
    """Append each bounded option's range to its help, in ``parser`` and all its sub-parsers."""
    seen: set[int] = set()

    def walk(p: argparse.ArgumentParser) -> None:
        if id(p) in seen:
            return
        seen.add(id(p))
        for action in p._actions:
            rt = getattr(action.type, "range_text", None)
            if rt and action.help is not argparse.SUPPRESS and "range_done" not in getattr(action, "__dict__", {}):
                action.help = (action.help + " " if action.help else "") + f"(range {rt})"
                action.range_done = True  # type: ignore[attr-defined]
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(parser)
