"""The blob memory tools/bench_nets.py reports (netgen/testing.py): what Caffe allocates.

Caffe allocates a blob's memory on first use: the tops of its Split layers share their bottom's
data, and a diff exists only where Backward runs. ``backward_flags`` replays Net::Init's rule;
these tests hold it to Caffe's own log and the byte count to a net small enough to count by
hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format

from tests.conftest import requires_caffe

ROOT = Path(__file__).resolve().parents[1]

# Input (1x2x4x4) read by a trained conv and a frozen one (Caffe inserts a Split); a Euclidean
# loss between the two, through Reshape layers; label: an Input nobody reads.
HAND_NET = """
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } shape { dim: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "frozen" type: "Convolution" bottom: "data" top: "frozen"
        param { lr_mult: 0 } param { lr_mult: 0 }
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "flat" type: "Reshape" bottom: "conv" top: "flat"
        reshape_param { shape { dim: 1 dim: -1 } } }
layer { name: "flat2" type: "Reshape" bottom: "frozen" top: "flat2"
        reshape_param { shape { dim: 1 dim: -1 } } }
layer { name: "loss_a" type: "EuclideanLoss" bottom: "flat" bottom: "flat2" top: "loss_a" }
"""


def _hand_net():
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    text_format.Merge(HAND_NET, net)
    return net


@requires_caffe
def test_hand_counted_net():
    from netgen.testing import allocated_blob_bytes, blob_bytes, diff_blobs, fill_inputs, load

    param = _hand_net()
    net = load(param, "train")
    fill_inputs(net, 2)
    net.forward()
    net.backward()
    # data feeds conv and frozen: Caffe's Split, whose tops share data's buffer
    assert any(name.startswith("data_input_0_split") for name in net.blobs)
    # diffs: conv (trained, under the loss), flat (read by the loss) and the loss itself; the
    # loss's second bottom comes from the frozen conv, which nothing trains and whose input has
    # no gradient, so Caffe back-propagates into neither flat2 nor frozen
    assert diff_blobs(net, param) == {"conv", "flat", "loss_a"}
    floats = 32  # 1 x 2 x 4 x 4
    data = floats + 1 + floats + floats + 1  # data (its split tops share it), label, conv (flat
    # shares it), frozen (flat2 shares it), loss_a
    diffs = floats + 1  # conv's (flat shares it) and loss_a's
    assert allocated_blob_bytes(net, param) == 4 * (data + diffs)
    nominal = sum(2 * 4 * b.data.size for b in net.blobs.values())
    assert blob_bytes(net) == nominal > allocated_blob_bytes(net, param)


CHILD = r"""
import json, sys
from netgen.nets import NetOptions
from netgen.presets import SMALL
from netgen.testing import backward_flags, load
from netgen.variants import build
param = build(sys.argv[1], NetOptions(preset=SMALL, num_classes=10, data_source="input"))
net = load(param, "train")
flags = backward_flags(net, param)
print(json.dumps({"layers": flags.layers, "need": sorted(flags.layers_needing_backward())}))
"""


@requires_caffe
@pytest.mark.parametrize("name", ["co2fi_rgb", "co2fi_asyn_d5_flow_centred"])
def test_backward_rule_agrees_with_caffes_log(name):
    """Caffe logs, for every layer of a net, whether it needs backward computation; the outer
    net's lines are its last (the LSTM layers' inner nets are set up, and log, before)."""
    env = {**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, name], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    mine = json.loads(out.stdout.strip().splitlines()[-1])
    lines = re.findall(r"\] (\S+) (needs|does not need) backward computation\.", out.stderr)
    outer = lines[-len(mine["layers"]):]
    assert sorted(layer for layer, _ in outer) == sorted(mine["layers"])
    caffe_need = sorted(layer for layer, verdict in outer if verdict == "needs")
    assert caffe_need == mine["need"]
    assert any("grouper" in layer for layer, verdict in outer if verdict == "does not need")
