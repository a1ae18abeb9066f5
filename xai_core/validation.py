"""Checks of configuration values, shared by the methods' frozen config dataclasses.

Each returns the value (as ``int`` / ``float``) or raises :class:`~xai_core.errors.ParameterError`
naming the field, the accepted range and the value given. Booleans are not numbers here (``True``
is not a step count), and NaN or infinity never pass.
"""

from __future__ import annotations

import math
from typing import Any

from xai_core.errors import ParameterError


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParameterError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def check_float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = False) -> float:
    """A finite number in ``[lo, hi]`` (``lo_open`` / ``hi_open``: the bound itself excluded)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ParameterError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def config_from_dict(cls, d: Any, what: str):
    """``cls(**d)`` for a frozen config dataclass, refusing a non-mapping and unknown keys by name."""
    if not isinstance(d, dict):
        raise ParameterError(f"a {what} config must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(cls.__dataclass_fields__))
    if unknown:
        raise ParameterError(f"unknown {what} config keys {unknown}")
    return cls(**d)
