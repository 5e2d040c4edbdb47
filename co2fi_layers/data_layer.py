"""The Caffe glue every data layer shares: a batch maker (co2fi_layers.batches) built from the
param_str, its batches made ahead by prefetch workers (co2fi_layers.prefetch) and copied into the
tops. A data layer module names its maker class and nothing else (clip_data.py, period_data.py).

param_str keys of the layer itself, beside the maker's: workers (prefetch processes; default
co2fi_layers.workers.default_workers()), prefetch (batches in flight) and first_batch (the
batch to start at: a resumed training's forward passes so far). rank and world
(data-parallel training) default to Caffe's solver rank and count.
"""

from __future__ import annotations

import caffe

from co2fi_layers import params as layer_params
from co2fi_layers.prefetch import Prefetcher
from co2fi_layers.workers import default_workers


class PrefetchingDataLayer(caffe.Layer):
    """A data layer fed by ``maker_class`` (a batch maker with ``from_params``)."""

    maker_class: type

    def setup(self, bottom, top):
        name = type(self).__name__
        if len(bottom):
            raise ValueError(f"{name} takes no bottoms")
        params = layer_params.parse(self.param_str, name)
        if caffe.solver_count() > 1 and "world" not in params:
            # one solver process per GPU (co2fi_tools.training.multigpu): this process's share
            # of the data
            params.update(rank=caffe.solver_rank(), world=caffe.solver_count())
        self.maker = self.maker_class.from_params(params, getattr(self, "phase", None))
        self.shapes = self.maker.shapes()
        if len(top) != len(self.shapes):
            raise ValueError(f"{name} has tops {list(self.shapes)}, the net gives {len(top)}")
        workers = int(params.get("workers", default_workers()))
        depth = params.get("prefetch")
        # a resumed training continues the stream where the snapshot left it (set by the
        # training driver): the same batches as a run that was never interrupted
        self.prefetcher = Prefetcher(self.maker, workers, None if depth is None else int(depth),
                                     first_batch=int(params.get("first_batch", 0)))

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
