"""Neuron consistency on tiny models: attacks against closed forms, configs, concept spaces, consistency,
k-means concepts, consistent-loss adversarial training."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_core.assets import ReferenceSet
from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.checkpoints import Bundle, load_bundle, model_identity, save_bundle
from xai_core.errors import CancelledError, CheckpointError, DataError, ParameterError
from xai_core.explain.consistency import (
    AttackConfig,
    ConceptSpace,
    ConsistencyConfig,
    RobustConfig,
    attack,
    available_schemes,
    concept_space,
    consistency_of,
    db_to_log,
    decision_threshold,
    input_bounds,
    kmeans_concepts,
    layer_means,
    log_to_db,
    neuron_consistency,
    perturb,
    success_curve,
    top_k,
    unit_responses,
)
from xai_core.explain.consistency.concepts import GRADED_SAME_CLASS, graded_space, tag_space
from xai_core.explain.consistency.robust import robust_loss, train_robust
from xai_core.models.hooks import capture_activations, count_hooks
from xai_core.models.svdnet import SVDNet

# --------------------------------------------------------------------------- helpers


def _classifier(seed: int = 0, *, threshold: float | None = None) -> Bundle:
    """An untrained tiny SVDNet with a normaliser fitted to noise around -6 (std 2)."""
    net = SVDNet("tiny")
    net.reset_parameters(generator=torch.Generator().manual_seed(seed))
    net.eval()
    g = torch.Generator().manual_seed(seed)
    norm = Normaliser.fit(-6 + 2 * torch.randn(64, 80, generator=g))
    metrics = {"eval": {"threshold": threshold}} if threshold is not None else {}
    return Bundle(kind="classifier", model=net, mel=MelConfig(), normaliser=norm, preset="tiny", metrics=metrics,
                  identity=model_identity(net))


def _data(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy excerpts (N, 115, 80): noise around -6; "vocal" ones (odd rows) have the lower 40 bands 1.5 nats
    louder, a signal the tiny classifier can learn in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    x = -6.0 + torch.randn(n, 115, 80, generator=g)
    y = (torch.arange(n) % 2).float()
    x[:, :, :40] += 1.5 * y[:, None, None]
    return x, y


def _tagged_set(n: int = 12, seed: int = 0) -> ReferenceSet:
    x, y = _data(n, seed)
    fam = ["choir" if i % 4 == 1 else ("solo" if i % 2 else "none") for i in range(n)]
    inst = ["guitar" if i % 3 == 0 else ("piano" if i % 3 == 1 else "none") for i in range(n)]
    return ReferenceSet(x, y, [f"x{i}.wav@0.00" for i in range(n)], MelConfig(), {},
                        {"singer_family": fam, "instrument": inst})


class _Linear(nn.Module):
    """logit = sum(w * x) + b on a normalised (B, 1, T, M) input: the gradient's sign is sign(w)."""

    def __init__(self, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] * self.w).sum((1, 2)) + self.b  # (B,)


def _linear_setup(seed: int = 0, t: int = 5, m: int = 4):
    g = torch.Generator().manual_seed(seed)
    w = 1e-2 * torch.randn(t, m, generator=g)
    w[0, :2] = 0.0  # no gradient there: those bins must not move (sign 0)
    x = torch.randn(2, t, m, generator=g)
    mean = torch.linspace(-1.0, 1.0, m)
    std = torch.full((m,), 2.0)
    return _Linear(w), w, x, mean, std


# --------------------------------------------------------------------------- attacks


def test_units_and_bounds():
    assert db_to_log(20.0) == pytest.approx(math.log(10.0))
    assert log_to_db(db_to_log(1.7)) == pytest.approx(1.7)
    assert AttackConfig(eps_db=1.0).eps_log == pytest.approx(math.log(10.0) / 20.0)
    assert AttackConfig(method="fgsm", eps_db=2.0).step_log == pytest.approx(db_to_log(2.0))
    assert AttackConfig(method="fgsm", steps=7).n_steps == 1
    assert AttackConfig(eps_db=2.0, steps=5).step_log == pytest.approx(2.5 * db_to_log(2.0) / 5)
    assert AttackConfig(eps_db=2.0, step_db=0.3).step_log == pytest.approx(db_to_log(0.3))
    mel = MelConfig()
    lo, hi = input_bounds(mel)
    assert lo == pytest.approx(math.log(mel.log_floor))
    assert hi == pytest.approx(math.log(mel.n_fft / 2))  # the periodic Hann window of n_fft sums to n_fft / 2
    lo2, hi2 = input_bounds(replace(mel, n_fft=2048, log_floor=1e-5))
    assert (lo2, hi2) == (pytest.approx(math.log(1e-5)), pytest.approx(math.log(1024.0)))


@pytest.mark.parametrize("ascend", [True, False])
def test_fgsm_step_is_the_hand_computed_sign_step(ascend):
    model, w, x, mean, std = _linear_setup()
    y = torch.tensor([1.0, 0.0])
    eps = 0.3
    adv = perturb(model, x, y, ascend=ascend, eps=eps, step=eps, steps=1, random_start=False, bounds=(-100.0, 100.0),
                  mean=mean, std=std, offset=0.7)
    # d BCE(z, y) / dx = (sigmoid(z) - y) * w / std: sign -sign(w) for y = 1, +sign(w) for y = 0 (std > 0).
    # Ascending pushes away from y, descending towards it.
    towards_vocal = torch.tensor([1.0, -1.0])  # +1 where moving towards y raises the logit
    direction = (-towards_vocal if ascend else towards_vocal)[:, None, None] * w.sign()  # (B, T, M)
    assert torch.allclose(adv, x + eps * direction, atol=1e-6)
    assert torch.equal(adv[:, 0, :2], x[:, 0, :2])  # zero gradient: unchanged
    assert model.w.grad is None  # the model's parameters are not touched
    assert not adv.requires_grad


def test_pgd_with_a_linear_model_ends_on_the_ball_in_the_gradient_direction():
    model, w, x, mean, std = _linear_setup(seed=1)
    y = torch.tensor([1.0, 0.0])
    eps = 0.25
    adv = perturb(model, x, y, ascend=True, eps=eps, step=eps / 2, steps=6, random_start=True,
                  bounds=(-100.0, 100.0), mean=mean, std=std, generator=torch.Generator().manual_seed(0))
    direction = torch.tensor([-1.0, 1.0])[:, None, None] * w.sign()
    moved = w != 0
    # from any start in the ball, 6 steps of eps/2 reach the face of the ball in the gradient's direction
    assert torch.allclose(adv[:, moved], (x + eps * direction)[:, moved], atol=1e-6)
    # where there is no gradient, the random start stays where it was: inside the ball, not at x
    assert ((adv - x).abs() <= eps + 1e-6).all()
    assert not torch.equal(adv[:, ~moved], x[:, ~moved])


def test_perturb_respects_the_valid_range_and_never_pushes_out_of_range_values_further():
    model, w, x, mean, std = _linear_setup(seed=2, t=6, m=5)
    w = model.w.detach()
    lo, hi = -1.0, 1.0
    x = torch.linspace(-1.6, 1.6, x[0].numel()).reshape(1, *x.shape[1:]).repeat(2, 1, 1)  # (2, T, M)
    x[1] = x[1].flip(0)
    eps = 0.4
    for y, ascend in ((1.0, True), (0.0, True), (1.0, False)):
        adv = perturb(model, x, torch.full((2,), y), ascend=ascend, eps=eps, step=eps / 3, steps=7, random_start=True,
                      bounds=(lo, hi), mean=mean, std=std, generator=torch.Generator().manual_seed(3))
        assert ((adv - x).abs() <= eps + 1e-6).all()
        inside = (x >= lo) & (x <= hi)
        assert ((adv[inside] >= lo) & (adv[inside] <= hi)).all()
        assert (adv[x < lo] >= x[x < lo]).all() and (adv[x > hi] <= x[x > hi]).all()
        # where the gradient points outwards from an out-of-range value, the value stays exactly as it was
        up = (torch.tensor(1.0 if (y == 1.0) != ascend else -1.0) * w.sign()).expand_as(x) > 0  # pushed up
        assert torch.equal(adv[(x > hi) & up], x[(x > hi) & up])
        assert torch.equal(adv[(x < lo) & ~up & (w != 0)], x[(x < lo) & ~up & (w != 0)])
        # in-range bins pushed up reach min(x + eps, hi)
        sel = inside & up
        assert torch.allclose(adv[sel], torch.clamp(x[sel] + eps, max=hi), atol=1e-6)


def test_fgsm_through_attack_equals_autograd_sign_step():
    clf = _classifier(threshold=0.3)
    x, y = _data(6)
    x[0, :10, :10] = 6.0  # near the upper bound log(512) = 6.24: clipped there where the step is upwards
    cfg = AttackConfig(method="fgsm", eps_db=3.0)
    res = attack(clf, x, labels=y, config=cfg, device="cpu")
    xr = x.clone().requires_grad_(True)
    mean, std = clf.normaliser.mean, clf.normaliser.std
    z = clf.model(((xr - mean) / std)[:, None]) - math.log(0.3 / 0.7)
    (g,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(z, y, reduction="sum"), xr)
    lo, hi = input_bounds(clf.mel)
    expected = (x + db_to_log(3.0) * g.sign()).clamp(lo, hi)
    assert torch.allclose(res.adversarial, expected, atol=1e-6)
    assert (x + db_to_log(3.0) * g.sign() > hi).any() and (res.adversarial <= hi).all()
    assert (g != 0).float().mean() > 0.9  # the check is not vacuous
    assert res.threshold == pytest.approx(0.3)
    assert torch.equal(res.labels, y) and torch.equal(res.targets, 1 - y)
    with torch.no_grad():
        assert torch.allclose(res.logit, clf.model(((x - mean) / std)[:, None]), atol=1e-5)
        assert torch.allclose(res.logit_adv, clf.model(((expected - mean) / std)[:, None]), atol=1e-4)
    # chunking does not change the result (per-example gradients)
    res4 = attack(clf, x, labels=y, config=replace(cfg, batch_size=4), device="cpu")
    clear = g.abs() > 1e-4 * g.abs().max()  # (a sign of a gradient at rounding level may differ between batch sizes)
    assert torch.allclose(res4.adversarial[clear], res.adversarial[clear], atol=1e-6)
    assert res.perturbation_db.max() <= 3.0 + 1e-4
    assert res.summary()["max_abs_change_db"] == pytest.approx(3.0, abs=1e-3)


def test_pgd_stays_in_the_ball_and_the_valid_range():
    clf = _classifier()
    x, y = _data(8)
    lo, hi = input_bounds(clf.mel)
    x[0, :5] = hi - 0.01  # just inside the top
    x[1, :5] = lo  # at the floor
    x[2, :5] = hi + 0.5  # out of range above (a generated example)
    x[3, :5] = lo - 0.5  # out of range below
    cfg = AttackConfig(method="pgd", eps_db=2.0, steps=5, step_db=1.5)  # steps larger than needed: projections
    res = attack(clf, x, labels=y, config=cfg, device="cpu")
    adv = res.adversarial
    assert ((adv - x).abs() <= cfg.eps_log + 1e-6).all()
    inside = (x >= lo) & (x <= hi)
    assert ((adv[inside] >= lo - 1e-6) & (adv[inside] <= hi + 1e-6)).all()
    assert (adv[x > hi] <= x[x > hi]).all() and (adv[x < lo] >= x[x < lo]).all()
    # the untargeted attack moves every logit away from its label on this model
    delta = res.logit_adv - res.logit
    assert ((2 * y - 1) * delta < 0).all()
    # deterministic given the seed; another seed, another random start
    again = attack(clf, x, labels=y, config=cfg, device="cpu")
    assert torch.equal(again.adversarial, adv)
    other = attack(clf, x, labels=y, config=replace(cfg, seed=1, steps=1, step_db=0.01), device="cpu")
    assert not torch.equal(other.adversarial, adv)


@pytest.mark.parametrize("goal", ["to-vocal", "to-non-vocal"])
def test_targeted_attacks_move_the_logit_the_requested_way(goal):
    clf = _classifier()
    x, y = _data(8)
    res = attack(clf, x, labels=y, config=AttackConfig(eps_db=2.0, steps=4, goal=goal), device="cpu")
    sign = 1.0 if goal == "to-vocal" else -1.0
    assert sign * (res.logit_adv.mean() - res.logit.mean()) > 0
    assert (sign * (res.logit_adv - res.logit) >= 0).all()
    assert torch.equal(res.targets, torch.full((8,), 1.0 if goal == "to-vocal" else 0.0))
    assert torch.equal(res.eligible, res.pred != res.targets)
    assert torch.equal(res.success, res.eligible & (res.pred_adv == res.targets))


def test_untargeted_without_labels_pushes_away_from_the_models_own_decision():
    clf = _classifier()
    x, _ = _data(6)
    res = attack(clf, x, config=AttackConfig(eps_db=2.0, steps=3), device="cpu")
    assert not res.labels_known
    assert torch.equal(res.labels, res.pred)
    assert res.summary()["error_before"] == 0.0
    assert ((2 * res.labels - 1) * (res.logit_adv - res.logit) < 0).all()


def test_decision_threshold_and_success_curve():
    assert decision_threshold(_classifier()) == 0.5
    assert decision_threshold(_classifier(threshold=0.2)) == pytest.approx(0.2)
    assert decision_threshold(_classifier(threshold=1.5)) == 0.5  # not a probability: ignored
    clf = _classifier()
    x, y = _data(6)
    rows = success_curve(clf, x, labels=y, eps_db=[0.5, 4.0], config=AttackConfig(method="fgsm"), device="cpu")
    assert [r["eps_db"] for r in rows] == [0.5, 4.0]
    assert rows[0]["max_abs_change_db"] <= 0.5 + 1e-4 and rows[1]["max_abs_change_db"] <= 4.0 + 1e-4
    assert rows[1]["mean_abs_change_db"] > rows[0]["mean_abs_change_db"]
    with pytest.raises(ParameterError, match="at least one epsilon"):
        success_curve(clf, x, labels=y, eps_db=[], device="cpu")


def test_attack_rejects_bad_inputs_and_can_be_cancelled():
    clf = _classifier()
    x, y = _data(4)
    with pytest.raises(ParameterError, match="labels"):
        attack(clf, x, labels=torch.tensor([0.0, 1.0, 2.0, 1.0]), device="cpu")
    with pytest.raises(ParameterError, match="labels"):
        attack(clf, x, labels=y[:3], device="cpu")
    with pytest.raises(ParameterError, match="log-mel"):
        attack(clf, x[:, :100], device="cpu")
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ParameterError, match="non-finite"):
        attack(clf, bad, device="cpu")
    with pytest.raises(ParameterError, match="normaliser"):
        attack(replace(clf, normaliser=None), x, device="cpu")
    with pytest.raises(ParameterError, match="expected a classifier"):
        attack(replace(clf, kind="generator"), x, device="cpu")
    with pytest.raises(CancelledError):
        attack(clf, x, labels=y, config=AttackConfig(steps=3), device="cpu", progress=lambda d, t, i: d < 2)
    assert count_hooks(clf.model) == 0 and all(p.requires_grad for p in clf.model.parameters())


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("kw, match", [
    ({"eps_db": 0.0}, "eps_db"), ({"eps_db": -1.0}, "eps_db"), ({"eps_db": 1e9}, "eps_db"),
    ({"eps_db": float("nan")}, "eps_db"), ({"eps_db": float("inf")}, "eps_db"), ({"eps_db": True}, "eps_db"),
    ({"eps_db": "1"}, "eps_db"), ({"steps": 0}, "steps"), ({"steps": True}, "steps"), ({"steps": 2.0}, "steps"),
    ({"step_db": 0.0}, "step_db"), ({"method": "cw"}, "unknown attack 'cw'"), ({"goal": "sideways"}, "sideways"),
    ({"random_start": 1}, "random_start"), ({"seed": -1}, "seed"), ({"batch_size": -1}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
])
def test_attack_config_rejects_bad_values(kw, match):
    with pytest.raises(ParameterError, match=match):
        AttackConfig(**kw)


@pytest.mark.parametrize("kw, match", [
    ({"k": 0}, "k must"), ({"k": True}, "k must"), ({"k": 2.5}, "k must"), ({"reduce": "median"}, "median"),
    ({"layers": ("conv9",)}, "unknown layer 'conv9'"), ({"layers": ()}, "at least one layer"),
    ({"clusters": 1}, "clusters"), ({"clusters": True}, "clusters"), ({"concept": ""}, "concept"),
    ({"concept": None}, "concept"), ({"seed": -3}, "seed"), ({"batch_size": 10**6}, "batch_size"),
])
def test_consistency_config_rejects_bad_values(kw, match):
    with pytest.raises(ParameterError, match=match):
        ConsistencyConfig(**kw)


@pytest.mark.parametrize("kw, match", [
    ({"mu": -1.0}, "mu"), ({"mu": float("nan")}, "mu"), ({"mu": True}, "mu"), ({"layer": "conv9"}, "conv9"),
    ({"eps_db": 0.0}, "eps_db"), ({"eps_db": 1e9}, "eps_db"), ({"eps_db": float("nan")}, "eps_db"),
    ({"attack_steps": 0}, "attack_steps"), ({"attack_steps": True}, "attack_steps"), ({"init": "random"}, "init"),
    ({"steps": 0}, "steps"), ({"steps": True}, "steps"), ({"batch_size": False}, "batch_size"), ({"lr": 0.0}, "lr"),
    ({"lr": float("inf")}, "lr"), ({"smoothing": 0.5}, "smoothing"), ({"checkpoint_every": -1}, "checkpoint_every"),
])
def test_robust_config_rejects_bad_values(kw, match):
    with pytest.raises(ParameterError, match=match):
        RobustConfig(**kw)


def test_configs_round_trip_through_dicts():
    for cfg in (AttackConfig(method="fgsm", eps_db=0.5, goal="to-vocal"),
                ConsistencyConfig(k=5, concept="vocal", layers=["fc1", "logit"], clusters=3),
                RobustConfig(mu=0.0, layer="fc1", steps=7)):
        back = type(cfg).from_dict(cfg.to_dict())
        assert back == cfg
    assert ConsistencyConfig(layers=["fc1"]).layers == ("fc1",)
    with pytest.raises(ParameterError, match="unknown attack config keys"):
        AttackConfig.from_dict({"eps": 1.0})
    with pytest.raises(ParameterError, match="mapping"):
        RobustConfig.from_dict([("mu", 1.0)])
    assert RobustConfig(mu=0.0).name == "plain adversarial training"
    assert RobustConfig(mu=0.5).name == "consistent-loss adversarial training"
    att = RobustConfig(eps_db=2.0, attack_steps=4, seed=3).attack()
    assert (att.method, att.eps_db, att.steps, att.goal, att.seed, att.random_start) == \
        ("pgd", 2.0, 4, "untargeted", 3, True)
    assert "PGD, eps 1 dB, 10 steps of 0.25 dB, random start" in AttackConfig().describe()


# --------------------------------------------------------------------------- concept spaces and consistency


def _graded_concepts():
    return {
        "vocal": ["vocal"] * 4 + ["non-vocal"] * 4,
        "singer_family": ["choir", "choir", "solo", "solo", "none", "none", "none", "none"],
        "instrument": ["guitar", "none", "piano", "none", "guitar", "guitar", "piano", "none"],
    }


def test_purity_closed_forms():
    space = tag_space("t", ["a", "a", "b", "b", "c", "c", "a", "d"])
    assert space.names == ("a", "b", "c", "d") and len(space) == 8
    assert torch.equal(space.similarity, torch.eye(4, dtype=torch.float64))
    topk = torch.tensor([[0, 1, 6, 0],  # pure (a repeated index counts twice, still one concept)
                         [0, 2, 4, 7],  # uniform over the 4 concepts
                         [0, 1, 2, 3],  # half a, half b
                         [0, 1, 6, 2]])  # 3/4 a, 1/4 b
    out = consistency_of(topk, space)
    assert out.dtype == torch.float64
    assert torch.allclose(out, torch.tensor([1.0, 1 / 4, 1 / 2, 9 / 16 + 1 / 16], dtype=torch.float64))
    with pytest.raises(ParameterError, match="top-k"):
        consistency_of(torch.zeros(3, 0, dtype=torch.long), space)


def test_graded_closed_forms():
    space = graded_space(_graded_concepts())
    assert space.names == ("non-vocal: guitar", "non-vocal: no instrument", "non-vocal: piano", "vocal: choir",
                           "vocal: solo")
    assert space.labels()[:5] == ["vocal: choir", "vocal: choir", "vocal: solo", "vocal: solo", "non-vocal: guitar"]
    a = space.similarity
    assert torch.equal(a, a.T) and torch.equal(torch.diagonal(a), torch.ones(5, dtype=torch.float64))
    assert a[3, 4] == GRADED_SAME_CLASS == 0.5 and a[0, 2] == 0.5 and a[0, 3] == 0.0
    s = GRADED_SAME_CLASS
    cases = {
        (0, 1): 1.0,  # one family
        (0, 2): 0.5 ** 2 * 2 + 2 * s * 0.25,  # two families, both vocal: 0.75
        (0, 4): 0.5,  # half vocal, half not: no cross-class credit
        (0, 1, 2, 4): 0.5 ** 2 + 2 * 0.25 ** 2 + 2 * s * 0.5 * 0.25,  # choir .5, solo .25, guitar .25: 0.5
        (4, 6, 7): 3 / 9 + 6 * s / 9,  # three instruments, all non-vocal: 2/3
    }
    for idx, want in cases.items():
        got = float(consistency_of(torch.tensor([idx]), space)[0])
        assert got == pytest.approx(want), idx
        # p^T A p by hand
        p = torch.bincount(space.codes[list(idx)], minlength=5).double() / len(idx)
        assert got == pytest.approx(float(p @ a @ p))


@pytest.mark.parametrize("which", ["tag", "graded"])
def test_chance_equals_the_mean_over_all_k_subsets(which):
    concepts = _graded_concepts()
    space = tag_space("instrument", concepts["instrument"]) if which == "tag" else graded_space(concepts)
    n = len(space)
    for k in range(1, n + 1):
        subsets = torch.tensor(list(itertools.combinations(range(n), k)))  # (C(n, k), k)
        exact = float(consistency_of(subsets, space).mean())
        assert space.chance(k) == pytest.approx(exact, abs=1e-12), k
    assert space.chance(1) == pytest.approx(1.0)
    assert space.chance(100) == pytest.approx(space.chance(n))  # k beyond the set: the whole set


def test_concept_space_errors_and_schemes():
    concepts = _graded_concepts()
    assert concept_space("graded", concepts).name == "graded"
    assert concept_space("instrument", concepts).names == ("guitar", "none", "piano")
    with pytest.raises(ParameterError, match="unknown concept 'bogus'"):
        concept_space("bogus", concepts)
    with pytest.raises(ParameterError, match="singer_family"):
        concept_space("graded", {"vocal": concepts["vocal"], "instrument": concepts["instrument"]})
    assert available_schemes(concepts) == ["graded", "vocal", "singer_family", "instrument"]
    assert available_schemes({"vocal": ["vocal"]}) == ["vocal"]
    with pytest.raises(ParameterError, match="similarity"):
        ConceptSpace("x", ("a", "b"), torch.tensor([0, 1]), torch.eye(3, dtype=torch.float64))
    with pytest.raises(ParameterError, match="indices"):
        ConceptSpace("x", ("a", "b"), torch.tensor([0, 2]), torch.eye(2, dtype=torch.float64))


def test_top_k_takes_the_largest_responses_with_stable_ties():
    r = torch.tensor([[1.0, 0.0, 2.0],
                      [5.0, 0.0, 2.0],
                      [3.0, 0.0, 9.0],
                      [5.0, 0.0, 2.0],
                      [0.0, 0.0, -1.0],
                      [2.0, 0.0, 2.0]])  # (N=6, U=3)
    got = top_k(r, 3)
    assert got.shape == (3, 3)
    assert got[0].tolist() == [1, 3, 2]  # 5, 5 (lower index first), 3
    assert got[1].tolist() == [0, 1, 2]  # all tied: first excerpts
    assert got[2].tolist() == [2, 0, 1]  # 9 then the 2s in index order
    assert top_k(r, 6)[2].tolist() == [2, 0, 1, 3, 5, 4]


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_unit_responses_are_the_reduced_captured_activations(reduce):
    clf = _classifier()
    x, _ = _data(5)
    mean, std = clf.normaliser.mean, clf.normaliser.std
    layers = list(SVDNet.layer_names)
    got = unit_responses(clf.model, x, mean, std, layers=layers, reduce=reduce, batch=2)
    with torch.no_grad(), capture_activations(clf.model, layers) as acts:
        clf.model(((x - mean) / std)[:, None])
    shapes = clf.model.layer_shapes()
    for layer in layers:
        a = acts[layer]
        want = (a.mean((2, 3)) if reduce == "mean" else a.amax((2, 3))) if a.ndim == 4 else a.reshape(5, -1)
        assert got[layer].shape == (5, shapes[layer][0] if shapes[layer] else 1), layer
        assert torch.allclose(got[layer], want, atol=1e-5), layer
    assert count_hooks(clf.model) == 0


def test_unit_responses_leave_no_hook_when_interrupted():
    clf = _classifier()
    x, _ = _data(4)
    mean, std = clf.normaliser.mean, clf.normaliser.std

    def boom(done, total, info):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        unit_responses(clf.model, x, mean, std, layers=["conv1", "fc2"], batch=2, progress=boom)
    assert count_hooks(clf.model) == 0
    with pytest.raises(CancelledError):
        unit_responses(clf.model, x, mean, std, layers=["conv1", "fc2"], batch=2, progress=lambda *a: False)
    assert count_hooks(clf.model) == 0


def test_neuron_consistency_end_to_end_leaves_the_classifier_as_it_was():
    clf = _classifier()
    model = clf.model
    model.train()  # the caller's mode and flags must come back as they were
    model.fc1[2].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    state = copy.deepcopy(model.state_dict())
    ref = _tagged_set(12)
    cfg = ConsistencyConfig(k=3)
    seen = []
    res = neuron_consistency(clf, ref, config=cfg, attack_config=AttackConfig(eps_db=2.0, steps=2), device="cpu",
                             progress=lambda d, t, i: seen.append((d, t, i["stage"])))
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert count_hooks(model) == 0
    assert seen[-1][0] == seen[-1][1] and {s for *_, s in seen} == {"attack", "responses", "adversarial responses"}

    model.eval()
    shapes = model.layer_shapes()
    s = res.summary()
    assert list(s["layers"]) == list(SVDNet.layer_names) == list(res.layers)
    for layer, row in s["layers"].items():
        units = shapes[layer][0] if shapes[layer] else 1
        assert row["units"] == units and res.real[layer].shape == (units,) and res.adv[layer].shape == (units,)
        assert {"real_mean", "adv_mean", "drop", "share_units_less_consistent"} <= set(row)
    assert len(res.rows()) == sum(shapes[lay][0] if shapes[lay] else 1 for lay in SVDNet.layer_names)
    assert res.csv().count("\n") == 1 + len(res.rows())
    assert s["chance"] == pytest.approx(res.space.chance(3)) and s["concept"] == "graded" and s["n"] == 12
    # every number is p^T A p of the top k of the recorded responses, real and adversarial
    mean, std = clf.normaliser.mean, clf.normaliser.std
    resp_adv = unit_responses(model, res.attack.adversarial, mean, std, layers=SVDNet.layer_names)
    for layer in res.layers:
        assert torch.equal(res.topk_real[layer], top_k(res.responses_real[layer], 3))
        assert torch.allclose(res.real[layer], consistency_of(top_k(res.responses_real[layer], 3), res.space))
        assert torch.allclose(res.responses_adv[layer], resp_adv[layer], atol=1e-5)
        assert torch.equal(res.topk_adv[layer], top_k(resp_adv[layer], 3))
        assert torch.allclose(res.adv[layer], consistency_of(top_k(resp_adv[layer], 3), res.space))
        assert ((res.real[layer] >= 0) & (res.real[layer] <= 1 + 1e-12)).all()
    # an attack made already is reused as it is; one of other excerpts is refused
    again = neuron_consistency(clf, ref, config=cfg, attack_result=res.attack, device="cpu")
    assert again.attack is res.attack and all(torch.equal(again.adv[k], res.adv[k]) for k in res.layers)
    other = attack(clf, _data(12, seed=5)[0], config=AttackConfig(steps=1), device="cpu")
    with pytest.raises(ParameterError, match="other excerpts"):
        neuron_consistency(clf, ref, config=cfg, attack_result=other, device="cpu")
    layer_rows = layer_means({"a": res})["a"]
    assert len(layer_rows["real"]) == len(layer_rows["adv"]) == len(SVDNet.layer_names)


def test_neuron_consistency_real_only_tuples_and_clusters():
    clf = _classifier()
    x, y = _data(10)
    res = neuron_consistency(clf, (x, y, {"instrument": ["a", "b"] * 5}),
                             config=ConsistencyConfig(k=2, concept="instrument", layers=("fc2", "logit")),
                             attack_config=None, device="cpu")
    assert res.adv is None and res.attack is None and res.layers == ("fc2", "logit")
    assert "adv_mean" not in res.summary()["layers"]["fc2"] and "consistency_adv" not in res.rows()[0]
    assert res.chance == pytest.approx(res.space.chance(2))
    res = neuron_consistency(clf, (x, y, None), config=ConsistencyConfig(k=2, concept="vocal", layers=("logit",)),
                             attack_config=None, device="cpu")
    assert res.space.names == ("non-vocal", "vocal")
    # the logit's top 2 are the 2 largest logits: consistency 1 if they share the label, else 0.5
    assert float(res.real["logit"][0]) in (1.0, 0.5)
    res = neuron_consistency(clf, (x, y, None), config=ConsistencyConfig(k=2, concept="cluster", clusters=2,
                                                                         layers=("fc2",)),
                             attack_config=None, device="cpu")
    assert res.space.name == "cluster" and len(res.space.names) == 2


def test_neuron_consistency_errors():
    clf = _classifier()
    ref = _tagged_set(6)
    x, y = ref.logmel, ref.labels
    no_attack = {"attack_config": None, "device": "cpu"}
    with pytest.raises(ParameterError, match="larger than the excerpt set"):
        neuron_consistency(clf, ref, config=ConsistencyConfig(k=7), **no_attack)
    with pytest.raises(ParameterError, match="unknown concept 'bogus'"):
        neuron_consistency(clf, ref, config=ConsistencyConfig(k=2, concept="bogus"), **no_attack)
    with pytest.raises(ParameterError, match="no labels"):
        neuron_consistency(clf, (x, None, {}), config=ConsistencyConfig(k=2, concept="vocal"), **no_attack)
    with pytest.raises(ParameterError, match="normaliser"):
        neuron_consistency(replace(clf, normaliser=None), ref, config=ConsistencyConfig(k=2), **no_attack)
    with pytest.raises(ParameterError, match="reference set"):
        neuron_consistency(clf, (x, y), config=ConsistencyConfig(k=2), **no_attack)
    with pytest.raises(ParameterError, match="unknown layer 'conv9'"):
        ConsistencyConfig(layers=("fc2", "conv9"))
    cfg = ConsistencyConfig(k=2)
    object.__setattr__(cfg, "layers", ("fc2", "conv9"))  # past the config's own check: the model's check
    with pytest.raises(ParameterError, match="conv9"):
        neuron_consistency(clf, ref, config=cfg, **no_attack)
    with pytest.raises(ParameterError, match="log-mel"):
        neuron_consistency(clf, (x[:, :50], y, {}), config=ConsistencyConfig(k=2, concept="vocal"), **no_attack)
    with pytest.raises(CancelledError):
        neuron_consistency(clf, ref, config=ConsistencyConfig(k=2, batch_size=2), progress=lambda *a: False,
                           **no_attack)
    assert count_hooks(clf.model) == 0 and all(p.requires_grad for p in clf.model.parameters())


def test_kmeans_concepts_separates_groups():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(18, 12, 8, generator=g)  # (N, T, M)
    x[6:12, :, :4] += 6.0  # group 2: lower bands louder
    x[12:, :, 4:] += 6.0  # group 3: upper bands louder
    two = kmeans_concepts(x[:12], k=2, seed=0)
    assert len(two) == 12 and set(two) <= {"cluster 0", "cluster 1"}
    assert len(set(two[:6])) == 1 and len(set(two[6:])) == 1 and two[0] != two[6]
    three = kmeans_concepts(x, k=3, seed=1)
    assert sorted(set(three)) == ["cluster 0", "cluster 1", "cluster 2"]
    assert len({three[0], three[6], three[12]}) == 3 and all(three[i] == three[i - i % 6] for i in range(18))
    assert kmeans_concepts(x, k=3, seed=1) == three  # deterministic
    for k in (1, 0, 19, True, 2.0):
        with pytest.raises(ParameterError, match="k-means"):
            kmeans_concepts(x, k=k)


# --------------------------------------------------------------------------- consistent-loss training


def test_robust_loss_is_the_sum_of_its_terms():
    clf = _classifier()
    model = clf.model
    x, y = _data(4)
    x_adv = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    mean, std = clf.normaliser.mean, clf.normaliser.std
    kw = {"layer": "fc1", "mean": mean, "std": std, "smoothing": 0.1}
    with torch.no_grad():
        l0 = robust_loss(model, x, x_adv, y, mu=0.0, **kw)
        l2 = robust_loss(model, x, x_adv, y, mu=2.0, **kw)
        with capture_activations(model, ["fc1"]) as acts:
            z = model(((x - mean) / std)[:, None])
            f = acts["fc1"]
            z_adv = model(((x_adv - mean) / std)[:, None])
            f_adv = acts["fc1"]
    target = 0.1 + 0.8 * y
    assert float(l0["ce_clean"]) == pytest.approx(float(F.binary_cross_entropy_with_logits(z, target)), rel=1e-5)
    assert float(l0["ce_adv"]) == pytest.approx(float(F.binary_cross_entropy_with_logits(z_adv, target)), rel=1e-5)
    assert float(l0["feature"]) == pytest.approx(float(((f - f_adv) ** 2).mean()), rel=1e-5)
    assert float(l0["feature"]) > 0
    assert float(l0["loss"]) == pytest.approx(float(l0["ce_clean"] + l0["ce_adv"]), rel=1e-6)
    assert float(l2["loss"]) == pytest.approx(float(l0["loss"] + 2.0 * l0["feature"]), rel=1e-5)
    same = robust_loss(model, x, x, y, mu=5.0, **kw)
    assert float(same["feature"].detach()) == pytest.approx(0.0, abs=1e-10)
    assert float(same["ce_clean"].detach()) == pytest.approx(float(same["ce_adv"].detach()))
    same["loss"].backward()  # differentiable with respect to the weights
    assert model.fc1[2].weight.grad is not None
    model.zero_grad(set_to_none=True)


def _loss_on_fixed_batch(bundle: Bundle) -> float:
    """The consistent loss (mu 1, fc2) of a fixed batch, its adversarial half made against ``bundle`` itself."""
    x, y = _data(16, seed=7)
    mean, std = bundle.normaliser.mean, bundle.normaliser.std
    eps = db_to_log(1.0)
    x_adv = perturb(bundle.model, x, y, ascend=True, eps=eps, step=eps * 2.5 / 3, steps=3, random_start=True,
                    bounds=input_bounds(bundle.mel), mean=mean, std=std, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return float(robust_loss(bundle.model, x, x_adv, y, mu=1.0, layer="fc2", mean=mean, std=std)["loss"])


@pytest.mark.slow
def test_train_robust_lowers_the_consistent_loss_and_round_trips(tmp_path):
    clf = _classifier()
    base_state = copy.deepcopy(clf.model.state_dict())
    base_identity = clf.identity
    before = _loss_on_fixed_batch(clf)
    cfg = RobustConfig(steps=30, batch_size=8, lr=3e-3, attack_steps=2, checkpoint_every=0)
    rob = train_robust(clf, _data(64), cfg, device="cpu", provenance={"note": "test"})
    after = _loss_on_fixed_batch(rob)
    assert after < 0.7 * before, (before, after)
    # the base classifier is untouched
    assert all(torch.equal(v, clf.model.state_dict()[k]) for k, v in base_state.items())
    assert model_identity(clf.model) == base_identity and not clf.model.training
    # a classifier bundle like any other
    assert rob.kind == "classifier" and isinstance(rob.model, SVDNet) and rob.model is not clf.model
    assert not rob.model.training and not any(p.requires_grad for p in rob.model.parameters())
    assert rob.identity == model_identity(rob.model) != base_identity
    assert rob.normaliser is clf.normaliser and rob.mel == clf.mel and rob.preset == "tiny"
    assert rob.provenance["base_classifier"] == base_identity and rob.provenance["note"] == "test"
    assert rob.provenance["robust_config"] == cfg.to_dict()
    assert rob.provenance["method"] == "consistent-loss adversarial training"
    m = rob.metrics["robust_training"]
    assert m["steps"] == 30 and m["excerpts"] == 64 and {"loss", "ce_clean", "ce_adv", "feature"} <= set(m)
    path = save_bundle(tmp_path / "robust.safetensors", model=rob.model, kind="classifier", mel=rob.mel,
                       normaliser=rob.normaliser, preset=rob.preset, provenance=rob.provenance, metrics=rob.metrics)
    back = load_bundle(path, expected_kind="classifier")
    assert back.identity == rob.identity and back.metrics == rob.metrics
    x, _ = _data(4, seed=3)
    with torch.no_grad():
        z1 = rob.model(((x - rob.normaliser.mean) / rob.normaliser.std)[:, None])
        z2 = back.model(((x - back.normaliser.mean) / back.normaliser.std)[:, None])
    assert torch.allclose(z1, z2, atol=1e-6)


def test_train_robust_mu_zero_and_positive():
    clf = _classifier()
    data = _data(16)
    out = {}
    for mu in (0.0, 2.0):
        cfg = RobustConfig(mu=mu, steps=10, batch_size=4, attack_steps=1, lr=1e-3)
        rob = train_robust(clf, data, cfg, device="cpu")
        m = rob.metrics["robust_training"]  # means over the 10 steps
        assert m["loss"] == pytest.approx(m["ce_clean"] + m["ce_adv"] + mu * m["feature"], abs=1e-4)
        assert m["feature"] > 0
        assert rob.provenance["method"] == cfg.name
        out[mu] = rob
    # the feature term changes the training
    assert not torch.equal(out[0.0].model.fc2[1].weight, out[2.0].model.fc2[1].weight)
    # deterministic: the same settings give the same weights
    again = train_robust(clf, data, RobustConfig(mu=2.0, steps=10, batch_size=4, attack_steps=1, lr=1e-3),
                         device="cpu")
    assert again.identity == out[2.0].identity


def test_train_robust_resume_continues_exactly(tmp_path):
    clf = _classifier()
    data = _data(16)
    kw = {"batch_size": 4, "attack_steps": 1, "lr": 1e-3, "checkpoint_every": 4}
    full = train_robust(clf, data, RobustConfig(steps=8, **kw), device="cpu", checkpoint=tmp_path / "full.pt")
    ck = tmp_path / "half.pt"
    half = train_robust(clf, data, RobustConfig(steps=4, **kw), device="cpu", checkpoint=ck)
    assert ck.is_file() and half.identity != full.identity
    resumed = train_robust(clf, data, RobustConfig(steps=8, **kw), device="cpu", checkpoint=ck, resume=True)
    for k, v in full.model.state_dict().items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k
    # refused: other settings, another base classifier, fewer steps than done
    with pytest.raises(CheckpointError, match="other settings"):
        train_robust(clf, data, RobustConfig(steps=8, mu=0.5, **kw), device="cpu", checkpoint=ck, resume=True)
    with pytest.raises(CheckpointError, match="other settings"):
        train_robust(clf, data, RobustConfig(steps=8, **{**kw, "lr": 2e-3}), device="cpu", checkpoint=ck,
                     resume=True)
    with pytest.raises(CheckpointError, match="another base classifier"):
        train_robust(_classifier(seed=1), data, RobustConfig(steps=8, **kw), device="cpu", checkpoint=ck,
                     resume=True)
    with pytest.raises(CheckpointError, match="already 8 steps"):
        train_robust(clf, data, RobustConfig(steps=6, **kw), device="cpu", checkpoint=ck, resume=True)


def test_train_robust_rejects_bad_inputs():
    clf = _classifier()
    x, y = _data(4)
    cfg = RobustConfig(steps=1, batch_size=2, attack_steps=1)
    with pytest.raises(DataError, match="frames"):
        train_robust(clf, (x[:, :100], y), cfg, device="cpu")
    with pytest.raises(ParameterError, match="normaliser"):
        train_robust(replace(clf, normaliser=None), (x, y), cfg, device="cpu")
    with pytest.raises(DataError, match="no training data"):
        train_robust(clf, [], cfg, device="cpu")


def test_auto_batch_sizes_by_device():
    from xai_core.explain.consistency.config import AUTO_BATCH, auto_batch

    assert auto_batch(7, torch.device("cpu")) == 7  # an explicit size is kept
    assert auto_batch(0, torch.device("cpu")) == AUTO_BATCH["cpu"][0]
    assert auto_batch(0, torch.device("cpu"), responses=True) == AUTO_BATCH["cpu"][1]
    assert auto_batch(0, torch.device("cuda")) == AUTO_BATCH["cuda"][0]


def test_agreement_closed_forms():
    from xai_core.explain.consistency import agreement_of
    from xai_core.explain.consistency.concepts import tag_space

    space = tag_space("vocal", ["vocal", "vocal", "non-vocal", "non-vocal"])  # names sorted: non-vocal, vocal
    real = torch.tensor([[0, 1], [0, 2]])  # unit 0: both vocal; unit 1: half and half
    adv = torch.tensor([[2, 3], [0, 2]])  # unit 0: both non-vocal (pure, but the other concept); unit 1: as real
    agree = agreement_of(real, adv, space)
    assert agree.tolist() == pytest.approx([0.0, 0.5])
    assert consistency_of(adv, space).tolist() == pytest.approx([1.0, 0.5])  # consistency cannot see the flip
    assert agreement_of(real, real, space).tolist() == pytest.approx(consistency_of(real, space).tolist())
    with pytest.raises(ParameterError):
        agreement_of(real, adv[:1], space)
