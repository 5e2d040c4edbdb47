"""netgen heads each block of a generated prototxt with the paper's figure / equation and the
function that built it (netgen/headings.py); the text still parses to the same NetParameter."""

from __future__ import annotations

import os

from google.protobuf import text_format

os.environ.setdefault("GLOG_minloglevel", "2")

from caffe.proto import caffe_pb2  # noqa: E402

from netgen.emit import generate  # noqa: E402
from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import SMALL  # noqa: E402
from netgen.variants import build  # noqa: E402

NAME = "co2fi_asyn_d5_rgb_centred"
TRAIN = f"prototxt/small/synthetic/{NAME}_train.prototxt"
DEPLOY = f"prototxt/small/synthetic/{NAME}_deploy.prototxt"


def _layer_after(lines: list[str], i: int) -> str:
    """Name of the layer whose ``layer {`` follows the heading line(s) at ``i``."""
    j = i
    while lines[j].startswith("###"):
        j += 1
    assert lines[j] == "layer {", lines[j]
    return lines[j + 1].split('"')[1]


def _headings(text: str) -> dict[str, list[str]]:
    """Heading line -> the layers it heads, in file order."""
    lines = text.split("\n")
    out: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        if line.startswith("###"):
            assert line.endswith(" ###"), line
            out.setdefault(line, []).append(_layer_after(lines, i))
    return out


def test_fusion_train_net_heads_every_block_before_its_first_layer():
    text = generate(SMALL, "synthetic", 10, names=[NAME])[TRAIN]
    h = _headings(text)
    where = {
        "### Sec. 5.1, Fig. 5 inputs: periods of 5 steps, Delta=5 (label and one input a tower)"
        " -- netgen/data.py:period_data ###": ["period_data"],
        "### VGG-16 trunk (Sec. 4.1; Simonyan & Zisserman 2015), conv1_1 to conv5_3 [rgb_t3]"
        " -- netgen/trunks.py:vgg16_trunk ###": ["rgb_t3/input_scale"],
        "### Fig. 3: side outputs (conv3_3, conv4_3, conv5_3) [rgb_t3]"
        " -- netgen/coarse_to_fine.py:side_outputs ###": ["rgb_t3/side_conv3_3"],
        "### Fig. 3: side-map groups (side-output slices concatenated per granularity: coarse,"
        " medium, fine) [flow_t2] -- netgen/coarse_to_fine.py:side_map_groups ###":
            ["flow_t2/side_slice_conv3_3"],
        "### Sec. 4.1, Fig. 3: FC1 x3 (the features x_k of the granularities) [rgb_t3]"
        " -- netgen/coarse_to_fine.py:multi_granularity_features ###": ["rgb_t3/fc1_coarse"],
        "### Eq. 1: class-group loss (GroupLossLayer) [flow_t5]"
        " -- netgen/coarse_to_fine.py:group_loss ###": ["flow_t5/loss_group"],
        "### Eq. 2: 3-unit coarse-to-fine LSTM over x_k, coarse to fine [rgb_t3]"
        " -- netgen/coarse_to_fine.py:coarse_to_fine_integration ###": ["rgb_t3/c2f_lstm_x1"],
        "### Fig. 5, Sec. 5.1: stream-wise 1x1 fusion K_4"
        " -- netgen/fusion.py:stream_wise_fusion ###": ["fuse_pair_t4"],
        "### Eq. 5: 5-unit asynchronous LSTM over the fused maps"
        " -- netgen/fusion.py:asynchronous_integration ###": ["async_lstm_x1"],
        "### Eq. 5: FC scores of the LSTM steps and their softmax losses"
        " -- netgen/coarse_to_fine.py:step_losses ###": ["async_score_t1"],
    }
    for line, layers in where.items():
        assert h.get(line) == layers, (line, h.get(line))
    # one of each Fig. 3 block per tower (1 rgb + 5 flow), the CNN_M_2048 grouper's heading
    # right after its class-group heading, above the same layer
    side = [k for k in h if k.startswith("### Fig. 3: side outputs")]
    assert len(side) == 6
    lines = text.split("\n")
    i = lines.index("### Sec. 4.2: adaptive class groups (frozen CNN_M_2048 grouper + "
                    "ClassGroupLayer; training only) [rgb_t3] -- "
                    "netgen/coarse_to_fine.py:adaptive_class_groups ###")
    assert lines[i + 1].startswith("### CNN_M_2048 trunk")
    assert _layer_after(lines, i) == "rgb_t3/grouper_input_scale"


def test_headed_text_parses_to_the_built_net():
    files = generate(SMALL, "synthetic", 10, names=[NAME])
    for rel, phase in ((TRAIN, "train"), (DEPLOY, "deploy")):
        parsed = caffe_pb2.NetParameter()
        text_format.Merge(files[rel], parsed)
        built = build(NAME, NetOptions(preset=SMALL, num_classes=10, dataset="synthetic",
                                       phase=phase))
        assert parsed == built, rel
        # the headings are the only addition: without the comment lines, Caffe's own text
        stripped = "".join(line + "\n" for line in files[rel].split("\n")[:-1]
                           if not line.startswith("#"))
        assert stripped == text_format.MessageToString(built)


def test_deploy_net_headings():
    text = generate(SMALL, "synthetic", 10, names=[NAME])[DEPLOY]
    h = _headings(text)
    assert h["### Deploy inputs: one Input layer a tower -- netgen/data.py:deploy_inputs ###"] \
        == ["rgb_t3"]
    assert h["### Test-time output: prob (softmax of the last step, or of the mean of the "
             "steps' scores) -- netgen/coarse_to_fine.py:prediction ###"] == ["prob"]
    assert not any("Eq. 1" in k for k in h)  # no class-group loss in a deploy net
