import pytest
import torch

from xai_core.errors import ParameterError
from xai_core.models import (
    SpecDiscriminator,
    SpecGenerator,
    SVDNet,
    capture_activations,
    count_hooks,
)


def test_svdnet_paper_spatial_sizes_and_flat_features():
    net = SVDNet("paper")
    shapes = net.layer_shapes()
    assert shapes["conv1"] == (64, 113, 78)
    assert shapes["conv2"] == (32, 111, 76)
    assert shapes["pool1"] == (32, 37, 25)
    assert shapes["conv3"] == (128, 35, 23)
    assert shapes["conv4"] == (64, 33, 21)
    assert shapes["pool2"] == (64, 11, 7)
    assert net.config.flat_features == 4928
    assert shapes["fc1"] == (256,) and shapes["fc2"] == (64,) and shapes["logit"] == ()


def test_lite_has_same_topology_and_input():
    lite, paper = SVDNet("lite"), SVDNet("paper")
    assert list(lite.layer_shapes()) == list(paper.layer_shapes())
    assert lite(torch.zeros(2, 115, 80)).shape == (2,)
    assert sum(p.numel() for p in lite.parameters()) < sum(p.numel() for p in paper.parameters()) / 5


def test_svdnet_rejects_wrong_input_and_unknown_preset():
    with pytest.raises(ParameterError, match="115"):
        SVDNet("tiny")(torch.zeros(1, 100, 80))
    with pytest.raises(ParameterError, match="preset"):
        SVDNet("huge")


def test_svdnet_orthogonal_init():
    net = SVDNet("tiny")
    w = net.fc2[1].weight  # (4, 8): rows orthogonal
    gram = w @ w.T
    assert torch.allclose(gram, torch.diag(torch.diag(gram)), atol=1e-5)
    assert torch.count_nonzero(net.conv1[0].bias) == 0


def test_generator_output_shape_floor_and_crop():
    g = SpecGenerator("paper")
    x = g(torch.randn(3, 128))
    assert x.shape == (3, 115, 80)
    assert x.min() >= torch.log(torch.tensor(1e-7)) - 1e-6
    with pytest.raises(ParameterError, match="z must be"):
        g(torch.randn(3, 16))
    assert SpecGenerator("lite")(torch.randn(1, 128)).shape == (1, 115, 80)


def test_generator_is_differentiable_wrt_z():
    g = SpecGenerator("tiny")
    z = torch.randn(2, 16, requires_grad=True)
    g(z).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_discriminator_scores():
    for preset in ("tiny", "lite"):
        d = SpecDiscriminator(preset)
        assert d(torch.randn(4, 115, 80)).shape == (4,)


def test_capture_activations_records_and_removes_hooks():
    net = SVDNet("tiny").eval()
    before = count_hooks(net)
    with capture_activations(net, ["fc2", "pool2", "logit"]) as acts:
        out = net(torch.randn(2, 115, 80))
        assert count_hooks(net) == before + 3
    assert acts["fc2"].shape == (2, 4) and acts["pool2"].shape == (2, 4, 11, 7)
    assert torch.equal(acts["logit"], out)
    assert count_hooks(net) == before


def test_capture_activations_removes_hooks_when_body_raises():
    net = SVDNet("tiny")
    with pytest.raises(RuntimeError, match="boom"):
        with capture_activations(net, ["conv1", "fc1"]):
            raise RuntimeError("boom")
    assert count_hooks(net) == 0
    with pytest.raises(ParameterError, match="unknown layer"):
        with capture_activations(net, ["conv1", "nope"]):
            pass
    assert count_hooks(net) == 0
