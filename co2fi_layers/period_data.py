"""PeriodDataLayer: periods for the fusion nets (Sec. 5, Fig. 5; docs/DESIGN.md).

``param_str`` (JSON): rgb_list, flow_list, root, batch_size, input_size, delta,
rgb_steps, flow_steps (subsets of 1..FUSION_STEPS; step 3 is the centre), phase, seed, and
optionally test_periods, more_fix_crop, flip, workers, prefetch (defaults: PeriodBatches'
constructor's).
Tops: ``rgb_t<i>`` for i in rgb_steps, then ``flow_t<i>`` for i in flow_steps, then ``label``.
One crop/flip for all inputs of a sample. Test phase: a batch is the test_periods periods of
one video, evenly spread (co2fi_layers.sampling.period_indices), batch_size ignored.
"""

from __future__ import annotations

from co2fi_layers.batches import PeriodBatches
from co2fi_layers.data_layer import PrefetchingDataLayer


class PeriodDataLayer(PrefetchingDataLayer):
    maker_class = PeriodBatches
