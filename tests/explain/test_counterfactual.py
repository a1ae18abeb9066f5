"""Counterfactuals (inversion, AM from z_inv with a proximity term, the real-vs-real spread, storage) on the tiny
untrained models of ``tiny_bundles``."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from xai_core.assets import ReferenceSet
from xai_core.audio.features import Normaliser
from xai_core.errors import CancelledError, ParameterError, StoreError
from xai_core.explain.counterfactual import (
    CounterfactualConfig,
    counterfactual,
    invert,
    nearest_real_mse,
    real_spread,
)
from xai_core.explain.counterfactual.serial import load_result, save_result
from xai_core.models.hooks import count_hooks

# small budgets: the tiny models are fast, the machine is shared
FAST = CounterfactualConfig(restarts=3, invert_steps=40, am_iters=12, trace_every=4)


@pytest.fixture(scope="module")
def result(tiny_bundles):
    clf, gen, ref = tiny_bundles
    return counterfactual(clf, gen, ref.logmel[0], FAST, reference=ref, label="reference excerpt 0",
                          exclude_clip="noise0.wav", device="cpu")


# ---- inversion ------------------------------------------------------------------------------------


def test_inverting_a_generated_excerpt_recovers_it(tiny_bundles):
    """G(z*) for a known z*: the inversion's reconstruction error falls to ~0 (from the restarts' starting error)."""
    clf, gen, _ = tiny_bundles
    z_star = torch.randn(2, gen.model.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x = gen.model(z_star)  # (2, T, M)
    cfg = CounterfactualConfig(restarts=4, invert_steps=150, invert_lr=0.1, invert_prior=0.0)
    inv = invert(gen, clf.normaliser, x, cfg, device="cpu")
    start = inv.trace[:, :, 0].min(1).values  # (2,) the best restart's error at step 0
    assert inv.z.shape == (2, gen.model.z_dim) and inv.logmel.shape == x.shape
    assert inv.restart_mse.shape == (2, 4) and inv.trace.shape == (2, 4, 151)
    assert (inv.mse < 1e-3 * start).all() and (inv.mse < 1e-8).all(), (inv.mse, start)
    # the kept restart is the one with the lowest loss (no prior here: the lowest MSE), and its MSE is reported
    assert torch.equal(inv.best_restart, inv.restart_mse.argmin(1))
    torch.testing.assert_close(inv.mse, inv.restart_mse.min(1).values, rtol=1e-4, atol=1e-12)
    # the reconstruction is G(z) of the kept code
    with torch.no_grad():
        torch.testing.assert_close(gen.model(inv.z), inv.logmel)


def test_batched_restarts_equal_one_restart_at_a_time(tiny_bundles):
    clf, gen, ref = tiny_bundles
    cfg = CounterfactualConfig(restarts=3, invert_steps=15, seed=7)
    batched = invert(gen, clf.normaliser, ref.logmel[1], cfg, device="cpu")
    for r in range(3):
        alone = invert(gen, clf.normaliser, ref.logmel[1], replace(cfg, restarts=1, seed=7 + r), device="cpu")
        torch.testing.assert_close(alone.trace[0, 0], batched.trace[0, r], rtol=1e-4, atol=1e-6)


def test_the_prior_pulls_the_code_toward_the_origin(tiny_bundles):
    clf, gen, ref = tiny_bundles
    cfg = CounterfactualConfig(restarts=2, invert_steps=30, invert_prior=0.0)
    free = invert(gen, clf.normaliser, ref.logmel[2], cfg, device="cpu")
    tied = invert(gen, clf.normaliser, ref.logmel[2], replace(cfg, invert_prior=10.0), device="cpu")
    assert tied.z.norm() < free.z.norm()


# ---- counterfactual AM ---------------------------------------------------------------------------


def test_result_shapes_numbers_and_message(result, tiny_bundles):
    clf, gen, ref = tiny_bundles
    r = result
    d = gen.model.z_dim
    assert r.directions == ("max", "min")
    assert r.original.shape == r.reconstruction.shape == (115, 80)
    assert r.z_inv.shape == (d,) and r.z_best.shape == (2, d) and r.logmel_best.shape == (2, 115, 80)
    assert r.trace_steps.tolist() == [0, 4, 8, 12] and r.trace_z.shape == (2, 4, d)
    assert r.trace_logit.shape == (2, 4) and r.trace_logmel.shape == (2, 4, 115, 80)
    torch.testing.assert_close(r.original, ref.logmel[0])
    # the trajectory starts at z_inv, whose excerpt is the reconstruction
    torch.testing.assert_close(r.trace_z[:, 0], r.z_inv[None].expand(2, d))
    torch.testing.assert_close(r.trace_logmel[0, 0], r.reconstruction, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r.trace_logit[:, 0], torch.full((2,), r.logit_reconstruction), atol=1e-5, rtol=1e-5)
    # logits of the excerpt and its reconstruction are the classifier's
    with torch.no_grad():
        logits = clf.model(clf.normaliser.apply(torch.stack([r.original, r.reconstruction])))
    torch.testing.assert_close(torch.tensor([r.logit_original, r.logit_reconstruction]), logits, atol=1e-5, rtol=1e-5)
    # max goes up, min down (or stays: the kept iterate is the best-scoring one, z_inv included)
    assert float(r.logit_best[0]) >= r.logit_reconstruction - 1e-6 >= float(r.logit_best[1]) - 2e-6
    assert 0 <= int(r.best_step.min()) and int(r.best_step.max()) <= 12
    s = r.summary()
    assert set(s) >= {"rec_mse", "p_original", "p_reconstruction", "p_max", "p_min", "spread_threshold",
                      "reconstructs", "dz_max", "dz_min", "beta"}
    assert all(math.isfinite(v) for v in s.values() if isinstance(v, float))
    assert s["spread_threshold"] == pytest.approx(real_spread(ref, clf.normaliser).threshold)
    assert r.reconstructs == (r.rec_mse <= r.threshold)
    assert ("cannot reconstruct" in r.message()) != r.reconstructs
    assert r.nearest_mse == pytest.approx(nearest_real_mse(ref.logmel[0], ref, clf.normaliser, exclude_clip="noise0.wav"))
    assert r.to_dict()["message"] == r.message()


def test_the_honesty_flag_fires_above_the_spread(result):
    """Judged against a spread that is tighter than the reconstruction, the result says the GAN cannot
    reconstruct the excerpt; against a wider one it says it can."""
    tight = replace(result, spread={**result.spread, "threshold": result.rec_mse / 2})
    loose = replace(result, spread={**result.spread, "threshold": result.rec_mse * 2})
    assert tight.reconstructs is False and "cannot reconstruct" in tight.message()
    assert loose.reconstructs is True and "reconstructs this excerpt" in loose.message()
    none = replace(result, spread=None)
    assert none.reconstructs is None and "no reference set" in none.message()


@pytest.mark.parametrize("direction", ["max", "min"])
def test_beta_zero_is_plain_am_started_from_z_inv(tiny_bundles, monkeypatch, direction):
    """beta = 0: the counterfactual's AM is the AM engine's run (same lr, prior, iterations) from z_inv."""
    import xai_core.actmax.engine as engine
    from xai_core.actmax.config import AMConfig

    clf, gen, ref = tiny_bundles
    cfg = replace(FAST, beta=0.0, directions=(direction,), trace_every=1, am_lr=0.05, am_lam=0.1, prior="code")
    cf = counterfactual(clf, gen, ref.logmel[3], cfg, device="cpu")
    monkeypatch.setattr(engine, "initial_codes", lambda seed, n, d: cf.z_inv[None].repeat(n, 1))
    am = engine.run_am(clf, gen, AMConfig(direction=direction, lr=0.05, lam=0.1, prior="code", n_iter=cfg.am_iters,
                                          n_examples=1), device="cpu")
    assert torch.equal(cf.z_best, am.z_best)
    assert torch.equal(cf.best_step, am.best_step)
    assert torch.equal(cf.trace_z[:, -1], am.z_last)
    torch.testing.assert_close(cf.score_best, am.score_best)
    torch.testing.assert_close(cf.trace_logit, am.trace, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cf.logit_best, am.logit_best)


def test_both_directions_batched_equal_each_alone(tiny_bundles):
    clf, gen, ref = tiny_bundles
    cfg = replace(FAST, beta=0.3)
    both = counterfactual(clf, gen, ref.logmel[4], cfg, device="cpu")
    for i, d in enumerate(("max", "min")):
        alone = counterfactual(clf, gen, ref.logmel[4], replace(cfg, directions=(d,)), device="cpu")
        torch.testing.assert_close(alone.z_best[0], both.z_best[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alone.trace_logit[0], both.trace_logit[i], atol=1e-5, rtol=1e-5)


def test_a_large_beta_keeps_the_code_near_z_inv(tiny_bundles):
    clf, gen, ref = tiny_bundles
    free = counterfactual(clf, gen, ref.logmel[5], replace(FAST, beta=0.0), device="cpu")
    held = counterfactual(clf, gen, ref.logmel[5], replace(FAST, beta=1e4), device="cpu")
    torch.testing.assert_close(held.z_inv, free.z_inv)
    assert (held.distance < 1e-3).all(), held.distance
    assert (held.distance < free.distance).all()
    torch.testing.assert_close(held.logit_best, torch.full((2,), held.logit_reconstruction), atol=1e-3, rtol=1e-3)
    # the proximity term is part of the kept score: at z_inv it is zero
    dz2 = ((held.z_best - held.z_inv) ** 2).sum(1)
    sign = torch.tensor([1.0, -1.0])
    expect = sign * held.logit_best - FAST.penalty * (held.z_best ** 2).sum(1) - 1e4 * dz2
    torch.testing.assert_close(held.score_best, expect, atol=1e-4, rtol=1e-4)


def test_progress_covers_both_phases_and_cancels_without_leaving_hooks(tiny_bundles):
    clf, gen, ref = tiny_bundles
    seen = []
    counterfactual(clf, gen, ref.logmel[6], FAST, device="cpu", progress=lambda d, t, i: seen.append((d, t, i["phase"])))
    total = FAST.invert_steps + FAST.am_iters
    assert {t for _, t, _ in seen} == {total} and seen[-1][0] == total
    assert [p for _, _, p in seen].index("am") == FAST.invert_steps
    for stop_at in (5, FAST.invert_steps + 3):
        with pytest.raises(CancelledError):
            counterfactual(clf, gen, ref.logmel[6], FAST, device="cpu", progress=lambda d, t, i, s=stop_at: d < s)
        assert count_hooks(clf.model) == 0
    assert not clf.model.training and not gen.model.training


@pytest.mark.parametrize("kw, match", [
    ({"beta": -1.0}, "beta"), ({"beta": float("nan")}, "beta"), ({"beta": float("inf")}, "beta"),
    ({"restarts": 0}, "restarts"), ({"invert_steps": 0}, "invert_steps"), ({"invert_lr": 0.0}, "invert_lr"),
    ({"invert_lr": float("nan")}, "invert_lr"), ({"invert_prior": -0.1}, "invert_prior"),
    ({"am_lr": float("inf")}, "am_lr"), ({"am_iters": 1.5}, "am_iters"), ({"am_lam": float("nan")}, "am_lam"),
    ({"prior": "mine"}, "prior"), ({"directions": ()}, "directions"), ({"directions": ("up",)}, "up"),
    ({"directions": ("max", "max")}, "directions"), ({"directions": "max"}, "directions"),
    ({"trace_every": 0}, "trace_every"), ({"spread_quantile": 1.0}, "spread_quantile"), ({"seed": -1}, "seed"),
    ({"restarts": True}, "restarts"),
])
def test_bad_settings_are_refused_by_name(kw, match):
    with pytest.raises(ParameterError, match=match):
        CounterfactualConfig(**kw)


def test_config_round_trip_and_trace_steps():
    c = CounterfactualConfig(directions=("min",), am_iters=7, trace_every=3)
    assert CounterfactualConfig.from_dict(c.to_dict()) == c
    assert c.trace_steps == (0, 3, 6, 7)
    with pytest.raises(ParameterError, match="unknown"):
        CounterfactualConfig.from_dict({"beta": 1.0, "gamma": 2})


def test_bad_inputs_are_refused_by_name(tiny_bundles):
    clf, gen, ref = tiny_bundles
    x = ref.logmel[0]
    with pytest.raises(ParameterError, match="shape"):
        counterfactual(clf, gen, x[:100], FAST, device="cpu")
    with pytest.raises(ParameterError, match="NaN"):
        counterfactual(clf, gen, torch.where(torch.arange(80) == 3, float("nan"), x), FAST, device="cpu")
    silent = torch.full_like(x, clf.mel.log_min)
    with pytest.raises(ParameterError, match="silence"):
        counterfactual(clf, gen, silent, FAST, device="cpu")
    with pytest.raises(ParameterError, match="CounterfactualConfig"):
        counterfactual(clf, gen, x, {"beta": 1}, device="cpu")
    with pytest.raises(ParameterError, match="classifier"):
        counterfactual(gen, gen, x, FAST, device="cpu")
    with pytest.raises(ParameterError, match="generator"):
        invert(clf, clf.normaliser, x, FAST)


def test_the_envelope_reference_in_closed_form(result, tiny_bundles):
    """The excerpt against its own average spectrum: 0 for an excerpt that does not change over time, the
    per-band variance over time (normalised) otherwise; the message says when the reconstruction is no closer."""
    from xai_core.explain.counterfactual.engine import envelope_mse

    clf, _, ref = tiny_bundles
    flat = torch.linspace(-8, -2, 80).expand(115, 80)
    assert envelope_mse(flat, clf.normaliser) == pytest.approx(0.0, abs=1e-12)
    y = clf.normaliser.apply(ref.logmel[0].double())
    assert result.envelope_mse == pytest.approx(float(y.var(0, unbiased=False).mean()))
    assert result.beats_envelope == (result.rec_mse < result.envelope_mse)
    assert result.summary()["envelope_mse"] == result.envelope_mse
    worse = replace(result, envelope_mse=result.rec_mse / 2)
    better = replace(result, envelope_mse=result.rec_mse * 2)
    assert worse.beats_envelope is False and "average spectrum" in worse.message()
    assert better.beats_envelope is True and "average spectrum" not in better.message()


# ---- the real-vs-real spread ----------------------------------------------------------------------


def _set(values, sources):
    x = torch.tensor(values, dtype=torch.float32)[:, None, None].expand(len(values), 115, 80).clone()
    return ReferenceSet(x, torch.zeros(len(values)), sources)


def test_spread_is_the_nearest_other_clip_mse_in_closed_form():
    """Constant excerpts 0, 0.1 (clip a) and 1, 3 (clip b): the MSE of two constants is the squared difference,
    and neighbours of the same clip are left out."""
    ref = _set([0.0, 0.1, 1.0, 3.0], ["a@0", "a@1", "b@0", "b@1"])
    s = real_spread(ref, Normaliser.identity(80))
    torch.testing.assert_close(s.nn_mse, torch.tensor([1.0, 0.81, 0.81, 2.9 ** 2], dtype=torch.float64))
    assert s.threshold == pytest.approx((0.81 + 1.0) / 2)  # the median (linear interpolation)
    assert s.n_clips == 2 and s.same_clip_fallback == 0
    assert real_spread(ref, Normaliser.identity(80), quantile=0.25).threshold == pytest.approx(0.81)
    assert s.percentile(0.9) == pytest.approx(0.5)
    # in the classifier's normalised space: a std of 2 divides every MSE by 4
    halved = real_spread(ref, Normaliser(torch.zeros(80), torch.full((80,), 2.0)))
    torch.testing.assert_close(halved.nn_mse, s.nn_mse / 4)
    # one clip only: the nearest other excerpt of any clip, said so
    one = real_spread(_set([0.0, 0.5, 2.0], ["a@0", "a@1", "a@2"]), Normaliser.identity(80))
    torch.testing.assert_close(one.nn_mse, torch.tensor([0.25, 0.25, 2.25], dtype=torch.float64))
    assert one.same_clip_fallback == 3
    assert nearest_real_mse(torch.full((115, 80), 0.9), ref, Normaliser.identity(80)) == pytest.approx(0.01)
    assert nearest_real_mse(torch.full((115, 80), 0.9), ref, Normaliser.identity(80), exclude_clip="b") \
        == pytest.approx(0.64)
    with pytest.raises(ParameterError, match=">= 2"):
        real_spread(_set([1.0], ["a@0"]), Normaliser.identity(80))


# ---- storage --------------------------------------------------------------------------------------


def _same(a, b):
    for f in ("original", "reconstruction", "z_inv", "restart_mse", "invert_trace", "z_best", "logmel_best",
              "logit_best", "score_best", "best_step", "trace_steps", "trace_z", "trace_logit", "spread_nn"):
        torch.testing.assert_close(getattr(a, f), getattr(b, f), msg=f)
    torch.testing.assert_close(a.trace_logmel, b.trace_logmel, atol=4e-3, rtol=1e-3)  # float16 on disk
    assert a.config == b.config and a.directions == b.directions and a.label == b.label
    assert a.summary() == pytest.approx(b.summary())
    assert a.spread == b.spread and a.message() == b.message() and a.envelope_mse == b.envelope_mse


def test_serial_round_trip_and_damaged_files(result, tmp_path):
    p = save_result(tmp_path / "cf.safetensors", result)
    _same(result, load_result(p))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ParameterError, match="not a readable counterfactual result"):
        load_result(p)
    with pytest.raises(ParameterError, match="not a readable counterfactual result"):
        load_result(tmp_path / "missing.safetensors")


def test_run_store_save_list_load_export_delete(result, tiny_bundles, tmp_path):
    from xai_core.store import RunStore

    clf, gen, _ = tiny_bundles
    store = RunStore(tmp_path / "runs")
    rid = store.save_counterfactual(result, classifier=clf, generator=gen, name="mine")
    store.ensure_complete(rid)
    row = store.list_runs("counterfactual")[0]
    assert row["id"] == rid and row["status"] == "complete" and row["name"] == "mine"
    assert row["summary"]["rec_mse"] == pytest.approx(result.rec_mse)
    info = store.info(rid)
    assert info["config"]["beta"] == FAST.beta and info["config"]["input"] == "reference excerpt 0"
    assert info["generator"]["identity"] == gen.identity
    _same(result, store.load(rid))
    files = store.export(rid, tmp_path / "export", griffin_lim_iter=2)
    names = sorted(str(f.relative_to(tmp_path / "export")) for f in files)
    assert names == ["counterfactual.json", "counterfactual.png", "wav/less_vocal.wav", "wav/more_vocal.wav",
                     "wav/original.wav", "wav/reconstruction.wav"]
    with pytest.raises(ParameterError, match="--force"):
        store.export(rid, tmp_path / "export", griffin_lim_iter=2)
    (tmp_path / "runs" / rid / "counterfactual.safetensors").unlink()
    with pytest.raises(StoreError, match="missing"):
        store.load(rid)
    store.delete(rid)
    assert store.list_runs("counterfactual") == []


def test_a_run_with_nan_results_is_stored_as_failed(result, tiny_bundles, tmp_path):
    from xai_core.store import RunStore

    clf, gen, _ = tiny_bundles
    bad = replace(result, logit_best=torch.tensor([float("nan"), 0.0]))
    store = RunStore(tmp_path / "runs")
    rid = store.save_counterfactual(bad, classifier=clf, generator=gen)
    assert store.info(rid)["status"] == "failed"
    with pytest.raises(StoreError, match="logit_best"):
        store.ensure_complete(rid)
