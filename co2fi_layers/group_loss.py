"""GroupLossLayer: the group-weighted cross-entropy of Eq. 1 as a Caffe Python loss layer.

Bottoms: K logits blobs (B x N), then K membership masks (B x N, from ClassGroupLayer), coarse
to fine; top: the scalar loss (give it ``loss_weight: 1``); the exact gradient flows to the
logits only. param_str (JSON, written by netgen): the fields of
co2fi_layers.group_weighted_loss.GroupLoss (alpha, num_classes, class_normalization, reading),
whose defaults apply to the keys it leaves out. The logic lives in
co2fi_layers.group_weighted_loss; this file is only the Caffe glue.
"""

from __future__ import annotations

import caffe
import numpy as np

from co2fi_layers import params
from co2fi_layers.group_weighted_loss import GroupLoss


class GroupLossLayer(caffe.Layer):
    """Eq. 1 as a Caffe loss layer (bottoms: K logits, K masks; top: loss)."""

    def setup(self, bottom, top):
        name = type(self).__name__
        self.eq1 = params.build(GroupLoss, params.parse(self.param_str, name), name)
        k = len(self.eq1.alpha)
        if len(bottom) != 2 * k:
            raise ValueError(f"{name} needs {2 * k} bottoms (logits and masks for {k} "
                             f"granularities), got {len(bottom)}")
        self.grads: list[np.ndarray] = []

    def reshape(self, bottom, top):
        k = len(self.eq1.alpha)
        for i in range(k):
            z, m = bottom[i], bottom[k + i]
            if z.data.shape != m.data.shape:
                raise ValueError(f"logits {z.data.shape} and mask {m.data.shape} differ")
            if int(np.prod(z.data.shape[1:])) != self.eq1.num_classes:
                raise ValueError(f"logits have shape {z.data.shape}, expected "
                                 f"{self.eq1.num_classes} classes")
        top[0].reshape(1)

    def forward(self, bottom, top):
        k = len(self.eq1.alpha)
        batch = bottom[0].data.shape[0]
        logits = [bottom[i].data.reshape(batch, -1) for i in range(k)]
        masks = [bottom[k + i].data.reshape(batch, -1) for i in range(k)]
        loss, self.grads = self.eq1(logits, masks)
        top[0].data[...] = loss

    def backward(self, top, propagate_down, bottom):
        k = len(self.eq1.alpha)
        weight = float(top[0].diff.reshape(-1)[0])
        for i, down in enumerate(propagate_down):
            if not down:
                continue
            if i < k:
                bottom[i].diff[...] = (weight * self.grads[i]).reshape(bottom[i].diff.shape)
            else:
                bottom[i].diff[...] = 0.0
