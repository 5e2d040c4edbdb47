"""Child process of the training driver: steps a pycaffe solver and watches the loss.

Runs as `python -m co2fi_tools.training.solver_worker`, so that Caffe's glog output (stderr) can be
written to the run's log and parsed by the parent, exactly as for the `caffe train` tool.
With ``--gpus 0,1,...`` it trains data-parallel as BVLC's python/train.py does: one solver
process per GPU joined by pycaffe's NCCL (rank 0's weights broadcast, gradients all-reduced),
rank 0 snapshotting, testing, watching the loss and writing ``--tensorboard`` event files.
Exit codes: 0 done, 3 diverged (a snapshot was written first), 2 bad arguments or no NCCL,
4 an error said in one line (``co2fi: error: <file>: <problem>``, e.g. a missing frame file),
130 stopped by SIGINT or SIGTERM (Ctrl-C, or the driver died: it asks the kernel for SIGINT
then) after the step in progress, with a snapshot.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
import traceback
from pathlib import Path

from co2fi_tools.safe_io import error_line

EXIT_DIVERGED = 3
EXIT_USAGE = 2
#: An error the worker named in one line (ERROR_PREFIX), e.g. a missing frame file.
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130
#: The one line of an error, for the driver to show instead of the log's tail.
ERROR_PREFIX = "co2fi: error: "

#: Signals received; the training loop finishes the step in progress, snapshots and exits.
_stop: list[int] = []


def _request_stop(signum, frame) -> None:
    _stop.append(signum)


class DivergenceWatch:
    """Stops training on a non-finite loss or one that explodes past its early level."""

    def __init__(self, factor: float, warmup: int = 10) -> None:
        self.factor = factor
        self.warmup = warmup
        self.early: list[float] = []

    def check(self, iteration: int, loss: float) -> str | None:
        """None while the loss is sane, else the reason to stop."""
        if not math.isfinite(loss):
            return f"loss is {loss} at iteration {iteration}"
        if len(self.early) < self.warmup:
            self.early.append(loss)
            return None
        reference = max(sum(self.early) / len(self.early), 1e-6)
        if self.factor > 0 and loss > self.factor * reference:
            return (f"loss exploded to {loss:.4g} at iteration {iteration} "
                    f"(more than {self.factor:g} x its early mean {reference:.4g})")
        return None


def _solver(args: argparse.Namespace, gpu: int, rank: int, world: int, uid):
    import caffe

    if gpu >= 0:
        caffe.set_device(gpu)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    if world > 1:
        caffe.set_solver_count(world)
        caffe.set_solver_rank(rank)
        caffe.set_multiprocess(True)
    solver = caffe.get_solver(args.solver)
    if args.restore:
        solver.restore(args.restore)
    elif args.weights:
        solver.net.copy_from(args.weights)
    if world > 1:
        nccl = caffe.NCCL(solver, uid)
        nccl.bcast()  # every rank starts from rank 0's weights
        solver.add_callback(nccl)
        if solver.param.layer_wise_reduce:
            solver.net.after_backward(nccl)
    return solver


class Publisher:
    """Moves each snapshot Caffe has written (into ``snapshots/.writing/``) into snapshots/
    once complete (co2fi_tools.training.runs.publish_snapshot); nothing to do for a solver
    whose snapshot_prefix is elsewhere."""

    def __init__(self, solver_file: str) -> None:
        from caffe.proto import caffe_pb2
        from google.protobuf import text_format

        from co2fi_tools.training.runs import STAGING

        param = text_format.Merge(Path(solver_file).read_text(), caffe_pb2.SolverParameter())
        prefix = Path(param.snapshot_prefix)
        self.prefix = prefix if prefix.parent.name == STAGING else None

    def __call__(self, iteration: int) -> None:
        if self.prefix is None:
            return
        from co2fi_tools.training.runs import publish_snapshot

        publish_snapshot(self.prefix, iteration)


def snapshot(solver, publish: Publisher) -> None:
    solver.snapshot()
    publish(solver.iter)


def train_rank(args: argparse.Namespace, gpu: int, rank: int = 0, world: int = 1,
               uid=None) -> int:
    """Step one solver to --max-iter; rank 0 watches the loss, snapshots, logs the board."""
    solver = _solver(args, gpu, rank, world, uid)
    publish = Publisher(args.solver)
    watch = DivergenceWatch(args.explode_factor)
    # Net::Init stores each loss top's weight in its diff; other outputs have weight 0.
    weights = {b: float(solver.net.blobs[b].diff.flat[0]) for b in solver.net.outputs
               if solver.net.blobs[b].count}
    board = None
    if args.tensorboard and rank == 0:
        from co2fi_tools.training.board import TrainingBoard

        board = TrainingBoard(args.tensorboard, {b: w for b, w in weights.items() if w})
    try:
        while solver.iter < args.max_iter:
            if _stop:
                if rank == 0:
                    snapshot(solver, publish)
                    print(f"co2fi: training interrupted (signal {_stop[0]}); snapshot written "
                          f"at iteration {solver.iter}", file=sys.stderr, flush=True)
                return EXIT_INTERRUPTED
            # numbered as Caffe's log: the loss of iteration i and the rate of its update
            iteration, lr = solver.iter, getattr(solver, "lr", None)
            solver.step(1)
            if rank:
                continue
            publish(solver.iter)  # Caffe snapshots inside step() every `snapshot` iterations
            losses = {b: float(solver.net.blobs[b].data.sum()) for b, w in weights.items() if w}
            loss = sum(weights[b] * v for b, v in losses.items())
            if board is not None:
                board.log(iteration, losses, lr)
            reason = watch.check(solver.iter, loss)
            if reason:
                snapshot(solver, publish)
                print(f"co2fi: training stopped: {reason}; snapshot written at iteration "
                      f"{solver.iter}", file=sys.stderr, flush=True)
                return EXIT_DIVERGED
        if rank == 0:
            snapshot(solver, publish)
    finally:
        if board is not None:
            board.close()
    return 0


def _rank_process(args: argparse.Namespace, gpus: tuple[int, ...], rank: int, uid) -> None:
    sys.exit(train_rank(args, gpus[rank], rank, len(gpus), uid))


def train_data_parallel(args: argparse.Namespace, gpus: tuple[int, ...]) -> int:
    """One solver process per GPU; if one fails (or rank 0 stops a diverging run), the others
    are ended and its exit code returned."""
    import multiprocessing

    import caffe

    if not caffe.has_nccl():
        print(f"co2fi: error: --gpus {','.join(map(str, gpus))}: this Caffe build has no NCCL; "
              "build it with tools/install_caffe.sh --cuda on (NCCL is on for CUDA builds)",
              file=sys.stderr, flush=True)
        return EXIT_USAGE
    uid = caffe.NCCL.new_uid()
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_rank_process, args=(args, gpus, rank, uid), daemon=True)
             for rank in range(len(gpus))]
    for p in procs:
        p.start()
    try:
        while True:
            codes = [p.exitcode for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed or all(c == 0 for c in codes):
                return failed[0] if failed else 0
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="co2fi_tools.training.solver_worker")
    ap.add_argument("--solver", required=True)
    ap.add_argument("--restore", help="a .solverstate to resume from")
    ap.add_argument("--weights", help="a .caffemodel to start from (copied by layer name)")
    ap.add_argument("--max-iter", type=int, required=True)
    ap.add_argument("--explode-factor", type=float, default=100.0)
    ap.add_argument("--gpu", type=int, default=-1)
    ap.add_argument("--gpus", help="data-parallel on these GPUs, e.g. 0,1 (pycaffe NCCL)")
    ap.add_argument("--tensorboard", help="write TensorBoard event files here (rank 0)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    args = parse_args(argv)
    if args.gpus:
        from co2fi_tools.training.multigpu import parse_gpus

        try:
            gpus = parse_gpus(args.gpus)
        except ValueError as exc:
            print(f"co2fi: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if len(gpus) > 1:
            return train_data_parallel(args, gpus)
        args.gpu = gpus[0]
    try:
        return train_rank(args, args.gpu)
    except Exception as exc:  # noqa: BLE001 - the driver shows the last line, the log all
        from data_prep.errors import DataError

        if not isinstance(exc, DataError | OSError):
            traceback.print_exc()
        print(f"{ERROR_PREFIX}{error_line(exc)}", file=sys.stderr, flush=True)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
