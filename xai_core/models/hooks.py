"""Forward-hook helpers that can never leak (Captum's lesson, Lucent's fault avoided)."""

from __future__ import annotations

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
