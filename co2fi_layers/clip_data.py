"""ClipDataLayer: single-frame RGB / flow-stack samples (docs/DESIGN.md, "Data layers").

``param_str`` (JSON): list, root, modality ("rgb"|"flow"), batch_size, input_size,
phase ("train"|"test"; default from the net's phase), seed, and optionally test_segments
(default 1), more_fix_crop, flip, workers (prefetch processes), prefetch (batches in flight),
rank and world (data-parallel training; default: Caffe's solver rank and count).
Tops: ``data`` (B x 3 x S x S or B x 2*FLOW_STACK x S x S), ``label`` (B).
The sampling and augmentation live in co2fi_layers.batches; this file is only the Caffe glue.
"""

from __future__ import annotations

import json

import caffe

from co2fi_layers.batches import ClipBatches
from co2fi_layers.prefetch import Prefetcher
from co2fi_layers.workers import default_workers


class _PrefetchingDataLayer(caffe.Layer):
    maker_class: type = ClipBatches

    def setup(self, bottom, top):
        if len(bottom):
            raise ValueError(f"{type(self).__name__} takes no bottoms")
        params = json.loads(self.param_str or "{}")
        if caffe.solver_count() > 1 and "world" not in params:
            # one solver process per GPU (co2fi_tools.training.multigpu): this process's share
            # of the data
            params.update(rank=caffe.solver_rank(), world=caffe.solver_count())
        self.maker = self.maker_class.from_params(params, getattr(self, "phase", None))
        self.shapes = self.maker.shapes()
        if len(top) != len(self.shapes):
            raise ValueError(f"{type(self).__name__} has tops {list(self.shapes)}, "
                             f"the net gives {len(top)}")
        workers = int(params.get("workers", default_workers()))
        depth = params.get("prefetch")
        self.prefetcher = Prefetcher(self.maker, workers, None if depth is None else int(depth))

    def reshape(self, bottom, top):
        # pycaffe's blob vectors index but do not iterate
        for i, shape in enumerate(self.shapes.values()):
            top[i].reshape(*shape)

    def forward(self, bottom, top):
        batch = self.prefetcher.next()
        for i, name in enumerate(self.shapes):
            top[i].data[...] = batch[name]

    def backward(self, top, propagate_down, bottom):
        pass


class ClipDataLayer(_PrefetchingDataLayer):
    maker_class = ClipBatches
