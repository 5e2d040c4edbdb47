"""Helpers for tests and benchmarks: instantiate generated nets in pycaffe and feed random data."""

from __future__ import annotations

import os
import tempfile

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
    """Bytes of data + diff of every top blob (in-place blobs once)."""
    return sum(2 * 4 * b.data.size for b in net.blobs.values())
