"""Eq. 1 (co2fi_layers/group_loss.py): hand-computed values and finite-difference gradients."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")

from co2fi_layers.group_weighted_loss import group_loss, group_loss_terms  # noqa: E402


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_sum_log_by_hand():
    z = np.array([[1.0, 2.0, 0.5, -1.0, 0.0]])
    m = np.array([[1.0, 1.0, 0.0, 0.0, 1.0]])
    p = _softmax(z)[0]
    loss, _ = group_loss_terms(z, m, "sum_log")
    assert loss[0] == pytest.approx(-(np.log(p[0]) + np.log(p[1]) + np.log(p[4])))
    loss, _ = group_loss_terms(z, m, "log_sum")
    assert loss[0] == pytest.approx(-np.log(p[0] + p[1] + p[4]))


def test_eq1_weights_and_normalization():
    rng = np.random.default_rng(0)
    zs = [rng.standard_normal((4, 6)) for _ in range(3)]
    ms = [(rng.random((4, 6)) < 0.4).astype(float) for _ in range(3)]
    alpha = (0.1, 0.1, 1.0)
    loss, _ = group_loss(zs, ms, alpha, 6)
    ref = 0.0
    for z, m, a in zip(zs, ms, alpha, strict=False):
        ref += a * -(m * np.log(_softmax(z))).sum() / 4
    assert loss == pytest.approx(ref / 6)
    loss_no_n, _ = group_loss(zs, ms, alpha, 6, class_normalization=False)
    assert loss_no_n == pytest.approx(ref)


def test_wrong_lengths_raise():
    z = np.zeros((2, 5))
    with pytest.raises(ValueError, match="one of each"):
        group_loss([z, z], [z, z], (0.1, 0.1, 1.0), 5)
    with pytest.raises(ValueError, match="reading"):
        group_loss_terms(z, z, "mean")


@pytest.mark.parametrize("reading", ["sum_log", "log_sum"])
def test_gradient_matches_finite_differences(reading):
    rng = np.random.default_rng(1)
    zs = [rng.standard_normal((3, 7)) for _ in range(3)]
    ms = []
    for size in (5, 3, 1):
        m = np.zeros((3, 7))
        for b in range(3):
            m[b, rng.choice(7, size, replace=False)] = 1
        ms.append(m)
    alpha = (0.1, 0.1, 1.0)
    _, grads = group_loss(zs, ms, alpha, 7, reading=reading)
    eps = 1e-6
    for k in range(3):
        num = np.zeros_like(zs[k])
        for idx in np.ndindex(*zs[k].shape):
            plus = [z.copy() for z in zs]
            minus = [z.copy() for z in zs]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            num[idx] = (group_loss(plus, ms, alpha, 7, reading=reading)[0]
                        - group_loss(minus, ms, alpha, 7, reading=reading)[0]) / (2 * eps)
        np.testing.assert_allclose(grads[k], num, rtol=1e-5, atol=1e-9)


def _loss_net(tmp_path, reading, batch=3, classes=6):
    caffe = pytest.importorskip("caffe")
    from caffe import layers as L
    from caffe.net_spec import NetSpec

    n = NetSpec()
    tops = L.Input(ntop=6, input_param={"shape": [{"dim": [batch, classes]}] * 6})
    for i, t in enumerate(tops):
        n[f"in{i}"] = t
    n.loss = L.Python(*tops, loss_weight=1.0, propagate_down=[True] * 3 + [False] * 3,
                      python_param={"module": "co2fi_layers.group_loss",
                                    "layer": "GroupLossLayer",
                                    "param_str": json.dumps({"alpha": [0.1, 0.1, 1.0],
                                                             "num_classes": classes,
                                                             "reading": reading})})
    path = tmp_path / "loss.prototxt"
    path.write_text("force_backward: true\n" + str(n.to_proto()))
    caffe.set_mode_cpu()
    return caffe.Net(str(path), caffe.TRAIN)


@pytest.mark.parametrize("reading", ["sum_log", "log_sum"])
def test_caffe_layer_backward_matches_numpy_and_finite_differences(tmp_path, reading):
    net = _loss_net(tmp_path, reading)
    rng = np.random.default_rng(2)
    for i in range(3):
        net.blobs[f"in{i}"].data[...] = rng.standard_normal((3, 6))
        m = np.zeros((3, 6))
        m[np.arange(3), rng.integers(0, 6, 3)] = 1
        m[:, 0] = 1
        net.blobs[f"in{3 + i}"].data[...] = m
    net.forward()
    loss = float(net.blobs["loss"].data.ravel()[0])
    zs = [net.blobs[f"in{i}"].data.astype(np.float64).copy() for i in range(3)]
    ms = [net.blobs[f"in{3 + i}"].data.astype(np.float64).copy() for i in range(3)]
    ref, grads = group_loss(zs, ms, (0.1, 0.1, 1.0), 6, reading=reading)
    assert loss == pytest.approx(ref, rel=1e-5)
    net.backward()
    eps = 1e-3
    for k in range(3):
        np.testing.assert_allclose(net.blobs[f"in{k}"].diff, grads[k], rtol=1e-4, atol=1e-7)
        # finite differences through the Caffe layer itself (float32: coarse eps)
        for idx in [(0, 0), (1, 3), (2, 5)]:
            z0 = net.blobs[f"in{k}"].data[idx]
            net.blobs[f"in{k}"].data[idx] = z0 + eps
            up = float(net.forward()["loss"].ravel()[0])
            net.blobs[f"in{k}"].data[idx] = z0 - eps
            down = float(net.forward()["loss"].ravel()[0])
            net.blobs[f"in{k}"].data[idx] = z0
            assert (up - down) / (2 * eps) == pytest.approx(grads[k][idx], abs=2e-4)
