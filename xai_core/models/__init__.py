"""Networks: the SVDNet classifier, the spectrogram GAN, and hook helpers."""

from xai_core.models.generator import (
    DISCRIMINATOR_PRESETS,
    GENERATOR_PRESETS,
    DiscriminatorConfig,
    GeneratorConfig,
    SpecDiscriminator,
    SpecGenerator,
    generator_preset,
)
from xai_core.models.hooks import capture_activations, count_hooks, resolve_layer
from xai_core.models.svdnet import SVDNET_PRESETS, SVDNet, SVDNetConfig, svdnet_preset

__all__ = [
    "DISCRIMINATOR_PRESETS", "GENERATOR_PRESETS", "SVDNET_PRESETS", "DiscriminatorConfig",
    "GeneratorConfig", "SVDNet", "SVDNetConfig", "SpecDiscriminator", "SpecGenerator",
    "capture_activations", "count_hooks", "generator_preset", "resolve_layer", "svdnet_preset",
]
