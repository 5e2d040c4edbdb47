"""netgen takes the dataset folder and split as inputs; data_prep.lists names the files in it."""

from __future__ import annotations

import json
from pathlib import Path

from caffe.proto import caffe_pb2
from google.protobuf import text_format

from netgen.__main__ import main


def _data_params(path: Path) -> dict[str, dict]:
    net = text_format.Parse(path.read_text(), caffe_pb2.NetParameter())
    return {layer.name: json.loads(layer.python_param.param_str) for layer in net.layer
            if layer.type == "Python" and layer.python_param.module.endswith("_data")}


def test_data_root_and_split_reach_the_train_and_test_data_layers(tmp_path: Path) -> None:
    assert main(["--preset", "small", "--variant", "baseline_flow", "--variant",
                 "baseline_asyn_d5_rgb_centred", "--data-root", "/videos/{dataset}",
                 "--split", "3", "--out", str(tmp_path)]) == 0
    nets = tmp_path / "prototxt" / "small" / "synthetic"
    single = _data_params(nets / "baseline_flow_train.prototxt")
    assert single["data"]["list"] == "/videos/synthetic/lists/flow_train_split3.txt"
    assert single["data_test"]["list"] == "/videos/synthetic/lists/flow_val_split3.txt"
    assert single["data"]["root"] == single["data_test"]["root"] == "/videos/synthetic/frames"
    fusion = _data_params(nets / "baseline_asyn_d5_rgb_centred_train.prototxt")
    assert fusion["period_data"]["rgb_list"] == "/videos/synthetic/lists/rgb_train_split3.txt"
    assert fusion["period_data_test"]["flow_list"] == "/videos/synthetic/lists/flow_val_split3.txt"


def test_default_paths_are_the_checked_in_ones(tmp_path: Path) -> None:
    assert main(["--preset", "small", "--variant", "baseline_rgb", "--out", str(tmp_path)]) == 0
    params = _data_params(tmp_path / "prototxt" / "small" / "synthetic" /
                          "baseline_rgb_train.prototxt")
    assert params["data"]["list"] == "data/synthetic/lists/rgb_train_split1.txt"
