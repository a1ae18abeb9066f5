import json
import pickle

import pytest
import torch

from xai_core.audio import MelConfig, Normaliser
from xai_core.checkpoints import (
    check_compatible,
    describe_bundle,
    import_state_dict,
    load_bundle,
    load_bundle_bytes,
    model_identity,
    save_bundle,
    update_bundle_metadata,
)
from xai_core.cli import main as cli_main
from xai_core.errors import CheckpointError
from xai_core.models import SpecGenerator, SVDNet


@pytest.fixture
def clf_path(tmp_path):
    torch.manual_seed(1)
    net = SVDNet("tiny")
    norm = Normaliser(torch.linspace(-8, 0, 80), torch.linspace(1, 2, 80))
    p = save_bundle(tmp_path / "clf.safetensors", model=net, kind="classifier", mel=MelConfig(),
                    normaliser=norm, preset="tiny", metrics={"error": 0.07}, provenance={"seed": 3})
    return p, net, norm


def test_round_trip_is_bit_exact(clf_path):
    p, net, norm = clf_path
    b = load_bundle(p, expected_kind="classifier")
    for k, v in net.state_dict().items():
        assert torch.equal(b.model.state_dict()[k], v), k
    assert torch.equal(b.normaliser.mean, norm.mean) and torch.equal(b.normaliser.std, norm.std)
    assert b.mel == MelConfig() and b.preset == "tiny"
    assert b.metrics == {"error": 0.07} and b.provenance == {"seed": 3}
    assert b.identity == model_identity(net)
    assert not b.model.training
    x = torch.randn(2, 115, 80)
    net.eval()
    assert torch.equal(b.model(x), net(x))


def test_float16_storage_loads_as_float32(tmp_path):
    net = SVDNet("tiny")
    p = save_bundle(tmp_path / "h.safetensors", model=net, kind="classifier", mel=MelConfig(),
                    normaliser=None, dtype=torch.float16)
    b = load_bundle(p)
    w = b.model.conv1[0].weight
    assert w.dtype == torch.float32
    assert torch.allclose(w, net.conv1[0].weight, atol=1e-3)
    assert p.stat().st_size < 0.6 * save_bundle(tmp_path / "f.safetensors", model=net, kind="classifier",
                                                mel=MelConfig(), normaliser=None).stat().st_size


def test_update_metadata_keeps_weights(clf_path):
    p, net, _ = clf_path
    update_bundle_metadata(p, metrics={"f1": 0.9})
    b = load_bundle(p)
    assert b.metrics == {"error": 0.07, "f1": 0.9}
    assert b.identity == model_identity(net)


def test_wrong_kind_is_rejected(clf_path):
    with pytest.raises(CheckpointError, match="expected a generator"):
        load_bundle(clf_path[0], expected_kind="generator")


def test_truncated_file(clf_path, tmp_path):
    data = clf_path[0].read_bytes()
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors"):
        load_bundle(bad)
    with pytest.raises(CheckpointError):
        load_bundle_bytes(data[:5])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_payload_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_bundle(bad)
    assert not marker.exists()
    # the same payload as a "state dict" import: weights_only refuses it
    bad_pt = tmp_path / "evil.pt"
    bad_pt.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        import_state_dict(bad_pt, kind="classifier", preset="tiny")
    assert not marker.exists()


def _rewrite(path, out, *, drop=None, reshape=None, meta_edit=None):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["vocal_xai"])
    if drop:
        del tensors[drop]
    if reshape:
        tensors[reshape] = torch.zeros(3, 3)
    if meta_edit:
        meta_edit(meta)
    save_file(tensors, str(out), metadata={"vocal_xai": json.dumps(meta)})
    return out


def test_missing_and_misshaped_keys_are_listed(clf_path, tmp_path):
    p = clf_path[0]
    with pytest.raises(CheckpointError, match=r"missing keys \['fc2.1.bias'\]"):
        load_bundle(_rewrite(p, tmp_path / "a.safetensors", drop="model.fc2.1.bias"))
    with pytest.raises(CheckpointError, match=r"conv1.0.weight: file \(3, 3\)"):
        load_bundle(_rewrite(p, tmp_path / "b.safetensors", reshape="model.conv1.0.weight"))


def test_bad_metadata(clf_path, tmp_path):
    p = clf_path[0]
    with pytest.raises(CheckpointError, match="kind"):
        load_bundle(_rewrite(p, tmp_path / "c.safetensors", meta_edit=lambda m: m.update(kind="toaster")))
    with pytest.raises(CheckpointError, match=r"mel\.hop_length: -3 is less than the minimum of 1"):
        load_bundle(_rewrite(p, tmp_path / "d.safetensors",
                             meta_edit=lambda m: m["mel"].update(hop_length=-3)))
    from safetensors.torch import save_file
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="without Vocal XAI metadata"):
        load_bundle(plain)


def test_import_state_dict(tmp_path):
    net = SVDNet("tiny")
    pt = tmp_path / "w.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, pt)
    b = import_state_dict(pt, kind="classifier", preset="tiny")
    assert b.identity == model_identity(net)
    torch.save({k: v for k, v in net.state_dict().items() if "fc1" not in k}, pt)
    with pytest.raises(CheckpointError, match=r"missing keys \['fc1.2.bias', 'fc1.2.weight'\]"):
        import_state_dict(pt, kind="classifier", preset="tiny")
    torch.save(net.state_dict(), pt)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        import_state_dict(pt, kind="classifier", preset="lite")
    pt.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="weights-only"):
        import_state_dict(pt, kind="classifier", preset="tiny")


def test_compatibility_and_description(tmp_path, clf_path):
    clf = load_bundle(clf_path[0])
    gp = save_bundle(tmp_path / "g.safetensors", model=SpecGenerator("tiny"), kind="generator",
                     mel=MelConfig(), normaliser=None, preset="tiny")
    gen = load_bundle(gp)
    check_compatible(clf, gen)
    other = save_bundle(tmp_path / "g2.safetensors", model=SpecGenerator("tiny"), kind="generator",
                        mel=MelConfig(hop_length=256), normaliser=None)
    with pytest.raises(CheckpointError, match="MelConfigs differ"):
        check_compatible(clf, load_bundle(other))
    text = describe_bundle(clf)
    assert "pool2" in text and "(4, 11, 7)" in text and "error: 0.07" in text


def test_info_cli(clf_path, capsys):
    assert cli_main(["info", str(clf_path[0])]) == 0
    out = capsys.readouterr().out
    assert "classifier bundle" in out and "fc2" in out
    assert cli_main(["info", "/nonexistent.safetensors"]) == 1  # a bad file: exit status 1
