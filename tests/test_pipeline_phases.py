"""The runs of a stage (co2fi_tools/pipeline.py:stage_phases): one, or a fusion stage's
warm-up and joint phases sharing its iterations and scaling its learning rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from co2fi_tools.experiment import Experiment
from co2fi_tools.pipeline import stage_phases
from co2fi_tools.stages import plan
from netgen.schedule import JOINT, FusionSchedule


def _exp(**kw) -> Experiment:
    kw.setdefault("methods", ("CO2FI+ASYN (Δ = 5)",))
    return Experiment(dataset="synthetic", data_root=Path("/d"), num_classes=12, out=Path("/o"),
                      **kw)


def _stages(exp: Experiment):
    return {s.variant: s for s in plan(exp.methods, exp.settings)}


def test_a_fusion_stage_trains_in_two_phases_that_share_its_iterations():
    exp = _exp(max_iter=500, fusion_max_iter=100, fusion_base_lr=1e-3,
               fusion_schedule=FusionSchedule(warmup_fraction=0.25, warmup_lr_factor=10,
                                              joint_lr_factor=0.5))
    stages = _stages(exp)
    warm, joint = stage_phases(exp, stages["co2fi_asyn_d5_rgb_centred"])
    assert (warm.name, warm.max_iter) == ("co2fi_asyn_d5_rgb_centred_warmup", 25)
    assert (joint.name, joint.max_iter) == ("co2fi_asyn_d5_rgb_centred", 75)
    assert warm.base_lr == pytest.approx(1e-2) and joint.base_lr == pytest.approx(5e-4)
    (single,) = stage_phases(exp, stages["co2fi_rgb"])
    assert (single.name, single.max_iter, single.base_lr) == ("co2fi_rgb", 500, None)


def test_without_sizes_the_generated_solvers_decide_and_one_phase_is_the_literal_reading():
    exp = _exp()
    warm, joint = stage_phases(exp, _stages(exp)["co2fi_asyn_d5_flow_centred"])
    assert warm.max_iter is None and joint.max_iter is None and warm.base_lr is None
    literal = _exp(fusion_max_iter=100, fusion_schedule=FusionSchedule(JOINT))
    (only,) = stage_phases(literal, _stages(literal)["co2fi_asyn_d5_flow_centred"])
    assert (only.name, only.max_iter) == ("co2fi_asyn_d5_flow_centred", 100)


def test_the_flow_lr_factor_scales_the_single_stream_motion_nets_only():
    from netgen.presets import get_preset

    exp = _exp(methods=("CO2FI+ASYN (Δ = 5)", "Two-stream baseline"), flow_lr_factor=5.0,
               preset_changes={"base_lr": 2e-3})
    stages = _stages(exp)
    lrs = {v: [p.base_lr for p in stage_phases(exp, s)] for v, s in stages.items()}
    assert get_preset("small").base_lr != 2e-3  # the experiment's preset change is what counts
    assert lrs["co2fi_flow"] == [pytest.approx(1e-2)]
    assert lrs["baseline_flow"] == [pytest.approx(1e-2)]
    # appearance nets, the groupers and the fusion stages keep their generated solvers' rate
    assert lrs["co2fi_rgb"] == lrs["baseline_rgb"] == lrs["grouper_flow"] == [None]
    assert lrs["co2fi_asyn_d5_flow_centred"] == [None, None]
    plain = _exp(methods=exp.methods)
    assert all(p.base_lr is None for s in _stages(plain).values()
               for p in stage_phases(plain, s))


def test_the_flow_lr_factor_is_in_the_fingerprint():
    from co2fi_tools.experiment import experiment_settings

    assert experiment_settings(_exp())["flow_lr_factor"] == 1.0
    assert experiment_settings(_exp(flow_lr_factor=5.0))["flow_lr_factor"] == 5.0
    with pytest.raises(ValueError, match="flow lr factor"):
        _exp(flow_lr_factor=0.0)


def test_the_lr_step_fraction_anneals_single_stream_stages_and_groupers_within_their_iterations():
    exp = _exp(methods=("CO2FI+ASYN (Δ = 5)", "Two-stream baseline"), max_iter=1000,
               fusion_max_iter=200, lr_step_fraction=0.5)
    steps = {v: [p.lr_step for p in stage_phases(exp, s)] for v, s in _stages(exp).items()}
    assert steps["baseline_rgb"] == steps["co2fi_flow"] == steps["grouper_flow"] == [500]
    # the fusion stages keep their phases' constant rate (netgen.schedule)
    assert steps["co2fi_asyn_d5_rgb_centred"] == [None, None]
    # without the fraction, or without iterations to take it of, the generated solver decides
    for other in (_exp(max_iter=1000), _exp(lr_step_fraction=0.5)):
        assert all(p.lr_step is None for s in _stages(other).values()
                   for p in stage_phases(other, s))
    with pytest.raises(ValueError, match="lr step fraction"):
        _exp(lr_step_fraction=1.5)
