"""co2fi_tools.evaluate: how a video's periods become deploy-net batches."""

from __future__ import annotations

import numpy as np

from co2fi_tools.evaluate import _variant_delta, method_variants, net_inputs


def _periods(periods: int = 12, steps: int = 5) -> dict[str, np.ndarray]:
    out = {}
    for stream, channels in (("rgb", 3), ("flow", 20)):
        for t in range(1, steps + 1):
            # value = 100 * period + step, so the layout can be read back
            values = 100 * np.arange(periods)[:, None, None, None] + t
            out[f"{stream}_t{t}"] = np.broadcast_to(values, (periods, channels, 2, 2)).astype(
                np.float32)
    return out


def test_single_stream_batch_is_every_step_of_every_period_period_major() -> None:
    data = net_inputs("co2fi_flow", _periods(), ["data"])["data"]
    assert data.shape == (60, 20, 2, 2)
    assert [int(v) for v in data[:7, 0, 0, 0]] == [1, 2, 3, 4, 5, 101, 102]


def test_fusion_net_takes_its_own_steps() -> None:
    inputs = net_inputs("co2fi_asyn_d5_rgb_centred", _periods(), ["rgb_t3", "flow_t1"])
    assert set(inputs) == {"rgb_t3", "flow_t1"}
    assert inputs["rgb_t3"].shape == (12, 3, 2, 2) and int(inputs["rgb_t3"][1, 0, 0, 0]) == 103


def test_delta_of_a_variant_and_methods_to_nets() -> None:
    assert _variant_delta("baseline_asyn_d1_flow_centred") == 1
    assert _variant_delta("co2fi_no_coarseness_rgb") == 5
    assert method_variants("CO2FI+ASYN (Δ = 5)") == ["co2fi_asyn_d5_rgb_centred",
                                                      "co2fi_asyn_d5_flow_centred"]
    assert method_variants("Two-stream baseline") == ["baseline_rgb", "baseline_flow"]
