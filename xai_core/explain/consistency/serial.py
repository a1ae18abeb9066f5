"""A :class:`~xai_core.explain.consistency.ConsistencyResult` as one safetensors file (the run store's
``consistency`` runs): per-layer scores, top-k indices and responses, the excerpts and their adversarial
versions (float16, error < 0.004 in log units), the concept space and the configs as JSON metadata.
Loading validates the metadata and every tensor's shape before anything is built from it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from xai_core.errors import ParameterError
from xai_core.explain.consistency.attack import AttackResult
from xai_core.explain.consistency.concepts import ConceptSpace
from xai_core.explain.consistency.config import AttackConfig, ConsistencyConfig
from xai_core.explain.consistency.consistency import ConsistencyResult
from xai_core.fileio import atomic_write_bytes

KIND = "consistency"
_PER_LAYER = ("real", "topk_real", "responses_real", "adv", "topk_adv", "responses_adv", "agreement")
_ATTACK = ("logmel", "adversarial", "labels", "targets", "logit", "logit_adv")


def save_result(path: str | Path, res: ConsistencyResult) -> Path:
    from safetensors.torch import save

    t: dict[str, torch.Tensor] = {"codes": res.space.codes, "similarity": res.space.similarity.double()}
    for name in _PER_LAYER:
        d = getattr(res, name)
        for layer, v in (d or {}).items():
            t[f"{name}.{layer}"] = v
    meta = {"kind": KIND, "config": res.config.to_dict(), "space": {"name": res.space.name, "names": list(res.space.names)},
            "chance": res.chance, "classifier": res.classifier, "layers": list(res.layers)}
    if res.attack is not None:
        a = res.attack
        for name in _ATTACK:
            v = getattr(a, name)
            t[f"attack.{name}"] = v.half() if name in ("logmel", "adversarial") else v.float()
        meta["attack"] = {"config": a.config.to_dict(), "threshold": a.threshold, "labels_known": a.labels_known}
    blob = save({k: v.contiguous() for k, v in t.items()}, metadata={"vocal_xai": json.dumps(meta)})
    return atomic_write_bytes(Path(path), blob)


def load_result(path: str | Path) -> ConsistencyResult:
    from safetensors import SafetensorError

    from xai_core.checkpoints import read_tagged_file

    path = Path(path)
    try:
        meta, t = read_tagged_file(path, what="consistency result")
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            raise ValueError("not a consistency result")
        config = ConsistencyConfig.from_dict(meta["config"])
        layers = [str(x) for x in meta["layers"]]
        space = ConceptSpace(str(meta["space"]["name"]), tuple(str(x) for x in meta["space"]["names"]),
                             t["codes"].long(), t["similarity"].double())
        per = {name: ({layer: t[f"{name}.{layer}"] for layer in layers} if f"{name}.{layers[0]}" in t else None)
               for name in _PER_LAYER}
        n = len(space)
        for layer in layers:
            units = per["real"][layer].shape
            if per["topk_real"][layer].shape != (units[0], config.k) or per["responses_real"][layer].shape != (n, units[0]):
                raise ValueError(f"tensors of layer {layer} do not fit {units[0]} units, k {config.k}, {n} excerpts")
        attack = None
        if "attack" in meta:
            a = {name: t[f"attack.{name}"].float() for name in _ATTACK}
            if a["logmel"].shape != a["adversarial"].shape or a["logmel"].shape[0] != n:
                raise ValueError("the stored excerpts do not fit the concept space")
            attack = AttackResult(a["logmel"], a["adversarial"], a["labels"], a["targets"], a["logit"], a["logit_adv"],
                                  float(meta["attack"]["threshold"]), AttackConfig.from_dict(meta["attack"]["config"]),
                                  bool(meta["attack"]["labels_known"]))
        return ConsistencyResult(config, space, float(meta["chance"]), per["real"], per["topk_real"],
                                 per["responses_real"], per["adv"], per["topk_adv"], per["responses_adv"], attack,
                                 dict(meta.get("classifier") or {}), per["agreement"])
    except (OSError, SafetensorError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ParameterError(f"{path}: not a readable consistency result ({exc})") from exc
