"""Helpers for tests and benchmarks: instantiate generated nets in pycaffe and feed random data."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402


def with_batch(net: caffe_pb2.NetParameter, batch: int) -> caffe_pb2.NetParameter:
    """A copy of ``net`` whose Input layers have batch ``batch`` (first dim of every shape)."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    for layer in out.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = batch
    return out


def load(net: caffe_pb2.NetParameter, phase: str = "train") -> caffe.Net:
    """Instantiate ``net`` with pycaffe in the TRAIN or TEST phase."""
    caffe.set_mode_cpu()
    fd, path = tempfile.mkstemp(suffix=".prototxt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(str(net))
        return caffe.Net(path, caffe.TRAIN if phase == "train" else caffe.TEST)
    finally:
        os.unlink(path)


def fill_inputs(net: caffe.Net, num_classes: int, seed: int = 0) -> None:
    """Random inputs: uniform labels in 0..N-1, standard normal data."""
    rng = np.random.default_rng(seed)
    for name in net.inputs:
        blob = net.blobs[name]
        if name == "label":
            blob.data[...] = rng.integers(0, num_classes, blob.data.shape)
        else:
            blob.data[...] = rng.standard_normal(blob.data.shape)


def param_count(net: caffe.Net) -> int:
    """Learnable numbers, each shared blob counted once."""
    seen: set[int] = set()
    total = 0
    for blobs in net.params.values():
        for b in blobs:
            key = b.data.__array_interface__["data"][0]
            if key not in seen:
                seen.add(key)
                total += b.data.size
    return total


def blob_bytes(net: caffe.Net) -> int:
    """Bytes of data + diff of every top blob (in-place blobs once): the nominal count, which
    also counts the tops of Caffe's Split layers (whose data is their bottom's) and diffs Caffe
    never allocates; :func:`allocated_blob_bytes` counts what Caffe holds."""
    return sum(2 * 4 * b.data.size for b in net.blobs.values())


@dataclass(frozen=True)
class Backward:
    """Net::Init's backward flags of a pycaffe net, by layer index (Caffe's Splits included)."""

    layers: list[str]
    bottoms: list[list[str]]
    tops: list[list[str]]
    layer_need: list[bool]
    bottom_need: list[list[bool]]

    def layers_needing_backward(self) -> set[str]:
        return {name for name, need in zip(self.layers, self.layer_need, strict=True) if need}


def backward_flags(net: caffe.Net, net_param: caffe_pb2.NetParameter) -> Backward:
    """Which layers of ``net`` (built from ``net_param``) run Backward and into which bottoms:
    Net::Init's rule, replayed (caffe/src/caffe/net.cpp; Caffe logs the result as "<layer>
    needs backward computation").

    Forward: a layer needs backward when a bottom needs it or a parameter has lr_mult != 0; its
    tops then need it; propagate_down overrides a bottom's flag. Back from the losses: a layer
    that contributes to no loss, or into none of whose tops anything back-propagates, does not.
    Caffe's Split layers (inserted where a blob has several readers) have no parameters."""
    specs = {layer.name: layer for layer in net_param.layer}
    names = list(net._blob_names)
    loss = dict(zip(names, net._blob_loss_weights, strict=True))
    layers = list(net._layer_names)
    bottoms = [[names[i] for i in net._bottom_ids(k)] for k in range(len(layers))]
    tops = [[names[i] for i in net._top_ids(k)] for k in range(len(layers))]
    blob_need: dict[str, bool] = {}
    layer_need: list[bool] = []
    bottom_need: list[list[bool]] = []
    for k, layer_name in enumerate(layers):
        spec = specs.get(layer_name)
        need = any(blob_need.get(b, False) for b in bottoms[k])
        flags = [blob_need.get(b, False) for b in bottoms[k]]
        if spec is not None and len(spec.propagate_down):
            flags = [bool(x) for x in spec.propagate_down]
        lr = [p.lr_mult for p in spec.param] if spec is not None else []
        need |= any((lr[p] if p < len(lr) else 1.0) != 0 for p in range(len(net.layers[k].blobs)))
        layer_need.append(need)
        bottom_need.append(flags)
        for t in tops[k]:
            blob_need[t] = blob_need.get(t, False) or need
    under_loss: set[str] = set()
    skip: set[str] = set()
    for k in range(len(layers) - 1, -1, -1):
        contributes = any(loss[t] != 0 or t in under_loss for t in tops[k])
        if layer_need[k] and all(t in skip for t in tops[k]):
            layer_need[k] = False
            bottom_need[k] = [False] * len(bottoms[k])
        if not contributes:
            layer_need[k] = False
        for j, b in enumerate(bottoms[k]):
            if contributes:
                under_loss.add(b)
            else:
                bottom_need[k][j] = False
            if not bottom_need[k][j]:
                skip.add(b)
    return Backward(layers, bottoms, tops, layer_need, bottom_need)


def diff_blobs(net: caffe.Net, net_param: caffe_pb2.NetParameter) -> set[str]:
    """Blobs whose diff Caffe allocates in a forward+backward pass (Blob memory is allocated on
    first use): those with a loss weight (SetLossWeights fills their diff), the tops of the
    layers that run Backward (it reads them) and the bottoms they back-propagate into."""
    flags = backward_flags(net, net_param)
    loss = dict(zip(net._blob_names, net._blob_loss_weights, strict=True))
    out = {b for b, weight in loss.items() if weight != 0}
    for k, need in enumerate(flags.layer_need):
        if need:
            out.update(flags.tops[k])
            out.update(b for b, flag in zip(flags.bottoms[k], flags.bottom_need[k], strict=True)
                       if flag)
    return out


def allocated_blob_bytes(net: caffe.Net, net_param: caffe_pb2.NetParameter) -> int:
    """Bytes Caffe holds for the blobs of a forward+backward pass: every data buffer once (the
    tops of Split and Reshape layers share their bottom's), and a diff only where Caffe
    allocates one (:func:`diff_blobs`; Reshape tops share their bottom's diff). Call it after
    a forward pass (every data buffer is allocated then)."""
    seen_data: set[int] = set()
    seen_diff: set[int] = set()
    with_diff = diff_blobs(net, net_param)
    total = 0
    for name, b in net.blobs.items():
        ptr = b.data.__array_interface__["data"][0]
        if ptr not in seen_data:
            seen_data.add(ptr)
            total += 4 * b.data.size
        if name in with_diff:
            ptr = b.diff.__array_interface__["data"][0]
            if ptr not in seen_diff:
                seen_diff.add(ptr)
                total += 4 * b.diff.size
    return total
