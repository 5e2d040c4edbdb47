"""One statement of every Python layer's parameters (co2fi_layers/params.py): a param_str key
left out gets the constructor's default, never a second copy of it; the logic modules import
without Caffe."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from co2fi_layers import params
from co2fi_layers.batches import ClipBatches, PeriodBatches
from co2fi_layers.group_forming import ClassGrouper
from co2fi_layers.group_weighted_loss import GroupLoss
from netgen import paper, readings

ROOT = Path(__file__).resolve().parents[1]


def _state(maker: object) -> dict[str, object]:
    """What a batch maker was built with: its plain attributes and the videos it read."""
    plain = {k: v for k, v in vars(maker).items()
             if isinstance(v, (bool, int, float, str, tuple, type(None)))}
    plain["layout"] = maker.layout
    plain["videos"] = getattr(maker, "records", None) or getattr(maker, "videos", None)
    return plain


@pytest.fixture
def lists(tmp_path):
    rgb, flow = tmp_path / "rgb.txt", tmp_path / "flow.txt"
    rgb.write_text("a 30 0\nb 40 1\n")
    flow.write_text("a 29 0\nb 39 1\n")
    return str(rgb), str(flow)


def test_clip_batches_from_params_keeps_the_constructor_defaults(lists):
    rgb, _ = lists
    assert _state(ClipBatches.from_params({"list": rgb})) == _state(ClipBatches(rgb))
    assert _state(ClipBatches.from_params({"list": rgb}, caffe_phase=1)) == \
        _state(ClipBatches(rgb, phase="test"))
    given = {"list": rgb, "modality": "flow", "batch_size": 3, "seed": 5, "flip": False,
             "test_segments": 4, "list_counts": "rgb"}
    expected = ClipBatches(rgb, modality="flow", batch_size=3, seed=5, flip=False,
                           test_segments=4, list_counts="rgb")
    assert _state(ClipBatches.from_params(given)) == _state(expected)
    assert ClipBatches(rgb).batch_size == paper.BATCH_SIZE


def test_period_batches_from_params_keeps_the_constructor_defaults(lists):
    rgb, flow = lists
    for given, expected in [
        ({"rgb_list": rgb, "flow_list": flow}, PeriodBatches(rgb, flow)),
        ({"flow_list": flow, "rgb_steps": []}, PeriodBatches(None, flow, rgb_steps=())),
        ({"rgb_list": rgb, "flow_list": flow, "delta": 2, "test_periods": 3, "phase": "test"},
         PeriodBatches(rgb, flow, delta=2, test_periods=3, phase="test")),
    ]:
        assert _state(PeriodBatches.from_params(given)) == _state(expected)
    made = PeriodBatches(rgb, flow)
    assert (made.delta, made.test_periods) == (paper.DELTA, paper.TEST_PERIODS)


def test_every_constructor_parameter_is_a_param_str_key(lists):
    rgb, flow = lists
    keys = params.parameter_keys(ClipBatches, ClipBatches.RENAME, ["layout"])
    assert "list" in keys and "list_path" not in keys
    with pytest.raises(ValueError, match=r"ClipDataLayer param_str: unknown keys \['lists'\]"):
        ClipBatches.from_params({"list": rgb, "lists": rgb})
    with pytest.raises(ValueError, match="ClipDataLayer param_str needs 'list'"):
        ClipBatches.from_params({"modality": "rgb"})
    with pytest.raises(ValueError, match="list_counts must be one of"):
        PeriodBatches.from_params({"rgb_list": rgb, "flow_list": flow, "list_counts": "x"})
    # the layer's own keys and the frame layout keys pass; the layout is made from them
    maker = ClipBatches.from_params({"list": rgb, "workers": 0, "prefetch": 2,
                                     "layout": "mmaction2"})
    assert maker.layout.img_tmpl != ClipBatches(rgb).layout.img_tmpl


@pytest.mark.parametrize("cls, required, layer", [
    (ClassGrouper, {}, "ClassGroupLayer"),
    (GroupLoss, {"alpha": [0.1, 0.1, 1.0], "num_classes": 7}, "GroupLossLayer"),
])
def test_layer_classes_take_their_defaults_from_their_fields(cls, required, layer):
    built = params.build(cls, params.parse(json.dumps(required), layer), layer)
    assert built == cls(**required)
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            assert getattr(built, field.name) == field.default
    with pytest.raises(ValueError, match=f"{layer} param_str: unknown keys"):
        params.build(cls, {**required, "groups": 3}, layer)


def test_class_groups_default_to_the_paper_and_the_chosen_readings():
    grouper = ClassGrouper()
    assert grouper.group_sizes == paper.GROUP_SIZES
    assert grouper.forced_gt == readings.DEFAULT.forced_gt
    assert grouper.tie_break == readings.DEFAULT.tie_break
    assert GroupLoss((1.0,), 3).reading == readings.DEFAULT.group_loss
    assert ClassGrouper(group_sizes=[3, "1"]).group_sizes == (3, 1)
    masks = ClassGrouper(group_sizes=(2,)).masks(np.array([[0.1, 0.7, 0.2]]), np.array([0]))
    assert masks[0].tolist() == [[1.0, 1.0, 0.0]]


def test_required_keys_and_bad_json_are_one_line_errors():
    with pytest.raises(ValueError, match="GroupLossLayer param_str needs 'alpha'"):
        params.build(GroupLoss, {"num_classes": 3}, "GroupLossLayer")
    with pytest.raises(ValueError, match="ClassGroupLayer param_str is not JSON"):
        params.parse("{group_sizes: 3}", "ClassGroupLayer")
    with pytest.raises(ValueError, match="must be a JSON object"):
        params.parse("[5, 3, 1]", "ClassGroupLayer")
    assert params.parse("", "ClassGroupLayer") == {}


def test_logic_modules_import_without_caffe():
    code = ("import sys; sys.modules['caffe'] = None\n"
            "import co2fi_layers.batches, co2fi_layers.group_forming, "
            "co2fi_layers.group_weighted_loss, co2fi_layers.params, netgen.names, netgen.paper\n"
            "try:\n    import co2fi_layers.class_groups\nexcept ImportError:\n"
            "    print('layer needs caffe')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "layer needs caffe"


def test_group_sizes_must_be_given_and_positive():
    for sizes in ((), (0,), (3, 0), (5, -1, 1)):
        with pytest.raises(ValueError, match=r"group sizes must be positive: \["):
            ClassGrouper(group_sizes=sizes)
    with pytest.raises(ValueError, match="bad forced_gt/tie_break: keep, lower_index"):
        ClassGrouper(forced_gt="keep")


def test_the_logic_records_are_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        ClassGrouper().group_sizes = (1,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        GroupLoss((1.0,), 3).reading = "log_sum"


def test_the_class_count_of_the_param_str_is_checked():
    grouper = ClassGrouper(group_sizes=(3, 1), num_classes="4")
    assert grouper.num_classes == 4
    grouper.check_classes(4)
    with pytest.raises(ValueError, match="scores have 5 classes, param_str says 4"):
        grouper.check_classes(5)
    with pytest.raises(ValueError, match="2 classes cannot fill a top-3 group"):
        ClassGrouper(group_sizes=(3, 1)).check_classes(2)


def test_eq1_terms_default_to_the_chosen_reading():
    from co2fi_layers.group_weighted_loss import group_loss_terms

    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    mask = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    default = group_loss_terms(logits, mask)
    chosen = group_loss_terms(logits, mask, readings.DEFAULT.group_loss)
    other = next(r for r in readings.CHOICES["group_loss"] if r != readings.DEFAULT.group_loss)
    assert np.array_equal(default[0], chosen[0]) and np.array_equal(default[1], chosen[1])
    assert not np.allclose(default[0], group_loss_terms(logits, mask, other)[0])
