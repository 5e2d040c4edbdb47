"""Benchmark the train nets: parameters, blob memory and forward+backward time vs the baseline.

    python tools/bench_nets.py --preset small --iters 5
    python tools/bench_nets.py --preset paper --batch 2 --iters 2

Data layers are replaced by Input layers fed with random data. Not a test: prints a table.
Paper targets: a CO2FI step at most 1.25x the baseline's, memory at most 1.5x.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe in tests

import caffe  # noqa: E402

from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import get_preset  # noqa: E402
from netgen.testing import blob_bytes, fill_inputs, load, param_count  # noqa: E402
from netgen.variants import FUSION, build, get_variant  # noqa: E402

NETS = ("baseline_rgb", "co2fi_rgb", "baseline_asyn_d5_rgb_centred", "co2fi_asyn_d5_rgb_centred")


def bench(name: str, preset_name: str, batch: int, iters: int, classes: int) -> dict[str, float]:
    preset = get_preset(preset_name)
    opt = NetOptions(preset=preset, num_classes=classes, data_source="input", batch=batch)
    net = load(build(name, opt), "train")
    fill_inputs(net, classes)
    net.forward()
    net.backward()  # warm-up (allocates diffs)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        net.forward()
        net.backward()
        times.append(time.perf_counter() - t0)
    times.sort()
    params = param_count(net)
    return {"params": params, "blob_mb": blob_bytes(net) / 2**20,
            "param_mb": 2 * 4 * params / 2**20, "step_s": times[len(times) // 2]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small")
    p.add_argument("--batch", type=int, help="batch (default: the preset's)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--nets", nargs="+", default=list(NETS))
    args = p.parse_args(argv)
    caffe.set_mode_cpu()
    batch = args.batch or get_preset(args.preset).batch_size
    print(f"preset {args.preset}, batch {batch}, {args.classes} classes, median of {args.iters} "
          "forward+backward passes (CPU)")
    print(f"{'net':32s} {'params':>12s} {'param MB':>9s} {'blob MB':>9s} {'step s':>8s} "
          f"{'x params':>8s} {'x blobs':>8s} {'x step':>7s}")
    results = {n: bench(n, args.preset, batch, args.iters, args.classes) for n in args.nets}
    for name, r in results.items():
        fusion = get_variant(name).kind == FUSION
        base = results["baseline_asyn_d5_rgb_centred" if fusion and
                        "baseline_asyn_d5_rgb_centred" in results else "baseline_rgb"]
        print(f"{name:32s} {r['params']:12,d} {r['param_mb']:9.1f} {r['blob_mb']:9.1f} "
              f"{r['step_s']:8.3f} {r['params'] / base['params']:8.2f} "
              f"{r['blob_mb'] / base['blob_mb']:8.2f} {r['step_s'] / base['step_s']:7.2f}")
    print("ratios: single-stream nets vs baseline_rgb, fusion nets vs baseline_asyn_d5_rgb_centred")
    return 0


if __name__ == "__main__":
    sys.exit(main())
