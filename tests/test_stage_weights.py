"""co2fi_tools.stage_weights: which earlier stage initialises which layer."""

from __future__ import annotations

from co2fi_tools.stage_weights import candidates
from co2fi_tools.stages import plan


def test_tower_layers_come_from_their_streams_model_then_imagenet() -> None:
    assert candidates("flow_t2/conv1_1") == [("flow", "conv1_1"), ("vgg16", "conv1_1")]
    assert candidates("rgb_t3/grouper_conv1") == [
        ("rgb", "grouper_conv1"), ("rgb_grouper", "conv1"), ("cnn_m_2048", "conv1")]


def test_single_stream_layers_come_from_the_model_grouper_or_imagenet() -> None:
    assert candidates("fc1_coarse") == [("model", "fc1_coarse"), ("vgg16", "fc1_coarse")]
    assert candidates("grouper_fc7") == [
        ("model", "grouper_fc7"), ("grouper", "fc7"), ("cnn_m_2048", "fc7")]
    assert candidates("cnnm_conv2") == [("model", "cnnm_conv2"), ("cnn_m_2048", "conv2")]


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
