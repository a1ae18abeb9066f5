"""Forward-hook helpers that can never leak (Captum's lesson, Lucent's fault avoided)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from xai_core.errors import ParameterError


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the sub-module called ``name`` (dotted path) or raise naming the valid ones."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        valid = getattr(model, "layer_names", None) or [n for n in modules if n]
        raise ParameterError(f"unknown layer {name!r}; valid layers: {list(valid)}")
    return modules[name]


@contextmanager
def capture_activations(model: nn.Module, layer_names: Sequence[str], *,
                        detach: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of named layers during forward passes inside the ``with`` block.

    Yields a dict ``layer name -> output tensor`` filled (and overwritten) by each forward
    pass. Hooks are removed when the block exits, also when it raises.

    Examples
    --------
    >>> with capture_activations(net, ["fc2"]) as acts:
    ...     net(x)
    >>> acts["fc2"].shape  # (B, 64)
    """
    layers = [(n, resolve_layer(model, n)) for n in layer_names]
    store: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name, module in layers:
            def hook(_m, _inp, out, _name=name):
                store[_name] = out.detach() if detach else out
            handles.append(module.register_forward_hook(hook))
        yield store
    finally:
        for h in handles:
            h.remove()


def count_hooks(model: nn.Module) -> int:
    """Total number of forward hooks registered on ``model`` and its children (for tests)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class _StopForward(Exception):
    """Raised inside a forward hook to end a forward pass once the wanted layer has run."""


def forward_until(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Output of ``layer`` for input ``x``, without running the layers after it.

    The forward pass is cut short by a hook on ``layer`` (removed in ``finally``, also when the
    forward raises), so decoding a shallow layer does not pay for the deep ones. Differentiable:
    gradients flow back to ``x`` and to the parameters up to ``layer``.

    Returns
    -------
    torch.Tensor, shape ``(B, *layer_shape)``
    """
    module = resolve_layer(model, layer)
    box: list[torch.Tensor] = []

    def hook(_m, _inp, out):
        box.append(out)
        raise _StopForward

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not box:
        raise ParameterError(f"layer {layer!r} did not run in the forward pass")
    return box[0]


@contextmanager
def frozen(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """The model on ``device``, in eval mode, parameters not requiring grad; restored on exit.

    A model on another device is copied (the caller's cached bundle is never moved). Every
    explanation method runs the explained classifier inside this block, so dropout never runs
    and no optimiser step can reach its weights.
    """
    if any(p.device != device for p in model.parameters()):
        model = copy.deepcopy(model).to(device)
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)
