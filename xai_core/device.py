"""Device choice, one rule for the whole library: ``"auto"`` means CUDA when present, else CPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from xai_core.errors import ParameterError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``None``/``"auto"`` -> CUDA if available else CPU; otherwise the named device.

    Raises :class:`ParameterError` when a CUDA device is asked for on a machine without CUDA.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device {str(device)!r} is not a valid torch device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


@contextmanager
def out_of_memory_as_error(what: str, hint: str) -> Iterator[None]:
    """Turn a device out-of-memory error inside the block into a :class:`ParameterError` that says what
    ran out and what to change (``hint``), after freeing the allocator's cache; the caller's state
    (stored files, loaded models) is left as it was."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise ParameterError(f"{what} ran out of device memory; {hint}") from exc
