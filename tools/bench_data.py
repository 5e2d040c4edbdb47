"""Data pipeline benchmark (not a test): prints figures and ratios.

1. Flow extraction frames/s at paper.FRAME_SIZE, one process: TV-L1 (dense_flow's settings),
   our tvl1-fast, Farneback.
2. Extraction speed-up from 1 to 2 worker processes (target >= 1.8x).
3. Data-layer throughput (ClipDataLayer's batch maker behind the prefetcher, W workers) in
   decoded JPEGs/s against the raw ``np.fromfile + cv2.imdecode`` rate of the same JPEGs in W
   processes (target >= 90%).

    .venv/bin/python tools/bench_data.py [--workers 2] [--seconds 8] [--work DIR]
        [--layer-only] [--gpu-bench gpu-bench.json]

``--layer-only`` skips 1-2 (for machines whose OpenCV has no TV-L1, e.g. the GPU machine) and
extracts the frames with Farneback in W processes. ``--gpu-bench`` reads the JSON of
tools/gpu/bench_caffe_vs_pytorch.py and says whether the layer with W workers feeds the baseline
nets' training step as fast as the GPU consumes images.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from co2fi_layers.batches import ClipBatches  # noqa: E402
from co2fi_layers.prefetch import Prefetcher  # noqa: E402
from data_prep import extract, flow, lists, synthetic  # noqa: E402
from netgen import names, paper  # noqa: E402


def flow_rates(videos: list[Path], pairs: dict[str, int]) -> dict[str, float]:
    cv2.setNumThreads(1)
    capture = cv2.VideoCapture(str(videos[0]))
    greys = []
    while len(greys) < max(pairs.values()) + 1:
        ok, frame = capture.read()
        if not ok:
            break
        frame = cv2.resize(frame, paper.FRAME_SIZE)
        greys.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    rates = {}
    for method, n in pairs.items():
        fn = flow.METHODS[method]()
        start = time.perf_counter()
        for i in range(n):
            fn(greys[i], greys[i + 1])
        rates[method] = n / (time.perf_counter() - start)
    return rates


def extraction_speedup(videos: list[Path], work: Path, method: str) -> tuple[float, float]:
    times = []
    for workers in (1, 2):
        out = work / f"speedup_{method}_{workers}"
        start = time.perf_counter()
        extract.extract_all(videos, out, extract.ExtractOptions(flow=method), workers,
                            progress=False)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def _decode_loop(paths: list[str], seconds: float, flags: int, counter) -> None:
    cv2.setNumThreads(1)
    n, end, i = 0, time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        image = cv2.imdecode(np.fromfile(paths[i % len(paths)], np.uint8), flags)
        assert image is not None
        n, i = n + 1, i + 1
    with counter.get_lock():
        counter.value += n


def raw_decode_rate(paths: list[str], workers: int, seconds: float, flags: int) -> float:
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("l", 0)
    chunks = [paths[w::workers] for w in range(workers)]
    procs = [ctx.Process(target=_decode_loop, args=(c, seconds, flags, counter)) for c in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return counter.value / seconds


def layer_rate(list_path: Path, root: Path, modality: str, workers: int, seconds: float
               ) -> float:
    maker = ClipBatches(str(list_path), str(root), modality, paper.BATCH_SIZE, paper.INPUT_SIZE,
                        seed=0)
    top = {k: np.empty(s, np.float32) for k, s in maker.shapes().items()}
    with Prefetcher(maker, workers) as prefetcher:
        for _ in range(workers + 1):  # warm-up: fill the pipeline
            prefetcher.next()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            batch = prefetcher.next()
            for k in top:  # what the Caffe layer does: copy into its top blobs
                top[k][...] = batch[k]
            n += 1
        elapsed = time.perf_counter() - start
    return n * paper.BATCH_SIZE * names.FILES_PER_SAMPLE[modality] / elapsed


def gpu_demand(bench_json: Path) -> dict[str, float]:
    """Decoded images/s the GPU consumes when training each baseline net (Caffe's step)."""
    results = json.loads(bench_json.read_text())["results"]
    demand = {}
    for r in results:
        if r.get("kind") == "caffe" and r.get("net", "").startswith("baseline_") and \
                "step_ms" in r:
            modality = r["net"].split("_", 1)[1]
            demand[modality] = (r["batch"] / (r["step_ms"]["median"] / 1e3)
                                * names.FILES_PER_SAMPLE[modality])
    return demand


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--layer-only", action="store_true",
                   help="only the data-layer rates (no TV-L1 timing, no 1-vs-2 speed-up)")
    p.add_argument("--gpu-bench", type=Path,
                   help="JSON of tools/gpu/bench_caffe_vs_pytorch.py: compare with the GPU's rate")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_data_"))
    # Before any OpenCV call: extract_all forks its workers, and a child forked after OpenCV
    # started its thread pool hangs in its first parallel call.
    cv2.setNumThreads(1)
    width, height = paper.FRAME_SIZE
    print(f"cores available: {len(os.sched_getaffinity(0))}; OpenCV {cv2.__version__}; "
          f"frames {width}x{height}; input {paper.INPUT_SIZE}; batch {paper.BATCH_SIZE}",
          flush=True)
    videos = synthetic.generate(work / "syn", num_classes=2, clips_per_class=2, num_frames=40,
                                width=width, height=height, seed=0)

    if args.layer_only:
        frames_root = work / "frames"
        start = time.perf_counter()
        extract.extract_all(videos, frames_root, extract.ExtractOptions(flow="farneback"),
                            args.workers, progress=False)
        print(f"extraction (farneback, 4 videos x 40 frames, {args.workers} workers): "
              f"{time.perf_counter() - start:.2f} s", flush=True)
    else:
        rates = flow_rates(videos, {"tvl1": 4, "tvl1-fast": 12, "farneback": 30})
        for method, rate in rates.items():
            print(f"flow {method:10s} {rate:7.2f} frames/s (1 process, {width}x{height})")

        t1, t2 = extraction_speedup(videos, work, "farneback")
        print(f"extraction (farneback, 4 videos x 40 frames): 1 worker {t1:.2f} s, "
              f"2 workers {t2:.2f} s, speed-up {t1 / t2:.2f}x (target >= 1.8x)")
        frames_root = work / "speedup_farneback_1"

    report = lists.build_lists("synthetic", work / "syn" / "splits", frames_root,
                               work / "lists", 1)
    assert not report.problems, report.problems
    demand = gpu_demand(args.gpu_bench) if args.gpu_bench else {}
    for modality, prefix, flags in (("rgb", "img_", cv2.IMREAD_COLOR),
                                    ("flow", "flow_", cv2.IMREAD_GRAYSCALE)):
        paths = sorted(str(f) for f in frames_root.glob(f"*/{prefix}*.jpg"))
        raw = raw_decode_rate(paths, args.workers, args.seconds, flags)
        layer = layer_rate(work / "lists" / f"{modality}_train_split1.txt", frames_root,
                           modality, args.workers, args.seconds)
        print(f"{modality:4s} JPEG decode {raw:8.1f} img/s; data layer {layer:8.1f} img/s "
              f"({layer / raw:.0%} of raw; target >= 90%) with {args.workers} workers",
              flush=True)
        if modality in demand:
            need = demand[modality]
            print(f"{modality:4s} GPU training step (Caffe baseline_{modality}) consumes "
                  f"{need:8.1f} img/s: the layer with {args.workers} workers "
                  f"{'keeps up' if layer >= need else 'does NOT keep up'} "
                  f"({layer / need:.1f}x)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
