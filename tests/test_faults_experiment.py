"""Locks, settings fingerprints and atomic writes (co2fi_tools.safe_io) and their use by the
experiment and the demo: a second job is refused naming the holder, a dead holder's lock is
taken over, a rerun with other settings names what differs before anything is touched."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from co2fi_tools import demo, pipeline, safe_io
from co2fi_tools.safe_io import FolderLock, LockHeld, SettingsMismatch
from tests.conftest import requires_caffe

REPO = Path(__file__).resolve().parent.parent


def _holder(folder: Path, job: str) -> subprocess.Popen:
    code = ("import time; from co2fi_tools.safe_io import FolderLock; "
            f"FolderLock({str(folder)!r}, {job!r}).acquire(); print('held', flush=True); "
            "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_refuses_a_second_process_and_is_taken_over_when_it_dies(tmp_path, capsys):
    holder = _holder(tmp_path / "out", "training")
    try:
        with pytest.raises(LockHeld) as info:
            FolderLock(tmp_path / "out", "training").acquire()
        message = str(info.value)
        assert message.startswith(f"{tmp_path / 'out'}: in use by another training: pid "
                                  f"{holder.pid} on ")
        assert "wait for it to finish or stop it" in message
    finally:
        holder.kill()
        holder.wait()
    with FolderLock(tmp_path / "out", "training") as lock:
        assert lock.took_over["pid"] == holder.pid
        assert json.loads((tmp_path / "out" / ".lock").read_text())["pid"] == os.getpid()
    assert "(no longer running)" in capsys.readouterr().err
    assert not (tmp_path / "out" / ".lock").exists()  # released: nothing left behind


def test_lock_is_reentrant_in_one_process(tmp_path):
    with FolderLock(tmp_path, "demo"), FolderLock(tmp_path, "experiment"):
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()


def test_lock_on_a_file_is_one_line(tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(ValueError, match=r"experiment folder .*out: is a file, not a folder"):
        FolderLock(tmp_path / "out", "experiment").acquire()


def test_settings_diff_names_each_difference():
    recorded = {"num_classes": 4, "size": [96, 72], "seed": 0, "extra": 1}
    wanted = {"num_classes": 10, "size": (96, 72), "seed": 0, "flow": "tvl1"}
    assert safe_io.settings_diff(recorded, wanted) == [
        'flow: not recorded before, "tvl1" now', "num_classes: 4 before, 10 now"]
    with pytest.raises(SettingsMismatch, match=r"^o: made with other settings \(flow: .*; "
                                               r"num_classes: 4 before, 10 now\); do this$"):
        safe_io.check_settings("o", recorded, wanted, "do this")


def test_atomic_write_leaves_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    safe_io.atomic_write_text(path, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        safe_io.atomic_write_text(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_os_error_line_names_path_and_cause():
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/x.jpg")
    assert safe_io.os_error_line(exc) == "/data/x.jpg: no space left on device (disk full)"
    assert safe_io.os_error_line(OSError(errno.EROFS, "x"), "/ro") == "/ro: read-only file system"


# --- the experiment and the demo -------------------------------------------------------------

def _demo_args(classes: int) -> list[str]:
    return ["--classes", str(classes), "--clips-per-class", "2", "--frames", "8",
            "--pretrain-iters", "0"]


def test_demo_with_other_classes_into_a_demo_folder_says_what_differs(tmp_path, capsys):
    out = tmp_path / "demo"
    args4 = argparse.Namespace(
        classes=4, clips_per_class=2, test_clips=1, frames=8, flow="tvl1-fast",
        pretrain_iters=0, pretrain_clips=2, pretrain_design="textures", dropout=0.0, seed=0,
        max_iter=500, fusion_iters=100, fusion_lr=None, fusion_schedule="staged")
    with FolderLock(out, "demo"):
        pipeline.claim_output(out, demo.demo_settings(args4))
    rc = demo.main(["--out", str(out), *_demo_args(10)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0
    assert err == (f"demo: error: {out}: made with other settings (num_classes: 4 before, 10 "
                   "now); use another --out, or delete it to start over")
    assert sorted(p.name for p in out.iterdir()) == ["experiment.json"]  # nothing made


@pytest.mark.parametrize(("recorded", "flags", "difference"), [
    ({"clip_gradients": 10.0}, ["--clip-gradients", "0"], "clip_gradients: 10.0 before, 0.0 now"),
    ({"fusion_channels": 1}, [], "fusion_channels: 1 before, 2 now"),
])
def test_a_demo_folder_refuses_another_size(tmp_path, capsys, recorded, flags, difference):
    out = tmp_path / "demo"
    args = argparse.Namespace(
        classes=4, clips_per_class=2, test_clips=1, frames=8, flow="tvl1-fast",
        pretrain_iters=0, pretrain_clips=2, pretrain_design="textures", dropout=0.0, seed=0,
        max_iter=500, fusion_iters=100, fusion_lr=None, fusion_schedule="staged", **recorded)
    with FolderLock(out, "demo"):
        pipeline.claim_output(out, demo.demo_settings(args))
    rc = demo.main(["--out", str(out), *_demo_args(4), *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0 and difference in err, err


def test_demo_into_a_folder_in_use_names_the_holder(tmp_path, capsys):
    out = tmp_path / "demo"
    holder = _holder(out, "demo")
    try:
        assert demo.main(["--out", str(out), *_demo_args(4)]) == 1
        assert f"in use by another demo: pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_experiment_with_another_class_count_stops_before_writing_nets(tmp_path):
    exp = pipeline.Experiment("synthetic", tmp_path / "data", 4, tmp_path / "exp",
                              methods=("Two-stream baseline",))
    with FolderLock(exp.out, "experiment"):
        pipeline.claim_output(exp.out, pipeline.experiment_settings(exp))
    exp.num_classes = 10
    with pytest.raises(SettingsMismatch, match="num_classes: 4 before, 10 now"):
        pipeline.run_experiment(exp)
    assert not exp.nets.exists()


def test_experiment_settings_ignore_methods_and_hardware(tmp_path):
    a = pipeline.Experiment("synthetic", tmp_path, 4, tmp_path, methods=("CO2FI",), gpu=0)
    b = pipeline.Experiment("synthetic", tmp_path, 4, tmp_path, methods=("Two-stream baseline",),
                            gpu=-1, backend="tool", keep_snapshots=1)
    assert pipeline.experiment_settings(a) == pipeline.experiment_settings(b)


def test_gpu_default_falls_back_to_the_cpu_and_an_explicit_gpu_gets_a_hint(capsys):
    assert pipeline.choose_gpu(None, usable=lambda g: False) == -1
    assert "no usable GPU" in capsys.readouterr().err
    assert pipeline.choose_gpu(None, usable=lambda g: True) == 0
    assert pipeline.choose_gpu(-1, usable=lambda g: pytest.fail("no probe for the CPU")) == -1
    with pytest.raises(ValueError, match=r"--gpu 1: this Caffe build cannot use GPU 1 .*"
                                         r"--gpu -1 for the CPU"):
        pipeline.choose_gpu(1, usable=lambda g: False)


def test_error_line_drops_pythons_errno_prefix():
    assert safe_io.error_line(OSError(errno.ENOSPC, "x.h5: cannot write scores")) == \
        "x.h5: cannot write scores"
    assert safe_io.error_line(FileNotFoundError(errno.ENOENT, "No such file", "/a/b")) == \
        "/a/b: no such file or folder"
    assert safe_io.error_line(ValueError("plain")) == "plain"


def test_atomic_path_writes_beside_the_target_under_a_hidden_temporary_name(tmp_path):
    target = tmp_path / "new" / "deep" / "s.h5"  # folders made as needed
    with safe_io.atomic_path(target) as tmp:
        assert tmp.parent == target.parent  # same file system: os.replace is atomic
        assert tmp.name.startswith(".s.h5.") and tmp.suffix == ".tmp"  # no *.h5 glob sees it
        tmp.write_text("x")
    assert target.read_text() == "x" and os.listdir(target.parent) == ["s.h5"]


def test_writable_folder_makes_parents_and_names_the_flag(tmp_path):
    assert safe_io.writable_folder(tmp_path / "a" / "b", "--out").is_dir()
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match=r"^--out .*f: is a file, not a folder$"):
        safe_io.writable_folder(tmp_path / "f", "--out")
    with pytest.raises(ValueError, match=r"--out .*: a path component is a file"):
        safe_io.writable_folder(tmp_path / "f" / "sub", "--out")


def _refused_by_another_process(folder: Path) -> bool:
    code = ("import sys; from co2fi_tools.safe_io import FolderLock, LockHeld\n"
            f"try:\n    FolderLock({str(folder)!r}, 'x').acquire()\n"
            "except LockHeld:\n    sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 3


def test_inner_release_of_a_reentrant_lock_keeps_the_outer_one(tmp_path):
    outer = FolderLock(tmp_path, "demo").acquire()
    with FolderLock(tmp_path, "experiment"):
        pass
    assert _refused_by_another_process(tmp_path)
    outer.release()
    outer.release()  # twice, or never acquired: nothing happens
    FolderLock(tmp_path / "other").release()
    assert not _refused_by_another_process(tmp_path)


def test_takeover_note_says_whether_the_recorded_holder_still_runs(tmp_path, capsys):
    import socket

    # a lock file naming a live process of this host that does not hold the lock (pid reuse)
    (tmp_path / ".lock").write_text(json.dumps({"pid": os.getppid(), "job": "x",
                                                "host": socket.gethostname()}))
    with FolderLock(tmp_path, "y"):
        pass
    err = capsys.readouterr().err
    assert f"pid {os.getppid()}" in err and "no longer running" not in err


def test_lock_retries_when_the_file_it_opened_was_removed_meanwhile(tmp_path, monkeypatch):
    real_stat = os.stat
    calls = []

    def racing_stat(path, *args, **kwargs):
        if str(path).endswith(".lock") and not calls:
            calls.append(path)
            raise FileNotFoundError(path)  # the holder released and removed it
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", racing_stat)
    with FolderLock(tmp_path, "x") as lock:
        assert calls and lock.path.exists()


def test_os_error_without_errno_keeps_its_message():
    assert safe_io.os_error_cause(OSError("odd failure")) == "odd failure"
    assert safe_io.error_line(OSError("odd failure")) == "odd failure"


def test_settings_compare_paths_and_tuples_as_json():
    recorded = {"data_root": "/d", "size": [1, 2]}
    assert safe_io.settings_diff(recorded, {"data_root": Path("/d"), "size": (1, 2)}) == []


def test_demo_and_experiment_settings_share_one_record(tmp_path):
    pipeline.claim_output(tmp_path, {"num_classes": 4, "frames": 8})  # the demo's
    pipeline.claim_output(tmp_path, {"num_classes": 4, "split": 1})  # the experiment's
    assert json.loads((tmp_path / "experiment.json").read_text()) == \
        {"num_classes": 4, "frames": 8, "split": 1}
    with pytest.raises(SettingsMismatch, match="split: 1 before, 2 now"):
        pipeline.claim_output(tmp_path, {"num_classes": 4, "split": 2})


@requires_caffe
def test_a_pretraining_in_progress_stops_a_second_one_naming_the_holder(tmp_path):
    from co2fi_tools import miniature

    pre = miniature.Pretraining(clips_per_class=2, frames=8, iters=2)
    folder = tmp_path / "cache" / miniature.pretrain_key(pre, "small")
    holder = _holder(folder, "pretraining")
    try:
        with pytest.raises(LockHeld, match=f"in use by another pretraining: pid {holder.pid}"):
            miniature.pretrained_trunk(pre, "small", tmp_path / "cache", 1, -1, "pycaffe")
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # nothing made
    finally:
        holder.kill()
        holder.wait()


def test_a_demo_folder_made_at_another_flow_lr_factor_refuses_the_default(tmp_path, capsys):
    out = tmp_path / "demo"
    args = argparse.Namespace(
        classes=4, clips_per_class=2, test_clips=1, frames=8, flow="tvl1-fast",
        pretrain_iters=0, pretrain_clips=2, pretrain_design="textures", dropout=0.0, seed=0,
        max_iter=500, fusion_iters=100, fusion_lr=None, fusion_schedule="staged",
        flow_lr_factor=5.0)
    with FolderLock(out, "demo"):
        pipeline.claim_output(out, demo.demo_settings(args))
    rc = demo.main(["--out", str(out), *_demo_args(4)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err == (f"demo: error: {out}: made with other settings (flow_lr_factor: "
                               "5.0 before, 1.0 now); use another --out, or delete it to start "
                               "over")


def test_a_bad_flow_lr_factor_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(["--flow-lr-factor", "0", *_demo_args(4)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    assert err[-1].endswith("--flow-lr-factor must be more than 0, got 0.0")
