"""T other than the paper's 5: netgen writes a `--steps 7` fusion net, its data layer samples
7-step periods, it trains (a few iterations) and the evaluation scores it, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netgen import paper
from tests.conftest import requires_caffe

pytestmark = requires_caffe

STEPS = 7
METHOD = "Baseline+ASYN (Δ = 1)"


def _data_layer_params(prototxt: str, layer: str) -> dict:
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = text_format.Parse(prototxt, caffe_pb2.NetParameter())
    (found,) = [x for x in net.layer if x.name == layer]
    return json.loads(found.python_param.param_str)


def test_netgen_cli_writes_a_seven_step_net_for_the_data_layer(tmp_path: Path) -> None:
    from netgen.__main__ import main

    assert main(["--preset", "small", "--steps", str(STEPS), "--variant",
                 "baseline_asyn_d1_rgb_centred", "--out", str(tmp_path)]) == 0
    train = (tmp_path / "prototxt/small/synthetic/baseline_asyn_d1_rgb_centred_train.prototxt")
    params = _data_layer_params(train.read_text(), "period_data")
    assert params["period_steps"] == STEPS
    assert params["rgb_steps"] == [4] and params["flow_steps"] == list(range(1, STEPS + 1))
    test = _data_layer_params(train.read_text(), "period_data_test")
    assert test["period_steps"] == STEPS and test["phase"] == "test"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory):
    from co2fi_tools.miniature import prepare_data
    from co2fi_tools.pipeline import Experiment, run_experiment

    root = tmp_path_factory.mktemp("steps7")
    data = root / "data"
    prepare_data(data, classes=4, clips=3, frames=40, flow="farneback", workers=1, seed=0)
    exp = Experiment(dataset="synthetic", data_root=data, num_classes=4, out=root / "out",
                     preset="small", methods=(METHOD,), max_iter=2, steps=STEPS)
    return exp, run_experiment(exp)


def test_seven_step_fusion_nets_train_and_are_evaluated(experiment) -> None:
    from co2fi_tools.evaluation.scores import load_scores

    exp, summary = experiment
    for centre in ("rgb", "flow"):
        variant = f"baseline_asyn_d1_{centre}_centred"
        run = exp.run_dir(variant)
        assert (run / "final.caffemodel").is_file()
        # the run's own train net: the data layer samples 7-step periods, 7 towers of the other
        # stream, initialised from the trained baseline streams
        params = _data_layer_params((run / "train.prototxt").read_text(), "period_data")
        assert params["period_steps"] == STEPS and params["delta"] == 1
        other = "flow" if centre == "rgb" else "rgb"
        assert params[f"{other}_steps"] == list(range(1, STEPS + 1))
        # the warm-up phase starts from the baseline streams, the joint phase from it; the
        # stage's 2 iterations are split between them
        warm = exp.run_dir(f"{variant}_warmup")
        log = (warm / "train.log").read_text()
        assert f"copied  {other}_t{STEPS}/conv1_1 <- {other}:conv1_1" in log
        assert f"{variant}_warmup_iter_1.solverstate" in log
        assert f"{variant}_iter_1.solverstate" in (run / "train.log").read_text()
        (scored,) = load_scores(exp.out / "scores" / f"{variant}.h5").scores.values()
        videos = (exp.data_root / "lists" / "rgb_val_split1.txt").read_text().splitlines()
        assert scored.shape == (len(videos), paper.TEST_PERIODS, 4)  # every test video
    got = {(r["method"], r["stream"]) for r in summary["results"]}
    assert got == {(METHOD, "two-stream")}
    assert json.loads((exp.out / "experiment.json").read_text())["steps"] == STEPS
