"""Parse Caffe's glog training output into per-output series.

The lines come from BVLC Caffe's ``solver.cpp`` and ``sgd_solver.cpp``::

    I1124 10:00:00.000000  4242 solver.cpp:218] Iteration 100 (1.2 iter/s, 80s/20 iters), loss = 0.5
    I1124 ... solver.cpp:237]     Train net output #0: loss_c2f = 2.3 (* 0.0198 = 0.0455 loss)
    I1124 ... sgd_solver.cpp:105] Iteration 100, lr = 0.01
    I1124 ... solver.cpp:330] Iteration 500, Testing net (#0)
    I1124 ... solver.cpp:397]     Test net output #0: accuracy = 0.3

Older Caffe prints ``Iteration 100, loss = 0.5``; both are read. Matching is by search, not by
line start, so lines interleaved with other output (a Python layer's prints, another thread's
glog lines) do not disturb it.

Resumed runs: when a train iteration lower than the last one appears (the solver restarted from
a snapshot), every value recorded at or after that iteration is dropped before the new values
are stored, and a repeated iteration keeps its last value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_NUM = r"([-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))"
_TRAIN_ITER = re.compile(r"Iteration (\d+)(?: \(([^)]*)\))?, loss = " + _NUM, re.IGNORECASE)
_LR = re.compile(r"Iteration (\d+), lr = " + _NUM, re.IGNORECASE)
_TEST_START = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
_OUTPUT = re.compile(r"(Train|Test) net output #(\d+): (\S+) = " + _NUM
                     + r"(?: \(\* " + _NUM + r" = " + _NUM + r" loss\))?", re.IGNORECASE)
_TEST_LOSS = re.compile(r"Test loss: " + _NUM, re.IGNORECASE)
_RESTORE = re.compile(r"Restoring previous solver status from (\S+)")
_SPEED = re.compile(_NUM + r" iter/s", re.IGNORECASE)

Series = dict[int, float]


@dataclass
class TrainingLog:
    """Series keyed by iteration. ``test`` is keyed by ``"<name>"`` for test net #0, else
    ``"<name>#<net>"``."""

    loss: Series = field(default_factory=dict)  # smoothed total loss, as displayed
    lr: Series = field(default_factory=dict)
    iter_per_s: Series = field(default_factory=dict)
    train: dict[str, Series] = field(default_factory=dict)  # raw output values
    train_loss_weight: dict[str, float] = field(default_factory=dict)  # heads with a loss weight
    test: dict[str, Series] = field(default_factory=dict)
    test_loss_weight: dict[str, float] = field(default_factory=dict)
    restarts: list[int] = field(default_factory=list)  # iterations a resumed run started from
    restored_from: list[str] = field(default_factory=list)

    def all_series(self) -> list[Series]:
        return [self.loss, self.lr, self.iter_per_s, *self.train.values(), *self.test.values()]

    @property
    def last_iteration(self) -> int | None:
        iters = [it for s in self.all_series() for it in s]
        return max(iters) if iters else None

    def loss_heads(self) -> list[str]:
        return [name for name in self.train if self.train_loss_weight.get(name)]


def _float(text: str) -> float:
    return float(text.lower().replace("-nan", "nan"))


def _truncate(log: TrainingLog, from_iteration: int) -> None:
    for series in log.all_series():
        for it in [it for it in series if it >= from_iteration]:
            del series[it]


def parse_lines(lines: Iterable[str]) -> TrainingLog:
    log = TrainingLog()
    train_iter: int | None = None  # iteration of the latest train display
    test_iter: int | None = None
    test_net = 0
    last_train_iter = -1
    for line in lines:
        if m := _TRAIN_ITER.search(line):
            it = int(m.group(1))
            if it < last_train_iter:
                log.restarts.append(it)
                _truncate(log, it)
            last_train_iter = it
            train_iter, test_iter = it, None
            log.loss[it] = _float(m.group(3))
            if m.group(2) and (speed := _SPEED.search(m.group(2))):
                log.iter_per_s[it] = _float(speed.group(1))
        elif m := _LR.search(line):
            log.lr[int(m.group(1))] = _float(m.group(2))
        elif m := _TEST_START.search(line):
            test_iter, test_net = int(m.group(1)), int(m.group(2))
            if test_iter < last_train_iter:  # a resumed run tests before its first display
                log.restarts.append(test_iter)
                _truncate(log, test_iter)
                last_train_iter = test_iter
        elif m := _OUTPUT.search(line):
            kind, name, value = m.group(1).lower(), m.group(3), _float(m.group(4))
            weight = _float(m.group(5)) if m.group(5) is not None else None
            if kind == "train" and train_iter is not None:
                log.train.setdefault(name, {})[train_iter] = value
                if weight is not None:
                    log.train_loss_weight[name] = weight
            elif kind == "test" and test_iter is not None:
                key = name if test_net == 0 else f"{name}#{test_net}"
                log.test.setdefault(key, {})[test_iter] = value
                if weight is not None:
                    log.test_loss_weight[key] = weight
        elif (m := _TEST_LOSS.search(line)) and test_iter is not None:
            key = "test_loss" if test_net == 0 else f"test_loss#{test_net}"
            log.test.setdefault(key, {})[test_iter] = _float(m.group(1))
        elif m := _RESTORE.search(line):
            log.restored_from.append(m.group(1))
    return log


def parse_log(path: str | os.PathLike) -> TrainingLog:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: training log not found")
    with open(path, encoding="utf-8", errors="replace") as handle:
        log = parse_lines(handle)
    if not log.loss and not log.test:
        raise ValueError(f"{path}: no Caffe training output found (no 'Iteration N ..., loss = '"
                         " or 'Test net output' lines)")
    return log


def sorted_series(series: Series) -> tuple[list[int], list[float]]:
    iters = sorted(series)
    return iters, [series[it] for it in iters]
