"""Model bundles: one ``.safetensors`` file = weights + JSON metadata. Loading never unpickles.

A bundle holds the model's tensors under ``model.``, the per-band normaliser under
``normaliser.`` and, in the safetensors header's metadata, a JSON document::

    {"format": "vocal-xai-bundle", "format_version": 1, "kind": "classifier" | "generator",
     "arch": {...architecture config...}, "preset": "lite" | "paper" | ... | null,
     "mel": {...MelConfig...}, "provenance": {data, seed, command, package version, ...},
     "metrics": {...}}

Plain PyTorch state dicts (``.pt``/``.pth``) can be imported with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xai_core import __version__
from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.errors import CheckpointError, XaiError
from xai_core.fileio import atomic_write_bytes
from xai_core.models.generator import GeneratorConfig, SpecGenerator, generator_preset
from xai_core.models.svdnet import SVDNet, SVDNetConfig, svdnet_preset

FORMAT = "vocal-xai-bundle"
FORMAT_VERSION = 1
KINDS = ("classifier", "generator")
MAX_BUNDLE_BYTES = 2 * 1024**3  # refuse absurd files before reading them


@dataclass
class Bundle:
    """A loaded model with everything needed to use it."""

    kind: str  # "classifier" or "generator"
    model: nn.Module  # SVDNet or SpecGenerator, in eval mode
    mel: MelConfig
    normaliser: Normaliser | None
    preset: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    identity: str = ""  # sha256 of the weights (stable across file re-saves)

    @property
    def arch(self) -> dict:
        return self.model.config.to_dict()

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def name(self) -> str:
        return self.path.name if self.path else f"{self.kind}:{self.preset or 'custom'}"


def _build_model(kind: str, arch: dict) -> nn.Module:
    try:
        if kind == "classifier":
            return SVDNet(SVDNetConfig.from_dict(arch))
        if kind == "generator":
            return SpecGenerator(GeneratorConfig.from_dict(arch))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid {kind} architecture {arch}: {exc}") from exc
    raise CheckpointError(f"unknown bundle kind {kind!r}; expected one of {KINDS}")


def weights_identity(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes of a state dict (sorted by name)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_identity(model: nn.Module) -> str:
    return weights_identity(model.state_dict())


def default_provenance(**extra: Any) -> dict[str, Any]:
    prov = {"package_version": __version__, "torch": torch.__version__, "python": platform.python_version()}
    prov.update(extra)
    return prov


def save_bundle(path: str | Path, *, model: nn.Module, kind: str, mel: MelConfig,
                normaliser: Normaliser | None, preset: str | None = None,
                provenance: dict | None = None, metrics: dict | None = None,
                dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically.

    Parameters
    ----------
    dtype : optional storage dtype for floating weights (e.g. ``torch.float16`` to halve the size;
        loading casts back to float32).
    """
    from safetensors.torch import save

    if kind not in KINDS:
        raise CheckpointError(f"unknown bundle kind {kind!r}; expected one of {KINDS}")
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors["model." + k] = v.contiguous()
    if normaliser is not None:
        tensors.update(normaliser.to_tensors())
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
        "arch": model.config.to_dict(), "preset": preset, "mel": mel.to_dict(),
        "provenance": provenance or default_provenance(), "metrics": metrics or {},
        "storage_dtype": str(dtype or torch.float32).replace("torch.", ""),
    }
    try:
        blob = save(tensors, metadata={"vocal_xai": json.dumps(meta, default=_json_default)})
    except TypeError as exc:
        raise CheckpointError(f"metadata is not JSON-serialisable: {exc}") from exc
    path = Path(path)
    atomic_write_bytes(path, blob)
    return path


def _json_default(o: Any):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def read_bundle_file(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Parse a bundle into (metadata, tensors) without building a model. Never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such bundle file")
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise CheckpointError(f"{path}: {size} bytes is larger than the {MAX_BUNDLE_BYTES}-byte limit")
    data = path.read_bytes()
    return parse_bundle_bytes(data, name=str(path), _load=load, _err=SafetensorError)


def parse_bundle_bytes(data: bytes, *, name: str = "<bytes>", _load=None, _err=None):
    """Like :func:`read_bundle_file` for in-memory data (uploads)."""
    if _load is None:
        from safetensors import SafetensorError as _err  # noqa: N813
        from safetensors.torch import load as _load
    try:
        tensors = _load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
    except (_err, ValueError, UnicodeDecodeError, OverflowError) as exc:
        hint = ""
        if data[:1] == b"\x80" or data[:2] == b"PK":
            hint = ("; it looks like a pickle/zip PyTorch checkpoint: import it as a state dict "
                    "with an architecture preset instead (nothing in it was executed)")
        raise CheckpointError(f"{name}: not a readable safetensors file ({exc}){hint}") from exc
    raw = (header.get("__metadata__") or {}).get("vocal_xai")
    if raw is None:
        raise CheckpointError(f"{name}: safetensors file without Vocal XAI metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{name}: corrupt bundle metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{name}: format {meta.get('format')!r} is not {FORMAT!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{name}: bundle format version {meta.get('format_version')} is newer than "
                              f"this program's {FORMAT_VERSION}")
    for key in ("kind", "arch", "mel"):
        if key not in meta:
            raise CheckpointError(f"{name}: bundle metadata lacks {key!r}")
    return meta, tensors


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Load strictly, with an error listing every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches [{'; '.join(shapes)}]")
        raise CheckpointError(f"{name}: weights do not fit the architecture: " + ", ".join(parts))
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{name}: tensor {k!r} contains non-finite values")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def bundle_from_parts(meta: dict, tensors: dict[str, torch.Tensor], *, name: str,
                      path: Path | None = None, device: str | torch.device = "cpu") -> Bundle:
    kind = meta["kind"]
    model = _build_model(kind, meta["arch"])
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _load_state(model, state, name)
    try:
        mel = MelConfig.from_dict(meta["mel"])
    except XaiError as exc:
        raise CheckpointError(f"{name}: invalid MelConfig in bundle: {exc}") from exc
    normaliser = None
    if "normaliser.mean" in tensors:
        try:
            normaliser = Normaliser.from_tensors(tensors)
        except (KeyError, XaiError) as exc:
            raise CheckpointError(f"{name}: invalid normaliser: {exc}") from exc
        if normaliser.n_mels != mel.n_mels:
            raise CheckpointError(f"{name}: normaliser has {normaliser.n_mels} bands, MelConfig {mel.n_mels}")
    model.to(device).eval()
    return Bundle(kind=kind, model=model, mel=mel, normaliser=normaliser, preset=meta.get("preset"),
                  provenance=meta.get("provenance") or {}, metrics=meta.get("metrics") or {},
                  path=path, identity=model_identity(model))


def load_bundle(path: str | Path, *, device: str | torch.device = "cpu",
                expected_kind: str | None = None) -> Bundle:
    """Load a bundle file; raises :class:`CheckpointError` with the reason on any defect."""
    path = Path(path)
    meta, tensors = read_bundle_file(path)
    if expected_kind is not None and meta["kind"] != expected_kind:
        raise CheckpointError(f"{path}: is a {meta['kind']} bundle, expected a {expected_kind}")
    return bundle_from_parts(meta, tensors, name=str(path), path=path, device=device)


def load_bundle_bytes(data: bytes, *, name: str = "upload", device="cpu",
                      expected_kind: str | None = None) -> Bundle:
    meta, tensors = parse_bundle_bytes(data, name=name)
    if expected_kind is not None and meta["kind"] != expected_kind:
        raise CheckpointError(f"{name}: is a {meta['kind']} bundle, expected a {expected_kind}")
    return bundle_from_parts(meta, tensors, name=name, device=device)


def update_bundle_metadata(path: str | Path, *, metrics: dict | None = None,
                           provenance: dict | None = None) -> None:
    """Merge ``metrics``/``provenance`` into a bundle's metadata (atomic rewrite)."""
    from safetensors.torch import save

    meta, tensors = read_bundle_file(path)
    if metrics:
        meta.setdefault("metrics", {}).update(metrics)
    if provenance:
        meta.setdefault("provenance", {}).update(provenance)
    atomic_write_bytes(Path(path), save(tensors, metadata={"vocal_xai": json.dumps(meta, default=_json_default)}))


def import_state_dict(path: str | Path, *, kind: str, preset: str, mel: MelConfig = MelConfig(),
                      normaliser: Normaliser | None = None, device="cpu") -> Bundle:
    """Import a plain PyTorch state dict (``.pt``/``.pth``) for a known architecture preset.

    Uses ``torch.load(weights_only=True)``: tensors and plain containers only, no code runs.
    A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper and a ``module.`` prefix are accepted.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a loadable weights-only PyTorch file ({exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if kind == "classifier":
        model: nn.Module = SVDNet(svdnet_preset(preset))
    elif kind == "generator":
        model = SpecGenerator(generator_preset(preset))
    else:
        raise CheckpointError(f"unknown kind {kind!r}; expected one of {KINDS}")
    _load_state(model, state, str(path))
    model.to(device).eval()
    return Bundle(kind=kind, model=model, mel=mel, normaliser=normaliser, preset=preset,
                  provenance={"imported_from": str(path)}, path=path, identity=model_identity(model))


def check_compatible(classifier: Bundle, generator: Bundle) -> None:
    """Raise unless the generator's output fits the classifier's input and front end."""
    c, g = classifier.model.config, generator.model.config
    problems = []
    if (g.n_frames, g.n_mels) != (c.n_frames, c.n_mels):
        problems.append(f"generator makes {g.n_frames}x{g.n_mels} excerpts, classifier takes "
                        f"{c.n_frames}x{c.n_mels}")
    if classifier.mel != generator.mel:
        problems.append(f"MelConfigs differ: classifier {classifier.mel} vs generator {generator.mel}")
    if classifier.normaliser is None:
        problems.append("the classifier bundle has no normaliser statistics")
    if problems:
        raise CheckpointError("incompatible classifier and generator: " + "; ".join(problems))


def describe_bundle(bundle: Bundle) -> str:
    """Human-readable summary: architecture, layer shapes, parameters, MelConfig, metrics."""
    lines = [f"{bundle.kind} bundle {bundle.path or ''}".rstrip(),
             f"  preset: {bundle.preset or 'custom'}   parameters: {bundle.n_parameters:,}",
             f"  identity: {bundle.identity[:16]}"]
    lines.append("  architecture: " + json.dumps(bundle.arch))
    if isinstance(bundle.model, SVDNet):
        lines.append("  layers (output shape without batch):")
        for n, s in bundle.model.layer_shapes().items():
            lines.append(f"    {n:<6} {s}")
    else:
        lines.append(f"  output: (B, {bundle.model.config.n_frames}, {bundle.model.config.n_mels}) log-mel "
                     f"from z in R^{bundle.model.config.z_dim}")
    lines.append("  mel: " + ", ".join(f"{k}={v}" for k, v in bundle.mel.to_dict().items()))
    lines.append(f"  normaliser: {'yes' if bundle.normaliser is not None else 'no'}")
    if bundle.metrics:
        lines.append("  metrics:")
        for k, v in bundle.metrics.items():
            lines.append(f"    {k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")
    if bundle.provenance:
        lines.append("  provenance:")
        for k, v in bundle.provenance.items():
            lines.append(f"    {k}: {v}")
    return "\n".join(lines)
