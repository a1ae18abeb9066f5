"""The model-randomisation check of activation maximisation (tiny models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xai_core.actmax import AMConfig
from xai_core.cli import main
from xai_core.errors import CancelledError, ParameterError
from xai_core.explain.sanity import am_randomisation_check, randomise, spearman_rows, weighted_layers

CFG = AMConfig(n_examples=2, n_iter=3)


def test_randomise_reinitialises_exactly_the_requested_layers_and_leaves_the_original(tiny_bundles):
    clf, _, _ = tiny_bundles
    before = {k: v.clone() for k, v in clf.model.state_dict().items()}
    order = weighted_layers(clf.model)
    assert order == ["logit", "fc2", "fc1", "conv4", "conv3", "conv2", "conv1"]
    rnd = randomise(clf.model, order[:2], seed=0)
    for k, v in clf.model.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
        changed = not torch.equal(rnd.state_dict()[k], v)
        if k.split(".")[0] in ("logit", "fc2") and k.endswith("weight"):
            assert changed, k
        elif k.split(".")[0] not in ("logit", "fc2"):
            assert not changed, k
    again = randomise(clf.model, order[:2], seed=0)
    assert all(torch.equal(a, b) for a, b in zip(rnd.state_dict().values(), again.state_dict().values(), strict=True))


def test_spearman_rows_matches_scipy_and_a_constant_row_is_zero():
    from scipy.stats import spearmanr

    g = np.random.default_rng(0)
    a, b = g.normal(size=(3, 40)), g.normal(size=(3, 40))
    b[1] = a[1] * 2 + 1  # a monotone transform: 1
    got = spearman_rows(a, b)
    for i in range(3):
        assert got[i] == pytest.approx(spearmanr(a[i], b[i]).statistic, abs=1e-12)
    assert spearman_rows(a[:1], np.zeros((1, 40)))[0] == 0.0


def test_am_check_compares_every_stage_and_keeps_the_bundles(tiny_bundles):
    clf, gen, ref = tiny_bundles
    before = {k: v.clone() for k, v in clf.model.state_dict().items()}
    calls = []
    res = am_randomisation_check(clf, gen, CFG, reference=ref, n_reference=6, device="cpu",
                                 progress=lambda d, t, i: calls.append((d, t, i["stage"])))
    assert calls[0] == (1, 8, "trained") and calls[-1] == (8, 8, "logit..conv1") and len(calls) == 8
    assert res.stages[0] == "logit" and res.stages[-1] == "logit..conv1" and len(res.stages) == 7
    for arr in (res.correlation, res.change_correlation, res.level_db, res.response):
        assert arr.shape == (7, 2) and np.isfinite(arr).all()
    assert (np.abs(res.correlation) <= 1).all() and (res.level_db >= 0).all()
    assert len(res.fid) == 7 and res.fid_trained is not None and res.fid_trained >= 0
    # the trained run is plain AM with the same seeds; the response column re-judges with the trained model
    torch.testing.assert_close(torch.as_tensor(res.response_trained), res.trained.response_best, atol=1e-5, rtol=1e-5)
    d = res.to_dict()
    assert d["passes"] == res.passes and len(d["correlation"]) == 7 and "verdict" in res.format()
    assert all(torch.equal(v, before[k]) for k, v in clf.model.state_dict().items())
    # same seeds, same numbers
    again = am_randomisation_check(clf, gen, CFG, reference=None, device="cpu")
    np.testing.assert_allclose(again.correlation, res.correlation)
    assert again.fid == [] and again.fid_trained is None


def test_a_model_that_does_not_matter_fails_the_check(tiny_bundles, monkeypatch):
    """If AM's output ignored the classifier (here: zero optimisation steps' worth of change, lr ~ 0), the
    examples and the trained model's examples are the same: correlation 1, the check fails."""
    clf, gen, _ = tiny_bundles
    res = am_randomisation_check(clf, gen, AMConfig(n_examples=2, n_iter=1, lr=1e-12), device="cpu")
    assert res.correlation.min() > 0.999 and not res.passes
    assert "examples FAIL" in res.format()


def test_bad_input_and_cancel(tiny_bundles):
    clf, gen, _ = tiny_bundles
    with pytest.raises(ParameterError, match="unknown FID feature layer 'nope'"):
        am_randomisation_check(clf, gen, CFG, fid_feature="nope", device="cpu")
    with pytest.raises(CancelledError, match="after 1 of 8"):
        am_randomisation_check(clf, gen, CFG, device="cpu", progress=lambda d, t, i: False)
    with pytest.raises(ParameterError):
        am_randomisation_check(gen, gen, CFG, device="cpu")


def test_cli_sanity_am_writes_the_report(tiny_demo_dir, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["sanity", "am", "--demo-dir", str(tiny_demo_dir), "--examples", "2", "--iters", "2",
                 "--n-reference", "4", "--device", "cpu", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "AM randomisation check" in text and "verdict" in text
    doc = json.loads(out.read_text())
    assert len(doc["stages"]) == 7 and len(doc["fid"]) == 7 and isinstance(doc["passes"], bool)
    with pytest.raises(SystemExit) as exc:  # argparse: out of range, exit status 2
        main(["sanity", "am", "--demo-dir", str(tiny_demo_dir), "--iters", "0", "--no-reference", "--device", "cpu"])
    assert exc.value.code == 2
