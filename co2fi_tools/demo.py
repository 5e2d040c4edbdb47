"""The README's main job: the miniature on a CPU, in minutes.

The miniature's synthetic videos (docs/MINIATURE.md) -> frames + optical flow -> split lists ->
a trunk pretrained once on other synthetic classes (the miniature's ImageNet, cached) ->
training of the small preset (two-stream baseline, CO2FI, CO2FI+ASYN with Delta = 5, each
stage the paper describes) -> evaluation (12 periods per test video) -> our numbers beside the
paper's tables, and plots. One seed of three rows of `make claims`, with shorter stages. Every
step resumes: run it again and it continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from co2fi_tools import miniature
from co2fi_tools.pipeline import (
    Experiment,
    claim_output,
    log,
    run_experiment,
    run_reporting_errors,
)
from co2fi_tools.safe_io import FolderLock
from co2fi_tools.stages import DEMO_METHODS, METHODS

#: Iterations of the demo's single-stream and fusion stages (`make claims`: 1000 and 200).
DEMO_ITERS = 500
DEMO_FUSION_ITERS = 100
DEMO_REMEDY = "use another --out, or delete it to start over"


def demo_settings(args: argparse.Namespace) -> dict:
    """The demo's settings that change its data and results (its folder's fingerprint)."""
    return {"dataset": "synthetic", "design": "miniature", "num_classes": args.classes,
            "clips_per_class": args.clips_per_class, "test_clips": args.test_clips,
            "frames": args.frames, "flow": args.flow,
            "pretrain_iters": args.pretrain_iters, "pretrain_clips": args.pretrain_clips,
            "pretrain_design": args.pretrain_design,
            "dropout": args.dropout, "seed": args.seed, "max_iter": args.max_iter,
            # a folder made before an option has no record of it, and stays valid
            **miniature.flag_sizes(args),
            "fusion_max_iter": args.fusion_iters, "preset": "small",
            **({"fusion_base_lr": args.fusion_lr} if args.fusion_lr is not None else {}),
            **miniature.stage_rates(args),
            "fusion_schedule": asdict(miniature.fusion_schedule(args))}


def main(argv: list[str] | None = None) -> int:
    # Caffe's INFO lines go to each run's train.log; the console shows progress only.
    os.environ.setdefault("GLOG_minloglevel", "2")
    ap = argparse.ArgumentParser(prog="tools/demo.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo", help="where everything goes")
    ap.add_argument("--methods", nargs="+", default=list(DEMO_METHODS), choices=list(METHODS))
    ap.add_argument("--max-iter", type=int,
                    help=f"iterations of every single-stream stage (default {DEMO_ITERS})")
    ap.add_argument("--fusion-iters", type=int,
                    help="iterations of the fusion stages, which start from trained towers and "
                         f"cost six towers a step (default {DEMO_FUSION_ITERS}, or --max-iter "
                         "when that is given and smaller)")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    miniature.add_arguments(ap)
    args = ap.parse_args(argv)
    miniature.resolve_sizes(args, DEMO_ITERS, DEMO_FUSION_ITERS, ap=ap)

    from data_prep.splits import read_class_index

    start = time.time()
    out = Path(args.out).expanduser().absolute()  # the user's path, resolved once
    data = out / "data"
    mini, pre = miniature.from_arguments(args)
    changes = miniature.preset_changes(args)

    def demo() -> dict:
        with FolderLock(out, "demo"):
            # before anything is made or reused: a 10-class rerun into a 4-class demo stops here
            claim_output(out, demo_settings(args), DEMO_REMEDY)
            imagenet = miniature.prepare(mini, pre, data, args.pretrain_cache,
                                         args.workers, args.gpu, args.backend, changes)
            exp = Experiment(dataset="synthetic", data_root=data, num_classes=mini.classes,
                             out=out, preset="small", methods=tuple(args.methods),
                             backend=args.backend, gpu=args.gpu, seed=args.seed,
                             max_iter=args.max_iter, fusion_max_iter=args.fusion_iters,
                             fusion_base_lr=args.fusion_lr,
                             **miniature.stage_rates(args),
                             fusion_schedule=miniature.fusion_schedule(args),
                             imagenet=imagenet, preset_changes=changes,
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
