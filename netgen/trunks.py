"""The two trunks: VGG-16 (the feature ConvNet) and CNN_M_2048 (the class grouper).

Layer names and parameter shapes equal the official Model Zoo deploy models
(VGG_ILSVRC_16_layers, VGG_CNN_M_2048) in the paper preset, so the ImageNet caffemodels copy in
by name (conv1_1 of the flow stream has 20 input channels: tools/net_surgery.py handles it).
"""

from __future__ import annotations

from typing import Any

from caffe import layers as L
from caffe.net_spec import NetSpec, Top

from netgen.blocks import BIAS_FILLER, CONV_FILLER, Scope, conv, fc, max_pool
from netgen.headings import block
from netgen.presets import Preset

#: Convolutions per VGG-16 stage (Simonyan & Zisserman 2015, configuration D).
VGG16_STAGE_DEPTHS: tuple[int, ...] = (2, 2, 3, 3, 3)
#: CNN_M_2048 (Chatfield et al. 2014): conv1 7x7/2, conv2 5x5/2 pad 1, conv3-5 3x3 pad 1.
CNNM_KERNELS: tuple[int, ...] = (7, 5, 3, 3, 3)
CNNM_STRIDES: tuple[int, ...] = (2, 2, 1, 1, 1)
CNNM_PADS: tuple[int, ...] = (0, 1, 1, 1, 1)
#: CNN_M_2048's LRN after conv1 and conv2.
CNNM_LRN: dict[str, Any] = {"local_size": 5, "alpha": 5e-4, "beta": 0.75, "k": 2.0}
#: Total stride of VGG-16 after each stage; side maps are upsampled to the conv3_3 grid.
VGG16_STAGE_STRIDES: dict[str, int] = {"conv3_3": 4, "conv4_3": 8, "conv5_3": 16}


def scaled_input(n: NetSpec, s: Scope, data: Top, preset: Preset, prefix: str = "",
                 extra: dict[str, Any] | None = None) -> Top:
    """``data`` times ``preset.input_scale`` (a Power layer ``<prefix>input_scale``), or
    ``data`` itself when the scale is 1."""
    if preset.input_scale == 1:
        return data
    name = s.name(f"{prefix}input_scale")
    n[name] = L.Power(data, name=name, power_param={"scale": preset.input_scale}, **(extra or {}))
    return n[name]


@block(lambda a: f"VGG-16 trunk (Sec. 4.1; Simonyan & Zisserman 2015), conv1_1 to {a['upto']}")
def vgg16_trunk(
    n: NetSpec, s: Scope, data: Top, preset: Preset, upto: str = "fc7"
) -> dict[str, Top]:
    """VGG-16 from ``data`` up to ``upto`` ("conv5_3" or "fc7").

    Returns the blobs by official layer name (every stage's last conv, and fc7 if built).
    """
    if upto not in ("conv5_3", "fc7"):
        raise ValueError(f"vgg16_trunk: upto must be 'conv5_3' or 'fc7', not {upto!r}")
    tops: dict[str, Top] = {}
    top = scaled_input(n, s, data, preset)
    for stage, (depth, width) in enumerate(zip(VGG16_STAGE_DEPTHS, preset.vgg_channels,
                                               strict=True), start=1):
        if stage > 1:
            top = max_pool(n, s, f"pool{stage - 1}", top, 2, 2)
        for i in range(1, depth + 1):
            top = conv(n, s, f"conv{stage}_{i}", top, width, 3, pad=1, relu=f"relu{stage}_{i}")
        tops[f"conv{stage}_{depth}"] = top
    if upto == "fc7":
        top = max_pool(n, s, "pool5", top, 2, 2)
        top = fc(n, s, "fc6", top, preset.vgg_fc, relu="relu6", dropout=("drop6", preset.dropout))
        top = fc(n, s, "fc7", top, preset.vgg_fc, relu="relu7", dropout=("drop7", preset.dropout))
        tops["fc7"] = top
    return tops


@block("CNN_M_2048 trunk (Chatfield et al. 2014), conv1 to fc7")
def cnn_m_2048_trunk(
    n: NetSpec, s: Scope, data: Top, preset: Preset, prefix: str, dropout: bool = True,
    extra: dict[str, Any] | None = None,
) -> Top:
    """CNN_M_2048 up to fc7; every layer named ``<prefix><official name>``.

    ``dropout=False`` leaves out drop6/drop7 (the frozen grouper must score deterministically).
    ``extra`` (e.g. TRAIN_ONLY) is added to every layer.
    """
    kw = extra or {}
    top = scaled_input(n, s, data, preset, prefix, kw)
    for i, (width, k, stride, pad) in enumerate(
        zip(preset.cnnm_channels, CNNM_KERNELS, CNNM_STRIDES, CNNM_PADS, strict=True), start=1
    ):
        name = f"{prefix}conv{i}"
        n[s.name(name)] = L.Convolution(
            top, name=s.name(name), param=s.params(name),
            convolution_param={"num_output": width, "kernel_size": k, "stride": stride,
                               "pad": pad, "weight_filler": CONV_FILLER,
                               "bias_filler": BIAS_FILLER},
            **kw,
        )
        relu = s.name(f"{prefix}relu{i}")
        n[relu] = L.ReLU(n[s.name(name)], in_place=True, name=relu, **kw)
        top = n[relu]
        if i <= 2:
            norm = s.name(f"{prefix}norm{i}")
            n[norm] = L.LRN(top, name=norm, lrn_param=CNNM_LRN, **kw)
            top = n[norm]
        if i in (1, 2, 5):
            top = max_pool(n, s, f"{prefix}pool{i}", top, 3, 2, extra=kw)
    for layer, width, j in (("fc6", preset.cnnm_fc6, 6), ("fc7", preset.cnnm_fc7, 7)):
        top = fc(n, s, f"{prefix}{layer}", top, width, relu=f"{prefix}relu{j}",
                 dropout=(f"{prefix}drop{j}", preset.dropout) if dropout else None, extra=kw)
    return top
