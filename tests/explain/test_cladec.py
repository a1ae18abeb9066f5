"""ClaDec on tiny models: decoder shapes, the frozen classifier, losses, RefAE, evaluation split, bundles."""

from __future__ import annotations

import json

import pytest
import torch

from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser
from xai_core.checkpoints import Bundle, model_identity
from xai_core.errors import CancelledError, CheckpointError, DataError, ParameterError
from xai_core.explain.cladec import (
    CladecConfig,
    DecoderConfig,
    EvalConfig,
    LayerDecoder,
    decode,
    evaluate_decoders,
    layer_shapes,
    load_decoder,
    load_decoder_set,
    retrain_and_test,
    save_decoder,
    train_decoder,
)
from xai_core.models.hooks import count_hooks, forward_until
from xai_core.models.svdnet import SVDNET_PRESETS, SVDNet


def _classifier(seed: int = 0, preset: str = "tiny") -> Bundle:
    torch.manual_seed(seed)
    net = SVDNet(preset)
    net.reset_parameters(generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    norm = Normaliser.fit(-6 + 2 * torch.randn(64, 80, generator=g))
    net.eval()
    return Bundle(kind="classifier", model=net, mel=MelConfig(), normaliser=norm, preset=preset,
                  identity=model_identity(net))


def _data(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy excerpts: noise around -6, "vocal" ones with mel bands 30-45 raised by 3 nats."""
    g = torch.Generator().manual_seed(seed)
    x = -6.0 + torch.randn(n, 115, 80, generator=g)
    y = (torch.arange(n) % 2).float()
    x[:, :, 30:46] += 3.0 * y[:, None, None]
    return x, y


@pytest.mark.parametrize("preset", ["lite", "paper"])
def test_decoder_output_is_exactly_the_input_shape_for_every_layer(preset):
    arch = SVDNET_PRESETS[preset]
    net = SVDNet(arch).eval()
    assert layer_shapes(arch) == net.layer_shapes()
    x = torch.randn(2, 115, 80)
    for layer in SVDNet.layer_names:
        h = forward_until(net, layer, x)
        assert tuple(h.shape[1:]) == layer_shapes(arch)[layer]
        out = LayerDecoder(arch, DecoderConfig(layer=layer, width=0.25 if preset == "paper" else 1.0))(h)
        assert out.shape == (2, 115, 80), (preset, layer)
    assert count_hooks(net) == 0


def test_forward_until_stops_early_and_matches_the_full_pass():
    net = SVDNet("tiny").eval()
    x = torch.randn(3, 115, 80)
    from xai_core.models.hooks import capture_activations

    with capture_activations(net, ["conv2", "fc2"]) as acts:
        net(x)
    calls = []
    h = net.fc1.register_forward_hook(lambda *a: calls.append(1))
    try:
        assert torch.equal(forward_until(net, "conv2", x), acts["conv2"])
        assert not calls  # fc1 never ran
    finally:
        h.remove()
    assert torch.equal(forward_until(net, "fc2", x), acts["fc2"])
    assert count_hooks(net) == 0
    with pytest.raises(ParameterError, match="unknown layer 'nope'"):
        forward_until(net, "nope", x)


def test_configs_refuse_bad_values_naming_them():
    with pytest.raises(ParameterError, match="alpha .*1.0"):
        CladecConfig(alpha=1.0)
    with pytest.raises(ParameterError, match="alpha .*-0.1"):
        CladecConfig(alpha=-0.1)
    with pytest.raises(ParameterError, match="unknown layer 'conv9'"):
        CladecConfig(layer="conv9")
    with pytest.raises(ParameterError, match="variant 'vae'"):
        CladecConfig(variant="vae")
    with pytest.raises(ParameterError, match="steps"):
        CladecConfig(steps=0)
    with pytest.raises(ParameterError, match="n_test"):
        EvalConfig(n_test=1)
    assert CladecConfig(variant="refae", alpha=0.5).effective_alpha == 0.0


@pytest.mark.parametrize("variant", ["cladec", "random"])
def test_the_classifier_is_untouched_by_training(variant):
    clf = _classifier()
    clf.model.train()  # a caller's mode must come back as it was
    before = {k: v.clone() for k, v in clf.model.state_dict().items()}
    flags = [p.requires_grad for p in clf.model.parameters()]
    x, y = _data()
    clf.model.eval()
    with torch.no_grad():
        out_before = clf.model(clf.normaliser.apply(x))
    clf.model.train()
    seen_modes = []
    h = clf.model.fc1.register_forward_hook(lambda m, *_: seen_modes.append(m.training))
    try:
        train_decoder(clf, (x, y), CladecConfig(layer="conv4", variant=variant, alpha=0.5, steps=6, batch_size=8),
                      device="cpu")
    finally:
        h.remove()
    assert seen_modes and not any(seen_modes)  # eval mode (no dropout) inside the classifier term
    assert clf.model.training  # restored
    assert [p.requires_grad for p in clf.model.parameters()] == flags
    for k, v in clf.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in clf.model.parameters())
    clf.model.eval()
    with torch.no_grad():
        assert torch.equal(clf.model(clf.normaliser.apply(x)), out_before)
    assert count_hooks(clf.model) == 0


def test_alpha_zero_is_plain_mse(monkeypatch):
    import torch.nn.functional as F

    def boom(*a, **k):
        raise AssertionError("BCE must not be computed with alpha = 0")

    clf = _classifier()
    monkeypatch.setattr(F, "binary_cross_entropy_with_logits", boom)
    b = train_decoder(clf, _data(), CladecConfig(layer="fc2", alpha=0.0, steps=4, batch_size=8), device="cpu")
    assert b.metrics["train_loss"] == pytest.approx(b.metrics["train_mse"])
    assert "train_bce" not in b.metrics and b.alpha == 0.0


def test_the_loss_is_the_weighted_sum():
    clf = _classifier()
    b = train_decoder(clf, _data(), CladecConfig(layer="fc2", alpha=0.3, steps=1, batch_size=8), device="cpu")
    m = b.metrics
    assert m["train_loss"] == pytest.approx(0.7 * m["train_mse"] + 0.3 * m["train_bce"], rel=1e-5)


def test_a_few_steps_lower_the_loss():
    clf = _classifier()
    hist = []
    train_decoder(clf, _data(), CladecConfig(layer="conv2", variant="cladec", steps=60, batch_size=16, lr=3e-3),
                  device="cpu", progress=lambda d, t, info: hist.append(info["mse"]))
    assert hist[-1] < 0.7 * hist[0], hist


def test_refae_encoder_is_its_own_and_trains():
    clf = _classifier()
    b = train_decoder(clf, _data(), CladecConfig(layer="conv4", variant="refae", steps=5, batch_size=8),
                      device="cpu")
    enc = b.encoder
    assert enc is not None and enc is not clf.model
    ptrs = {p.data_ptr() for p in clf.model.parameters()}
    assert not ptrs & {p.data_ptr() for p in enc.parameters()}
    assert not torch.equal(enc.conv1[0].weight, clf.model.conv1[0].weight)
    fresh = SVDNet(clf.model.config)
    from xai_core.explain.cladec.train import ENCODER_SEED_OFFSET

    fresh.reset_parameters(generator=torch.Generator().manual_seed(ENCODER_SEED_OFFSET))
    assert not torch.equal(enc.conv4[0].weight, fresh.conv4[0].weight)  # trained end to end
    assert torch.equal(enc.fc1[2].weight, fresh.fc1[2].weight)  # beyond the layer: never used, never changed
    rnd = train_decoder(clf, _data(), CladecConfig(layer="conv4", variant="random", steps=2, batch_size=8),
                        device="cpu")
    assert torch.equal(rnd.encoder.conv4[0].weight, fresh.conv4[0].weight)  # the random encoder is frozen


def test_resume_continues_exactly(tmp_path):
    clf = _classifier()
    data = _data()
    cfg = CladecConfig(layer="fc2", steps=20, batch_size=8, checkpoint_every=10)
    full = train_decoder(clf, data, cfg, device="cpu")
    ck = tmp_path / "d.ckpt.pt"

    def stop_at_10(done, total, info):
        return done < 10

    with pytest.raises(CancelledError):
        train_decoder(clf, data, cfg, device="cpu", checkpoint=ck, progress=stop_at_10)
    resumed = train_decoder(clf, data, cfg, device="cpu", checkpoint=ck, resume=True)
    for k, v in full.decoder.state_dict().items():
        assert torch.allclose(v, resumed.decoder.state_dict()[k], atol=1e-6), k
    with pytest.raises(CheckpointError, match="other settings"):
        train_decoder(clf, data, CladecConfig(layer="fc2", steps=20, batch_size=8, alpha=0.5), device="cpu",
                      checkpoint=ck, resume=True)


def test_bundle_round_trip_and_identity_check(tmp_path):
    clf = _classifier()
    b = train_decoder(clf, _data(), CladecConfig(layer="conv4", variant="refae", steps=3, batch_size=8),
                      device="cpu")
    path = save_decoder(tmp_path / "conv4_refae.safetensors", b, classifier=clf)
    back = load_decoder(path, classifier=clf)
    assert back.variant == "refae" and back.layer == "conv4" and back.classifier_identity == clf.identity
    x = _data(4)[0]
    r1, r2 = decode(clf, [b], x, device="cpu"), decode(clf, [back], x, device="cpu")
    assert torch.allclose(r1.recon[("conv4", "refae")], r2.recon[("conv4", "refae")], atol=1e-5)
    other = _classifier(seed=1)
    with pytest.raises(CheckpointError, match="trained for classifier"):
        load_decoder(path, classifier=other)
    with pytest.raises(CheckpointError, match="trained for classifier"):
        decode(other, [back], x, device="cpu")
    lite = _classifier(preset="lite")
    with pytest.raises(CheckpointError, match="architecture"):
        load_decoder(path, classifier=lite)
    # float16 storage halves the file and changes the reconstruction by little
    half = save_decoder(tmp_path / "half.safetensors", b, classifier=clf, dtype=torch.float16)
    assert half.stat().st_size < 0.7 * path.stat().st_size
    r3 = decode(clf, [load_decoder(half, classifier=clf)], x, device="cpu")
    assert torch.allclose(r1.recon[("conv4", "refae")], r3.recon[("conv4", "refae")], atol=0.05)


def _rewrite(src, dst, edit):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), "pt") as f:
        meta = json.loads(f.metadata()["vocal_xai"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(meta, tensors)
    save_file(tensors, str(dst), metadata={"vocal_xai": json.dumps(meta)})
    return dst


@pytest.mark.parametrize("edit, match", [
    (lambda m, t: m.update(alpha=5), "alpha"),
    (lambda m, t: m.update(layer="conv9"), "layer"),
    (lambda m, t: m.update(variant="vae"), "variant"),
    (lambda m, t: m["decoder"].update(width=1e9), "width"),
    (lambda m, t: m["arch"].update(conv_channels=[10**9, 4, 4, 4]), "conv_channels"),
    (lambda m, t: m["arch"].update(n_frames="115"), "n_frames"),
    (lambda m, t: m.update(arch=[1, 2]), "arch"),
    (lambda m, t: m["classifier"].update(identity="x"), "identity"),
    (lambda m, t: m.update(train_config={"layer": "fc2", "bogus": 1}), "bogus"),
    (lambda m, t: m.update(kind="classifier"), "expected a 'decoder'"),
    (lambda m, t: t.update({k: v.to(torch.int32) for k, v in t.items() if k.startswith("decoder.")}), "dtype"),
    (lambda m, t: t.update({k: torch.full_like(v, float("nan")) for k, v in t.items()
                            if k.startswith("decoder.")}), "non-finite"),
    (lambda m, t: t.pop(next(k for k in list(t) if k.startswith("decoder."))), "missing keys"),
])
def test_bad_decoder_bundles_are_refused(tmp_path, edit, match):
    clf = _classifier()
    b = train_decoder(clf, _data(), CladecConfig(layer="fc2", steps=1, batch_size=4), device="cpu")
    good = save_decoder(tmp_path / "good.safetensors", b, classifier=clf)
    bad = _rewrite(good, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=match):
        load_decoder(bad, classifier=clf)


def test_corrupt_and_missing_files_and_folders(tmp_path):
    clf = _classifier()
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_decoder(tmp_path / "junk.safetensors", classifier=clf)
    with pytest.raises(CheckpointError, match="no decoder for this classifier"):
        load_decoder_set(tmp_path, classifier=clf)
    with pytest.raises(CheckpointError, match="no such decoder folder"):
        load_decoder_set(tmp_path / "nope", classifier=clf)
    b = train_decoder(clf, _data(), CladecConfig(layer="fc2", steps=1, batch_size=4), device="cpu")
    save_decoder(tmp_path / "fc2_cladec.safetensors", b, classifier=clf)
    s = load_decoder_set(tmp_path, classifier=clf)
    assert s.layers == ["fc2"] and "junk.safetensors" in s.skipped


def test_bad_data_and_inputs_are_clear_errors():
    clf = _classifier()
    with pytest.raises(DataError, match="no training data"):
        train_decoder(clf, [], CladecConfig(steps=1), device="cpu")
    with pytest.raises(DataError, match="no excerpts"):
        train_decoder(clf, (torch.zeros(0, 115, 80), torch.zeros(0)), CladecConfig(steps=1), device="cpu")
    b = train_decoder(clf, _data(), CladecConfig(layer="fc2", steps=1, batch_size=4), device="cpu")
    with pytest.raises(ParameterError, match=r"\(B, 115, 80\)"):
        decode(clf, [b], torch.zeros(2, 50, 80), device="cpu")
    with pytest.raises(ParameterError, match="non-finite"):
        decode(clf, [b], torch.full((1, 115, 80), float("nan")), device="cpu")


def test_decode_result_shapes_and_summary():
    clf = _classifier()
    ds = [train_decoder(clf, _data(), CladecConfig(layer=layer, variant=v, steps=2, batch_size=4), device="cpu")
          for layer in ("conv2", "fc2") for v in ("cladec", "refae")]
    x = _data(3)[0]
    r = decode(clf, ds, x, device="cpu")
    assert r.keys == [("conv2", "cladec"), ("conv2", "refae"), ("fc2", "cladec"), ("fc2", "refae")]
    for k in r.keys:
        assert r.recon[k].shape == (3, 115, 80) and r.prob[k].shape == (3,) and r.mse[k].shape == (3,)
    s = r.summary()
    assert set(s) == {"p_vocal/input"} | {f"{p}/{a}/{b}" for p in ("p_vocal", "mse") for a, b in r.keys}
    assert all(isinstance(v, float) for v in s.values())


def test_retraining_is_tested_on_the_test_split():
    """Training labels follow one rule, test labels the opposite one: an honest evaluation scores the
    retrained classifier badly; one that tested on the training excerpts again would score it well."""
    torch.manual_seed(0)
    arch = SVDNET_PRESETS["tiny"]
    x, y = _data(64, seed=3)
    xt, yt = _data(64, seed=4)
    norm = Normaliser.fit(x.reshape(-1, 80))
    cfg = EvalConfig(steps=150, batch_size=16, lr=3e-3)
    on_train = retrain_and_test(arch, norm.apply(x), y, norm.apply(x), y, cfg, device=torch.device("cpu"))
    flipped = retrain_and_test(arch, norm.apply(x), y, norm.apply(xt), 1 - yt, cfg, device=torch.device("cpu"))
    assert on_train["error"] < 0.2, on_train
    assert flipped["error"] > 0.8, flipped


def test_evaluate_decoders_reconstructs_each_split_and_reports_every_row(monkeypatch):
    import xai_core.explain.cladec.evaluate as ev

    clf = _classifier()
    ds = [train_decoder(clf, _data(), CladecConfig(layer="fc2", variant=v, steps=2, batch_size=4), device="cpu")
          for v in ("cladec", "refae", "random")]
    train, test = _data(32, seed=5), _data(24, seed=6)
    seen = []
    real = ev.retrain_and_test

    def spy(arch, trx, tr_y, tex, te_y, cfg, **kw):
        seen.append((trx.shape[0], tex.shape[0], te_y.clone()))
        return real(arch, trx, tr_y, tex, te_y, cfg, **kw)

    monkeypatch.setattr(ev, "retrain_and_test", spy)
    res = evaluate_decoders(clf, ds, train=train, test=test, config=EvalConfig(steps=3, batch_size=8),
                            device="cpu")
    assert [(a, b) for a, b, _ in seen] == [(32, 24)] * 4  # input + three decoders: train on train, test on test
    assert all(torch.equal(t, test[1]) for _, _, t in seen)
    assert [(r["layer"], r["variant"]) for r in res.rows] == [("fc2", "cladec"), ("fc2", "refae"), ("fc2", "random")]
    for r in res.rows:
        assert 0 <= r["retrained_error"] <= 1 and r["mse"] > 0 and 0 <= r["agreement"] <= 1
    assert set(res.claim()["fc2"]) == {"cladec_more_informative", "refae_reconstructs_better", "cladec_beats_random"}
    assert res.csv().count("\n") == 2 + 3 + 1
    again = type(res).from_dict(json.loads(json.dumps(res.to_dict())))
    assert again.rows == res.rows and again.original == res.original
    assert "retrained" in res.format()


def test_out_of_device_memory_is_a_clear_error(monkeypatch):
    clf = _classifier()
    b = train_decoder(clf, _data(), CladecConfig(layer="fc2", steps=1, batch_size=4), device="cpu")

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(b.decoder, "forward", oom)
    with pytest.raises(ParameterError, match="decoding 2 excerpts ran out of device memory"):
        decode(clf, [b], _data(2)[0], device="cpu")
    import xai_core.explain.cladec.train as tr

    monkeypatch.setattr(tr.LayerDecoder, "forward", oom)
    with pytest.raises(ParameterError, match="fc2 .*batch 8.* ran out of device memory; lower the batch size"):
        train_decoder(clf, _data(), CladecConfig(layer="fc2", steps=2, batch_size=8), device="cpu")
    assert count_hooks(clf.model) == 0 and not clf.model.training
