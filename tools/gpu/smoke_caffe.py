"""Smoke test of a Caffe build: import pycaffe, a tiny net forward+backward in CPU and GPU mode.

Run by tools/gpu/device_build.sh after `source $PREFIX/env.sh`; `--mode cpu` checks a CPU build.
Exit 0 when the GPU results match the CPU results (relative L2 error under 1e-5).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "1")

NET = """
name: "smoke"
layer { name: "input" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 3 dim: 16 dim: 16 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def run(caffe, mode: str, path: str, weights: dict | None) -> tuple[dict, dict]:
    (caffe.set_mode_gpu if mode == "gpu" else caffe.set_mode_cpu)()
    net = caffe.Net(path, caffe.TRAIN)
    if weights is not None:
        for name, arrays in weights.items():
            for blob, value in zip(net.params[name], arrays, strict=True):
                blob.data[...] = value
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape)
    net.blobs["label"].data[...] = rng.integers(0, 5, 4)
    net.forward()
    net.backward()
    out = {"loss": net.blobs["loss"].data.copy(), "fc": net.blobs["fc"].data.copy()}
    diffs = {f"{n}/{i}": b.diff.copy() for n, bl in net.params.items() for i, b in enumerate(bl)}
    params = {n: [b.data.copy() for b in bl] for n, bl in net.params.items()}
    return {**out, **diffs}, params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=("gpu", "cpu"), default="gpu")
    ap.add_argument("--write-net", metavar="PATH",
                    help="only write the smoke net's prototxt (for `caffe time -model PATH`)")
    args = ap.parse_args()
    if args.write_net:
        with open(args.write_net, "w") as f:
            f.write(NET)
        return 0
    import caffe

    if os.environ.get("CO2FI_CAFFE_INIT_LOG") == "1":   # tools/gpu/diagnose_pycaffe.sh
        caffe.init_log()

    print(f"smoke: caffe {caffe.__version__} from {os.path.dirname(caffe.__file__)}")
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(NET)
    try:
        ref, weights = run(caffe, "cpu", f.name, None)
        got, _ = run(caffe, args.mode, f.name, weights)
    finally:
        os.unlink(f.name)
    worst = 0.0
    for key, r in ref.items():
        err = float(np.linalg.norm(got[key] - r) / max(np.linalg.norm(r), 1e-30))
        worst = max(worst, err)
        print(f"smoke: {key:10s} rel. L2 error {args.mode} vs cpu {err:.2e}")
    ok = worst < 1e-5 and np.isfinite(float(got["loss"]))
    print(f"smoke: {'PASS' if ok else 'FAIL'} (loss {float(got['loss']):.4f}, worst {worst:.2e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
