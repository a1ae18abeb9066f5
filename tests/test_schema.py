"""The validation layer of untrusted files (xai_core/schema.py and its use in checkpoints.py)."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from xai_core.checkpoints import build_checked, import_state_dict, load_bundle_bytes, load_torch_file
from xai_core.errors import CheckpointError
from xai_core.models.generator import GENERATOR_PRESETS, SpecGenerator
from xai_core.models.svdnet import SVDNET_PRESETS, SVDNet, SVDNetConfig
from xai_core.schema import (
    LIMITS,
    check_classifier_size,
    check_generator_size,
    check_tensor,
    parse_metadata,
    validate,
)


def _split(data: bytes) -> tuple[dict, dict]:
    from safetensors.torch import load

    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    return json.loads(header["__metadata__"]["vocal_xai"]), load(data)


def _join(meta, tensors) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={"vocal_xai": meta if isinstance(meta, str) else json.dumps(meta)})


@pytest.fixture(scope="module")
def clf_bytes(tiny_demo_dir) -> bytes:
    return (tiny_demo_dir / "classifier.safetensors").read_bytes()


@pytest.mark.parametrize("preset", sorted(SVDNET_PRESETS))
def test_closed_form_sizes_match_the_built_classifier(preset, monkeypatch):
    seen = []
    monkeypatch.setattr("xai_core.schema._check_size", lambda p, a, name: seen.append((p, a)))
    cfg = SVDNET_PRESETS[preset]
    check_classifier_size(cfg, name="x")
    model = SVDNet(cfg)
    assert seen[0][0] == sum(p.numel() for p in model.parameters())
    assert seen[0][1] == max(s[0] * s[1] * s[2] for s in model.layer_shapes().values() if len(s) == 3)


@pytest.mark.parametrize("preset", sorted(GENERATOR_PRESETS))
def test_closed_form_sizes_match_the_built_generator(preset, monkeypatch):
    seen = []
    monkeypatch.setattr("xai_core.schema._check_size", lambda p, a, name: seen.append((p, a)))
    cfg = GENERATOR_PRESETS[preset]
    check_generator_size(cfg, name="x")
    assert seen[0][0] == sum(p.numel() for p in SpecGenerator(cfg).parameters())


def test_presets_lie_well_inside_the_limits():
    for cfg in SVDNET_PRESETS.values():
        check_classifier_size(cfg, name="preset")
        validate(cfg.to_dict(), "classifier", name="preset")
    for cfg in GENERATOR_PRESETS.values():
        check_generator_size(cfg, name="preset")
        validate(cfg.to_dict(), "generator", name="preset")


@pytest.mark.parametrize("raw, match", [
    ("[1, 2]", "must be a JSON object, got list"),
    ("42", "must be a JSON object, got int"),
    ("null", "must be a JSON object, got NoneType"),
    ("{not json", "corrupt bundle metadata"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
    ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than 32"),
    ('{"x": "' + "a" * (5 * 1024**2) + '"}', "over the limit"),
])
def test_metadata_parsing_is_bounded(raw, match):
    with pytest.raises(CheckpointError, match=match):
        parse_metadata(raw, name="f")


@pytest.mark.parametrize("arch, match", [
    ({"conv_channels": [100_000, 4, 4, 4]}, r"arch\.conv_channels\[0\]: 100000 is greater than the maximum of 512"),
    ({"conv_channels": [4, 4, 4]}, "too short"),
    ({"conv_channels": [True, 4, 4, 4]}, "not of type 'integer'"),
    ({"conv_channels": "4,4,4,4"}, "not of type 'array'"),
    ({"dense_units": [10**9, 4]}, "greater than the maximum of 4096"),
    ({"n_frames": 10**7}, "greater than the maximum of 1024"),
    ({"n_frames": 2.5}, "not of type 'integer'"),
    ({"leak": float("nan")}, r"arch\.leak is not a finite number"),
    ({"leak": 1e30}, "greater than or equal to the maximum of 1"),
    ({"dropout": -0.1}, "less than the minimum of 0"),
    ({"colour": "red"}, "Additional properties are not allowed"),
])
def test_classifier_architecture_schema(arch, match):
    with pytest.raises(CheckpointError, match=match):
        validate(arch, "classifier", name="f", where="arch")


def test_size_limits_refuse_widths_that_pass_the_schema_one_by_one():
    big = SVDNetConfig(conv_channels=(512,) * 4, dense_units=(4096, 4096), n_frames=1024, n_mels=256)
    with pytest.raises(CheckpointError, match="parameters, over the limit"):
        check_classifier_size(big, name="f")
    wide = SVDNetConfig(conv_channels=(512, 512, 8, 8), dense_units=(8, 8), n_frames=1024, n_mels=256)
    with pytest.raises(CheckpointError, match="activation values, over the limit"):
        check_classifier_size(wide, name="f")


@pytest.mark.parametrize("t, match", [
    (torch.zeros(3, dtype=torch.int64), "only floating-point"),
    (torch.zeros(3, dtype=torch.bool), "only floating-point"),
    (torch.zeros(3, dtype=torch.complex64), "only floating-point"),
    (torch.zeros(3, dtype=torch.float8_e4m3fn), "only floating-point"),
    (torch.tensor([1.0, float("nan")]), "non-finite"),
    (torch.tensor([1.0, float("inf")]), "non-finite"),
    (torch.tensor([3e38]), "magnitude 3e\\+38, over the limit of 10000"),
])
def test_tensor_checks(t, match):
    with pytest.raises(CheckpointError, match=match):
        check_tensor("f", "w", t)


def test_build_checked_allocates_nothing_for_a_state_that_does_not_fit(monkeypatch):
    built = []

    def factory():
        m = SVDNet("tiny")
        built.append(next(m.parameters()).device.type)
        return m

    with pytest.raises(CheckpointError, match="shape mismatches"):
        build_checked(factory, {k: torch.zeros(1) for k in SVDNet("tiny").state_dict()}, "f")
    assert built == ["meta"]  # only the shape-only build on the meta device
    good = SVDNet("tiny").state_dict()
    m = build_checked(factory, good, "f")
    assert built == ["meta", "meta", "cpu"] and not m.training


def test_the_dos_bundle_is_refused_fast_and_before_any_allocation(clf_bytes, monkeypatch):
    """Tiny weights, metadata declaring a classifier of hundreds of millions of parameters: refused by the
    schema/size check before a module exists (the original took 2 minutes and 7.5 GB)."""
    import time

    meta, tensors = _split(clf_bytes)
    meta["arch"].update(conv_channels=[512] * 4, dense_units=[4096, 4096])
    data = _join(meta, tensors)
    monkeypatch.setattr("xai_core.checkpoints.SVDNet", lambda *a, **k: pytest.fail("a module was built"))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="parameters, over the limit"):
        load_bundle_bytes(data, name="dos.safetensors")
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("edit, match", [
    (lambda m, t: t.update({"normaliser.std": torch.full((80,), 1e-45)}), "normaliser std of"),
    (lambda m, t: t.update({"normaliser.std": -torch.ones(80)}), "normaliser std of"),
    (lambda m, t: t.update({"normaliser.mean": torch.zeros(40), "normaliser.std": torch.ones(40)}), "80 bands"),
    (lambda m, t: t.pop("normaliser.std"), "needs both"),
    (lambda m, t: m["mel"].update(n_mels=40), "80 mel bands, its MelConfig makes 40"),
    (lambda m, t: m["mel"].update(sample_rate="abc"), "mel.sample_rate: 'abc' is not of type 'integer'"),
    (lambda m, t: m.update(format_version="2"), "format_version: '2' is not of type 'integer'"),
    (lambda m, t: m.update(format_version=99), "newer than this program's"),
    (lambda m, t: m.update(metrics=[1]), "metrics: \\[1\\] is not of type 'object'"),
    (lambda m, t: m.update(provenance="x"), "provenance: 'x' is not of type 'object'"),
    (lambda m, t: m.setdefault("metrics", {}).setdefault("eval", {}).update(threshold=5), "threshold: 5 is greater"),
    (lambda m, t: m.setdefault("metrics", {}).setdefault("eval", {}).update(threshold="abc"), "threshold"),
    (lambda m, t: m.setdefault("metrics", {}).setdefault("eval", {}).update(median_frames=10**9), "median_frames"),
    (lambda m, t: t.update({"extra.x": torch.zeros(1)}), "unexpected tensors"),
    (lambda m, t: t.update({k: v.to(torch.uint8) for k, v in t.items() if k.startswith("model.")}), "floating"),
])
def test_bad_bundles_are_refused_with_the_field(clf_bytes, edit, match):
    meta, tensors = _split(clf_bytes)
    edit(meta, tensors)
    with pytest.raises(CheckpointError, match=match):
        load_bundle_bytes(_join(meta, tensors), name="bad.safetensors")


def test_a_honest_nan_metric_is_kept(clf_bytes):
    """A metric may be undefined (AUC of one class): NaN is refused in settings, not in metrics."""
    meta, tensors = _split(clf_bytes)
    meta.setdefault("metrics", {})["roc_auc_of_nothing"] = float("nan")
    b = load_bundle_bytes(_join(meta, tensors), name="ok.safetensors")
    assert b.metrics["roc_auc_of_nothing"] != b.metrics["roc_auc_of_nothing"]


def test_torch_files_are_bounded_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"w": Evil()}, evil)  # the zip format of torch.save with a pickled payload inside
    with pytest.raises(CheckpointError, match="nothing in it was executed"):
        load_torch_file(evil)
    assert not marker.exists()
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (2 * 1024**2))
    with pytest.raises(CheckpointError, match="compressed"):
        load_torch_file(bomb)
    weird = tmp_path / "ints.pt"
    torch.save({k: torch.zeros(v.shape, dtype=torch.int32) for k, v in SVDNet("tiny").state_dict().items()}, weird)
    with pytest.raises(CheckpointError, match="only floating-point"):
        import_state_dict(weird, kind="classifier", preset="tiny")
    assert LIMITS["bundle_bytes"] >= 64 * 1024**2
