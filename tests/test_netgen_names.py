"""netgen/names.py owns the names and input shapes the generated nets share with their readers
(co2fi_layers, co2fi_tools): the checked-in nets use them, and it imports without Caffe."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from netgen import names, paper
from tests.conftest import requires_caffe

ROOT = Path(__file__).resolve().parents[1]
NETS = ROOT / "prototxt" / "small" / "synthetic"


def _net(name: str):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter()
    text_format.Merge((NETS / f"{name}.prototxt").read_text(), net)
    return net


def test_names_imports_without_caffe():
    code = ("import sys; sys.modules['caffe'] = None\n"
            "from netgen import names\n"
            "print(names.CHANNELS['flow'], names.GROUPER_PREFIX)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == [str(2 * paper.FLOW_STACK), "grouper_"]


def test_stream_inputs():
    assert names.CHANNELS == {"rgb": 3, "flow": 2 * paper.FLOW_STACK}
    assert names.FILES_PER_SAMPLE == {"rgb": 1, "flow": 2 * paper.FLOW_STACK}
    with pytest.raises(ValueError, match=r"unknown stream 'depth'; known: \('rgb', 'flow'\)"):
        names.channels("depth")


def test_tower_names_round_trip():
    layer = names.tower("flow", 3) + names.TOWER_SEPARATOR + names.GROUPER_PREFIX + "conv1"
    assert layer == "flow_t3/grouper_conv1"
    assert names.split_tower(layer) == ("flow", "grouper_conv1")
    assert names.split_tower("rgb_t12/fc7") == ("rgb", "fc7")
    assert names.split_tower("conv1_1") == (None, "conv1_1")
    assert names.split_tower("depth_t1/conv1_1") == (None, "depth_t1/conv1_1")


@requires_caffe
def test_every_python_layer_of_the_nets_is_a_named_one_and_imports():
    seen = set()
    for path in sorted(NETS.glob("*_train.prototxt")):
        for layer in _net(path.stem).layer:
            if layer.type == "Python":
                seen.add((layer.python_param.module, layer.python_param.layer))
    assert seen == set(names.PYTHON_LAYERS)
    for module, cls in names.PYTHON_LAYERS:
        assert hasattr(importlib.import_module(module), cls)


@requires_caffe
def test_nets_use_the_names_and_channels():
    deploy = _net("co2fi_asyn_d5_rgb_centred_deploy")
    dims = {layer.top[0]: list(layer.input_param.shape[0].dim) for layer in deploy.layer
            if layer.type == "Input"}
    assert dims[names.tower("rgb", 3)][1] == names.CHANNELS["rgb"]
    assert dims[names.tower("flow", 1)][1] == names.CHANNELS["flow"]
    train = _net("co2fi_rgb_train")
    grouper = [layer.name for layer in train.layer if "conv1" in layer.name
               and layer.name.startswith(names.GROUPER_PREFIX)]
    assert grouper == [names.GROUPER_PREFIX + "conv1"]
    direct = _net("direct_combine_flow_train")
    assert any(layer.name == names.DIRECT_CNNM_PREFIX + "fc8" or
               layer.name == names.DIRECT_CNNM_PREFIX + "fc7" for layer in direct.layer)
