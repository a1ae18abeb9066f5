"""The objective of GAN-based activation maximisation and helpers shared by both engines.

``response(z) = a(C(norm(G(z))))``: the ``unit``-th element of the flattened output of ``layer`` of
the classifier ``C``, for latent codes ``z (R, z_dim)``. The ascended score of a row is
``sign * response - coef * ||z||^2`` (see :mod:`xai_core.actmax.config` for the conventions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from xai_core.checkpoints import Bundle, check_compatible
from xai_core.device import resolve_device  # noqa: F401  (re-exported)
from xai_core.errors import CancelledError, ParameterError
from xai_core.models.hooks import capture_activations, frozen  # noqa: F401  (frozen re-exported)

Progress = Callable[[int, int, dict], "bool | None"]


def call_progress(progress: Progress | None, done: int, total: int, info: dict) -> None:
    """Call ``progress``; a ``False`` return (or a raised CancelledError) cancels."""
    if progress is None:
        return
    if progress(done, total, info) is False:
        raise CancelledError(f"cancelled by the caller after {done} of {total} steps")


def check_models(classifier: Bundle, generator: Bundle, layer: str, unit: int) -> int:
    """Validate the pair and the unit; return the layer's per-example size."""
    if classifier.kind != "classifier" or generator.kind != "generator":
        raise ParameterError(f"expected a classifier and a generator bundle, got {classifier.kind!r} "
                             f"and {generator.kind!r}")
    check_compatible(classifier, generator)
    shapes = classifier.model.layer_shapes()
    if layer not in shapes:
        raise ParameterError(f"unknown layer {layer!r}; valid layers: {list(shapes)}")
    size = math.prod(shapes[layer]) if shapes[layer] else 1
    if not 0 <= unit < size:
        raise ParameterError(f"unit {unit} is out of range for layer {layer!r} with {size} units "
                             f"(shape {shapes[layer]})")
    return size


def initial_codes(seed: int, n: int, z_dim: int) -> torch.Tensor:
    """z0 of examples ``0..n-1``: example i drawn from N(0, I) with seed ``seed + i`` on the CPU.

    Drawn on the CPU so that the codes are identical on every device. Returns ``(n, z_dim)``.
    """
    out = torch.empty(n, z_dim)
    for i in range(n):
        g = torch.Generator().manual_seed(seed + i)
        out[i] = torch.randn(z_dim, generator=g)
    return out


class Responder:
    """``z (R, z_dim) -> response (R,)`` with the models frozen on one device; a context manager.

    The forward hook on ``layer`` lives only inside the ``with`` block (removed also on error).
    """

    def __init__(self, classifier: Bundle, generator: Bundle, *, layer: str, unit: int,
                 device: torch.device) -> None:
        self.classifier, self.generator = classifier, generator
        self.layer, self.unit, self.device = layer, unit, device
        self.dtype = next(generator.model.parameters()).dtype  # float32 normally; float64 in exactness tests
        self.mean = classifier.normaliser.mean.to(device, self.dtype)
        self.std = classifier.normaliser.std.to(device, self.dtype)

    def __enter__(self) -> Responder:
        self._stack = []
        try:
            cm_c = frozen(self.classifier.model, self.device)
            self.clf = cm_c.__enter__()
            self._stack.append(cm_c)
            cm_g = frozen(self.generator.model, self.device)
            self.gen = cm_g.__enter__()
            self._stack.append(cm_g)
            cm_h = capture_activations(self.clf, [self.layer])
            self.acts = cm_h.__enter__()
            self._stack.append(cm_h)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self._stack:
            self._stack.pop().__exit__(None, None, None)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        x = self.gen(z)  # (R, T, M) un-normalised log-mel
        self.clf((x - self.mean) / self.std)  # (R,) logit; the hook keeps the layer output
        return self.acts[self.layer].reshape(z.shape[0], -1)[:, self.unit]  # (R,)


@torch.no_grad()
def describe_codes(classifier: Bundle, generator: Bundle, z: torch.Tensor, *, layer: str, unit: int,
                   feature_layers: Sequence[str] = (), device: torch.device,
                   batch: int = 256) -> dict[str, torch.Tensor]:
    """Log-mel, logit, probability, response and feature-layer activations of codes ``z (S, d)``.

    Returns CPU tensors: ``logmel (S, T, M)``, ``logit (S,)``, ``prob (S,)``, ``response (S,)`` and
    ``feature:<name>`` ``(S, D)`` for each requested layer (``"response"`` gives ``(S, 1)``).
    """
    hidden = [f for f in feature_layers if f != "response"]
    names = list(dict.fromkeys([layer, *hidden]))
    parts: dict[str, list[torch.Tensor]] = {}
    with frozen(classifier.model, device) as clf, frozen(generator.model, device) as gen, \
            capture_activations(clf, names) as acts:
        for s in range(0, z.shape[0], batch):
            zb = z[s:s + batch].to(device, next(gen.parameters()).dtype)  # (b, d)
            x = gen(zb)  # (b, T, M)
            logit = clf(classifier.normaliser.apply(x))  # (b,)
            resp = acts[layer].reshape(zb.shape[0], -1)[:, unit]  # (b,)
            out = {"logmel": x, "logit": logit, "prob": torch.sigmoid(logit), "response": resp}
            for f in feature_layers:
                out["feature:" + f] = resp[:, None] if f == "response" else acts[f].reshape(zb.shape[0], -1)
            for k, v in out.items():
                parts.setdefault(k, []).append(v.float().cpu())
    return {k: torch.cat(v) for k, v in parts.items()}
