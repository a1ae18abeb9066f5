"""A :class:`~xai_core.explain.depthmaps.explain.DepthMapResult` (and the checks computed with it) as one
safetensors file: the run store's ``depthmaps`` runs. Maps are stored as float16 (they live in [0, 1]: the
error is below 0.0005); the input, logits and relevances as float32. Loading validates the metadata and every
tensor's shape before anything is built from it."""

from __future__ import annotations

import json
from pathlib import Path

from xai_core.errors import ParameterError
from xai_core.explain.depthmaps.config import UnitSpec
from xai_core.explain.depthmaps.explain import DepthMapResult
from xai_core.fileio import atomic_write_bytes

KIND = "depthmaps"
MAX_EXCERPTS = 4096


def save_result(path: str | Path, res: DepthMapResult) -> Path:
    """Write ``res`` with its ``checks`` (JSON-ready: the faithfulness table and the randomisation check)."""
    from safetensors.torch import save

    t = {"logmel": res.logmel.float(), "layer_maps": res.layer_maps.half(), "peak": res.peak.float(),
         "cumulative": res.cumulative.half(), "logit": res.logit.float(), "value": res.value.float()}
    names = list(res.gan)
    for i, n in enumerate(names):
        t[f"gan.{i}"] = res.gan[n].half()
        if n in res.relevance:
            t[f"relevance.{i}"] = res.relevance[n].float()
    meta = {"kind": KIND, "unit": res.unit.to_dict(), "layers": list(res.layers), "kept": list(res.kept),
            "explainers": names, "conditions": res.conditions, "checks": res.checks or {}}
    blob = save({k: v.contiguous() for k, v in t.items()}, metadata={"vocal_xai": json.dumps(meta)})
    return atomic_write_bytes(Path(path), blob)


def load_result(path: str | Path) -> DepthMapResult:
    """The result (with its checks) of a file written by :func:`save_result`; ParameterError naming the defect."""
    from safetensors import SafetensorError

    from xai_core.checkpoints import read_tagged_file

    path = Path(path)
    try:
        meta, t = read_tagged_file(path, what="depth-map result")
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            raise ValueError("not a depth-map result")
        unit = UnitSpec.from_dict(meta["unit"])
        layers, kept, names = list(meta["layers"]), list(meta["kept"]), list(meta["explainers"])
        if not all(isinstance(v, str) for v in layers + names) or not all(isinstance(v, int) for v in kept):
            raise ValueError("layers, kept or explainers malformed")
        b, tt, m = t["logmel"].shape
        if not 1 <= b <= MAX_EXCERPTS:
            raise ValueError(f"{b} excerpts")
        want = {"layer_maps": (b, len(layers), tt, m), "peak": (b, len(layers)), "cumulative": (b, len(kept), tt, m),
                "logit": (b,), "value": (b,)}
        for k, shape in want.items():
            if tuple(t[k].shape) != shape:
                raise ValueError(f"tensor {k} has shape {tuple(t[k].shape)}, expected {shape}")
        gan, rel = {}, {}
        for i, n in enumerate(names):
            gan[n] = t[f"gan.{i}"].float()
            if tuple(gan[n].shape) != (b, tt, m):
                raise ValueError(f"map of explainer {n!r} has shape {tuple(gan[n].shape)}")
            if f"relevance.{i}" in t:
                rel[n] = t[f"relevance.{i}"].float()
        conditions = meta.get("conditions") or {}
        if not isinstance(conditions, dict) or any(not isinstance(v, list) or not all(isinstance(x, str) for x in v)
                                                   for v in conditions.values()):
            raise ValueError("conditions malformed")
        for n, r in rel.items():
            if tuple(r.shape) != (b, len(conditions.get(n, []))):
                raise ValueError(f"relevance of explainer {n!r} has shape {tuple(r.shape)}")
        checks = meta.get("checks") or {}
        if not isinstance(checks, dict):
            raise ValueError("checks is not a mapping")
        res = DepthMapResult(unit=unit, logmel=t["logmel"].float(), layers=layers, layer_maps=t["layer_maps"].float(),
                             peak=t["peak"].float(), kept=kept, cumulative=t["cumulative"].float(),
                             logit=t["logit"].float(), value=t["value"].float(), gan=gan, relevance=rel,
                             checks=checks, conditions={k: list(v) for k, v in conditions.items()})
        return res
    except (OSError, SafetensorError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{path}: not a readable depth-map result ({exc})") from exc
