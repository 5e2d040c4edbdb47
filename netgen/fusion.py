"""The asynchronous fusion network (Sec. 5, Fig. 5): its blocks, one function each.

``stream_wise_fusion`` (Sec. 5.1): the centre feature and one feature of the other stream,
viewed as two 1-D maps (B x 2 x D x 1), fused by a single 1x1 conv of their own (K_t) into
K maps (B x K x D x 1, K = preset.fusion_channels);
``asynchronous_integration`` (Sec. 5.2, Eq. 5): a T-unit LSTM over the fused outputs with an FC
and a softmax loss (gamma/N) on every step.
"""

from __future__ import annotations

from caffe import layers as L
from caffe.net_spec import NetSpec, Top

from netgen import paper
from netgen.blocks import BIAS_FILLER, WEIGHT_FILLER, BuildContext, Scope
from netgen.coarse_to_fine import prediction, step_losses
from netgen.headings import block
from netgen.recurrent import lstm


@block(lambda a: f"Sec. 5.1: {a['name']}, the tower's feature as a 1-D map")
def as_map(n: NetSpec, name: str, feature: Top) -> Top:
    """B x D feature -> B x 1 x D x 1, a one-dimensional map."""
    n[name] = L.Reshape(feature, name=name, reshape_param={"shape": {"dim": [0, 1, -1, 1]}})
    return n[name]


@block(lambda a: f"Fig. 5, Sec. 5.1: stream-wise 1x1 fusion K_{a['step']}")
def stream_wise_fusion(
    n: NetSpec, ctx: BuildContext, s: Scope, step: int, centre_map: Top, other_map: Top
) -> Top:
    """Fuse two 1-D maps (B x 1 x D x 1 each) with the 1x1 conv ``fuse_t<step>``; returns its
    B x K x D x 1 output (K = preset.fusion_channels), one step of the asynchronous LSTM."""
    pair = s.name(f"fuse_pair_t{step}")
    n[pair] = L.Concat(centre_map, other_map, name=pair, concat_param={"axis": 1})
    name = f"fuse_t{step}"
    n[s.name(name)] = L.Convolution(
        n[pair], name=s.name(name), param=s.params(name),
        convolution_param={"num_output": ctx.preset.fusion_channels,
                           "kernel_size": paper.FUSION_KERNEL,
                           "weight_filler": WEIGHT_FILLER, "bias_filler": BIAS_FILLER},
    )
    top = n[s.name(name)]
    if ctx.readings.fusion_relu:
        relu = s.name(f"relu_fuse_t{step}")
        n[relu] = L.ReLU(top, name=relu, in_place=True)
        top = n[relu]
    return top


@block(lambda a: f"Eq. 5: {len(a['fused'])}-unit asynchronous LSTM over the fused maps")
def asynchronous_integration(
    n: NetSpec, ctx: BuildContext, s: Scope, fused: list[Top], dim: int, gamma_weight: float
) -> Top | None:
    """Eq. 5: the T-unit LSTM over the fused outputs (each K x D wide: ``dim`` is the fused
    features' D); per-step FC + loss (weight ``gamma_weight``). Deploy: ``prob``."""
    width = ctx.preset.fusion_channels * dim
    hs = lstm(n, s, "async_lstm", fused, width, ctx.preset.async_lstm, ctx.readings.lstm_weights)
    scores = step_losses(n, ctx, s, "async", hs, gamma_weight)
    if ctx.train:
        return None
    return prediction(n, ctx, s, "prob", scores)
