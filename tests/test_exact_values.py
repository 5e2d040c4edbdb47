"""Hand-worked values for what a mutation run found untested: exact test and short-video
sampling indices, Eq. 1 with loss_weight != 1, the lower-index tie-break at 101 classes, label -1,
and the ImageNet path of initialise_from_stages (fc8 skipped, conv1_1 cross-modality)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from co2fi_layers import sampling
from co2fi_layers.group_forming import form_class_groups, rank_classes
from co2fi_layers.group_weighted_loss import group_loss
from co2fi_tools.evaluation import classification as cl
from netgen import paper
from tests.conftest import requires_caffe

STEPS = (1, 2, 3, 4, 5)


# --- sampling (Delta 5, 12 periods, flow stacks of 10): worked by hand ------------------------

def test_paper_numbers_these_values_were_worked_with():
    assert (paper.DELTA, paper.TEST_PERIODS, paper.FLOW_STACK, paper.FUSION_STEPS) == \
        (5, 12, 10, 5)


def test_test_periods_of_a_100_frame_video():
    # offsets -10..10; frames need 11 <= c <= 90; flow stacks (99 flow frames, centred: t-5 ..
    # t+4) need c - 10 - 5 >= 1 and c + 10 + 4 <= 99 -> 16 <= c <= 85, 70 centres.
    # Centre i = 16 + floor(70 (2i + 1) / 24).
    assert sampling.centre_range(100, STEPS, 5, 10) == (16, 85)
    points = sampling.period_indices(100, 12, STEPS, 5, 10)
    centres = [18, 24, 30, 36, 42, 48, 53, 59, 65, 71, 77, 83]
    assert points[:, 2].tolist() == centres
    assert points[0].tolist() == [8, 13, 18, 23, 28]
    assert points[11].tolist() == [73, 78, 83, 88, 93]
    assert sampling.flow_stack_indices(8, 10, 99).tolist() == list(range(3, 13))
    assert sampling.flow_stack_indices(93, 10, 99).tolist() == list(range(88, 98))


def test_test_periods_without_flow_use_the_whole_video():
    # frames only: 11 <= c <= 90, 80 centres; centre i = 11 + floor(80 (2i + 1) / 24)
    points = sampling.period_indices(100, 12, STEPS, 5, 0)
    assert points[:, 2].tolist() == [14, 21, 27, 34, 41, 47, 54, 61, 67, 74, 81, 87]


@pytest.mark.parametrize("num_frames, expected", [
    (20, [1, 5, 10, 15, 20]),  # lo 16 > hi 5: centre (16 + 5) // 2 = 10, clamped to 1..20
    (1, [1, 1, 1, 1, 1]),
    (31, [6, 11, 16, 21, 26]),  # lo 16 = hi 16: one centre, nothing clamped
])
def test_short_videos_repeat_one_centred_period(num_frames, expected):
    points = sampling.period_indices(num_frames, 12, STEPS, 5, 10)
    assert points.tolist() == [expected] * 12
    rng = np.random.default_rng(0)
    assert sampling.random_period(rng, num_frames, STEPS, 5, 10).tolist() == expected


def test_one_step_stream_samples_its_own_range():
    # offset 0 only: 1 <= c <= 100 for the frame; flow 6 <= c <= 95 -> 90 centres,
    # centre i = 6 + floor(90 (2i + 1) / 24)
    assert sampling.centre_range(100, (3,), 5, 10) == (6, 95)
    assert sampling.period_indices(100, 12, (3,), 5, 10)[:, 0].tolist() == \
        [9, 17, 24, 32, 39, 47, 54, 62, 69, 77, 84, 92]
    # steps 1..3: offsets -10, -5, 0 -> frames 11 <= c <= 100, flow 16 <= c <= 95
    assert sampling.centre_range(100, (1, 2, 3), 5, 10) == (16, 95)


def test_flow_stacks_at_the_edges_of_the_video():
    # start = min(max(1, t - L // 2), max(1, num_flow - L + 1)), then L consecutive, clamped
    assert sampling.flow_stack_indices(3, 10, 99).tolist() == list(range(1, 11))
    assert sampling.flow_stack_indices(98, 10, 99).tolist() == list(range(90, 100))
    assert sampling.flow_stack_indices(8, 5, 99).tolist() == [6, 7, 8, 9, 10]  # odd L
    assert sampling.flow_stack_indices(3, 10, 4).tolist() == [1, 2, 3, 4] + [4] * 6


def test_flow_stacks_of_one_field_end_one_frame_earlier():
    # L = 1: the stack of time point t is flow t (t -> t + 1), so c + 10 <= 99
    assert sampling.centre_range(100, STEPS, 5, 1) == (11, 89)
    assert sampling.centre_range(100, STEPS, 5, 0) == (11, 90)


def test_train_start_of_a_clip_longer_than_the_video_is_the_first_frame():
    rng = np.random.default_rng(0)
    assert {sampling.random_start(rng, 4, 10) for _ in range(20)} == {1}


@pytest.mark.parametrize("steps", [(0,), (1, 6), ()])
def test_steps_outside_the_period_are_refused(steps):
    with pytest.raises(ValueError, match=r"steps must be in 1\.\.5"):
        sampling.period_indices(64, 3, steps, 5, 10)


# --- Eq. 1 ------------------------------------------------------------------------------------

def test_eq1_by_hand_with_alpha_and_normalisation():
    # softmax(log [1, 2, 1]) = [1/4, 1/2, 1/4]; group {0, 1}: -(ln 1/4 + ln 1/2) = ln 8
    z = np.log(np.array([[1.0, 2.0, 1.0]]))
    m = np.array([[1.0, 1.0, 0.0]])
    loss, (grad,) = group_loss([z], [m], [0.5], 3)
    assert loss == pytest.approx(np.log(8) * 0.5 / 3)
    # d/dz = |G| p - m = [-1/2, 0, 1/2], times alpha / N / batch = 1/6
    np.testing.assert_allclose(grad, [[-1 / 12, 0.0, 1 / 12]], atol=1e-12)
    loss, _ = group_loss([z], [m], [0.5], 3, reading="log_sum")
    assert loss == pytest.approx(-np.log(0.75) * 0.5 / 3)


def _eq1_layer(tmp_path, loss_weight, params, propagate_masks=False):
    import caffe
    from caffe import layers as L
    from caffe.net_spec import NetSpec

    n = NetSpec()
    n.z, n.m = L.Input(ntop=2, input_param={"shape": [{"dim": [1, 3]}] * 2})
    n.loss = L.Python(n.z, n.m, loss_weight=loss_weight, propagate_down=[True, propagate_masks],
                      python_param={"module": "co2fi_layers.group_loss",
                                    "layer": "GroupLossLayer", "param_str": json.dumps(params)})
    path = tmp_path / "loss.prototxt"
    path.write_text("force_backward: true\n" + str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TRAIN)
    net.blobs["z"].data[...] = np.log([[1.0, 2.0, 1.0]])
    net.blobs["m"].data[...] = [[1.0, 1.0, 0.0]]
    net.forward()
    net.backward()
    return net


@requires_caffe
@pytest.mark.parametrize("loss_weight", [0.25, 4.0])
def test_eq1_layer_scales_its_gradient_by_loss_weight(tmp_path, loss_weight):
    net = _eq1_layer(tmp_path, loss_weight, {"alpha": [0.5], "num_classes": 3})
    assert float(net.blobs["loss"].data.ravel()[0]) == pytest.approx(np.log(8) / 6, rel=1e-6)
    np.testing.assert_allclose(net.blobs["z"].diff, [[-loss_weight / 12, 0, loss_weight / 12]],
                               rtol=1e-5, atol=1e-7)


@requires_caffe
def test_eq1_layer_refuses_a_mask_that_does_not_match_its_logits(tmp_path):
    import caffe
    from caffe import layers as L
    from caffe.net_spec import NetSpec

    n = NetSpec()
    shapes = [[2, 4]] * 3 + [[2, 4], [2, 5], [2, 4]]  # the medium granularity's mask is wrong
    tops = L.Input(ntop=6, input_param={"shape": [{"dim": d} for d in shapes]})
    n.loss = L.Python(*tops, loss_weight=1.0, python_param={
        "module": "co2fi_layers.group_loss", "layer": "GroupLossLayer",
        "param_str": json.dumps({"alpha": [0.1, 0.1, 1.0], "num_classes": 4})})
    path = tmp_path / "loss.prototxt"
    path.write_text(str(n.to_proto()))
    with pytest.raises(ValueError, match=r"logits \(2, 4\) and mask \(2, 5\) differ"):
        caffe.Net(str(path), caffe.TRAIN)


@requires_caffe
def test_eq1_layer_without_class_normalisation_and_no_gradient_to_masks(tmp_path):
    net = _eq1_layer(tmp_path, 1.0, {"alpha": [0.5], "num_classes": 3,
                                     "class_normalization": False}, propagate_masks=True)
    assert float(net.blobs["loss"].data.ravel()[0]) == pytest.approx(np.log(8) / 2, rel=1e-6)
    np.testing.assert_allclose(net.blobs["z"].diff, [[-0.25, 0, 0.25]], rtol=1e-5, atol=1e-7)
    assert (net.blobs["m"].diff == 0).all()  # the groups are not learned through the loss


# --- class groups at 101 classes, label -1 ------------------------------------------------------

def test_lower_index_tie_break_holds_at_101_classes():
    scores = np.zeros((2, 101))
    scores[1, 50:] = 1.0  # classes 50..100 tie above 0..49
    order = rank_classes(scores)
    assert order[0].tolist() == list(range(101))
    assert order[1, :5].tolist() == [50, 51, 52, 53, 54]
    assert order[1, -3:].tolist() == [47, 48, 49]
    assert rank_classes(scores, "higher_index")[0, :5].tolist() == [100, 99, 98, 97, 96]
    masks = form_class_groups(scores, [100, 2], (5, 3, 1))
    assert np.flatnonzero(masks[0, 0]).tolist() == [0, 1, 2, 3, 100]  # replaces class 4
    assert np.flatnonzero(masks[2, 0]).tolist() == [100]
    assert np.flatnonzero(masks[0, 1]).tolist() == [2, 50, 51, 52, 53]  # 54 made way for 2
    assert masks.sum(axis=2).tolist() == [[5, 5], [3, 3], [1, 1]]


def test_ties_keep_index_order_where_quicksort_would_not():
    # 101 classes, scores in {0, 1, 2}: numpy's default (unstable) sort reorders equal scores
    scores = np.random.default_rng(3).integers(0, 3, (4, 101)).astype(np.float32)
    for tie_break, direction in (("lower_index", 1), ("higher_index", -1)):
        order = rank_classes(scores, tie_break)
        for row, ranked in zip(scores, order, strict=True):
            assert (np.diff(row[ranked]) <= 0).all()  # best first
            for value in (0, 1, 2):  # equal scores: indices ascending (lower) or descending
                same = ranked[row[ranked] == value]
                assert (np.diff(same) * direction > 0).all()


def test_group_sizes_and_labels_at_their_limits():
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    masks = form_class_groups(scores, [0], (4, 1))  # label 0 and a group of all N classes
    assert masks[:, 0].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    for sizes in ((0,), (5,)):
        with pytest.raises(ValueError, match=r"must lie in 1\.\.4"):
            form_class_groups(scores, [0], sizes)


def _group_layer(tmp_path, classes, params, force_backward=False):
    import caffe
    from caffe import layers as L
    from caffe.net_spec import NetSpec

    n = NetSpec()
    n.score, n.label = L.Input(ntop=2, input_param={"shape": [{"dim": [2, classes]},
                                                              {"dim": [2]}]})
    sizes = json.loads(params or "{}").get("group_sizes", [5, 3, 1])
    tops = L.Python(n.score, n.label, ntop=len(sizes), python_param={
        "module": "co2fi_layers.class_groups", "layer": "ClassGroupLayer",
        "param_str": params})
    for i, t in enumerate(tops if len(sizes) > 1 else [tops]):
        n[f"g{i}"] = t
    n.out = L.Eltwise(*[n[f"g{i}"] for i in range(len(sizes))], n.score)
    path = tmp_path / "groups.prototxt"
    path.write_text(("force_backward: true\n" if force_backward else "") + str(n.to_proto()))
    return caffe.Net(str(path), caffe.TRAIN)


@requires_caffe
def test_group_layer_defaults_and_no_gradient_to_the_grouper(tmp_path):
    net = _group_layer(tmp_path, 5, "", force_backward=True)  # defaults: sizes 5, 3, 1
    net.blobs["score"].data[...] = [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]
    net.blobs["label"].data[...] = [0, 0]
    net.forward()
    assert net.blobs["g0"].data.tolist() == [[1] * 5] * 2
    # row 0 ranks 4, 3, 2, 1, 0: label 0 replaces class 2 in the top-3
    assert net.blobs["g1"].data.tolist() == [[1, 0, 0, 1, 1], [1, 1, 1, 0, 0]]
    assert net.blobs["g2"].data.tolist() == [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    net.blobs["out"].diff[...] = 1.0
    net._backward(len(net.layers) - 1, 0)
    assert (net.blobs["score"].diff == 1.0).all()  # only the Eltwise path: the groups add 0


@requires_caffe
@pytest.mark.parametrize("classes, params, message", [
    (7, {"group_sizes": [5, 3, 1], "num_classes": 6}, "scores have 7 classes, param_str says 6"),
    (4, {"group_sizes": [5, 3, 1]}, "4 classes cannot fill a top-5 group"),
    (7, {"group_sizes": [5, 3, 1], "forced_gt": "drop"}, "bad forced_gt/tie_break: drop"),
    (7, {"group_sizes": [5, 3, 1], "tie_break": "random"}, "bad forced_gt/tie_break"),
])
def test_group_layer_setup_errors(tmp_path, classes, params, message):
    with pytest.raises(ValueError, match=message):
        _group_layer(tmp_path, classes, json.dumps(params))


def test_label_minus_one_is_refused_not_wrapped_to_the_last_class():
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.4: \[2, -1\]"):
        form_class_groups(np.zeros((2, 5)), [2, -1], (3, 1))
    scores = np.eye(3)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2, got -1\.\.2"):
        cl.top1_accuracy(scores, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="labels must lie in"):
        cl.mean_class_accuracy(scores, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="labels must lie in"):
        cl.confusion_matrix(scores, np.array([0, 1, -1]))


def test_per_class_table_with_a_class_never_seen_nor_predicted():
    # 4 classes; class 2 has no video and is never predicted. Predictions 0, 1, 1, 3
    scores = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 5.0, 0, 0], [0, 0, 0, 5.0]])
    rows = cl.per_class_table(scores, np.array([0, 0, 1, 3]), ["a", "b", "c", "d"])
    assert [(r.support, r.correct, r.most_confused_with) for r in rows] == \
        [(2, 1, "b"), (1, 1, ""), (0, 0, ""), (1, 1, "")]
    assert [r.recall for r in rows[:2]] + [rows[3].recall] == [0.5, 1.0, 1.0]
    assert np.isnan(rows[2].recall)


def test_accuracies_and_table_rows_are_values_not_shared_state():
    import dataclasses

    acc = cl.evaluate(np.eye(3), np.array([0, 1, 2]))
    row = cl.per_class_table(np.eye(3), np.array([0, 1, 2]))[0]
    for value, field in ((acc, "top1"), (row, "recall")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 0.0)


def test_results_fields_are_top1_and_mean_class_in_that_order():
    # 4 videos: classes 0,0,0,1; predictions 0,0,0,0 -> top-1 3/4, mean class (1 + 0)/2
    scores = np.array([[1.0, 0.0]] * 4)
    acc = cl.evaluate(scores, np.array([0, 0, 0, 1]))
    assert (acc.top1, acc.mean_class, acc.videos, acc.top5) == (0.75, 0.5, 4, 1.0)


# --- ImageNet path of initialise_from_stages ----------------------------------------------------

def _net(path, channels, classes, filler):
    from caffe import layers as L
    from caffe.net_spec import NetSpec

    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, channels, 6, 6]))
    conv = dict(num_output=4, kernel_size=3, weight_filler=dict(type="constant", value=filler),
                bias_filler=dict(type="constant", value=filler))
    n.conv1_1 = L.Convolution(n.data, **conv)
    n["flow_t2/conv1_1"] = L.Convolution(n.data, **conv)
    n.fc8 = L.InnerProduct(n.conv1_1, num_output=classes,
                           weight_filler=dict(type="constant", value=filler))
    path.write_text(str(n.to_proto()))
    return path


@requires_caffe
def test_imagenet_init_skips_fc8_and_averages_conv1_1_over_rgb(tmp_path):
    import caffe

    from co2fi_tools.weights.stage_weights import initialise_from_stages

    src = caffe.Net(str(_net(tmp_path / "vgg.prototxt", 3, 7, 0.0)), caffe.TEST)
    w = src.params["conv1_1"][0].data
    for o in range(4):
        for c in range(3):
            w[o, c] = 10 * o + c  # the mean over RGB is 10 o + 1
    src.params["conv1_1"][1].data[...] = [1, 2, 3, 4]
    src.save(str(tmp_path / "vgg.caffemodel"))
    target = _net(tmp_path / "flow.prototxt", 20, 4, 0.125)
    report = initialise_from_stages(target, tmp_path / "init.caffemodel",
                                    {"vgg16": tmp_path / "vgg.caffemodel"})
    net = caffe.Net(str(target), str(tmp_path / "init.caffemodel"), caffe.TEST)
    for layer in ("conv1_1", "flow_t2/conv1_1"):
        weights = net.params[layer][0].data
        assert weights.shape == (4, 20, 3, 3)
        for o in range(4):
            assert (weights[o] == 10 * o + 1).all()
        assert net.params[layer][1].data.tolist() == [1, 2, 3, 4]
    assert (net.params["fc8"][0].data == 0.125).all()  # 7 ImageNet classes, 4 ours: filler
    assert "skipped fc8: shape mismatch, allowed" in report
    assert "cross-modality 3->20 channels" in report


def test_a_layer_no_source_has_is_reported_against_its_own_source_first():
    from co2fi_tools.weights.stage_weights import responsible

    assert responsible("conv1_1", {}) == ("model", "conv1_1")
    # a tower's grouper layer: the stream's trained grouper, then the stream's net, then ImageNet
    assert responsible("rgb_t3/grouper_conv1", {}) == ("rgb_grouper", "grouper_conv1")
    assert responsible("rgb_t3/grouper_conv1", {"rgb"}) == ("rgb", "grouper_conv1")
    assert responsible("rgb_t3/grouper_conv1", {"cnn_m_2048"}) == ("cnn_m_2048", "conv1")


@requires_caffe
def test_trained_stream_model_wins_over_imagenet_for_tower_layers(tmp_path):
    import caffe

    from co2fi_tools.weights.stage_weights import initialise_from_stages

    vgg = caffe.Net(str(_net(tmp_path / "vgg.prototxt", 3, 7, 1.0)), caffe.TEST)
    vgg.save(str(tmp_path / "vgg.caffemodel"))
    flow = caffe.Net(str(_net(tmp_path / "flow_model.prototxt", 20, 4, 0.5)), caffe.TEST)
    flow.save(str(tmp_path / "flow.caffemodel"))
    target = _net(tmp_path / "target.prototxt", 20, 4, 0.0)
    initialise_from_stages(target, tmp_path / "init.caffemodel",
                           {"flow": tmp_path / "flow.caffemodel",
                            "vgg16": tmp_path / "vgg.caffemodel"})
    net = caffe.Net(str(target), str(tmp_path / "init.caffemodel"), caffe.TEST)
    assert (net.params["flow_t2/conv1_1"][0].data == 0.5).all()  # flow_t2/ <- the flow model
    assert (net.params["conv1_1"][0].data == 1.0).all()  # no "model" source: ImageNet, averaged


def test_eq1_stays_finite_for_large_logits():
    # row 0: softmax([1000, 999, 0]) = [1, e^-1, ~0] / (1 + e^-1); group {0, 1}:
    #   -ln p0 - ln p1 = 2 ln(1 + e^-1) + 1
    # row 1: softmax(log [1, 2, 1]) = [1/4, 1/2, 1/4]; group {0, 1}: ln 8
    # (each row is shifted by its own maximum: one shift for the batch underflows row 1)
    z = np.array([[1000.0, 999.0, 0.0], np.log([1.0, 2.0, 1.0])])
    loss, (grad,) = group_loss([z], [np.array([[1.0, 1.0, 0.0]] * 2)], [1.0], 3)
    row0 = 2 * np.log1p(np.exp(-1.0)) + 1.0
    assert loss == pytest.approx((row0 + np.log(8)) / 2 / 3, rel=1e-12)
    assert np.isfinite(grad).all()


def test_log_sum_reading_stays_finite_when_the_group_is_unlikely():
    # row 1: p(class 1) = e^-800 / (1 + 2 e^-800): -ln p(G) = 800 + ln(1 + 2 e^-800) = 800
    z = np.array([np.log([1.0, 2.0, 1.0]), [800.0, 0.0, 0.0]])
    m = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    loss, (grad,) = group_loss([z], [m], [1.0], 3, reading="log_sum",
                               class_normalization=False)
    assert loss == pytest.approx((np.log(4 / 3) + 800.0) / 2, rel=1e-12)
    # d/dz = p - m p / p(G): row 1 = [1, e^-800 - 1, e^-800] -> [1, -1, 0]; halved (batch 2).
    # Computing m p / p(G) as exp(logp - ln p(G)) overflowed to 0 * inf = NaN at class 0.
    np.testing.assert_allclose(grad[1], [0.5, -0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(grad[0], [-1 / 24, -1 / 12, 1 / 8], atol=1e-12)


def test_log_sum_reading_by_hand_per_row():
    # row 0: p = [1/4, 1/2, 1/4], group {0, 1}: -ln 3/4; row 1: p = [1/2, 1/4, 1/4],
    # group {2}: -ln 1/4. Mean over the batch, times 1/N
    z = np.log(np.array([[1.0, 2.0, 1.0], [2.0, 1.0, 1.0]]))
    m = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    loss, (grad,) = group_loss([z], [m], [1.0], 3, reading="log_sum")
    assert loss == pytest.approx((np.log(4 / 3) + np.log(4)) / 2 / 3, rel=1e-12)
    # d/dz = p - m p / p(G): row 0: [1/4 - 1/3, 1/2 - 2/3, 1/4]; row 1: [1/2, 1/4, 1/4 - 1]
    np.testing.assert_allclose(grad * 6, [[-1 / 12, -1 / 6, 1 / 4], [1 / 2, 1 / 4, -3 / 4]],
                               atol=1e-12)


def test_eq1_is_computed_in_double_precision_from_float32_blobs():
    # Caffe hands float32 blobs; the loss is computed in float64 (float32 would be ~1e-7 off)
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4, 101)).astype(np.float32) * 8
    m = np.zeros((4, 101), np.float32)
    m[:, :5] = 1
    loss32, _ = group_loss([z], [m], [1.0], 101)
    loss64, _ = group_loss([z.astype(np.float64)], [m.astype(np.float64)], [1.0], 101)
    assert loss32 == loss64
