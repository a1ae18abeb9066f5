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
MAX_BUNDLE_BYTES = 512 * 1024**2  # refuse absurd files before reading them (= schema LIMITS)


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


def _config(kind: str, arch: Any, name: str):
    """The architecture config of a bundle, after its schema check and size bound (nothing allocated)."""
    from xai_core.schema import check_classifier_size, check_generator_size, validate

    if kind not in KINDS:
        raise CheckpointError(f"{name}: unknown bundle kind {kind!r}; expected one of {KINDS}")
    validate(arch, kind, name=name, where="arch")
    try:
        cfg = SVDNetConfig.from_dict(arch) if kind == "classifier" else GeneratorConfig.from_dict(arch)
    except (XaiError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: invalid {kind} architecture: {exc}") from exc
    (check_classifier_size if kind == "classifier" else check_generator_size)(cfg, name=name)
    return cfg


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


def read_bounded(path: str | Path, *, what: str) -> bytes:
    """The bytes of the file ``path``, refused (:class:`CheckpointError`) if it is not a file or is over
    ``LIMITS["bundle_bytes"]``: the first check of every file this program reads back."""
    from xai_core.schema import LIMITS

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what}")
    size = path.stat().st_size
    if size > LIMITS["bundle_bytes"]:
        raise CheckpointError(f"{path}: {size:,} bytes is over the {int(LIMITS['bundle_bytes']):,}-byte limit of a "
                              f"{what}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc


def read_bundle_file(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Parse a bundle into (metadata, tensors) without building a model. Never unpickles."""
    return parse_bundle_bytes(read_bounded(path, what="bundle file"), name=str(path))


def read_tagged_file(path: str | Path, *, what: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file this program wrote (run-store results, ...): size, header and
    metadata parsed within the bounds of :mod:`xai_core.schema`; the caller checks the fields. Never unpickles."""
    data = read_bounded(path, what=what)
    _, meta = _metadata(data, str(path), missing=f"not a {what} (no Vocal XAI metadata)")
    return meta, _tensors(data, str(path))


def _header(data: bytes, name: str) -> dict:
    """The safetensors JSON header of ``data``, bounded before it is parsed."""
    from xai_core.schema import LIMITS

    if len(data) < 8:
        raise CheckpointError(f"{name}: not a readable safetensors file ({len(data)} bytes is too short)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8 or n > LIMITS["metadata_bytes"] + 1024**2:
        hint = ""
        if data[:1] == b"\x80" or data[:2] == b"PK":
            hint = ("; it looks like a pickle/zip PyTorch checkpoint: import it as a state dict "
                    "with an architecture preset instead (nothing in it was executed)")
        raise CheckpointError(f"{name}: not a readable safetensors file (header of {n:,} bytes in a file of "
                              f"{len(data):,}){hint}")
    try:
        header = json.loads(data[8:8 + n])
    except RecursionError:
        raise CheckpointError(f"{name}: safetensors header nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{name}: not a readable safetensors file (header: {exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: not a readable safetensors file (header is not a JSON object)")
    return header


def _metadata(data: bytes, name: str, *, missing: str = "safetensors file without Vocal XAI metadata"):
    """``(header, metadata)`` of a safetensors file's bytes: the header bounded, the ``vocal_xai`` JSON parsed
    by :func:`xai_core.schema.parse_metadata`; ``missing`` is the message when there is none."""
    from xai_core.schema import parse_metadata

    header = _header(data, name)
    raw = header.get("__metadata__")
    raw = raw.get("vocal_xai") if isinstance(raw, dict) else None
    if raw is None:
        raise CheckpointError(f"{name}: {missing}")
    return header, parse_metadata(raw, name=name)


def _tensors(data: bytes, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file's bytes; any failure of the reader is a :class:`CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{name}: not a readable safetensors file ({exc})") from exc


def parse_bundle_bytes(data: bytes, *, name: str = "<bytes>"):
    """Like :func:`read_bundle_file` for in-memory data (uploads).

    The metadata is parsed and checked against :data:`xai_core.schema.BUNDLE_SCHEMA` (and a model's
    architecture against its kind's schema and size limits) before a single tensor is read.
    """
    from xai_core.schema import validate

    _, meta = _metadata(data, name)
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise CheckpointError(f"{name}: bundle format version {version} is newer than this program's "
                              f"{FORMAT_VERSION}")
    validate(meta, "bundle", name=name)
    if meta["kind"] in KINDS:
        _config(meta["kind"], meta["arch"], name)
    return meta, _tensors(data, name)


def _few(items: list, n: int = 8) -> list:
    return items if len(items) <= n else [*items[:n], f"... {len(items) - n} more"]


def check_state(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], name: str) -> None:
    """Refuse ``state`` unless it has exactly the keys and shapes of ``expected`` (a model's state dict, which
    may live on the ``meta`` device), floating weights where the model has them, finite and of sane magnitude
    (:func:`xai_core.schema.check_tensor`)."""
    from xai_core.schema import check_tensor

    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches [{'; '.join(_few(shapes))}]")
        raise CheckpointError(f"{name}: weights do not fit the architecture: " + ", ".join(parts))
    for k in sorted(state):
        if expected[k].is_floating_point():
            check_tensor(name, k, state[k])
        elif state[k].dtype != expected[k].dtype:
            raise CheckpointError(f"{name}: tensor {k!r} has dtype {state[k].dtype}, expected {expected[k].dtype}")


def build_checked(factory, state: dict[str, torch.Tensor], name: str) -> nn.Module:
    """Build ``factory()`` and load ``state`` into it, checking everything first.

    The module is first built on the ``meta`` device (no memory) to count its parameters against
    ``LIMITS["parameters"]`` and to compare names, shapes and dtypes with ``state`` (:func:`check_state`);
    only a state that fits is then allocated for real. Returns the module in eval mode on the CPU.
    """
    from xai_core.schema import LIMITS

    try:
        with torch.device("meta"):
            ghost = factory()
    except (XaiError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: invalid architecture: {exc}") from exc
    expected = ghost.state_dict()
    n = sum(t.numel() for t in expected.values())
    if n > LIMITS["parameters"]:
        raise CheckpointError(f"{name}: the architecture has {n:,} parameters, over the limit of "
                              f"{int(LIMITS['parameters']):,}")
    check_state(expected, state, name)
    model = factory()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.eval()


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Load ``state`` strictly into a built ``model`` after :func:`check_state` (prefer :func:`build_checked`,
    which checks before allocating)."""
    expected = model.state_dict()
    check_state(expected, state, name)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def bundle_from_parts(meta: dict, tensors: dict[str, torch.Tensor], *, name: str,
                      path: Path | None = None, device: str | torch.device = "cpu") -> Bundle:
    """A :class:`Bundle` from parsed metadata and tensors; everything is checked before the model is built."""
    from xai_core.schema import validate

    validate(meta, "bundle", name=name)
    kind = meta["kind"]
    if kind not in KINDS:
        raise CheckpointError(f"{name}: is a {kind!r} bundle, not a classifier or generator: load it where "
                              f"{kind}s are loaded")
    cfg = _config(kind, meta["arch"], name)
    try:
        mel = MelConfig.from_dict(meta["mel"])
    except XaiError as exc:
        raise CheckpointError(f"{name}: invalid MelConfig in bundle: {exc}") from exc
    if cfg.n_mels != mel.n_mels:
        raise CheckpointError(f"{name}: the network has {cfg.n_mels} mel bands, its MelConfig makes {mel.n_mels}")
    if kind == "classifier" and cfg.n_frames != mel.excerpt_frames:
        raise CheckpointError(f"{name}: the network takes {cfg.n_frames}-frame excerpts, its MelConfig cuts "
                              f"{mel.excerpt_frames}")
    normaliser = _normaliser(tensors, mel, name)
    extra = sorted(k for k in tensors if not k.startswith(("model.", "normaliser.")))
    if extra:
        raise CheckpointError(f"{name}: unexpected tensors {_few(extra)} (a bundle holds model.* and normaliser.*)")
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model = build_checked(lambda: SVDNet(cfg) if kind == "classifier" else SpecGenerator(cfg), state, name)
    model.to(device).eval()
    return Bundle(kind=kind, model=model, mel=mel, normaliser=normaliser, preset=meta.get("preset"),
                  provenance=meta.get("provenance") or {}, metrics=meta.get("metrics") or {},
                  path=path, identity=model_identity(model))


def _normaliser(tensors: dict[str, torch.Tensor], mel: MelConfig, name: str) -> Normaliser | None:
    """The bundle's normaliser statistics, checked (floating, finite, ``std`` within ``LIMITS``)."""
    from xai_core.schema import LIMITS, check_tensor

    keys = {"normaliser.mean", "normaliser.std"}
    present = keys & set(tensors)
    if not present:
        return None
    if present != keys:
        raise CheckpointError(f"{name}: normaliser needs both {sorted(keys)}, the file has only {sorted(present)}")
    mean, std = tensors["normaliser.mean"], tensors["normaliser.std"]
    check_tensor(name, "normaliser.mean", mean, max_abs=LIMITS["abs_mean"])
    check_tensor(name, "normaliser.std", std, max_abs=LIMITS["std_max"])
    if tuple(mean.shape) != (mel.n_mels,) or tuple(std.shape) != (mel.n_mels,):
        raise CheckpointError(f"{name}: normaliser has shapes {tuple(mean.shape)} / {tuple(std.shape)}, the "
                              f"MelConfig {mel.n_mels} bands")
    low = float(std.float().min())
    if low < LIMITS["std_min"]:
        raise CheckpointError(f"{name}: normaliser std of {low:.3g} in some band; it must be at least "
                              f"{LIMITS['std_min']:g}")
    try:
        return Normaliser.from_tensors(tensors)
    except (KeyError, XaiError) as exc:
        raise CheckpointError(f"{name}: invalid normaliser: {exc}") from exc


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
    path = Path(path)
    if kind not in KINDS:
        raise CheckpointError(f"unknown kind {kind!r}; expected one of {KINDS}")
    obj = load_torch_file(path, what="PyTorch state dict")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in obj.items()):
        raise CheckpointError(f"{path}: does not hold a state dict of named tensors")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    try:
        cfg = svdnet_preset(preset) if kind == "classifier" else generator_preset(preset)
    except XaiError as exc:
        raise CheckpointError(str(exc)) from exc
    model = build_checked(lambda: SVDNet(cfg) if kind == "classifier" else SpecGenerator(cfg), state, str(path))
    if normaliser is not None and normaliser.n_mels != mel.n_mels:
        raise CheckpointError(f"{path}: normaliser has {normaliser.n_mels} bands, MelConfig {mel.n_mels}")
    model.to(device).eval()
    return Bundle(kind=kind, model=model, mel=mel, normaliser=normaliser, preset=preset,
                  provenance={"imported_from": str(path)}, path=path, identity=model_identity(model))


def load_torch_file(path: str | Path, *, what: str = "PyTorch file") -> Any:
    """``torch.load(path, weights_only=True)`` of an untrusted file, bounded.

    Only tensors and plain containers can come out (no code runs, pickle payloads are refused). The file
    is refused before loading if it is over ``LIMITS["bundle_bytes"]``, or if it is a zip archive (the
    format of ``torch.save``) whose members are compressed or would expand beyond that limit (a zip
    bomb). Any failure of the loader becomes a :class:`CheckpointError`.
    """
    import zipfile

    from xai_core.schema import LIMITS

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    limit = int(LIMITS["bundle_bytes"])
    size = path.stat().st_size
    if size > limit:
        raise CheckpointError(f"{path}: {size:,} bytes is over the {limit:,}-byte limit of a {what}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: corrupt zip archive ({exc})") from exc
        total = sum(i.file_size for i in infos)
        if total > limit or any(i.compress_type != zipfile.ZIP_STORED for i in infos):
            raise CheckpointError(f"{path}: its zip members are compressed or expand to {total:,} bytes; a "
                                  f"{what} written by torch.save is stored uncompressed and under {limit:,} bytes")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an untrusted parser: every failure is the file's
        msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a loadable weights-only {what} ({msg}); nothing in it was "
                              "executed") from exc


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
