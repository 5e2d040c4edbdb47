"""The asynchronous fusion network (Sec. 5, Fig. 5): its blocks, one function each.

``stream_wise_fusion`` (Sec. 5.1): the centre feature and one feature of the other stream,
viewed as two 1-D maps (B x 2 x D x 1), fused by a single 1x1 conv of their own (K_t);
``asynchronous_integration`` (Sec. 5.2, Eq. 5): a T-unit LSTM over the fused outputs with an FC
and a softmax loss (gamma/N) on every step.
"""

from __future__ import annotations

from caffe import layers as L
from caffe.net_spec import NetSpec, Top

from netgen import paper
from netgen.blocks import BIAS_FILLER, WEIGHT_FILLER, Scope
from netgen.coarse_to_fine import prediction, step_losses
from netgen.presets import Preset
from netgen.readings import Readings
from netgen.recurrent import lstm


def as_map(n: NetSpec, name: str, feature: Top) -> Top:
    """B x D feature -> B x 1 x D x 1, a one-dimensional map."""
    n[name] = L.Reshape(feature, name=name, reshape_param={"shape": {"dim": [0, 1, -1, 1]}})
    return n[name]


def stream_wise_fusion(
    n: NetSpec, s: Scope, step: int, centre_map: Top, other_map: Top, dim: int, preset: Preset,
    readings: Readings,
) -> Top:
    """Fuse two 1-D maps with the 1x1 conv ``fuse_t<step>``; returns 1 x B x (K*D), one step."""
    pair = s.name(f"fuse_pair_t{step}")
    n[pair] = L.Concat(centre_map, other_map, name=pair, concat_param={"axis": 1})
    name = f"fuse_t{step}"
    n[s.name(name)] = L.Convolution(
        n[pair], name=s.name(name), param=s.params(name),
        convolution_param={"num_output": preset.fusion_channels, "kernel_size": paper.FUSION_KERNEL,
                           "weight_filler": WEIGHT_FILLER, "bias_filler": BIAS_FILLER},
    )
    top = n[s.name(name)]
    if readings.fusion_relu:
        relu = s.name(f"relu_fuse_t{step}")
        n[relu] = L.ReLU(top, name=relu, in_place=True)
        top = n[relu]
    return top


def asynchronous_integration(
    n: NetSpec, s: Scope, fused: list[Top], dim: int, preset: Preset, num_classes: int,
    label: Top | None, gamma_weight: float, readings: Readings, train: bool,
) -> Top | None:
    """Eq. 5: the T-unit LSTM over the fused outputs; per-step FC + loss. Deploy: ``prob``."""
    width = preset.fusion_channels * dim
    hs = lstm(n, s, "async_lstm", fused, width, preset.async_lstm, readings.lstm_weights)
    scores = step_losses(n, s, "async", hs, num_classes, label, gamma_weight, train, readings)
    if train:
        return None
    return prediction(n, s, "prob", scores, readings)

