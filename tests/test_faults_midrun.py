"""Faults in the middle of a run (issue 21): a full disk while Caffe writes a snapshot, a frame
file gone while training or evaluating, labels beyond the class count, a net of another class
count than its dataset. Each gives one line naming the file and the problem, exit code 1, and
leaves no truncated snapshot where resume looks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, requires_caffe

pytestmark = requires_caffe


def _last_line(stderr: str) -> str:
    lines = [x.strip() for x in stderr.replace("\r", "\n").splitlines() if x.strip()]
    return lines[-1] if lines else ""


# --- a full disk while the solver snapshots -----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MB tmpfs (root only; skipped where it cannot be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _big_net_cli(tmp_path: Path, run: Path, max_iter: int = 20) -> list[str]:
    """The driver on a net whose snapshot (~270 KB of weights, as much solver history) is
    larger than what is left on the small disk."""
    from tests.test_engine_training import _write_net_and_solver

    solver = _write_net_and_solver(tmp_path)
    net = tmp_path / "net.prototxt"
    net.write_text(net.read_text().replace("num_output: 8", "num_output: 128"))
    return ["--train-net", str(net), "--solver", str(solver), "--run-dir", str(run), "--name",
            "tiny", "--max-iter", str(max_iter), "--snapshot", "10"]


def _train(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "co2fi_tools.training.train", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def _fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves about ``leave`` bytes free on ``disk``."""
    import os

    ballast = disk / "ballast"
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(ballast, "ab") as f:
        try:
            f.write(b"\0" * max(0, free - leave))
            f.flush()
        except OSError:
            pass
    return ballast


def test_a_full_disk_at_a_snapshot_is_one_line_and_leaves_no_partial_snapshot(
        tmp_path: Path, small_disk: Path) -> None:
    run = small_disk / "run"
    args = _big_net_cli(tmp_path, run)
    ballast = _fill(small_disk, leave=160 * 1024)  # the nets and the log fit, a snapshot not
    proc = _train(args)
    line = _last_line(proc.stderr)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Check failed" not in proc.stderr
    assert line == (f"co2fi-train: error: {run}/snapshots/tiny_iter_10.caffemodel: no space "
                    "left on device (disk full); tiny: that snapshot was not kept; free space "
                    "and rerun the same command to train")
    # nothing truncated where resume looks, nor left in the staging folder
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == [".writing"]
    assert not list((run / "snapshots" / ".writing").iterdir())
    assert not (run / "final.caffemodel").exists()

    # a rerun while the disk is still full names the file it could not write
    _fill(small_disk, leave=0)
    proc = _train(args)
    line = _last_line(proc.stderr)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert line.startswith(f"co2fi-train: error: {run}"), line
    assert "no space left on device (disk full)" in line and "[Errno" not in line

    # space freed: the same command trains to the end
    ballast.unlink()
    proc = _train(args)
    assert proc.returncode == 0, proc.stderr
    assert (run / "final.caffemodel").exists()


def test_publish_refuses_a_snapshot_cut_short_and_keeps_it_out_of_resume(tmp_path: Path) -> None:
    """A full disk can cut off a file's end without Caffe noticing: such a snapshot is not
    moved to where resume looks."""
    from co2fi_tools.training.runs import Run, SnapshotIncomplete, publish_snapshot
    from tests.test_runs import write_snapshot

    run = Run(tmp_path / "run", "tiny")
    write_snapshot(run, 20, value=20.0)  # a sound snapshot in snapshots/
    staged = run.staging
    staged.mkdir(parents=True)
    write_snapshot(run, 30, value=30.0)
    for ext in ("caffemodel", "solverstate"):
        (run.snapshots / f"tiny_iter_30.{ext}").rename(staged / f"tiny_iter_30.{ext}")
    model = staged / "tiny_iter_30.caffemodel"
    model.write_bytes(model.read_bytes()[:-5])
    with pytest.raises(SnapshotIncomplete, match=r"tiny_iter_30.caffemodel: written "
                                                 r"incompletely"):
        publish_snapshot(run.staged_prefix, 30)
    assert run.latest_solverstate(check=True)[0] == 20
    assert not (run.snapshots / "tiny_iter_30.caffemodel").exists()


def test_a_published_snapshot_points_at_its_moved_weights(tmp_path: Path) -> None:
    from caffe.proto import caffe_pb2

    from co2fi_tools.training.runs import Run, publish_snapshot
    from tests.test_runs import write_snapshot

    run = Run(tmp_path / "run", "tiny")
    run.staging.mkdir(parents=True)
    write_snapshot(run, 30, value=30.0)
    for ext in ("caffemodel", "solverstate"):
        (run.snapshots / f"tiny_iter_30.{ext}").rename(run.staging / f"tiny_iter_30.{ext}")
    assert run.latest_solverstate() is None  # staged: not where resume looks
    state = publish_snapshot(run.staged_prefix, 30)
    assert state == run.snapshots / "tiny_iter_30.solverstate"
    parsed = caffe_pb2.SolverState()
    parsed.ParseFromString(state.read_bytes())
    assert parsed.learned_net == str(run.snapshots / "tiny_iter_30.caffemodel")
    assert run.latest_solverstate(check=True)[0] == 30
    assert not list(run.staging.iterdir())


# --- a frame file missing ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> tuple[Path, Path]:
    """A 6-class synthetic dataset and the small preset's baseline nets for it."""
    from co2fi_tools import miniature
    from co2fi_tools.experiment import Experiment
    from co2fi_tools.pipeline import generate_nets
    from co2fi_tools.stages import Stage

    base = tmp_path_factory.mktemp("midrun")
    data = base / "data"
    miniature.prepare_data(data, 6, 2, 8, "farneback", 1, 0)
    # no dropout, as the miniature: Caffe keeps its random state out of the snapshot
    exp = Experiment(dataset="synthetic", data_root=data, num_classes=6, out=base / "exp",
                     preset="small", methods=("Two-stream baseline",),
                     preset_changes={"dropout": 0.0})
    generate_nets(exp, [Stage("baseline_rgb"), Stage("baseline_flow")])
    return data, exp.out


def _nets(out: Path, name: str = "baseline_rgb") -> list[str]:
    return ["--train-net", str(next(out.rglob(f"{name}_train.prototxt"))),
            "--solver", str(next(out.rglob(f"{name}_solver.prototxt")))]


def test_a_frame_missing_while_training_is_the_one_line_of_the_data_layer(
        demo_data: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    data, out = demo_data
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    for folder in (broken / "frames").iterdir():
        (folder / "img_00003.jpg").unlink()
    run = tmp_path / "run"
    proc = _train([*_nets(out), "--data-root", str(broken), "--run-dir", str(run), "--max-iter",
                   "3"])
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "exited with code" not in proc.stderr
    line = _last_line(proc.stderr)
    assert line.startswith(f"co2fi-train: error: run: {broken}/frames/"), line
    assert line.endswith(f"/img_00003.jpg: missing frame file (log: {run}/train.log)")
    assert proc.stderr.count("co2fi-train") == 1


def test_a_frame_missing_in_evaluation_is_one_line(demo_data: tuple[Path, Path],
                                                    tmp_path: Path, capsys) -> None:
    import shutil

    from co2fi_tools.evaluation import evaluate

    data, out = demo_data
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    exp_out = tmp_path / "exp"
    shutil.copytree(out, exp_out)
    for name in ("baseline_rgb", "baseline_flow"):
        _untrained_weights(exp_out, name)
    for folder in (broken / "frames").iterdir():
        for frame in folder.glob("img_*.jpg"):
            frame.unlink()
    rc = evaluate.main(["--out", str(exp_out), "--data-root", str(broken), "--dataset",
                        "synthetic", "--num-classes", "6", "--method", "Two-stream baseline"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    line = _last_line(err)
    assert line.startswith(f"co2fi-evaluate: error: {broken}/frames/") and line.endswith(
        ".jpg: missing frame file"), line


def _untrained_weights(out: Path, name: str) -> None:
    """final.caffemodel of an untrained net (the evaluation only needs weights that fit)."""
    import caffe

    net = caffe.Net(str(next(out.rglob(f"{name}_deploy.prototxt"))), caffe.TEST)
    run = out / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    net.save(str(run / "final.caffemodel"))


# --- labels beyond the class count, a net of another class count ------------------------------


def test_labels_beyond_the_classes_in_evaluation_name_the_list(demo_data: tuple[Path, Path],
                                                                tmp_path: Path, capsys) -> None:
    import shutil

    from co2fi_tools.evaluation import evaluate

    data, out = demo_data
    seven = tmp_path / "data"
    shutil.copytree(data, seven)
    for modality in ("rgb", "flow"):
        lst = seven / "lists" / f"{modality}_val_split1.txt"
        lst.write_text("".join(line.rsplit(" ", 1)[0] + " 7\n"
                               for line in lst.read_text().splitlines()))
    exp_out = tmp_path / "exp"
    shutil.copytree(out, exp_out)
    for name in ("baseline_rgb", "baseline_flow"):
        _untrained_weights(exp_out, name)
    rc = evaluate.main(["--out", str(exp_out), "--data-root", str(seven), "--dataset",
                        "synthetic", "--num-classes", "6", "--method", "Two-stream baseline"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert err.startswith(f"co2fi-evaluate: error: {seven}/lists/rgb_val_split1.txt: labels "
                          "must lie in 0..5, got 7..7")
    assert not list((exp_out / "scores").glob("*.h5"))


def test_labels_beyond_the_classes_in_score_files_name_the_file(tmp_path: Path) -> None:
    import numpy as np

    from co2fi_tools.evaluation import evaluate_scores as es
    from co2fi_tools.evaluation.scores import ScoreWriter

    path = tmp_path / "s.h5"
    with ScoreWriter(path, streams=["appearance"], num_periods=2, labels=[0, 1],
                     video_ids=["a", "b"], class_names=["x", "y"], dataset="d", split="1",
                     net="n", iteration=1) as writer:
        for i in range(2):
            writer.write(i, {"appearance": np.ones((2, 2), np.float32)})
    import h5py

    with h5py.File(path, "r+") as f:  # labels of another dataset
        f["labels"][...] = [1, 7]
    with pytest.raises(ValueError, match=rf"^{path}: labels must lie in 0..1, got 1..7$"):
        es.evaluate([es.Selection(str(path), ())])


def test_a_checked_in_net_of_other_classes_on_a_dataset_is_refused(
        demo_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = demo_data
    run = tmp_path / "run"
    net = REPO_ROOT / "prototxt" / "small" / "synthetic" / "baseline_rgb_train.prototxt"
    solver = REPO_ROOT / "solvers" / "small" / "synthetic" / "baseline_rgb_solver.prototxt"
    proc = _train(["--train-net", str(net), "--solver", str(solver), "--data-root", str(data),
                   "--run-dir", str(run), "--max-iter", "2"])
    assert proc.returncode == 1
    line = _last_line(proc.stderr)
    assert proc.stderr.strip() == line
    assert line.startswith(f"co2fi-train: error: {net}: the net has 10 classes, the data 6 "
                           f"({data}/lists/classes.txt); regenerate the net")
    assert not run.exists() or not list(run.iterdir())  # nothing recorded, nothing trained


# --- a resumed run is the run that was never interrupted --------------------------------------


def _blobs(path: Path) -> dict:
    import numpy as np
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {layer.name: [np.asarray(b.data) for b in layer.blobs] for layer in net.layer
            if layer.blobs}


def test_a_resumed_training_gives_the_weights_of_an_uninterrupted_one(
        demo_data: tuple[Path, Path], tmp_path: Path) -> None:
    """The data layers start at the batch the snapshot left off (first_batch), so that the
    soak's final tables can equal an uninterrupted run's (without dropout: Caffe's random
    state is not in the snapshot)."""
    import numpy as np

    from co2fi_tools.training.train import TrainJob, train

    data, out = demo_data

    def job() -> TrainJob:
        return TrainJob(name="baseline_rgb", data_root=str(data), num_classes=6, max_iter=6,
                        snapshot=3, seed=0,
                        train_net=str(next(out.rglob("baseline_rgb_train.prototxt"))),
                        solver=str(next(out.rglob("baseline_rgb_solver.prototxt"))))

    whole = train(job(), tmp_path / "whole")
    resumed = train(job(), tmp_path / "resumed")
    resumed.unlink()  # as if killed after the snapshot at iteration 3
    for p in (tmp_path / "resumed" / "snapshots").glob("*_iter_6.*"):
        p.unlink()
    resumed = train(job(), tmp_path / "resumed")
    assert '\\"first_batch\\": 3' in (tmp_path / "resumed" / "train.prototxt").read_text()
    a, b = _blobs(whole), _blobs(resumed)
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            assert np.array_equal(x, y), name


# --- a data-layer worker killed ---------------------------------------------------------------


def test_killed_data_layer_workers_stop_training_in_one_line_without_a_hang(
        demo_data: tuple[Path, Path], tmp_path: Path) -> None:
    import os
    import signal
    import time

    data, out = demo_data
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "co2fi_tools.training.train", *_nets(out), "--data-root",
           str(data), "--run-dir", str(run), "--max-iter", "100000", "--snapshot", "100000"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

    def children(pid: int) -> list[int]:
        path = Path(f"/proc/{pid}/task/{pid}/children")
        return [int(x) for x in path.read_text().split()] if path.exists() else []

    deadline, workers = time.time() + 120, []
    while time.time() < deadline and proc.poll() is None:
        solvers = children(proc.pid)
        workers = [w for s in solvers for w in children(s)]
        log = run / "train.log"
        if workers and log.exists() and "Iteration" in log.read_text(errors="replace"):
            break
        time.sleep(0.1)
    assert workers, "no data-layer worker seen"
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the training hung after its data workers were killed") from None
    assert proc.returncode == 1 and "Traceback" not in err
    line = _last_line(err)
    assert line.startswith("co2fi-train: error: run: prefetch worker ") and " died (exit code " \
        "-9) (log: " in line, line


def test_a_writer_failing_inside_atomic_path_is_named_by_the_target(tmp_path: Path) -> None:
    """matplotlib or h5py raise ENOSPC naming no file (the soak saw `demo: error: No space
    left on device`): the target is named, the temporary removed."""
    import errno

    from co2fi_tools.safe_io import atomic_path, error_line

    target = tmp_path / "plots" / "confusion.png"
    with pytest.raises(OSError) as info, atomic_path(target, suffix=".png"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert error_line(info.value) == f"{target}: no space left on device (disk full)"
    assert not list(target.parent.iterdir())
