"""Hearing a map: the excerpt's most relevant part alone, and everything but that part.

The mask is applied to the log-mel before inversion: kept bins keep their value, the others drop to the
mel floor (``log(log_floor)``, silence), then the page inverts both with the app's one inversion path. The
classifier's p(vocal) of both masked spectrograms says whether the relevant part carries the decision.
"""

from __future__ import annotations

import torch

from xai_core.errors import ParameterError
from xai_core.validation import check_float


def relevance_mask(saliency: torch.Tensor, share: float) -> torch.Tensor:
    """The top ``share`` of bins of each map ``(B, T, M)`` (or ``(T, M)``) by saliency: a boolean mask of the
    same shape (ties broken by bin index, so the mask is deterministic)."""
    check_float("share", share, 0.0, 1.0, lo_open=True, hi_open=True)
    s = saliency if saliency.ndim == 3 else saliency[None]
    if s.ndim != 3:
        raise ParameterError(f"saliency must be (B, T, M) or (T, M), got {tuple(saliency.shape)}")
    flat = s.flatten(1)
    n_keep = max(1, round(share * flat.shape[1]))
    order = torch.argsort(-flat, dim=1, stable=True)[:, :n_keep]
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True).reshape(s.shape)
    return mask if saliency.ndim == 3 else mask[0]


def split_by_relevance(logmel: torch.Tensor, saliency: torch.Tensor, *, share: float,
                       floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(only the relevant part, everything but it)``: un-normalised log-mel of ``logmel``'s shape, the other
    bins at ``floor`` (the mel floor: silence)."""
    if logmel.shape != saliency.shape:
        raise ParameterError(f"excerpt {tuple(logmel.shape)} and map {tuple(saliency.shape)} differ in shape")
    mask = relevance_mask(saliency, share)
    low = torch.full_like(logmel, floor)
    return torch.where(mask, logmel, low), torch.where(mask, low, logmel)
