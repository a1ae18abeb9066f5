import numpy as np
import pytest
import torch

from xai_core.audio.features import Normaliser, slice_excerpts
from xai_core.errors import ParameterError
from xai_core.models import SVDNet
from xai_core.train.evaluate import (
    binary_metrics,
    evaluate_classifier,
    frame_logits,
    median_smooth,
    roc_auc,
    tune_threshold,
)


def test_binary_metrics_hand_computed():
    pred = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    true = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    m = binary_metrics(pred, true)  # tp 3, fp 1, tn 2, fn 2
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 1, 2, 2)
    assert m["error"] == pytest.approx(3 / 8)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 5)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))


def test_roc_auc_hand_computed_with_ties():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    labels = np.array([0, 0, 1, 1, 1])
    # positive/negative pairs: 0.35>0.1, 0.35<0.4, 0.8>both, 0.4>0.1, 0.4=0.4 (half) -> 4.5 / 6
    assert roc_auc(scores, labels) == pytest.approx(4.5 / 6)
    assert np.isnan(roc_auc(scores, np.ones(5)))


def test_median_filter_removes_short_blips():
    p = np.array([0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1], dtype=float)
    s = median_smooth(p, 3)
    assert s.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert median_smooth(p, 1) is not None and np.array_equal(median_smooth(p, 1), p)


def test_threshold_tuning_minimises_error_and_prefers_near_half():
    prob = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
    y = np.array([0, 0, 1, 0, 1, 1])
    thr, err = tune_threshold(prob, y)
    assert err == pytest.approx(1 / 6)
    assert thr == pytest.approx(0.5)
    thr, err = tune_threshold(np.array([0.8, 0.9, 0.95]), np.array([0, 1, 1]))
    assert err == 0 and 0.8 < thr < 0.9


def test_toy_sequence_full_protocol():
    """Median filter + tuned threshold + metrics on a toy prediction sequence, by hand."""
    prob = np.array([0.2, 0.9, 0.1, 0.1, 0.8, 0.9, 0.2, 0.9, 0.9, 0.3])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
    s = median_smooth(prob, 3)
    assert s.tolist() == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.8, 0.8, 0.9, 0.9, 0.9, 0.3])
    thr, err = tune_threshold(s, y)
    assert err == 0.0
    m = binary_metrics(s > thr, y)
    assert m["error"] == 0 and m["f1"] == 1.0


@pytest.mark.parametrize("preset", ["tiny", "lite"])
def test_dense_frame_logits_equal_the_sliding_window(preset):
    torch.manual_seed(0)
    net = SVDNet(preset).eval()
    feats = torch.randn(140, 80) * 2 - 5  # (T, M)
    norm = Normaliser.fit(feats)
    ex, _ = slice_excerpts(feats, excerpt_frames=115, pad=True)  # (T, 115, 80)
    with torch.no_grad():
        ref = net(norm.apply(ex))  # (T,)
    dense = frame_logits(net, feats, norm, chunk_frames=37)
    assert dense.shape == (140,)
    assert torch.allclose(dense, ref, atol=1e-4, rtol=1e-4)


def test_evaluate_classifier_report(toy_tracks):
    _, valid, test = toy_tracks
    net = SVDNet("tiny")
    norm = Normaliser.fit(torch.cat([t.features for t in valid]))
    rep = evaluate_classifier(net, norm, valid=valid, test=test, median_frames=5)
    assert len(rep.per_file) == len(test)
    assert rep.test["frames"] == sum(t.frames for t in test)
    assert 0 <= rep.test["error"] <= 1 and 0 <= rep.test["roc_auc"] <= 1
    assert "ALL" in rep.table()
    fixed = evaluate_classifier(net, norm, valid=[], test=test, threshold=0.5, median_frames=5)
    assert fixed.threshold == 0.5 and np.isnan(fixed.valid_error)
    with pytest.raises(ParameterError):
        evaluate_classifier(net, norm, valid=[], test=test)
