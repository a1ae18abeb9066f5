import pytest
import torch

from xai_core.checkpoints import load_bundle, save_bundle
from xai_core.errors import CancelledError, CheckpointError, DataError, ParameterError
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


def test_pool_cuts_stems_in_the_mixture_layout(toy_tracks):
    from tests.train.conftest import with_stems

    train = with_stems(toy_tracks[0])
    pool = ExcerptPool(train, width=15)
    assert pool.has_stems and not ExcerptPool(toy_tracks[0], width=15).has_stems
    index = pool.draw(32, generator=torch.Generator().manual_seed(0))
    x, _ = pool.take(index)
    v, a = pool.take_stem("voice", index), pool.take_stem("accomp", index)
    assert v.shape == a.shape == x.shape == (32, 15, 80)
    assert torch.allclose(x, 0.5 * torch.logaddexp(2 * v, 2 * a), atol=1e-5)
    with pytest.raises(DataError, match="stem"):
        ExcerptPool(toy_tracks[0], width=15).take_stem("voice", index)
    # a pool mixing tracks with and without stems has none (remixing needs all of them)
    assert not ExcerptPool(train + toy_tracks[1], width=15).has_stems


def test_remix_keeps_the_voice_to_accompaniment_ratio_and_the_label():
    from xai_core.train.classifier import remix_stems

    # three tracks of steady accompaniment at -2, -1 and 0 nats (0, 8.7, 17.4 dB: within the level
    # clamp) and a steady voice at -2.5 where labelled: every excerpt's voice-to-accompaniment
    # ratio is known exactly
    tracks = []
    for k, level in enumerate((-2.0, -1.0, 0.0)):
        labels = (torch.arange(300) // 50 % 2).float()  # (T,) alternating 50-frame blocks
        accomp = torch.full((300, 80), level)
        voice = torch.where(labels[:, None] > 0, torch.tensor(-2.5), torch.tensor(-30.0)).expand(300, 80)
        tracks.append(Track(f"t{k}", 0.5 * torch.logaddexp(2 * voice, 2 * accomp), labels, voice=voice,
                            accomp=accomp))
    pool = ExcerptPool(tracks, width=5)
    g = torch.Generator().manual_seed(3)
    index = pool.draw(256, generator=g)
    index = index[(pool.centres[index] % 304 > 4) & (pool.centres[index] % 304 < 300)]  # no padding
    x, y = pool.take(index)
    assert torch.equal(remix_stems(x, index, pool, _cfg(remix_prob=0.0), generator=g), x)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    out = remix_stems(x, index, pool, _cfg(remix_prob=1.0, remix_jitter_db=0.0), generator=g1)
    other = pool.draw(len(index), generator=g2)  # the excerpts whose accompaniment remix_stems took
    new, own = pool.take_stem("accomp", other)[:, 2], pool.take_stem("accomp", index)[:, 2]  # (B, M)
    inside = (pool.centres[other] % 304 > 4) & (pool.centres[other] % 304 < 300)
    assert (new[inside] != own[inside]).any()  # the accompaniments did change level
    # same ratio over the new accompaniment as over the old one, wherever the voice sings
    ratio_before, ratio_after = x[:, 2] - own, out[:, 2] - new  # (B, M)
    sing = (y > 0) & inside
    assert sing.sum() > 20
    assert torch.allclose(ratio_after[sing], ratio_before[sing], atol=1e-5)
    # without a voice, the remix is the other excerpt's accompaniment (the label 0 stays true)
    quiet = (y == 0) & inside
    assert torch.allclose(out[quiet, 2], new[quiet], atol=1e-5)
    jittered = remix_stems(x, index, pool, _cfg(remix_prob=1.0, remix_jitter_db=6.0),
                           generator=torch.Generator().manual_seed(5))
    moved = (jittered[:, 2] - new - ratio_before)[sing].abs()  # how far the ratio moved
    assert moved.max() <= 6.0 * 0.1151293 + 1e-4 and moved.max() > 1.0 * 0.1151293  # within +-6 dB
    with pytest.raises(ParameterError, match="remix_prob"):
        _cfg(remix_prob=-0.1)
    with pytest.raises(ParameterError, match="remix_jitter_db"):
        _cfg(remix_jitter_db=30.0)


def test_power_sum_of_stems_is_closer_to_the_mixture_than_the_magnitude_sum():
    # what remix_stems relies on, with the real front end on two independent signals
    from xai_core.audio.features import log_mel

    g = torch.Generator().manual_seed(0)
    t = torch.arange(22050 * 2) / 22050
    voice = 0.3 * torch.sin(2 * torch.pi * 220 * t * (1 + 0.02 * torch.sin(2 * torch.pi * 5 * t)))
    accomp = 0.2 * torch.randn(t.shape, generator=g)
    v, a, m = log_mel(voice), log_mel(accomp), log_mel(voice + accomp)
    power = (0.5 * torch.logaddexp(2 * v, 2 * a) - m).abs().mean()
    magnitude = (torch.logaddexp(v, a) - m).abs().mean()
    assert power < 0.8 * magnitude


def test_training_with_remix_needs_stems_and_learns(toy_tracks, tmp_path):
    from tests.train.conftest import with_stems

    train, valid, _ = toy_tracks
    with pytest.raises(ParameterError, match="--stems"):
        train_classifier(train, valid, _cfg(remix_prob=0.5), device="cpu")
    run = train_classifier(with_stems(train), with_stems(valid), _cfg(remix_prob=0.5, epochs=3, batches_per_epoch=15),
                           device="cpu", checkpoint=tmp_path / "c.pt")
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    # a checkpoint written before remixing existed (no remix keys) resumes with the defaults
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    from xai_core.train.classifier import _compatible
    old = {k: v for k, v in state["config"].items() if not k.startswith("remix")}
    assert _compatible(old, _cfg(remix_prob=0.0, epochs=3, batches_per_epoch=15)) == []
    assert _compatible(old, _cfg(remix_prob=0.5, epochs=3, batches_per_epoch=15)) == ["remix_prob"]


def test_weight_average_is_returned_validated_and_resumes(toy_tracks, tmp_path):
    train, valid, _ = toy_tracks
    plain = train_classifier(train, valid, _cfg(epochs=2), device="cpu")
    run = train_classifier(train, valid, _cfg(epochs=2, ema_decay=0.9), device="cpu")
    assert plain.raw_model is None and run.raw_model is not None
    # the average does not touch the SGD trajectory: the iterate equals the run without averaging
    for (k, a), b in zip(plain.model.state_dict().items(), run.raw_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not torch.equal(run.model.conv1[0].weight, run.raw_model.conv1[0].weight)
    assert all("valid_ema" in h and "valid" in h for h in run.history)
    assert run.model.training is False and not any(p.requires_grad for p in run.model.parameters())
    # resume restores the average as well as the iterate
    ckpt = tmp_path / "e.pt"
    train_classifier(train, valid, _cfg(epochs=1, ema_decay=0.9), device="cpu", checkpoint=ckpt)
    resumed = train_classifier(train, valid, _cfg(epochs=2, ema_decay=0.9), device="cpu", checkpoint=ckpt,
                               resume=True)
    for (k, a), b in zip(run.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    with pytest.raises(CheckpointError, match="ema_decay"):
        train_classifier(train, valid, _cfg(epochs=3, ema_decay=0.5), device="cpu", checkpoint=ckpt, resume=True)
    with pytest.raises(ParameterError, match="ema_decay"):
        ClassifierTrainConfig(ema_decay=1.0)


def test_weight_average_is_the_running_lerp_of_the_iterates(toy_tracks):
    """With decay d and a single batch the average is d * init + (1 - d) * iterate."""
    train, valid, _ = toy_tracks
    init = train_classifier(train, valid, _cfg(epochs=1, batches_per_epoch=1, lr=1e-12, validate=False),
                            device="cpu").model  # one step with a vanishing lr: the initial weights
    run = train_classifier(train, valid, _cfg(epochs=1, batches_per_epoch=1, ema_decay=0.75, validate=False),
                           device="cpu")
    for (k, a), w0, w1 in zip(run.model.state_dict().items(), init.state_dict().values(),
                              run.raw_model.state_dict().values(), strict=True):
        assert torch.allclose(a, 0.75 * w0 + 0.25 * w1, atol=1e-6), k
