"""The LSTM wiring (Eq. 2 and Sec. 5.2) matches a numpy LSTM with Caffe's equations.

Caffe's LSTM (lstm_layer.cpp, lstm_unit_layer.cpp): gates = W_xc x_t + b_c + W_hc (cont_t h_{t-1}),
split in the order i, f, o, g; i, f, o = sigmoid, g = tanh; c_t = cont_t f c_{t-1} + i g;
h_t = o tanh(c_t). Step 1 has cont = 0 (h_0 = c_0 = 0).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe in tests

from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import SMALL  # noqa: E402
from netgen.readings import Readings  # noqa: E402
from netgen.testing import fill_inputs, load  # noqa: E402
from netgen.variants import build  # noqa: E402

N = 10


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_reference(xs, params_per_step):
    """xs: list of B x D; params_per_step: list of (W_x, b, W_h) per step. Returns h per step."""
    h = np.zeros((xs[0].shape[0], params_per_step[0][2].shape[1]))
    c = np.zeros_like(h)
    out = []
    for t, (x, (wx, b, wh)) in enumerate(zip(xs, params_per_step, strict=False)):
        cont = 0.0 if t == 0 else 1.0
        gates = x @ wx.T + b + (cont * h) @ wh.T
        hd = h.shape[1]
        i, f, o = (sigmoid(gates[:, k * hd:(k + 1) * hd]) for k in range(3))
        g = np.tanh(gates[:, 3 * hd:])
        c = cont * f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return out


def _net(name, readings, phase="train"):
    opt = NetOptions(preset=SMALL, num_classes=N, phase=phase, data_source="input", batch=3,
                     readings=readings)
    net = load(build(name, opt), "train" if phase == "train" else "test")
    fill_inputs(net, N, seed=3)
    # non-trivial LSTM weights: the uniform(-0.08, 0.08) init makes every gate ~0.5
    rng = np.random.default_rng(4)
    for layer, blobs in net.params.items():
        if "lstm" in layer:
            for b in blobs:
                b.data[...] = rng.normal(0, 0.3, b.data.shape)
    net.forward()
    return net


def _params(net, prefix, steps, readings):
    if readings.lstm_weights == "shared":
        wx, b, wh = (p.data.astype(np.float64) for p in net.params[prefix])
        return [(wx, b, wh)] * steps
    out = []
    for t in range(1, steps + 1):
        wx, b = (p.data.astype(np.float64) for p in net.params[f"{prefix}_t{t}_x_gates"])
        wh = (net.params[f"{prefix}_t{t}_h_gates"][0].data.astype(np.float64) if t > 1
              else np.zeros((wx.shape[0], wx.shape[0] // 4)))
        out.append((wx, b, wh))
    return out


@pytest.mark.parametrize("weights", ["shared", "per_unit"])
def test_coarse_to_fine_lstm_matches_numpy(weights):
    readings = Readings(lstm_weights=weights)
    net = _net("co2fi_rgb", readings)
    xs = [net.blobs[f"fc1_{g}"].data.astype(np.float64) for g in ("coarse", "medium", "fine")]
    ref = lstm_reference(xs, _params(net, "c2f_lstm", 3, readings))
    for t in range(3):
        np.testing.assert_allclose(net.blobs[f"c2f_lstm_h{t + 1}"].data, ref[t], rtol=1e-4,
                                   atol=1e-5)
    if weights == "per_unit":
        assert net.params["c2f_lstm_t2_x_gates"][0].data.shape == (4 * SMALL.c2f_lstm, SMALL.fc1)


@pytest.mark.parametrize("weights", ["shared", "per_unit"])
def test_asynchronous_lstm_matches_numpy(weights):
    readings = Readings(lstm_weights=weights)
    net = _net("baseline_asyn_d5_rgb_centred", readings, phase="deploy")
    # fused input of step t: 1x1 conv over (rgb_t3 fc7, flow_t<t> fc7) into K maps, which
    # the LSTM reads channel after channel (B x K*D)
    xs = []
    for t in range(1, 6):
        w, b = (p.data.astype(np.float64) for p in net.params[f"fuse_t{t}"])
        a = net.blobs["rgb_t3/fc7"].data.astype(np.float64)
        o = net.blobs[f"flow_t{t}/fc7"].data.astype(np.float64)
        fused = np.stack([w[k, 0, 0, 0] * a + w[k, 1, 0, 0] * o + b[k]
                          for k in range(SMALL.fusion_channels)], axis=1)
        np.testing.assert_allclose(net.blobs[f"fuse_t{t}"].data[:, :, :, 0], fused, rtol=1e-4,
                                   atol=1e-5)
        xs.append(fused.reshape(len(fused), -1))
    if weights == "shared":
        assert net.blobs["async_lstm"].data.shape == (5, SMALL.deploy_batch_fusion,
                                                       SMALL.async_lstm)
        ref = lstm_reference(xs, _params(net, "async_lstm", 5, readings))
        np.testing.assert_allclose(net.blobs["async_lstm"].data[4], ref[4], rtol=1e-4, atol=1e-5)
    else:
        ref = lstm_reference(xs, _params(net, "async_lstm", 5, readings))
        np.testing.assert_allclose(net.blobs["async_lstm_h5"].data, ref[4], rtol=1e-4, atol=1e-5)
    # the deploy output is the softmax of the last step's score
    w, b = (p.data.astype(np.float64) for p in net.params["async_score_t5"])
    score = ref[4] @ w.T + b
    prob = np.exp(score - score.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.blobs["prob"].data, prob, rtol=1e-4, atol=1e-6)
