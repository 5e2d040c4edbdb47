"""Choose the fusion stage's schedule on a validation split carved from the training videos.

The miniature's data (co2fi_tools.miniature) is carved (data_prep.validation): a quarter of
each class's training videos become the validation videos, the test videos are in neither
list. The towers (Two-stream baseline, CO2FI-complete, each stage as the demo trains it) are
trained once on the rest and evaluated on the validation videos; then every candidate schedule
(netgen.schedule.FusionSchedule) trains the Table 2 fusion rows from those same towers and is
evaluated on the same validation videos, paired with the late fusion of its towers::

    <out>/data/                 the carved dataset folder (frames linked)
    <out>/towers/               the single-stream experiment (runs/, results.json)
    <out>/<candidate>/          one fusion experiment a candidate (runs/, scores/, results.json)
    <out>/tuning.md, tuning.json

Every candidate is judged on the mean, over the fusion rows, of its two-stream mean class
accuracy minus the late fusion of the towers it starts from (both on the validation videos).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from co2fi_tools import miniature
from co2fi_tools.demo import DEMO_FUSION_ITERS, DEMO_ITERS
from co2fi_tools.evaluation.evaluate import evaluate_methods, method_correct
from co2fi_tools.evaluation.paired import paired_difference
from co2fi_tools.pipeline import (
    Experiment,
    claim_output,
    generate_nets,
    log,
    run_experiment,
    run_reporting_errors,
    train_stages,
)
from co2fi_tools.safe_io import FolderLock, atomic_write_text
from co2fi_tools.stages import plan
from data_prep.errors import DataError
from data_prep.validation import carve_validation
from netgen import paper
from netgen.schedule import JOINT, FusionSchedule

#: The fusion rows a candidate is judged on, and the single-stream rows their towers are.
FUSION_METHODS = ("Baseline+ASYN (Δ = 5)", "CO2FI+ASYN (Δ = 5)")
TOWER_OF = {"Baseline+ASYN (Δ = 5)": "Two-stream baseline",
            "CO2FI+ASYN (Δ = 5)": "CO2FI-complete"}
#: The candidates tried (docs/MINIATURE.md, "the fusion schedule", has what each gave).
CANDIDATES: dict[str, FusionSchedule] = {
    "one_phase": FusionSchedule(JOINT),
    "warm10_joint1_towers0.1": FusionSchedule(warmup_lr_factor=10, joint_lr_factor=1,
                                              tower_lr_mult=0.1),
    "warm10_joint0.1_towers0.1": FusionSchedule(warmup_lr_factor=10, joint_lr_factor=0.1,
                                                tower_lr_mult=0.1),
    "warm10_joint1_towers0.2": FusionSchedule(warmup_lr_factor=10, joint_lr_factor=1,
                                              tower_lr_mult=0.2),
    "warm30_joint1_towers0.1": FusionSchedule(warmup_lr_factor=30, joint_lr_factor=1,
                                              tower_lr_mult=0.1),
    "warm10x0.75_joint1_towers0.1": FusionSchedule(warmup_fraction=0.75, warmup_lr_factor=10,
                                                   joint_lr_factor=1, tower_lr_mult=0.1),
    # added 2026-12-07: the claims budget's joint phase raised the baseline towers' losses
    "warm10x0.75_joint0.1_towers0.1": FusionSchedule(warmup_fraction=0.75, warmup_lr_factor=10,
                                                     joint_lr_factor=0.1, tower_lr_mult=0.1),
    # added 2026-12-07 (session 6): the seed-0 claims run's baseline joint phases raised tower
    # and head losses alike; the towers' gradient there was 7-18x a single-stream net's
    "warm10x0.75_joint1_towers0.01": FusionSchedule(warmup_fraction=0.75, warmup_lr_factor=10,
                                                    joint_lr_factor=1, tower_lr_mult=0.01),
    "warm10x0.75_joint1_towers0": FusionSchedule(warmup_fraction=0.75, warmup_lr_factor=10,
                                                 joint_lr_factor=1, tower_lr_mult=0.0),
}


def tune(args: argparse.Namespace) -> dict:
    out = args.out
    mini, pre = miniature.from_arguments(args)
    changes = miniature.preset_changes(args)
    with FolderLock(out, "tuning"):
        claim_output(out, {"miniature": asdict(mini), "max_iter": args.max_iter,
                           "fusion_iters": args.fusion_iters, "seed": args.seed,
                           "fraction": args.fraction, "dropout": args.dropout,
                           # recorded only when set: folders made before the options stay valid
                           **{k: v for k, v in changes.items() if k != "dropout"},
                           **miniature.stage_rates(args)})
        imagenet = miniature.prepare(mini, pre, out / "source", args.pretrain_cache,
                                     args.workers, args.gpu, args.backend, changes)
        try:
            data = carve_validation(out / "source", out / "data", fraction=args.fraction,
                                    seed=args.seed,
                                    grouper_fraction=paper.GROUPER_DATA_FRACTION)
        except DataError as exc:
            raise ValueError(str(exc)) from None
        common = dict(dataset="synthetic", data_root=data, num_classes=mini.classes,
                      preset="small", backend=args.backend, gpu=args.gpu, seed=args.seed,
                      max_iter=args.max_iter, imagenet=imagenet, preset_changes=changes,
                      **miniature.stage_rates(args))
        towers = Experiment(out=out / "towers", methods=tuple(TOWER_OF.values()),
                            **common)  # type: ignore[arg-type]
        log("towers: the single-stream stages on the carved training videos")
        run_experiment(towers)
        trained = {s.variant: towers.run_dir(s.variant) / "final.caffemodel"
                   for s in plan(towers.methods, towers.settings)}
        rows = []
        for name in args.candidates:
            exp = Experiment(out=out / name, methods=FUSION_METHODS,
                             fusion_max_iter=args.fusion_iters,
                             fusion_schedule=CANDIDATES[name], **common)  # type: ignore[arg-type]
            log(f"candidate {name}: {CANDIDATES[name]}")
            t0 = time.time()
            with FolderLock(exp.out, "experiment"):
                stages = plan(exp.methods, exp.settings)
                generate_nets(exp, stages)
                finals = train_stages(exp, stages, trained)
                evaluate_methods(exp, finals, exp.out / "results.json")
            rows.append(_row(name, exp, towers, time.time() - t0))
            write_report(out, rows, towers)
    return {"rows": rows}


def _row(name: str, exp: Experiment, towers: Experiment, seconds: float) -> dict:
    row: dict = {"candidate": name, "schedule": asdict(exp.fusion_schedule),
                 "seconds": round(seconds), "methods": {}}
    gains = []
    for method in exp.methods:
        fused, labels = method_correct(exp.out, method, "two-stream", exp.settings)
        late, _ = method_correct(towers.out, TOWER_OF[method], "two-stream")
        diff = paired_difference(fused, late, labels)
        gains.append(diff.mean)
        row["methods"][method] = {"accuracy": _mean_class(fused, labels),
                                  "late_fusion": _mean_class(late, labels),
                                  "gain": diff.mean, "se": diff.se,
                                  "interval": list(diff.interval)}
    row["mean_gain"] = float(np.mean(gains))
    return row


def _mean_class(correct: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([correct[labels == c].mean() for c in np.unique(labels)]))


def write_report(out: Path, rows: list[dict], towers: Experiment) -> str:
    lines = ["# Fusion stage schedule on the validation split", "",
             f"Validation videos: `{towers.data_root}` (carved from the training videos); towers "
             f"`{towers.out}`. Mean class accuracy (%) of the two-stream prediction; gain = "
             "paired difference from the late fusion of the towers (per-video, 95 % bootstrap "
             "interval over videos).", "",
             "| candidate | " + " | ".join(f"{m} (late fusion) | gain" for m in FUSION_METHODS)
             + " | mean gain | time (s) |",
             "|---|" + "---:|---:|" * len(FUSION_METHODS) + "---:|---:|"]
    for r in rows:
        cells = []
        for m in FUSION_METHODS:
            x = r["methods"][m]
            cells.append(f"{100 * x['accuracy']:.1f} ({100 * x['late_fusion']:.1f}) | "
                         f"{100 * x['gain']:+.1f} [{100 * x['interval'][0]:+.1f}, "
                         f"{100 * x['interval'][1]:+.1f}]")
        lines.append(f"| {r['candidate']} | " + " | ".join(cells)
                     + f" | {100 * r['mean_gain']:+.1f} | {r['seconds']} |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "tuning.md", text)
    atomic_write_text(out / "tuning.json", json.dumps(rows, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    ap = argparse.ArgumentParser(prog="tools/tune_fusion.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/tune-fusion", type=lambda p: Path(p).absolute())
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--max-iter", type=int,
                    help=f"iterations of the towers' stages (default: the demo's {DEMO_ITERS})")
    ap.add_argument("--fusion-iters", type=int,
                    help="iterations of a fusion stage, both phases (default: the demo's "
                         f"{DEMO_FUSION_ITERS})")
    ap.add_argument("--fraction", type=float, default=0.25,
                    help="share of each class's training videos held out (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    miniature.add_arguments(ap)
    args = ap.parse_args(argv)
    if not 0 < args.fraction < 1:
        ap.error(f"--fraction must lie in (0, 1), not {args.fraction}")
    miniature.resolve_sizes(args, DEMO_ITERS, DEMO_FUSION_ITERS, ap=ap)
    code, summary = run_reporting_errors("tune_fusion", lambda: tune(args))
    if code:
        return code
    print((args.out / "tuning.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())



