"""Grad-CAM at every spatial layer in one forward/backward pass, and the cumulative depth maps.

Grad-CAM (Selvaraju et al. 2017) of layer ``l`` for unit ``u``: ``relu(sum_c a_c A_c)`` with
``a_c = mean_{t,f} d u / d A_c``, upsampled (bilinear) to the input's ``T x M`` grid. Captum's
``LayerGradCam`` computes one layer per forward/backward pass; here every layer's activation is
captured in one forward pass and all gradients come from one ``autograd.grad`` call, so the cost of
all six SVDNet layers is about one pass (``bench/bench_depthmaps.py`` measures the ratio). The test
suite checks agreement with Captum layer by layer.

Where this differs from the public code of Guna et al. and why:

* the explained unit is the one asked for (the vocal logit by default), never "class 0";
* maps stay scalar arrays throughout (the public code saves them through a jet colour map as JPEG
  and reads the grey value back, which is not monotone in the map);
* gradients are not "guided" (the public code multiplies by ``grads > 0`` and ``A > 0``): plain
  Grad-CAM, which is what the paper describes and what the sanity check needs;
* each map is divided by its own maximum (zero stays zero) rather than min-max scaled, so an all-zero
  map (the unit does not depend on that layer's evidence) stays all zero;
* the depth order is explicit: layers are listed shallow to deep, and the cumulative maps run from
  the deepest layer to the shallowest (see :func:`cumulative_maps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xai_core.errors import ParameterError
from xai_core.explain.depthmaps.config import MAX_K, UnitSpec
from xai_core.models.hooks import capture_activations

PAPER_K = 8  # the paper's number of condition maps on deeper networks


_SHAPES: dict[tuple, dict[str, tuple[int, ...]]] = {}  # (model class, frozen architecture config) -> layer shapes


def layer_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """``model.layer_shapes()``, remembered per architecture: it runs a forward pass, and every Grad-CAM call and
    training step asks for it (a model without a hashable ``config`` is measured each time)."""
    key = (type(model), getattr(model, "config", None))
    try:
        hash(key)
    except TypeError:
        key = (None, None)
    if key[1] is None:
        return model.layer_shapes()
    if key not in _SHAPES:
        _SHAPES[key] = model.layer_shapes()
    return _SHAPES[key]


def spatial_layers(model: nn.Module) -> list[str]:
    """The model's addressable layers with a time x frequency output, shallow to deep."""
    shapes = layer_shapes(model)
    return [n for n in model.layer_names if len(shapes[n]) == 3]


def default_k(n_layers: int) -> int:
    """K = min(8, spatial layers): the paper's 8 where the network is deep enough."""
    return max(1, min(PAPER_K, n_layers))


def unit_output(out: torch.Tensor, unit: UnitSpec) -> torch.Tensor:
    """The explained unit's value per excerpt ``(B,)`` from its layer's output ``out``.

    ``out``: ``(B,)`` (the logit layer), ``(B, N)`` (fully connected) or ``(B, C, T', M')``
    (a channel: its mean over time and frequency).
    """
    if out.ndim == 1:
        n = 1
        if unit.index != 0:
            raise ParameterError(f"layer {unit.layer!r} has 1 unit; unit {unit.index} does not exist")
        val = out
    else:
        n = out.shape[1]
        if unit.index >= n:
            raise ParameterError(f"layer {unit.layer!r} has {n} units (0 to {n - 1}); unit {unit.index} does not exist")
        val = out[:, unit.index]
        if val.ndim > 1:
            val = val.flatten(1).mean(1)
    return val * unit.sign


def check_unit(model: nn.Module, unit: UnitSpec) -> int:
    """Raise unless ``unit`` exists in ``model``; return the number of units of its layer."""
    shape = layer_shapes(model)[unit.layer]
    n = shape[0] if shape else 1
    if unit.index >= n:
        raise ParameterError(f"layer {unit.layer!r} has {n} units (0 to {n - 1}); unit {unit.index} does not exist")
    return n


def explainable_layers(model: nn.Module, unit: UnitSpec) -> list[str]:
    """Spatial layers whose Grad-CAM for ``unit`` is defined: those at or before the unit's layer."""
    order = list(model.layer_names)
    upto = order.index(unit.layer)
    return [n for n in spatial_layers(model) if order.index(n) <= upto]


@dataclass
class LayerMaps:
    """Grad-CAM of one unit at several layers (CPU or device tensors).

    ``maps[:, l]`` is layer ``layers[l]`` (shallow to deep), ReLU'd, upsampled to the input grid and
    divided by its maximum (all-zero maps stay zero); ``peak`` holds that maximum before the division
    (the map's scale, comparable across excerpts of one layer).
    """

    layers: list[str]
    maps: torch.Tensor  # (B, L, T, M) in [0, 1]
    peak: torch.Tensor  # (B, L)
    value: torch.Tensor  # (B,) the explained unit's value (sign applied)
    logit: torch.Tensor  # (B,) the vocal logit


def layer_gradcam(model: nn.Module, xn: torch.Tensor, *, unit: UnitSpec = UnitSpec(),
                  layers: Sequence[str] | None = None, create_graph: bool = False) -> LayerMaps:
    """Grad-CAM of ``unit`` at ``layers`` (default: every spatial layer up to the unit's) in one pass.

    Parameters
    ----------
    model : the classifier, frozen by the caller (see :func:`xai_core.models.hooks.frozen`)
    xn : torch.Tensor, shape ``(B, T, M)``, normalised log-mel
    unit : the explained unit
    layers : spatial layer names, any order (returned shallow to deep)
    create_graph : keep the graph of the maps (for tests that differentiate through them)

    Returns
    -------
    LayerMaps
    """
    if xn.ndim != 3:
        raise ParameterError(f"excerpts must be (B, T, M), got {tuple(xn.shape)}")
    allowed = explainable_layers(model, unit)
    if layers is None:
        layers = allowed
    bad = [n for n in layers if n not in allowed]
    if bad:
        raise ParameterError(f"no Grad-CAM of {unit.label} at {bad}: choose spatial layers at or before "
                             f"{unit.layer!r}: {allowed}")
    layers = [n for n in allowed if n in set(layers)]
    if not layers:
        raise ParameterError("no layer to explain")
    x = xn.detach().clone().requires_grad_(True)  # (B, T, M): makes every activation part of the graph
    names = list(dict.fromkeys([*layers, unit.layer, "logit"]))
    with torch.enable_grad(), capture_activations(model, names) as acts:
        model(x)
        value = unit_output(acts[unit.layer], unit)  # (B,)
        grads = torch.autograd.grad(value.sum(), [acts[n] for n in layers], create_graph=create_graph)
        T, M = xn.shape[1], xn.shape[2]
        out = []
        for n, g in zip(layers, grads, strict=True):
            a = acts[n]  # (B, C, t, m)
            w = g.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
            cam = F.relu((w * a).sum(1, keepdim=True))  # (B, 1, t, m)
            out.append(F.interpolate(cam, size=(T, M), mode="bilinear", align_corners=False)[:, 0])  # (B, T, M)
        maps = torch.stack(out, 1)  # (B, L, T, M)
        if not create_graph:
            maps = maps.detach()
        peak = maps.flatten(2).amax(2)  # (B, L)
        maps = maps / peak.clamp_min(1e-12)[..., None, None]
        logit = acts["logit"].detach()
    return LayerMaps(layers=list(layers), maps=maps, peak=peak.detach(), value=value.detach(), logit=logit)


def depth_indices(n_layers: int, k: int) -> list[int]:
    """K positions evenly spaced over ``n_layers`` cumulative maps, first (deepest alone) and last (all) kept."""
    if not 1 <= k <= n_layers:
        raise ParameterError(f"K={k} condition maps need 1 to {n_layers} layers (the classifier has {n_layers} "
                             "spatial layers)")
    if k == 1:
        return [n_layers - 1]
    return [round(i * (n_layers - 1) / (k - 1)) for i in range(k)]


def cumulative_maps(maps: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, list[int]]:
    """The paper's representation of the network: cumulative averages from the deepest layer up.

    ``maps``: ``(B, L, T, M)``, layers shallow to deep. Cumulative map ``j`` (0-based) is the mean of the
    ``j + 1`` deepest layers' maps: map 0 is the deepest layer alone, map ``L - 1`` the mean of all.
    ``k`` of them are kept, evenly spaced (:func:`depth_indices`; default ``min(8, L)``), each divided
    by its maximum.

    Returns
    -------
    cum : torch.Tensor, shape ``(B, K, T, M)`` in [0, 1], deepest first
    kept : the kept cumulative indices (``j``: the map averages the ``j + 1`` deepest layers)
    """
    if maps.ndim != 4:
        raise ParameterError(f"maps must be (B, L, T, M), got {tuple(maps.shape)}")
    n = maps.shape[1]
    k = default_k(n) if k in (None, 0) else k
    if k > MAX_K:
        raise ParameterError(f"K={k} is more than the {MAX_K} condition maps allowed")
    idx = depth_indices(n, k)
    deep_first = maps.flip(1)  # (B, L, T, M) deepest first
    counts = torch.arange(1, n + 1, device=maps.device, dtype=maps.dtype)[None, :, None, None]
    cum = deep_first.cumsum(1) / counts  # (B, L, T, M)
    cum = cum[:, idx]
    cum = cum / cum.flatten(2).amax(2).clamp_min(1e-12)[..., None, None]
    return cum, idx


def cumulative_names(layers: Sequence[str], kept: Sequence[int]) -> list[str]:
    """Labels of the kept cumulative maps: ``"pool2"``, ``"pool2..conv4"``, ..., ``"pool2..conv1"``."""
    deep = list(reversed(layers))
    return [deep[0] if j == 0 else f"{deep[0]}..{deep[j]}" for j in kept]


def target_map(layer_maps: torch.Tensor, target: str) -> torch.Tensor:
    """The explainer's training target ``(B, 1, T, M)`` from all layers' maps ``(B, L, T, M)``."""
    if target == "deepest":
        t = layer_maps[:, -1:]
    elif target == "mean":
        t = layer_maps.mean(1, keepdim=True)
        t = t / t.flatten(2).amax(2).clamp_min(1e-12)[..., None, None]
    else:
        raise ParameterError(f"unknown target {target!r}")
    return t
