"""Cascading re-initialisation of a classifier and the rank correlation used to compare explanations."""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

FAIL_ABOVE = 0.5  # mean rank correlation with the trained model's explanation, all layers random, above which it fails


def weighted_layers(model: nn.Module) -> list[str]:
    """Addressable layers with weights, deepest first (the cascading order)."""
    return [n for n in reversed(model.layer_names)
            if any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in getattr(model, n).modules())]


def randomise(model: nn.Module, layers: list[str], *, seed: int) -> nn.Module:
    """A copy of ``model`` with ``layers`` re-initialised (orthogonal weights scaled like the model's own
    initialisation, zero biases; seeded); ``model`` itself is never touched."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    for name in layers:
        for m in getattr(out, name).modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                with torch.no_grad():
                    w = torch.empty(m.weight.shape)
                    nn.init.orthogonal_(w, gain=nn.init.calculate_gain("leaky_relu", 0.01), generator=gen)
                    m.weight.copy_(w.to(m.weight))
                    if m.bias is not None:
                        m.bias.zero_()
    return out


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (ties: average ranks); ``(B,)``.
    A constant row gives 0."""
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    num = (ra * rb).sum(1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
