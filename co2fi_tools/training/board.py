"""Live training curves: TensorBoard event files written by the solver worker (tensorboardX).

``<run>/tensorboard/events.out.tfevents.*`` gets, every iteration of rank 0, ``loss/total``
(the weighted sum Caffe minimises), ``loss/<blob>`` for every loss head (its raw value; the
weight is in the tag's description) and ``lr``. ``tensorboard --logdir runs/`` shows every
stage while it trains; the PNGs of co2fi_tools.reporting.plots are still made from the log
afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Seconds between flushes of the event file (what "live" means).
FLUSH_SECS = 10


class TrainingBoard:
    def __init__(self, log_dir: str | os.PathLike[str], loss_weights: Mapping[str, float]):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(os.fspath(log_dir), flush_secs=FLUSH_SECS)
        self.loss_weights = dict(loss_weights)
        for blob, weight in self.loss_weights.items():
            self.writer.add_text("loss_weights", f"{blob}: {weight:g}", 0)

    def log(self, iteration: int, losses: Mapping[str, float], lr: float | None = None) -> None:
        total = sum(self.loss_weights.get(b, 1.0) * v for b, v in losses.items())
        self.writer.add_scalar("loss/total", total, iteration)
        for blob, value in losses.items():
            self.writer.add_scalar(f"loss/{blob}", value, iteration)
        if lr is not None:
            self.writer.add_scalar("lr", lr, iteration)

    def close(self) -> None:
        self.writer.close()
