"""Every small-preset net instantiates in Caffe and runs forward/backward, expected shapes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import SMALL  # noqa: E402
from netgen.readings import Readings  # noqa: E402
from netgen.testing import fill_inputs, load  # noqa: E402
from netgen.variants import build, variant_names  # noqa: E402

N = 10
B = 2


def opt(phase="train", readings=None, **kw):
    return NetOptions(preset=SMALL, num_classes=N, dataset="synthetic", phase=phase,
                      data_source="input", batch=B, readings=readings or Readings(), **kw)


def run_train(name, readings=None):
    net = load(build(name, opt(readings=readings)), "train")
    fill_inputs(net, N)
    out = net.forward()
    net.backward()
    for key, value in out.items():
        assert np.all(np.isfinite(value)), key
    return net, out


@pytest.mark.parametrize("name", variant_names())
def test_train_net_forward_backward(name):
    net, out = run_train(name)
    assert out, "a train net has losses"
    # some gradient reaches the first trainable layer
    first = next(k for k in net.params if k.endswith("conv1_1") or k.endswith("conv1"))
    assert np.any(net.params[first][0].diff != 0)


@pytest.mark.parametrize("name", variant_names())
def test_train_net_test_phase(name):
    net = load(build(name, opt()), "test")
    fill_inputs(net, N)
    out = net.forward()
    acc = [k for k in out if k.endswith("accuracy")]
    assert acc and all(0 <= float(out[k]) <= 1 for k in acc)
    if not name.startswith("grouper"):
        assert not any("grouper" in k for k in net.blobs), "the grouper is training-only"


@pytest.mark.parametrize("name", variant_names())
def test_deploy_net_outputs_probabilities(name):
    net = load(build(name, opt(phase="deploy")), "test")
    fill_inputs(net, N)
    out = net.forward()
    assert list(out) == ["prob"]
    fusion = "centred" in name
    batch = SMALL.deploy_batch_fusion if fusion else SMALL.deploy_batch_single
    assert out["prob"].shape == (batch, N)
    np.testing.assert_allclose(out["prob"].sum(axis=1), 1.0, rtol=1e-5)
    assert "label" not in net.blobs
    if not name.startswith("grouper"):
        assert not any("grouper" in k for k in net.blobs)


def test_coarse_to_fine_shapes():
    net, out = run_train("co2fi_rgb")
    side = SMALL.input_size // 4
    for g in ("coarse", "medium", "fine"):
        assert net.blobs[f"side_map_group_{g}"].data.shape == (B, 3 * SMALL.side_channels,
                                                                side, side)
        assert net.blobs[f"fc1_{g}"].data.shape == (B, SMALL.fc1)
        assert net.blobs[f"fc3_{g}"].data.shape == (B, N)
        assert net.blobs[f"class_group_{g}"].data.shape == (B, N)
    assert net.blobs["side_conv3_3"].data.shape == (B, 3, side, side)
    assert net.blobs["side_up_conv5_3"].data.shape == (B, 3, side, side)
    assert net.blobs["c2f_lstm"].data.shape == (3, B, SMALL.c2f_lstm)
    np.testing.assert_array_equal(net.blobs["c2f_lstm_cont"].data, [[0, 0], [1, 1], [1, 1]])
    sizes = [net.blobs[f"class_group_{g}"].data.sum(axis=1) for g in ("coarse", "medium", "fine")]
    np.testing.assert_array_equal(np.array(sizes), [[5, 5], [3, 3], [1, 1]])
    label = net.blobs["label"].data.astype(int)
    for g in ("coarse", "medium", "fine"):
        assert np.all(net.blobs[f"class_group_{g}"].data[np.arange(B), label] == 1)
    assert {"loss_group", "c2f_loss_t1", "c2f_loss_t2", "c2f_loss_t3"} <= set(out)
    assert "fc6" not in net.params, "VGG-16's own FCs are not part of the coarse-to-fine net"


def test_variant_differences():
    net, out = run_train("co2fi_two_granularities_rgb")
    assert "side_map_group_coarse" not in net.blobs
    assert net.blobs["c2f_lstm"].data.shape[0] == 2
    assert net.blobs["class_group_medium"].data.sum(axis=1).tolist() == [3, 3]
    net, out = run_train("co2fi_no_grouping_rgb")
    assert "grouper_conv1" not in net.params and "fc2_coarse" not in net.params
    assert set(out) == {"c2f_loss_t1", "c2f_loss_t2", "c2f_loss_t3"}
    net, out = run_train("co2fi_no_coarseness_rgb")
    assert "grouper_conv1" not in net.params
    assert {"loss_group_coarse", "loss_group_medium", "loss_group_fine"} <= set(out)
    net, out = run_train("direct_combine_flow")
    assert net.blobs["fc7_combine"].data.shape == (B, SMALL.vgg_fc + SMALL.cnnm_fc7)
    assert net.params["cnnm_conv1"][0].data.shape[1] == 20


def test_grouper_is_frozen_in_coarse_to_fine_net():
    net, _ = run_train("co2fi_flow")
    layers = dict(zip(net._layer_names, net.layers, strict=False))
    assert "grouper_conv1" in layers
    for name in ("grouper_conv1", "grouper_fc8"):
        assert np.all(net.params[name][0].diff == 0)
    names = list(net._layer_names)
    needs = dict(zip(names, net._layer_needs_backward, strict=False)) if hasattr(
        net, "_layer_needs_backward") else None
    if needs is not None:
        assert not needs["grouper_conv1"]


def test_fusion_shapes():
    net, out = run_train("co2fi_asyn_d5_rgb_centred")
    assert net.blobs["async_lstm"].data.shape == (5, B, SMALL.async_lstm)
    for t in range(1, 6):
        assert net.blobs[f"fuse_pair_t{t}"].data.shape == (B, 2, SMALL.c2f_lstm, 1)
        assert net.blobs[f"fuse_t{t}"].data.shape == (B, SMALL.fusion_channels, SMALL.c2f_lstm, 1)
        assert f"flow_t{t}/c2f_loss_t3" in out and f"flow_t{t}/loss_group" in out
        assert f"async_loss_t{t}" in out
    assert "rgb_t3/c2f_loss_t3" in out and "rgb_t1/conv1_1" not in net.params
    net, _ = run_train("baseline_asyn_d1_flow_centred")
    assert net.blobs["fuse_pair_t1"].data.shape == (B, 2, SMALL.vgg_fc, 1)
    assert "flow_t3/conv1_1" in net.params and "flow_t1/conv1_1" not in net.params
    net, _ = run_train("baseline_syn_rgb_centred")
    assert all(f"{s}_t{t}/conv1_1" in net.params for s in ("rgb", "flow") for t in range(1, 6))


def _fusion_step(preset):
    options = NetOptions(preset=preset, num_classes=N, dataset="synthetic", phase="train",
                         data_source="input", batch=B)
    net = load(build("co2fi_asyn_d5_rgb_centred", options), "train")
    fill_inputs(net, N)
    net.forward()
    pair = net.blobs["fuse_pair_t1"].data[:, :, :, 0]  # B x 2 x D: centre, other stream
    weight = net.params["fuse_t1"][0].data[:, :, 0, 0]
    return pair, weight, net.blobs["fuse_t1"].data[:, :, :, 0]


def test_each_fused_step_keeps_both_streams_apart():
    """Sec. 5.1's 1x1 fusion conv fuses two 1-D maps into 2 (docs/REPRODUCTION.md, "fusion
    conv output channels"): an invertible 2 x 2 mix, so the LSTM can still read the centre
    feature and the other stream's apart; with 1 channel it reads only their weighted sum."""
    pair, weight, fused = _fusion_step(SMALL)
    assert fused.shape == (B, 2, SMALL.c2f_lstm)
    assert abs(np.linalg.det(weight)) > 1e-3
    bias = fused - np.einsum("kc,bcd->bkd", weight, pair)
    assert np.allclose(bias, bias[:, :, :1], atol=1e-5)  # one bias a channel
    recovered = np.einsum("ck,bkd->bcd", np.linalg.inv(weight), fused - bias)
    assert np.allclose(recovered, pair, atol=1e-4)
    _, weight, fused = _fusion_step(SMALL.replace(fusion_channels=1))
    assert weight.shape == (1, 2) and fused.shape == (B, 1, SMALL.c2f_lstm)


@pytest.mark.parametrize("change", [
    {"side_slicing": "scale_associated"},
    {"group_loss": "log_sum"},
    {"class_normalization": True},
    {"step_scores": "shared"},
    {"lstm_weights": "per_unit"},
    {"forced_gt": "append"},
    {"tie_break": "higher_index"},
    {"fusion_relu": True},
    {"tower_losses": False},
    {"test_output": "mean_steps"},
])
def test_other_readings_run(change):
    readings = Readings(**change)
    for name in ("co2fi_rgb", "co2fi_asyn_d5_flow_centred"):
        net, out = run_train(name, readings)
        deploy = load(build(name, opt("deploy", readings)), "test")
        fill_inputs(deploy, N)
        assert deploy.forward()["prob"].shape[1] == N
    if change == {"side_slicing": "scale_associated"}:
        net, _ = run_train("co2fi_rgb", readings)
        assert net.blobs["side_conv3_3"].data.shape[1] == 1
        assert net.blobs["side_conv5_3"].data.shape[1] == 3
        assert net.blobs["side_map_group_coarse"].data.shape[1] == 1
        assert net.blobs["side_map_group_fine"].data.shape[1] == 3
    if change == {"tower_losses": False}:
        assert not any("/" in k for k in out)


def test_mean_steps_prediction_is_the_softmax_of_the_mean_step_score():
    """The evaluation reads the blob under ``prob`` (scores before the softmax, summed over
    periods): with ``mean_steps`` that must be the mean of every step's scores, not step 1."""
    deploy = load(build("co2fi_asyn_d5_flow_centred",
                        opt("deploy", Readings(test_output="mean_steps"))), "test")
    fill_inputs(deploy, N)
    prob = deploy.forward()["prob"]
    (bottom,) = deploy.bottom_names["prob"]
    steps = np.mean([deploy.blobs[f"async_score_t{t}"].data for t in range(1, 6)], axis=0)
    assert np.allclose(deploy.blobs[bottom].data, steps, atol=1e-5)
    expected = np.exp(steps - steps.max(1, keepdims=True))
    assert np.allclose(prob, expected / expected.sum(1, keepdims=True), atol=1e-5)


def test_syn_and_direct_combine_readings():
    net, _ = run_train("baseline_syn_rgb_centred", Readings(syn_pairs="centre_pair"))
    assert net.blobs["async_lstm"].data.shape[0] == 1
    assert "rgb_t3/conv1_1" in net.params and "flow_t1/conv1_1" not in net.params
    net, _ = run_train("direct_combine_rgb", Readings(direct_combine="sum_scores"))
    assert "cnnm_fc8" in net.params and "fc8" in net.params


def _loss_weights(proto) -> dict[str, float]:
    """Every softmax loss's weight; the Eq. 1 Python loss as its alpha/N factor."""
    import json

    out = {}
    for layer in proto.layer:
        if layer.type == "SoftmaxWithLoss":
            out[layer.name] = layer.loss_weight[0] if layer.loss_weight else 1.0
        elif layer.type == "Python" and layer.python_param.layer == "GroupLossLayer":
            p = json.loads(layer.python_param.param_str)
            assert list(layer.loss_weight) == [1.0]  # alpha (and 1/N) act inside the layer
            out[layer.name] = 1.0 / p["num_classes"] if p["class_normalization"] else 1.0
    return out


def test_loss_weights_follow_paper():
    from netgen import paper

    weights = _loss_weights(build("co2fi_asyn_d5_rgb_centred", opt()))
    assert weights["async_loss_t1"] == pytest.approx(paper.GAMMA)
    assert weights["flow_t2/c2f_loss_t3"] == pytest.approx(paper.BETA)
    assert weights["flow_t2/loss_group"] == 1.0
    weights = _loss_weights(build("co2fi_no_coarseness_flow", opt()))
    assert weights["loss_group_coarse"] == pytest.approx(paper.ALPHA[0])
    assert weights["loss_group_fine"] == pytest.approx(paper.ALPHA[2])
    assert _loss_weights(build("baseline_rgb", opt())) == {"loss": 1.0}


@pytest.mark.parametrize("class_normalization", [False, True])
def test_every_table_row_trains_under_one_loss_scale(class_normalization):
    """The 1/N of Eqs. 1, 3, 5 is either on every row's losses (baselines included) or on none:
    each softmax loss weighs (1 or alpha_k or beta or gamma) x scale, the same scale for all."""
    from netgen import paper
    from netgen.variants import variants

    scale = 1.0 / N if class_normalization else 1.0
    readings = Readings(class_normalization=class_normalization)
    paper_factors = {1.0, *paper.ALPHA, paper.BETA, paper.GAMMA}
    rows = [v for v in variants() if v.table in ("Table 1", "Table 2")]
    assert len(rows) == 20
    for v in rows:
        weights = _loss_weights(build(v.name, opt(readings=readings)))
        assert weights, v.name
        for layer, w in weights.items():
            assert any(w == pytest.approx(f * scale) for f in paper_factors), (v.name, layer, w)
    baseline = _loss_weights(build("baseline_asyn_d5_rgb_centred", opt(readings=readings)))
    assert baseline["rgb_t3/loss"] == pytest.approx(scale)
    assert baseline["async_loss_t5"] == pytest.approx(paper.GAMMA * scale)
    # the grouper is no row of the tables: plain softmax
    assert _loss_weights(build("grouper_rgb", opt(readings=readings))) == {"loss": 1.0}
