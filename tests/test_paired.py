"""Paired differences over the same test videos (co2fi_tools/evaluation/paired.py)."""

from __future__ import annotations

import numpy as np
import pytest

from co2fi_tools.evaluation.paired import paired_difference

LABELS = np.repeat(np.arange(4), 25)  # 4 classes x 25 videos


def test_identical_methods_differ_by_nothing():
    right = (np.arange(100) % 3 == 0).astype(int)
    d = paired_difference(right, right, LABELS)
    assert d.mean == 0 and d.se == 0 and d.interval == (0.0, 0.0) and d.discordant == 0


def test_the_difference_is_the_mean_class_accuracy_difference():
    better = np.zeros(100, int)
    worse = np.zeros(100, int)
    better[:25] = 1      # class 0 all right under the better method only
    better[25:30] = 1    # and 5 of class 1
    worse[25:30] = 1     # ... which the worse one also gets
    d = paired_difference(better, worse, LABELS)
    assert d.mean == pytest.approx(0.25)  # (1 + 0 + 0 + 0) / 4
    assert d.discordant == 25 and d.videos == 100 and d.seeds == 1


def test_pairing_shrinks_the_error_of_correlated_methods():
    rng = np.random.default_rng(0)
    easy = rng.random(400) < 0.5
    better = easy | (rng.random(400) < 0.1)  # right wherever the worse is, and on a few more
    labels = np.repeat(np.arange(8), 50)
    d = paired_difference(better.astype(int), easy.astype(int), labels)
    p1, p2 = better.mean(), easy.mean()
    independent = np.sqrt(p1 * (1 - p1) / 400 + p2 * (1 - p2) / 400)
    assert d.se < independent / 2
    assert d.interval[0] > 0  # every discordant video favours the better method


def test_seeds_are_averaged_and_resampled():
    one = np.array([[1, 0] * 50])
    two = np.vstack([one[0], 1 - one[0]])  # the seeds disagree everywhere
    d = paired_difference(two, np.zeros((2, 100), int), LABELS)
    assert d.seeds == 2 and d.mean == pytest.approx(0.5)
    assert d.se > 0  # resampling seeds moves the estimate


def test_scores_of_other_videos_are_refused():
    with pytest.raises(ValueError, match="same videos"):
        paired_difference(np.ones(100), np.ones(99), LABELS)
