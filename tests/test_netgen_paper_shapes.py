"""Paper-preset nets: official layer names and parameter shapes, blob shapes at batch 1.

Nets are instantiated (parameters filled, no forward pass: too slow on a CPU).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe in tests

from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import PAPER  # noqa: E402
from netgen.testing import load, with_batch  # noqa: E402
from netgen.variants import build  # noqa: E402

#: VGG_ILSVRC_16_layers deploy: (weights, bias) shapes; conv1_1 takes 20 channels for flow.
VGG16 = {
    "conv1_1": (64, 3, 3, 3), "conv1_2": (64, 64, 3, 3),
    "conv2_1": (128, 64, 3, 3), "conv2_2": (128, 128, 3, 3),
    "conv3_1": (256, 128, 3, 3), "conv3_2": (256, 256, 3, 3), "conv3_3": (256, 256, 3, 3),
    "conv4_1": (512, 256, 3, 3), "conv4_2": (512, 512, 3, 3), "conv4_3": (512, 512, 3, 3),
    "conv5_1": (512, 512, 3, 3), "conv5_2": (512, 512, 3, 3), "conv5_3": (512, 512, 3, 3),
    "fc6": (4096, 25088), "fc7": (4096, 4096),
}
#: VGG_CNN_M_2048 deploy.
CNNM = {
    "conv1": (96, 3, 7, 7), "conv2": (256, 96, 5, 5), "conv3": (512, 256, 3, 3),
    "conv4": (512, 512, 3, 3), "conv5": (512, 512, 3, 3), "fc6": (4096, 18432),
    "fc7": (2048, 4096),
}


def _deploy(name, classes=101):
    opt = NetOptions(preset=PAPER, num_classes=classes, dataset="ucf101", phase="deploy")
    return load(with_batch(build(name, opt), 1), "test")


def _expect(shapes, stream):
    out = dict(shapes)
    first = next(iter(out))
    if stream == "flow":
        w = list(out[first])
        w[1] = 20
        out[first] = tuple(w)
    return out


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_baseline_is_official_vgg16(stream):
    net = _deploy(f"baseline_{stream}")
    for layer, shape in _expect(VGG16, stream).items():
        assert net.params[layer][0].data.shape == shape, layer
        assert net.params[layer][1].data.shape == (shape[0],), layer
    assert net.params["fc8"][0].data.shape == (101, 4096)
    assert net.blobs["pool5"].data.shape == (1, 512, 7, 7)


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_grouper_is_official_cnn_m_2048(stream):
    net = _deploy(f"grouper_{stream}", classes=51)
    for layer, shape in _expect(CNNM, stream).items():
        assert net.params[f"grouper_{layer}"][0].data.shape == shape, layer
    assert net.blobs["grouper_pool1"].data.shape == (1, 96, 54, 54)
    assert net.blobs["grouper_pool2"].data.shape == (1, 256, 13, 13)
    assert net.blobs["grouper_pool5"].data.shape == (1, 512, 6, 6)
    assert net.params["grouper_fc8"][0].data.shape == (51, 2048)


def test_coarse_to_fine_paper_shapes():
    net = _deploy("co2fi_rgb")
    for layer, shape in VGG16.items():
        if layer.startswith("conv"):
            assert net.params[layer][0].data.shape == shape
    for g in ("coarse", "medium", "fine"):
        assert net.blobs[f"side_map_group_{g}"].data.shape == (1, 3, 56, 56)
        assert net.params[f"fc1_{g}"][0].data.shape == (PAPER.fc1, 3 * 56 * 56)
    assert net.params["side_up_conv5_3"][0].data.shape == (3, 1, 8, 8)
    assert net.blobs["c2f_lstm"].data.shape == (3, 1, PAPER.c2f_lstm)
    assert net.blobs["prob"].data.shape == (1, 101)


def test_coarse_to_fine_train_net_paper_shapes():
    opt = NetOptions(preset=PAPER, num_classes=101, dataset="ucf101", data_source="input",
                     batch=1)
    net = load(build("co2fi_flow", opt))
    assert net.params["grouper_conv1"][0].data.shape == (96, 20, 7, 7)
    assert net.params["fc3_coarse"][0].data.shape == (101, PAPER.fc2)
    assert net.blobs["class_group_coarse"].data.shape == (1, 101)


def test_fusion_paper_shapes():
    net = _deploy("co2fi_asyn_d5_flow_centred")
    assert net.blobs["flow_t3"].data.shape == (1, 20, 224, 224)
    for t in range(1, 6):
        assert net.blobs[f"rgb_t{t}"].data.shape == (1, 3, 224, 224)
        assert net.blobs[f"fuse_pair_t{t}"].data.shape == (1, 2, PAPER.c2f_lstm, 1)
    assert net.blobs["async_lstm"].data.shape == (5, 1, PAPER.async_lstm)
    net = _deploy("baseline_asyn_d5_rgb_centred")
    assert net.blobs["fuse_pair_t1"].data.shape == (1, 2, 4096, 1)
