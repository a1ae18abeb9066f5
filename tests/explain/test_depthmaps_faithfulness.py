"""Deletion/insertion curves against a linear toy model whose curves are known in closed form, and the cascading
model-randomisation check (a map computed from the input alone must fail it, Grad-CAM must not)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from tests.explain.test_depthmaps import _classifier, _data
from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.checkpoints import Bundle, model_identity
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.depthmaps import (
    ExplainerConfig,
    FaithConfig,
    FaithCurves,
    SanityResult,
    UnitSpec,
    depth_map_faithfulness,
    explain,
    faithfulness,
    layer_gradcam,
    randomisation_check,
    train_explainer,
)
from xai_core.explain.depthmaps.faithfulness import _ranks, as_numpy, curves, format_table
from xai_core.explain.depthmaps.sanity import randomise, spearman_rows, weighted_layers
from xai_core.models.hooks import count_hooks, frozen

CPU = torch.device("cpu")
T, M = 4, 5
N = T * M


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread (see tests/explain/test_depthmaps.py)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- a linear toy classifier


class _Dot(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum((1, 2))  # (B,)


class _Linear(nn.Module):
    """``logit = sum(w * x)`` over the normalised input ``(B, T, M)``; the logit is a sub-module, so
    ``forward_until(model, "logit", x)`` works as on SVDNet."""

    layer_names = ("logit",)

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.logit = _Dot(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(x[:, 0] if x.ndim == 4 else x)


def _toy(dtype=torch.float64, b: int = 2):
    """Non-negative weights, positive inputs: every bin contributes ``w * x > 0`` to the logit."""
    g = torch.Generator().manual_seed(0)
    w = 0.1 + torch.rand(T, M, generator=g, dtype=dtype)
    x = 0.1 + torch.rand(b, T, M, generator=g, dtype=dtype)
    return _Linear(w), w, x


def _expected(contrib: torch.Tensor, counts) -> tuple[torch.Tensor, torch.Tensor]:
    """By hand: removing the ``k`` largest contributions leaves the sum of the others; revealing them gives theirs."""
    top = contrib.flatten(1).sort(1, descending=True).values  # (B, N)
    kept = torch.cat([torch.zeros(top.shape[0], 1, dtype=top.dtype), top.cumsum(1)], 1)  # (B, N + 1)
    ins = kept[:, counts]
    return top.sum(1, keepdim=True) - ins, ins


def _random_curves(model, x, unit, fr, n: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    out = [curves(model, x, None, unit=unit, fractions=fr, ranks=_ranks(torch.zeros(x.shape), g)) for _ in range(n)]
    return torch.stack([d for d, _ in out]).mean(0), torch.stack([i for _, i in out]).mean(0)


# --------------------------------------------------------------------------- curves


def test_deletion_and_insertion_curves_of_a_linear_model_are_known_in_closed_form():
    model, w, x = _toy()
    contrib = w * x  # (B, T, M)
    fr = torch.linspace(0, 1, N + 1)  # one bin per step
    dele, ins = curves(model, x, contrib, unit=UnitSpec(), fractions=fr)
    exp_del, exp_ins = _expected(contrib, list(range(N + 1)))
    torch.testing.assert_close(dele, exp_del)
    torch.testing.assert_close(ins, exp_ins)
    assert (dele.diff(dim=1) < 0).all() and (ins.diff(dim=1) > 0).all()  # strictly monotone
    torch.testing.assert_close(dele[:, 0], model(x))  # nothing removed: the logit
    assert torch.equal(dele[:, -1], torch.zeros(2, dtype=dele.dtype))  # all at the baseline: 0
    # five steps over twenty bins: four bins per step
    fr5 = torch.linspace(0, 1, 6)
    d5, i5 = curves(model, x, contrib, unit=UnitSpec(), fractions=fr5)
    e5d, e5i = _expected(contrib, [0, 4, 8, 12, 16, 20])
    torch.testing.assert_close(d5, e5d)
    torch.testing.assert_close(i5, e5i)
    # the true order removes the most evidence first: below any random order pointwise, lower area
    rd, ri = _random_curves(model, x, UnitSpec(), fr)
    assert (dele <= rd + 1e-12).all() and (ins >= ri - 1e-12).all()
    area = torch.trapezoid(dele, fr.double(), dim=1)
    assert (area < torch.trapezoid(rd, fr.double(), dim=1)).all()
    assert (torch.trapezoid(ins, fr.double(), dim=1) > torch.trapezoid(ri, fr.double(), dim=1)).all()
    torch.testing.assert_close(area, torch.from_numpy(np.trapezoid(exp_del.numpy(), fr.double().numpy(), axis=1)))
    # the table: gains over random orders are positive for the true saliency, negative for its reverse
    rev_d, rev_i = curves(model, x, -contrib, unit=UnitSpec(), fractions=fr)
    fc = FaithCurves(fractions=fr.double(), deletion={"true": dele, "reversed": rev_d},
                     insertion={"true": ins, "reversed": rev_i}, random_deletion=rd, random_insertion=ri)
    torch.testing.assert_close(fc.auc(dele), area)
    rows = {r["map"]: r for r in fc.table()}
    assert rows["true"]["deletion_gain"] > 0 and rows["true"]["insertion_gain"] > 0
    assert rows["reversed"]["deletion_gain"] < 0 and rows["reversed"]["insertion_gain"] < 0
    assert rows["true"]["beats_random"] == 1.0 and rows["reversed"]["beats_random"] == 0.0
    # the explained unit's sign is applied
    nd, ni = curves(model, x, contrib, unit=UnitSpec(sign=-1), fractions=fr)
    torch.testing.assert_close(nd, -exp_del)
    torch.testing.assert_close(ni, -exp_ins)


def test_ties_are_removed_in_a_seeded_random_order_after_the_ranked_bins():
    model, w, x = _toy()
    contrib = w * x
    sal = contrib.clone()
    sal.flatten(1)[:, 8:] = 0  # eight bins ranked, twelve tied at zero
    fr = torch.linspace(0, 1, N + 1)
    d1, _ = curves(model, x, sal, unit=UnitSpec(), fractions=fr, generator=torch.Generator().manual_seed(0))
    d2, _ = curves(model, x, sal, unit=UnitSpec(), fractions=fr, generator=torch.Generator().manual_seed(0))
    d3, _ = curves(model, x, sal, unit=UnitSpec(), fractions=fr, generator=torch.Generator().manual_seed(1))
    assert torch.equal(d1, d2) and not torch.equal(d1[:, 9:-1], d3[:, 9:-1])
    ranked = sal.flatten(1)[:, :8].sort(1, descending=True).values
    expected = contrib.flatten(1).sum(1, keepdim=True) - torch.cat([torch.zeros(2, 1, dtype=sal.dtype),
                                                                    ranked.cumsum(1)], 1)
    torch.testing.assert_close(d1[:, :9], expected)
    torch.testing.assert_close(d3[:, :9], expected)
    # ranks: a permutation per excerpt, higher saliency first
    s = torch.tensor([[0.0, 3.0, 1.0, 3.0, 2.0, 0.0]])
    r = _ranks(s, torch.Generator().manual_seed(0))
    assert sorted(r[0].tolist()) == list(range(6))
    assert set(r[0, [1, 3]].tolist()) == {0, 1} and r[0, 4] == 2 and r[0, 2] == 3 and set(r[0, [0, 5]].tolist()) == {4, 5}


def _linear_bundle(w: torch.Tensor) -> Bundle:
    return Bundle(kind="classifier", model=_Linear(w), mel=MelConfig(), normaliser=Normaliser.identity(M),
                  identity="0" * 64)


def test_faithfulness_table_signs_on_the_linear_model():
    model, w, x = _toy(torch.float32, b=3)
    clf = _linear_bundle(w)
    contrib = w * x
    calls = []
    cfg = FaithConfig(steps=N, n_random=3, seed=0)
    fc = faithfulness(clf, x, {"true": contrib, "reversed": -contrib}, config=cfg, device="cpu",
                      progress=lambda done, total, info: calls.append((done, total, info["map"])))
    assert calls == [(1, 8, "true"), (2, 8, "reversed")] + [(i, 8, "random blobs") for i in (3, 4, 5)] + \
        [(i, 8, "random bins") for i in (6, 7, 8)]
    exp_del, exp_ins = _expected(contrib.double(), list(range(N + 1)))
    torch.testing.assert_close(fc.deletion["true"].double(), exp_del, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fc.insertion["true"].double(), exp_ins, atol=1e-5, rtol=1e-5)
    assert fc.fractions.shape == (N + 1,) and fc.random_deletion.shape == (3, N + 1)
    torch.testing.assert_close(fc.random_deletion[:, 0], model(x))
    assert fc.random_deletion[:, -1].abs().max() < 1e-6
    rows = {r["map"]: r for r in fc.table()}
    assert list(rows) == ["true", "reversed"]
    t, r = rows["true"], rows["reversed"]
    assert t["deletion_gain"] > 0 and t["insertion_gain"] > 0 and t["beats_random"] == 1.0
    assert r["deletion_gain"] < 0 and r["insertion_gain"] < 0 and r["beats_random"] == 0.0
    assert t["deletion_auc"] < t["random_deletion_auc"] < r["deletion_auc"]
    assert t["deletion_gain"] == pytest.approx(t["random_deletion_auc"] - t["deletion_auc"], abs=2e-4)
    assert t["deletion_auc"] == pytest.approx(float(fc.auc(fc.deletion["true"]).mean()), abs=1e-4)
    assert t["gap"] == pytest.approx(t["insertion_auc"] - t["deletion_auc"], abs=2e-4) and t["gap"] > 0 > r["gap"]
    # the random orders as reference rows: blobs (the gains' reference, zero gain) and single bins
    refs = {r["map"]: r for r in fc.table(references=True)}
    assert list(refs) == ["true", "reversed", "random blobs", "random bins"]
    assert refs["random blobs"]["deletion_gain"] == 0 and refs["random blobs"]["insertion_gain"] == 0
    assert fc.scattered_deletion.shape == (3, N + 1)
    arrays = as_numpy(fc)
    assert sorted(arrays) == ["deletion/random", "deletion/random bins", "deletion/reversed", "deletion/true",
                              "insertion/random", "insertion/random bins", "insertion/reversed", "insertion/true"]
    assert all(a.shape == (N + 1,) for a in arrays.values())
    assert format_table(fc.table()).count("\n") == 2
    # seeded: the same again; another seed, other random orders
    again = faithfulness(clf, x, {"true": contrib}, config=cfg, device="cpu")
    assert torch.equal(again.deletion["true"], fc.deletion["true"])
    other = faithfulness(clf, x, {"true": contrib}, config=FaithConfig(steps=N, n_random=3, seed=1), device="cpu")
    assert not torch.equal(other.random_deletion, again.random_deletion)


def test_faithfulness_refuses_bad_maps_and_can_be_cancelled():
    _, w, x = _toy(torch.float32)
    clf = _linear_bundle(w)
    with pytest.raises(ParameterError, match=r"map 'bad' has shape \(2, 4, 4\)"):
        faithfulness(clf, x, {"bad": x[:, :, :4]}, device="cpu")
    nan = x.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ParameterError, match="map 'nan' contains non-finite"):
        faithfulness(clf, x, {"nan": nan}, device="cpu")
    with pytest.raises(CancelledError, match="after 1 of 4"):  # 2 maps, 1 order of random blobs, 1 of bins
        faithfulness(clf, x, {"a": x, "b": x}, config=FaithConfig(steps=2, n_random=1), device="cpu",
                     progress=lambda done, total, info: False)
    assert count_hooks(clf.model) == 0 and all(p.requires_grad for p in clf.model.parameters())
    for bad in ({"steps": 1}, {"n_random": 0}, {"batch": 0}):
        with pytest.raises(ParameterError, match=next(iter(bad))):
            FaithConfig(**bad)


def test_depth_map_faithfulness_of_the_tiny_classifier():
    clf = _classifier(0)
    x, _ = _data(2)
    unit = UnitSpec("fc2", 1)
    fc = depth_map_faithfulness(clf, x, unit=unit, config=FaithConfig(steps=4, n_random=1), device="cpu")
    res = explain(clf, x, unit=unit, relevance=False, device="cpu")
    assert list(fc.deletion) == list(res.maps()) and len(res.maps()) == 12
    for name in fc.deletion:
        d, i = fc.deletion[name], fc.insertion[name]
        assert d.shape == i.shape == (2, 5)
        torch.testing.assert_close(d[:, 0], res.value, atol=1e-5, rtol=1e-4)  # nothing removed: the unit
        torch.testing.assert_close(i[:, -1], res.value, atol=1e-5, rtol=1e-4)  # all revealed: the unit
        # everything removed / nothing revealed: the unit at the baseline (the same for every map)
        torch.testing.assert_close(d[:, -1], fc.random_deletion[:, -1])
        torch.testing.assert_close(i[:, 0], fc.random_insertion[:, 0])
    assert [r["map"] for r in fc.table()] == list(res.maps())


# --------------------------------------------------------------------------- model randomisation


def test_spearman_rows_agrees_with_scipy():
    g = np.random.default_rng(0)
    a, b = g.normal(size=(6, 40)), g.normal(size=(6, 40))
    b[1] = a[1] * 3 + 1  # monotone: 1
    b[2] = -a[2]  # reversed: -1
    ties_a, ties_b = g.integers(0, 4, size=(4, 40)), g.integers(0, 3, size=(4, 40))
    for p, q in ((a, b), (ties_a, ties_b)):
        ours = spearman_rows(p.astype(float), q.astype(float))
        theirs = [spearmanr(p[i], q[i]).statistic for i in range(p.shape[0])]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert spearman_rows(a, b)[1] == pytest.approx(1.0) and spearman_rows(a, b)[2] == pytest.approx(-1.0)
    const = np.zeros((2, 40))
    const[1] = 5.0
    assert spearman_rows(const, a[:2]).tolist() == [0.0, 0.0]
    assert spearman_rows(a[:2], const).tolist() == [0.0, 0.0]
    assert spearman_rows(const, const).tolist() == [0.0, 0.0]


def test_randomise_reinitialises_only_the_named_layers_and_copies():
    clf = _classifier(0)
    net = clf.model
    assert weighted_layers(net) == ["logit", "fc2", "fc1", "conv4", "conv3", "conv2", "conv1"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = randomise(net, ["logit", "fc2"], seed=3)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # the original is untouched
    for k, v in r.state_dict().items():
        if k.startswith(("logit", "fc2")):
            if k.endswith("bias"):
                assert torch.equal(v, torch.zeros_like(v)), k
            else:
                assert not torch.allclose(v, before[k]), k
        else:
            assert torch.equal(v, before[k]), k
    again = randomise(net, ["logit", "fc2"], seed=3)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in r.state_dict().items())
    assert not torch.equal(randomise(net, ["fc2"], seed=4).fc2[1].weight, r.fc2[1].weight)


def test_the_randomisation_check_flags_a_map_that_ignores_the_model():
    clf = _classifier(0)
    x, _ = _data(4)
    before = model_identity(clf.model)

    def map_fn(model, logmel):
        xn = clf.normaliser.apply(logmel)
        with frozen(model, CPU) as m:
            gc = layer_gradcam(m, xn)
        return {"input energy": xn.pow(2),  # from the excerpt alone
                "gradcam": gc.maps[:, -1], "gradcam mean": gc.maps.mean(1)}

    calls = []
    res = randomisation_check(clf, x, map_fn=map_fn, device="cpu", progress=lambda d, t, i: calls.append(i["stage"]))
    assert res.stages == ["logit", "logit..fc2", "logit..fc1", "logit..conv4", "logit..conv3", "logit..conv2",
                          "logit..conv1"]
    assert calls == res.stages
    assert res.correlation["input energy"].shape == (7, 4)
    np.testing.assert_allclose(res.correlation["input energy"], 1.0, atol=1e-12)
    v = res.verdict()
    assert v == {"input energy": False, "gradcam": True, "gradcam mean": True}
    final = {k: c[-1].mean() for k, c in res.correlation.items()}
    assert final["gradcam"] < 0.5 and final["gradcam mean"] < 0.5
    assert model_identity(clf.model) == before  # randomised copies only
    d = res.to_dict()
    assert json.loads(json.dumps(d)) == d and d["passes"] == v and len(d["mean_correlation"]["gradcam"]) == 7
    text = res.format()
    assert "FAILS" in text and "passes" in text and text.count("\n") == 4
    # a stricter threshold fails the same maps
    assert SanityResult(res.stages, res.correlation, fail_above=-1.0).verdict() == {k: False for k in v}


def test_the_randomisation_check_of_the_depth_maps_and_an_explainer():
    clf = _classifier(0)
    x, y = _data(2)
    e = train_explainer(clf, (x, y), ExplainerConfig(width=8, steps=2, batch_size=2), device="cpu")
    res = randomisation_check(clf, x, explainers={"g": e}, device="cpu")
    names = list(explain(clf, x, explainers={"g": e}, relevance=False, device="cpu").maps())
    assert list(res.correlation) == names and names[-1] == "GAN g"
    assert all(c.shape == (7, 2) and np.isfinite(c).all() and (np.abs(c) <= 1 + 1e-9).all()
               for c in res.correlation.values())
    with pytest.raises(CancelledError, match="after 1 of 7"):
        randomisation_check(clf, x, device="cpu", progress=lambda d, t, i: False)
    with pytest.raises(ParameterError, match="excerpts must be"):
        randomisation_check(clf, x[:, :10], device="cpu")


def test_sanity_verdict_threshold():
    res = SanityResult(stages=["logit", "logit..fc2"],
                       correlation={"a": np.array([[0.9, 0.7], [0.5, 0.5]]), "b": np.array([[1.0, 1.0], [0.6, 0.5]])})
    assert res.verdict() == {"a": True, "b": False}
    assert res.mean() == {"a": [0.8, 0.5], "b": [1.0, 0.55]}
    assert SanityResult.format_dict(res.to_dict()) == res.format()
