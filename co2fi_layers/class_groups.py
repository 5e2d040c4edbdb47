"""Adaptive class group forming (Sec. 4.2): top-k class groups from the grouper's scores.

``ClassGroupLayer`` (py-faster-rcnn style Python layer), bottoms: the frozen CNN_M_2048 grouper's
class scores (B x N) and the labels (B); tops: one B x N 0/1 membership mask per granularity,
coarse to fine (top-5, top-3, top-1 groups). A ground-truth class missing from a group is forced
in (paper Sec. 4.2, issue (3)): it replaces the lowest-ranked member (``replace_last``, the group
keeps its size) or is appended (``append``). Equal scores rank the lower class index first
(``lower_index``) or the higher one (``higher_index``). No gradient flows (the grouper is frozen).

param_str (JSON, written by netgen): ``{"group_sizes": [5, 3, 1], "num_classes": N,
"forced_gt": "replace_last", "tie_break": "lower_index"}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

FORCED_GT = ("replace_last", "append")
TIE_BREAK = ("lower_index", "higher_index")


def rank_classes(scores: np.ndarray, tie_break: str = "lower_index") -> np.ndarray:
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
    forced_gt: str = "replace_last",
    tie_break: str = "lower_index",
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


try:  # the layer needs pycaffe; the functions above do not
    import caffe
except ImportError:  # pragma: no cover - exercised only without pycaffe
    caffe = None

if caffe is not None:

    class ClassGroupLayer(caffe.Layer):
        """Forms the class groups of every granularity from the grouper's scores."""

        def setup(self, bottom, top):
            params = json.loads(self.param_str or "{}")
            self.group_sizes = [int(k) for k in params.get("group_sizes", [5, 3, 1])]
            self.num_classes = int(params["num_classes"]) if "num_classes" in params else None
            self.forced_gt = params.get("forced_gt", "replace_last")
            self.tie_break = params.get("tie_break", "lower_index")
            if len(bottom) != 2:
                raise ValueError("ClassGroupLayer takes two bottoms: scores, label")
            if len(top) != len(self.group_sizes):
                raise ValueError(f"ClassGroupLayer has {len(top)} tops for "
                                 f"{len(self.group_sizes)} group sizes")
            n = int(np.prod(bottom[0].data.shape[1:]))
            if self.num_classes is not None and n != self.num_classes:
                raise ValueError(f"scores have {n} classes, param_str says {self.num_classes}")
            if n < max(self.group_sizes):
                raise ValueError(f"{n} classes cannot fill a top-{max(self.group_sizes)} group")
            if self.forced_gt not in FORCED_GT or self.tie_break not in TIE_BREAK:
                raise ValueError(f"bad forced_gt/tie_break: {self.forced_gt}, {self.tie_break}")

        def reshape(self, bottom, top):
            batch = bottom[0].data.shape[0]
            n = int(np.prod(bottom[0].data.shape[1:]))
            if bottom[1].data.size != batch:
                raise ValueError(f"{bottom[1].data.size} labels for a batch of {batch}")
            for i in range(len(top)):
                top[i].reshape(batch, n)

        def forward(self, bottom, top):
            batch = bottom[0].data.shape[0]
            masks = form_class_groups(bottom[0].data.reshape(batch, -1), bottom[1].data,
                                      self.group_sizes, self.forced_gt, self.tie_break)
            for i in range(len(top)):
                top[i].data[...] = masks[i]

        def backward(self, top, propagate_down, bottom):
            for i, down in enumerate(propagate_down):
                if down:
                    bottom[i].diff[...] = 0.0
