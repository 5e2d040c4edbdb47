"""The group-weighted cross-entropy of Eq. 1, with its exact gradient.

    L_v = -(1/N) sum_k alpha_k sum_{n in G_k} log p(n|W,k),

one softmax over all N classes per granularity k (the logits are FC3_k), averaged over the batch.
``reading="log_sum"`` is the other reading: -(1/N) sum_k alpha_k log sum_{n in G_k} p(n|W,k)
(the probability of the group). ``class_normalization=False`` drops the 1/N.

``GroupLossLayer`` bottoms: K logits blobs (B x N), then K membership masks (B x N, from
ClassGroupLayer), coarse to fine; top: the scalar loss (give it ``loss_weight: 1``).
param_str: ``{"alpha": [0.1, 0.1, 1.0], "num_classes": N, "class_normalization": true,
"reading": "sum_log"}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

READINGS = ("sum_log", "log_sum")


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def group_loss_terms(
    logits: np.ndarray, mask: np.ndarray, reading: str = "sum_log"
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
    reading: str = "sum_log",
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


try:  # the layer needs pycaffe; the functions above do not
    import caffe
except ImportError:  # pragma: no cover - exercised only without pycaffe
    caffe = None

if caffe is not None:

    class GroupLossLayer(caffe.Layer):
        """Eq. 1 as a Caffe loss layer (bottoms: K logits, K masks; top: loss)."""

        def setup(self, bottom, top):
            params = json.loads(self.param_str or "{}")
            self.alpha = [float(a) for a in params["alpha"]]
            self.num_classes = int(params["num_classes"])
            self.class_normalization = bool(params.get("class_normalization", True))
            self.reading = params.get("reading", "sum_log")
            if self.reading not in READINGS:
                raise ValueError(f"reading must be one of {READINGS}, not {self.reading!r}")
            if len(bottom) != 2 * len(self.alpha):
                raise ValueError(f"GroupLossLayer needs {2 * len(self.alpha)} bottoms "
                                 f"(logits and masks for {len(self.alpha)} granularities), "
                                 f"got {len(bottom)}")
            self.grads: list[np.ndarray] = []

        def reshape(self, bottom, top):
            k = len(self.alpha)
            for i in range(k):
                z, m = bottom[i], bottom[k + i]
                if z.data.shape != m.data.shape:
                    raise ValueError(f"logits {z.data.shape} and mask {m.data.shape} differ")
                if int(np.prod(z.data.shape[1:])) != self.num_classes:
                    raise ValueError(f"logits have shape {z.data.shape}, expected "
                                     f"{self.num_classes} classes")
            top[0].reshape(1)

        def forward(self, bottom, top):
            k = len(self.alpha)
            batch = bottom[0].data.shape[0]
            logits = [bottom[i].data.reshape(batch, -1) for i in range(k)]
            masks = [bottom[k + i].data.reshape(batch, -1) for i in range(k)]
            loss, self.grads = group_loss(logits, masks, self.alpha, self.num_classes,
                                          self.class_normalization, self.reading)
            top[0].data[...] = loss

        def backward(self, top, propagate_down, bottom):
            k = len(self.alpha)
            weight = float(top[0].diff.reshape(-1)[0])
            for i, down in enumerate(propagate_down):
                if not down:
                    continue
                if i < k:
                    bottom[i].diff[...] = (weight * self.grads[i]).reshape(bottom[i].diff.shape)
                else:
                    bottom[i].diff[...] = 0.0
