"""Batch makers, prefetching and the Caffe data layers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from co2fi_layers import sampling
from co2fi_layers.batches import ClipBatches, PeriodBatches
from co2fi_layers.prefetch import Prefetcher
from data_prep import rawframes
from data_prep.errors import DataError
from netgen import paper
from tests.conftest import requires_caffe
from tests.test_data_helpers import TINY, tiny_dataset  # noqa: F401 - fixture

S = 32  # input size of these tests


def _take(maker, workers, n, **kw):
    with Prefetcher(maker, workers, **kw) as prefetcher:
        return [{k: v.copy() for k, v in prefetcher.next().items()} for _ in range(n)]


def _lists(root):
    return root / "lists" / "rgb_train_split1.txt", root / "lists" / "flow_train_split1.txt"


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_clip_batches_same_for_any_worker_count(tiny_dataset, modality):  # noqa: F811
    rgb, flow = _lists(tiny_dataset)
    def make():
        return ClipBatches(str(rgb if modality == "rgb" else flow), str(tiny_dataset / "frames"),
                           modality, batch_size=5, input_size=S, seed=7)
    serial = _take(make(), 0, 4)
    parallel = _take(make(), 2, 4, depth=2)
    channels = 3 if modality == "rgb" else 2 * paper.FLOW_STACK
    assert serial[0]["data"].shape == (5, channels, S, S)
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(a["data"], b["data"]) and np.array_equal(a["label"], b["label"])
    other_seed = ClipBatches(str(rgb), str(tiny_dataset / "frames"), "rgb", 5, S, seed=8)
    assert not np.array_equal(_take(other_seed, 0, 1)[0]["data"], serial[0]["data"]) or \
        modality == "flow"
    # an epoch visits every video once
    labels = np.concatenate([b["label"] for b in _take(make(), 0, 8)])[:8]
    assert sorted(labels.astype(int).tolist()) == sorted(
        int(line.split()[2]) for line in rgb.read_text().splitlines())


def test_clip_test_phase_is_deterministic_centre(tiny_dataset):  # noqa: F811
    rgb, _ = _lists(tiny_dataset)
    maker = ClipBatches(str(rgb), str(tiny_dataset / "frames"), "rgb", 3, S, phase="test")
    a, b = _take(maker, 0, 2), _take(maker, 1, 2)
    assert all(np.array_equal(x["data"], y["data"]) for x, y in zip(a, b, strict=True))
    assert maker.batches_per_pass() == 3


def _uniform_video(folder, num_frames, rng):
    folder.mkdir(parents=True)
    image = rng.integers(0, 256, size=(36, 48, 3), dtype=np.uint8)
    plane = rng.integers(0, 256, size=(36, 48), dtype=np.uint8)
    for i in range(1, num_frames + 1):
        cv2.imwrite(str(folder / rawframes.img_name(i)), image)
    for i in range(1, num_frames):
        cv2.imwrite(str(folder / rawframes.flow_x_name(i)), plane)
        cv2.imwrite(str(folder / rawframes.flow_y_name(i)), plane[::-1])


@pytest.fixture
def uniform_videos(tmp_path):
    """Two videos whose frames (and flow frames) are all the same picture: any difference
    between the inputs of one sample would come from the augmentation."""
    rng = np.random.default_rng(0)
    _uniform_video(tmp_path / "a", 40, rng)
    _uniform_video(tmp_path / "short", 4, rng)  # shorter than one period
    (tmp_path / "rgb.txt").write_text("a 40 0\nshort 4 1\n")
    (tmp_path / "flow.txt").write_text("a 39 0\nshort 3 1\n")
    return tmp_path


def test_period_inputs_share_crop_and_flip(uniform_videos):
    maker = PeriodBatches(str(uniform_videos / "rgb.txt"), str(uniform_videos / "flow.txt"),
                          str(uniform_videos), batch_size=8, input_size=S, seed=3)
    assert list(maker.shapes()) == [f"rgb_t{t}" for t in range(1, 6)] + [
        f"flow_t{t}" for t in range(1, 6)] + ["label"]
    batches = _take(maker, 2, 3)
    for batch in batches:
        for t in range(2, 6):
            assert np.array_equal(batch["rgb_t1"], batch[f"rgb_t{t}"])
            assert np.array_equal(batch["flow_t1"], batch[f"flow_t{t}"])
    samples = np.concatenate([b["rgb_t1"] for b in batches])
    assert len({s.tobytes() for s in samples}) > 4  # crops and flips do vary between samples


def test_period_test_batch_is_the_periods_of_one_video(uniform_videos):
    maker = PeriodBatches(str(uniform_videos / "rgb.txt"), str(uniform_videos / "flow.txt"),
                          str(uniform_videos), batch_size=16, input_size=S, phase="test",
                          rgb_steps=(3,), flow_steps=(1, 2, 3, 4, 5))
    assert list(maker.shapes()) == ["rgb_t3"] + [f"flow_t{t}" for t in range(1, 6)] + ["label"]
    first, second, third = _take(maker, 1, 3)
    assert first["rgb_t3"].shape == (paper.TEST_PERIODS, 3, S, S)
    assert (first["label"] == 0).all() and (second["label"] == 1).all()
    assert np.array_equal(first["flow_t2"], third["flow_t2"])  # wraps around to video 0
    expected = sampling.period_indices(40, paper.TEST_PERIODS, sampling.ALL_STEPS, paper.DELTA,
                                       paper.FLOW_STACK, 39)
    assert np.array_equal(maker.time_points(0), expected)


def test_missing_frame_names_the_file(uniform_videos):
    (uniform_videos / "a" / rawframes.img_name(7)).unlink()
    (uniform_videos / "rgb.txt").write_text("a 40 0\n")
    maker = ClipBatches(str(uniform_videos / "rgb.txt"), str(uniform_videos), "rgb", 1, S,
                        phase="test", test_segments=40)
    missing = str(uniform_videos / "a" / rawframes.img_name(7))
    with pytest.raises(DataError, match="missing frame file") as info:
        _take(maker, 2, 8)
    assert info.value.path == missing


def test_malformed_list_line_names_file_and_line(tmp_path):
    (tmp_path / "l.txt").write_text("a 40 0\nb forty 1\n")
    with pytest.raises(DataError, match=r"l.txt:2: malformed"):
        ClipBatches(str(tmp_path / "l.txt"))


def test_workers_stop_on_close(uniform_videos):
    maker = ClipBatches(str(uniform_videos / "rgb.txt"), str(uniform_videos), "rgb", 2, S)
    prefetcher = Prefetcher(maker, 2)
    prefetcher.next()
    processes = list(prefetcher._processes)
    prefetcher.close()
    assert all(not p.is_alive() for p in processes)
    prefetcher.close()


STUCK_WORKERS = r"""
import signal, sys, time
from co2fi_layers.prefetch import Prefetcher

class Stuck:  # a worker that never finishes its batch (as one waiting on a lock a killed
    def shapes(self):  # worker held)
        return {"x": (1,)}

    def fill(self, batch_index, outputs):
        time.sleep(3600)

signal.signal(signal.SIGTERM, lambda *_: None)  # as the solver worker: SIGTERM asks to stop
prefetcher = Prefetcher(Stuck(), 2)
print(" ".join(str(p.pid) for p in prefetcher._processes), flush=True)
time.sleep(0.5)
prefetcher.close()
"""


def test_close_ends_stuck_workers_of_a_process_that_handles_sigterm():
    """The solver worker handles SIGTERM (a snapshot request); its forked data-layer workers
    must not inherit that, or a stuck one outlives close() and Python's exit waits for it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", STUCK_WORKERS], cwd=repo,
                            stdout=subprocess.PIPE, text=True)
    pids = [int(x) for x in proc.stdout.readline().split()]
    try:
        assert proc.wait(timeout=60) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        for pid in pids:
            os.kill(pid, 9)
        raise AssertionError("the process never exited: its data workers ignored "
                             "SIGTERM") from None
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def _net(tmp_path, module, layer, params, tops):
    import caffe

    top_lines = " ".join(f'top: "{t}"' for t in tops)
    proto = (f'name: "data" layer {{ name: "data" type: "Python" {top_lines} python_param {{ '
             f'module: "{module}" layer: "{layer}" param_str: \'{json.dumps(params)}\' }} }}')
    path = tmp_path / "net.prototxt"
    path.write_text(proto)
    return caffe.Net(str(path), caffe.TRAIN)


@requires_caffe
def test_clip_data_layer_in_caffe(tiny_dataset, tmp_path):  # noqa: F811
    _, flow = _lists(tiny_dataset)
    params = {"list": str(flow), "root": str(tiny_dataset / "frames"), "modality": "flow",
              "batch_size": 4, "input_size": S, "phase": "train", "seed": 5, "workers": 2}
    net = _net(tmp_path, "co2fi_layers.clip_data", "ClipDataLayer", params, ["data", "label"])
    reference = _take(ClipBatches.from_params({**params, "workers": 0}), 0, 2)
    for batch in reference:
        net.forward()
        assert np.array_equal(net.blobs["data"].data, batch["data"])
        assert np.array_equal(net.blobs["label"].data, batch["label"])


@requires_caffe
def test_period_data_layer_in_caffe(tiny_dataset, tmp_path):  # noqa: F811
    rgb, flow = _lists(tiny_dataset)
    params = {"rgb_list": str(rgb), "flow_list": str(flow), "root": str(tiny_dataset / "frames"),
              "batch_size": 2, "input_size": S, "delta": paper.DELTA, "rgb_steps": [1, 2, 3, 4, 5],
              "flow_steps": [3], "phase": "test", "seed": 0, "workers": 1}
    tops = [f"rgb_t{t}" for t in range(1, 6)] + ["flow_t3", "label"]
    net = _net(tmp_path, "co2fi_layers.period_data", "PeriodDataLayer", params, tops)
    net.forward()
    assert net.blobs["rgb_t5"].data.shape == (paper.TEST_PERIODS, 3, S, S)
    assert net.blobs["flow_t3"].data.shape == (paper.TEST_PERIODS, 2 * paper.FLOW_STACK, S, S)
    assert len(set(net.blobs["label"].data.tolist())) == 1
