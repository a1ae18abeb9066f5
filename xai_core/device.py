"""Device choice, one rule for the whole library: ``"auto"`` means CUDA when present, else CPU."""

from __future__ import annotations

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
