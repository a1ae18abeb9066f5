"""A :class:`~xai_core.explain.counterfactual.engine.CounterfactualResult` as one safetensors file: the run
store's ``counterfactual`` runs. Log-mels of the excerpt, its reconstruction and the kept examples are stored as
float32; the trajectory's log-mels as float16 (error below 0.004 log units, inaudible). Loading validates the
metadata and every tensor's shape before anything is built from it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from xai_core.errors import ParameterError
from xai_core.explain.counterfactual.config import CounterfactualConfig
from xai_core.explain.counterfactual.engine import CounterfactualResult
from xai_core.fileio import atomic_write_bytes

KIND = "counterfactual"
MAX_TRACE = 100_001  # trajectory points (the config's iteration bound + 1)


def _tensors(res: CounterfactualResult) -> dict[str, torch.Tensor]:
    t = {"original": res.original.float(), "reconstruction": res.reconstruction.float(), "z_inv": res.z_inv.float(),
         "restart_mse": res.restart_mse.float(), "invert_trace": res.invert_trace.float(),
         "z_best": res.z_best.float(), "logmel_best": res.logmel_best.float(), "logit_best": res.logit_best.float(),
         "score_best": res.score_best.float(), "best_step": res.best_step.long(), "trace_steps": res.trace_steps.long(),
         "trace_z": res.trace_z.float(), "trace_logit": res.trace_logit.float(),
         "trace_logmel": res.trace_logmel.half()}
    if res.spread_nn is not None:
        t["spread_nn"] = res.spread_nn.float()
    return {k: v.detach().cpu().contiguous() for k, v in t.items()}


def result_bytes(res: CounterfactualResult) -> bytes:
    """The file's bytes (:func:`save_result` writes them atomically)."""
    from safetensors.torch import save

    meta = {"kind": KIND, "config": res.config.to_dict(), "label": res.label, "directions": list(res.directions),
            "rec_mse": res.rec_mse, "logit_original": res.logit_original,
            "logit_reconstruction": res.logit_reconstruction, "spread": res.spread,
            "nearest_mse": res.nearest_mse if res.nearest_mse is None or math.isfinite(res.nearest_mse) else None,
            "envelope_mse": res.envelope_mse, "seconds": res.seconds, "device": res.device}
    return save(_tensors(res), metadata={"vocal_xai": json.dumps(meta)})


def save_result(path: str | Path, res: CounterfactualResult) -> Path:
    """Write ``res`` to ``path`` atomically."""
    return atomic_write_bytes(Path(path), result_bytes(res))


def _number(meta: dict, key: str, *, optional: bool = False) -> float | None:
    v = meta.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{key} is not a number")
    return float(v)


def load_result(path: str | Path) -> CounterfactualResult:
    """The result of a file written by :func:`save_result`; ParameterError naming the defect."""
    from safetensors import SafetensorError

    from xai_core.checkpoints import read_tagged_file

    path = Path(path)
    try:
        meta, t = read_tagged_file(path, what="counterfactual result")
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            raise ValueError("not a counterfactual result")
        config = CounterfactualConfig.from_dict(meta["config"])
        dirs = tuple(meta["directions"])
        if dirs != config.directions:
            raise ValueError(f"directions {list(dirs)} differ from the config's {list(config.directions)}")
        label = meta.get("label", "")
        if not isinstance(label, str):
            raise ValueError("label is not a string")
        spread = meta.get("spread")
        if spread is not None and (not isinstance(spread, dict) or not isinstance(spread.get("threshold"), (int, float))):
            raise ValueError("spread malformed")
        seconds = meta.get("seconds") or {}
        if not isinstance(seconds, dict) or not all(isinstance(v, (int, float)) for v in seconds.values()):
            raise ValueError("seconds malformed")
        tt, m = t["original"].shape
        d_rows, zd = t["z_best"].shape
        k = t["trace_steps"].shape[0]
        r = t["restart_mse"].shape[0]
        if d_rows != len(dirs) or not 1 <= k <= MAX_TRACE:
            raise ValueError(f"{d_rows} rows for {len(dirs)} directions, {k} trajectory points")
        want = {"reconstruction": (tt, m), "z_inv": (zd,), "invert_trace": (r, t["invert_trace"].shape[1]),
                "logmel_best": (d_rows, tt, m), "logit_best": (d_rows,), "score_best": (d_rows,),
                "best_step": (d_rows,), "trace_z": (d_rows, k, zd), "trace_logit": (d_rows, k),
                "trace_logmel": (d_rows, k, tt, m)}
        for key, shape in want.items():
            if tuple(t[key].shape) != shape:
                raise ValueError(f"tensor {key} has shape {tuple(t[key].shape)}, expected {shape}")
        if "spread_nn" in t and t["spread_nn"].ndim != 1:
            raise ValueError("spread_nn is not a vector")
        return CounterfactualResult(
            config=config, label=label, original=t["original"].float(), reconstruction=t["reconstruction"].float(),
            z_inv=t["z_inv"].float(), rec_mse=_number(meta, "rec_mse"), restart_mse=t["restart_mse"].float(),
            invert_trace=t["invert_trace"].float(), logit_original=_number(meta, "logit_original"),
            logit_reconstruction=_number(meta, "logit_reconstruction"), directions=dirs, z_best=t["z_best"].float(),
            logmel_best=t["logmel_best"].float(), logit_best=t["logit_best"].float(),
            score_best=t["score_best"].float(), best_step=t["best_step"].long(), trace_steps=t["trace_steps"].long(),
            trace_z=t["trace_z"].float(), trace_logit=t["trace_logit"].float(),
            trace_logmel=t["trace_logmel"].float(), spread=spread,
            spread_nn=t["spread_nn"].float() if "spread_nn" in t else None,
            nearest_mse=_number(meta, "nearest_mse", optional=True),
            envelope_mse=_number(meta, "envelope_mse", optional=True), seconds={k: float(v) for k, v in seconds.items()},
            device=str(meta.get("device", "")))
    except (OSError, SafetensorError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{path}: not a readable counterfactual result ({exc})") from exc
