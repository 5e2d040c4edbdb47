"""Inputs of the generated nets: Python data layers (train/val), Input layers (deploy, tests).

Contracts with co2fi_layers.clip_data / period_data are in docs/DESIGN.md. ``data_source``:
``python`` (the data layers, TRAIN and TEST phase each with its own list) or ``input`` (Input
layers of the same tops, for tests and benchmarks that feed random data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from caffe import layers as L
from caffe.net_spec import NetSpec, Top
from caffe.proto import caffe_pb2

from netgen import names, paper
from netgen.blocks import python_param
from netgen.headings import block
from netgen.names import channels, tower
from netgen.presets import Preset

#: The split the generated nets' default lists name.
DEFAULT_SPLIT = 1
DATA_SOURCES: tuple[str, ...] = ("python", "input")
#: Name of the test-phase copy of a data layer.
TEST_SUFFIX = "_test"


#: The dataset folder the generated nets name by default (`python -m netgen --data-root`);
#: tools/train.py sets the paths of a run's own folder and split (netgen.names names the
#: files in both).
DEFAULT_DATA_ROOT = "data/{dataset}"


def default_data_root(dataset: str) -> str:
    return DEFAULT_DATA_ROOT.format(dataset=dataset)


@dataclass(frozen=True)
class DataPaths:
    """The dataset folder and split a generated net's data layers name (netgen's input; the
    file names inside the folder are netgen.names's)."""

    root: str
    split: int = DEFAULT_SPLIT

    @classmethod
    def default(cls, dataset: str) -> DataPaths:
        return cls(default_data_root(dataset))

    def layer_params(self, subset: str, modalities: dict[str, str]) -> dict[str, str]:
        """List (``modalities``: list key -> modality) and frames paths of a data layer."""
        return names.data_layer_paths(modalities, self.root, subset, self.split)


def input_layer(n: NetSpec, name: str, tops: Sequence[tuple[str, Sequence[int]]]) -> list[Top]:
    """One Input layer ``name`` with the given (top, shape) pairs."""
    out = L.Input(name=name, ntop=len(tops),
                  input_param={"shape": [{"dim": list(shape)} for _, shape in tops]})
    if len(tops) == 1:
        out = (out,)
    for (top, _), t in zip(tops, out, strict=True):
        n[top] = t
    return [n[top] for top, _ in tops]


@block("Sec. 6.1 inputs: one clip a sample (data, label)")
def clip_data(
    n: NetSpec, stream: str, paths: DataPaths, preset: Preset, data_source: str, batch: int
) -> tuple[Top, Top]:
    """``data`` (B x C x S x S) and ``label`` (B) of a single-stream train/val net."""
    size = preset.input_size
    if data_source == "input":
        data, label = input_layer(n, "input", [("data", (batch, channels(stream), size, size)),
                                               ("label", (batch,))])
        return data, label
    params = {**paths.layer_params("train", {"list": stream}), "modality": stream,
              "batch_size": batch, "input_size": size, "phase": "train", "seed": 0}
    n.data, n.label = L.Python(
        name="data", ntop=2, include={"phase": caffe_pb2.TRAIN},
        python_param=python_param(*names.CLIP_DATA_LAYER, params))
    return n.data, n.label


@block(lambda a: (f"Sec. 5.1, Fig. 5 inputs: periods of {a['period_steps']} steps, "
                  f"Delta={a['delta']} (label and one input a tower)"))
def period_data(
    n: NetSpec, rgb_steps: Sequence[int], flow_steps: Sequence[int], paths: DataPaths,
    preset: Preset, data_source: str, batch: int, delta: int,
    period_steps: int = paper.FUSION_STEPS,
) -> tuple[dict[str, Top], Top]:
    """Tops ``rgb_t<i>``, ``flow_t<i>`` and ``label`` of a fusion train/val net; the data
    layer samples periods of ``period_steps`` (T) steps (a key of its param_str when T is not
    the layer's default, the paper's)."""
    size = preset.input_size
    inputs = [(tower("rgb", i), "rgb") for i in rgb_steps] + [(tower("flow", i), "flow")
                                                             for i in flow_steps]
    if data_source == "input":
        tops = input_layer(n, "input", [(name, (batch, channels(st), size, size))
                                        for name, st in inputs] + [("label", (batch,))])
        return dict(zip([name for name, _ in inputs], tops[:-1], strict=True)), tops[-1]
    params = {**paths.layer_params("train", {"rgb_list": "rgb", "flow_list": "flow"}),
              "batch_size": batch, "input_size": size, "delta": delta, "rgb_steps": list(rgb_steps),
              "flow_steps": list(flow_steps), "phase": "train", "seed": 0}
    if period_steps != paper.FUSION_STEPS:
        params["period_steps"] = period_steps
    tops = L.Python(name="period_data", ntop=len(inputs) + 1, include={"phase": caffe_pb2.TRAIN},
                    python_param=python_param(*names.PERIOD_DATA_LAYER, params))
    for (name, _), top in zip(inputs, tops[:-1], strict=True):
        n[name] = top
    n.label = tops[-1]
    return {name: n[name] for name, _ in inputs}, n.label


@block("Deploy inputs: one Input layer a tower")
def deploy_inputs(
    n: NetSpec, inputs: Sequence[tuple[str, str]], preset: Preset, batch: int
) -> dict[str, Top]:
    """One Input layer per (top, stream), named like the data tops (docs/DESIGN.md)."""
    size = preset.input_size
    out = {}
    for name, stream in inputs:
        out[name] = input_layer(n, name, [(name, (batch, channels(stream), size, size))])[0]
    return out


def add_test_data_layer(net: caffe_pb2.NetParameter, test_batch: int, paths: DataPaths
                        ) -> None:
    """Add the TEST-phase copy of the Python data layer(s) of ``net`` (in place).

    NetSpec cannot give two layers the same tops, so the copy is made on the NetParameter: same
    tops, ``include { phase: TEST }``, the ``val`` lists, ``phase: "test"`` and the test batch.
    """
    import json

    layers = list(net.layer)
    del net.layer[:]
    for layer in layers:
        net.layer.add().CopyFrom(layer)
        if layer.type != "Python" or not layer.python_param.module.endswith("_data"):
            continue
        test = net.layer.add()
        test.CopyFrom(layer)
        test.name = layer.name + TEST_SUFFIX
        del test.include[:]
        test.include.add().phase = caffe_pb2.TEST
        params: dict[str, Any] = json.loads(layer.python_param.param_str)
        params.update(paths.layer_params("val", names.list_modalities(params)))
        params["phase"] = "test"
        params["batch_size"] = test_batch
        test.python_param.param_str = json.dumps(params, sort_keys=True)
