"""Helpers shared by the benchmarks (run as scripts: ``python bench/bench_*.py`` puts this folder on the path)."""

from __future__ import annotations

import torch

from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.checkpoints import Bundle, load_bundle, model_identity
from xai_core.models.svdnet import SVDNet


def classifier(path: str | None, preset: str) -> Bundle:
    """The bundle at ``path``, or a randomly initialised SVDNet of ``preset`` with a plausible normaliser."""
    if path:
        return load_bundle(path, expected_kind="classifier")
    net = SVDNet(preset).eval()
    norm = Normaliser.fit(-6 + 2 * torch.randn(256, 80))
    return Bundle(kind="classifier", model=net, mel=MelConfig(), normaliser=norm, preset=preset,
                  identity=model_identity(net))


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work (CUDA timings)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
