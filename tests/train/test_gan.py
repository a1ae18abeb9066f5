import pytest
import torch

from xai_core.audio.features import Normaliser
from xai_core.checkpoints import load_bundle, save_bundle
from xai_core.errors import ParameterError
from xai_core.models import SVDNet
from xai_core.train.gan import GanTrainConfig, gan_quality_report, random_excerpts, train_gan


def _norm(tracks):
    return Normaliser.fit(torch.cat([t.features for t in tracks]))


def _assert_same_weights(a, b, *, atol: float) -> None:
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=atol)


def test_gan_steps_run_and_write_a_loadable_generator(toy_tracks, tmp_path):
    train, _, _ = toy_tracks
    norm = _norm(train)
    seen = []
    cfg = GanTrainConfig(preset="tiny", critic_preset="tiny", steps=4, batch_size=4, sample_every=2,
                         checkpoint_every=2)
    run = train_gan(train, norm, cfg, device="cpu", sample_hook=lambda s, x: seen.append((s, x.shape)),
                    n_hook_samples=3)
    assert seen == [(2, (3, 115, 80)), (4, (3, 115, 80))]
    x = run.generator(torch.randn(2, 16))
    assert x.shape == (2, 115, 80) and torch.isfinite(x).all()
    from xai_core.audio.config import MelConfig

    path = save_bundle(tmp_path / "g.safetensors", model=run.generator, kind="generator", mel=MelConfig(),
                       normaliser=norm, preset="tiny", metrics={"history": run.history})
    g = load_bundle(path, expected_kind="generator")
    assert torch.allclose(g.model(torch.zeros(1, 16)), run.generator(torch.zeros(1, 16)), atol=1e-5)


def test_generator_output_starts_at_the_data_mean(toy_tracks):
    train, _, _ = toy_tracks
    cfg = GanTrainConfig(preset="tiny", critic_preset="tiny", steps=1, batch_size=2, lr_g=1e-8, lr_d=1e-8,
                         ema_decay=0.0)
    run = train_gan(train, _norm(train), cfg, device="cpu")
    mean = float(torch.cat([t.features for t in train]).mean())
    out = run.generator(torch.zeros(4, 16)).detach()
    assert abs(float(out.mean()) - mean) < 0.5


def test_gan_resume_continues_from_the_saved_step(toy_tracks, tmp_path):
    train, _, _ = toy_tracks
    norm = _norm(train)
    kw = dict(preset="tiny", critic_preset="tiny", batch_size=4, checkpoint_every=3, loss="wgan-gp")
    full = train_gan(train, norm, GanTrainConfig(steps=6, **kw), device="cpu")
    ckpt = tmp_path / "g.pt"
    train_gan(train, norm, GanTrainConfig(steps=3, **kw), device="cpu", checkpoint=ckpt)
    resumed = train_gan(train, norm, GanTrainConfig(steps=6, **kw), device="cpu", checkpoint=ckpt, resume=True)
    assert resumed.resumed_from_step == 3
    _assert_same_weights(full.generator, resumed.generator, atol=1e-5)


def test_quality_report_floor_and_fractions(toy_tracks):
    train, _, test = toy_tracks
    norm = _norm(train)
    clf = SVDNet("tiny").eval()
    cfg = GanTrainConfig(preset="tiny", critic_preset="tiny", steps=1, batch_size=2)
    gen = train_gan(train, norm, cfg, device="cpu").generator
    real, labels, src = random_excerpts(test, 80, seed=0)
    assert real.shape == (80, 115, 80) and len(src) == 80 and "@" in src[0]
    rep = gan_quality_report(gen, clf, norm, real, n=40, seed=0)
    for k in ("fid_hidden", "fid_hidden_floor", "fid_logit", "fid_logit_floor"):
        assert rep[k] >= 0
    assert sum(rep["p_hist_generated"]) == pytest.approx(1.0, abs=1e-3)
    assert 0 <= rep["frac_vocal_generated"] <= 1
    # the generator set compared with itself would be 0; the floor compares disjoint halves
    with pytest.raises(ParameterError):
        gan_quality_report(gen, clf, norm, real[:50], n=40)


class _ScriptedScorer:
    """Returns scripted scores in call order (raw before EMA at each selection step)."""

    def __init__(self, scores):
        self.scores, self.calls = list(scores), 0

    def __call__(self, generator):
        assert not generator.training  # scored in eval mode
        self.calls += 1
        return self.scores[self.calls - 1] if self.calls <= len(self.scores) else 0.0


def test_selection_returns_the_best_scored_snapshot(toy_tracks):
    train, _, _ = toy_tracks
    norm = _norm(train)
    kw = dict(preset="tiny", critic_preset="tiny", batch_size=4, ema_decay=0.9)
    scorer = _ScriptedScorer([5.0, 4.0, -3.0, 1.0, 2.0, 2.0])  # step 2's raw generator is the best
    run = train_gan(train, norm, GanTrainConfig(steps=3, select_every=1, **kw), device="cpu", scorer=scorer)
    assert scorer.calls == 6
    assert run.selected == {"step": 2, "which": "raw", "score": -3.0}
    assert [s["step"] for s in run.selection] == [1, 2, 3] and run.selection[1] == {"step": 2, "raw": -3.0, "ema": 1.0}
    plain = train_gan(train, norm, GanTrainConfig(steps=2, **{**kw, "ema_decay": 0.0}), device="cpu")
    for a, b in zip(plain.generator.state_dict().values(), run.generator.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not any(p.requires_grad for p in run.generator.parameters()) and not run.generator.training


def test_selection_needs_a_scorer_and_survives_resume(toy_tracks, tmp_path):
    train, _, _ = toy_tracks
    norm = _norm(train)
    kw = dict(preset="tiny", critic_preset="tiny", batch_size=4, checkpoint_every=2, select_every=2)
    with pytest.raises(ParameterError, match="scorer"):
        train_gan(train, norm, GanTrainConfig(steps=2, **kw), device="cpu")
    with pytest.raises(ParameterError, match="select_every"):
        GanTrainConfig(select_every=-1)
    script = [3.0, 2.0, 9.0, 9.0]  # the best snapshot (step 2, EMA) is chosen before the interruption
    full = train_gan(train, norm, GanTrainConfig(steps=4, **kw), device="cpu", scorer=_ScriptedScorer(script))
    ckpt = tmp_path / "g.pt"
    train_gan(train, norm, GanTrainConfig(steps=2, **kw), device="cpu", checkpoint=ckpt,
              scorer=_ScriptedScorer(script[:2]))
    resumed = train_gan(train, norm, GanTrainConfig(steps=4, **kw), device="cpu", checkpoint=ckpt, resume=True,
                        scorer=_ScriptedScorer(script[2:]))
    assert resumed.selected == full.selected == {"step": 2, "which": "ema", "score": 2.0}
    assert resumed.selection == full.selection
    _assert_same_weights(full.generator, resumed.generator, atol=1e-6)


def test_fid_scorer_is_zero_on_the_generators_own_samples(toy_tracks):
    from xai_core.train.gan import fid_scorer, generate

    train, _, test = toy_tracks
    norm = _norm(train)
    clf = SVDNet("tiny").eval()
    gen = train_gan(train, norm, GanTrainConfig(preset="tiny", critic_preset="tiny", steps=1, batch_size=2),
                    device="cpu").generator
    own = fid_scorer(clf, norm, generate(gen, 64, seed=5), n=64, seed=5)
    assert own(gen) == pytest.approx(0.0, abs=1e-6)
    real, _, _ = random_excerpts(test, 64, seed=0)
    assert fid_scorer(clf, norm, real, n=64, seed=5)(gen) > 1e-3
    with pytest.raises(ParameterError):
        fid_scorer(clf, norm, real[:1], n=64)
