"""Net surgery: name mapping, shape rules, cross-modality init, bilinear upsampling, caffemodels."""

import numpy as np
import pytest

from co2fi_tools.weights import net_surgery as ns
from netgen.names import CHANNELS
from tests.conftest import requires_caffe

# --- pure parts ---------------------------------------------------------------------------


def test_bilinear_kernel_by_hand():
    # k = 4: f = 2, c = 0.75, 1 - |x/2 - 0.75| = .25 .75 .75 .25
    np.testing.assert_allclose(ns.bilinear_kernel(4), np.outer([.25, .75, .75, .25],
                                                               [.25, .75, .75, .25]))
    # k = 3: f = 2, c = 0.5 -> .5 1 .5
    np.testing.assert_allclose(ns.bilinear_kernel(3), np.outer([.5, 1, .5], [.5, 1, .5]))


def test_name_mapping():
    assert ns.source_for("conv1_1") == ("vgg16", "conv1_1")
    assert ns.source_for("rgb_t3/conv1_1") == ("vgg16", "conv1_1")
    assert ns.source_for("grouper_conv1") == ("cnn_m_2048", "conv1")
    assert ns.source_for("flow_t1/grouper_fc7") == ("cnn_m_2048", "fc7")


def test_legacy_shape_rule_is_caffes():
    assert ns.legacy_shape_equals((1, 1, 4096, 25088), (4096, 25088))
    assert ns.legacy_shape_equals((1, 1, 1, 4096), (4096,))
    assert not ns.legacy_shape_equals((1, 1, 4096, 25088), (25088, 4096))


def test_cross_modality_averages_rgb_and_replicates():
    rgb = np.arange(2 * 3 * 1 * 1, dtype=np.float32).reshape(2, 3, 1, 1)  # [[0,1,2],[3,4,5]]
    flow = ns.cross_modality_weights(rgb, CHANNELS["flow"])
    assert flow.shape == (2, 20, 1, 1)
    np.testing.assert_allclose(flow[0, :, 0, 0], 1.0)
    np.testing.assert_allclose(flow[1, :, 0, 0], 4.0)


def _model(path, **layers):
    return ns.SourceModel(path, "layer", {
        name: ns.SourceLayer(name, [np.asarray(b, np.float32) for b in blobs],
                             [False] * len(blobs)) for name, blobs in layers.items()})


def test_transplant_reports_copied_and_skipped():
    vgg = _model("vgg.caffemodel", conv1_1=[np.ones((4, 3, 3, 3)), np.full(4, 2.0)],
                 fc8=[np.ones((1000, 8)), np.ones(1000)])
    target = {"rgb_t1/conv1_1": [np.zeros((4, 3, 3, 3)), np.zeros(4)],
              "flow_t1/conv1_1": [np.zeros((4, 20, 3, 3)), np.zeros(4)],
              "fc8": [np.zeros((101, 8)), np.zeros(101)],
              "side_conv3": [np.zeros((1, 4, 1, 1))],
              "grouper_conv1": [np.zeros((2, 3, 7, 7))]}
    report = ns.transplant(target, {"vgg16": vgg})
    assert [c[0] for c in report.copied] == ["rgb_t1/conv1_1", "flow_t1/conv1_1"]
    assert report.copied[1][3] == "cross-modality 3->20 channels"
    np.testing.assert_array_equal(target["rgb_t1/conv1_1"][1], 2.0)
    np.testing.assert_array_equal(target["flow_t1/conv1_1"][0], 1.0)
    skipped = dict(report.skipped)
    assert skipped["fc8"].startswith("shape mismatch, allowed")
    assert skipped["side_conv3"] == "'side_conv3' missing in vgg.caffemodel"
    assert skipped["grouper_conv1"] == "no cnn_m_2048 caffemodel given"
    np.testing.assert_array_equal(target["fc8"][0], 0.0)  # untouched


def test_shape_mismatch_is_an_error_naming_layer_and_shapes():
    vgg = _model("vgg.caffemodel", conv1_2=[np.ones((4, 4, 3, 3)), np.ones(4)])
    target = {"rgb_t1/conv1_2": [np.zeros((8, 4, 3, 3)), np.zeros(8)]}
    with pytest.raises(ns.ShapeMismatchError,
                       match=r"'rgb_t1/conv1_2' <- vgg16 'conv1_2': blob 0 has shape "
                             r"\(8, 4, 3, 3\) in the net, \(4, 4, 3, 3\) in vgg\.caffemodel"):
        ns.transplant(target, {"vgg16": vgg})
    np.testing.assert_array_equal(target["rgb_t1/conv1_2"][1], 0.0)  # nothing half-copied
    with pytest.raises(ns.ShapeMismatchError, match="blob 0"):  # no cross-modality off conv1
        ns.transplant({"conv1_2": [np.zeros((4, 20, 3, 3)), np.zeros(4)]}, {"vgg16": vgg})
    with pytest.raises(ns.ShapeMismatchError, match="blob 0"):
        ns.transplant({"conv1_1": [np.zeros((4, 20, 3, 3))]},
                      {"vgg16": _model("v", conv1_1=[np.ones((4, 3, 3, 3))])},
                      cross_modality=False)


# --- with pycaffe -------------------------------------------------------------------------


def _write_net(path, netspec):
    path.write_text(str(netspec.to_proto()))
    return str(path)


def _source_vgg(tmp_path):
    """A small net under VGG-16 names, saved by caffe (current `layer` format)."""
    import caffe
    from caffe import layers as L

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 6, 6]))
    n.conv1_1 = L.Convolution(n.data, num_output=4, kernel_size=3, pad=1,
                              weight_filler=dict(type="gaussian", std=1), bias_filler=dict(
                                  type="gaussian", std=1))
    n.fc6 = L.InnerProduct(n.conv1_1, num_output=5, weight_filler=dict(type="gaussian", std=1))
    n.fc8 = L.InnerProduct(n.fc6, num_output=7, weight_filler=dict(type="gaussian", std=1))
    net = caffe.Net(_write_net(tmp_path / "vgg.prototxt", n), caffe.TEST)
    path = str(tmp_path / "vgg.caffemodel")
    net.save(path)
    return path, {k: [b.data.copy() for b in v] for k, v in net.params.items()}


def _source_cnn_m_v1(tmp_path, v0=False):
    """CNN_M_2048-named layers in the legacy V1 (or V0) format, with 4-d legacy blob shapes."""
    pb2 = ns.caffe_pb2()
    rng = np.random.default_rng(0)
    blobs = {"conv1": [rng.normal(size=(2, 3, 3, 3)), rng.normal(size=(1, 1, 1, 2))],
             "fc6": [rng.normal(size=(1, 1, 3, 32)), rng.normal(size=(1, 1, 1, 3))]}
    net = pb2.NetParameter(name="CNN_M_2048")
    for name, arrays in blobs.items():
        v1 = net.layers.add()
        holder = v1.layer if v0 else v1
        holder.name = name
        if not v0:
            v1.type = pb2.V1LayerParameter.CONVOLUTION
        for array in arrays:
            blob = holder.blobs.add()
            blob.num, blob.channels, blob.height, blob.width = array.shape
            blob.data.extend(array.astype(np.float32).ravel().tolist())
    path = tmp_path / ("cnn_m_v0.caffemodel" if v0 else "cnn_m.caffemodel")
    path.write_bytes(net.SerializeToString())
    return str(path), {k: [a.astype(np.float32) for a in v] for k, v in blobs.items()}


def _target_net(tmp_path):
    import caffe
    from caffe import layers as L

    shared = dict(param=[dict(name="c11_w"), dict(name="c11_b")])
    n = caffe.NetSpec()
    n.rgb_t1 = L.Input(shape=dict(dim=[1, 3, 6, 6]))
    n.rgb_t2 = L.Input(shape=dict(dim=[1, 3, 6, 6]))
    n.flow_t1 = L.Input(shape=dict(dim=[1, 20, 6, 6]))
    n["rgb_t1/conv1_1"] = L.Convolution(n.rgb_t1, num_output=4, kernel_size=3, pad=1, **shared)
    n["rgb_t2/conv1_1"] = L.Convolution(n.rgb_t2, num_output=4, kernel_size=3, pad=1, **shared)
    n["flow_t1/conv1_1"] = L.Convolution(n.flow_t1, num_output=4, kernel_size=3, pad=1)
    n["rgb_t1/fc6"] = L.InnerProduct(n["rgb_t1/conv1_1"], num_output=5)
    n.fc8 = L.InnerProduct(n["rgb_t1/fc6"], num_output=3)  # 3 classes, not ImageNet's 7
    n.side = L.Convolution(n["rgb_t1/conv1_1"], num_output=2, kernel_size=1)
    n.up = L.Deconvolution(n.side, convolution_param=dict(
        num_output=2, group=2, kernel_size=4, stride=2, pad=1, bias_term=False))
    n.grouper_conv1 = L.Convolution(n.rgb_t1, num_output=2, kernel_size=3)
    n.grouper_fc6 = L.InnerProduct(n.grouper_conv1, num_output=3)
    return _write_net(tmp_path / "target.prototxt", n)


@requires_caffe
def test_read_v1_and_v0_caffemodels(tmp_path):
    for v0 in (False, True):
        path, blobs = _source_cnn_m_v1(tmp_path, v0=v0)
        model = ns.read_caffemodel(path)
        assert model.format == ("V0" if v0 else "V1")
        assert model.layers["fc6"].blobs[0].shape == (1, 1, 3, 32)
        assert model.layers["fc6"].legacy_shape == [True, True]
        np.testing.assert_array_equal(model.layers["conv1"].blobs[0], blobs["conv1"][0])
    with pytest.raises(ValueError, match="not a binary NetParameter"):
        (tmp_path / "junk.caffemodel").write_bytes(b"\xff\xff\xff")
        ns.read_caffemodel(tmp_path / "junk.caffemodel")


@requires_caffe
def test_initialise_net_copies_exactly_the_expected_blobs(tmp_path):
    import caffe

    vgg_path, vgg = _source_vgg(tmp_path)
    cnn_m_path, cnn_m = _source_cnn_m_v1(tmp_path)
    target = _target_net(tmp_path)
    fresh = caffe.Net(target, caffe.TEST)
    before = {k: [b.data.copy() for b in v] for k, v in fresh.params.items()}
    out = tmp_path / "init.caffemodel"
    report = ns.initialise_net(target, out, vgg16=vgg_path, cnn_m_2048=cnn_m_path)

    assert {c[0]: c[1:3] for c in report.copied} == {
        "rgb_t1/conv1_1": ("vgg16", "conv1_1"), "rgb_t2/conv1_1": ("vgg16", "conv1_1"),
        "flow_t1/conv1_1": ("vgg16", "conv1_1"), "rgb_t1/fc6": ("vgg16", "fc6"),
        "grouper_conv1": ("cnn_m_2048", "conv1"), "grouper_fc6": ("cnn_m_2048", "fc6")}
    assert dict(report.skipped).keys() == {"fc8", "side"}
    assert report.bilinear == ["up"]

    net = caffe.Net(target, str(out), caffe.TEST)
    p = {k: [b.data for b in v] for k, v in net.params.items()}
    for tower in ("rgb_t1/conv1_1", "rgb_t2/conv1_1"):
        np.testing.assert_array_equal(p[tower][0], vgg["conv1_1"][0])
        np.testing.assert_array_equal(p[tower][1], vgg["conv1_1"][1])
    flow_expected = np.repeat(vgg["conv1_1"][0].mean(axis=1, keepdims=True), 20, axis=1)
    np.testing.assert_allclose(p["flow_t1/conv1_1"][0], flow_expected, rtol=1e-6)
    np.testing.assert_array_equal(p["rgb_t1/fc6"][0], vgg["fc6"][0])
    np.testing.assert_array_equal(p["grouper_conv1"][1], cnn_m["conv1"][1].reshape(2))
    np.testing.assert_array_equal(p["grouper_fc6"][0], cnn_m["fc6"][0].reshape(3, 32))
    for untouched in ("fc8", "side"):
        for got, was in zip(p[untouched], before[untouched], strict=False):
            np.testing.assert_array_equal(got, was)
    np.testing.assert_array_equal(p["up"][0], ns.bilinear_weights((2, 1, 4, 4)))


@requires_caffe
def test_cli_reports_shape_mismatch(tmp_path, capsys):
    import caffe
    from caffe import layers as L

    from tools import net_surgery as cli

    vgg_path, _ = _source_vgg(tmp_path)
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 6, 6]))
    n.conv1_1 = L.Convolution(n.data, num_output=8, kernel_size=3)  # VGG has 4 outputs here
    target = _write_net(tmp_path / "bad.prototxt", n)
    out = tmp_path / "bad.caffemodel"
    assert cli.main(["init", "--net", target, "--vgg16", vgg_path, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'conv1_1'" in err and "(8, 3, 3, 3) in the net" in err and "(4, 3, 3, 3)" in err
    assert not out.exists()
    assert cli.main(["init", "--net", target, "--vgg16", vgg_path, "--out", str(out),
                     "--allow-skip", "conv1_1"]) == 0
    assert out.exists()
    assert cli.main(["inspect", vgg_path]) == 0
    assert "conv1_1: 4x3x3x3, 4" in capsys.readouterr().out


@requires_caffe
@pytest.mark.parametrize("kernel,group,channels_in,channels_out", [
    (4, 3, 3, 3), (3, 2, 2, 2), (5, 1, 1, 1), (4, 1, 2, 3)])
def test_bilinear_matches_caffes_filler(tmp_path, kernel, group, channels_in, channels_out):
    import caffe
    from caffe import layers as L

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, channels_in, 5, 5]))
    n.up = L.Deconvolution(n.data, convolution_param=dict(
        num_output=channels_out, group=group, kernel_size=kernel, stride=2, bias_term=False,
        weight_filler=dict(type="bilinear")))
    net = caffe.Net(_write_net(tmp_path / "up.prototxt", n), caffe.TEST)
    weights = net.params["up"][0].data
    np.testing.assert_allclose(weights, ns.bilinear_weights(weights.shape), atol=1e-7)
    assert ns.max_bilinear_error(weights) < 1e-6
