"""ClassGroupLayer: adaptive class group forming (Sec. 4.2) as a Caffe Python layer.

Bottoms: the frozen CNN_M_2048 grouper's class scores (B x N) and the labels (B); tops: one
B x N 0/1 membership mask per granularity, coarse to fine. No gradient flows (the grouper is
frozen). param_str (JSON, written by netgen): the fields of
co2fi_layers.group_forming.ClassGrouper (group_sizes, num_classes, forced_gt, tie_break), whose
defaults apply to the keys it leaves out. The logic lives in co2fi_layers.group_forming; this
file is only the Caffe glue.
"""

from __future__ import annotations

import caffe
import numpy as np

from co2fi_layers import params
from co2fi_layers.group_forming import ClassGrouper


class ClassGroupLayer(caffe.Layer):
    """Forms the class groups of every granularity from the grouper's scores."""

    def setup(self, bottom, top):
        name = type(self).__name__
        self.grouper = params.build(ClassGrouper, params.parse(self.param_str, name), name)
        sizes = self.grouper.group_sizes
        if len(bottom) != 2:
            raise ValueError(f"{name} takes two bottoms: scores, label")
        if len(top) != len(sizes):
            raise ValueError(f"{name} has {len(top)} tops for {len(sizes)} group sizes")
        self.grouper.check_classes(int(np.prod(bottom[0].data.shape[1:])))

    def reshape(self, bottom, top):
        batch = bottom[0].data.shape[0]
        n = int(np.prod(bottom[0].data.shape[1:]))
        if bottom[1].data.size != batch:
            raise ValueError(f"{bottom[1].data.size} labels for a batch of {batch}")
        for i in range(len(top)):
            top[i].reshape(batch, n)

    def forward(self, bottom, top):
        batch = bottom[0].data.shape[0]
        masks = self.grouper.masks(bottom[0].data.reshape(batch, -1), bottom[1].data)
        for i in range(len(top)):
            top[i].data[...] = masks[i]

    def backward(self, top, propagate_down, bottom):
        for i, down in enumerate(propagate_down):
            if down:
                bottom[i].diff[...] = 0.0
