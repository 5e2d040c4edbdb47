"""co2fi_tools.weights.stage_weights: trained groupers and single-stream nets reach the later
stages.

A real (tiny) grouper is trained, a CO2FI stage and a fusion stage start from it, and the blobs
of the resulting nets are compared with the grouper's. A source that does not fill what it
should is an error naming the layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from co2fi_tools.stages import plan
from co2fi_tools.weights.stage_weights import candidates, responsible
from tests.conftest import requires_caffe

GROUPER_LAYERS = ("grouper_conv1", "grouper_conv2", "grouper_conv3", "grouper_conv4",
                  "grouper_conv5", "grouper_fc6", "grouper_fc7", "grouper_fc8")


def test_grouper_layers_are_looked_up_under_the_names_the_grouper_net_gives_them() -> None:
    assert candidates("grouper_fc7") == [
        ("grouper", "grouper_fc7"), ("model", "grouper_fc7"), ("cnn_m_2048", "fc7")]
    assert candidates("rgb_t3/grouper_conv1") == [
        ("rgb_grouper", "grouper_conv1"), ("rgb", "grouper_conv1"), ("cnn_m_2048", "conv1")]


def test_other_layers_come_from_their_streams_model_then_imagenet() -> None:
    assert candidates("flow_t2/conv1_1") == [("flow", "conv1_1"), ("vgg16", "conv1_1")]
    assert candidates("fc1_coarse") == [("model", "fc1_coarse"), ("vgg16", "fc1_coarse")]
    assert candidates("cnnm_conv2") == [("model", "cnnm_conv2"), ("cnn_m_2048", "conv2")]


def test_the_first_given_source_is_responsible_with_no_fallback() -> None:
    given = {"rgb", "flow", "rgb_grouper", "vgg16"}
    assert responsible("rgb_t3/grouper_fc8", given) == ("rgb_grouper", "grouper_fc8")
    assert responsible("flow_t1/grouper_fc8", given) == ("flow", "grouper_fc8")
    assert responsible("flow_t1/side_conv3_3", given) == ("flow", "side_conv3_3")
    assert responsible("fuse_t1", given) == ("vgg16", "fuse_t1")  # new layer: keeps its filler


def test_plan_orders_groupers_before_co2fi_and_co2fi_before_fusion() -> None:
    stages = [s.variant for s in plan(["CO2FI+ASYN (Δ = 5)"])]
    assert stages == ["grouper_rgb", "co2fi_rgb", "grouper_flow", "co2fi_flow",
                      "co2fi_asyn_d5_rgb_centred", "co2fi_asyn_d5_flow_centred"]
    fusion = plan(["CO2FI+ASYN (Δ = 5)"])[-1]
    assert fusion.init == {"rgb": "co2fi_rgb", "flow": "co2fi_flow",
                           "rgb_grouper": "grouper_rgb", "flow_grouper": "grouper_flow"}
    assert plan(["CO2FI-complete"])[0].grouper_data


def test_plan_trains_each_stage_once() -> None:
    stages = [s.variant for s in plan(["Two-stream baseline", "Baseline+ASYN (Δ = 5)",
                                       "Baseline+SYN"])]
    assert len(stages) == len(set(stages))
    assert stages[:2] == ["baseline_rgb", "baseline_flow"]


def test_a_missed_layer_error_gives_the_reason_transplant_recorded() -> None:
    """The user reads why the layer was not filled: transplant's reason, else "not copied"."""
    from types import SimpleNamespace

    from co2fi_tools.weights.net_surgery import SurgeryReport
    from co2fi_tools.weights.stage_weights import WeightTransferError, check_transfer

    models = {"grouper": SimpleNamespace(path="/w/bare.caffemodel", layers={"conv1": None})}
    report = SurgeryReport(skipped=[
        ("grouper_conv2", "shape mismatch, allowed: blob 0"),
        ("grouper_conv1", "'grouper_conv1' missing in /w/bare.caffemodel")])
    with pytest.raises(WeightTransferError) as err:
        check_transfer("co2fi_rgb", ["grouper_conv1"], models, report)
    assert str(err.value) == (
        "co2fi_rgb: layer 'grouper_conv1' should come from grouper (/w/bare.caffemodel, layer "
        "'grouper_conv1') but was not filled: 'grouper_conv1' missing in /w/bare.caffemodel")
    with pytest.raises(WeightTransferError) as err:  # neither copied nor skipped
        check_transfer("co2fi_rgb", ["grouper_fc6"], models, SurgeryReport())
    assert str(err.value).endswith("(/w/bare.caffemodel, layer 'grouper_fc6') but was not "
                                   "filled: not copied")


# --- with real training -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """grouper -> CO2FI -> CO2FI+ASYN stages of both streams, a few iterations each, on a tiny
    synthetic set (the pipeline's own code path)."""
    from co2fi_tools.miniature import prepare_data
    from co2fi_tools.pipeline import Experiment, generate_nets, train_stages

    root = tmp_path_factory.mktemp("stages")
    data = root / "data"
    prepare_data(data, classes=5, clips=3, frames=40, flow="farneback", workers=1, seed=0)
    exp = Experiment(dataset="synthetic", data_root=data, num_classes=5, out=root / "out",
                     preset="small", methods=("CO2FI+ASYN (Δ = 5)",), max_iter=3)
    stages = plan(exp.methods)
    generate_nets(exp, stages)
    finals = train_stages(exp, stages)
    return exp, finals


def _blobs(path: Path) -> dict[str, list[np.ndarray]]:
    from co2fi_tools.weights.net_surgery import read_caffemodel

    return {name: layer.blobs for name, layer in read_caffemodel(path).layers.items()}


def _assert_same(a: list[np.ndarray], b: list[np.ndarray], what: str) -> None:
    assert len(a) == len(b), what
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=what)


@requires_caffe
def test_co2fi_stages_hold_the_trained_groupers_blobs(trained) -> None:
    exp, finals = trained
    for stream in ("rgb", "flow"):
        grouper = _blobs(finals[f"grouper_{stream}"])
        run = exp.run_dir(f"co2fi_{stream}")
        log = (run / "train.log").read_text()
        for layer in GROUPER_LAYERS:
            assert f"copied  {layer} <- grouper:{layer}" in log, (stream, layer)
        # frozen inside the CO2FI net: equal at the start and after training
        for weights in (run / "init.caffemodel", finals[f"co2fi_{stream}"]):
            got = _blobs(weights)
            for layer in GROUPER_LAYERS:
                _assert_same(got[layer], grouper[layer], f"{weights} {layer}")


@requires_caffe
def test_fusion_towers_hold_the_groupers_and_the_trained_co2fi_nets(trained) -> None:
    exp, finals = trained
    groupers = {s: _blobs(finals[f"grouper_{s}"]) for s in ("rgb", "flow")}
    co2fi = {s: _blobs(finals[f"co2fi_{s}"]) for s in ("rgb", "flow")}
    for centre, towers in (("rgb", ["rgb_t3"] + [f"flow_t{i}" for i in range(1, 6)]),
                           ("flow", ["flow_t3"] + [f"rgb_t{i}" for i in range(1, 6)])):
        # the stage's first phase (the warm-up, towers frozen) is the one started from them
        run = exp.run_dir(f"co2fi_asyn_d5_{centre}_centred_warmup")
        log = (run / "train.log").read_text()
        init = _blobs(run / "init.caffemodel")
        final = _blobs(finals[f"co2fi_asyn_d5_{centre}_centred"])
        for tower in towers:
            stream = tower.split("_")[0]
            for layer in GROUPER_LAYERS:
                assert f"copied  {tower}/{layer} <- {stream}_grouper:{layer}" in log
                _assert_same(init[f"{tower}/{layer}"], groupers[stream][layer], tower + layer)
                _assert_same(final[f"{tower}/{layer}"], groupers[stream][layer], tower + layer)
            tower_layers = [k[len(tower) + 1:] for k in init if k.startswith(tower + "/")]
            assert {"conv1_1", "fc1_fine", "c2f_lstm", "c2f_score_t1", "c2f_score_t3"} <= set(
                tower_layers)
            for layer in tower_layers:
                if not layer.startswith("grouper_"):
                    _assert_same(init[f"{tower}/{layer}"], co2fi[stream][layer], tower + layer)


def _rename_layers(src: Path, dst: Path, rename) -> None:
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    net.ParseFromString(src.read_bytes())
    for layer in net.layer:
        layer.name = rename(layer.name)
    dst.write_bytes(net.SerializeToString())


@requires_caffe
def test_a_source_that_misses_a_layer_is_an_error_naming_it(trained, tmp_path: Path) -> None:
    from co2fi_tools.weights.stage_weights import WeightTransferError, initialise_from_stages

    exp, finals = trained
    net = exp.run_dir("co2fi_rgb") / "train.prototxt"
    # the old bug: a grouper under bare CNN_M_2048 names would leave every grouper layer random
    bare = tmp_path / "bare.caffemodel"
    _rename_layers(finals["grouper_rgb"], bare, lambda n: n.removeprefix("grouper_"))
    with pytest.raises(WeightTransferError, match="layer 'grouper_conv1' should come from "
                                                  "grouper") as err:
        initialise_from_stages(net, tmp_path / "x.caffemodel", {"grouper": bare})
    assert "\n" not in str(err.value)
    assert str(err.value).endswith(f"was not filled: 'grouper_conv1' missing in {bare}")
    # a source given for layers the net does not have
    with pytest.raises(WeightTransferError, match="rgb=.* fill no layer"):
        initialise_from_stages(net, tmp_path / "x.caffemodel",
                               {"grouper": finals["grouper_rgb"], "rgb": finals["co2fi_rgb"]})
    # a model without the net's layers
    with pytest.raises(WeightTransferError, match="layer 'conv1_1' should come from model"):
        initialise_from_stages(net, tmp_path / "x.caffemodel",
                               {"grouper": finals["grouper_rgb"], "model": finals["grouper_rgb"]})
    assert not (tmp_path / "x.caffemodel").exists()


@requires_caffe
def test_train_cli_reports_a_missed_layer_in_one_line(trained, tmp_path: Path, capsys) -> None:
    from co2fi_tools.training.train import main

    exp, finals = trained
    bare = tmp_path / "bare.caffemodel"
    _rename_layers(finals["grouper_rgb"], bare, lambda n: n.removeprefix("grouper_"))
    rc = main(["--train-net", str(exp.net_file("co2fi_rgb", "train")),
               "--solver", str(exp.net_file("co2fi_rgb", "solver")),
               "--run-dir", str(tmp_path / "run"), "--data-root", str(exp.data_root),
               "--num-classes", "5", "--max-iter", "1", "--init", f"grouper={bare}"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "'grouper_conv1' should come from grouper" in err
    assert not (tmp_path / "run" / "final.caffemodel").exists()


@requires_caffe
def test_train_cli_takes_paths_relative_to_the_working_directory(
        trained, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`tools/train.py --run-dir runs/x --data-root data/x ...` as a user types it."""
    import os

    from co2fi_tools.training.train import main

    exp, finals = trained
    base = exp.out.parent
    monkeypatch.chdir(base)

    def rel(p: Path) -> str:
        return os.path.relpath(p, base)

    rc = main(["--train-net", rel(exp.net_file("co2fi_rgb", "train")),
               "--solver", rel(exp.net_file("co2fi_rgb", "solver")),
               "--run-dir", "runs/x", "--data-root", rel(exp.data_root), "--num-classes", "5",
               "--max-iter", "1", "--init", f"grouper={rel(finals['grouper_rgb'])}"])
    assert rc == 0, capsys.readouterr().err
    run = base / "runs" / "x"
    assert (run / "final.caffemodel").exists()
    assert f"root\\\": \\\"{exp.data_root / 'frames'}" in (run / "train.prototxt").read_text()
    _assert_same(_blobs(run / "final.caffemodel")["grouper_conv1"],
                 _blobs(finals["grouper_rgb"])["grouper_conv1"], "grouper_conv1")


RANDOM_INIT = r"""
import sys
from co2fi_tools.weights.stage_weights import initialise_from_stages
initialise_from_stages(sys.argv[1], sys.argv[2], {}, seed=int(sys.argv[3]))
"""


@requires_caffe
def test_layers_no_source_fills_get_the_same_weights_in_every_process(tmp_path: Path) -> None:
    """Caffe's fillers draw from its global generator, seeded per process unless told: two
    runs of one experiment gave different CO2FI nets before they were seeded (the soak)."""
    import subprocess
    import sys

    from caffe.proto import caffe_pb2

    net = tmp_path / "net.prototxt"
    net.write_text('name: "n" layer { name: "x" type: "Input" top: "x" input_param { shape { '
                   'dim: 1 dim: 4 } } } layer { name: "fc" type: "InnerProduct" bottom: "x" '
                   'top: "y" inner_product_param { num_output: 3 weight_filler { type: '
                   '"gaussian" std: 1 } } }')
    repo = Path(__file__).resolve().parent.parent

    def weights(name: str, seed: int) -> list[float]:
        out = tmp_path / name
        subprocess.run([sys.executable, "-c", RANDOM_INIT, str(net), str(out), str(seed)],
                       cwd=repo, check=True)
        parsed = caffe_pb2.NetParameter()
        parsed.ParseFromString(out.read_bytes())
        return [v for layer in parsed.layer for b in layer.blobs for v in b.data]

    first = weights("a.caffemodel", 0)
    assert first and first == weights("b.caffemodel", 0)
    assert first != weights("c.caffemodel", 1)
