"""Solvers (Sec. 6.1): SGD, batch 16, momentum 0.9, lr 1e-2 divided by 10 every 20K iterations,
100K iterations; the grouper: 10K iterations on 1/8 of the training data."""

from __future__ import annotations

from caffe.proto import caffe_pb2

from netgen import paper
from netgen.presets import Preset

#: Comment of grouper solvers: the fraction of the training list the pipeline trains them on
#: (paper.GROUPER_DATA_FRACTION, its one source; for the reader, no tool reads it back).
DATA_FRACTION_TAG = "co2fi: data_fraction="


def solver(
    net_path: str, preset: Preset, snapshot_prefix: str, grouper: bool = False,
    lr_factor: float = 1.0, max_iter: int | None = None,
) -> caffe_pb2.SolverParameter:
    """The SolverParameter of one variant (``net_path`` relative to the repository root);
    ``lr_factor`` and ``max_iter``: a phase of a fusion stage (netgen.schedule)."""
    sp = caffe_pb2.SolverParameter()
    sp.net = net_path
    sp.test_iter.append(preset.test_iter)
    sp.test_interval = preset.test_interval
    sp.test_initialization = False
    sp.base_lr = preset.base_lr * lr_factor
    sp.lr_policy = "step"
    sp.gamma = preset.lr_gamma
    sp.stepsize = preset.lr_step
    if max_iter is None:
        max_iter = preset.grouper_max_iter if grouper else preset.max_iter
    sp.max_iter = max_iter
    sp.momentum = preset.momentum
    sp.weight_decay = preset.weight_decay
    if preset.clip_gradients:
        sp.clip_gradients = preset.clip_gradients
    sp.display = preset.display
    sp.snapshot = min(preset.snapshot, sp.max_iter)
    sp.snapshot_prefix = snapshot_prefix
    sp.solver_mode = getattr(caffe_pb2.SolverParameter, preset.solver_mode)
    return sp


def solver_header(preset: Preset, grouper: bool, phase: str | None = None) -> list[str]:
    """Comment lines of a solver file (the paper's numbers and our choices); ``phase``
    describes a phase of a fusion stage."""
    lines = [
        f"batch {preset.batch_size} (data layer), momentum {preset.momentum}, base lr "
        f"{preset.base_lr} x {preset.lr_gamma} every {preset.lr_step} iterations",
        f"weight_decay {preset.weight_decay}: not in the paper (TSN/VGG value; "
        "docs/REPRODUCTION.md)",
    ]
    if preset.clip_gradients:
        lines.append(f"clip_gradients {preset.clip_gradients}: not in the paper (the "
                     "miniature's LSTM losses blew up without it; docs/REPRODUCTION.md)")
    if phase:
        lines.append(phase)
    if grouper:
        lines += [
            f"grouper: {preset.grouper_max_iter} iterations on a fraction of the training list;",
            # the one source: paper.GROUPER_DATA_FRACTION, which the pipeline trains on
            f"{DATA_FRACTION_TAG}{paper.GROUPER_DATA_FRACTION!r}",
        ]
    return lines
