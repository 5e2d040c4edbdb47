"""Accuracies, confusion matrix and per-class table on hand-made scores, hand-computed."""

import numpy as np
import pytest

from co2fi_tools.evaluation import classification as cl

# 5 videos, 3 classes; the top-1 predictions are [0, 1, 1, 2, 0].
VIDEO_SCORES = np.array([[3.0, 1.0, 0.0],
                         [0.0, 2.0, 1.0],
                         [1.0, 4.0, 0.0],
                         [0.0, 0.0, 5.0],
                         [2.0, 0.0, 1.0]])
LABELS = np.array([0, 0, 1, 2, 2])


def test_top1_and_mean_class_accuracy_differ_as_worked_by_hand():
    # right: videos 0, 2, 3 -> top-1 = 3/5; recall: class 0 = 1/2, class 1 = 1/1, class 2 = 1/2
    assert cl.top1_accuracy(VIDEO_SCORES, LABELS) == pytest.approx(0.6)
    assert cl.mean_class_accuracy(VIDEO_SCORES, LABELS) == pytest.approx(2 / 3)
    accuracy = cl.evaluate(VIDEO_SCORES, LABELS)
    assert (accuracy.top1, accuracy.videos) == (pytest.approx(0.6), 5)
    assert accuracy.mean_class == pytest.approx(2 / 3)
    assert accuracy.top5 == 1.0  # 3 classes: every label is within the best 5


def test_top5_by_hand():
    # 7 classes; the label's rank among the scores: video 0 rank 1, video 1 rank 5 (in),
    # video 2 rank 6 (out), video 3 rank 7 (out) -> top-5 = 2/4, top-1 = 1/4
    scores = np.array([[7, 6, 5, 4, 3, 2, 1],
                       [7, 6, 5, 4, 3, 2, 1],
                       [1, 2, 3, 4, 5, 6, 7],
                       [1, 2, 3, 4, 5, 6, 7]], dtype=float)
    labels = np.array([0, 4, 1, 0])
    assert cl.top_k_accuracy(scores, labels, 5) == pytest.approx(0.5)
    assert cl.evaluate(scores, labels).top5 == pytest.approx(0.5)
    assert cl.top1_accuracy(scores, labels) == pytest.approx(0.25)
    # mean class: class 0 has 2 videos (1 right), classes 1 and 4 one each (wrong) -> 1/6
    assert cl.mean_class_accuracy(scores, labels) == pytest.approx((0.5 + 0 + 0) / 3)


def test_confusion_matrix_rows_are_true_classes():
    expected = np.array([[1, 1, 0],
                         [0, 1, 0],
                         [1, 0, 1]])
    np.testing.assert_array_equal(cl.confusion_matrix(VIDEO_SCORES, LABELS), expected)


def test_class_absent_from_test_set_is_left_out_of_the_mean():
    scores = np.array([[1.0, 0, 0, 2.0],   # true 0, predicted 3 (a class with no test video)
                       [1.0, 0, 0, 0],     # true 0, right
                       [0, 1.0, 0, 0]])    # true 1, right
    labels = np.array([0, 0, 1])
    assert cl.confusion_matrix(scores, labels).shape == (4, 4)
    assert cl.mean_class_accuracy(scores, labels) == pytest.approx(0.75)
    assert cl.top1_accuracy(scores, labels) == pytest.approx(2 / 3)
    rows = cl.per_class_table(scores, labels)
    assert rows[0].recall == pytest.approx(0.5) and rows[1].recall == 1.0
    assert np.isnan(rows[2].recall) and np.isnan(rows[3].recall) and rows[3].support == 0


def test_ties_go_to_the_lowest_class_everywhere():
    scores = np.array([[1.0, 1.0], [0.0, 0.0]])
    labels = np.array([1, 0])
    assert cl.top1_accuracy(scores, labels) == 0.5
    np.testing.assert_array_equal(cl.confusion_matrix(scores, labels), [[1, 0], [1, 0]])


def test_per_class_table():
    rows = cl.per_class_table(VIDEO_SCORES, LABELS, ["a", "b", "c"])
    assert [(r.name, r.support, r.correct) for r in rows] == [("a", 2, 1), ("b", 1, 1),
                                                                ("c", 2, 1)]
    assert rows[0].most_confused_with == "b" and rows[1].most_confused_with == ""
    assert rows[2].most_confused_with == "a"
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        cl.per_class_table(VIDEO_SCORES, LABELS, ["a", "b"])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="labels must lie in"):
        cl.top1_accuracy(VIDEO_SCORES, np.array([0, 0, 1, 2, 3]))
    with pytest.raises(ValueError, match="no videos"):
        cl.evaluate(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"\[videos x classes\]"):
        cl.evaluate(np.zeros((2, 3, 1)), np.zeros(2, int))
