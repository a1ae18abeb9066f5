import pytest
import torch

from xai_core.checkpoints import load_bundle, save_bundle
from xai_core.errors import CancelledError, CheckpointError, ParameterError
from xai_core.train.augment import AugmentConfig
from xai_core.train.classifier import ClassifierTrainConfig, smoothed_bce, train_classifier
from xai_core.train.data import ExcerptPool, Track


def _cfg(**kw):
    base = dict(preset="tiny", epochs=2, batches_per_epoch=12, batch_size=8, lr=0.01, seed=0,
                augment=AugmentConfig(pitch_shift=0.1, time_stretch=0.1, filter_db=3.0), median_frames=5)
    base.update(kw)
    return ClassifierTrainConfig(**base)


def test_config_validation_names_the_value():
    with pytest.raises(ParameterError, match="lr_decay"):
        ClassifierTrainConfig(lr_decay=1.5)
    with pytest.raises(ParameterError, match="preset"):
        ClassifierTrainConfig(preset="huge")
    cfg = ClassifierTrainConfig()
    assert cfg.lr_at(2) == pytest.approx(0.01 * 0.85**2)
    assert ClassifierTrainConfig.from_dict(cfg.to_dict()) == cfg


def test_smoothed_targets():
    logits = torch.tensor([0.0, 0.0])
    labels = torch.tensor([1.0, 0.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.98, 0.02]))
    assert torch.allclose(smoothed_bce(logits, labels, 0.02), expected)


def test_excerpt_pool_labels_are_centre_frames():
    feats = torch.arange(50.0)[:, None].expand(50, 80).clone()  # frame index as value
    labels = (torch.arange(50) % 2).float()
    pool = ExcerptPool([Track("a", feats, labels)], width=7)
    x, y = pool.take(torch.tensor([0, 10, 49]))
    assert x.shape == (3, 7, 80)
    assert x[:, 3, 0].tolist() == [0.0, 10.0, 49.0]
    assert y.tolist() == [0.0, 0.0, 1.0]
    assert x[0, 0, 0] == 0.0  # padded with the track minimum
    assert torch.equal(pool.frames(), feats)


def test_training_lowers_the_loss_and_writes_a_loadable_bundle(toy_tracks, tmp_path):
    train, valid, _ = toy_tracks
    cfg = _cfg(epochs=3, batches_per_epoch=15, augment=AugmentConfig.none(), label_smoothing=0.0)
    torch.manual_seed(0)
    from xai_core.models import SVDNet
    from xai_core.train.data import ExcerptPool

    pool = ExcerptPool(train, width=115)
    x, y = pool.sample(64, generator=torch.Generator().manual_seed(9))
    run = train_classifier(train, valid, cfg, device="cpu")
    untrained = SVDNet("tiny").eval()
    with torch.no_grad():
        before = smoothed_bce(untrained(run.normaliser.apply(x)), y, 0.0)
        after = smoothed_bce(run.model(run.normaliser.apply(x)), y, 0.0)
    assert after < before
    assert len(run.history) == 3 and "valid" in run.history[-1]
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    path = save_bundle(tmp_path / "clf.safetensors", model=run.model, kind="classifier", mel=__import__(
        "xai_core.audio.config", fromlist=["MelConfig"]).MelConfig(), normaliser=run.normaliser, preset="tiny",
        metrics={"history": run.history})
    b = load_bundle(path, expected_kind="classifier")
    assert b.metrics["history"][-1]["epoch"] == 3
    assert torch.allclose(b.normaliser.mean, run.normaliser.mean)


def test_training_is_deterministic_and_resume_continues(toy_tracks, tmp_path):
    train, valid, _ = toy_tracks
    cfg = _cfg(epochs=2, validate=False)
    full = train_classifier(train, valid, cfg, device="cpu")
    ckpt = tmp_path / "c.pt"
    first = train_classifier(train, valid, _cfg(epochs=1, validate=False), device="cpu", checkpoint=ckpt)
    assert len(first.history) == 1
    resumed = train_classifier(train, valid, cfg, device="cpu", checkpoint=ckpt, resume=True)
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 2
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    with pytest.raises(CheckpointError, match="lr"):
        train_classifier(train, valid, _cfg(epochs=3, lr=0.5, validate=False), device="cpu", checkpoint=ckpt,
                         resume=True)


def test_cancel_through_progress(toy_tracks):
    train, valid, _ = toy_tracks
    with pytest.raises(CancelledError):
        train_classifier(train, valid, _cfg(), device="cpu", progress=lambda d, t, i: d < 10)


def test_backing_mix_only_adds_non_vocal_energy(toy_tracks):
    from xai_core.train.classifier import mix_backing

    train, _, _ = toy_tracks
    pool = ExcerptPool(train, width=115)
    _, y0 = pool.sample(64, generator=torch.Generator().manual_seed(0), label=0.0)
    assert (y0 == 0).all()
    x, y = pool.sample(16, generator=torch.Generator().manual_seed(1))
    same = mix_backing(x, pool, _cfg(mix_prob=0.0), generator=torch.Generator().manual_seed(2))
    assert torch.equal(same, x)
    mixed = mix_backing(x, pool, _cfg(mix_prob=1.0), generator=torch.Generator().manual_seed(2))
    assert mixed.shape == x.shape
    assert (mixed >= x - 1e-6).all() and (mixed > x + 1e-3).any()  # magnitudes only grow
    with pytest.raises(ParameterError, match="mix_prob"):
        _cfg(mix_prob=1.5)
