import pytest
import torch

from xai_core.actmax import AMConfig, GridConfig, run_am, run_grid, top_reference
from xai_core.actmax import engine as engine_mod
from xai_core.actmax.sequential import run_am_sequential
from xai_core.errors import CancelledError, ParameterError
from xai_core.models import count_hooks


def _score0(r, cfg):
    sign = 1.0 if cfg.direction == "max" else -1.0
    z0 = torch.stack([torch.randn(r.z_best.shape[1], generator=torch.Generator().manual_seed(s))
                      for s in r.seeds.tolist()])
    return sign * r.trace[:, 0] - cfg.penalty * (z0 * z0).sum(1)


@pytest.mark.parametrize("direction", ["max", "min"])
def test_score_moves_in_five_steps(lively, direction):
    clf, gen, _ = lively
    cfg = AMConfig(direction=direction, lr=0.1, lam=0.01, n_iter=5, n_examples=3)
    r = run_am(clf, gen, cfg, device="cpu")
    s0 = _score0(r, cfg)
    assert (r.score_last > s0).all() and (r.score_best > s0).all()
    if direction == "max":
        assert (r.response_last > r.trace[:, 0]).all()
    else:
        assert (r.response_last < r.trace[:, 0]).all()
    # kept = best iterate: its score is the max over the trajectory, consistent with the trace
    assert (r.score_best >= r.score_last).all()
    assert torch.allclose(r.response_best, r.trace[torch.arange(3), r.best_step], atol=1e-6)
    sign = 1.0 if direction == "max" else -1.0
    assert torch.allclose(r.score_best, sign * r.response_best - cfg.penalty * r.z_best.pow(2).sum(1), atol=1e-5)
    assert r.trace.shape == (3, 6) and r.logmel_best.shape == (3, 115, 80)
    assert torch.allclose(r.prob_best, torch.sigmoid(r.logit_best))


def test_batched_equals_sequential_and_snapshots(lively):
    clf, gen, ref = lively
    grid = GridConfig(lrs=(0.1, 0.01), lams=(0.1, 0.001), iters=(4, 10), directions=("max", "min"),
                      n_examples=3, n_reference=4, feature_layers=("response",), max_chunk=5)
    res = run_grid(clf, gen, grid, reference=ref, device="cpu")
    for (d, lr, lam, n_iter) in [("max", 0.1, 0.001, 10), ("min", 0.01, 0.1, 10), ("min", 0.1, 0.1, 4)]:
        seq = run_am_sequential(clf, gen, grid.am_config(d, lr, lam, n_iter), device="cpu")
        got = res.examples[(d, lr, lam, n_iter)]
        assert torch.allclose(got.z_best, seq.z_best, atol=1e-9)
        assert torch.allclose(got.z_last, seq.z_last, atol=1e-9)
        assert torch.equal(got.best_step, seq.best_step)
        assert torch.allclose(got.response_best, seq.response_best, atol=1e-9)
        assert torch.allclose(got.trace, seq.trace, atol=1e-9)
    # snapshot at 4 of the 10-step trajectory equals a separate 4-step run
    alone = run_am(clf, gen, grid.am_config("max", 0.1, 0.1, 4), device="cpu")
    snap = res.examples[("max", 0.1, 0.1, 4)]
    assert torch.allclose(alone.z_best, snap.z_best, atol=1e-5)
    assert torch.allclose(alone.z_last, snap.z_last, atol=1e-5)
    assert res.fid[("max", "response")].shape == (2, 2, 2)
    sel = res.selected["max"]
    assert sel["fid"] == pytest.approx(res.fid[("max", "response")].min())


def test_prior_conventions_agree(lively):
    clf, gen, _ = lively
    a = run_am(clf, gen, AMConfig(prior="paper", lam=0.2, n_iter=3, n_examples=2, lr=0.1), device="cpu")
    b = run_am(clf, gen, AMConfig(prior="code", lam=0.1, n_iter=3, n_examples=2, lr=0.1), device="cpu")
    assert torch.allclose(a.z_best, b.z_best) and torch.allclose(a.score_best, b.score_best)


def test_hidden_unit_and_bad_unit(lively):
    clf, gen, _ = lively
    r = run_am(clf, gen, AMConfig(layer="fc2", unit=2, n_iter=2, n_examples=2), device="cpu")
    assert r.response_best.shape == (2,)
    with pytest.raises(ParameterError, match="out of range"):
        run_am(clf, gen, AMConfig(layer="fc2", unit=99, n_iter=2, n_examples=2), device="cpu")


def test_no_hooks_left_and_flags_restored(lively):
    clf, gen, _ = lively
    run_am(clf, gen, AMConfig(n_iter=2, n_examples=2), device="cpu")

    def boom(done, total, info):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_am(clf, gen, AMConfig(n_iter=3, n_examples=2), device="cpu", progress=boom)
    assert count_hooks(clf.model) == 0 and count_hooks(gen.model) == 0
    assert all(p.requires_grad for p in clf.model.parameters())
    assert not clf.model.training and not gen.model.training


def test_cancel(lively):
    clf, gen, _ = lively
    seen = []

    def stop(done, total, info):
        seen.append(done)
        return done < total // 2

    with pytest.raises(CancelledError):
        run_am(clf, gen, AMConfig(n_iter=10, n_examples=2), device="cpu", progress=stop)
    assert count_hooks(clf.model) == 0 and seen


def test_oom_halves_chunk(lively, monkeypatch):
    clf, gen, _ = lively
    cfg = AMConfig(n_iter=3, n_examples=5, lr=0.1)
    ref = run_am(clf, gen, cfg, device="cpu", max_chunk=5)
    real = engine_mod._optimise_chunk
    sizes = []

    def fake(resp, rows, **kw):
        sizes.append(len(rows))
        if len(rows) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(resp, rows, **kw)

    monkeypatch.setattr(engine_mod, "_optimise_chunk", fake)
    got = run_am(clf, gen, cfg, device="cpu", max_chunk=5)
    assert sizes[:2] == [5, 2] and max(sizes[1:]) <= 2
    assert torch.allclose(got.z_best, ref.z_best, atol=1e-5)


def test_top_reference(lively):
    clf, _, ref = lively
    from xai_core.actmax import reference_responses

    r = reference_responses(clf, ref, device="cpu")
    top = top_reference(clf, ref, direction="max", n=3, device="cpu")
    bot = top_reference(clf, ref, direction="min", n=3, device="cpu")
    assert r[top].min() >= r.max() - 1e-6 or r[top][0] == r.max()
    assert torch.equal(r[top], r.sort(descending=True).values[:3])
    assert torch.equal(r[bot], r.sort().values[:3])
    with pytest.raises(ParameterError, match="n_reference"):
        top_reference(clf, ref, n=len(ref) + 1, device="cpu")
