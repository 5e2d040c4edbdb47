"""Child process of the training driver: steps a pycaffe solver and watches the loss.

Runs as `python -m co2fi_tools.solver_worker`, so that Caffe's glog output (stderr) can be
written to the run's log and parsed by the parent, exactly as for the `caffe train` tool.
Exit codes: 0 done, 3 diverged (a snapshot was written first), 2 bad arguments, 130 stopped
by SIGINT or SIGTERM (Ctrl-C, or the driver died: it asks the kernel for SIGINT then) after the
step in progress, with a snapshot.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys

EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


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


def main(argv: list[str] | None = None) -> int:
    stop: list[int] = []

    def request_stop(signum, frame):  # finish the step, snapshot, exit
        stop.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    ap = argparse.ArgumentParser(prog="co2fi_tools.solver_worker")
    ap.add_argument("--solver", required=True)
    ap.add_argument("--restore", help="a .solverstate to resume from")
    ap.add_argument("--weights", help="a .caffemodel to start from (copied by layer name)")
    ap.add_argument("--max-iter", type=int, required=True)
    ap.add_argument("--explode-factor", type=float, default=100.0)
    ap.add_argument("--gpu", type=int, default=-1)
    args = ap.parse_args(argv)

    import caffe

    if args.gpu >= 0:
        caffe.set_device(args.gpu)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    solver = caffe.get_solver(args.solver)
    if args.restore:
        solver.restore(args.restore)
    elif args.weights:
        solver.net.copy_from(args.weights)
    watch = DivergenceWatch(args.explode_factor)
    # Net::Init stores each loss top's weight in its diff; other outputs have weight 0.
    weights = {b: float(solver.net.blobs[b].diff.flat[0]) for b in solver.net.outputs
               if solver.net.blobs[b].count}
    while solver.iter < args.max_iter:
        if stop:
            solver.snapshot()
            print(f"co2fi: training interrupted (signal {stop[0]}); snapshot written at "
                  f"iteration {solver.iter}", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        solver.step(1)
        loss = sum(w * float(solver.net.blobs[b].data.sum()) for b, w in weights.items() if w)
        reason = watch.check(solver.iter, loss)
        if reason:
            solver.snapshot()
            print(f"co2fi: training stopped: {reason}; snapshot written at iteration "
                  f"{solver.iter}", file=sys.stderr, flush=True)
            return EXIT_DIVERGED
    solver.snapshot()
    return 0


if __name__ == "__main__":
    sys.exit(main())
