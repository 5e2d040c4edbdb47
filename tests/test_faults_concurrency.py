"""Two jobs on one folder (issue 21): two demos into one --out, two experiments sharing a
--data-root while one extracts, and a rerun while the children of a killed job still hold its
lock. One refuses in one line (or waits for the orphans); nothing is corrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from co2fi_tools.safe_io import FolderLock, LockHeld
from tests.conftest import REPO_ROOT, requires_caffe

PY = sys.executable


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        if time.time() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# --- the lock of a killed job's children ------------------------------------------------------

HOLDER = r'''
import subprocess, sys, time
from co2fi_tools.safe_io import FolderLock, held_lock_fds
lock = FolderLock(sys.argv[1], "training run").acquire()
sleep = "import sys, time; time.sleep(float(sys.argv[1]))"
child = subprocess.Popen([sys.executable, "-c", sleep, sys.argv[2]],
                         pass_fds=held_lock_fds(sys.argv[1]))
print(child.pid, flush=True)
time.sleep(120)
'''


def _killed_holder_with_child(folder: Path, child_seconds: float) -> int:
    proc = subprocess.Popen([PY, "-c", HOLDER, str(folder), str(child_seconds)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    proc.kill()  # SIGKILL: its child keeps the lock
    proc.wait()
    return child


def test_a_rerun_waits_for_the_children_of_a_killed_job_then_takes_the_lock(tmp_path, capsys):
    folder = tmp_path / "run"
    _killed_holder_with_child(folder, 1.5)
    start = time.monotonic()
    with FolderLock(folder, "training run", orphan_wait_s=60) as lock:
        waited = time.monotonic() - start
        assert lock.took_over is not None
    assert 0.5 < waited < 30
    err = capsys.readouterr().err
    assert "waiting for the processes that a stopped training run (pid" in err


def test_children_that_hold_the_lock_too_long_are_named_in_one_line(tmp_path):
    folder = tmp_path / "run"
    child = _killed_holder_with_child(folder, 30)
    try:
        with pytest.raises(LockHeld) as info:
            FolderLock(folder, "training run", orphan_wait_s=0.5, announce_takeover=False
                       ).acquire()
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"{folder}: still locked by processes that a stopped training "
                                  "run started (pid ")
        assert message.endswith(f"after 0.5 s; stop them (fuser {folder}/.lock) and rerun")
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_live_holder_is_refused_at_once(tmp_path):
    code = ("import time; from co2fi_tools.safe_io import FolderLock; "
            f"FolderLock({str(tmp_path)!r}, 'demo').acquire(); print('held', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([PY, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(LockHeld, match=f"in use by another demo: pid {proc.pid} on "):
            FolderLock(tmp_path, "demo", orphan_wait_s=60).acquire()
        assert time.monotonic() - start < 5  # no waiting on a live job
    finally:
        proc.kill()
        proc.wait()


# --- two experiments on one data root, two demos into one --out -------------------------------


def _synthetic(root: Path, classes: int = 6, clips: int = 4, frames: int = 32) -> None:
    from data_prep import synthetic

    assert synthetic.main([str(root), "--design", "miniature", "--classes", str(classes),
                           "--clips-per-class", str(clips), "--frames", str(frames),
                           "--seed", "0"]) == 0


def _experiment(data: Path, source: Path, out: Path) -> list[str]:
    return [PY, "tools/run_experiment.py", "--dataset", "synthetic", "--num-classes", "6",
            "--data-root", str(data), "--videos", str(source / "videos"), "--splits",
            str(source / "splits"), "--flow", "farneback", "--workers", "1", "--preset",
            "small", "--methods", "Two-stream baseline", "--max-iter", "2", "--gpu", "-1",
            "--out", str(out)]


@requires_caffe
def test_a_second_experiment_on_a_data_root_being_extracted_refuses_in_one_line(tmp_path):
    from data_prep import lists

    source = tmp_path / "source"
    _synthetic(source)
    data = tmp_path / "data"
    first = subprocess.Popen(_experiment(data, source, tmp_path / "a"), cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        _wait_for(data / "frames" / ".lock", first)  # extracting
        second = subprocess.run(_experiment(data, source, tmp_path / "b"), cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
        assert (data / "frames" / ".lock").exists(), "the extraction ended too soon to test"
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith(f"run_experiment: error: {data}: in use by another "
                                        f"dataset preparation: pid {first.pid} on ")
        assert not (tmp_path / "b").exists()  # nothing written for it
        # the first goes on: every video extracted completely, its lists written
        _wait_for(lists.list_path(data, "flow", "val", 1), first, timeout=300)
    finally:
        _stop(first)
    videos = sorted((source / "videos").rglob("*.avi"))
    done = sorted(p.parent.name for p in (data / "frames").glob("*/.done"))
    assert len(done) == len(videos) == 24
    for folder in (data / "frames").glob("*/"):
        assert len(list(folder.glob("img_*.jpg"))) == 32
    # the second, rerun, uses the same folder as it is
    listing = sorted(str(p.relative_to(data)) for p in data.rglob("*") if ".lock" not in p.name)
    from co2fi_tools.pipeline import prepare_dataset

    prepare_dataset("synthetic", data, 1, source / "splits", source / "videos", None,
                    "farneback", 1)
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")
                  if ".lock" not in p.name) == listing


@requires_caffe
def test_two_demos_into_one_out_the_second_refuses_in_one_line(tmp_path):
    out = tmp_path / "demo"
    args = ["--out", str(out), "--classes", "6", "--clips-per-class", "3", "--frames", "16",
            "--pretrain-iters", "0", "--max-iter", "2", "--workers", "1"]
    first = subprocess.Popen([PY, "tools/demo.py", *args], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        _wait_for(out / "experiment.json", first)
        recorded = (out / "experiment.json").read_bytes()
        second = subprocess.run([PY, "tools/demo.py", *args], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first demo ended too soon to test"
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith(f"demo: error: {out}: in use by another demo: pid "
                                        f"{first.pid} on ")
        # the refusal changed nothing recorded (the first demo itself may add its
        # experiment's settings meanwhile: the file grows, under load, by design)
        now = json.loads((out / "experiment.json").read_bytes())
        assert json.loads(recorded).items() <= now.items()
        time.sleep(1)
        assert first.poll() is None  # the first one goes on
    finally:
        _stop(first)


# --- a killed extraction worker ---------------------------------------------------------------


def test_a_killed_extraction_worker_stops_the_extraction_in_one_line_and_a_rerun_ends_it(
        tmp_path):
    source = tmp_path / "source"
    _synthetic(source, classes=6, clips=2, frames=24)
    frames = tmp_path / "frames"
    cmd = [PY, "-m", "data_prep.extract", str(source / "videos"), str(frames), "--flow",
           "farneback", "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    children: list[int] = []
    while not children and time.time() < deadline and proc.poll() is None:
        path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        children = [int(x) for x in path.read_text().split()] if path.exists() else []
        time.sleep(0.05)
    assert children, "no extraction worker seen"
    time.sleep(0.5)
    os.kill(children[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)  # no hang
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1] == (
        f"error: {frames}: an extraction worker died (killed, or out of memory); finished "
        "videos are kept (.done): rerun to extract the rest")
    rerun = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(frames.glob("*/.done"))) == 12
    assert not list(frames.glob(".*partial*"))
