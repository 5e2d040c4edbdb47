"""Small NetSpec helpers shared by every generator: scopes, parameter specs, conv/fc/pool blocks.

A ``Scope`` names layers and blobs of one tower (``rgb_t3/conv1_1``), gives shared towers common
parameter names (``flow/conv1_1/0``) and freezes towers (``lr_mult: 0``). A ``BuildContext``
carries what every block of one net reads (sizes, readings, classes, phase, label), so that the
block functions take it and the blobs they work on instead of long positional lists. Layer
names follow the
FCN/HED NetSpec idiom: every layer is assigned to the NetSpec under its own name, in-place
ReLU/Dropout layers included, so ``relu1_1`` works in place on blob ``conv1_1`` as in the
official VGG-16 prototxt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from caffe import layers as L
from caffe.net_spec import NetSpec, Top
from caffe.proto import caffe_pb2

from netgen.presets import Preset
from netgen.readings import Readings

#: Keyword arguments that keep a layer in the TRAIN phase only / TEST phase only.
TRAIN_ONLY: dict[str, Any] = {"include": {"phase": caffe_pb2.TRAIN}}
TEST_ONLY: dict[str, Any] = {"include": {"phase": caffe_pb2.TEST}}

WEIGHT_FILLER: dict[str, Any] = {"type": "xavier"}
#: He et al. (2015) for convolutions followed by ReLU: xavier's 1/fan_in variance halves the
#: signal at every ReLU, which stalls VGG-16 trained from scratch (the small preset). From
#: ImageNet weights (the paper preset) it only initialises the layers ImageNet lacks.
CONV_FILLER: dict[str, Any] = {"type": "msra"}
BIAS_FILLER: dict[str, Any] = {"type": "constant", "value": 0.0}
LSTM_FILLER: dict[str, Any] = {"type": "uniform", "min": -0.08, "max": 0.08}
#: Caffe's enums, by name.
MAX_POOL = caffe_pb2.PoolingParameter.MAX
ELTWISE_SUM = caffe_pb2.EltwiseParameter.SUM


@dataclass(frozen=True)
class BuildContext:
    """What every block of one net reads."""

    preset: Preset
    readings: Readings
    num_classes: int
    #: A train/val net (losses, TRAIN-only layers) rather than a deploy net.
    train: bool
    #: The label blob (None in deploy nets).
    label: Top | None = None

    def loss_scale(self) -> float:
        """The 1/N of Eqs. 1, 3 and 5 under readings.class_normalization, else 1 (batch mean).

        Applied to every softmax loss of the Table 1-2 nets alike, the baselines' included, so
        that every row trains under the same loss scale."""
        return 1.0 / self.num_classes if self.readings.class_normalization else 1.0


@dataclass(frozen=True)
class Scope:
    """Naming and parameter policy of one tower."""

    #: Prepended to every layer and blob name, e.g. ``"rgb_t3/"``.
    prefix: str = ""
    #: Towers with the same ``share`` key share parameters (param { name: "<share>/<layer>/<i>" }).
    share: str | None = None
    #: Frozen: every parameter gets lr_mult 0 and decay_mult 0.
    frozen: bool = False
    #: Factor on every lr_mult of the scope (a fusion stage's towers: netgen.schedule).
    lr_scale: float = 1.0

    def name(self, layer: str) -> str:
        return self.prefix + layer

    def frozen_copy(self) -> Scope:
        return Scope(self.prefix, self.share, True, self.lr_scale)

    def params(
        self, layer: str, lr: Sequence[float] = (1.0, 2.0), decay: Sequence[float] = (1.0, 0.0),
        named: bool = False,
    ) -> list[dict[str, Any]]:
        """ParamSpecs of a layer with len(lr) blobs (weights lr 1 decay 1, biases lr 2 decay 0).

        Parameters get names (``<share>/<layer>/<i>``) in shared towers; ``named`` names them
        in any scope (``<prefix><layer>/<i>``), so that several layers of one tower can share
        them under the common ``layer``."""
        specs = []
        for i, (lr_mult, decay_mult) in enumerate(zip(lr, decay, strict=True)):
            frozen = self.frozen or self.lr_scale == 0
            spec: dict[str, Any] = {"lr_mult": 0.0 if frozen else lr_mult * self.lr_scale,
                                    "decay_mult": 0.0 if frozen else decay_mult}
            if self.share is not None:
                spec["name"] = f"{self.share}/{layer}/{i}"
            elif named:
                spec["name"] = f"{self.prefix}{layer}/{i}"
            specs.append(spec)
        return specs


def python_param(module: str, layer: str, params: dict[str, Any]) -> dict[str, Any]:
    """python_param with a deterministic JSON param_str."""
    return {"module": module, "layer": layer, "param_str": json.dumps(params, sort_keys=True)}


def conv(
    n: NetSpec,
    s: Scope,
    name: str,
    bottom: Top,
    num_output: int,
    kernel: int,
    stride: int = 1,
    pad: int = 0,
    relu: str | None = None,
) -> Top:
    """Convolution (+ in-place ReLU named ``relu``); returns the output blob."""
    n[s.name(name)] = L.Convolution(
        bottom,
        name=s.name(name),
        param=s.params(name),
        convolution_param={
            "num_output": num_output, "kernel_size": kernel, "stride": stride, "pad": pad,
            "weight_filler": CONV_FILLER, "bias_filler": BIAS_FILLER,
        },
    )
    top = n[s.name(name)]
    if relu is not None:
        n[s.name(relu)] = L.ReLU(top, in_place=True, name=s.name(relu))
        top = n[s.name(relu)]
    return top


def fc(
    n: NetSpec,
    s: Scope,
    name: str,
    bottom: Top,
    num_output: int,
    relu: str | None = None,
    dropout: tuple[str, float] | None = None,
    param_layer: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Top:
    """InnerProduct (+ in-place ReLU, + in-place Dropout (name, ratio)).

    ``param_layer`` names the parameters when several layers of a tower share one FC.
    """
    n[s.name(name)] = L.InnerProduct(
        bottom,
        name=s.name(name),
        param=s.params(param_layer or name, named=param_layer is not None),
        inner_product_param={
            "num_output": num_output, "weight_filler": WEIGHT_FILLER, "bias_filler": BIAS_FILLER,
        },
        **(extra or {}),
    )
    top = n[s.name(name)]
    if relu is not None:
        n[s.name(relu)] = L.ReLU(top, in_place=True, name=s.name(relu), **(extra or {}))
        top = n[s.name(relu)]
    if dropout is not None and dropout[1] > 0:
        drop_name, ratio = dropout
        n[s.name(drop_name)] = L.Dropout(
            top, in_place=True, name=s.name(drop_name), dropout_param={"dropout_ratio": ratio},
            **(extra or {}),
        )
        top = n[s.name(drop_name)]
    return top


def max_pool(n: NetSpec, s: Scope, name: str, bottom: Top, kernel: int, stride: int,
             extra: dict[str, Any] | None = None) -> Top:
    """Max pooling (``extra``, e.g. TRAIN_ONLY, is added to the layer)."""
    n[s.name(name)] = L.Pooling(
        bottom, name=s.name(name),
        pooling_param={"pool": MAX_POOL, "kernel_size": kernel, "stride": stride},
        **(extra or {}),
    )
    return n[s.name(name)]


def flatten_steps(n: NetSpec, name: str, bottom: Top, width: int) -> Top:
    """1 x B x W (one LSTM step) -> B x W."""
    n[name] = L.Reshape(bottom, name=name, reshape_param={"shape": {"dim": [-1, width]}})
    return n[name]


def as_step(n: NetSpec, name: str, bottom: Top, width: int) -> Top:
    """B x ... (width W in all) -> 1 x B x W, one time step of a T x B x W sequence."""
    n[name] = L.Reshape(bottom, name=name, reshape_param={"shape": {"dim": [1, -1, width]}})
    return n[name]
