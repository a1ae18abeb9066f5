"""Decoding inputs with trained decoders: what each layer keeps of an excerpt."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from xai_core.checkpoints import Bundle
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.cladec.bundle import DecoderBundle
from xai_core.explain.cladec.train import check_classifier
from xai_core.models.hooks import forward_until, frozen
from xai_core.train.loop import Progress

NAMES = {"cladec": "ClaDec", "refae": "RefAE", "random": "random features"}


@dataclass
class DecodeResult:
    """Reconstructions of ``B`` excerpts by each decoder (CPU tensors).

    ``recon[(layer, variant)]`` and ``logmel`` are un-normalised log-mel ``(B, T, M)``;
    ``prob*`` the classifier's p(vocal) ``(B,)``; ``mse`` the reconstruction error per excerpt
    ``(B,)`` in the classifier's normalised units (per-band z-scores, mean over time and bands).
    """

    logmel: torch.Tensor  # (B, T, M) the input
    prob_input: torch.Tensor  # (B,)
    recon: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)  # (B, T, M) each
    prob: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)  # (B,) each
    mse: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)  # (B,) each

    @property
    def keys(self) -> list[tuple[str, str]]:
        return list(self.recon)

    def summary(self) -> dict[str, float]:
        """Plain numbers: mean p(vocal) of the input and of each reconstruction, mean MSE."""
        out = {"p_vocal/input": float(self.prob_input.mean())}
        for (layer, variant) in self.recon:
            out[f"p_vocal/{layer}/{variant}"] = float(self.prob[(layer, variant)].mean())
            out[f"mse/{layer}/{variant}"] = float(self.mse[(layer, variant)].mean())
        return out


@torch.no_grad()
def decode(classifier: Bundle, decoders: Sequence[DecoderBundle], logmel: torch.Tensor, *,
           device: str | torch.device | None = "auto", batch: int = 64,
           progress: Progress | None = None) -> DecodeResult:
    """Reconstruct excerpts from the layers the ``decoders`` decode.

    Parameters
    ----------
    classifier : the explained classifier (frozen and in eval mode during the call)
    decoders : decoder bundles trained for this classifier (refused otherwise)
    logmel : torch.Tensor, shape ``(B, T, M)``, un-normalised natural-log mel excerpts
    progress : ``progress(done, total, info)`` after each decoder; False cancels

    Returns
    -------
    DecodeResult
    """
    check_classifier(classifier)
    cfg = classifier.model.config
    if logmel.ndim == 2:
        logmel = logmel[None]
    if logmel.ndim != 3 or tuple(logmel.shape[1:]) != (cfg.n_frames, cfg.n_mels):
        raise ParameterError(f"excerpts must be (B, {cfg.n_frames}, {cfg.n_mels}) log-mel, got {tuple(logmel.shape)}")
    if not torch.isfinite(logmel).all():
        raise ParameterError("the excerpts contain non-finite values")
    for d in decoders:
        d.check_classifier(classifier)
    dev = resolve_device(device)
    norm = classifier.normaliser
    x = logmel.to(dev, torch.float32)

    with frozen(classifier.model, dev) as clf, out_of_memory_as_error(
            f"decoding {x.shape[0]} excerpts", "lower the batch or decode on the CPU (device 'cpu')"):
        prob_in = _probs(clf, norm.apply(x), batch)  # (B,)
        out = DecodeResult(logmel=logmel.detach().float().cpu(), prob_input=prob_in)
        for k, d in enumerate(decoders):
            xr = reconstruct(clf, d, norm.apply(x), batch=batch)  # (B, T, M) normalised
            key = (d.layer, d.variant)
            out.mse[key] = ((xr - norm.apply(x)) ** 2).mean(dim=(1, 2)).cpu()  # (B,)
            out.prob[key] = _probs(clf, xr, batch)  # (B,)
            out.recon[key] = norm.invert(xr).cpu()  # (B, T, M) un-normalised
            if progress is not None and progress(k + 1, len(decoders), {"decoder": d.name}) is False:
                raise CancelledError(f"decoding cancelled after {k + 1} of {len(decoders)} decoders")
    return out


def _on(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` if it already lives on ``device``, else a copy there (a bundle cached for every
    session is never moved by one of them)."""
    if all(p.device == device for p in module.parameters()):
        return module
    return copy.deepcopy(module).to(device)


@torch.no_grad()
def reconstruct(clf: nn.Module, decoder: DecoderBundle, xn: torch.Tensor, *, batch: int = 64) -> torch.Tensor:
    """``D(E_L(xn))`` for normalised excerpts ``xn (N, T, M)`` on ``clf``'s device, in batches.

    ``clf`` is the (frozen) explained classifier, the encoder of ClaDec bundles; RefAE and random
    bundles use their own encoder. Returns normalised log-mel ``(N, T, M)`` on that device.
    """
    dev = next(clf.parameters()).device
    dec = _on(decoder.decoder, dev)
    enc = _on(decoder.encoder, dev) if decoder.encoder is not None else clf
    parts = []
    for s in range(0, xn.shape[0], batch):
        h = forward_until(enc, decoder.layer, xn[s:s + batch].to(dev))  # (b, *layer_shape)
        parts.append(dec(h))  # (b, T, M)
    return torch.cat(parts) if parts else xn.new_zeros((0, *xn.shape[1:]))


def _probs(clf: nn.Module, xn: torch.Tensor, batch: int) -> torch.Tensor:
    """p(vocal) ``(N,)`` on the CPU of normalised excerpts ``(N, T, M)``."""
    return torch.cat([torch.sigmoid(clf(xn[s:s + batch])).cpu() for s in range(0, xn.shape[0], batch)])


def rows_figure(res: DecodeResult, layers: Sequence[str], variants: Sequence[str], *, cfg, index: int = 0):
    """The page's and the CLI's figure of excerpt ``index``: one row per layer (shallow to deep) with the
    input, each variant's reconstruction (p(vocal), MSE) and, with both, ClaDec - RefAE."""
    from xai_core.viz import decoded_rows_figure

    x = res.logmel[index].numpy()
    diff = "cladec" in variants and "refae" in variants
    rows, titles = [], []
    for layer in layers:
        r = [x] + [res.recon[(layer, v)][index].numpy() if (layer, v) in res.recon else None for v in variants]
        t = [f"{layer} · input · p {float(res.prob_input[index]):.2f}"]
        for v in variants:
            k = (layer, v)
            t.append(f"{NAMES[v]} · p {float(res.prob[k][index]):.2f} · MSE {float(res.mse[k][index]):.2f}"
                     if k in res.recon else f"{NAMES[v]}: not trained")
        if diff:
            ok = (layer, "cladec") in res.recon and (layer, "refae") in res.recon
            r.append(res.recon[(layer, "cladec")][index].numpy() - res.recon[(layer, "refae")][index].numpy()
                     if ok else None)
            t.append("ClaDec − RefAE")
        rows.append(r)
        titles.append(t)
    ncols = len(rows[0]) if rows else 0
    return decoded_rows_figure(rows, titles, cfg=cfg, diff_columns=[ncols - 1] if diff else [])
