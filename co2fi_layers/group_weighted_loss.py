"""The group-weighted cross-entropy of Eq. 1, with its exact gradient.

    L_v = -(1/N) sum_k alpha_k sum_{n in G_k} log p(n|W,k),

one softmax over all N classes per granularity k (the logits are FC3_k), averaged over the batch.
``reading="log_sum"`` is the other reading: -(1/N) sum_k alpha_k log sum_{n in G_k} p(n|W,k)
(the probability of the group). ``class_normalization=False`` drops the 1/N.

No Caffe here: co2fi_layers/group_loss.py is the Caffe layer (``GroupLossLayer``) around
:class:`GroupLoss`. The readings and their default are netgen.readings'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netgen.readings import CHOICES

READINGS: tuple[str, ...] = CHOICES["group_loss"]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def group_loss_terms(
    logits: np.ndarray, mask: np.ndarray, reading: str = READINGS[0]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample loss (B) and its gradient w.r.t. the logits (B x N) for one granularity."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, not {reading!r}")
    z = np.asarray(logits, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    logp = _log_softmax(z)
    p = np.exp(logp)
    if reading == "sum_log":
        loss = -(m * logp).sum(axis=1)
        grad = m.sum(axis=1, keepdims=True) * p - m
    else:
        masked = np.where(m > 0, logp, -np.inf)
        top = masked.max(axis=1, keepdims=True)
        log_group = top[:, 0] + np.log(np.exp(masked - top).sum(axis=1))
        loss = -log_group
        # exp of -inf outside the group: 0, where logp - log_group could overflow (0 * inf)
        grad = p - m * np.exp(masked - log_group[:, None])
    return loss, grad


def group_loss(
    logits: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    alpha: Sequence[float],
    num_classes: int,
    class_normalization: bool = True,
    reading: str = READINGS[0],
) -> tuple[float, list[np.ndarray]]:
    """Eq. 1 over a batch: (loss, gradient w.r.t. each granularity's logits)."""
    if not len(logits) == len(masks) == len(alpha):
        raise ValueError(f"{len(logits)} logits, {len(masks)} masks, {len(alpha)} weights: "
                         "need one of each per granularity")
    scale = 1.0 / num_classes if class_normalization else 1.0
    total = 0.0
    grads = []
    for z, m, a in zip(logits, masks, alpha, strict=True):
        batch = z.shape[0]
        loss, grad = group_loss_terms(z, m, reading)
        total += scale * a * loss.sum() / batch
        grads.append(scale * a * grad / batch)
    return float(total), grads


@dataclass(frozen=True)
class GroupLoss:
    """Eq. 1 as GroupLossLayer computes it; the fields are its param_str keys, with their
    defaults."""

    #: alpha_k of every granularity, coarse to fine.
    alpha: tuple[float, ...]
    #: N of the 1/N.
    num_classes: int
    class_normalization: bool = True
    reading: str = READINGS[0]

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", tuple(float(a) for a in self.alpha))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "class_normalization", bool(self.class_normalization))
        if self.reading not in READINGS:
            raise ValueError(f"reading must be one of {READINGS}, not {self.reading!r}")

    def __call__(self, logits: Sequence[np.ndarray], masks: Sequence[np.ndarray]
                 ) -> tuple[float, list[np.ndarray]]:
        """(loss, gradient w.r.t. each granularity's logits) of a batch."""
        return group_loss(logits, masks, self.alpha, self.num_classes, self.class_normalization,
                          self.reading)
