"""Paired comparison of two methods on the same test videos: per-video differences, a
bootstrap over videos (within each class) and seeds, an interval.

Two rows of a table are scored on the same videos, so their errors are correlated: most videos
are right (or wrong) under both. Treating them as independent samples overstates the noise of
their difference several times over; the paired difference does not. With several seeds, each
video's difference is averaged over the seeds, and the bootstrap resamples the seeds too, so
the interval holds both sources of noise: which videos were drawn, and how training went.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples, and the interval's coverage.
BOOTSTRAP = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """Mean class accuracy of ``better`` minus ``worse`` (fractions), its bootstrap standard
    error and interval; videos where the two disagree (mean over seeds)."""

    mean: float
    se: float
    interval: tuple[float, float]
    discordant: float
    videos: int
    seeds: int


def _mean_class(diff: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    per_video = diff.mean(axis=0)
    return float(np.mean([per_video[labels == c].mean() for c in classes]))


def paired_difference(better: np.ndarray, worse: np.ndarray, labels: np.ndarray,
                      resamples: int = BOOTSTRAP, level: float = LEVEL,
                      seed: int = 0) -> PairedDifference:
    """``better``/``worse``: 1 where a video is classified right, 0 where not; shape
    (videos,) for one seed or (seeds, videos), the same videos in the same order."""
    a = np.atleast_2d(np.asarray(better, dtype=float))
    b = np.atleast_2d(np.asarray(worse, dtype=float))
    labels = np.asarray(labels)
    if a.shape != b.shape or a.shape[1] != labels.shape[0]:
        raise ValueError(f"paired scores must cover the same videos: {a.shape} vs {b.shape}, "
                         f"{labels.shape[0]} labels")
    d = a - b
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    rng = np.random.default_rng(seed)
    n_seeds = d.shape[0]
    boots = np.empty(resamples)
    for k in range(resamples):
        seeds = rng.integers(0, n_seeds, n_seeds)
        picked = d[seeds]
        boots[k] = np.mean([picked[:, rng.choice(m, size=m.size)].mean() for m in members])
    tail = (1 - level) / 2
    low, high = np.quantile(boots, [tail, 1 - tail])
    return PairedDifference(
        mean=_mean_class(d, labels, classes), se=float(boots.std(ddof=1)),
        interval=(float(low), float(high)), discordant=float(np.mean(np.abs(d).sum(axis=1))),
        videos=int(labels.shape[0]), seeds=int(n_seeds))
