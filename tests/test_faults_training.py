"""Faults around the training driver (issue 11): locks, settings fingerprints, signals, bad
snapshots, restarting after a divergence. Each asserts what the user gets: exit code, the one
line they read, the files left in the run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, requires_caffe

pytestmark = requires_caffe


def _files(tmp_path: Path, base_lr: float = 0.05) -> tuple[Path, Path]:
    from tests.test_engine_training import _write_net_and_solver

    solver = _write_net_and_solver(tmp_path)
    solver.write_text(solver.read_text().replace("base_lr: 0.05", f"base_lr: {base_lr}"))
    return tmp_path / "net.prototxt", solver


def _job(tmp_path: Path, max_iter: int = 40, snapshot: int = 20, base_lr: float = 0.05):
    from co2fi_tools.training.train import TrainJob

    net, solver = _files(tmp_path, base_lr)
    return TrainJob(name="tiny", train_net=str(net), solver=str(solver), max_iter=max_iter,
                    snapshot=snapshot, seed=7, meta={"variant": "tiny"})


def _cli(tmp_path: Path, run: Path, max_iter: int = 10**7) -> list[str]:
    net, solver = _files(tmp_path)
    return [sys.executable, "-m", "co2fi_tools.training.train", "--train-net", str(net), "--solver",
            str(solver), "--run-dir", str(run), "--name", "tiny", "--max-iter", str(max_iter),
            "--snapshot", str(max_iter)]


def _start(cmd: list[str], run: Path, after: str = "Iteration") -> subprocess.Popen:
    """Start a driver and wait until its log shows ``after`` (the solver is stepping)."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, GLOG_minloglevel="0"))
    deadline = time.time() + 120
    while time.time() < deadline:
        log = run / "train.log"
        if log.exists() and after in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"driver exited early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the solver never started")


def _last_line(stderr: str) -> str:
    lines = [x.strip() for x in stderr.replace("\r", "\n").splitlines() if x.strip()]
    return lines[-1] if lines else ""


def _wait_for_iteration(run: Path, iteration: int, proc: subprocess.Popen) -> None:
    """Wait until Caffe's log shows an iteration at or past ``iteration`` (a loaded machine
    may take seconds to restore a snapshot)."""
    import re

    deadline = time.time() + 120
    while time.time() < deadline:
        text = (run / "train.log").read_text(errors="replace")
        if any(int(n) >= iteration for n in re.findall(r"Iteration (\d+)", text)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"driver exited early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the solver never reached iteration {iteration}")


def _snapshot_iters(run: Path) -> list[int]:
    import re

    return sorted(int(m.group(1)) for p in (run / "snapshots").glob("tiny_iter_*.caffemodel")
                  if (m := re.search(r"_iter_(\d+)\.", p.name)))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


# --- Ctrl-C and a dying driver -----------------------------------------------------------------


def test_ctrl_c_snapshots_exits_130_and_the_rerun_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = _cli(tmp_path, run)
    proc = _start(cmd, run)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert _last_line(err).startswith("co2fi-train: tiny: interrupted (snapshot at iteration")
    first = _snapshot_iters(run)
    assert first and first[-1] > 0 and not (run / "final.caffemodel").exists()
    assert "co2fi: training interrupted" in (run / "train.log").read_text()
    # the same command again resumes from that snapshot (the lock was released)
    proc = _start(cmd, run, after=f"--restore={run / 'snapshots'}")
    _wait_for_iteration(run, first[-1] + 1, proc)   # it trains on from there
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert _snapshot_iters(run)[-1] > first[-1]


def test_ctrl_c_while_the_driver_reads_a_line_still_waits_for_the_snapshot(
        tmp_path: Path, monkeypatch, capsys) -> None:
    """Ctrl-C lands wherever the driver is, here while it parses a log line: the driver still
    waits for the solver's snapshot and says where it is (once, it left at once and said
    'interrupted before training started', the snapshot still being written)."""
    import re

    from co2fi_tools.training import train as train_mod

    class SignalOnFirstIteration:
        sent = False

        def search(self, line: str):
            if "Iteration" in line and not self.sent:
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)
            return re.search(r"Iteration (\d+)", line)

    monkeypatch.setattr(train_mod, "ITER_RE", SignalOnFirstIteration())
    run = tmp_path / "run"
    rc = train_mod.main(_cli(tmp_path, run)[3:])
    err = capsys.readouterr().err
    assert rc == 130, err
    assert _last_line(err).startswith("co2fi-train: tiny: interrupted (snapshot at iteration")
    assert _snapshot_iters(run), "the driver left before the solver's snapshot was published"


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


def test_the_solver_dies_with_its_driver_and_leaves_a_snapshot(tmp_path: Path) -> None:
    from co2fi_tools.safe_io import FolderLock

    run = tmp_path / "run"
    proc = _start(_cli(tmp_path, run), run)
    workers = _children(proc.pid)
    assert workers, "no solver process"
    proc.kill()  # SIGKILL: the driver gets no chance to clean up
    proc.communicate(timeout=60)
    deadline = time.time() + 60
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "the solver trains on as an orphan"
    assert _snapshot_iters(run), "the solver stopped without a snapshot"
    assert "co2fi: training interrupted" in (run / "train.log").read_text()
    with FolderLock(run):  # the dead driver's lock is free
        pass


# --- the run folder's lock ----------------------------------------------------------------------


def test_a_second_driver_on_a_locked_run_folder_gets_a_clear_error(tmp_path: Path,
                                                                  capsys) -> None:
    from co2fi_tools.training.train import main

    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from co2fi_tools.safe_io import FolderLock; "
         "FolderLock(sys.argv[1], 'training run').acquire(); print('held', flush=True); "
         "time.sleep(120)", str(run)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        rc = main(_cli(tmp_path, run, max_iter=20)[3:])
        err = capsys.readouterr().err
        assert rc == 1 and err.count("\n") == 1
        assert f"in use by another training run: pid {holder.pid} on " in err
        assert not (run / "snapshots").exists()
    finally:
        holder.kill()
        holder.wait()
    # the lock file left behind by the killed holder is no obstacle: taken over, with a note
    assert (run / ".lock").exists()
    assert main(_cli(tmp_path, run, max_iter=20)[3:]) == 0
    assert "taking over the lock" in capsys.readouterr().err
    assert (run / "final.caffemodel").exists()


# --- settings fingerprint -----------------------------------------------------------------------


def test_a_rerun_with_other_settings_names_the_difference(tmp_path: Path) -> None:
    from co2fi_tools.training.train import TrainingError, train

    run = tmp_path / "run"
    final = train(_job(tmp_path, max_iter=20), run)
    stamp = final.stat().st_mtime_ns
    with pytest.raises(TrainingError, match=r"max_iter: 20 -> 40.*--restart") as err:
        train(_job(tmp_path, max_iter=40), run)
    assert "\n" not in str(err.value)
    assert final.stat().st_mtime_ns == stamp
    # a changed net file is a changed setting too
    job = _job(tmp_path, max_iter=20)
    net = Path(job.train_net)
    net.write_text(net.read_text().replace("num_output: 8", "num_output: 9"))
    with pytest.raises(TrainingError, match=r"train_net: "):
        train(job, run)
    # --restart trains again; the old run is kept aside
    train(_job(tmp_path, max_iter=40), run, restart=True)
    assert _snapshot_iters(run) == [20, 40]
    old = list((run / "discarded").glob("*/final.caffemodel"))
    assert len(old) == 1 and old[0].stat().st_mtime_ns == stamp


# --- snapshots that cannot be trusted -----------------------------------------------------------


def _interrupted_after_40(tmp_path: Path) -> tuple[object, Path]:
    from co2fi_tools.training.train import train

    job = _job(tmp_path, max_iter=40, snapshot=20)
    run = tmp_path / "run"
    train(job, run)
    (run / "final.caffemodel").unlink()
    return job, run


def test_resume_passes_over_a_truncated_snapshot(tmp_path: Path, capsys) -> None:
    from co2fi_tools.training.runs import snapshot_problem
    from co2fi_tools.training.train import train

    job, run = _interrupted_after_40(tmp_path)
    model = run / "snapshots" / "tiny_iter_40.caffemodel"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    train(job, run)
    err = capsys.readouterr().err
    assert ("snapshot tiny_iter_40.solverstate not used: cannot be read (truncated?)" in err
            and "resuming from tiny_iter_20.solverstate" in err)
    assert "--restore=" in (run / "train.log").read_text()
    assert snapshot_problem(run / "snapshots" / "tiny_iter_40.solverstate") is None
    assert (run / "final.caffemodel").read_bytes() == model.read_bytes()


def test_resume_passes_over_a_non_finite_snapshot(tmp_path: Path, capsys) -> None:
    from caffe.proto import caffe_pb2

    from co2fi_tools.training.train import train

    job, run = _interrupted_after_40(tmp_path)
    model = run / "snapshots" / "tiny_iter_40.caffemodel"
    net = caffe_pb2.NetParameter()
    net.ParseFromString(model.read_bytes())
    blob = next(b for layer in net.layer for b in layer.blobs)
    blob.data[0] = float("nan")
    model.write_bytes(net.SerializeToString())
    train(job, run)
    err = capsys.readouterr().err
    assert "tiny_iter_40.solverstate not used: holds non-finite (NaN/inf) values" in err
    assert "resuming from tiny_iter_20.solverstate" in err


# --- after a divergence -------------------------------------------------------------------------


def test_after_a_divergence_the_message_says_how_to_restart_and_restart_does(
        tmp_path: Path) -> None:
    from co2fi_tools.training.runs import snapshot_problem
    from co2fi_tools.training.train import TrainingError, train

    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"Lower base_lr .* rerun with --restart") as err:
        train(_job(tmp_path, max_iter=200, base_lr=1e8), run)
    assert "\n" not in str(err.value)
    fixed = _job(tmp_path, max_iter=200, base_lr=0.05)  # the user lowers base_lr
    with pytest.raises(TrainingError, match=r"other settings \(solver: "):
        train(fixed, run)  # never resumes from the diverged snapshot silently
    final = train(fixed, run, restart=True)
    assert final.exists()
    state = run / "snapshots" / "tiny_iter_200.solverstate"
    assert snapshot_problem(state) is None
    assert list((run / "discarded").glob("*/snapshots/tiny_iter_*.caffemodel"))


def test_a_full_disk_at_the_end_is_one_line_and_leaves_no_final_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import errno
    import shutil

    from co2fi_tools.training.train import main

    def full(src, dst, *a, **kw):
        Path(dst).write_bytes(b"\0" * 10)  # a partial file, as a full disk leaves it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    run = tmp_path / "run"
    monkeypatch.setattr(shutil, "copyfile", full)
    rc = main(_cli(tmp_path, run, max_iter=20)[3:])
    err = capsys.readouterr().err
    assert rc == 1 and _last_line(err).startswith(
        f"co2fi-train: error: {run / 'final.caffemodel'}: no space left on device (disk full); "
        "tiny: free space and rerun")
    assert "Traceback" not in err
    assert not (run / "final.caffemodel").exists()
    assert not list(run.glob(".final*"))
