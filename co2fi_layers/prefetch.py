"""Background batch making: N worker processes fill whole batches into shared memory.

``depth`` slots, each a set of numpy arrays on an anonymous shared mmap, are created before the
workers are forked, so workers write straight into memory the layer reads. Batch i goes to
slot i % depth; the layer takes batches in order, and a slot is handed to batch i + depth as
soon as the layer is done with batch i. Since a batch depends only on (seed, batch index),
the stream is the same for any number of workers. ``workers=0`` makes batches in the calling
process (debugging, tests).

Workers are forked (the ``caffe`` tool embeds Python, so there is no interpreter to spawn);
they ignore SIGINT, leave when the layer closes them, and also when their parent dies.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import queue
import signal
import weakref
from collections.abc import Mapping
from typing import Protocol

import numpy as np

_POLL_S = 1.0


class BatchMaker(Protocol):
    def shapes(self) -> dict[str, tuple[int, ...]]: ...

    def fill(self, batch_index: int, outputs: Mapping[str, np.ndarray]) -> None: ...


def _slot_arrays(buffer: mmap.mmap, shapes: Mapping[str, tuple[int, ...]]
                 ) -> dict[str, np.ndarray]:
    arrays, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * 4
        arrays[name] = np.frombuffer(buffer, np.float32, int(np.prod(shape)), offset
                                     ).reshape(shape)
        offset += size
    return arrays


def _worker(maker: BatchMaker, slots: list[dict[str, np.ndarray]], tasks, results,
            parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # not the solver's handler (which only asks for a snapshot): terminate() must end a worker
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    while True:
        try:
            task = tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if task is None:
            return
        slot, batch_index = task
        try:
            maker.fill(batch_index, slots[slot])
            results.put((slot, batch_index, None))
        except Exception as exc:  # noqa: BLE001 - handed to the layer, which raises it
            results.put((slot, batch_index, exc))


class Prefetcher:
    """Yields the batches 0, 1, 2, ... of ``maker`` from ``workers`` background processes."""

    def __init__(self, maker: BatchMaker, workers: int = 2, depth: int | None = None,
                 first_batch: int = 0):
        self.maker = maker
        self.shapes = maker.shapes()
        self.workers = max(0, workers)
        self.depth = max(1, depth if depth is not None else self.workers + 1)
        slot_bytes = sum(int(np.prod(s)) * 4 for s in self.shapes.values())
        self._buffers = [mmap.mmap(-1, max(1, slot_bytes)) for _ in range(self.depth)]
        self._slots = [_slot_arrays(b, self.shapes) for b in self._buffers]
        self._next = first_batch  # the batch next() returns
        self._held: int | None = None  # slot the caller is reading
        self._held_batch = -1
        self._ready: dict[int, tuple[int, BaseException | None]] = {}
        self._processes: list[multiprocessing.process.BaseProcess] = []
        if self.workers:
            ctx = multiprocessing.get_context("fork")
            self._tasks = ctx.Queue()
            self._results = ctx.Queue()
            for _ in range(self.workers):
                p = ctx.Process(target=_worker, daemon=True,
                                args=(maker, self._slots, self._tasks, self._results,
                                      os.getpid()))
                p.start()
                self._processes.append(p)
            for i in range(self.depth):
                self._tasks.put((i, first_batch + i))
            self._finalizer = weakref.finalize(self, _shutdown, self._processes, self._tasks)

    def next(self) -> dict[str, np.ndarray]:
        """The next batch; its arrays stay valid until the following call."""
        batch_index = self._next
        slot = batch_index % self.depth
        if self._held is not None and self.workers:
            self._tasks.put((self._held, self._held_batch + self.depth))
        self._held = None
        if not self.workers:
            self.maker.fill(batch_index, self._slots[slot])
        else:
            while batch_index not in self._ready:
                self._collect()
            slot, error = self._ready.pop(batch_index)
            if error is not None:
                raise error
        self._held, self._held_batch = slot, batch_index
        self._next += 1
        return self._slots[slot]

    def _collect(self) -> None:
        while True:
            try:
                slot, batch_index, error = self._results.get(timeout=_POLL_S)
                break
            except queue.Empty:
                dead = [p for p in self._processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"prefetch worker {dead[0].pid} died "
                                       f"(exit code {dead[0].exitcode})") from None
        self._ready[batch_index] = (slot, error)

    def close(self) -> None:
        """Stops the workers (idempotent)."""
        if self.workers:
            self._finalizer()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shutdown(processes, tasks) -> None:
    for _ in processes:
        try:
            tasks.put(None)
        except (OSError, ValueError):
            break
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
        if p.is_alive():  # e.g. stuck on a queue lock that a killed worker held
            p.kill()
            p.join(timeout=5)
