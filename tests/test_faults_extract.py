"""Faults of frame/flow extraction: concurrent runs, stale locks, changed settings, disk full,
bad arguments. Each case gives one clear line or the right behaviour, and never leaves a folder
that a later run would take for a finished video."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep import extract, rawframes, synthetic

REPO = Path(__file__).resolve().parent.parent
FAST = ["--size", "24x20", "--flow", "farneback", "--workers", "1", "--no-progress"]


@pytest.fixture
def videos(tmp_path):
    return synthetic.generate(tmp_path / "syn", num_classes=1, clips_per_class=2, num_frames=6,
                              width=40, height=32, seed=3)


def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding the extraction lock of ``folder`` until killed."""
    code = ("import sys, time; from co2fi_tools.safe_io import FolderLock; "
            f"FolderLock({str(folder)!r}, 'extraction').acquire(); print('held', flush=True); "
            "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_extraction_into_the_same_folder_is_refused_naming_the_holder(
        videos, tmp_path, capsys):
    out = tmp_path / "frames"
    holder = _hold_lock(out)
    try:
        rc = extract.main([str(tmp_path / "syn" / "videos"), str(out), *FAST])
        err = capsys.readouterr().err
        assert rc == 2
        assert f"pid {holder.pid}" in err and "in use by another extraction" in err
        assert not list(out.glob("*/.done"))
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock is taken over, and the extraction runs
    assert extract.main([str(tmp_path / "syn" / "videos"), str(out), *FAST]) == 0
    assert "taking over the lock" in capsys.readouterr().err
    assert len(list(out.glob("*/.done"))) == len(videos)


def test_stale_lock_file_of_a_dead_process_is_taken_over(videos, tmp_path, capsys):
    out = tmp_path / "frames"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": 999999, "host": "elsewhere", "job": "x"}))
    assert extract.main([str(tmp_path / "syn" / "videos"), str(out), *FAST]) == 0
    assert "pid 999999" in capsys.readouterr().err


def test_rerun_with_another_size_names_the_setting_and_redo_reextracts(videos, tmp_path,
                                                                       capsys):
    src, out = str(tmp_path / "syn" / "videos"), tmp_path / "frames"
    assert extract.main([src, str(out), *FAST]) == 0
    capsys.readouterr()
    rc = extract.main([src, str(out), "--size", "32x24", "--flow", "farneback", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "size: [24, 20] before, [32, 24] now" in err[0] and "--redo" in err[0]
    for folder in out.glob("*/"):  # nothing was mixed: the old frames are untouched
        assert rawframes.read_done(folder)["size"] == [24, 20]
    rc = extract.main([src, str(out), "--size", "32x24", "--flow", "farneback", "--redo",
                       "--no-progress"])
    assert rc == 0
    dones = [rawframes.read_done(f) for f in out.glob("*/") if rawframes.is_done(f)]
    assert len(dones) == len(videos) and all(d["size"] == [32, 24] for d in dones)


def test_rerun_with_another_flow_method_is_refused(videos, tmp_path, capsys):
    src, out = str(tmp_path / "syn" / "videos"), tmp_path / "frames"
    assert extract.main([src, str(out), *FAST]) == 0
    rc = extract.main([src, str(out), "--size", "24x20", "--flow", "none", "--no-progress"])
    assert rc == 2 and 'flow: "farneback" before, null now' in capsys.readouterr().err


def test_failure_mid_video_leaves_no_folder_a_rerun_would_trust(videos, tmp_path, monkeypatch):
    calls = []
    real = extract._write_jpeg

    def failing(path, image, quality):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.EIO, "boom")
        real(path, image, quality)

    monkeypatch.setattr(extract, "_write_jpeg", failing)
    out = tmp_path / "frames"
    with pytest.raises(OSError):
        extract.extract_video(videos[0], out / "v", extract.ExtractOptions((24, 20), None))
    assert not (out / "v").exists() and not list(out.glob(".*"))


def test_disk_full_is_one_line_naming_path_and_cause_and_leaves_no_result(
        videos, tmp_path, monkeypatch, capsys):
    real_open = open

    def full(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).endswith(".jpg"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(extract, "open", full, raising=False)
    out = tmp_path / "frames"
    rc = extract.main([str(tmp_path / "syn" / "videos"), str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 1
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == len(videos)
    assert all("img_00001.jpg: cannot write frame: no space left on device (disk full)" in line
               for line in failed)
    assert "Traceback" not in err
    assert not list(out.glob("*/.done")) and not [p for p in out.iterdir()
                                                  if p.name != ".lock"]


def test_output_folder_that_is_a_file(videos, tmp_path, capsys):
    out = tmp_path / "frames"
    out.write_text("")
    rc = extract.main([str(tmp_path / "syn" / "videos"), str(out), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"error: {out}: output folder is a file"


def test_nothing_matched_is_an_error_not_zero_extracted(videos, tmp_path, capsys):
    rc = extract.main([str(tmp_path / "syn" / "videos"), str(tmp_path / "f"), "--ext", ".mkv",
                       *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and "no videos found with extensions .mkv" in err


def test_ext_without_the_dot_matches(videos, tmp_path):
    found = extract.find_videos([tmp_path / "syn" / "videos"], ["avi"])
    assert found == sorted(videos)


@pytest.mark.parametrize("size", ["0x0", "-4x20", "24x0"])
def test_size_must_be_positive(size, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        extract.parse_args([str(tmp_path), str(tmp_path / "f"), f"--size={size}"])
    assert exit_info.value.code == 2
    assert "--size wants a positive width and height" in capsys.readouterr().err
