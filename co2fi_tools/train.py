"""Training driver: one Caffe solver run in its own folder, through pycaffe or `caffe train`.

A run folder (co2fi_tools.runs) holds the config, the code revision and the seed, this run's
train net (its data layers pointed at the run's lists), the solver, the log and the snapshots.
Training resumes from the newest snapshot; a finished run (final.caffemodel) is not redone.
A NaN or exploding loss stops training with a snapshot and a clear message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from google.protobuf import text_format

from co2fi_layers.caffe_env import caffe_binary, caffe_tool_env
from co2fi_tools.runs import Run, atomic_write_text
from co2fi_tools.solver_worker import EXIT_DIVERGED, DivergenceWatch

BACKENDS = ("pycaffe", "tool")
DATA_LAYER_MODULES = ("co2fi_layers.clip_data", "co2fi_layers.period_data")
ITER_LOSS_RE = re.compile(r"Iteration (\d+) \(.*\), loss = (\S+)")
ITER_RE = re.compile(r"Iteration (\d+)")
SNAPSHOT_DONE = "Snapshotting solver state to"
DEFAULT_KEEP_SNAPSHOTS = 3


class TrainingError(RuntimeError):
    """Training could not start or did not finish; the message says why and where."""


@dataclass
class TrainJob:
    """What one run trains and on what."""

    name: str
    train_net: str  # generated train/val prototxt
    solver: str  # generated solver prototxt (its `net` is replaced)
    data: dict = field(default_factory=dict)  # param_str keys to set in every data layer
    #: A dataset folder holding frames/ and lists/ (data_prep's layout); the generated nets'
    #: default paths data/<dataset>/... are moved there, to this split, and the train lists to
    #: their subset tag (e.g. "frac8" for the grouper's 1/8 of the training data).
    data_root: str | None = None
    split: int = 1
    train_list_tag: str | None = None
    num_classes: int | None = None  # checked against the lists' labels
    max_iter: int | None = None
    snapshot: int | None = None
    seed: int = 0
    init: dict = field(default_factory=dict)  # source key -> caffemodel (co2fi_tools.stage_weights)
    meta: dict = field(default_factory=dict)  # variant, preset, dataset, ... (recorded)
    #: Snapshots kept on disk (the newest K; older ones are deleted as new ones are written).
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS
    #: Data-parallel GPUs (pycaffe + NCCL, co2fi_tools.multigpu); () = the single --gpu.
    gpus: tuple[int, ...] = ()
    #: Each GPU's batch; iter_size makes up the net's batch (None: the batch split over gpus).
    batch_per_gpu: int | None = None


def _caffe_pb2():
    from caffe.proto import caffe_pb2

    return caffe_pb2


def read_prototxt(path: str | Path, message):
    try:
        text_format.Merge(Path(path).read_text(), message)
    except (OSError, text_format.ParseError) as exc:
        raise TrainingError(f"{path}: cannot read prototxt: {exc}") from exc
    return message


def _list_labels(path: Path) -> list[int]:
    labels = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TrainingError(f"{path}: cannot read the data list: {exc}") from exc
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3 or not parts[-1].lstrip("-").isdigit():
            raise TrainingError(f"{path}:{lineno}: expected '<frame_dir> <num_frames> <label>'")
        labels.append(int(parts[-1]))
    if not labels:
        raise TrainingError(f"{path}: the data list is empty")
    return labels


def check_data(params: dict, num_classes: int | None, where: str) -> None:
    """The lists and the frames root exist, and labels fit the net's classes."""
    root = params.get("root")
    if root is not None and not Path(root).is_dir():
        raise TrainingError(f"{where}: frames root {root} is not a folder")
    for key in ("list", "rgb_list", "flow_list"):
        if key not in params:
            continue
        labels = _list_labels(Path(params[key]))
        if num_classes is not None and max(labels) >= num_classes:
            raise TrainingError(
                f"{params[key]}: label {max(labels)} does not fit the net's {num_classes} classes "
                f"(labels must be 0..{num_classes - 1})")
        if min(labels) < 0:
            raise TrainingError(f"{params[key]}: negative label {min(labels)}")


def net_num_classes(net) -> int | None:
    """Classes of a generated net: the num_output of its classifier(s) before a softmax loss."""
    producers = {top: layer for layer in net.layer for top in layer.top}
    outs = set()
    for layer in net.layer:
        if layer.type in ("SoftmaxWithLoss", "Softmax", "Accuracy") and layer.bottom:
            src = producers.get(layer.bottom[0])
            while src is not None and src.type in ("Reshape", "Flatten", "Slice", "Split"):
                src = producers.get(src.bottom[0])
            if src is not None and src.type == "InnerProduct":
                outs.add(src.inner_product_param.num_output)
    return outs.pop() if len(outs) == 1 else None


PATH_KEYS = ("list", "rgb_list", "flow_list", "root")


def relocate(params: dict, job: TrainJob, is_test: bool) -> dict:
    """Point a data layer's default paths (data/<dataset>/...) at the job's data."""
    out = dict(params)
    for key in PATH_KEYS:
        value = out.get(key)
        if not isinstance(value, str):
            continue
        if job.data_root and value.startswith("data/") and value.count("/") >= 2:
            value = str(Path(job.data_root) / value.split("/", 2)[2])
        if key != "root":
            value = re.sub(r"_split\d+\.txt$", f"_split{job.split}.txt", value)
            if job.train_list_tag and not is_test:
                value = value[: -len(".txt")] + f"_{job.train_list_tag}.txt"
        out[key] = value
    return out


def dataset_source_params(data_root: str | None) -> dict:
    """How the data layers read a dataset folder's frames and lists (its source.json: the
    rawframes layout and list counting of other tools), {} for our own extraction."""
    from data_prep.errors import DataError
    from data_prep.rawframes import read_source_params

    try:
        return read_source_params(data_root)
    except DataError as exc:
        raise TrainingError(str(exc)) from None


def rewrite_train_net(job: TrainJob, out: Path) -> None:
    """The job's train net with every data layer's param_str updated by job.data."""
    caffe_pb2 = _caffe_pb2()
    net = read_prototxt(job.train_net, caffe_pb2.NetParameter())
    classes = net_num_classes(net)
    if job.num_classes is not None and classes is not None and classes != job.num_classes:
        raise TrainingError(f"{job.train_net}: the net has {classes} classes, the data "
                            f"{job.num_classes}; regenerate the net with --num-classes")
    found = 0
    for layer in net.layer:
        if layer.type == "Python" and layer.python_param.module in DATA_LAYER_MODULES:
            params = json.loads(layer.python_param.param_str or "{}")
            is_test = any(r.phase == caffe_pb2.TEST for r in layer.include)
            overrides = dict(job.data)
            if is_test and "test" in overrides:
                overrides.update(overrides.pop("test"))
            overrides.pop("test", None)
            params = relocate(params, job, is_test)
            params.update(dataset_source_params(job.data_root))
            params.update(overrides)
            params.setdefault("seed", job.seed)
            check_data(params, classes or job.num_classes, f"{job.train_net} layer {layer.name}")
            layer.python_param.param_str = json.dumps(params, sort_keys=True)
            found += 1
    if (job.data or job.data_root) and not found:
        raise TrainingError(f"{job.train_net}: no co2fi data layer to point at the data")
    atomic_write_text(out, text_format.MessageToString(net))


def apply_batch_plan(job: TrainJob, run: Run):
    """Multi-GPU / small-card settings: each TRAIN data layer's batch becomes the plan's
    per-GPU batch and the solver's iter_size makes up the net's batch (co2fi_tools.multigpu).
    None when the job asks for neither."""
    from co2fi_tools.multigpu import plan_batches

    if not job.gpus and job.batch_per_gpu is None:
        return None
    caffe_pb2 = _caffe_pb2()
    net = read_prototxt(run.train_net, caffe_pb2.NetParameter())
    solver = read_prototxt(run.solver, caffe_pb2.SolverParameter())
    train_layers = [layer for layer in net.layer
                    if layer.type == "Python" and layer.python_param.module in DATA_LAYER_MODULES
                    and not any(r.phase == caffe_pb2.TEST for r in layer.include)]
    if not train_layers:
        raise TrainingError(f"{job.train_net}: no training data layer to split the batch of")
    params = [json.loads(layer.python_param.param_str or "{}") for layer in train_layers]
    from netgen import paper

    batches = {int(p.get("batch_size", paper.BATCH_SIZE)) for p in params}
    if len(batches) != 1:
        raise TrainingError(f"{job.train_net}: training data layers differ in batch_size "
                            f"{sorted(batches)}")
    effective = batches.pop() * max(1, solver.iter_size)
    try:
        plan = plan_batches(effective, tuple(job.gpus) or (0,), job.batch_per_gpu)
    except ValueError as exc:
        raise TrainingError(f"{job.name}: {exc}") from None
    for layer, p in zip(train_layers, params, strict=True):
        p["batch_size"] = plan.batch_per_gpu
        layer.python_param.param_str = json.dumps(p, sort_keys=True)
    solver.iter_size = plan.iter_size
    atomic_write_text(run.train_net, text_format.MessageToString(net))
    atomic_write_text(run.solver, text_format.MessageToString(solver))
    return plan


def write_solver(job: TrainJob, run: Run, gpu: int) -> int:
    caffe_pb2 = _caffe_pb2()
    solver = read_prototxt(job.solver, caffe_pb2.SolverParameter())
    solver.ClearField("train_net")
    solver.net = str(run.train_net.resolve())
    solver.snapshot_prefix = str(run.snapshot_prefix.resolve())
    if job.max_iter is not None:
        solver.max_iter = job.max_iter
    if job.snapshot is not None:
        solver.snapshot = job.snapshot
    solver.random_seed = job.seed
    modes = caffe_pb2.SolverParameter
    solver.solver_mode = modes.GPU if gpu >= 0 else modes.CPU
    run.snapshots.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.solver, text_format.MessageToString(solver))
    return solver.max_iter


def _stream(cmd: list[str], run: Run, max_iter: int, start: int, label: str,
            explode_factor: float, backend: str, keep_snapshots: int | None = None) -> int:
    """Run cmd, appending its stderr to the run's log, showing progress, watching the loss."""
    from tqdm import tqdm

    watch = DivergenceWatch(explode_factor, warmup=3)
    diverged = None
    env = caffe_tool_env()
    with open(run.log, "a") as log, tqdm(total=max_iter, initial=start, desc=label, unit="it",
                                         leave=True, dynamic_ncols=True) as bar:
        log.write(f"co2fi: {' '.join(cmd)}\n")
        # glog writes to stderr; the layers' own prints go to stdout: both into the log.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, cwd=run.path)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if keep_snapshots and SNAPSHOT_DONE in line:
                run.prune_snapshots(keep_snapshots)
            m = ITER_RE.search(line)
            if m and int(m.group(1)) > bar.n:
                bar.update(min(int(m.group(1)), max_iter) - bar.n)
            m = ITER_LOSS_RE.search(line)
            if m:
                bar.set_postfix(loss=m.group(2))
                if backend == "tool" and diverged is None:
                    try:
                        loss = float(m.group(2))
                    except ValueError:
                        loss = float("nan")
                    diverged = watch.check(int(m.group(1)), loss)
                    if diverged:
                        log.write(f"co2fi: training stopped: {diverged}\n")
                        proc.send_signal(signal.SIGINT)  # caffe train: stop and snapshot
            if line.startswith("co2fi: training stopped"):
                diverged = line.split("co2fi: training stopped: ", 1)[1].strip()
        rc = proc.wait()
    if diverged:
        state = run.latest_solverstate()
        where = f"; snapshot: {state[1]}" if state else ""
        raise TrainingError(f"{run.name}: training stopped: {diverged}{where}; log: {run.log}")
    if rc == EXIT_DIVERGED:
        raise TrainingError(f"{run.name}: training diverged; log: {run.log}")
    return rc


def train(job: TrainJob, run_dir: str | Path, backend: str = "pycaffe", gpu: int = -1,
          explode_factor: float = 100.0) -> Path:
    """Train job in run_dir (resuming if it was interrupted); returns final.caffemodel."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {BACKENDS}")
    if job.keep_snapshots < 1:
        raise ValueError(f"--keep-snapshots must be at least 1, got {job.keep_snapshots}")
    if len(job.gpus) > 1 and backend != "pycaffe":
        raise ValueError("--gpus with several GPUs needs --backend pycaffe (caffe train refuses "
                         "multi-GPU training of nets with Python layers)")
    if job.gpus:
        gpu = job.gpus[0]
    run = Run(run_dir, job.name)
    if run.is_complete():
        return run.final_weights
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(dict(asdict(job), backend=backend, gpu=gpu, **job.meta))
    rewrite_train_net(job, run.train_net)
    max_iter = write_solver(job, run, gpu)
    plan = apply_batch_plan(job, run)

    state = run.latest_solverstate()
    start = state[0] if state else 0
    weights = None
    if state is None and job.init:
        from co2fi_tools.stage_weights import initialise_from_stages

        report = initialise_from_stages(run.train_net, run.init_weights, job.init)
        with open(run.log, "a") as log:
            log.write(f"co2fi: initial weights {run.init_weights}\n{report}\n")
        weights = run.init_weights
    if start < max_iter:
        if backend == "pycaffe":
            cmd = [sys.executable, "-m", "co2fi_tools.solver_worker",
                f"--solver={run.solver}", f"--max-iter={max_iter}", f"--gpu={gpu}",
                f"--explode-factor={explode_factor}", f"--tensorboard={run.tensorboard}"]
            if plan is not None and len(plan.gpus) > 1:
                cmd.append(f"--gpus={','.join(map(str, plan.gpus))}")
            if state:
                cmd.append(f"--restore={state[1]}")
            elif weights:
                cmd.append(f"--weights={weights}")
        else:
            cmd = [str(caffe_binary()), "train", f"--solver={run.solver}"]
            if gpu >= 0:
                cmd.append(f"--gpu={gpu}")
            if state:
                cmd.append(f"--snapshot={state[1]}")
            elif weights:
                cmd.append(f"--weights={weights}")
        rc = _stream(cmd, run, max_iter, start, job.name, explode_factor, backend,
                     job.keep_snapshots)
        if rc != 0:
            tail = "".join(run.log.read_text().splitlines(keepends=True)[-15:])
            raise TrainingError(f"{job.name}: training exited with code {rc}; log: {run.log}\n"
                                f"{tail}")
    state = run.latest_solverstate()
    if state is None or state[0] < max_iter:
        raise TrainingError(f"{job.name}: no snapshot at iteration {max_iter} in {run.snapshots}")
    model = state[1].with_name(state[1].name.replace(".solverstate", ".caffemodel"))
    tmp = run.final_weights.with_name(".final.caffemodel.tmp")
    shutil.copyfile(model, tmp)
    os.replace(tmp, run.final_weights)
    run.prune_snapshots(job.keep_snapshots)
    return run.final_weights


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="co2fi-train", description="Train one generated net with a Caffe solver.")
    ap.add_argument("--train-net", required=True, help="generated *_train.prototxt")
    ap.add_argument("--solver", required=True, help="generated *_solver.prototxt")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--name", help="snapshot name (default: the run folder's name)")
    ap.add_argument("--data-root", help="dataset folder with frames/ and lists/ (data_prep layout)")
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--train-list-tag", help="train on <list>_<tag>.txt, e.g. frac8 (grouper)")
    ap.add_argument("--data", default="{}", help="JSON of data-layer params: list, root, ...")
    ap.add_argument("--num-classes", type=int)
    ap.add_argument("--max-iter", type=int)
    ap.add_argument("--snapshot", type=int)
    ap.add_argument("--keep-snapshots", type=int, default=DEFAULT_KEEP_SNAPSHOTS,
                    help="snapshots kept on disk, newest first (default %(default)s); "
                         "final.caffemodel is kept besides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", action="append", default=[], metavar="KEY=CAFFEMODEL",
                    help="initial weights (see co2fi_tools.stage_weights for the keys)")
    ap.add_argument("--backend", choices=BACKENDS, default="pycaffe")
    ap.add_argument("--gpu", type=int, default=-1)
    ap.add_argument("--gpus", help="data-parallel training on these GPUs, e.g. 0,1 (pycaffe "
                                   "NCCL, one solver process a GPU)")
    ap.add_argument("--batch-per-gpu", type=int,
                    help="each GPU's batch; iter_size keeps the net's batch (paper: 16)")
    args = ap.parse_args(argv)
    init = dict(kv.split("=", 1) for kv in args.init)
    job = TrainJob(name=args.name or Path(args.run_dir).name, train_net=args.train_net,
                   solver=args.solver, data=json.loads(args.data), data_root=args.data_root,
                   split=args.split, train_list_tag=args.train_list_tag,
                   num_classes=args.num_classes,
                   max_iter=args.max_iter, snapshot=args.snapshot, seed=args.seed, init=init,
                   keep_snapshots=args.keep_snapshots, batch_per_gpu=args.batch_per_gpu)
    try:
        if args.gpus:
            from co2fi_tools.multigpu import parse_gpus

            job.gpus = parse_gpus(args.gpus)
        out = train(job, args.run_dir, args.backend, args.gpu)
    except (TrainingError, ValueError) as exc:
        print(f"co2fi-train: error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
