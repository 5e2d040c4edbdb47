"""Score fusion on hand-made period scores with hand-computed answers."""

import numpy as np
import pytest

from co2fi_tools.evaluation import fusion
from co2fi_tools.evaluation.classification import predictions


def test_video_scores_sum_over_periods():
    periods = np.array([[[1.0, 2.0], [3.0, -1.0]]])
    np.testing.assert_allclose(fusion.video_scores(periods), [[4.0, 1.0]])


def test_softmax_period_mode_differs_from_raw():
    # raw sum [5, 3] -> class 0; softmax per period: [.9933, .0067] + 3 x [.2689, .7311]
    # = [1.80, 2.20] -> class 1
    periods = np.array([[[5.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    assert predictions(fusion.video_scores(periods, "raw"))[0] == 0
    fused = fusion.video_scores(periods, "softmax_period")
    np.testing.assert_allclose(fused, [[1.8001, 2.1999]], atol=1e-3)
    assert predictions(fused)[0] == 1


def test_fuse_sums_models_and_periods_raw_and_softmax_video():
    a = np.array([[[1.0, 0.0, 0.0]]])   # appearance-centred: one video, one period
    b = np.array([[[0.0, 1.5, 1.5]]])   # motion-centred
    raw = fusion.fuse({"a": a, "b": b})
    np.testing.assert_allclose(raw, [[1.0, 1.5, 1.5]])
    assert predictions(raw)[0] == 1
    # softmax per model: a -> [.576, .212, .212], b -> [.100, .450, .450]
    soft = fusion.fuse({"a": a, "b": b}, mode="softmax_video")
    np.testing.assert_allclose(soft, [[0.6766, 0.6617, 0.6617]], atol=1e-3)
    assert predictions(soft)[0] == 0


def test_fuse_weights():
    a = np.array([[[1.0, 0.0, 0.0]]])
    b = np.array([[[0.0, 1.5, 1.5]]])
    np.testing.assert_allclose(fusion.fuse({"a": a, "b": b}, {"b": 0.5}), [[1.0, 0.75, 0.75]])
    with pytest.raises(ValueError, match="unknown models"):
        fusion.fuse({"a": a}, {"c": 1.0})


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown fusion mode"):
        fusion.video_scores(np.zeros((1, 1, 2)), "mean")
    with pytest.raises(ValueError, match=r"\[videos x periods x classes\]"):
        fusion.video_scores(np.zeros((2, 3)))
