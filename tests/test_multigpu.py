"""Multi-GPU settings on the CPU: GPU lists, the batch split with iter_size, the ranks' data."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from co2fi_layers.batches import ClipBatches, PeriodBatches
from co2fi_tools.training.multigpu import BatchPlan, parse_gpus, plan_batches
from data_prep import rawframes
from tests.conftest import requires_caffe


def test_parse_gpus():
    assert parse_gpus("0,1") == (0, 1) and parse_gpus("3") == (3,)
    for bad, message in (("0,x", "device ids such as 0,1"), ("-1", ">= 0"),
                         ("1,1", "a device twice")):
        with pytest.raises(ValueError, match=message):
            parse_gpus(bad)


@pytest.mark.parametrize("gpus, per_gpu, expected", [
    ((0, 1), None, BatchPlan((0, 1), 8, 1)),
    ((0, 1), 4, BatchPlan((0, 1), 4, 2)),
    ((0,), 8, BatchPlan((0,), 8, 2)),       # one small card: 8 twice per update
    ((0, 1, 2, 3), None, BatchPlan((0, 1, 2, 3), 4, 1)),
    ((0, 1, 2, 3), 2, BatchPlan((0, 1, 2, 3), 2, 2)),
])
def test_the_paper_batch_of_16_is_kept(gpus, per_gpu, expected):
    plan = plan_batches(16, gpus, per_gpu)
    assert plan == expected and plan.effective == 16


@pytest.mark.parametrize("gpus, per_gpu, message", [
    ((0, 1, 2), None, "does not split over 3 GPUs"),
    ((0, 1), 3, "--batch-per-gpu 3 on 2 GPU"),
    ((0, 1), 16, "--batch-per-gpu 16 on 2 GPU"),
])
def test_impossible_splits_are_one_line_errors(gpus, per_gpu, message):
    with pytest.raises(ValueError, match=message):
        plan_batches(16, gpus, per_gpu)


# --- the ranks' share of the data -------------------------------------------------------------

@pytest.fixture(scope="module")
def eight_videos(tmp_path_factory):
    """Eight 12-frame videos, video i labelled i, each frame its own picture."""
    root = tmp_path_factory.mktemp("eight")
    rng = np.random.default_rng(0)
    for v in range(8):
        folder = root / f"v{v}"
        folder.mkdir()
        for i in range(1, 13):
            cv2.imwrite(str(folder / rawframes.img_name(i)),
                        rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
            if i < 12:
                plane = rng.integers(0, 256, (20, 24), dtype=np.uint8)
                cv2.imwrite(str(folder / rawframes.flow_x_name(i)), plane)
                cv2.imwrite(str(folder / rawframes.flow_y_name(i)), plane)
    (root / "rgb.txt").write_text("".join(f"v{v} 12 {v}\n" for v in range(8)))
    (root / "flow.txt").write_text("".join(f"v{v} 11 {v}\n" for v in range(8)))
    return root


def _labels(maker, batches):
    out = {k: np.empty(s, np.float32) for k, s in maker.shapes().items()}
    labels = []
    for b in range(batches):
        maker.fill(b, out)
        labels += out["label"].astype(int).tolist()
    return labels


@pytest.mark.parametrize("kind", ["clip", "period"])
def test_ranks_take_disjoint_interleaved_shares_of_an_epoch(eight_videos, kind):
    def make(batch, rank=0, world=1):
        if kind == "clip":
            return ClipBatches(str(eight_videos / "rgb.txt"), str(eight_videos), "rgb", batch,
                               16, seed=5, rank=rank, world=world)
        return PeriodBatches(str(eight_videos / "rgb.txt"), str(eight_videos / "flow.txt"),
                             str(eight_videos), batch, 16, delta=1, seed=5, rank=rank,
                             world=world)

    order = _labels(make(8), 2)  # two epochs on one GPU
    assert sorted(order[:8]) == list(range(8)) and sorted(order[8:]) == list(range(8))
    rank0, rank1 = _labels(make(4, 0, 2), 2), _labels(make(4, 1, 2), 2)
    assert rank0 == order[0::2][:8] and rank1 == order[1::2][:8]
    assert set(rank0[:4]).isdisjoint(rank1[:4])  # one epoch: no video on both GPUs
    # and the two ranks crop differently (their generators are seeded by rank)
    a, b = make(4, 0, 2), make(4, 1, 2)
    out_a = {k: np.empty(s, np.float32) for k, s in a.shapes().items()}
    out_b = {k: np.empty(s, np.float32) for k, s in b.shapes().items()}
    a.fill(0, out_a)
    b.fill(0, out_b)
    data = "data" if kind == "clip" else "rgb_t1"
    assert not np.array_equal(out_a[data], out_b[data])


def test_bad_rank_is_refused(eight_videos):
    with pytest.raises(ValueError, match="rank must be in 0..world-1"):
        ClipBatches.from_params({"list": str(eight_videos / "rgb.txt"), "rank": 2, "world": 2})


@requires_caffe
def test_data_layer_takes_its_rank_from_caffe(eight_videos, tmp_path):
    import caffe

    params = {"list": str(eight_videos / "rgb.txt"), "root": str(eight_videos),
              "modality": "rgb", "batch_size": 4, "input_size": 16, "seed": 5, "workers": 0}
    proto = ('layer { name: "d" type: "Python" top: "data" top: "label" python_param { '
             'module: "co2fi_layers.clip_data" layer: "ClipDataLayer" '
             f"param_str: '{json.dumps(params)}' }} }}")
    (tmp_path / "net.prototxt").write_text(proto)
    expected = _labels(ClipBatches(str(eight_videos / "rgb.txt"), str(eight_videos), "rgb", 4,
                                   16, seed=5, rank=1, world=2), 1)
    caffe.set_solver_count(2)  # what the solver worker sets in the process of rank 1
    caffe.set_solver_rank(1)
    caffe.set_multiprocess(True)
    try:
        net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TRAIN)
        net.forward()
        assert net.blobs["label"].data.astype(int).tolist() == expected
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
        caffe.set_multiprocess(False)
