"""Depth maps core on tiny models: one-pass Grad-CAM against a closed form and against Captum, the explained
unit, hooks, cumulative maps, the conditional-GAN explainer (networks, training, per-depth relevance, bundles),
:func:`explain`, listening masks and figures."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.checkpoints import Bundle, model_identity
from xai_core.errors import CancelledError, CheckpointError, ParameterError
from xai_core.explain.depthmaps import (
    ExplainerBundle,
    ExplainerConfig,
    UnitSpec,
    condition_relevance,
    cumulative_maps,
    evaluate_explainer,
    explain,
    layer_gradcam,
    load_explainer,
    load_explainers,
    save_explainer,
    spatial_layers,
    train_explainer,
)
from xai_core.explain.depthmaps import bundle as bundle_mod
from xai_core.explain.depthmaps import gradcam as gradcam_mod
from xai_core.explain.depthmaps.bundle import load_explainer_bytes
from xai_core.explain.depthmaps.gradcam import (
    cumulative_names,
    default_k,
    depth_indices,
    explainable_layers,
    target_map,
)
from xai_core.explain.depthmaps.listen import relevance_mask, split_by_relevance
from xai_core.explain.depthmaps.nets import GeneratorConfig, MapDiscriminator, MapGenerator
from xai_core.explain.depthmaps.viz import (
    depth_maps_figure,
    faithfulness_figure,
    maps_grid_figure,
    relevance_figure,
    sanity_figure,
)
from xai_core.models.hooks import count_hooks, forward_until, frozen
from xai_core.models.svdnet import SVDNet

CPU = torch.device("cpu")
SPATIAL = ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a loaded two-core machine two threads make the small convolutions here tens of
    times slower (the CLI tests run with ``--threads 1`` for the same reason)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- helpers


def _classifier(seed: int = 0) -> Bundle:
    """An untrained tiny SVDNet with a normaliser fitted to noise around -6 (std 2)."""
    net = SVDNet("tiny")
    net.reset_parameters(generator=torch.Generator().manual_seed(seed))
    net.eval()
    norm = Normaliser.fit(-6 + 2 * torch.randn(64, 80, generator=torch.Generator().manual_seed(seed)))
    return Bundle(kind="classifier", model=net, mel=MelConfig(), normaliser=norm, preset="tiny",
                  identity=model_identity(net))


def _data(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy excerpts (N, 115, 80) around -6; odd rows have the lower 40 bands 1.5 nats louder."""
    g = torch.Generator().manual_seed(seed)
    x = -6.0 + torch.randn(n, 115, 80, generator=g)
    y = (torch.arange(n) % 2).float()
    x[:, :, :40] += 1.5 * y[:, None, None]
    return x, y


class _Head(nn.Module):
    """``logit = sum_c w_c * mean_{t,m} P_c``: a fixed linear head, so every gradient is a constant."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return (p.mean((2, 3)) * self.w).sum(1)  # (B,)


class _Toy(nn.Module):
    """SVDNet's interface on a model whose Grad-CAM is known in closed form.

    ``conv1``: ``A_c = a_c x + b_c`` (a 1x1 convolution, same grid as the input); ``pool1``: 2x2 average pooling
    of ``A``; ``logit``: :class:`_Head` of ``pool1``. Hence ``d logit / d P_c = w_c / (t m)`` on the pooled grid
    and ``d logit / d A_c = w_c / (T M)`` on the input grid.
    """

    layer_names = ("conv1", "pool1", "logit")

    def __init__(self, a, b, w, t: int = 6, m: int = 4) -> None:
        super().__init__()
        c = a.numel()
        self.t, self.m, self.c = t, m, c
        self.conv1 = nn.Conv2d(1, c, 1).double()
        with torch.no_grad():
            self.conv1.weight.copy_(a.view(c, 1, 1, 1))
            self.conv1.bias.copy_(b)
        self.pool1 = nn.AvgPool2d(2)
        self.logit = _Head(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x[:, None]
        return self.logit(self.pool1(self.conv1(x)))

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"conv1": (self.c, self.t, self.m), "pool1": (self.c, self.t // 2, self.m // 2), "logit": ()}


def _toy():
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    b = torch.tensor([0.1, 0.3, -0.2], dtype=torch.float64)
    w = torch.tensor([2.0, 1.0, -3.0], dtype=torch.float64)
    x = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return _Toy(a, b, w), a, b, w, x


def _gen(variant: str = "global", k: int = 3, *, t: int = 16, m: int = 12, seed: int = 0) -> MapGenerator:
    torch.manual_seed(seed)
    return MapGenerator(GeneratorConfig(variant=variant, k=k, width=8, blocks=k, cond_width=8, n_frames=t, n_mels=m))


def _gen_inputs(b: int = 2, k: int = 3, t: int = 16, m: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, m, generator=g), torch.rand(b, k, t, m, generator=g)


# --------------------------------------------------------------------------- Grad-CAM


def test_layer_gradcam_matches_the_closed_form_of_a_toy_model():
    toy, a, b, w, x = _toy()
    T, M = 6, 4
    assert spatial_layers(toy) == ["conv1", "pool1"]
    lm = layer_gradcam(toy, x)
    assert lm.layers == ["conv1", "pool1"] and lm.maps.shape == (2, 2, T, M) and lm.peak.shape == (2, 2)
    acts = a.view(1, 3, 1, 1) * x[:, None] + b.view(1, 3, 1, 1)  # (B, C, T, M)
    pooled = F.avg_pool2d(acts, 2)  # (B, C, T/2, M/2)
    logit = (pooled.mean((2, 3)) * w).sum(1)
    # alpha_c = w_c / (t m) at each layer; Grad-CAM = relu(sum_c alpha_c A_c), upsampled to T x M
    cam_conv1 = F.relu((w.view(1, 3, 1, 1) / (T * M) * acts).sum(1))
    cam_pool1 = F.relu((w.view(1, 3, 1, 1) / (T * M / 4) * pooled).sum(1, keepdim=True))
    cam_pool1 = F.interpolate(cam_pool1, size=(T, M), mode="bilinear", align_corners=False)[:, 0]
    got = lm.maps * lm.peak[..., None, None]
    torch.testing.assert_close(got[:, 0], cam_conv1, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(got[:, 1], cam_pool1, rtol=1e-12, atol=1e-15)
    assert cam_conv1.min() == 0 and (cam_conv1 > 0).any()  # the ReLU matters on this input
    torch.testing.assert_close(lm.peak[:, 0], cam_conv1.flatten(1).amax(1))
    assert torch.allclose(lm.maps.flatten(2).amax(2), torch.ones(2, 2, dtype=lm.maps.dtype))
    torch.testing.assert_close(lm.value, logit)
    torch.testing.assert_close(lm.logit, logit)
    # the negated unit: relu of the negated sum, and the value negated
    neg = layer_gradcam(toy, x, unit=UnitSpec(sign=-1))
    torch.testing.assert_close(neg.maps[:, 0] * neg.peak[:, 0, None, None],
                               F.relu(-(w.view(1, 3, 1, 1) / (T * M) * acts).sum(1)), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(neg.value, -logit)
    # one layer asked for, in any order: shallow to deep
    assert layer_gradcam(toy, x, layers=["pool1", "conv1"]).layers == ["conv1", "pool1"]
    only = layer_gradcam(toy, x, layers=["pool1"])
    assert only.layers == ["pool1"]
    torch.testing.assert_close(only.maps[:, 0], lm.maps[:, 1])


def test_an_all_zero_map_stays_zero():
    """A layer whose weighted activation sum is negative everywhere has an all-zero map (no division by 0)."""
    toy, a, b, w, x = _toy()
    with torch.no_grad():
        toy.conv1.weight.zero_()  # A_c = b_c = -1, alpha_c = 1 / (t m): relu(sum_c alpha_c A_c) = relu(-3 / (t m)) = 0
        toy.logit.w.copy_(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
        toy.conv1.bias.copy_(torch.tensor([-1.0, -1.0, -1.0], dtype=torch.float64))
    lm = layer_gradcam(toy, x)
    assert torch.equal(lm.maps, torch.zeros_like(lm.maps)) and torch.equal(lm.peak, torch.zeros_like(lm.peak))


def _captum_cam(m: nn.Module, xn: torch.Tensor, layer: str, forward) -> torch.Tensor:
    from captum.attr import LayerGradCam

    attr = LayerGradCam(forward, getattr(m, layer)).attribute(xn.clone(), relu_attributions=True)  # (B, 1, t, m)
    return F.interpolate(attr.detach(), size=xn.shape[1:], mode="bilinear", align_corners=False)[:, 0]  # (B, T, M)


@pytest.fixture(scope="module")
def double_clf():
    clf = _classifier(3)
    clf.model.double()
    xn = torch.randn(3, 115, 80, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return clf, xn


@pytest.mark.parametrize("layer", SPATIAL)
def test_layer_gradcam_agrees_with_captum_at_every_spatial_layer(double_clf, layer):
    clf, xn = double_clf
    with frozen(clf.model, CPU) as m:
        ours = layer_gradcam(m, xn)
        theirs = _captum_cam(m, xn, layer, lambda x: m(x))
    i = ours.layers.index(layer)
    got = ours.maps[:, i] * ours.peak[:, i, None, None]
    assert theirs.abs().max() > 0
    torch.testing.assert_close(got, theirs, rtol=1e-7, atol=1e-9 * float(theirs.abs().max()))


@pytest.mark.parametrize("unit", [UnitSpec("fc2", 1), UnitSpec("logit", 0, -1), UnitSpec("conv4", 2),
                                  UnitSpec("fc1", 5, -1)], ids=lambda u: u.label)
def test_layer_gradcam_agrees_with_captum_for_other_units(double_clf, unit):
    clf, xn = double_clf
    with frozen(clf.model, CPU) as m:
        ours = layer_gradcam(m, xn, unit=unit)

        def forward(x):
            out = forward_until(m, unit.layer, x)  # (B,), (B, N) or (B, C, t, m)
            v = out if out.ndim == 1 else out[:, unit.index]
            return unit.sign * (v.flatten(1).mean(1) if v.ndim > 1 else v)

        assert ours.layers == explainable_layers(m, unit)
        for i, layer in enumerate(ours.layers):
            theirs = _captum_cam(m, xn, layer, forward)
            got = ours.maps[:, i] * ours.peak[:, i, None, None]
            torch.testing.assert_close(got, theirs, rtol=1e-7, atol=1e-9 * float(theirs.abs().max()) + 1e-300)
        torch.testing.assert_close(ours.value, forward(xn))


def test_the_requested_unit_is_the_one_explained():
    clf = _classifier(0)
    x, _ = _data(3)
    with frozen(clf.model, CPU) as m:
        xn = clf.normaliser.apply(x)
        pos = layer_gradcam(m, xn)
        neg = layer_gradcam(m, xn, unit=UnitSpec(sign=-1))
        u0 = layer_gradcam(m, xn, unit=UnitSpec("fc2", 0))
        u1 = layer_gradcam(m, xn, unit=UnitSpec("fc2", 1))
        c3 = layer_gradcam(m, xn, unit=UnitSpec("conv3", 1))
        fc2 = forward_until(m, "fc2", xn)
        conv3 = forward_until(m, "conv3", xn)
        logit = m(xn)
    assert pos.layers == SPATIAL and c3.layers == ["conv1", "conv2", "pool1", "conv3"]
    torch.testing.assert_close(pos.value, logit)
    torch.testing.assert_close(pos.logit, logit)
    torch.testing.assert_close(neg.value, -logit)
    torch.testing.assert_close(neg.logit, logit)
    torch.testing.assert_close(u0.value, fc2[:, 0])
    torch.testing.assert_close(u1.value, fc2[:, 1])
    torch.testing.assert_close(c3.value, conv3[:, 1].mean((1, 2)))
    assert not torch.allclose(pos.maps, neg.maps, atol=1e-3)
    assert not torch.allclose(u0.maps, u1.maps, atol=1e-3)
    assert not torch.allclose(u0.maps, pos.maps, atol=1e-3)
    # Grad-CAM is linear in the unit before its ReLU: cam(u) - cam(-u) = the un-ReLU'd map, so both halves are needed
    diff = pos.maps * pos.peak[..., None, None] - neg.maps * neg.peak[..., None, None]
    assert (diff > 0).any() and (diff < 0).any()
    for res in (pos, neg, u0, u1, c3):
        assert res.maps.min() >= 0 and res.maps.max() <= 1 and torch.isfinite(res.maps).all()


@pytest.fixture(scope="module")
def ctx():
    clf = _classifier(0)
    x, y = _data(2)
    return clf, x, y, clf.normaliser.apply(x)


def _gc(clf, xn, **kw):
    with frozen(clf.model, CPU) as m:
        return layer_gradcam(m, xn, **kw)


MAPS6 = torch.rand(1, 6, 2, 3, generator=torch.Generator().manual_seed(0))

BAD = [
    (lambda c: UnitSpec(layer="conv9"), "unknown layer 'conv9'"),
    (lambda c: UnitSpec(sign=2), "sign must be 1 or -1, got 2"),
    (lambda c: UnitSpec(index=-1), "got -1"),
    (lambda c: _gc(c[0], c[3], unit=UnitSpec("fc2", 4)), "unit 4 does not exist"),
    (lambda c: _gc(c[0], c[3], unit=UnitSpec("logit", 1)), "unit 1 does not exist"),
    (lambda c: _gc(c[0], c[3], unit=UnitSpec("conv3", 4)), "unit 4 does not exist"),
    (lambda c: _gc(c[0], c[3], unit=UnitSpec("conv2"), layers=["conv4"]), "['conv4']"),
    (lambda c: _gc(c[0], c[3], layers=["fc1"]), "['fc1']"),
    (lambda c: _gc(c[0], c[3], layers=["conv9"]), "['conv9']"),
    (lambda c: _gc(c[0], c[3], layers=[]), "no layer to explain"),
    (lambda c: _gc(c[0], c[3][0]), "(115, 80)"),
    (lambda c: cumulative_maps(MAPS6, k=7), "K=7"),
    (lambda c: cumulative_maps(MAPS6, k=17), "K=17"),
    (lambda c: cumulative_maps(MAPS6[0]), "(6, 2, 3)"),
    (lambda c: depth_indices(6, 7), "K=7"),
    (lambda c: target_map(MAPS6, "loudest"), "'loudest'"),
    (lambda c: ExplainerConfig(k=17), "got 17"),
    (lambda c: ExplainerConfig(variant="x"), "'x'"),
    (lambda c: ExplainerConfig(target="x"), "'x'"),
    (lambda c: ExplainerConfig(width=2), "got 2"),
    (lambda c: ExplainerConfig(l1_weight=0.0, adv_weight=0.0), "both 0"),
    (lambda c: ExplainerConfig(variant="local", k=4, blocks=2), "got 2"),
    (lambda c: train_explainer(c[0], (c[1], c[2]), ExplainerConfig(k=7), device="cpu"), "K=7"),
    (lambda c: train_explainer(c[0], (c[1], c[2]), ExplainerConfig(k=3), unit=UnitSpec("conv2"), device="cpu"),
     "K=3"),
    (lambda c: train_explainer(c[0], (c[1], c[2]), ExplainerConfig(), unit=UnitSpec("fc2", 9), device="cpu"),
     "unit 9 does not exist"),
    (lambda c: explain(c[0], c[1], unit=UnitSpec("fc2", 9), device="cpu"), "unit 9 does not exist"),
    (lambda c: explain(c[0], c[1], k=7, device="cpu"), "K=7"),
    (lambda c: explain(c[0], c[1][:, :50], device="cpu"), "(2, 50, 80)"),
    (lambda c: explain(c[0], c[1][:0], device="cpu"), "no excerpts"),
    (lambda c: explain(c[0], torch.full_like(c[1], float("nan")), device="cpu"), "non-finite"),
    (lambda c: GeneratorConfig(variant="local", k=3, blocks=2), "blocks=2, k=3"),
    (lambda c: GeneratorConfig(width=10**6), "got 1000000"),
    (lambda c: GeneratorConfig(variant="x"), "'x'"),
    (lambda c: _gen()(*_gen_inputs(k=2)), "(2, 2, 16, 12)"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_units_layers_and_k_raise_naming_the_bad_value(ctx, case):
    fn, match = BAD[case]
    with pytest.raises(ParameterError, match=re.escape(match)):
        fn(ctx)


def test_no_hook_survives_a_failing_call(monkeypatch):
    clf = _classifier(0)
    net = clf.model
    x, _ = _data(2)
    assert count_hooks(net) == 0
    with frozen(net, CPU) as m:
        with pytest.raises(ParameterError, match="SVDNet expects"):  # raised by the forward pass, hooks in place
            layer_gradcam(m, torch.zeros(1, 50, 80))
        assert count_hooks(m) == 0
        with pytest.raises(ParameterError, match="unit 4 does not exist"):  # raised after the forward pass
            layer_gradcam(m, clf.normaliser.apply(x), unit=UnitSpec("fc2", 4))
        assert count_hooks(m) == 0
    net.train()  # explain() must put it back as it found it
    monkeypatch.setattr(gradcam_mod, "unit_output", lambda out, unit: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        explain(clf, x, device="cpu")
    assert count_hooks(net) == 0 and net.training and all(p.requires_grad for p in net.parameters())
    monkeypatch.undo()
    with pytest.raises(CancelledError, match="after 1 of 2 batches"):
        explain(clf, x, device="cpu", batch=1, progress=lambda done, total, info: False)
    assert count_hooks(net) == 0 and net.training and all(p.requires_grad for p in net.parameters())
    assert explain(clf, x, device="cpu").layer_maps.shape == (2, 6, 115, 80)  # still usable
    assert count_hooks(net) == 0


# --------------------------------------------------------------------------- cumulative maps


def test_cumulative_maps_run_from_the_deepest_layer_to_the_mean_of_all():
    L = 6
    maps = torch.rand(2, L, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cum, kept = cumulative_maps(maps)  # default K = min(8, 6)
    assert kept == list(range(L)) and cum.shape == (2, L, 3, 4)

    def norm(m):
        return m / m.flatten(1).amax(1)[:, None, None]

    for j in range(L):
        expected = norm(sum(maps[:, L - 1 - i] for i in range(j + 1)) / (j + 1))
        torch.testing.assert_close(cum[:, j], expected)
    torch.testing.assert_close(cum[:, 0], norm(maps[:, -1]))  # the deepest layer alone
    torch.testing.assert_close(cum[:, -1], norm(maps.mean(1)))  # the mean of all
    assert torch.allclose(cum.flatten(2).amax(2), torch.ones(2, L, dtype=cum.dtype))
    cum3, kept3 = cumulative_maps(maps, k=3)
    assert kept3 == depth_indices(L, 3) and kept3[0] == 0 and kept3[-1] == L - 1
    torch.testing.assert_close(cum3, cum[:, kept3])
    assert cumulative_names(SPATIAL, kept) == ["pool2", "pool2..conv4", "pool2..conv3", "pool2..pool1",
                                               "pool2..conv2", "pool2..conv1"]
    assert cumulative_names(SPATIAL, [0, 5]) == ["pool2", "pool2..conv1"]
    zero, _ = cumulative_maps(torch.zeros(1, L, 3, 4), k=2)  # nothing relevant anywhere stays nothing
    assert torch.equal(zero, torch.zeros(1, 2, 3, 4))
    # the training targets
    torch.testing.assert_close(target_map(maps, "deepest"), maps[:, -1:])
    torch.testing.assert_close(target_map(maps, "mean"), cum[:, -1:])


def test_depth_indices_are_evenly_spaced_keeping_the_first_and_the_last():
    for n in range(1, 17):
        assert depth_indices(n, n) == list(range(n))
        assert depth_indices(n, 1) == [n - 1]
        for k in range(2, n + 1):
            idx = depth_indices(n, k)
            steps = np.diff(idx)
            assert len(idx) == k and idx[0] == 0 and idx[-1] == n - 1, (n, k, idx)
            assert steps.min() >= 1 and steps.max() - steps.min() <= 1, (n, k, idx)
    assert depth_indices(8, 4) == [0, 2, 5, 7]
    assert [default_k(n) for n in (1, 6, 8, 12)] == [1, 6, 8, 8]


# --------------------------------------------------------------------------- networks


def test_the_discriminator_depends_on_its_input_and_passes_gradient_to_the_generator():
    disc = MapDiscriminator(width=8)
    x, cond = _gen_inputs()
    m1, m2 = torch.rand(2, 2, 16, 12, generator=torch.Generator().manual_seed(5))
    d1, d2 = disc(x, m1), disc(x, m2)
    assert d1.shape == (2,)
    assert (d1 - d2).abs().min() > 1e-6  # the map matters
    assert (disc(x + 1.0, m1) - d1).abs().min() > 1e-6  # and the excerpt
    gen = _gen()
    gen.train()
    fake = gen(x, cond)
    adv = F.binary_cross_entropy_with_logits(disc(x, fake), torch.ones(2))
    adv.backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_the_generator_is_linear_while_training_and_clamped_in_use():
    gen = _gen()
    x, cond = _gen_inputs()
    with torch.no_grad():
        gen.out.bias.fill_(3.0)  # far above the maps' range
    gen.train()
    assert gen(x, cond).min() > 1.0
    gen.eval()
    out = gen(x, cond)
    assert out.shape == (2, 16, 12) and torch.equal(out, torch.ones_like(out))
    with torch.no_grad():
        gen.out.bias.fill_(0.0)
    out = gen(x, cond)
    assert out.min() >= 0 and out.max() <= 1 and 0 < (out > 0).float().mean() < 1


def test_a_condition_the_global_generator_ignores_has_zero_relevance():
    gen = _gen("global", k=3).eval()
    x, cond = _gen_inputs(k=3)
    rel = condition_relevance(gen, x, cond)
    assert rel.shape == (2, 3) and (rel > 0).all()
    with torch.no_grad():
        gen.cond[0].weight[:, 1] = 0  # condition map 1 never reaches the features
    rel = condition_relevance(gen, x, cond)
    assert (rel[:, 1] == 0).all()
    assert (rel[:, 0] > 0).all() and (rel[:, 2] > 0).all()


@pytest.mark.parametrize("block", [0, 1])
def test_local_block_j_is_conditioned_on_map_j(block):
    """Making block j's SFT the identity removes map j (and only map j) from a local generator's output."""
    gen = _gen("local", k=3).eval()
    x, cond = _gen_inputs(k=3)
    sft = gen.blocks[block].sft
    with torch.no_grad():
        for part in (sft.scale[2], sft.shift[2]):
            part.weight.zero_()
            part.bias.zero_()
    rel = condition_relevance(gen, x, cond)
    assert (rel[:, block] == 0).all()
    others = [j for j in range(3) if j != block]
    assert (rel[:, others] > 0).all()


# --------------------------------------------------------------------------- training


def test_a_few_training_steps_lower_the_l1_loss():
    clf = _classifier(0)
    before = model_identity(clf.model)
    x, y = _data(8)
    hist = []
    cfg = ExplainerConfig(width=8, steps=30, batch_size=2, lr=1e-3, checkpoint_every=0)
    e = train_explainer(clf, (x, y), cfg, device="cpu", progress=lambda done, total, info: hist.append(dict(info)))
    assert [h["step"] for h in hist] == [10, 20, 30]
    assert all(h["variant"] == "global" for h in hist)
    assert hist[-1]["l1"] < 0.6 * hist[0]["l1"], [h["l1"] for h in hist]
    # more than learning a constant map: on its excerpts it beats the best constant map by a margin
    ev = evaluate_explainer(clf, e, x, device="cpu")
    assert ev["l1"] < 0.8 * ev["l1_constant"], ev
    assert all(0 < h["d_real"] < 1 and 0 < h["d_fake"] < 1 for h in hist)
    assert isinstance(e, ExplainerBundle) and e.variant == "global" and e.k == 6 and e.kept == list(range(6))
    assert e.layers == SPATIAL and e.target == "deepest" and e.unit == UnitSpec() and e.config == cfg
    assert e.classifier_identity == clf.identity
    assert not e.generator.training and not any(p.requires_grad for p in e.generator.parameters())
    assert e.metrics["train_l1"] == pytest.approx(hist[-1]["l1"], abs=1e-6)
    assert e.metrics["steps"] == 30 and e.metrics["excerpts"] == 8 and e.metrics["device"] == "cpu"
    assert model_identity(clf.model) == before and not clf.model.training  # the classifier is left alone
    assert all(p.requires_grad for p in clf.model.parameters())


@pytest.mark.slow
def test_training_resumes_where_a_cancelled_run_stopped(tmp_path):
    clf = _classifier(0)
    data = _data(6)
    cfg = ExplainerConfig(variant="local", k=3, width=8, steps=20, batch_size=2, lr=1e-3, checkpoint_every=5)
    whole = train_explainer(clf, data, cfg, device="cpu")
    ck = tmp_path / "e.ckpt.pt"
    with pytest.raises(CancelledError, match="after 10 of 20"):
        train_explainer(clf, data, cfg, device="cpu", checkpoint=ck,
                        progress=lambda done, total, info: done < 10)
    assert ck.is_file()
    resumed = train_explainer(clf, data, cfg, device="cpu", checkpoint=ck, resume=True)
    for (n, a), (_, b) in zip(whole.generator.state_dict().items(), resumed.generator.state_dict().items(),
                              strict=True):
        assert torch.equal(a, b), n
    assert resumed.kept == [0, 2, 5] and resumed.k == 3 and len(resumed.generator.blocks) == 3
    with pytest.raises(CheckpointError, match="other settings"):
        train_explainer(clf, data, ExplainerConfig(variant="local", k=3, width=8, steps=20, batch_size=2, seed=1),
                        device="cpu", checkpoint=ck, resume=True)


# --------------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def trained():
    """(classifier, global explainer, local explainer, excerpts) of two training steps each."""
    clf = _classifier(0)
    x, y = _data(4)
    exps = {v: train_explainer(clf, (x, y), ExplainerConfig(variant=v, width=8, steps=2, batch_size=2),
                               device="cpu") for v in ("global", "local")}
    return clf, exps["global"], exps["local"], x


@pytest.mark.parametrize("variant", ["global", "local"])
def test_explainer_bundle_round_trip(tmp_path, trained, variant):
    clf, glob, loc, x = trained
    e = glob if variant == "global" else loc
    path = save_explainer(tmp_path / f"{variant}.safetensors", e, classifier=clf)
    back = load_explainer(path, classifier=clf)
    assert back.path == path and back.name == variant and back.variant == variant and back.k == e.k == 6
    assert (back.unit, back.layers, back.kept, back.target, back.config) == (e.unit, e.layers, e.kept, e.target,
                                                                             e.config)
    assert back.classifier_identity == clf.identity and back.metrics == e.metrics
    assert back.generator.config == e.generator.config
    assert not back.generator.training and not any(p.requires_grad for p in back.generator.parameters())
    xn = clf.normaliser.apply(x)
    with frozen(clf.model, CPU) as m:
        cond, _ = cumulative_maps(layer_gradcam(m, xn).maps, e.k)
    assert torch.equal(back.generator(xn, cond), e.generator(xn, cond))
    # half-precision storage: close, not identical
    half = load_explainer(save_explainer(tmp_path / "half.safetensors", e, classifier=clf, dtype=torch.float16),
                          classifier=clf)
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(tmp_path / "half.safetensors").values())
    torch.testing.assert_close(half.generator(xn, cond), e.generator(xn, cond), atol=2e-2, rtol=0)
    # bytes of an upload
    up = load_explainer_bytes(path.read_bytes(), name="upload", classifier=clf)
    assert torch.equal(up.generator(xn, cond), e.generator(xn, cond)) and up.path is None


def test_an_explainer_is_refused_next_to_another_classifier(tmp_path, trained):
    clf, glob, _, _ = trained
    path = save_explainer(tmp_path / "g.safetensors", glob, classifier=clf)
    other = _classifier(1)
    with pytest.raises(CheckpointError, match="trained for classifier"):
        load_explainer(path, classifier=other)
    with pytest.raises(CheckpointError, match="trained for classifier"):
        explain(other, _data(1)[0], explainers={"g": glob}, device="cpu")
    assert load_explainer(path, classifier=None).classifier_identity == clf.identity


def _rewrite(src, dst, edit=None, tensors_edit=None):
    """A valid safetensors copy of ``src`` with its metadata (and tensors) edited."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(src)
    with safe_open(str(src), "pt") as f:
        meta = json.loads(f.metadata()["vocal_xai"])
    if edit is not None:
        edit(meta)
    if tensors_edit is not None:
        tensors_edit(tensors)
    save_file(tensors, str(dst), metadata={"vocal_xai": json.dumps(meta)})
    return dst


def _set(*path_value):
    *keys, value = path_value

    def edit(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


BAD_META = [
    (_set("kept", [0, 1, 2, 3, 4, 4]), "'kept' must be"),
    (_set("generator", "k", 5), "'kept' must be"),
    (_set("generator", "variant", "x"), "'x'"),
    (_set("generator", "width", 10**6), "got 1000000"),
    (_set("generator", "cond_width", 10**6), "got 1000000"),
    (_set("generator", "blocks", 10**6), "got 1000000"),
    (_set("generator", "evil", 1), "'generator' must be a mapping"),
    (_set("generator", "n_frames", 100), "input size differs"),
    (_set("kind", "classifier"), "expected an 'explainer' bundle"),
    (_set("classifier", "identity", "abc"), "identity"),
    (_set("layers", list(reversed(SPATIAL))), "'layers' must be"),
    (_set("layers", ["conv1", "fc1"]), "'layers' must be"),
    (_set("target", "x"), "'target' must be"),
    (_set("unit", "layer", "conv9"), "conv9"),
    (_set("train_config", "variant", "local"), "differ"),
    (_set("train_config", "steps", -1), "got -1"),
    (_set("arch", "conv_channels", [10**9, 4, 4, 4]), "conv_channels"),
    (_set("metrics", [1, 2]), "metrics: [1, 2] is not of type 'object'"),
]


@pytest.mark.parametrize("case", range(len(BAD_META)))
def test_bad_explainer_metadata_is_refused_before_anything_is_built(tmp_path, trained, monkeypatch, case):
    clf, glob, _, _ = trained
    good = save_explainer(tmp_path / "good.safetensors", glob, classifier=clf)
    edit, match = BAD_META[case]
    bad = _rewrite(good, tmp_path / "bad.safetensors", edit)
    good_bytes, bad_bytes = good.read_bytes(), bad.read_bytes()
    built = []
    monkeypatch.setattr(bundle_mod, "MapGenerator", lambda cfg: built.append(cfg) or MapGenerator(cfg))
    with pytest.raises(CheckpointError, match=re.escape(match)):
        load_explainer(bad, classifier=clf)
    assert built == []
    assert bad.read_bytes() == bad_bytes and good.read_bytes() == good_bytes
    # the spy does see a build: once on the meta device (no memory: shapes checked), once for real
    assert load_explainer(good, classifier=clf).k == 6 and len(built) == 2


def _save_raw(dst, metadata):
    from safetensors.torch import save_file

    save_file({"generator.x": torch.zeros(2)}, str(dst), metadata=metadata)


def _nan_first(t):
    k = sorted(t)[0]
    t[k] = t[k].clone()
    t[k].view(-1)[0] = float("nan")


BAD_FILES = [
    ("truncated", lambda data, good, dst: dst.write_bytes(data[: len(data) // 2]), "not a readable safetensors"),
    ("garbage", lambda data, good, dst: dst.write_bytes(b"\x93NUMPY garbage" * 50), "not a readable safetensors"),
    ("empty", lambda data, good, dst: dst.write_bytes(b""), "not a readable safetensors"),
    ("pickle", lambda data, good, dst: dst.write_bytes(b"\x80\x04garbage"), "pickle"),
    ("no metadata", lambda data, good, dst: _save_raw(dst, None), "without Vocal XAI metadata"),
    ("bad json", lambda data, good, dst: _save_raw(dst, {"vocal_xai": "{not json"}), "corrupt bundle metadata"),
    ("wrong shape", lambda data, good, dst: _rewrite(good, dst, tensors_edit=lambda t: t.update(
        {"generator.out.bias": torch.zeros(3)})), "weights do not fit"),
    ("missing tensor", lambda data, good, dst: _rewrite(good, dst, tensors_edit=lambda t: t.pop(
        "generator.out.bias")), "missing keys"),
    ("non-finite", lambda data, good, dst: _rewrite(good, dst, tensors_edit=_nan_first), "non-finite"),
    ("int weights", lambda data, good, dst: _rewrite(good, dst, tensors_edit=lambda t: t.update(
        {"generator.out.bias": torch.zeros(1, dtype=torch.int64)})), "only floating-point"),
    ("extra tensor", lambda data, good, dst: _rewrite(good, dst, tensors_edit=lambda t: t.update(
        {"discriminator.x": torch.zeros(1)})), "other than the generator's"),
]


@pytest.mark.parametrize("case", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_corrupt_explainer_files_are_refused(tmp_path, trained, case):
    _, write, match = case
    clf, glob, _, _ = trained
    good = save_explainer(tmp_path / "good.safetensors", glob, classifier=clf)
    data = good.read_bytes()
    bad = tmp_path / "bad.safetensors"
    write(data, good, bad)
    bad_bytes = bad.read_bytes()
    with pytest.raises(CheckpointError, match=re.escape(match)):
        load_explainer(bad, classifier=clf)
    assert bad.read_bytes() == bad_bytes and good.read_bytes() == data
    with pytest.raises(CheckpointError, match=re.escape(match)):
        load_explainer_bytes(bad_bytes, name="upload", classifier=clf)


def test_load_explainers_keeps_the_classifiers_own_and_says_why_it_skipped_others(tmp_path, trained):
    clf, glob, loc, _ = trained
    save_explainer(tmp_path / "global.safetensors", glob, classifier=clf)
    save_explainer(tmp_path / "local.safetensors", loc, classifier=clf)
    (tmp_path / "broken.safetensors").write_bytes(b"nope")
    other = _classifier(1)
    foreign = ExplainerBundle(generator=glob.generator, unit=glob.unit, layers=glob.layers, kept=glob.kept,
                              target=glob.target, classifier_identity=other.identity, config=glob.config)
    save_explainer(tmp_path / "foreign.safetensors", foreign, classifier=other)
    found, skipped = load_explainers(tmp_path, classifier=clf)
    assert sorted(found) == ["global", "local"] and found["local"].variant == "local"
    assert sorted(skipped) == ["broken.safetensors", "foreign.safetensors"]
    assert "not a readable" in skipped["broken.safetensors"] and "trained for" in skipped["foreign.safetensors"]
    assert load_explainers(tmp_path / "missing", classifier=clf) == ({}, {})


# --------------------------------------------------------------------------- explain


def test_explain_gives_every_map_and_each_explainers_relevance(trained):
    clf, glob, loc, x = trained
    res = explain(clf, x, explainers=[glob, loc], device="cpu")
    assert res.layers == SPATIAL and res.kept == list(range(6)) and res.layer_maps.shape == (4, 6, 115, 80)
    assert res.cumulative.shape == (4, 6, 115, 80) and set(res.gan) == {"global", "local"}
    assert res.relevance["global"].shape == (4, 6) and (res.relevance["local"] >= 0).all()
    torch.testing.assert_close(res.logmel, x)
    names = list(res.maps())
    assert names[:6] == SPATIAL and names[6] == "cumulative pool2" and names[-2:] == ["GAN global", "GAN local"]
    for m in res.maps().values():
        assert m.shape == (4, 115, 80) and m.min() >= 0 and m.max() <= 1
    s = res.summary()
    assert 0 < s["p_vocal"] < 1
    for name in ("global", "local"):
        assert res.conditions[name] == res.cumulative_names  # K = 6 for both, as for the depth maps
        shares = [s[f"relevance/{name}/{c}"] for c in res.conditions[name]]
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    # batches give the same maps as one pass; K of the depth maps is free, the explainers keep their own
    small = explain(clf, x, explainers={"g": glob}, k=2, batch=3, device="cpu")
    assert small.kept == [0, 5] and small.cumulative.shape == (4, 2, 115, 80)
    torch.testing.assert_close(small.layer_maps, res.layer_maps, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(small.gan["g"], res.gan["global"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(small.relevance["g"], res.relevance["global"], atol=1e-5, rtol=1e-4)
    # a map of one excerpt given as (T, M)
    assert explain(clf, x[0], device="cpu", relevance=False).layer_maps.shape == (1, 6, 115, 80)


def test_explain_refuses_an_explainer_of_another_unit(trained):
    clf, glob, _, x = trained
    with pytest.raises(ParameterError, match=re.escape("explains logit[0], not -logit[0]")):
        explain(clf, x, unit=UnitSpec(sign=-1), explainers=[glob], device="cpu")


def test_evaluate_explainer_reports_l1_against_two_reference_points(trained):
    clf, glob, _, x = trained
    ev = evaluate_explainer(clf, glob, x, device="cpu")
    assert ev["n_excerpts"] == 4 and len(ev["relevance"]) == 6 and len(ev["condition_names"]) == 6
    assert sum(ev["relevance"]) == pytest.approx(1.0, abs=1e-3)
    assert ev["l1_copy_first_condition"] == 0.0  # the target is the deepest map: the first condition is it
    assert ev["l1"] >= 0 and ev["l1_constant"] > 0


def test_relevance_is_labelled_with_the_explainers_own_conditions():
    clf = _classifier(0)
    x, y = _data(4)
    e = train_explainer(clf, (x, y), ExplainerConfig(variant="local", k=3, width=8, steps=2, batch_size=2),
                        device="cpu")
    names = cumulative_names(SPATIAL, e.kept)  # pool2, pool2..conv3, pool2..conv1
    ev = evaluate_explainer(clf, e, x, device="cpu")
    assert len(ev["relevance"]) == 3
    assert ev["condition_names"] == names
    s = explain(clf, x, explainers={"e": e}, device="cpu").summary()
    assert sorted(k for k in s if k.startswith("relevance/")) == sorted(f"relevance/e/{n}" for n in names)


# --------------------------------------------------------------------------- listening masks


def test_relevance_mask_keeps_the_most_relevant_share():
    s = torch.rand(3, 10, 8, generator=torch.Generator().manual_seed(0))
    for share in (0.01, 0.1, 0.25, 0.5, 0.9):
        mask = relevance_mask(s, share)
        n = max(1, round(share * 80))
        assert mask.dtype == torch.bool and mask.shape == s.shape
        assert mask.flatten(1).sum(1).tolist() == [n] * 3
        for b in range(3):
            assert s[b][mask[b]].min() > s[b][~mask[b]].max()
    assert torch.equal(relevance_mask(s[0], 0.25), relevance_mask(s, 0.25)[0])  # (T, M) works alike
    tie = relevance_mask(torch.zeros(4, 5), 0.3)  # ties: the first bins, deterministically
    assert tie.flatten().tolist() == [True] * 6 + [False] * 14
    for share in (0.0, 1.0, -0.5, float("nan")):
        with pytest.raises(ParameterError, match="share"):
            relevance_mask(s, share)
    with pytest.raises(ParameterError, match=re.escape("(2, 3, 4, 5)")):
        relevance_mask(torch.zeros(2, 3, 4, 5), 0.5)


def test_split_by_relevance_partitions_the_excerpt():
    g = torch.Generator().manual_seed(0)
    x = -6 + torch.randn(2, 10, 8, generator=g)
    s = torch.rand(2, 10, 8, generator=g)
    floor = -20.0
    rel, rest = split_by_relevance(x, s, share=0.2, floor=floor)
    mask = relevance_mask(s, 0.2)
    assert torch.equal(rel[mask], x[mask]) and (rel[~mask] == floor).all()
    assert torch.equal(rest[~mask], x[~mask]) and (rest[mask] == floor).all()
    assert torch.equal(torch.where(mask, rel, rest), x)  # together: the excerpt
    assert ((rel == floor) ^ (rest == floor)).all()  # every bin in exactly one part
    with pytest.raises(ParameterError, match="differ in shape"):
        split_by_relevance(x, s[:, :5], share=0.2, floor=floor)


# --------------------------------------------------------------------------- figures


def test_figures_draw_and_refuse_mismatched_inputs(trained):
    clf, glob, _, x = trained
    res = explain(clf, x[:1], explainers=[glob], device="cpu")
    fig = depth_maps_figure(res, cfg=clf.mel, title="t")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 7 + 6 + 1  # input + layers, cumulative maps, one explainer
    with pytest.raises(ParameterError, match="map 'm'"):
        maps_grid_figure(x[0], [[("m", np.zeros((5, 80)))]])
    with pytest.raises(ParameterError, match="logmel must be"):
        maps_grid_figure(np.zeros((115, 7)), [[("input", None)]])
    names = res.conditions["global"]
    assert len(relevance_figure({"g": (names, [1 / 6] * 6), "h": (names[:2], [0.5, 0.5])}).data) == 2
    with pytest.raises(ParameterError, match="5 relevances for 6 conditions"):
        relevance_figure({"g": (names, [0.2] * 5)})
    assert len(faithfulness_figure([0, 0.5, 1], {"a": [1, 0.5, 0], "random": [1, 0.7, 0]}).data) == 2
    with pytest.raises(ParameterError, match="2 points for 3 fractions"):
        faithfulness_figure([0, 0.5, 1], {"a": [1, 0]})
    assert len(sanity_figure(["logit", "logit..fc2"], {"a": [0.9, 0.1]}, fail_above=0.5).data) == 1
