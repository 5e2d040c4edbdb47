"""Score fusion: from period scores of one or several models to video scores.

Conventions:
- ``scores`` of a model are ``[videos x periods x classes]`` (Sec. 6.1: 12 periods a test video);
  video-level scores are ``[videos x classes]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import softmax as _softmax

#: How period and model scores are combined into one video score (docs/EVALUATION.md).
#: raw: sum raw scores over periods and models (TSN's eval_scores.py; the default).
#: softmax_period: softmax every period's scores first, then sum.
#: softmax_video: sum raw scores over periods, softmax per model, then sum over models.
FUSION_MODES: tuple[str, ...] = ("raw", "softmax_period", "softmax_video")


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    return _softmax(np.asarray(scores, dtype=np.float64), axis=axis)


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
