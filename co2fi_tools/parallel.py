"""Experiments side by side: each in a child process of its own, at most ``jobs`` at a time.

`make claims` trains its seeds so (``--jobs``): on the 2-core machine two seeds with one BLAS
thread each did about twice the work of one seed with two (docs/benchmarks/claims-cpu.md).
Each experiment keeps its own folder, lock, logs and resume; a child that fails stops the
others (they snapshot, as on Ctrl-C) and its one line is raised here; Ctrl-C stops them all.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from collections.abc import Callable, Sequence

from co2fi_tools.pipeline import Experiment, run_experiment
from co2fi_tools.safe_io import error_line

#: Seconds between looks at the children while none has reported.
_POLL_S = 2.0
#: Seconds the children have to stop on a Ctrl-C of their own before they are asked.
_OWN_STOP_S = 10.0
#: Seconds a stopped child has to snapshot and exit before it is killed.
_STOP_GRACE_S = 120.0


def _child(index: int, exp: Experiment, reports: multiprocessing.Queue) -> None:
    """Run one experiment; report (index, None) when done, (index, the error's line) if not."""
    try:
        run_experiment(exp)
    except KeyboardInterrupt:
        reports.put((index, "interrupted"))
        return
    except Exception as exc:  # noqa: BLE001 - the parent says it in one line
        reports.put((index, f"{exp.out}: {error_line(exc)}"))
        return
    reports.put((index, None))


def run_side_by_side(experiments: Sequence[Experiment], jobs: int,
                     on_done: Callable[[int], None] = lambda index: None) -> None:
    """Run every experiment, ``jobs`` at a time, in the order given; ``on_done(i)`` after the
    i-th finishes. RuntimeError with the first failure's line (the others stopped first)."""
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
    context = multiprocessing.get_context("spawn")  # no Caffe state forked into a child
    reports = context.Queue()
    pending = list(enumerate(experiments))
    running: dict[int, multiprocessing.process.BaseProcess] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                index, exp = pending.pop(0)
                child = context.Process(target=_child, args=(index, exp, reports),
                                        name=f"co2fi-{exp.out.name}")
                child.start()
                running[index] = child
            try:
                index, error = reports.get(timeout=_POLL_S)
            except queue.Empty:
                index, error = _silent_death(running, experiments)
                if index is None:
                    continue
                try:  # a child that has just ended may have its report still on the way
                    index, error = reports.get(timeout=_POLL_S)
                except queue.Empty:
                    pass
            running.pop(index).join()
            if error is not None:
                pending.clear()
                _stop(running)
                raise RuntimeError(error)
            on_done(index)
    except KeyboardInterrupt:
        # Ctrl-C reached the children too (one process group): they snapshot and end; a SIGINT
        # sent to this process alone is passed on to those still running after a while
        _stop(running, first_wait_s=_OWN_STOP_S)
        raise


def _silent_death(running: dict, experiments: Sequence[Experiment]
                  ) -> tuple[int | None, str | None]:
    """A child that exited without a report (killed, or a Caffe abort): its index and line."""
    for index, child in running.items():
        if not child.is_alive() and child.exitcode is not None:
            return index, (f"{experiments[index].out}: its process ended with exit code "
                           f"{child.exitcode} without a word (killed, or a Caffe abort: see "
                           "the train.log of its last stage under runs/)")
    return None, None


def _stop(running: dict, first_wait_s: float = 0.0) -> None:
    """Ask the running children to stop (SIGINT: they snapshot) and wait for them; with
    ``first_wait_s``, give them that long to stop on their own first."""
    for child in running.values():
        child.join(first_wait_s)
    for child in running.values():
        if child.is_alive() and child.pid is not None:
            try:
                os.kill(child.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for child in running.values():
        child.join(_STOP_GRACE_S)
        if child.is_alive():
            child.kill()
            child.join()
    running.clear()
