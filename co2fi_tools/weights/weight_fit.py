"""Do these weights fit this net? Checked in Python before Caffe copies them, because Caffe's
answer to a misfit is a CHECK abort (exit 134) deep in ``CopyTrainedLayersFrom``.

Caffe copies weights by layer name; for every layer the net and the weights file share, the
number of blobs and each blob's shape must agree. A misfit is named in one line, in the words a
user needs: another class count (the score layer's outputs), the other modality (the first
convolution's input channels: 3 for RGB, 2 x L for L stacked flow fields), or the shapes.

    >>> net = caffe.Net(deploy, caffe.TEST)
    >>> check_weights_fit(net, deploy, weights)   # WeightsMisfit (a ValueError) on a misfit
    >>> net.copy_from(weights)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Shape = tuple[int, ...]


class WeightsMisfit(ValueError):
    """Weights that do not fit a net (or are no Caffe weights at all)."""


@dataclass
class NetShapes:
    """What the check needs of a net: each layer's blob shapes and type, the layers fed
    directly by the net's inputs, and the number of classes (the score blob's width)."""

    params: dict[str, list[Shape]]
    types: dict[str, str] = field(default_factory=dict)
    input_layers: set[str] = field(default_factory=set)
    num_classes: int | None = None


def _modality(channels: int) -> str:
    if channels == 3:
        return "RGB"
    if channels % 2 == 0:
        return f"flow, {channels // 2} stacked fields"
    return f"{channels} channels"


def _blob_shape(blob) -> Shape:
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    legacy = (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in legacy)


def _squeeze_legacy(shape: Shape) -> Shape:
    """Old (V1) files store every blob as num x channels x height x width, padding with ones;
    Caffe accepts them when the element counts match."""
    return tuple(d for d in shape if d != 1)


def read_weight_shapes(weights: str | os.PathLike[str]) -> dict[str, list[Shape]]:
    """Layer name -> blob shapes of a ``.caffemodel`` (binary NetParameter, new or V1 layers)
    or ``.caffemodel.h5`` file; WeightsMisfit when it is neither (truncated, corrupt)."""
    path = Path(weights)
    if not path.is_file():
        raise WeightsMisfit(f"{path}: weights file not found")
    if path.suffix == ".h5":
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                return {name: [tuple(h5["data"][name][str(i)].shape)
                               for i in range(len(h5["data"][name]))]
                        for name in h5["data"]}
        except (OSError, KeyError) as exc:
            raise WeightsMisfit(f"{path}: not a Caffe HDF5 weights file ({exc})") from None
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError

    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise WeightsMisfit(f"{path}: not a Caffe weights file, truncated or corrupt "
                            f"({type(exc).__name__})") from None
    layers = list(net.layer) or list(net.layers)
    if not layers:
        raise WeightsMisfit(f"{path}: holds no layers (empty, truncated or not a .caffemodel)")
    for layer in layers:
        for i, blob in enumerate(layer.blobs):
            values = len(blob.data) or len(blob.double_data)
            count = math.prod(_blob_shape(blob))
            if values != count:  # Caffe's CHECK_EQ(count_, proto.data_size())
                raise WeightsMisfit(f"{path}: layer {layer.name} blob {i} holds {values} values "
                                    f"for shape {list(_blob_shape(blob))} (truncated or corrupt)")
    return {layer.name: [_blob_shape(b) for b in layer.blobs] for layer in layers}


def misfits(net: NetShapes, weights: Mapping[str, Sequence[Shape]]) -> list[str]:
    """Each layer the net and the weights share whose blobs do not fit, in words."""
    problems = []
    for name, net_shapes in net.params.items():
        if name not in weights:
            continue
        have = [tuple(s) for s in weights[name]]
        want = [tuple(s) for s in net_shapes]
        if len(have) != len(want):
            problems.append(f"layer {name} has {len(have)} blobs in the weights, {len(want)} "
                            "in the net (bias_term differs?)")
            continue
        for i, (h, w) in enumerate(zip(have, want, strict=True)):
            if h == w or (_squeeze_legacy(h) == _squeeze_legacy(w) and len(h) != len(w)):
                continue
            problems.append(_describe(net, name, i, h, w))
            break
    return problems


def _describe(net: NetShapes, name: str, index: int, have: Shape, want: Shape) -> str:
    kind = net.types.get(name, "")
    if (index == 0 and kind == "Convolution" and name in net.input_layers and len(have) == 4
            and len(want) == 4 and have[1] != want[1]):
        return (f"layer {name} takes {have[1]} input channels ({_modality(have[1])}) in the "
                f"weights, {want[1]} ({_modality(want[1])}) in the net: weights of the other "
                "modality")
    if (net.num_classes is not None and want and have and want[0] == net.num_classes
            and have[0] != want[0] and kind in ("InnerProduct", "Convolution", "")):
        return (f"layer {name} scores {have[0]} classes in the weights, {want[0]} in the net: "
                "weights of another class count")
    return f"layer {name} blob {index}: shape {list(have)} in the weights, {list(want)} in the net"


def net_shapes(net, score_blob: str | None = None) -> NetShapes:
    """:class:`NetShapes` of a pycaffe ``caffe.Net`` (built without weights)."""
    params = {name: [tuple(b.data.shape) for b in blobs] for name, blobs in net.params.items()}
    types = {name: layer.type for name, layer in
             zip(net._layer_names, net.layers, strict=True)}
    inputs = set(net.inputs)
    input_layers = {name for name in params
                    if set(net.bottom_names.get(name, ())) & inputs}
    first_conv = next((name for name in params if types.get(name) == "Convolution"), None)
    if first_conv is not None:
        input_layers.add(first_conv)
    num_classes = None
    if score_blob is not None and score_blob in net.blobs:
        num_classes = int(net.blobs[score_blob].data.shape[-1])
    return NetShapes(params, types, input_layers, num_classes)


def check_weights_fit(net, prototxt: str | os.PathLike[str], weights: str | os.PathLike[str],
                      score_blob: str | None = None) -> None:
    """WeightsMisfit (one line: weights, net, what differs) unless ``weights`` fit ``net``."""
    found = misfits(net_shapes(net, score_blob), read_weight_shapes(weights))
    if found:
        more = f" (and {len(found) - 1} more layers)" if len(found) > 1 else ""
        raise WeightsMisfit(f"{os.fspath(weights)} does not fit {os.fspath(prototxt)}: "
                            f"{found[0]}{more}")
