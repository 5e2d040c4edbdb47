"""Video-level accuracies, confusion matrix and per-class table, on scikit-learn.

- ``scores`` are video-level ``[videos x classes]`` (co2fi_tools.evaluation.fusion makes them),
  ``labels``
  0-based class indices, one per video; accuracies are fractions in [0, 1].
- top-1 and top-5: ``sklearn.metrics.top_k_accuracy_score`` (a video counts when its label is
  among the k best scores; with k >= classes every video counts).
- Mean class accuracy: ``balanced_accuracy_score``, the mean over classes of per-class recall
  (correct / videos of that class), as TSN's ``mean_class_accuracy``; classes with no test video
  are left out of the mean. The paper's tables report "mean classification accuracy".
- Confusion matrix: ``confusion_matrix`` over every class of the net, rows true, columns
  predicted (top-1, ties to the lowest class index, as ``np.argmax``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

TOP_K = 5


def _check_video_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"video scores must be [videos x classes], got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels shape {labels.shape} does not match {scores.shape[0]} videos")
    if labels.size == 0:
        raise ValueError("no videos to evaluate")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in 0..{scores.shape[1] - 1}, got {labels.min()}.."
                         f"{labels.max()}")
    return scores, labels.astype(np.int64)


def predictions(scores: np.ndarray) -> np.ndarray:
    """Top-1 class of every video (ties go to the lowest class index, as np.argmax)."""
    return np.argmax(np.asarray(scores), axis=1)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    scores, labels = _check_video_scores(scores, labels)
    if k == 1:  # np.argmax's tie rule, the same as the confusion matrix
        return float(skm.accuracy_score(labels, predictions(scores)))
    if k >= scores.shape[1]:
        return 1.0
    return float(skm.top_k_accuracy_score(labels, scores, k=k,
                                          labels=np.arange(scores.shape[1])))


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return top_k_accuracy(scores, labels, 1)


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``labels``."""
    scores, labels = _check_video_scores(scores, labels)
    with warnings.catch_warnings():  # predictions of classes with no test video are expected
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(labels, predictions(scores)))


def confusion_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``[true class x predicted class]`` counts (int64), every class of ``scores``."""
    scores, labels = _check_video_scores(scores, labels)
    return skm.confusion_matrix(labels, predictions(scores),
                                labels=np.arange(scores.shape[1])).astype(np.int64)


@dataclass(frozen=True)
class Accuracy:
    top1: float
    mean_class: float
    videos: int
    top5: float = float("nan")


def evaluate(scores: np.ndarray, labels: np.ndarray) -> Accuracy:
    """top-1, mean class and top-5 accuracy of video-level ``scores``."""
    return Accuracy(top1_accuracy(scores, labels), mean_class_accuracy(scores, labels),
                    int(np.asarray(labels).size), top_k_accuracy(scores, labels, TOP_K))


@dataclass(frozen=True)
class ClassRow:
    index: int
    name: str
    support: int
    correct: int
    recall: float  # NaN when support == 0
    most_confused_with: str  # most frequent wrong prediction, "" if none


def per_class_table(scores: np.ndarray, labels: np.ndarray,
                    class_names: Sequence[str] | None = None) -> list[ClassRow]:
    confusion = confusion_matrix(scores, labels)
    num_classes = confusion.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    support = confusion.sum(axis=1)
    with warnings.catch_warnings():  # classes without videos: recall NaN (zero_division)
        warnings.simplefilter("ignore")
        recall = skm.recall_score(labels, predictions(scores), labels=np.arange(num_classes),
                                  average=None, zero_division=np.nan)
    rows = []
    for c in range(num_classes):
        wrong = confusion[c].copy()
        wrong[c] = 0
        confused = names[int(np.argmax(wrong))] if wrong.any() else ""
        rows.append(ClassRow(c, names[c], int(support[c]), int(confusion[c, c]),
                             float(recall[c]) if support[c] else float("nan"), confused))
    return rows
