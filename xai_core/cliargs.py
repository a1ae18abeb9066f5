"""Argument types shared by the command modules (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse


def names(text: str) -> tuple[str, ...]:
    """``"conv2, fc2"`` -> ``("conv2", "fc2")``; an empty list is refused."""
    out = tuple(t.strip() for t in text.split(",") if t.strip())
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of names")
    return out


def floats(text: str) -> tuple[float, ...]:
    """``"0.5,1,2"`` -> ``(0.5, 1.0, 2.0)``; an empty list or a non-number is refused."""
    try:
        out = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers")
    return out
