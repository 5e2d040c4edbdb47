"""ClipDataLayer: single-frame RGB / flow-stack samples (docs/DESIGN.md, "Data layers").

``param_str`` (JSON): list, root, modality ("rgb"|"flow"), batch_size, input_size,
phase ("train"|"test"; default from the net's phase), seed, and optionally test_segments,
more_fix_crop, flip, workers (prefetch processes), prefetch (batches in flight), rank and world
(data-parallel training; default: Caffe's solver rank and count). The other defaults are
ClipBatches' constructor's.
Tops: ``data`` (B x 3 x S x S or B x 2*FLOW_STACK x S x S), ``label`` (B).
The sampling and augmentation live in co2fi_layers.batches (ClipBatches, whose constructor
states every key and default); the Caffe glue in co2fi_layers.data_layer.
"""

from __future__ import annotations

from co2fi_layers.batches import ClipBatches
from co2fi_layers.data_layer import PrefetchingDataLayer


class ClipDataLayer(PrefetchingDataLayer):
    maker_class = ClipBatches
