"""Video-level accuracy metrics and score fusion.

Conventions:
- ``scores`` of a model are ``[videos x periods x classes]`` (Sec. 6.1: 12 periods a test video);
  video-level scores are ``[videos x classes]``.
- ``labels`` are 0-based class indices, one per video.
- Accuracies are fractions in [0, 1].

Mean class accuracy is the mean over classes of per-class recall (correct / videos of that
class), as TSN's ``mean_class_accuracy`` computes it; classes with no test video are left out of
the mean (TSN would return NaN there). The paper's tables report "mean classification accuracy".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: How period and model scores are combined into one video score (docs/EVALUATION.md).
#: raw: sum raw scores over periods and models (TSN's eval_scores.py; the default).
#: softmax_period: softmax every period's scores first, then sum.
#: softmax_video: sum raw scores over periods, softmax per model, then sum over models.
FUSION_MODES: tuple[str, ...] = ("raw", "softmax_period", "softmax_video")


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = scores - np.max(scores, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def _check_video_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"video scores must be [videos x classes], got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels shape {labels.shape} does not match {scores.shape[0]} videos")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in 0..{scores.shape[1] - 1}, got {labels.min()}.."
                         f"{labels.max()}")
    return scores, labels.astype(np.int64)


def predictions(scores: np.ndarray) -> np.ndarray:
    """Top-1 class of every video (ties go to the lowest class index, as np.argmax)."""
    return np.argmax(np.asarray(scores), axis=1)


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    scores, labels = _check_video_scores(scores, labels)
    if labels.size == 0:
        raise ValueError("no videos to evaluate")
    return float(np.mean(predictions(scores) == labels))


def confusion_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``[true class x predicted class]`` counts (int64)."""
    scores, labels = _check_video_scores(scores, labels)
    num_classes = scores.shape[1]
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions(scores)), 1)
    return matrix


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for classes with no test video."""
    support = confusion.sum(axis=1)
    hits = np.diag(confusion).astype(np.float64)
    recall = np.full(confusion.shape[0], np.nan)
    present = support > 0
    recall[present] = hits[present] / support[present]
    return recall


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``labels``."""
    recall = per_class_recall(confusion_matrix(scores, labels))
    if np.all(np.isnan(recall)):
        raise ValueError("no videos to evaluate")
    return float(np.nanmean(recall))


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
    recall = per_class_recall(confusion)
    rows = []
    for c in range(num_classes):
        wrong = confusion[c].copy()
        wrong[c] = 0
        confused = names[int(np.argmax(wrong))] if wrong.any() else ""
        rows.append(ClassRow(c, names[c], int(confusion[c].sum()), int(confusion[c, c]),
                             float(recall[c]), confused))
    return rows


def video_scores(period_scores: np.ndarray, mode: str = "raw") -> np.ndarray:
    """Sum ``[videos x periods x classes]`` over periods (softmax first for softmax_period)."""
    period_scores = np.asarray(period_scores, dtype=np.float64)
    if period_scores.ndim != 3:
        raise ValueError(
            f"period scores must be [videos x periods x classes], got shape {period_scores.shape}")
    if mode not in FUSION_MODES:
        raise ValueError(f"unknown fusion mode {mode!r}; choose one of {FUSION_MODES}")
    if mode == "softmax_period":
        period_scores = softmax(period_scores, axis=2)
    return period_scores.sum(axis=1)


def fuse(models: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None,
         mode: str = "raw") -> np.ndarray:
    """Video scores summed over periods and over models (e.g. appearance- and motion-centred).

    ``models`` maps a name to ``[videos x periods x classes]``; ``weights`` (default 1 each) scale
    each model's video score before the sum.
    """
    if not models:
        raise ValueError("nothing to fuse: no model scores given")
    weights = dict(weights or {})
    unknown = set(weights) - set(models)
    if unknown:
        raise ValueError(f"weights given for unknown models {sorted(unknown)}; "
                         f"models are {sorted(models)}")
    total = None
    for name, scores in models.items():
        per_video = video_scores(scores, mode)
        if mode == "softmax_video":
            per_video = softmax(per_video, axis=1)
        per_video = per_video * float(weights.get(name, 1.0))
        if total is not None and total.shape != per_video.shape:
            raise ValueError(f"model {name!r} has video scores {per_video.shape}, "
                             f"others {total.shape}")
        total = per_video if total is None else total + per_video
    return total


@dataclass(frozen=True)
class Accuracy:
    top1: float
    mean_class: float
    videos: int


def evaluate(scores: np.ndarray, labels: np.ndarray) -> Accuracy:
    """Both accuracies of video-level ``scores``."""
    return Accuracy(top1_accuracy(scores, labels), mean_class_accuracy(scores, labels),
                    int(np.asarray(labels).size))
