"""Checks shared by the explanation methods: the explained classifier, and the metadata of trained bundles.

Every trained bundle (decoders, explainers, ...) records the architecture of the classifier it belongs to;
:func:`check_arch` validates that record (types, ranges, sizes) before any module is built from it.
"""

from __future__ import annotations

import re
from typing import Any

from xai_core.checkpoints import Bundle
from xai_core.errors import CheckpointError, ParameterError, XaiError
from xai_core.models.svdnet import SVDNet, SVDNetConfig

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def check_classifier(classifier: Bundle) -> None:
    """Refuse anything but an SVDNet classifier bundle with normaliser statistics (its input space)."""
    if classifier.kind != "classifier" or not isinstance(classifier.model, SVDNet):
        raise ParameterError(f"expected a classifier bundle, got a {classifier.kind!r} bundle")
    if classifier.normaliser is None:
        raise ParameterError(f"classifier {classifier.name} has no normaliser statistics: its input space "
                             "is undefined")


def need(cond: bool, name: str, what: str) -> None:
    """Raise :class:`CheckpointError` ``"name: what"`` unless ``cond``."""
    if not cond:
        raise CheckpointError(f"{name}: {what}")


def check_identity(meta: dict, name: str) -> str:
    """The 64-hex-digit ``classifier.identity`` of a bundle's metadata."""
    clf = meta.get("classifier")
    need(isinstance(clf, dict) and isinstance(clf.get("identity"), str) and bool(HEX64.match(clf["identity"])),
         name, "'classifier.identity' must be the 64-hex-digit identity of the classifier's weights")
    return clf["identity"]


def check_arch(arch: Any, name: str) -> SVDNetConfig:
    """A bundle's record of its classifier's architecture, validated (schema, size limits of
    :mod:`xai_core.schema`) before anything is built from it."""
    from xai_core.schema import check_classifier_size, validate

    validate(arch, "classifier", name=name, where="arch")
    try:
        cfg = SVDNetConfig.from_dict(arch)
    except (XaiError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: invalid classifier architecture: {exc}") from exc
    check_classifier_size(cfg, name=name)
    return cfg


def write_trained_bundle(path, tensors: dict, *, kind: str, classifier: Bundle, classifier_identity: str,
                         train_config: dict, provenance: dict, metrics: dict, **fields: Any):
    """Write a trained bundle (decoder, explainer, ...) atomically: ``tensors`` and the JSON metadata shared by
    every trained kind (format, the explained classifier's architecture, mel settings and identity, the training
    config, provenance, metrics) plus the kind's own ``fields``."""
    import json
    from pathlib import Path

    from safetensors.torch import save

    from xai_core.checkpoints import FORMAT, FORMAT_VERSION, _json_default, default_provenance
    from xai_core.fileio import atomic_write_bytes

    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, **fields,
        "arch": classifier.model.config.to_dict(), "mel": classifier.mel.to_dict(),
        "classifier": {"identity": classifier_identity, "preset": classifier.preset,
                       "path": str(classifier.path) if classifier.path else None},
        "train_config": train_config, "provenance": provenance or default_provenance(), "metrics": metrics,
    }
    blob = save(tensors, metadata={"vocal_xai": json.dumps(meta, default=_json_default)})
    return atomic_write_bytes(Path(path), blob)
