"""co2fi_tools.training.train: the resume decisions of the driver, fast (seconds, no training).

The solver (``train._stream``) is replaced by a fake that records the command the driver gives
it and writes the snapshots Caffe would (tiny real protobufs, weights ``[iteration, 2]``); the
rest is the driver's own code: run folder, lock, settings fingerprint, snapshot checks, --restart,
final weights and pruning. tests/test_faults_training.py checks the same with real training."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from co2fi_tools.training import train as driver
from co2fi_tools.training.runs import Run
from co2fi_tools.training.train import TrainingError, TrainingInterrupted, TrainJob, train
from tests.conftest import requires_caffe
from tests.test_runs import write_snapshot

pytestmark = requires_caffe

NET = """name: "tiny"
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
"""
SOLVER = 'base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1000\nsnapshot: 500\n'


def _job(tmp_path: Path, max_iter: int = 40, snapshot: int = 20, **kw) -> TrainJob:
    net, solver = tmp_path / "net.prototxt", tmp_path / "solver.prototxt"
    if not net.exists():
        tmp_path.mkdir(parents=True, exist_ok=True)
        net.write_text(NET)
        solver.write_text(SOLVER)
    return TrainJob(name="tiny", train_net=str(net), solver=str(solver), max_iter=max_iter,
                    snapshot=snapshot, seed=7, **kw)


class FakeSolver:
    """Stands in for ``train._stream``: records each call; snapshots every ``snapshot``
    iterations from the one it resumes at up to max_iter (or ``stop_at``), then returns
    ``rc``."""

    def __init__(self, rc: int = 0, stop_at: int | None = None) -> None:
        self.rc, self.stop_at = rc, stop_at
        self.truncate_last = False  # the last snapshot cut short (a full disk)
        self.calls: list[dict] = []

    def __call__(self, cmd, run, max_iter, start, label, explode_factor, backend,
                 keep_snapshots=None) -> int:
        from caffe.proto import caffe_pb2

        from co2fi_tools.training.train import read_prototxt

        assert isinstance(run, Run) and all(isinstance(c, str) for c in cmd)
        self.calls.append(dict(cmd=cmd, max_iter=max_iter, start=start, label=label,
                               explode_factor=explode_factor, backend=backend,
                               keep=keep_snapshots))
        solver = read_prototxt(run.solver, caffe_pb2.SolverParameter())
        assert solver.max_iter == max_iter and solver.net == str(run.train_net)
        end = max_iter if self.stop_at is None else self.stop_at
        for it in range(start + 1, end + 1):
            if it % solver.snapshot == 0 or it == end:
                write_snapshot(run, it, value=float(it))
                run.prune_snapshots(keep_snapshots)
        if self.truncate_last:
            model = run.snapshots / f"{run.name}_iter_{end}.caffemodel"
            model.write_bytes(model.read_bytes()[:-3])
        return self.rc

    @property
    def cmd(self) -> list[str]:
        return self.calls[-1]["cmd"]


@pytest.fixture
def solver(monkeypatch: pytest.MonkeyPatch) -> FakeSolver:
    fake = FakeSolver()
    monkeypatch.setattr(driver, "_stream", fake)
    monkeypatch.setattr(driver, "caffe_binary", lambda: Path("/opt/caffe/bin/caffe"))
    return fake


def _iters(run: Path) -> list[int]:
    return [it for it, _ in Run(run, "tiny").snapshot_pairs()]


def _weights(path: Path) -> list[float]:
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return list(net.layer[0].blobs[0].data)


# --- a fresh run, a finished run, an interrupted run -------------------------------------------


def test_a_fresh_run_trains_from_the_start_and_keeps_the_last_snapshot_as_final(
        tmp_path: Path, solver: FakeSolver, capsys) -> None:
    run = tmp_path / "run"
    final = train(_job(tmp_path, max_iter=100, snapshot=20, keep_snapshots=2), run, gpu=-1,
                  explode_factor=50.0)
    assert final == run / "final.caffemodel"
    assert _weights(final) == [100.0, 2.0]  # iteration 100's weights
    assert _iters(run) == [80, 100]  # the newest 2 kept
    [call] = solver.calls
    assert call["cmd"] == [
        sys.executable, "-m", "co2fi_tools.training.solver_worker",
        f"--solver={run}/solver.prototxt",
        "--max-iter=100", "--gpu=-1", "--explode-factor=50.0", f"--tensorboard={run}/tensorboard"]
    assert (call["start"], call["max_iter"], call["label"], call["backend"], call["keep"]) == (
        0, 100, "tiny", "pycaffe", 2)
    config = json.loads((run / "config.json").read_text())
    assert (config["backend"], config["gpu"], config["max_iter"]) == ("pycaffe", -1, 100)
    assert config["settings"] == driver.settings_fingerprint(_job(tmp_path, max_iter=100))
    assert capsys.readouterr().err == ""


def test_a_finished_run_is_returned_untouched(tmp_path: Path, solver: FakeSolver) -> None:
    run = tmp_path / "run"
    final = train(_job(tmp_path), run)
    before = (final.read_bytes(), final.stat().st_mtime_ns, (run / "config.json").read_text())
    assert train(_job(tmp_path), run) == final
    assert len(solver.calls) == 1
    assert (final.read_bytes(), final.stat().st_mtime_ns,
            (run / "config.json").read_text()) == before


def test_an_interrupted_run_resumes_from_its_snapshot(tmp_path: Path, solver: FakeSolver) -> None:
    run = tmp_path / "run"
    solver.rc, solver.stop_at = driver.EXIT_INTERRUPTED, 20
    with pytest.raises(TrainingInterrupted) as err:
        train(_job(tmp_path, max_iter=40), run)
    assert str(err.value) == ("tiny: the solver was interrupted; rerun the same command to "
                              "resume")
    assert not (run / "final.caffemodel").exists()
    solver.rc, solver.stop_at = 0, None
    train(_job(tmp_path, max_iter=40), run)
    assert solver.calls[-1]["start"] == 20
    assert solver.cmd[-1] == f"--restore={run}/snapshots/tiny_iter_20.solverstate"
    assert _weights(run / "final.caffemodel") == [40.0, 2.0]
    assert _iters(run) == [20, 40]


def test_a_failing_solver_is_an_error_with_the_log_tail(tmp_path: Path,
                                                        solver: FakeSolver) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    solver.rc, solver.stop_at = 1, 0
    with pytest.raises(TrainingError) as err:
        train(_job(tmp_path), run)
    assert str(err.value) == (f"tiny: training exited with code 1; log: {run}/train.log\n"
                              + "".join(f"line {i}\n" for i in range(6, 21)))
    assert not isinstance(err.value, TrainingInterrupted)


def test_a_solver_that_stops_short_leaves_no_final_weights(tmp_path: Path,
                                                            solver: FakeSolver) -> None:
    run = tmp_path / "run"
    solver.stop_at = 39
    with pytest.raises(TrainingError) as err:
        train(_job(tmp_path, max_iter=40), run)
    assert str(err.value) == f"tiny: no snapshot at iteration 40 in {run}/snapshots"
    assert not (run / "final.caffemodel").exists()


def test_a_truncated_last_snapshot_never_becomes_the_final_weights(
        tmp_path: Path, solver: FakeSolver) -> None:
    run = tmp_path / "run"
    solver.truncate_last = True
    with pytest.raises(TrainingError) as err:
        train(_job(tmp_path, max_iter=40), run)
    assert str(err.value) == f"tiny: no snapshot at iteration 40 in {run}/snapshots"
    assert not (run / "final.caffemodel").exists()


def test_a_snapshot_at_the_last_iteration_is_finished_without_the_solver(
        tmp_path: Path, solver: FakeSolver) -> None:
    run = tmp_path / "run"
    train(_job(tmp_path, max_iter=40, keep_snapshots=1), run)
    (run / "final.caffemodel").unlink()  # killed between the last snapshot and the copy
    assert _iters(run) == [40]
    train(_job(tmp_path, max_iter=40, keep_snapshots=1), run)
    assert len(solver.calls) == 1
    assert _weights(run / "final.caffemodel") == [40.0, 2.0]
    assert not list(run.glob(".final*"))


def test_the_end_prunes_to_keep_snapshots_after_the_copy(
        tmp_path: Path, solver: FakeSolver, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    with monkeypatch.context() as m:
        m.setattr(Run, "prune_snapshots", lambda self, keep: calls.append(keep) or [])
        train(_job(tmp_path, max_iter=60, snapshot=20, keep_snapshots=2), tmp_path / "run")
    assert calls == [2, 2, 2, 2]  # three by the (fake) solver as it snapshots, one at the end
    solver.stop_at = None
    train(_job(tmp_path, max_iter=60, snapshot=20, keep_snapshots=1), tmp_path / "run2")
    assert _iters(tmp_path / "run2") == [60]


# --- snapshots that cannot be trusted ----------------------------------------------------------


def _interrupted(tmp_path: Path, solver: FakeSolver, at: int = 60) -> Path:
    run = tmp_path / "run"
    solver.rc, solver.stop_at = driver.EXIT_INTERRUPTED, at
    with pytest.raises(TrainingInterrupted):
        train(_job(tmp_path, max_iter=100), run)
    solver.rc, solver.stop_at = 0, None
    return run


def test_resume_passes_over_a_truncated_and_a_nan_snapshot_and_says_so(
        tmp_path: Path, solver: FakeSolver, capsys) -> None:
    run = _interrupted(tmp_path, solver)
    assert _iters(run) == [20, 40, 60]
    model = run / "snapshots" / "tiny_iter_60.caffemodel"
    model.write_bytes(model.read_bytes()[:-3])
    write_snapshot(Run(run, "tiny"), 40, value=float("nan"))
    capsys.readouterr()
    train(_job(tmp_path, max_iter=100), run)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("co2fi-train: tiny: co2fi: snapshot tiny_iter_60.solverstate not "
                             "used: cannot be read (truncated?): ")
    assert err[0].endswith("; resuming from tiny_iter_20.solverstate")
    assert err[1] == ("co2fi-train: tiny: co2fi: snapshot tiny_iter_40.solverstate not used: "
                      "holds non-finite (NaN/inf) values; resuming from tiny_iter_20.solverstate")
    log = (run / "train.log").read_text().splitlines()
    assert log == [line.removeprefix("co2fi-train: tiny: ") for line in err]
    assert solver.calls[-1]["start"] == 20
    assert solver.cmd[-1] == f"--restore={run}/snapshots/tiny_iter_20.solverstate"
    assert _weights(run / "final.caffemodel") == [100.0, 2.0]


def test_with_no_sound_snapshot_training_starts_over(tmp_path: Path, solver: FakeSolver,
                                                     capsys) -> None:
    run = _interrupted(tmp_path, solver, at=20)
    (run / "snapshots" / "tiny_iter_20.solverstate").write_bytes(b"\xff")
    capsys.readouterr()
    train(_job(tmp_path, max_iter=100), run)
    err = capsys.readouterr().err
    assert err.startswith("co2fi-train: tiny: co2fi: snapshot tiny_iter_20.solverstate not "
                          "used: cannot be read (truncated?): DecodeError: ")
    assert err.endswith("; starting over\n") and err.count("\n") == 1
    assert solver.calls[-1]["start"] == 0
    assert not [c for c in solver.cmd if c.startswith(("--restore", "--weights"))]


# --- initial weights --------------------------------------------------------------------------


def test_initial_weights_are_made_only_for_a_run_that_starts_from_nothing(
        tmp_path: Path, solver: FakeSolver, monkeypatch: pytest.MonkeyPatch) -> None:
    from co2fi_tools.weights import stage_weights

    made = []

    def initialise(net, out, sources, seed):
        made.append((Path(net), Path(out), dict(sources), seed))
        Path(out).write_bytes(b"init")
        return "copied 1 layers"

    monkeypatch.setattr(stage_weights, "initialise_from_stages", initialise)
    grouper = tmp_path / "grouper.caffemodel"
    grouper.write_bytes(b"g")
    run = tmp_path / "run"
    train(_job(tmp_path, max_iter=20, init={"grouper": str(grouper)}), run)
    assert made == [(run / "train.prototxt", run / "init.caffemodel",
                     {"grouper": str(grouper)}, 7)]  # the fillers drawn with the job's seed
    assert solver.cmd[-1] == f"--weights={run}/init.caffemodel"
    assert (run / "train.log").read_text() == (
        f"co2fi: initial weights {run}/init.caffemodel\ncopied 1 layers\n")

    # resuming: the snapshot has the weights; no new initial weights, no --weights
    run2 = tmp_path / "run2"
    job = _job(tmp_path, max_iter=100, init={"grouper": str(grouper)})
    solver.rc, solver.stop_at = driver.EXIT_INTERRUPTED, 20
    with pytest.raises(TrainingInterrupted):
        train(job, run2)
    assert len(made) == 2
    made.clear()
    solver.rc, solver.stop_at = 0, None
    train(job, run2)
    assert made == []
    assert not [c for c in solver.cmd if c.startswith("--weights")]
    assert solver.cmd[-1] == f"--restore={run2}/snapshots/tiny_iter_20.solverstate"
    # no init given: nothing made, no --weights
    train(_job(tmp_path / "c", max_iter=20), tmp_path / "c" / "run")
    assert made == [] and not [c for c in solver.cmd if c.startswith(("--weights",
                                                                      "--restore"))]


# --- backends and GPUs -------------------------------------------------------------------------


def test_the_caffe_tool_gets_snapshot_and_gpu_flags(tmp_path: Path, solver: FakeSolver,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = _interrupted(tmp_path, solver, at=20)
    train(_job(tmp_path, max_iter=100), run, backend="tool", gpu=0)
    assert solver.cmd == ["/opt/caffe/bin/caffe", "train", f"--solver={run}/solver.prototxt",
                          "--gpu=0", f"--snapshot={run}/snapshots/tiny_iter_20.solverstate"]
    assert solver.calls[-1]["backend"] == "tool"
    run2 = tmp_path / "run2"
    train(_job(tmp_path, max_iter=20), run2, backend="tool", gpu=-1)
    assert solver.cmd == ["/opt/caffe/bin/caffe", "train", f"--solver={run2}/solver.prototxt"]

    from co2fi_tools.weights import stage_weights

    def initialise(net, out, sources, seed) -> str:
        Path(out).write_bytes(b"i")
        return ""

    monkeypatch.setattr(stage_weights, "initialise_from_stages", initialise)
    (tmp_path / "g.caffemodel").write_bytes(b"g")
    run3 = tmp_path / "run3"
    train(_job(tmp_path, max_iter=20, init={"grouper": str(tmp_path / "g.caffemodel")}), run3,
          backend="tool", gpu=1)
    assert solver.cmd[-2:] == ["--gpu=1", f"--weights={run3}/init.caffemodel"]


def test_several_gpus_go_to_the_worker_and_the_first_is_its_gpu(
        tmp_path: Path, solver: FakeSolver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "apply_batch_plan",
                        lambda job, run: SimpleNamespace(gpus=(job.gpus[0], job.gpus[1])))
    run = tmp_path / "run"
    train(_job(tmp_path, max_iter=20, gpus=(3, 1)), run, gpu=0)
    assert solver.cmd[5:7] == ["--gpu=3", "--explode-factor=100.0"]
    assert solver.cmd[-1] == "--gpus=3,1"
    monkeypatch.setattr(driver, "apply_batch_plan", lambda job, run: SimpleNamespace(gpus=(2,)))
    train(_job(tmp_path, max_iter=20, gpus=(2,)), tmp_path / "run2")
    assert solver.cmd[5] == "--gpu=2" and not [c for c in solver.cmd if "--gpus" in c]
    # one GPU of --gpus: the caffe tool can do it
    train(_job(tmp_path, max_iter=20, gpus=(2,)), tmp_path / "run3", backend="tool")
    assert solver.cmd[3] == "--gpu=2"


def test_the_driver_trains_on_the_cpu_unless_told(tmp_path: Path, solver: FakeSolver) -> None:
    train(_job(tmp_path, max_iter=20), tmp_path / "run")
    assert solver.cmd[5] == "--gpu=-1"


def test_bad_driver_arguments_are_refused_before_the_folder_is_touched(
        tmp_path: Path, solver: FakeSolver) -> None:
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"^unknown backend 'caffe2'; known: \('pycaffe', "
                                         r"'tool'\)$"):
        train(_job(tmp_path), run, backend="caffe2")
    with pytest.raises(ValueError, match="^--keep-snapshots must be at least 1, got 0$"):
        train(_job(tmp_path, keep_snapshots=0), run)
    train(_job(tmp_path, keep_snapshots=1), run)  # 1 is enough
    with pytest.raises(ValueError, match="^--gpus with several GPUs needs --backend pycaffe"):
        train(_job(tmp_path, gpus=(0, 1)), tmp_path / "run2", backend="tool")
    assert not (tmp_path / "run2").exists()
    assert len(solver.calls) == 1


# --- settings fingerprint and --restart -------------------------------------------------------


def test_the_fingerprint_holds_what_decides_the_result(tmp_path: Path) -> None:
    job = _job(tmp_path, max_iter=40, init={"model": str(tmp_path / "m.caffemodel"),
                                            "grouper": str(tmp_path / "none.caffemodel")},
               data={"list": "a.txt"}, data_root="/d", split=2, train_list_tag="frac8",
               num_classes=5, batch_per_gpu=4, meta={"variant": "x"})
    (tmp_path / "m.caffemodel").write_bytes(b"12345")
    mtime = (tmp_path / "m.caffemodel").stat().st_mtime_ns
    sha = hashlib.sha256
    assert driver.settings_fingerprint(job) == {
        "name": "tiny", "train_net": sha(NET.encode()).hexdigest()[:16],
        "solver": sha(SOLVER.encode()).hexdigest()[:16], "data": {"list": "a.txt"},
        "data_root": "/d", "split": 2, "train_list_tag": "frac8", "num_classes": 5,
        "max_iter": 40, "seed": 7, "batch_per_gpu": 4,
        "init": {"grouper": f"{tmp_path}/none.caffemodel (missing)",
                 "model": f"{tmp_path}/m.caffemodel (5 bytes, modified {mtime})"},
        "meta": {"variant": "x"}, "data_seed": 7}
    assert list(driver.settings_fingerprint(job)["init"]) == ["grouper", "model"]
    job.solver = str(tmp_path / "gone.prototxt")
    with pytest.raises(TrainingError) as err:
        driver.settings_fingerprint(job)
    assert str(err.value) == f"{tmp_path}/gone.prototxt: cannot read: No such file or directory"


def test_a_rerun_with_other_settings_is_refused_naming_them(tmp_path: Path,
                                                            solver: FakeSolver) -> None:
    run = tmp_path / "run"
    final = train(_job(tmp_path, max_iter=20), run)
    with pytest.raises(TrainingError) as err:
        train(_job(tmp_path, max_iter=40, split=2), run)
    assert str(err.value) == (
        f"{run} was trained with other settings (max_iter: 20 -> 40; split: 1 -> 2); use a new "
        "run folder (--run-dir; --out of the demo and run_experiment), or rerun "
        "tools/train.py with --restart to train again here")
    # the same settings but another snapshot interval, GPU or backend: the finished run
    assert train(_job(tmp_path, max_iter=20, snapshot=5), run, gpu=0, backend="tool") == final
    assert len(solver.calls) == 1


def test_restart_moves_the_old_run_aside_and_trains_from_the_start(
        tmp_path: Path, solver: FakeSolver, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "strftime", lambda fmt: "20261130-0100")
    run = _interrupted(tmp_path, solver, at=40)
    capsys.readouterr()
    final = train(_job(tmp_path, max_iter=20), run, restart=True)
    assert capsys.readouterr().err == (
        f"co2fi-train: tiny: the previous run moved to {run}/discarded/20261130-0100\n")
    assert solver.calls[-1]["start"] == 0
    assert not [c for c in solver.cmd if c.startswith("--restore")]
    assert _weights(final) == [20.0, 2.0]
    old = run / "discarded" / "20261130-0100"
    assert sorted(p.name for p in (old / "snapshots").iterdir() if p.name != ".writing") == [
        "tiny_iter_20.caffemodel", "tiny_iter_20.solverstate",
        "tiny_iter_40.caffemodel", "tiny_iter_40.solverstate"]
    assert json.loads((old / "config.json").read_text())["max_iter"] == 100
    assert json.loads((run / "config.json").read_text())["max_iter"] == 20
    # a restart of a folder with nothing in it says nothing
    train(_job(tmp_path, max_iter=20), tmp_path / "new", restart=True)
    assert capsys.readouterr().err == ""
    assert not (tmp_path / "new" / "discarded").exists()


# --- the solver's output, as the driver follows it (a script stands in for the solver) --------

SOLVER_SCRIPT = r'''
import os, pathlib, signal, sys, time

snap, mode = pathlib.Path(sys.argv[1]), sys.argv[2]
stop = []
signal.signal(signal.SIGINT, lambda *_: stop.append(1))


def iteration(it, loss):
    print(f"I1130 solver.cpp:239] Iteration {it} (2 iter/s, 5s/10 iters), loss = {loss}",
          flush=True)


def write(it):
    for ext in ("caffemodel", "solverstate"):
        (snap / f"tiny_iter_{it}.{ext}").write_bytes(b"x")


def snapshot(it, files=True):
    if files:
        write(it)
    print(f"I1130 sgd_solver.cpp:280] Snapshotting solver state to binary proto file "
          f"{snap}/tiny_iter_{it}.solverstate", flush=True)


def wait(until, seconds=10):
    deadline = time.time() + seconds
    while not until() and time.time() < deadline:
        time.sleep(0.02)
    return until()


if mode == "prune":  # pruned on a snapshot line, before iteration 30 is written?
    ten = snap / "tiny_iter_10.caffemodel"
    write(10)
    write(20)
    iteration(20, 0.5)  # not a snapshot line: nothing is pruned
    time.sleep(0.5)
    print("10 there after an iteration line" if ten.exists() else "10 pruned early", flush=True)
    snapshot(20, files=False)
    gone = wait(lambda: not ten.exists(), float(sys.argv[3]))
    print("10 pruned while training" if gone else "10 kept", flush=True)
    snapshot(30)
elif mode == "env":  # where and how the solver runs
    import ctypes

    sig = ctypes.c_int()
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    print(f"cwd {os.getcwd()}", flush=True)
    print(f"glog {os.environ.get('GLOG_logtostderr')} {os.environ.get('GLOG_minloglevel')}",
          flush=True)
    print(f"dies with its parent by signal {sig.value}", flush=True)
    print("glog writes to stderr", file=sys.stderr, flush=True)
elif mode == "explode":  # caffe train: the loss explodes; SIGINT snapshots and stops
    for it, loss in ((10, 1.0), (20, 1.0), (30, 1.0), (40, 1000.0)):
        iteration(it, loss)
    if not wait(lambda: stop):
        sys.exit(3)
    snapshot(40)
elif mode == "worker-stops":  # the pycaffe worker watches the loss itself
    iteration(10, 1.0)
    iteration(20, 1000.0)
    print("co2fi: training stopped: loss is nan at iteration 30", flush=True)
    sys.exit(int(sys.argv[3]))
elif mode == "exit":  # loss 1, 1, 1, then 1000: exploded for caffe train
    for it, loss in ((10, 1.0), (20, 1.0), (30, 1.0), (40, 1000.0), (50, 1.0)):
        iteration(it, loss)
    sys.exit(int(sys.argv[3]))
elif mode == "ctrl-c":  # the user presses Ctrl-C: the driver gets SIGINT and passes it on
    iteration(10, 1.0)
    time.sleep(0.5)  # the driver waits for output
    os.kill(os.getppid(), signal.SIGINT)
    print("stopped" if wait(lambda: stop) else "never stopped", flush=True)
'''


class FakeBar:
    """Stands in for tqdm: what the progress bar shows."""

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.n = kwargs, kwargs.get("initial", 0)
        self.shown: list[int] = []
        self.postfix: list[dict] = []
        self.written: list[str] = []

    def __enter__(self) -> FakeBar:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, k: int) -> None:
        self.n += k
        self.shown.append(self.n)

    def set_postfix(self, **kwargs) -> None:
        self.postfix.append(kwargs)

    def write(self, text: str) -> None:
        self.written.append(text)


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[FakeBar]:
    import tqdm

    made: list[FakeBar] = []

    def bar(**kwargs) -> FakeBar:
        made.append(FakeBar(**kwargs))
        return made[-1]

    monkeypatch.setattr(tqdm, "tqdm", bar)
    return made


def _follow_script(tmp_path: Path, mode: str, *args, backend: str = "tool",
                   keep: int | None = None, start: int = 0) -> tuple[Run, int]:
    """_stream a solver script in a run folder; (run, exit code)."""
    run = Run(tmp_path / "run", "tiny")
    run.snapshots.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "solver.py"
    script.write_text(SOLVER_SCRIPT)
    cmd = [sys.executable, str(script), str(run.snapshots), mode, *map(str, args)]
    rc = driver._stream(cmd, run, 40, start, "tiny", 100.0, backend, keep)
    return run, rc


def test_the_progress_bar_counts_from_the_resumed_iteration_and_shows_the_loss(
        tmp_path: Path, bars: list[FakeBar]) -> None:
    run, rc = _follow_script(tmp_path, "exit", 0, backend="pycaffe", start=10)
    [bar] = bars
    assert bar.kwargs == {"total": 40, "initial": 10, "desc": "tiny", "unit": "it",
                          "leave": True, "dynamic_ncols": True}
    assert bar.shown == [20, 30, 40, 40]  # iteration 50 is past max_iter 40
    assert bar.postfix == [{"loss": "1.0"}, {"loss": "1.0"}, {"loss": "1.0"},
                           {"loss": "1000.0"}, {"loss": "1.0"}]


def test_the_solver_runs_in_the_run_folder_with_caffes_environment(
        tmp_path: Path, bars: list[FakeBar]) -> None:
    import signal

    run, rc = _follow_script(tmp_path, "env")
    log = run.log.read_text().splitlines()
    assert rc == 0
    assert f"cwd {run.path}" in log
    assert "glog 1 0" in log  # glog's INFO lines, which the driver reads
    assert f"dies with its parent by signal {int(signal.SIGINT)}" in log
    assert "glog writes to stderr" in log


def _said(run: Run) -> list[str]:
    """What the solver script said, without Caffe's lines and the driver's."""
    return [x for x in run.log.read_text().splitlines() if not x.startswith(("I1130", "co2fi"))]


def test_snapshots_are_pruned_while_the_solver_writes_them(tmp_path: Path,
                                                           bars: list[FakeBar]) -> None:
    run, rc = _follow_script(tmp_path, "prune", 10, keep=1)
    assert rc == 0
    log = run.log.read_text().splitlines()
    assert log[0] == f"co2fi: {sys.executable} {tmp_path}/solver.py {run.snapshots} prune 10"
    assert _said(run) == ["10 there after an iteration line", "10 pruned while training"]
    assert _iters(run.path) == [30]


def test_without_keep_snapshots_nothing_is_pruned(tmp_path: Path, bars: list[FakeBar]) -> None:
    run, rc = _follow_script(tmp_path, "prune", 0.5, keep=None)
    assert rc == 0
    assert _said(run) == ["10 there after an iteration line", "10 kept"]
    assert _iters(run.path) == [10, 20, 30]


def test_an_exploding_loss_under_caffe_train_stops_it_with_a_snapshot_and_says_restart(
        tmp_path: Path, bars: list[FakeBar]) -> None:
    with pytest.raises(TrainingError) as err:
        _follow_script(tmp_path, "explode")
    run = Run(tmp_path / "run", "tiny")
    reason = "loss exploded to 1000 at iteration 40 (more than 100 x its early mean 1)"
    assert str(err.value) == (
        f"tiny: training stopped: {reason}; snapshot: {run.snapshots}/tiny_iter_40.solverstate; "
        f"log: {run.log}. Lower base_lr in the solver (or fix the data) and rerun with --restart "
        f"to train again from the start (the old run moves to {run.discarded}/)")
    assert f"co2fi: training stopped: {reason}" in run.log.read_text().splitlines()


def test_the_pycaffe_worker_watches_its_own_loss(tmp_path: Path, bars: list[FakeBar]) -> None:
    from co2fi_tools.training.solver_worker import EXIT_DIVERGED

    # the loss lines alone do not stop a pycaffe run (its worker decides) ...
    run, rc = _follow_script(tmp_path / "a", "exit", 0, backend="pycaffe")
    assert rc == 0 and "training stopped" not in run.log.read_text()
    run, rc = _follow_script(tmp_path / "b", "exit", 5, backend="pycaffe")
    assert rc == 5
    # ... its line does, and so does its exit code
    for where, args in (("c", (0,)), ("d", (EXIT_DIVERGED,))):
        with pytest.raises(TrainingError) as err:
            _follow_script(tmp_path / where, "worker-stops", *args, backend="pycaffe")
        assert str(err.value).startswith(
            "tiny: training stopped: loss is nan at iteration 30; log: ")
    with pytest.raises(TrainingError) as err:
        _follow_script(tmp_path / "e", "exit", EXIT_DIVERGED, backend="pycaffe")
    assert str(err.value).startswith("tiny: training stopped: diverged; log: ")


def test_ctrl_c_stops_the_solver_and_names_the_snapshot_to_resume_from(
        tmp_path: Path, bars: list[FakeBar]) -> None:
    run = Run(tmp_path / "run", "tiny")
    write_snapshot(run, 10)
    write_snapshot(run, 20, value=float("nan"))
    with pytest.raises(TrainingInterrupted) as err:
        _follow_script(tmp_path, "ctrl-c", backend="pycaffe")
    assert str(err.value) == (f"tiny: interrupted (snapshot at iteration 10: "
                              f"{run.snapshots}/tiny_iter_10.solverstate); rerun the same "
                              "command to resume")
    assert run.log.read_text().splitlines()[-1] == "stopped"
    assert bars[0].written == ["tiny: interrupted; stopping the solver with a snapshot"]
    with pytest.raises(TrainingInterrupted) as err:
        _follow_script(tmp_path / "empty", "ctrl-c", backend="pycaffe")
    assert str(err.value) == "tiny: interrupted (no snapshot); rerun the same command to resume"


def test_base_lr_reaches_the_solver_and_the_fingerprint(tmp_path: Path, solver: FakeSolver,
                                                         capsys) -> None:
    from co2fi_tools.training.train import read_prototxt

    run = tmp_path / "run"
    train(_job(tmp_path, base_lr=3e-4), run)
    from caffe.proto import caffe_pb2

    written = read_prototxt(run / "solver.prototxt", caffe_pb2.SolverParameter())
    assert written.base_lr == pytest.approx(3e-4)  # the generated solver says 0.01
    assert driver.settings_fingerprint(_job(tmp_path, base_lr=3e-4))["base_lr"] == 3e-4
    # without the option the fingerprint is the one runs made before it had
    assert "base_lr" not in driver.settings_fingerprint(_job(tmp_path))
    # a rerun with another rate is refused, naming it
    with pytest.raises(driver.TrainingError, match=r"base_lr: 0.0003 -> 0.001\)"):
        train(_job(tmp_path, base_lr=1e-3), run)


def test_lr_step_reaches_the_solver_and_the_fingerprint(tmp_path: Path, solver: FakeSolver,
                                                        capsys) -> None:
    from caffe.proto import caffe_pb2

    from co2fi_tools.training.train import read_prototxt

    run = tmp_path / "run"
    train(_job(tmp_path, lr_step=500), run)
    written = read_prototxt(run / "solver.prototxt", caffe_pb2.SolverParameter())
    assert written.stepsize == 500
    assert "lr_step" not in driver.settings_fingerprint(_job(tmp_path))
    with pytest.raises(driver.TrainingError, match=r"lr_step: 500 -> 250\)"):
        train(_job(tmp_path, lr_step=250), run)
