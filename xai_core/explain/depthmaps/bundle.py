"""Explainer bundles: one ``.safetensors`` file per trained conditional-GAN explainer, tied to one classifier.

Tensors: ``generator.*`` (the :class:`~xai_core.explain.depthmaps.nets.MapGenerator`; the discriminator is
only needed to train and stays in the training checkpoint). JSON metadata (key ``vocal_xai``)::

    {"format": "vocal-xai-bundle", "format_version": 1, "kind": "explainer",
     "generator": {GeneratorConfig}, "unit": {UnitSpec}, "layers": [spatial layers, shallow to deep],
     "kept": [cumulative indices], "target": "deepest" | "mean", "arch": {SVDNetConfig}, "mel": {MelConfig},
     "classifier": {"identity": sha256, ...}, "train_config": {ExplainerConfig}, "provenance": {...},
     "metrics": {...}}

Loading validates every field before a module is built, then the tensors, then that the explainer
belongs to the classifier it is loaded next to (same weights identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xai_core.checkpoints import (
    Bundle,
    build_checked,
    parse_bundle_bytes,
    read_bundle_file,
)
from xai_core.errors import CheckpointError, XaiError
from xai_core.explain.common import check_arch, check_identity, need, write_trained_bundle
from xai_core.explain.depthmaps.config import TARGETS, ExplainerConfig, UnitSpec
from xai_core.explain.depthmaps.gradcam import depth_indices
from xai_core.explain.depthmaps.nets import GeneratorConfig, MapGenerator
from xai_core.models.svdnet import SVDNet

KIND = "explainer"


@dataclass
class ExplainerBundle:
    """A trained map generator and what it was trained on."""

    generator: MapGenerator  # eval mode, CPU
    unit: UnitSpec
    layers: list[str]  # spatial layers of the Grad-CAM maps, shallow to deep
    kept: list[int]  # cumulative maps fed as conditions (deepest first)
    target: str
    classifier_identity: str
    config: ExplainerConfig
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def variant(self) -> str:
        return self.generator.config.variant

    @property
    def k(self) -> int:
        return self.generator.config.k

    @property
    def name(self) -> str:
        return self.path.stem if self.path is not None else f"{self.variant} explainer"

    def check_classifier(self, classifier: Bundle) -> None:
        """Refuse a classifier other than the one this explainer was trained for."""
        if classifier.identity != self.classifier_identity:
            raise CheckpointError(
                f"{self.path or self.name}: this explainer was trained for classifier {self.classifier_identity[:16]}, "
                f"not for the loaded classifier {classifier.identity[:16]} ({classifier.name}); train an explainer "
                "for this classifier (train explainer) or load the classifier it belongs to")


def save_explainer(path: str | Path, bundle: ExplainerBundle, *, classifier: Bundle,
                   dtype: torch.dtype | None = None) -> Path:
    """Write ``bundle`` atomically; ``dtype`` (e.g. ``torch.float16``) is the storage type of the weights."""
    bundle.check_classifier(classifier)
    tensors = {"generator." + k: (v.detach().cpu().to(dtype) if dtype is not None else v.detach().cpu()).contiguous()
               for k, v in bundle.generator.state_dict().items()}
    return write_trained_bundle(
        path, tensors, kind=KIND, classifier=classifier, classifier_identity=bundle.classifier_identity,
        train_config=bundle.config.to_dict(), provenance=bundle.provenance, metrics=bundle.metrics,
        generator=bundle.generator.config.to_dict(), unit=bundle.unit.to_dict(), layers=list(bundle.layers),
        kept=list(bundle.kept), target=bundle.target)


def check_explainer_meta(meta: Any, name: str) -> tuple[GeneratorConfig, UnitSpec, ExplainerConfig]:
    """Validate an explainer bundle's metadata (types, ranges, sizes); nothing is allocated before."""
    need(isinstance(meta, dict), name, "metadata is not a mapping")
    need(meta.get("kind") == KIND, name, f"is a {meta.get('kind')!r} bundle, expected an {KIND!r} bundle")
    check_identity(meta, name)
    arch = check_arch(meta.get("arch"), name)
    gen = meta.get("generator")
    need(isinstance(gen, dict) and set(gen) <= set(GeneratorConfig.__dataclass_fields__), name,
         f"'generator' must be a mapping of {sorted(GeneratorConfig.__dataclass_fields__)}, got {gen!r}")
    try:
        gcfg = GeneratorConfig(**gen)
        unit = UnitSpec.from_dict(meta.get("unit"))
        tcfg = ExplainerConfig.from_dict(meta.get("train_config"))
    except (XaiError, TypeError) as exc:
        raise CheckpointError(f"{name}: invalid explainer configuration: {exc}") from exc
    need((gcfg.n_frames, gcfg.n_mels) == (arch.n_frames, arch.n_mels), name,
         "the generator's input size differs from the classifier's")
    layers = meta.get("layers")
    spatial = [n for n in SVDNet.layer_names if n.startswith(("conv", "pool"))]
    need(isinstance(layers, list) and 1 <= len(layers) <= len(spatial) and all(x in spatial for x in layers)
         and layers == [n for n in spatial if n in layers], name,
         f"'layers' must be spatial layers of the classifier, shallow to deep, got {layers!r}")
    kept = meta.get("kept")
    need(isinstance(kept, list) and len(kept) == gcfg.k and kept == depth_indices(len(layers), gcfg.k), name,
         f"'kept' must be the {gcfg.k} evenly spaced depths of {len(layers)} layers, got {kept!r}")
    need(meta.get("target") in TARGETS, name, f"'target' must be one of {list(TARGETS)}, got {meta.get('target')!r}")
    need(tcfg.variant == gcfg.variant, name, "'train_config.variant' and 'generator.variant' differ")
    for key in ("provenance", "metrics"):
        need(isinstance(meta.get(key, {}), dict), name, f"'{key}' must be a mapping")
    return gcfg, unit, tcfg


def explainer_from_parts(meta: dict, tensors: dict[str, torch.Tensor], *, name: str, classifier: Bundle | None,
                         path: Path | None = None) -> ExplainerBundle:
    gcfg, unit, tcfg = check_explainer_meta(meta, name)
    for k, v in tensors.items():
        need(v.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64), name,
             f"tensor {k!r} has dtype {v.dtype}; only floating-point weights are accepted")
    gen = build_checked(lambda: MapGenerator(gcfg),
                        {k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")},
                        f"{name} (generator)")
    need(all(k.startswith("generator.") for k in tensors), name, "holds tensors other than the generator's")
    gen.eval().requires_grad_(False)
    out = ExplainerBundle(generator=gen, unit=unit, layers=list(meta["layers"]), kept=list(meta["kept"]),
                          target=meta["target"], classifier_identity=meta["classifier"]["identity"], config=tcfg,
                          provenance=meta.get("provenance") or {}, metrics=meta.get("metrics") or {}, path=path)
    if classifier is not None:
        out.check_classifier(classifier)
    return out


def load_explainer(path: str | Path, *, classifier: Bundle | None) -> ExplainerBundle:
    """Load an explainer bundle; with ``classifier``, refuse it unless it was trained for that one."""
    path = Path(path)
    meta, tensors = read_bundle_file(path)
    return explainer_from_parts(meta, tensors, name=str(path), classifier=classifier, path=path)


def load_explainer_bytes(data: bytes, *, name: str, classifier: Bundle | None) -> ExplainerBundle:
    """Like :func:`load_explainer` for an upload."""
    meta, tensors = parse_bundle_bytes(data, name=name)
    return explainer_from_parts(meta, tensors, name=name, classifier=classifier)


def load_explainers(folder: str | Path, *, classifier: Bundle) -> tuple[dict[str, ExplainerBundle], dict[str, str]]:
    """Every explainer bundle of ``folder`` that belongs to ``classifier``, by file stem, and the files
    skipped with the reason (another classifier, corrupt, ...)."""
    folder = Path(folder)
    found: dict[str, ExplainerBundle] = {}
    skipped: dict[str, str] = {}
    if not folder.is_dir():
        return found, skipped
    for p in sorted(folder.glob("*.safetensors")):
        try:
            found[p.stem] = load_explainer(p, classifier=classifier)
        except XaiError as exc:
            skipped[p.name] = str(exc)
    return found, skipped
