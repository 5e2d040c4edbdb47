"""Frame/flow extraction: layout, flow coding, resuming, bad videos, interruption, shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep import extract, flow, rawframes, synthetic
from netgen import paper

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def videos(tmp_path):
    return synthetic.generate(tmp_path / "syn", num_classes=2, clips_per_class=2, num_frames=8,
                              width=40, height=32, seed=2)


def test_flow_is_clipped_and_mapped_linearly_like_dense_flow():
    bound = paper.FLOW_BOUND
    values = np.array([-2 * bound, -bound, 0.0, bound / 2, bound, 3 * bound], np.float32)
    assert flow.quantize(values).tolist() == [0, 0, 128, 191, 255, 255]
    assert np.allclose(flow.dequantize(flow.quantize(values[1:5])), values[1:5],
                       atol=bound / 255 + 1e-4)  # half a step: 2 * bound / 255 / 2


def test_layout_counts_and_done_marker(videos, tmp_path):
    options = extract.ExtractOptions(size=(24, 20), flow="farneback")
    out = tmp_path / "frames"
    outcomes = extract.extract_all(videos, out, options, workers=2, progress=False)
    assert sorted(o.status for o in outcomes) == ["done"] * 4
    folder = out / rawframes.video_id(videos[0])
    counts = rawframes.count_frames(folder)
    assert (counts.rgb, counts.flow_x, counts.flow_y) == (8, 7, 7)  # F frames, F - 1 flows
    assert cv2.imread(str(folder / "img_00001.jpg")).shape == (20, 24, 3)
    assert cv2.imread(str(folder / "flow_y_00007.jpg"), cv2.IMREAD_GRAYSCALE).shape == (20, 24)
    assert rawframes.read_done(folder)["frames"] == 8


def test_tvl1_default_runs(videos, tmp_path):
    status = extract.extract_video(videos[0], tmp_path / "v", extract.ExtractOptions(
        size=(24, 20), flow="tvl1"))
    assert status == "done" and rawframes.count_frames(tmp_path / "v").flow_x == 7


def test_done_videos_are_skipped_and_partial_ones_redone(videos, tmp_path):
    out = tmp_path / "frames"
    options = extract.ExtractOptions(size=None, flow="farneback")
    extract.extract_all(videos, out, options, progress=False)
    kept, partial = out / rawframes.video_id(videos[0]), out / rawframes.video_id(videos[1])
    stamp = (kept / "img_00001.jpg").stat().st_mtime_ns
    (partial / rawframes.DONE_MARKER).unlink()
    (partial / "img_00099.jpg").write_bytes(b"junk from an interrupted run")
    outcomes = {o.video: o.status for o in extract.extract_all(videos, out, options,
                                                                progress=False)}
    assert outcomes[str(videos[0])] == "skipped" and outcomes[str(videos[1])] == "done"
    assert (kept / "img_00001.jpg").stat().st_mtime_ns == stamp
    assert not (partial / "img_00099.jpg").exists() and rawframes.is_done(partial)


def test_bad_videos_are_reported_and_the_others_go_on(videos, tmp_path, capsys):
    corrupt = tmp_path / "bad" / "v_Corrupt_g01_c01.avi"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 20)
    empty = tmp_path / "bad" / "v_Empty_g01_c01.avi"
    empty.write_bytes(b"")
    report = tmp_path / "failed.txt"
    code = extract.main([str(videos[0].parent), str(tmp_path / "bad"), str(tmp_path / "out"),
                         "--size", "native", "--flow", "farneback", "--workers", "2",
                         "--no-progress", "--report", str(report)])
    assert code == 1
    err = capsys.readouterr().err
    assert str(corrupt) in err and str(empty) in err and "2 failed" in err
    assert report.read_text().count("\n") == 2
    assert rawframes.is_done(tmp_path / "out" / rawframes.video_id(videos[0]))
    assert not (tmp_path / "out" / "v_Corrupt_g01_c01").exists()


def test_zero_frame_video_is_an_error_naming_it(tmp_path):
    path = tmp_path / "v_Zero_g01_c01.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    writer.release()
    outcome = extract._run_one((str(path), str(tmp_path / "out"), extract.ExtractOptions()))
    assert outcome.status == "failed" and str(path) in outcome.message


def test_shards_split_the_videos(videos, tmp_path):
    for i in range(2):
        assert extract.main([str(v) for v in videos] + [str(tmp_path / "out"), "--shard",
                             f"{i}/2", "--size", "native", "--flow", "none",
                             "--no-progress"]) == 0
    assert len(list((tmp_path / "out").glob("*/.done"))) == 4
    with pytest.raises(SystemExit):
        extract.main([str(videos[0]), str(tmp_path / "o"), "--shard", "2/2"])


def test_killed_run_loses_nothing_finished(tmp_path):
    videos = synthetic.generate(tmp_path / "syn", num_classes=3, clips_per_class=2,
                                num_frames=30, width=96, height=72, seed=4)
    out = tmp_path / "frames"
    cmd = [sys.executable, "-m", "data_prep.extract", str(tmp_path / "syn" / "videos"),
           str(out), "--size", "native", "--flow", "tvl1-fast", "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("*/.done")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent: (p.parent / "img_00001.jpg").stat().st_mtime_ns
                for p in out.glob("*/.done")}
    assert finished and len(finished) < len(videos)
    code = extract.main([str(tmp_path / "syn" / "videos"), str(out), "--size", "native",
                         "--flow", "tvl1-fast", "--no-progress"])
    assert code == 0 and len(list(out.glob("*/.done"))) == len(videos)
    assert not list(out.glob(".*partial*"))  # the killed run's unfinished folder is gone
    for folder, stamp in finished.items():
        assert (folder / "img_00001.jpg").stat().st_mtime_ns == stamp
