"""The paper's evaluation of ClaDec, done on a real test split.

Per decoded layer and decoder variant: a *fresh* classifier of the explained one's architecture
is trained on reconstructions of training-split excerpts and tested on reconstructions of
*test-split* excerpts (the public notebook tests on the training activations again, which is why
its train and test accuracies are identical). Beside it, the reconstruction MSE on the test
excerpts and how the explained classifier itself judges the reconstructions.

References in every table: the explained classifier on the original test excerpts, and a fresh
classifier trained with the *same budget* on the original training excerpts (what the retrained
classifiers could reach at best with this budget). The random-feature decoder's row is the
floor: a number ClaDec does not beat there says nothing about the classifier.

The claim to check (Schneider & Vlachos): ClaDec keeps more classification-relevant information
(higher retrained accuracy) although RefAE reconstructs better (lower MSE).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from xai_core.checkpoints import Bundle
from xai_core.device import out_of_memory_as_error, resolve_device
from xai_core.errors import ParameterError
from xai_core.explain.cladec.bundle import DecoderBundle
from xai_core.explain.cladec.config import EvalConfig
from xai_core.explain.cladec.explain import reconstruct
from xai_core.explain.cladec.train import check_classifier
from xai_core.models.hooks import frozen
from xai_core.models.svdnet import SVDNet, SVDNetConfig
from xai_core.train.data import TensorExcerpts, Track
from xai_core.train.evaluate import binary_metrics, roc_auc
from xai_core.train.loop import Progress, run_loop

COLUMNS = ("layer", "variant", "mse", "retrained_error", "retrained_accuracy", "retrained_auc",
           "original_on_recon_error", "original_on_recon_auc", "agreement")


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Excerpt-level error / accuracy at p = 0.5 and ROC-AUC of logits ``(N,)`` against labels ``(N,)``."""
    lg = logits.detach().double().cpu().numpy()
    y = labels.detach().cpu().numpy() > 0.5
    m = binary_metrics(lg > 0, y)
    return {"error": m["error"], "accuracy": m["accuracy"], "auc": roc_auc(lg, y)}


@torch.no_grad()
def _logits(model: torch.nn.Module, xn: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([model(xn[s:s + batch]).float().cpu() for s in range(0, xn.shape[0], batch)])


def retrain_and_test(arch: SVDNetConfig, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                     test_y: torch.Tensor, config: EvalConfig, *, device: torch.device,
                     progress: Progress | None = None) -> dict[str, float]:
    """Train a fresh SVDNet on ``train_x`` and score it on ``test_x`` (both normalised ``(N, T, M)``).

    The initialisation and the batch order come from ``config.seed`` alone, so every variant's
    classifier starts from the same weights and sees the same excerpt indices (paired comparison).
    """
    model = SVDNet(arch)
    model.reset_parameters(generator=torch.Generator().manual_seed(config.seed + 1))
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format  # 1.3x on the CPU
    model.to(device).to(memory_format=fmt).train()
    data = TensorExcerpts(train_x, train_y, device=device)
    gen = torch.Generator(device=device).manual_seed(config.seed + 2)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    torch.manual_seed(config.seed + 3)  # dropout

    def step(_i: int) -> dict[str, float]:
        x, y = data.sample(config.batch_size, generator=gen)  # (B, T, M), (B,)
        loss = F.binary_cross_entropy_with_logits(model(x[:, None].contiguous(memory_format=fmt)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    result = run_loop(step, total=config.steps, progress=progress)
    model.eval()
    out = scores(_logits(model, test_x.to(device)), test_y)
    out["train_loss"] = result.history[-1]["loss"] if result.history else float("nan")
    return out


@dataclass
class CladecEvaluation:
    """The per-layer table and its references; ``summary()`` gives the plain numbers."""

    config: EvalConfig
    classifier: str  # identity of the explained classifier
    original: dict[str, float]  # explained classifier on the original test excerpts
    retrained_input: dict[str, float]  # fresh classifier, same budget, on the original excerpts
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per (layer, variant), COLUMNS
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)  # where the excerpts came from

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cladec-eval", "config": self.config.to_dict(), "classifier": self.classifier,
                "original": self.original, "retrained_input": self.retrained_input, "rows": self.rows,
                "seconds": self.seconds, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict) -> CladecEvaluation:
        if not isinstance(d, dict) or d.get("kind") != "cladec-eval":
            raise ParameterError("not a ClaDec evaluation (expected kind 'cladec-eval')")
        return cls(EvalConfig(**d["config"]), d["classifier"], d["original"], d["retrained_input"],
                   list(d["rows"]), float(d.get("seconds", 0.0)), dict(d.get("data", {})))

    def summary(self) -> dict[str, float]:
        out = {"original_error": self.original["error"], "retrained_input_error": self.retrained_input["error"]}
        for r in self.rows:
            out[f"{r['layer']}/{r['variant']}/retrained_error"] = r["retrained_error"]
            out[f"{r['layer']}/{r['variant']}/mse"] = r["mse"]
        return out

    def claim(self) -> dict[str, dict[str, bool]]:
        """Per layer with both decoders: does ClaDec's retrained classifier beat RefAE's (lower error), and
        does RefAE reconstruct better (lower MSE)? And does ClaDec beat the random-feature floor?"""
        by = {(r["layer"], r["variant"]): r for r in self.rows}
        out = {}
        for layer in dict.fromkeys(r["layer"] for r in self.rows):
            c, a, z = by.get((layer, "cladec")), by.get((layer, "refae")), by.get((layer, "random"))
            if c is None or a is None:
                continue
            out[layer] = {"cladec_more_informative": c["retrained_error"] < a["retrained_error"],
                          "refae_reconstructs_better": a["mse"] < c["mse"]}
            if z is not None:
                out[layer]["cladec_beats_random"] = c["retrained_error"] < z["retrained_error"]
        return out

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerow({"layer": "input", "variant": "original classifier", "mse": 0.0,
                    "original_on_recon_error": self.original["error"],
                    "original_on_recon_auc": self.original["auc"], "agreement": 1.0})
        w.writerow({"layer": "input", "variant": "retrained on the original excerpts", "mse": 0.0,
                    "retrained_error": self.retrained_input["error"],
                    "retrained_accuracy": self.retrained_input["accuracy"],
                    "retrained_auc": self.retrained_input["auc"]})
        for r in self.rows:
            w.writerow({k: r.get(k) for k in COLUMNS})
        return buf.getvalue()

    def format(self) -> str:
        """A plain-text table."""
        head = (f"{'layer':<7} {'decoder':<8} {'MSE':>7} {'retrained err':>13} {'acc':>6} {'AUC':>6} "
                f"{'C on recon err':>14} {'AUC':>6} {'agree':>6}")
        lines = [head, "-" * len(head)]
        o, ri = self.original, self.retrained_input
        lines.append(f"{'input':<7} {'original':<8} {0:>7.3f} {ri['error']:>13.2%} {ri['accuracy']:>6.3f} "
                     f"{ri['auc']:>6.3f} {o['error']:>14.2%} {o['auc']:>6.3f} {1:>6.3f}")
        for r in self.rows:
            lines.append(f"{r['layer']:<7} {r['variant']:<8} {r['mse']:>7.3f} {r['retrained_error']:>13.2%} "
                         f"{r['retrained_accuracy']:>6.3f} {r['retrained_auc']:>6.3f} "
                         f"{r['original_on_recon_error']:>14.2%} {r['original_on_recon_auc']:>6.3f} "
                         f"{r['agreement']:>6.3f}")
        lines.append(f"(excerpt-level error at p = 0.5 on {self.data.get('n_test', '?')} test excerpts; retrained: a "
                     f"fresh classifier, {self.config.steps} steps x {self.config.batch_size}, trained on "
                     f"{self.data.get('n_train', '?')} reconstructed training excerpts; the 'input' row retrains on "
                     "the original excerpts with the same budget; MSE in normalised units)")
        return "\n".join(lines)


def draw_excerpts(tracks: Sequence[Track], n: int, *, seed: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` excerpts ``(n, T, M)`` and centre labels ``(n,)`` drawn uniformly over the frames of ``tracks``."""
    from xai_core.train.gan import random_excerpts

    if not tracks:
        raise ParameterError("no tracks to draw evaluation excerpts from")
    total = sum(t.frames for t in tracks)
    x, y, _ = random_excerpts(tracks, min(n, total), seed=seed, frames=frames)
    return x, y


def evaluate_decoders(classifier: Bundle, decoders: Sequence[DecoderBundle], *,
                      train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                      config: EvalConfig = EvalConfig(), device: str | torch.device | None = "auto",
                      progress: Progress | None = None, data_info: dict | None = None) -> CladecEvaluation:
    """Retrain-and-test per decoder (see the module docstring).

    Parameters
    ----------
    train, test : un-normalised excerpts ``(N, T, M)`` with labels ``(N,)`` from the training and
        the *test* split respectively (e.g. :func:`draw_excerpts` of each split)
    progress : ``progress(done, total, info)`` over all retraining steps; False cancels

    Returns
    -------
    CladecEvaluation
    """
    check_classifier(classifier)
    if not decoders:
        raise ParameterError("no decoders to evaluate")
    for d in decoders:
        d.check_classifier(classifier)
    for name, (x, y) in (("train", train), ("test", test)):
        if x.ndim != 3 or y.shape != (x.shape[0],) or x.shape[0] < 2:
            raise ParameterError(f"{name} excerpts must be (N >= 2, T, M) with labels (N,), got "
                                 f"{tuple(x.shape)} and {tuple(y.shape)}")
    dev = resolve_device(device)
    t0 = time.perf_counter()
    arch = classifier.model.config
    norm = classifier.normaliser
    xtr, ytr = norm.apply(train[0].to(dev, torch.float32)), train[1].float()  # (N, T, M), (N,)
    xte, yte = norm.apply(test[0].to(dev, torch.float32)), test[1].float()
    total = (1 + len(decoders)) * config.steps
    done = [0]

    def sub(label: str) -> Progress:
        base = done[0]

        def prog(d, _t, info):
            return None if progress is None else progress(base + d, total, {**info, "training": label})
        return prog

    with frozen(classifier.model, dev) as clf, out_of_memory_as_error(
            "the retraining evaluation", "lower n_train / n_test or the batch size, or evaluate on the CPU"):
        orig_logits = _logits(clf, xte)  # (N,)
        original = scores(orig_logits, yte)
        retrained_input = retrain_and_test(arch, xtr, ytr, xte, yte, config, device=dev, progress=sub("input"))
        done[0] += config.steps
        rows = []
        for d in decoders:
            rtr = reconstruct(clf, d, xtr)  # (N, T, M) normalised
            rte = reconstruct(clf, d, xte)
            mse = float(((rte - xte) ** 2).mean())
            on_recon = _logits(clf, rte)
            judged = scores(on_recon, yte)
            agreement = float(((on_recon > 0) == (orig_logits > 0)).float().mean())
            r = retrain_and_test(arch, rtr, ytr, rte, yte, config, device=dev, progress=sub(d.name))
            done[0] += config.steps
            rows.append({"layer": d.layer, "variant": d.variant, "mse": round(mse, 5),
                         "retrained_error": r["error"], "retrained_accuracy": r["accuracy"],
                         "retrained_auc": r["auc"], "original_on_recon_error": judged["error"],
                         "original_on_recon_auc": judged["auc"], "agreement": agreement,
                         "retrained_train_loss": r["train_loss"]})
    info = {"n_train": int(xtr.shape[0]), "n_test": int(xte.shape[0]),
            "train_vocal": float(ytr.mean()), "test_vocal": float(yte.mean()), **(data_info or {})}
    return CladecEvaluation(config=config, classifier=classifier.identity, original=original,
                            retrained_input=retrained_input, rows=rows,
                            seconds=round(time.perf_counter() - t0, 1), data=info)

