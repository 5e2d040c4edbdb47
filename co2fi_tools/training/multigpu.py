"""Data-parallel training settings: which GPUs, each one's batch, iter_size (no Caffe here).

Caffe's ``caffe train`` refuses several GPUs with Python layers, so co2fi trains on several GPUs
through pycaffe's NCCL path, as BVLC's python/train.py does: one solver process per GPU
(co2fi_tools.training.solver_worker ``--gpus``), rank 0's weights broadcast to the others, gradients
all-reduced every iteration, and every data layer drawing its own share of the samples
(co2fi_layers.batches: rank r of N takes samples r, r + N, ... of the shared epoch order).

The effective batch of one update is ``batch_per_gpu x iter_size x GPUs``; the paper's is
``paper.BATCH_SIZE`` = 16 (the batch of the generated train nets). :func:`plan_batches` keeps it:
``--gpus 0,1`` gives 8 a GPU; ``--gpus 0,1 --batch-per-gpu 4`` adds iter_size 2; a single card
too small for 16 takes ``--batch-per-gpu 8`` (iter_size 2).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    gpus: tuple[int, ...]
    batch_per_gpu: int
    iter_size: int

    @property
    def effective(self) -> int:
        return self.batch_per_gpu * self.iter_size * len(self.gpus)


def parse_gpus(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> (0, 1); ValueError naming --gpus for anything else."""
    try:
        gpus = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--gpus wants device ids such as 0,1, got {text!r}") from None
    if not gpus or min(gpus) < 0:
        raise ValueError(f"--gpus wants device ids >= 0, got {text!r}")
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus lists a device twice: {text!r}")
    return gpus


def plan_batches(effective: int, gpus: tuple[int, ...], batch_per_gpu: int | None = None
                 ) -> BatchPlan:
    """Each GPU's batch and iter_size so that one update sees ``effective`` samples."""
    n = len(gpus)
    if n < 1:
        raise ValueError("no GPU given")
    if batch_per_gpu is None:
        if effective % n:
            raise ValueError(f"a batch of {effective} does not split over {n} GPUs; give "
                             f"--batch-per-gpu with {effective} = batch x iter_size x {n}")
        return BatchPlan(tuple(gpus), effective // n, 1)
    if batch_per_gpu < 1 or effective % (batch_per_gpu * n):
        raise ValueError(f"--batch-per-gpu {batch_per_gpu} on {n} GPU(s) cannot make the "
                         f"batch of {effective} (batch x iter_size x GPUs)")
    return BatchPlan(tuple(gpus), batch_per_gpu, effective // (batch_per_gpu * n))
