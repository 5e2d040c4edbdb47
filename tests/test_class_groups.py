"""Adaptive class group forming (co2fi_layers/class_groups.py) on hand-worked examples."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")

from co2fi_layers.group_forming import form_class_groups, rank_classes  # noqa: E402


def members(mask_row):
    return sorted(np.flatnonzero(mask_row).tolist())


# scores of 7 classes; ranking: 3 (.9), 0 (.8), 5 (.7), 1 (.6), 6 (.5), 2 (.2), 4 (.1)
SCORES = np.array([[0.8, 0.6, 0.2, 0.9, 0.1, 0.7, 0.5]])


def test_ground_truth_already_in_every_group():
    g = form_class_groups(SCORES, [3], (5, 3, 1))
    assert [members(m[0]) for m in g] == [[0, 1, 3, 5, 6], [0, 3, 5], [3]]


def test_ground_truth_forced_in_replaces_lowest_ranked():
    # label 5 is rank 3: in the top-5 and top-3 groups, forced into the top-1 group
    g = form_class_groups(SCORES, [5], (5, 3, 1))
    assert [members(m[0]) for m in g] == [[0, 1, 3, 5, 6], [0, 3, 5], [5]]
    # label 4 ranks last: replaces class 6 in top-5, class 5 in top-3, class 3 in top-1
    g = form_class_groups(SCORES, [4], (5, 3, 1))
    assert [members(m[0]) for m in g] == [[0, 1, 3, 4, 5], [0, 3, 4], [4]]
    assert [m.sum() for m in g] == [5, 3, 1]


def test_ground_truth_appended():
    g = form_class_groups(SCORES, [4], (5, 3, 1), forced_gt="append")
    assert [members(m[0]) for m in g] == [[0, 1, 3, 4, 5, 6], [0, 3, 4, 5], [3, 4]]


def test_ties_lower_class_index_first():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    assert rank_classes(scores).tolist() == [[1, 0, 2, 3, 4]]
    assert rank_classes(scores, "higher_index").tolist() == [[1, 3, 2, 0, 4]]
    g = form_class_groups(scores, [1], (3, 1))
    assert [members(m[0]) for m in g] == [[0, 1, 2], [1]]
    g = form_class_groups(scores, [1], (3, 1), tie_break="higher_index")
    assert [members(m[0]) for m in g] == [[1, 2, 3], [1]]
    # all equal: the lowest indices; ground truth 4 replaces the last of them
    g = form_class_groups(np.zeros((1, 5)), [4], (3,))
    assert members(g[0][0]) == [0, 1, 4]


def test_batch_rows_independent_and_float_labels():
    scores = np.vstack([SCORES, SCORES[:, ::-1]])
    g = form_class_groups(scores, np.array([4.0, 2.0]), (5, 3, 1))
    assert members(g[2][0]) == [4]
    assert members(g[2][1]) == [2]  # the second row ranks class 3 first; 2 is forced in
    assert g.shape == (3, 2, 7) and g.dtype == np.float32


def test_bad_arguments():
    with pytest.raises(ValueError):
        form_class_groups(SCORES, [7], (5, 3, 1))  # label out of range
    with pytest.raises(ValueError):
        form_class_groups(SCORES, [0], (8, 3, 1))  # group larger than N
    with pytest.raises(ValueError):
        form_class_groups(SCORES, [0], (5,), forced_gt="drop")


def test_caffe_layer_matches_function(tmp_path):
    caffe = pytest.importorskip("caffe")
    from caffe import layers as L
    from caffe.net_spec import NetSpec

    n = NetSpec()
    n.score, n.label = L.Input(ntop=2, input_param={"shape": [{"dim": [2, 7]}, {"dim": [2]}]})
    tops = L.Python(n.score, n.label, ntop=3, python_param={
        "module": "co2fi_layers.class_groups", "layer": "ClassGroupLayer",
        "param_str": json.dumps({"group_sizes": [5, 3, 1], "num_classes": 7})})
    for name, t in zip(("coarse", "medium", "fine"), tops, strict=False):
        n[name] = t
    path = tmp_path / "groups.prototxt"
    path.write_text(str(n.to_proto()))
    caffe.set_mode_cpu()
    net = caffe.Net(str(path), caffe.TEST)
    net.blobs["score"].data[...] = np.vstack([SCORES, SCORES])
    net.blobs["label"].data[...] = [4, 3]
    out = net.forward()
    ref = form_class_groups(np.vstack([SCORES, SCORES]), [4, 3], (5, 3, 1))
    for k, name in enumerate(("coarse", "medium", "fine")):
        np.testing.assert_array_equal(out[name], ref[k])
