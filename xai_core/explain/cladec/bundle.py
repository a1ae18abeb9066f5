"""Decoder bundles: one ``.safetensors`` file per trained decoder, tied to one classifier.

Tensors: ``decoder.*`` (the :class:`~xai_core.explain.cladec.decoder.LayerDecoder`) and, for
RefAE and the random-feature floor, ``encoder.*`` (their own SVDNet weights up to the decoded
layer; the later layers never run). The JSON metadata (key ``vocal_xai``)::

    {"format": "vocal-xai-bundle", "format_version": 1, "kind": "decoder",
     "variant": "cladec" | "refae" | "random", "layer": "fc2", "alpha": 0.001,
     "decoder": {DecoderConfig}, "arch": {the classifier's SVDNetConfig}, "mel": {MelConfig},
     "classifier": {"identity": sha256, "preset": ..., "path": ...},
     "train_config": {CladecConfig}, "provenance": {...}, "metrics": {...}}

Loading validates every field's type and range *before* a module is built (sizes bounded), then
every tensor's dtype, shape and finiteness, then that the bundle was trained for the classifier
it is loaded next to (same weights identity): otherwise a :class:`CheckpointError` says why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xai_core.checkpoints import (
    Bundle,
    _load_state,
    build_checked,
    read_bundle_file,
)
from xai_core.errors import CheckpointError, XaiError
from xai_core.explain.cladec.config import VARIANTS, CladecConfig
from xai_core.explain.cladec.decoder import DecoderConfig, LayerDecoder
from xai_core.explain.common import check_arch, check_identity, need, write_trained_bundle
from xai_core.models.hooks import forward_until
from xai_core.models.svdnet import SVDNet, SVDNetConfig

KIND = "decoder"


@dataclass
class DecoderBundle:
    """A trained decoder with its own encoder (RefAE, random) or none (ClaDec: the classifier)."""

    variant: str  # cladec | refae | random
    layer: str
    decoder: LayerDecoder  # in eval mode
    encoder: SVDNet | None  # None for ClaDec (the explained classifier is the encoder)
    alpha: float  # the classifier term's weight it was trained with (0 for RefAE)
    classifier_identity: str
    config: CladecConfig
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.variant}"

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.decoder.parameters())

    def check_classifier(self, classifier: Bundle) -> None:
        """Refuse a classifier other than the one this decoder was trained for."""
        if classifier.identity != self.classifier_identity:
            raise CheckpointError(
                f"{self.path or self.name}: this decoder was trained for classifier {self.classifier_identity[:16]}, "
                f"not for the loaded classifier {classifier.identity[:16]} ({classifier.name}); train decoders "
                "for this classifier (cladec train) or load the classifier they belong to")

    def to(self, device: torch.device) -> DecoderBundle:
        self.decoder.to(device)
        if self.encoder is not None:
            self.encoder.to(device)
        return self

    def encode(self, classifier_model: SVDNet, xn: torch.Tensor) -> torch.Tensor:
        """Layer activations of normalised log-mel ``xn (B, T, M)`` through this bundle's encoder."""
        enc = self.encoder if self.encoder is not None else classifier_model
        return forward_until(enc, self.layer, xn)  # (B, *layer_shape)


def _encoder_keys(model: SVDNet, layer: str) -> list[str]:
    """State-dict keys of the layers up to and including ``layer``."""
    names = SVDNet.layer_names[:SVDNet.layer_names.index(layer) + 1]
    return [k for k in model.state_dict() if k.split(".", 1)[0] in names]


def save_decoder(path: str | Path, bundle: DecoderBundle, *, classifier: Bundle,
                 dtype: torch.dtype | None = None) -> Path:
    """Write ``bundle`` atomically; ``dtype`` (e.g. ``torch.float16``) is the weights' storage type
    (loading casts back to float32)."""

    def store(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().cpu()
        return (v.to(dtype) if dtype is not None else v).contiguous()

    tensors = {"decoder." + k: store(v) for k, v in bundle.decoder.state_dict().items()}
    if bundle.encoder is not None:
        state = bundle.encoder.state_dict()
        tensors.update({"encoder." + k: store(state[k]) for k in _encoder_keys(bundle.encoder, bundle.layer)})
    return write_trained_bundle(
        path, tensors, kind=KIND, classifier=classifier, classifier_identity=bundle.classifier_identity,
        train_config=bundle.config.to_dict(), provenance=bundle.provenance, metrics=bundle.metrics,
        variant=bundle.variant, layer=bundle.layer, alpha=bundle.alpha, decoder=bundle.decoder.config.to_dict())


# --------------------------------------------------------------------------- validation

def check_decoder_meta(meta: Any, name: str) -> tuple[SVDNetConfig, DecoderConfig, CladecConfig]:
    """Validate a decoder bundle's metadata (types, ranges, sizes); nothing is allocated before."""
    need(isinstance(meta, dict), name, "metadata is not a mapping")
    need(meta.get("kind") == KIND, name, f"is a {meta.get('kind')!r} bundle, expected a {KIND!r} bundle")
    need(meta.get("variant") in VARIANTS, name, f"'variant' must be one of {list(VARIANTS)}, got "
          f"{meta.get('variant')!r}")
    need(meta.get("layer") in SVDNet.layer_names, name, f"'layer' must be one of {list(SVDNet.layer_names)}, "
          f"got {meta.get('layer')!r}")
    a = meta.get("alpha")
    need(isinstance(a, (int, float)) and not isinstance(a, bool) and 0 <= a < 1, name,
          f"'alpha' must be a number in [0, 1), got {a!r}")
    check_identity(meta, name)
    arch = check_arch(meta.get("arch"), name)
    dec = meta.get("decoder")
    need(isinstance(dec, dict) and set(dec) <= set(DecoderConfig.__dataclass_fields__), name,
          f"'decoder' must be a mapping of {sorted(DecoderConfig.__dataclass_fields__)}, got {dec!r}")
    try:
        dcfg = DecoderConfig(**dec)
        tcfg = CladecConfig.from_dict(meta.get("train_config"))
    except (XaiError, TypeError) as exc:
        raise CheckpointError(f"{name}: invalid decoder configuration: {exc}") from exc
    need(dcfg.layer == meta["layer"] == tcfg.layer, name, "'layer', 'decoder.layer' and 'train_config.layer' differ")
    need(tcfg.variant == meta["variant"], name, "'variant' and 'train_config.variant' differ")
    for key in ("provenance", "metrics"):
        need(isinstance(meta.get(key, {}), dict), name, f"'{key}' must be a mapping")
    return arch, dcfg, tcfg


def _check_tensors(tensors: dict[str, torch.Tensor], name: str) -> None:
    for k, v in tensors.items():
        need(v.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64), name,
              f"tensor {k!r} has dtype {v.dtype}; only floating-point weights are accepted")


def decoder_from_parts(meta: dict, tensors: dict[str, torch.Tensor], *, name: str, classifier: Bundle | None,
                       path: Path | None = None) -> DecoderBundle:
    arch, dcfg, tcfg = check_decoder_meta(meta, name)
    if classifier is not None:
        need(classifier.model.config == arch, name,
              f"was trained for a classifier of architecture {arch.to_dict()}, the loaded classifier has "
              f"{classifier.model.config.to_dict()}")
    _check_tensors(tensors, name)
    decoder = build_checked(lambda: LayerDecoder(arch, dcfg),
                            {k[len("decoder."):]: v for k, v in tensors.items() if k.startswith("decoder.")},
                            f"{name} (decoder)")
    encoder = None
    enc_state = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
    if meta["variant"] == "cladec":
        need(not enc_state, name, "a ClaDec bundle must not carry encoder weights (its encoder is the classifier)")
    else:
        encoder = SVDNet(arch)
        keys = _encoder_keys(encoder, meta["layer"])
        need(sorted(enc_state) == sorted(keys), name,
              f"encoder weights must be exactly {keys}, got {sorted(enc_state)}")
        full = encoder.state_dict()
        full.update(enc_state)
        _load_state(encoder, full, f"{name} (encoder)")
        encoder.eval().requires_grad_(False)
    decoder.eval().requires_grad_(False)
    out = DecoderBundle(variant=meta["variant"], layer=meta["layer"], decoder=decoder, encoder=encoder,
                        alpha=float(meta["alpha"]), classifier_identity=meta["classifier"]["identity"],
                        config=tcfg, provenance=meta.get("provenance") or {}, metrics=meta.get("metrics") or {},
                        path=path)
    if classifier is not None:
        out.check_classifier(classifier)
    return out


def load_decoder(path: str | Path, *, classifier: Bundle | None) -> DecoderBundle:
    """Load one decoder bundle; with ``classifier``, refuse it unless it was trained for that one."""
    path = Path(path)
    meta, tensors = read_bundle_file(path)
    return decoder_from_parts(meta, tensors, name=str(path), classifier=classifier, path=path)


@dataclass
class DecoderSet:
    """The decoders of one folder, by (layer, variant), and the evaluation stored beside them."""

    folder: Path
    decoders: dict[tuple[str, str], DecoderBundle]
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> why it was not loaded
    evaluation: dict | None = None  # eval.json, when present

    @property
    def layers(self) -> list[str]:
        """Decoded layers, shallow to deep."""
        have = {layer for layer, _ in self.decoders}
        return [n for n in SVDNet.layer_names if n in have]

    def get(self, layer: str, variant: str) -> DecoderBundle | None:
        return self.decoders.get((layer, variant))

    def ordered(self, variants: Sequence[str] = VARIANTS) -> list[DecoderBundle]:
        return [self.decoders[(lay, v)] for lay in self.layers for v in variants if (lay, v) in self.decoders]


EVAL_FILE = "eval.json"


def decoder_file_name(layer: str, variant: str) -> str:
    return f"{layer}_{variant}.safetensors"


def load_decoder_set(folder: str | Path, *, classifier: Bundle) -> DecoderSet:
    """Every decoder bundle of ``folder`` that belongs to ``classifier``; the rest is listed in ``skipped``.

    Raises :class:`CheckpointError` when the folder holds no usable decoder (saying why for each file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such decoder folder")
    decoders: dict[tuple[str, str], DecoderBundle] = {}
    skipped: dict[str, str] = {}
    for p in sorted(folder.glob("*.safetensors")):
        try:
            b = load_decoder(p, classifier=classifier)
        except XaiError as exc:
            skipped[p.name] = str(exc)
            continue
        decoders[(b.layer, b.variant)] = b
    if not decoders:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "no .safetensors files"
        raise CheckpointError(f"{folder}: no decoder for this classifier ({why})")
    evaluation = None
    ev = folder / EVAL_FILE
    if ev.is_file():
        try:
            evaluation = json.loads(ev.read_text())
            if not isinstance(evaluation, dict) or evaluation.get("classifier") != classifier.identity:
                skipped[EVAL_FILE] = "evaluation of another classifier"
                evaluation = None
        except (OSError, ValueError) as exc:
            skipped[EVAL_FILE] = f"unreadable ({exc})"
    return DecoderSet(folder, decoders, skipped, evaluation)
