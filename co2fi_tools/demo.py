"""The README's main job on the embedded synthetic data, on a CPU, in minutes.

synthetic videos -> frames + optical flow -> split lists -> training of the small preset
(two-stream baseline, CO2FI, CO2FI+ASYN with Delta = 5, each stage the paper describes) ->
evaluation (12 periods per test video) -> our numbers beside the paper's tables, and plots.
Every step resumes: run it again and it continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from co2fi_tools.pipeline import (
    Experiment,
    claim_output,
    log,
    run_experiment,
    run_reporting_errors,
)
from co2fi_tools.safe_io import FolderLock
from co2fi_tools.stages import DEMO_METHODS, METHODS

#: Frames are stored with the small preset's input (64) as TSN's 224 is to 256: short side 72.
DEMO_FRAME_SIZE = "96x72"


def prepare_synthetic(root: Path, classes: int, clips: int, frames: int, flow: str,
                      workers: int, seed: int) -> None:
    """Videos, frames + flow and lists under root (data_prep's CLIs, resumable)."""
    from data_prep import extract, lists, synthetic

    if not (root / "splits" / "classInd.txt").exists():
        log(f"making {classes} x {clips} synthetic action videos under {root / 'videos'}")
        rc = synthetic.main([str(root), "--classes", str(classes), "--clips-per-class",
                             str(clips), "--frames", str(frames), "--seed", str(seed)])
        if rc:
            raise SystemExit(f"demo: synthetic video generation failed (exit {rc})")
    frames = lists.frames_root(root)
    log(f"extracting frames and {flow} optical flow into {frames}")
    rc = extract.main([str(root / "videos"), str(frames), "--size", DEMO_FRAME_SIZE,
                       "--flow", flow, "--workers", str(workers)])
    if rc:
        raise SystemExit(f"demo: extraction failed for some videos (exit {rc}); see above")
    rc = lists.main(["synthetic", str(root / "splits"), str(frames), str(lists.lists_dir(root)),
                     "--fraction"])
    if rc:
        raise SystemExit(f"demo: building the lists failed (exit {rc}); see above")


DEMO_REMEDY = "use another --out, or delete it to start over"


def demo_settings(args: argparse.Namespace) -> dict:
    """The demo's settings that change its data and results (its folder's fingerprint)."""
    return {"dataset": "synthetic", "num_classes": args.classes,
            "clips_per_class": args.clips_per_class, "frames": args.frames, "flow": args.flow,
            "seed": args.seed, "max_iter": args.max_iter,
            "fusion_max_iter": args.max_iter or args.fusion_iters, "preset": "small"}


def main(argv: list[str] | None = None) -> int:
    # Caffe's INFO lines go to each run's train.log; the console shows progress only.
    os.environ.setdefault("GLOG_minloglevel", "2")
    ap = argparse.ArgumentParser(prog="tools/demo.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo", help="where everything goes")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--clips-per-class", type=int, default=12)
    ap.add_argument("--frames", type=int, default=64, help="frames a synthetic clip")
    ap.add_argument("--flow", default="tvl1-fast", choices=["tvl1", "tvl1-fast", "farneback"],
                    help="TV-L1 with fewer scales and warps by default: full TV-L1 takes "
                    "about 40 s a synthetic clip on 2 cores")
    ap.add_argument("--methods", nargs="+", default=list(DEMO_METHODS), choices=list(METHODS))
    ap.add_argument("--max-iter", type=int, help="iterations of every stage (default: solver's)")
    ap.add_argument("--fusion-iters", type=int, default=100,
                    help="iterations of the fusion stages, which start from trained towers and "
                         "cost six towers a step (default 100, to keep the demo in minutes)")
    ap.add_argument("--backend", default="pycaffe", choices=["pycaffe", "tool"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from data_prep.splits import read_class_index

    start = time.time()
    out = Path(args.out).expanduser().absolute()  # the user's path, resolved once
    data = out / "data" / "synthetic"
    def demo() -> dict:
        with FolderLock(out, "demo"):
            # before anything is made or reused: a 10-class rerun into a 4-class demo stops here
            claim_output(out, demo_settings(args), DEMO_REMEDY)
            prepare_synthetic(data, args.classes, args.clips_per_class, args.frames, args.flow,
                              args.workers, args.seed)
            exp = Experiment(dataset="synthetic", data_root=data, num_classes=args.classes,
                             out=out, preset="small", methods=tuple(args.methods),
                             backend=args.backend, seed=args.seed, max_iter=args.max_iter,
                             fusion_max_iter=args.max_iter or args.fusion_iters,
                             class_names=list(read_class_index(data / "splits" /
                                                               "classInd.txt")))
            return run_experiment(exp)

    code, summary = run_reporting_errors("demo", demo)
    if code:
        return code
    print()
    print(summary["tables"])
    minutes = (time.time() - start) / 60
    log(f"demo finished in {minutes:.1f} min. Results: {out / 'results.json'}, "
        f"{out / 'comparison.md'}, confusion matrices under {out / 'eval'}, "
        f"training curves under {out / 'plots'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
