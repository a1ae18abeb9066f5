"""The one validation layer for untrusted metadata and tensors (bundles, reference sets, checkpoints).

Files reach the program from other people (the app loads checkpoints that people send each other), so
nothing read from a file is trusted: the JSON metadata is parsed with a size and depth bound, checked
against a schema (types, ranges, required keys; every size bounded by :data:`LIMITS`) **before any
tensor is allocated or any module is built from it**, and the tensors are checked against the model
built from that metadata (names, shapes, floating dtypes only, finite values of a sane magnitude).

The limits are chosen from the presets: the ``paper`` classifier (conv 64/32/128/64, dense 256/64,
115 x 80 input, 1.4 M parameters) and generator (z 128, 128 base channels, 0.8 M parameters) sit far
inside them; a bundle outside them is refused with the bound it broke. Schemas are JSON Schema
(draft 2020-12, checked by the ``jsonschema`` package: a well-kept validator whose messages already
name the bad value and the bound, e.g. ``100000 is greater than the maximum of 512``).
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

from xai_core.errors import CheckpointError

# ---- documented limits ------------------------------------------------------------------------------
LIMITS: dict[str, float] = {
    "metadata_bytes": 4 * 1024**2,  # JSON metadata of one file (the demo's largest: 24 KB)
    "json_depth": 32,  # nesting of that JSON (the demo's: 5)
    "bundle_bytes": 512 * 1024**2,  # one bundle file (the paper classifier in float32: 6 MB)
    "parameters": 64 * 1024**2,  # weights of one model (paper classifier: 1.4 M)
    "activations": 2**25,  # values of the largest activation of one excerpt (paper conv1: 0.56 M)
    "conv_channels": 512,  # SVDNet conv widths (paper: <= 128)
    "dense_units": 4096,  # SVDNet dense widths (paper: <= 256)
    "n_frames": 1024,  # excerpt length in frames (paper: 115)
    "n_mels": 256,  # mel bands (paper: 80)
    "z_dim": 4096,  # generator latent size (paper: 128)
    "gen_channels": 2048,  # generator widths (paper: <= 128)
    "sample_rate": 192_000,  # Hz
    "n_fft": 65_536,  # samples
    "median_frames": 10_000,  # frames of the detection median filter (paper: 56)
    "abs_weight": 1e4,  # largest |weight| accepted (trained weights: below 10)
    "std_min": 1e-6,  # smallest normaliser std (fits clamp at 1e-4)
    "std_max": 1e6,
    "abs_mean": 1e6,
    "reference_excerpts": 100_000,  # excerpts of one reference set (the demo's: 384)
    "string": 4096,  # characters of one short text field (names, presets, sources)
}

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

_INT = {"type": "integer"}  # JSON Schema's integer excludes booleans
_NUM = {"type": "number"}


def _int(lo: int, hi: float) -> dict:
    return {**_INT, "minimum": lo, "maximum": int(hi)}


def _num(lo: float, hi: float, *, exclusive_hi: bool = False, exclusive_lo: bool = False) -> dict:
    d = {**_NUM, ("exclusiveMinimum" if exclusive_lo else "minimum"): lo}
    d["exclusiveMaximum" if exclusive_hi else "maximum"] = hi
    return d


def _ints(n: int, hi: float) -> dict:
    return {"type": "array", "items": _int(1, hi), "minItems": n, "maxItems": n}


MEL_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "sample_rate": _int(1000, LIMITS["sample_rate"]),
        "n_fft": _int(16, LIMITS["n_fft"]),
        "hop_length": _int(1, LIMITS["n_fft"]),
        "n_mels": _int(1, LIMITS["n_mels"]),
        "fmin": _num(0, LIMITS["sample_rate"] / 2),
        "fmax": _num(0, LIMITS["sample_rate"] / 2, exclusive_lo=True),
        "log_floor": _num(0, 1, exclusive_lo=True, exclusive_hi=True),
        "excerpt_frames": _int(1, LIMITS["n_frames"]),
    },
}

CLASSIFIER_ARCH_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "conv_channels": _ints(4, LIMITS["conv_channels"]),
        "dense_units": _ints(2, LIMITS["dense_units"]),
        "dropout": _num(0, 1, exclusive_hi=True),
        "leak": _num(0, 1, exclusive_hi=True),
        "n_frames": _int(1, LIMITS["n_frames"]),
        "n_mels": _int(1, LIMITS["n_mels"]),
    },
}

GENERATOR_ARCH_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "z_dim": _int(1, LIMITS["z_dim"]),
        "base_channels": _int(1, LIMITS["gen_channels"]),
        "up_channels": _ints(4, LIMITS["gen_channels"]),
        "leak": _num(0, 1, exclusive_hi=True),
        "n_mels": _int(1, LIMITS["n_mels"]),
        "n_frames": _int(1, LIMITS["n_frames"]),
        "log_floor": _num(0, 1, exclusive_lo=True, exclusive_hi=True),
    },
}

_SHORT = {"type": "string", "maxLength": LIMITS["string"]}

BUNDLE_SCHEMA = {
    "type": "object",
    "required": ["format", "format_version", "kind", "arch", "mel"],
    "properties": {
        "format": {"const": "vocal-xai-bundle"},
        "format_version": _int(1, 1),
        "kind": {"enum": ["classifier", "generator", "decoder", "explainer"]},
        "arch": {"type": "object"},  # checked against the kind's schema
        "preset": {"anyOf": [{"type": "null"}, _SHORT]},
        "mel": MEL_SCHEMA,
        "provenance": {"type": "object"},
        "storage_dtype": {"enum": list(FLOAT_DTYPES)},
        "metrics": {
            "type": "object",
            "properties": {"eval": {"type": "object", "properties": {
                # a tuned threshold may sit 1e-6 below the lowest probability (train/evaluate.tune_threshold)
                "threshold": _num(-1e-6, 1), "median_frames": _int(1, LIMITS["median_frames"])}}},
        },
    },
}

REFERENCE_SCHEMA = {
    "type": "object",
    "required": ["sources", "mel"],
    "properties": {
        "kind": {"const": "reference"},
        "sources": {"type": "array", "items": _SHORT, "maxItems": LIMITS["reference_excerpts"]},
        "mel": MEL_SCHEMA,
        "info": {"type": "object"},
        "tags": {"type": "object", "additionalProperties": {
            "type": "array", "items": _SHORT, "maxItems": LIMITS["reference_excerpts"]}},
    },
}


# ---- parsing and checking -----------------------------------------------------------------------------
def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (a hostile document may be deep)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        deepest = max(deepest, d)
        if d > LIMITS["json_depth"]:
            return d
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return deepest


def parse_metadata(raw: Any, *, name: str) -> dict:
    """Parse a file's JSON metadata string into a mapping, within :data:`LIMITS`.

    Documents over ``metadata_bytes`` or deeper than ``json_depth`` and anything but a JSON object are
    refused with :class:`CheckpointError`. ``NaN`` literals are parsed (a metric may honestly be undefined);
    :func:`validate` refuses them wherever a setting is read.
    """
    if not isinstance(raw, str):
        raise CheckpointError(f"{name}: metadata must be a JSON string, got {type(raw).__name__}")
    if len(raw) > LIMITS["metadata_bytes"]:
        raise CheckpointError(f"{name}: metadata of {len(raw):,} characters is over the limit of "
                              f"{int(LIMITS['metadata_bytes']):,}")
    try:
        meta = json.loads(raw)
    except RecursionError:
        raise CheckpointError(f"{name}: metadata nested deeper than {LIMITS['json_depth']} levels") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{name}: corrupt bundle metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name}: metadata must be a JSON object, got {type(meta).__name__}")
    if _depth(meta) > LIMITS["json_depth"]:
        raise CheckpointError(f"{name}: metadata nested deeper than {LIMITS['json_depth']} levels")
    return meta


@cache
def _validator(key: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_SCHEMAS[key])


_SCHEMAS = {"bundle": BUNDLE_SCHEMA, "classifier": CLASSIFIER_ARCH_SCHEMA, "generator": GENERATOR_ARCH_SCHEMA,
            "mel": MEL_SCHEMA, "reference": REFERENCE_SCHEMA}


def validate(instance: Any, schema: str, *, name: str, where: str = "") -> None:
    """Raise :class:`CheckpointError` naming the first bad field if ``instance`` breaks ``schema``.

    ``schema`` is one of ``bundle``, ``classifier`` (an SVDNet architecture), ``generator``, ``mel``,
    ``reference``; ``where`` prefixes the field path (``"arch"`` gives ``arch.conv_channels[0]``).
    """
    from jsonschema.exceptions import best_match

    err = best_match(_validator(schema).iter_errors(instance))
    if err is None:
        # JSON Schema's bounds do not catch NaN (every comparison with it is false): settings must be finite
        parts = {"bundle": ("arch", "mel"), "reference": ("mel",)}.get(schema)
        for key, value in ([(k, instance.get(k)) for k in parts] if parts else [("", instance)]):
            bad = _non_finite(value)
            if bad is not None:
                where_ = ".".join(p for p in (where, key, bad) if p)
                raise CheckpointError(f"{name}: metadata field {where_} is not a finite number")
        thr = (instance.get("metrics") or {}).get("eval", {}).get("threshold") if schema == "bundle" else None
        if thr is not None and not finite_number(thr):
            raise CheckpointError(f"{name}: metadata field metrics.eval.threshold must be a number in [-1e-6, 1], "
                                  f"got {thr!r}")
        return
    path = where
    for p in err.absolute_path:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    msg = err.message if len(err.message) < 300 else err.message[:300] + "…"
    raise CheckpointError(f"{name}: metadata field {path or '(top level)'}: {msg}")


def _non_finite(obj: Any, path: str = "") -> str | None:
    """Path of the first NaN or infinite number in parsed JSON, else None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "(value)"
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((f"[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for k, v in items:
        sub = _non_finite(v, f"{path}{k}" if str(k).startswith("[") else f"{path}.{k}" if path else str(k))
        if sub is not None:
            return sub
    return None


def check_classifier_size(cfg, *, name: str) -> None:
    """Refuse an SVDNet architecture whose weights or activations exceed :data:`LIMITS` (closed form, nothing
    is allocated)."""
    c1, c2, c3, c4 = cfg.conv_channels
    d1, d2 = cfg.dense_units
    params = 9 * (c1 + c1 * c2 + c2 * c3 + c3 * c4) + c1 + c2 + c3 + c4 + cfg.flat_features * d1 + d1 * d2 + d2 + d1 \
        + d2 + 1
    acts = max(c1, c2) * max(cfg.n_frames - 2, 1) * max(cfg.n_mels - 2, 1)
    _check_size(params, acts, name=name)


def check_generator_size(cfg, *, name: str) -> None:
    """The same for a :class:`~xai_core.models.generator.GeneratorConfig`."""
    c0, ups = cfg.base_channels, cfg.up_channels
    params = cfg.z_dim * 40 * c0 + 40 * c0
    cin = c0
    for c in ups:
        params += 25 * cin * c + c
        cin = c
    params += 25 * cin + 1
    acts = max(c * 40 * 4 ** (k + 1) for k, c in enumerate(ups))
    _check_size(params, acts, name=name)


def _check_size(params: int, acts: int, *, name: str) -> None:
    if params > LIMITS["parameters"]:
        raise CheckpointError(f"{name}: the architecture has {params:,} parameters, over the limit of "
                              f"{int(LIMITS['parameters']):,}")
    if acts > LIMITS["activations"]:
        raise CheckpointError(f"{name}: one excerpt would need {acts:,} activation values, over the limit of "
                              f"{int(LIMITS['activations']):,}")


def check_tensor(name: str, key: str, t, *, max_abs: float | None = None) -> None:
    """A tensor read from a file: floating dtype, finite, ``|t| <= max_abs`` (default ``abs_weight``)."""
    import torch

    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise CheckpointError(f"{name}: tensor {key!r} has dtype {str(t.dtype).replace('torch.', '')}; only "
                              f"floating-point weights ({', '.join(FLOAT_DTYPES)}) are accepted")
    if t.numel() == 0:
        return
    bound = LIMITS["abs_weight"] if max_abs is None else max_abs
    x = t.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise CheckpointError(f"{name}: tensor {key!r} contains non-finite values (NaN or inf)")
    peak = float(x.abs().max())
    if peak > bound:
        raise CheckpointError(f"{name}: tensor {key!r} holds a value of magnitude {peak:.3g}, over the limit "
                              f"of {bound:g}")


def finite_number(value: Any) -> bool:
    """True for an int or float (not bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
