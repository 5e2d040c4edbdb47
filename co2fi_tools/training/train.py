"""Training driver: one Caffe solver run in its own folder, through pycaffe or `caffe train`.

A run folder (co2fi_tools.training.runs) holds the config, the code revision and the seed, this
run's train net (its data layers pointed at the run's lists), the solver, the log and the snapshots.
Training resumes from the newest snapshot; a finished run (final.caffemodel) is not redone.
A NaN or exploding loss stops training with a snapshot and a clear message.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from google.protobuf import text_format

from co2fi_layers.caffe_env import caffe_binary, caffe_tool_env
from co2fi_tools.safe_io import (
    FolderLock,
    LockHeld,
    atomic_path,
    disk_full,
    error_line,
    held_lock_fds,
    os_error_cause,
    with_path,
)
from co2fi_tools.training.runs import STAGING, Run, atomic_write_text, publish_snapshot
from co2fi_tools.training.solver_worker import ERROR_PREFIX, EXIT_DIVERGED, DivergenceWatch
from data_prep import lists

BACKENDS = ("pycaffe", "tool")
DATA_LAYER_MODULES = ("co2fi_layers.clip_data", "co2fi_layers.period_data")
ITER_LOSS_RE = re.compile(r"Iteration (\d+) \(.*\), loss = (\S+)")
ITER_RE = re.compile(r"Iteration (\d+)")
SNAPSHOT_DONE = "Snapshotting solver state to"
#: Caffe's log line before it writes a snapshot file (weights, then solver state).
SNAPSHOT_FILE_RE = re.compile(r"Snapshotting (?:solver state )?to \S+ (?:proto )?file (\S+)")
#: Caffe's CHECK when a protobuf cannot be written (io.cpp: WriteProtoToBinaryFile).
WRITE_CHECK = "Check failed: proto.SerializeToOstream"
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
    #: The solver's base learning rate (None: the generated solver's).
    base_lr: float | None = None
    #: The solver's stepsize, iterations between the rate's drops (None: the generated
    #: solver's).
    lr_step: int | None = None
    snapshot: int | None = None
    seed: int = 0
    #: Source key -> caffemodel (co2fi_tools.weights.stage_weights).
    init: dict = field(default_factory=dict)
    #: Weights of this same net to start from as they are (Caffe's --weights), e.g. a fusion
    #: stage's warm-up phase (netgen.schedule); instead of ``init``.
    weights: str | None = None
    meta: dict = field(default_factory=dict)  # variant, preset, dataset, ... (recorded)
    #: Snapshots kept on disk (the newest K; older ones are deleted as new ones are written).
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS
    #: Data-parallel GPUs (pycaffe + NCCL, co2fi_tools.training.multigpu); () = the single --gpu.
    gpus: tuple[int, ...] = ()
    #: Each GPU's batch; iter_size makes up the net's batch (None: the batch split over gpus).
    batch_per_gpu: int | None = None
    #: Iterations of this stage's data stream that its earlier runs read (a fusion stage's joint
    #: phase continues where its warm-up stopped, not at the warm-up's first batches); the
    #: phases of a stage share the batch plan.
    data_offset: int = 0


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


def relocate(params: dict, job: TrainJob, is_test: bool) -> dict:
    """A data layer's param_str with its list and frames paths set to the job's dataset folder:
    the split's ``val`` lists (test phase) or ``train`` lists (of the job's subset tag), named
    by data_prep.lists. Without a dataset folder the net's own paths stay."""
    if not job.data_root:
        if job.split != 1 or job.train_list_tag:
            raise TrainingError("--split / --train-list-tag name the lists of a dataset folder: "
                                "give --data-root (or the paths in --data)")
        return dict(params)
    subset, tag = ("val", None) if is_test else ("train", job.train_list_tag)
    paths = lists.data_layer_paths(lists.list_modalities(params), job.data_root, subset,
                                   job.split, tag)
    return {key: paths.get(key, value) for key, value in params.items()}


def dataset_source_params(data_root: str | None) -> dict:
    """How the data layers read a dataset folder's frames and lists (its source.json: the
    rawframes layout and list counting of other tools), {} for our own extraction."""
    from data_prep.errors import DataError
    from data_prep.rawframes import read_source_params

    try:
        return read_source_params(data_root)
    except DataError as exc:
        raise TrainingError(str(exc)) from None


def dataset_num_classes(data_root: str | os.PathLike) -> tuple[int | None, str]:
    """The classes of a dataset folder, from its lists/classes.txt (data_prep.lists writes it),
    and that file's path; (None, "") without one."""
    from data_prep.errors import DataError

    try:
        names = lists.read_class_names(lists.lists_dir(data_root))
    except (DataError, OSError, UnicodeDecodeError) as exc:
        raise TrainingError(error_line(exc) if isinstance(exc, OSError) else str(exc)) from None
    if names is None:
        return None, ""
    return len(names), str(lists.lists_dir(data_root) / lists.CLASSES_FILE)


def rewrite_train_net(job: TrainJob, out: Path) -> None:
    """The job's train net with every data layer's param_str updated by job.data."""
    caffe_pb2 = _caffe_pb2()
    net = read_prototxt(job.train_net, caffe_pb2.NetParameter())
    classes = net_num_classes(net)
    wanted, source = job.num_classes, "--num-classes"
    if wanted is None and job.data_root:  # the dataset says how many classes it has
        wanted, source = dataset_num_classes(job.data_root)
    if wanted is not None and classes is not None and classes != wanted:
        raise TrainingError(f"{job.train_net}: the net has {classes} classes, the data "
                            f"{wanted} ({source}); regenerate the net for the data's classes "
                            "(python -m netgen --synthetic-classes N for synthetic data; the "
                            "paper preset has UCF101's and HMDB51's) or pass the right "
                            "--num-classes here")
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
            # The run's seed draws its data order, periods and crops, as Caffe's random_seed
            # seeds its own data layers' shuffle (netgen writes 0); job.data may still set one.
            params["seed"] = job.seed
            params.update(overrides)
            check_data(params, classes or job.num_classes, f"{job.train_net} layer {layer.name}")
            layer.python_param.param_str = json.dumps(params, sort_keys=True)
            found += 1
    if (job.data or job.data_root) and not found:
        raise TrainingError(f"{job.train_net}: no co2fi data layer to point at the data")
    atomic_write_text(out, text_format.MessageToString(net))


def apply_batch_plan(job: TrainJob, run: Run):
    """Multi-GPU / small-card settings: each TRAIN data layer's batch becomes the plan's
    per-GPU batch and the solver's iter_size makes up the net's batch
    (co2fi_tools.training.multigpu).
    None when the job asks for neither."""
    from co2fi_tools.training.multigpu import plan_batches

    if not job.gpus and job.batch_per_gpu is None:
        return None
    caffe_pb2 = _caffe_pb2()
    net = read_prototxt(run.train_net, caffe_pb2.NetParameter())
    solver = read_prototxt(run.solver, caffe_pb2.SolverParameter())
    train_layers = train_data_layers(net)
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


def train_data_layers(net) -> list:
    """The project's data layers of a NetParameter that feed the TRAIN phase."""
    caffe_pb2 = _caffe_pb2()
    return [layer for layer in net.layer
            if layer.type == "Python" and layer.python_param.module in DATA_LAYER_MODULES
            and not any(r.phase == caffe_pb2.TEST for r in layer.include)]


def set_first_batch(run: Run, start: int) -> None:
    """Point the TRAIN data layers of the run's net at the batch a training at iteration
    ``start`` of its data stream needs (start x iter_size forward passes so far), so that a
    resumed run reads the batches an uninterrupted one reads."""
    caffe_pb2 = _caffe_pb2()
    net = read_prototxt(run.train_net, caffe_pb2.NetParameter())
    iter_size = max(1, read_prototxt(run.solver, caffe_pb2.SolverParameter()).iter_size)
    for layer in train_data_layers(net):
        params = json.loads(layer.python_param.param_str or "{}")
        params.pop("first_batch", None)
        if start:
            params["first_batch"] = start * iter_size
        layer.python_param.param_str = json.dumps(params, sort_keys=True)
    atomic_write_text(run.train_net, text_format.MessageToString(net))


def write_solver(job: TrainJob, run: Run, gpu: int) -> int:
    caffe_pb2 = _caffe_pb2()
    solver = read_prototxt(job.solver, caffe_pb2.SolverParameter())
    solver.ClearField("train_net")
    solver.net = str(run.train_net.resolve())
    # Caffe writes into the staging folder; complete snapshots are moved to run.snapshots
    solver.snapshot_prefix = str(run.staged_prefix.resolve())
    if job.max_iter is not None:
        solver.max_iter = job.max_iter
    if job.base_lr is not None:
        solver.base_lr = job.base_lr
    if job.lr_step is not None:
        solver.stepsize = job.lr_step
    if job.snapshot is not None:
        solver.snapshot = job.snapshot
    solver.random_seed = job.seed
    modes = caffe_pb2.SolverParameter
    solver.solver_mode = modes.GPU if gpu >= 0 else modes.CPU
    run.staging.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.solver, text_format.MessageToString(solver))
    return solver.max_iter


def run_iterations(run: Run) -> int:
    """Iterations of the run's solver (as write_solver wrote it)."""
    return read_prototxt(run.solver, _caffe_pb2().SolverParameter()).max_iter


class TrainingInterrupted(TrainingError):
    """Stopped by Ctrl-C (SIGINT) or SIGTERM, after a snapshot: rerun to resume."""


#: Exit status of an interrupted training (128 + SIGINT, as a shell reports Ctrl-C).
EXIT_INTERRUPTED = 130
#: prctl(2) option: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1


def _prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the driver's own handlers still stop it
        return None


#: Looked up here, not in the child: a forked child of a threaded process must not import.
_PRCTL = _prctl()


def _die_with_parent() -> None:
    """In the solver's process, before exec: get SIGINT when the driver dies (Linux), so that
    the solver snapshots and stops instead of training on as an orphan."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)


def settings_fingerprint(job: TrainJob) -> dict:
    """What decides a run's result: a rerun with other values must not reuse the run's work.

    The nets and solver by content, the initial weights by path, size and time; not the
    backend, the GPU or the snapshot interval."""
    def digest(path: str) -> str:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError as exc:
            raise TrainingError(f"{path}: cannot read: {exc.strerror}") from exc

    def stamp(path: str) -> str:
        try:
            st = Path(path).stat()
        except OSError:
            return f"{path} (missing)"
        return f"{path} ({st.st_size} bytes, modified {st.st_mtime_ns})"

    return {"name": job.name, "train_net": digest(job.train_net), "solver": digest(job.solver),
            "data": job.data, "data_root": job.data_root, "split": job.split,
            "train_list_tag": job.train_list_tag, "num_classes": job.num_classes,
            "max_iter": job.max_iter, "seed": job.seed, "batch_per_gpu": job.batch_per_gpu,
            "init": {k: stamp(v) for k, v in sorted(job.init.items())}, "meta": job.meta,
            # recorded only when set, so runs made before the option keep their fingerprint
            **({"base_lr": job.base_lr} if job.base_lr is not None else {}),
            **({"lr_step": job.lr_step} if job.lr_step is not None else {}),
            **({"data_offset": job.data_offset} if job.data_offset else {}),
            # Until 2026-12-07 every run's data layers drew with seed 0 whatever its seed.
            **({"data_seed": job.seed} if job.seed else {}),
            **({"weights": stamp(job.weights)} if job.weights is not None else {})}


def _follow(path: Path, offset: int, proc: subprocess.Popen):
    """Yield the complete lines appended to ``path`` after ``offset`` until ``proc`` exits."""
    buf = ""
    with open(path, errors="replace") as f:
        f.seek(offset)
        while True:
            chunk = f.read()
            if chunk:
                buf += chunk
                *lines, buf = buf.split("\n")
                yield from (line + "\n" for line in lines)
            elif proc.poll() is not None:
                rest = f.read()
                if not rest:
                    if buf:
                        yield buf
                    return
                buf += rest
            else:
                time.sleep(0.1)


def _stream(cmd: list[str], run: Run, max_iter: int, start: int, label: str,
            explode_factor: float, backend: str, keep_snapshots: int | None = None) -> int:
    """Run cmd with its output appended straight to the run's log (complete even if this
    process dies), showing progress from the log, watching the loss, keeping the newest
    ``keep_snapshots`` snapshots. Ctrl-C (or SIGTERM) stops the solver with a snapshot and
    raises TrainingInterrupted."""
    from tqdm import tqdm

    watch = DivergenceWatch(explode_factor, warmup=3)
    diverged = None
    interrupted = False
    env = caffe_tool_env()
    with open(run.log, "a") as log:
        log.write(f"co2fi: {' '.join(cmd)}\n")
        offset = log.tell()

    proc: subprocess.Popen | None = None
    stop_requests: list[int] = []

    def on_stop(signum, frame):
        # A flag, not KeyboardInterrupt: an exception raised wherever the loop happens to be
        # would leave it before the solver has written (and published) its last snapshot.
        stop_requests.append(signum)
        if proc is not None and len(stop_requests) == 1:
            proc.send_signal(signal.SIGINT)

    # Set explicitly: a process started in the background by a shell inherits SIGINT ignored,
    # and Python then installs no handler of its own.
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {signum: signal.signal(signum, on_stop)
                    for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open(run.log, "ab") as out, tqdm(total=max_iter, initial=start, desc=label,
                                               unit="it", leave=True, dynamic_ncols=True) as bar:
            # glog writes to stderr; the layers' own prints go to stdout: both into the log.
            # The solver keeps the run folder locked: a rerun after the driver was killed
            # waits for it to finish its last snapshot instead of training beside it.
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=run.path, preexec_fn=_die_with_parent,
                                    pass_fds=held_lock_fds(run.path))
            if stop_requests:  # a signal came before the solver started
                proc.send_signal(signal.SIGINT)
            writing = None  # the tool's snapshot whose solver state is being written
            for line in _follow(run.log, offset, proc):
                if stop_requests and not interrupted:
                    interrupted = True
                    bar.write(f"{label}: interrupted; stopping the solver with a snapshot")
                if writing is not None:  # a line after it: Caffe has written it
                    publish_snapshot(run.staged_prefix, writing)
                    writing = None
                if backend == "tool" and SNAPSHOT_DONE in line:
                    m = SNAPSHOT_FILE_RE.search(line)
                    it = m and re.search(r"_iter_(\d+)\.solverstate", m.group(1))
                    writing = int(it.group(1)) if it else None
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
                            with open(run.log, "a") as log:
                                log.write(f"co2fi: training stopped: {diverged}\n")
                            proc.send_signal(signal.SIGINT)  # caffe train: stop and snapshot
                if line.startswith("co2fi: training stopped"):
                    diverged = line.split("co2fi: training stopped: ", 1)[1].strip()
            rc = proc.wait()
            interrupted = interrupted or bool(stop_requests)
            if writing is not None and rc in (0, EXIT_INTERRUPTED):  # it exited normally
                publish_snapshot(run.staged_prefix, writing)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if interrupted:
        state = run.latest_solverstate(check=True)
        where = f"snapshot at iteration {state[0]}: {state[1]}" if state else "no snapshot"
        raise TrainingInterrupted(f"{run.name}: interrupted ({where}); rerun the same command "
                                  "to resume")
    if diverged or rc == EXIT_DIVERGED:
        state = run.latest_solverstate()
        where = f"; snapshot: {state[1]}" if state else ""
        raise TrainingError(
            f"{run.name}: training stopped: {diverged or 'diverged'}{where}; log: {run.log}. "
            f"Lower base_lr in the solver (or fix the data) and rerun with --restart to train "
            f"again from the start (the old run moves to {run.discarded}/)")
    return rc


def train(job: TrainJob, run_dir: str | Path, backend: str = "pycaffe", gpu: int = -1,
          explode_factor: float = 100.0, restart: bool = False) -> Path:
    """Train job in run_dir (resuming if it was interrupted); returns final.caffemodel.

    The run folder is locked while this runs. A folder made with other settings (see
    ``settings_fingerprint``) is an error unless ``restart``, which moves the old run to
    ``discarded/`` and trains from the start."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {BACKENDS}")
    if job.init and job.weights:
        raise ValueError(f"{job.name}: give init sources or weights to start from, not both")
    if job.keep_snapshots < 1:
        raise ValueError(f"--keep-snapshots must be at least 1, got {job.keep_snapshots}")
    if len(job.gpus) > 1 and backend != "pycaffe":
        raise ValueError("--gpus with several GPUs needs --backend pycaffe (caffe train refuses "
                         "multi-GPU training of nets with Python layers)")
    if job.gpus:
        gpu = job.gpus[0]
    run = Run(run_dir, job.name)
    settings = settings_fingerprint(job)
    with FolderLock(run.path, "training run"):
        if restart:
            moved = run.discard()
            if moved:
                print(f"co2fi-train: {run.name}: the previous run moved to {moved}",
                      file=sys.stderr)
        changed = run.settings_differences(settings)
        if changed:
            raise TrainingError(
                f"{run.path} was trained with other settings ({'; '.join(changed)}); use a new "
                "run folder (--run-dir; --out of the demo and run_experiment), or rerun "
                "tools/train.py with --restart to train again here")
        if run.is_complete():
            return run.final_weights
        try:
            return _train_locked(job, run, settings, backend, gpu, explode_factor)
        except OSError as exc:  # a write that names no file (the log's): name the run folder
            raise with_path(exc, run.path) from None


def _train_locked(job: TrainJob, run: Run, settings: dict, backend: str, gpu: int,
                  explode_factor: float) -> Path:
    rewrite_train_net(job, run.train_net)  # checks the data first: a refusal records nothing
    run.write_config(dict(asdict(job), backend=backend, gpu=gpu, settings=settings, **job.meta))
    max_iter = write_solver(job, run, gpu)
    plan = apply_batch_plan(job, run)

    for path in run.clear_staging():  # a snapshot write cut short: never resumed from
        with open(run.log, "a") as log:
            log.write(f"co2fi: removed {path}, a snapshot the last solver did not finish\n")
    state = run.latest_solverstate(check=True)
    for path, problem in run.unusable:
        note = (f"co2fi: snapshot {path.name} not used: {problem}; "
                f"{f'resuming from {state[1].name}' if state else 'starting over'}")
        print(f"co2fi-train: {run.name}: {note}", file=sys.stderr)
        with open(run.log, "a") as log:
            log.write(note + "\n")
    start = state[0] if state else 0
    set_first_batch(run, job.data_offset + start)
    weights = None
    if state is None and job.init:
        from co2fi_tools.weights.stage_weights import initialise_from_stages

        report = initialise_from_stages(run.train_net, run.init_weights, job.init, job.seed)
        with open(run.log, "a") as log:
            log.write(f"co2fi: initial weights {run.init_weights}\n{report}\n")
        weights = run.init_weights
    elif state is None and job.weights:
        if not Path(job.weights).is_file():
            raise TrainingError(f"{job.name}: initial weights {job.weights}: no such caffemodel")
        with open(run.log, "a") as log:
            log.write(f"co2fi: initial weights {job.weights} (as they are)\n")
        weights = job.weights
    if start < max_iter:
        if backend == "pycaffe":
            cmd = [sys.executable, "-m", "co2fi_tools.training.solver_worker",
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
        log_start = run.log.stat().st_size if run.log.exists() else 0
        rc = _stream(cmd, run, max_iter, start, job.name, explode_factor, backend,
                     job.keep_snapshots)
        if rc not in (0, EXIT_INTERRUPTED):
            _raise_solver_error(job, run, rc, log_start)
        if rc == EXIT_INTERRUPTED:
            raise TrainingInterrupted(f"{job.name}: the solver was interrupted; rerun the same "
                                      "command to resume")
        if rc != 0:
            tail = "".join(run.log.read_text().splitlines(keepends=True)[-15:])
            raise TrainingError(f"{job.name}: training exited with code {rc}; log: {run.log}\n"
                                f"{tail}")
    state = run.latest_solverstate(check=True)
    if state is None or state[0] < max_iter:
        raise TrainingError(f"{job.name}: no snapshot at iteration {max_iter} in {run.snapshots}")
    model = state[1].with_name(state[1].name.replace(".solverstate", ".caffemodel"))
    try:
        with atomic_path(run.final_weights) as tmp:
            shutil.copyfile(model, tmp)
    except OSError as exc:
        raise TrainingError(f"{run.final_weights}: {os_error_cause(exc)}; {job.name}: free "
                            "space and rerun the same command to write it") from exc
    run.prune_snapshots(job.keep_snapshots)
    with contextlib.suppress(OSError):  # empty once the solver is done
        run.staging.rmdir()
    return run.final_weights


def _raise_solver_error(job: TrainJob, run: Run, rc: int, log_start: int) -> None:
    """One line for a solver that failed with a known cause: the error it named
    (``co2fi: error: <file>: <problem>``), or a full disk (Caffe's CHECK abort while writing a
    snapshot); the cut-short snapshot is removed. Other failures come back to the caller."""
    try:
        with open(run.log, "rb") as f:
            f.seek(log_start)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    lines = text.splitlines()
    named = [line[len(ERROR_PREFIX):].strip() for line in lines if line.startswith(ERROR_PREFIX)]
    writing = [m.group(1) for line in lines if (m := SNAPSHOT_FILE_RE.search(line))]
    removed = run.clear_staging()
    if WRITE_CHECK in text or (not named and disk_full(run.staging)):
        state = run.latest_solverstate(check=True)
        resume = (f"resume from iteration {state[0]}" if state else "train")
        # named where it would have gone: the staging folder is emptied
        where = (writing[-1] if writing else str(removed[0]) if removed
                 else str(run.snapshots)).replace(f"/{STAGING}/", "/")
        raise TrainingError(f"{where}: {os_error_cause(OSError(errno.ENOSPC, ''))}; "
                            f"{job.name}: that snapshot was not kept; free space and rerun the "
                            f"same command to {resume}")
    if named:
        raise TrainingError(f"{job.name}: {named[-1]} (log: {run.log})")


def absolute(path: str | os.PathLike) -> str:
    """A path the user typed, made absolute against the working directory it was typed in:
    the solver runs inside the run folder, where a relative path would mean something else."""
    return str(Path(path).expanduser().absolute())


def job_from_args(args: argparse.Namespace) -> TrainJob:
    """The TrainJob of the command line, every path in it absolute."""
    init = {}
    for kv in args.init:
        key, sep, path = kv.partition("=")
        if not sep or not key or not path:
            raise ValueError(f"--init {kv!r}: expected KEY=CAFFEMODEL")
        init[key] = absolute(path)
    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--data {args.data!r}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"--data {args.data!r}: expected a JSON object")
    for params in (data, data.get("test") if isinstance(data.get("test"), dict) else {}):
        for key in (*lists.LIST_KEYS, lists.ROOT_KEY):
            if isinstance(params.get(key), str):
                params[key] = absolute(params[key])
    return TrainJob(name=args.name or Path(args.run_dir).name,
                    train_net=absolute(args.train_net), solver=absolute(args.solver),
                    data=data, data_root=absolute(args.data_root) if args.data_root else None,
                    split=args.split, train_list_tag=args.train_list_tag,
                    num_classes=args.num_classes, max_iter=args.max_iter,
                    base_lr=args.base_lr, snapshot=args.snapshot, seed=args.seed, init=init,
                    keep_snapshots=args.keep_snapshots, batch_per_gpu=args.batch_per_gpu)


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
    ap.add_argument("--base-lr", type=float,
                    help="the solver's base learning rate (default: the generated solver's)")
    ap.add_argument("--snapshot", type=int)
    ap.add_argument("--keep-snapshots", type=int, default=DEFAULT_KEEP_SNAPSHOTS,
                    help="snapshots kept on disk, newest first (default %(default)s); "
                         "final.caffemodel is kept besides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", action="append", default=[], metavar="KEY=CAFFEMODEL",
                    help="initial weights (see co2fi_tools.weights.stage_weights for the keys)")
    ap.add_argument("--backend", choices=BACKENDS, default="pycaffe")
    ap.add_argument("--gpu", type=int, default=-1)
    ap.add_argument("--gpus", help="data-parallel training on these GPUs, e.g. 0,1 (pycaffe "
                                   "NCCL, one solver process a GPU)")
    ap.add_argument("--batch-per-gpu", type=int,
                    help="each GPU's batch; iter_size keeps the net's batch (paper: 16)")
    ap.add_argument("--restart", action="store_true",
                    help="train from the start in --run-dir: the run there (snapshots, log, "
                         "weights) moves to <run-dir>/discarded/<time>/; after a divergence, "
                         "or to train a folder again with other settings")
    args = ap.parse_args(argv)
    try:
        job = job_from_args(args)
        if args.gpus:
            from co2fi_tools.training.multigpu import parse_gpus

            job.gpus = parse_gpus(args.gpus)
        out = train(job, absolute(args.run_dir), args.backend, args.gpu, restart=args.restart)
    except TrainingInterrupted as exc:
        print(f"co2fi-train: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("co2fi-train: interrupted before training started", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TrainingError, LockHeld, ValueError, OSError) as exc:
        print(f"co2fi-train: error: {error_line(exc)}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
