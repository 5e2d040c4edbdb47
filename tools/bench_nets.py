"""Benchmark the train nets: parameters, blob memory and forward+backward time vs the baseline.

    python tools/bench_nets.py --preset small --iters 5
    python tools/bench_nets.py --preset paper --batch 2 --iters 2

Data layers are replaced by Input layers fed with random data. Not a test: prints a table.
Paper targets: a CO2FI step at most 1.25x the baseline's, blob memory at most 1.3x.

Memory columns: "param MB" = data + diff of every parameter blob (shared blobs once); "blob MB"
= the nominal data + diff of every top blob (as before: it also counts the tops of Caffe's Split
layers, whose data is their bottom's, and diffs Caffe never allocates); "alloc MB" = what Caffe
holds for the blobs after a forward+backward pass (every data buffer once, diffs only where
Backward runs: netgen.testing.allocated_blob_bytes); "RSS MB" = how much the process's resident
memory grew over the first forward+backward pass (alloc MB + parameter diffs + the layers'
own buffers: im2col, pooling masks, LRN scales), measured in a fresh child process per net, a
measurement beside the count.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe in tests

import caffe  # noqa: E402

from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import get_preset  # noqa: E402
from netgen.testing import (  # noqa: E402
    allocated_blob_bytes,
    blob_bytes,
    fill_inputs,
    load,
    param_count,
)
from netgen.variants import FUSION, build, get_variant  # noqa: E402

NETS = ("baseline_rgb", "co2fi_rgb", "baseline_asyn_d5_rgb_centred", "co2fi_asyn_d5_rgb_centred")


def resident_bytes() -> int:
    """Resident memory of this process now (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def bench(name: str, preset_name: str, batch: int, iters: int, classes: int) -> dict[str, float]:
    preset = get_preset(preset_name)
    opt = NetOptions(preset=preset, num_classes=classes, data_source="input", batch=batch)
    param = build(name, opt)
    net = load(param, "train")
    fill_inputs(net, classes)
    before = resident_bytes()
    net.forward()
    net.backward()  # warm-up (allocates diffs)
    grown = resident_bytes() - before
    allocated = allocated_blob_bytes(net, param)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        net.forward()
        net.backward()
        times.append(time.perf_counter() - t0)
    times.sort()
    params = param_count(net)
    return {"params": params, "blob_mb": blob_bytes(net) / 2**20,
            "alloc_mb": allocated / 2**20, "rss_mb": grown / 2**20,
            "param_mb": 2 * 4 * params / 2**20,
            "step_s": times[len(times) // 2] if times else float("nan")}


def bench_isolated(*args: object) -> dict[str, float]:
    """:func:`bench` in a forked child: each net starts from the same heap, so that the RSS
    growth is its own (memory freed by an earlier net would be reused without showing)."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(bench, args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small")
    p.add_argument("--batch", type=int, help="batch (default: the preset's)")
    p.add_argument("--iters", type=int, default=5,
                   help="timed passes after the warm-up one (0: memory only)")
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--nets", nargs="+", default=list(NETS))
    args = p.parse_args(argv)
    caffe.set_mode_cpu()
    batch = args.batch or get_preset(args.preset).batch_size
    print(f"preset {args.preset}, batch {batch}, {args.classes} classes, median of {args.iters} "
          "forward+backward passes (CPU)")
    print(f"{'net':30s} {'params':>12s} {'param MB':>9s} {'blob MB':>8s} {'alloc MB':>8s} "
          f"{'RSS MB':>7s} {'step s':>7s} {'x params':>8s} {'x blobs':>7s} {'x alloc':>7s} "
          f"{'x RSS':>6s} {'x step':>6s}")
    results: dict[str, dict[str, float]] = {}
    for name in args.nets:  # each row as soon as it is measured (the paper preset takes minutes)
        r = results[name] = bench_isolated(name, args.preset, batch, args.iters, args.classes)
        fusion = get_variant(name).kind == FUSION
        base = results.get("baseline_asyn_d5_rgb_centred" if fusion and
                           "baseline_asyn_d5_rgb_centred" in results else "baseline_rgb", r)
        print(f"{name:30s} {r['params']:12,d} {r['param_mb']:9.1f} {r['blob_mb']:8.1f} "
              f"{r['alloc_mb']:8.1f} {r['rss_mb']:7.1f} {r['step_s']:7.3f} "
              f"{r['params'] / base['params']:8.2f} {r['blob_mb'] / base['blob_mb']:7.2f} "
              f"{r['alloc_mb'] / base['alloc_mb']:7.2f} {r['rss_mb'] / base['rss_mb']:6.2f} "
              f"{r['step_s'] / base['step_s']:6.2f}", flush=True)
    print("ratios: single-stream nets vs baseline_rgb, fusion nets vs baseline_asyn_d5_rgb_centred")
    return 0


if __name__ == "__main__":
    sys.exit(main())
