"""Adaptive class group forming (Sec. 4.2): top-k class groups from the grouper's scores.

No Caffe here: co2fi_layers/class_groups.py is the Caffe layer (``ClassGroupLayer``) around
:class:`ClassGrouper`. From the frozen CNN_M_2048 grouper's class scores (B x N) and the labels
(B), one B x N 0/1 membership mask per granularity, coarse to fine (paper.GROUP_SIZES: top-5,
top-3, top-1 groups). A ground-truth class missing from a group is forced in (paper Sec. 4.2,
issue (3)): it replaces the lowest-ranked member (``replace_last``, the group keeps its size) or
is appended (``append``). Equal scores rank the lower class index first (``lower_index``) or the
higher one (``higher_index``). The choices and their defaults are netgen.readings'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netgen import paper
from netgen.readings import CHOICES

FORCED_GT: tuple[str, ...] = CHOICES["forced_gt"]
TIE_BREAK: tuple[str, ...] = CHOICES["tie_break"]


def rank_classes(scores: np.ndarray, tie_break: str = TIE_BREAK[0]) -> np.ndarray:
    """Class indices of every row of ``scores`` (B x N), best first, ties broken by index."""
    if tie_break not in TIE_BREAK:
        raise ValueError(f"tie_break must be one of {TIE_BREAK}, not {tie_break!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if tie_break == "lower_index":
        return np.argsort(-scores, axis=1, kind="stable")
    n = scores.shape[1]
    return n - 1 - np.argsort(-scores[:, ::-1], axis=1, kind="stable")


def form_class_groups(
    scores: np.ndarray,
    labels: np.ndarray,
    group_sizes: Sequence[int],
    forced_gt: str = FORCED_GT[0],
    tie_break: str = TIE_BREAK[0],
) -> np.ndarray:
    """Membership masks (K x B x N float32) of the top-k groups, ground truth forced in."""
    if forced_gt not in FORCED_GT:
        raise ValueError(f"forced_gt must be one of {FORCED_GT}, not {forced_gt!r}")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be B x N, got shape {scores.shape}")
    batch, num_classes = scores.shape
    labels = np.rint(np.asarray(labels, dtype=np.float64).reshape(-1)).astype(np.int64)
    if labels.shape[0] != batch:
        raise ValueError(f"{labels.shape[0]} labels for a batch of {batch}")
    if batch and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}: {labels.tolist()}")
    if any(k < 1 or k > num_classes for k in group_sizes):
        raise ValueError(f"group sizes {list(group_sizes)} must lie in 1..{num_classes}")
    order = rank_classes(scores, tie_break)
    rows = np.arange(batch)
    masks = np.zeros((len(group_sizes), batch, num_classes), dtype=np.float32)
    for k, size in enumerate(group_sizes):
        members = order[:, :size].copy()
        missing = ~(members == labels[:, None]).any(axis=1)
        masks[k][rows[:, None], members] = 1.0
        if forced_gt == "replace_last":
            masks[k][rows[missing], members[missing, -1]] = 0.0
        masks[k][rows[missing], labels[missing]] = 1.0
    return masks


@dataclass(frozen=True)
class ClassGrouper:
    """The class groups of every granularity, as ClassGroupLayer forms them; the fields are its
    param_str keys, with their defaults."""

    #: Size of each granularity's group, coarse to fine.
    group_sizes: tuple[int, ...] = paper.GROUP_SIZES
    #: Classes the scores must have (None: any number that fills the largest group).
    num_classes: int | None = None
    forced_gt: str = FORCED_GT[0]
    tie_break: str = TIE_BREAK[0]

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_sizes", tuple(int(k) for k in self.group_sizes))
        if self.num_classes is not None:
            object.__setattr__(self, "num_classes", int(self.num_classes))
        if not self.group_sizes or min(self.group_sizes) < 1:
            raise ValueError(f"group sizes must be positive: {list(self.group_sizes)}")
        if self.forced_gt not in FORCED_GT or self.tie_break not in TIE_BREAK:
            raise ValueError(f"bad forced_gt/tie_break: {self.forced_gt}, {self.tie_break} "
                             f"(forced_gt: one of {FORCED_GT}; tie_break: one of {TIE_BREAK})")

    def check_classes(self, num_classes: int) -> None:
        """ValueError unless scores of ``num_classes`` classes can be grouped."""
        if self.num_classes is not None and num_classes != self.num_classes:
            raise ValueError(f"scores have {num_classes} classes, param_str says "
                             f"{self.num_classes}")
        if num_classes < max(self.group_sizes):
            raise ValueError(f"{num_classes} classes cannot fill a top-{max(self.group_sizes)} "
                             "group")

    def masks(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Membership masks (K x B x N float32), coarse to fine."""
        return form_class_groups(scores, labels, self.group_sizes, self.forced_gt,
                                 self.tie_break)
