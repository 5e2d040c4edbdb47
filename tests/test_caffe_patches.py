"""Our Caffe patches (caffe_patches/) do what their headers say."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import requires_caffe

pytestmark = requires_caffe


def _two_lstms_sharing_weights(tmp_path: Path) -> Path:
    import caffe
    from caffe import layers as L

    n = caffe.NetSpec()
    n.x, n.cont = L.Input(ntop=2, input_param={"shape": [{"dim": [4, 2, 3]}, {"dim": [4, 2]}]})
    shared = [{"name": f"lstm_{i}"} for i in range(3)]
    for name in ("a", "b"):
        n[name] = L.LSTM(n.x, n.cont, param=shared, recurrent_param={
            "num_output": 5, "weight_filler": {"type": "uniform", "min": -0.5, "max": 0.5}})
    path = tmp_path / "net.prototxt"
    path.write_text(str(n.to_proto()))
    return path


def test_lstms_that_share_weights_compute_the_same_at_every_step(tmp_path: Path) -> None:
    """0004: without it, the second LSTM's steps after the first keep their own weights."""
    import caffe

    net = caffe.Net(str(_two_lstms_sharing_weights(tmp_path)), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = rng.uniform(-1, 1, net.blobs["x"].data.shape)
    net.blobs["cont"].data[...] = 1
    net.blobs["cont"].data[0] = 0
    net.forward()
    np.testing.assert_array_equal(net.blobs["a"].data, net.blobs["b"].data)
    assert np.abs(net.blobs["a"].data[1:]).max() > 0  # later steps computed something


def test_max_pooling_routes_no_gradient_from_nan_windows(tmp_path: Path) -> None:
    """0005: without it, backward adds NaN windows' gradients at bottom_diff[-1], which for
    channel 1 is the last pixel of channel 0 (and before the buffer for channel 0)."""
    import caffe
    from caffe import layers as L

    n = caffe.NetSpec()
    n.x = L.Input(input_param={"shape": {"dim": [1, 2, 4, 4]}})
    n.p = L.Pooling(n.x, kernel_size=2, stride=2, pool=0)
    proto = n.to_proto()
    proto.force_backward = True  # the diff of an Input is computed only when forced
    path = tmp_path / "pool.prototxt"
    path.write_text(str(proto))
    net = caffe.Net(str(path), caffe.TRAIN)
    net.blobs["x"].data[0, 0] = np.arange(16).reshape(4, 4)  # maxima: bottom-right of windows
    net.blobs["x"].data[0, 1] = np.nan
    net.forward()
    net.blobs["p"].diff[...] = 1
    net.backward()
    expected = np.zeros((4, 4))
    expected[1::2, 1::2] = 1
    np.testing.assert_array_equal(net.blobs["x"].diff[0, 0], expected)
    assert not net.blobs["x"].diff[0, 1].any()
