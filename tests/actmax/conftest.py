"""Tiny float64 models with re-drawn, larger weights so the response visibly depends on z.

float64 because Adam's first steps are ~ lr * sign(gradient): in float32 a near-zero gradient
element may flip sign between a batched and a batch-1 convolution, an honest rounding difference.
"""

from __future__ import annotations

import copy

import pytest
import torch

from xai_core.checkpoints import model_identity


@pytest.fixture(scope="session")
def lively(tiny_bundles):
    clf, gen, ref = tiny_bundles
    g = torch.Generator().manual_seed(1)
    out = []
    for b in (clf, gen):
        b2 = copy.copy(b)
        b2.model = copy.deepcopy(b.model).double()  # float64: batched == sequential to rounding
        with torch.no_grad():
            for name, p in b2.model.named_parameters():
                if name.endswith("weight"):
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) * 1.5 / fan_in ** 0.5)
        b2.identity = model_identity(b2.model)
        out.append(b2)
    return out[0], out[1], ref
