"""From score files to accuracies, a results row, a confusion matrix and per-class tables.

A selection ``path[:stream[,stream...]]`` names streams of one score file (all of them when no
stream is given). Every selected stream is one model in the fusion (fusion.fuse): its scores are
summed over the periods, then the models are summed (optionally weighted).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from co2fi_tools.evaluation import classification, fusion
from co2fi_tools.evaluation.fusion import FUSION_MODES
from co2fi_tools.evaluation.scores import (
    ScoreFile,
    load_scores,
    per_class_csv,
    per_class_markdown,
)
from co2fi_tools.reporting.compare import RESULT_STREAMS, ResultRow, build_comparison, upsert_result
from co2fi_tools.reporting.plots import plot_confusion_matrix
from co2fi_tools.safe_io import atomic_write_text


@dataclass(frozen=True)
class Selection:
    path: str
    streams: tuple[str, ...]  # empty: every stream of the file


def parse_selection(text: str) -> Selection:
    path, _, streams = text.partition(":")
    return Selection(path, tuple(s for s in streams.split(",") if s))


@dataclass
class Evaluation:
    accuracy: classification.Accuracy
    video_scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    dataset: str
    split: str
    models: list[str]  # "<file>:<stream>"


def _check_same_videos(reference: ScoreFile, other: ScoreFile) -> None:
    for key in ("dataset", "split", "video_ids", "class_names"):
        if getattr(reference, key) != getattr(other, key):
            raise ValueError(f"{other.path}: {key} differ from {reference.path}; "
                             f"score files to fuse must cover the same videos and classes")
    if not np.array_equal(reference.labels, other.labels):
        raise ValueError(f"{other.path}: labels differ from {reference.path}")


def evaluate(selections: Sequence[Selection], weights: Sequence[float] | None = None,
             mode: str = "raw") -> Evaluation:
    files = [load_scores(s.path) for s in selections]
    for other in files[1:]:
        _check_same_videos(files[0], other)
    models: dict[str, np.ndarray] = {}
    for selection, loaded in zip(selections, files, strict=False):
        for stream in selection.streams or tuple(loaded.scores):
            if stream not in loaded.scores:
                raise ValueError(f"{selection.path}: no stream {stream!r}; "
                                 f"streams are {sorted(loaded.scores)}")
            models[f"{selection.path}:{stream}"] = loaded.scores[stream]
    if weights is not None and len(weights) != len(models):
        raise ValueError(f"{len(weights)} weights for {len(models)} models: {list(models)}")
    weight_of = dict(zip(models, weights, strict=False)) if weights is not None else None
    fused = fusion.fuse(models, weight_of, mode)
    reference = files[0]
    try:
        accuracy = classification.evaluate(fused, reference.labels)
    except ValueError as exc:  # labels beyond the classes: name the file they came from
        raise ValueError(f"{reference.path}: {exc}") from None
    return Evaluation(accuracy, fused, reference.labels,
                      reference.class_names, reference.dataset, reference.split, list(models))


def write_artifacts(evaluation: Evaluation, out_dir: str | os.PathLike, title: str) -> list[Path]:
    """confusion.png, per_class.md and per_class.csv in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    confusion = classification.confusion_matrix(evaluation.video_scores, evaluation.labels)
    rows = classification.per_class_table(evaluation.video_scores, evaluation.labels,
                                   evaluation.class_names)
    png = plot_confusion_matrix(confusion, out / "confusion.png", evaluation.class_names, title)
    atomic_write_text(out / "per_class.md", per_class_markdown(rows, title))
    atomic_write_text(out / "per_class.csv", per_class_csv(rows))
    return [png, out / "per_class.md", out / "per_class.csv"]


def record_result(evaluation: Evaluation, results_path: str | os.PathLike, method: str,
                  stream: str, table: int | None = None) -> ResultRow:
    row = ResultRow(method=method, dataset=evaluation.dataset, split=evaluation.split,
                    stream=stream, accuracy=evaluation.accuracy.top1,
                    mean_class_accuracy=evaluation.accuracy.mean_class,
                    top5=evaluation.accuracy.top5,
                    source=" + ".join(evaluation.models), table=table,
                    num_classes=len(evaluation.class_names))
    build_comparison([row], source=os.fspath(results_path))  # unknown method: error, no write
    upsert_result(results_path, row)
    return row


# --- command line (tools/evaluate_scores.py) ---

CLI_USAGE = r"""Accuracy of saved score files (one stream or several fused); optionally record it.

    .venv/bin/python tools/evaluate_scores.py runs/a/scores.h5:appearance_centred \
        runs/b/scores.h5:motion_centred --method "CO2FI+ASYN (Δ = 5)" --stream two-stream \
        --results runs/results.json --out-dir runs/eval/co2fi_asyn
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=CLI_USAGE.splitlines()[0],
                                     epilog=CLI_USAGE.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", nargs="+", help="score file, optionally :stream[,stream]")
    parser.add_argument("--weights", type=float, nargs="+", help="one weight per model")
    parser.add_argument("--fusion", choices=FUSION_MODES, default="raw",
                        help="how period and model scores are combined (default: raw sums)")
    parser.add_argument("--method", help="paper method name, to record in --results")
    parser.add_argument("--stream", choices=RESULT_STREAMS, help="stream label for --results")
    parser.add_argument("--table", type=int, choices=[1, 2, 3])
    parser.add_argument("--results", help="results file (.json/.csv) to add this result to")
    parser.add_argument("--out-dir", help="write confusion.png and per-class tables here")
    args = parser.parse_args(argv)
    if args.results and not (args.method and args.stream):
        parser.error("--results needs --method and --stream")
    try:
        evaluation = evaluate([parse_selection(s) for s in args.scores], args.weights,
                                 args.fusion)
        title = args.method or " + ".join(evaluation.models)
        if args.results:
            record_result(evaluation, args.results, args.method, args.stream, args.table)
        if args.out_dir:
            for path in write_artifacts(evaluation, args.out_dir, title):
                print(f"wrote {path}")
    except (OSError, ValueError) as err:
        print(f"evaluate_scores: {err}", file=sys.stderr)
        return 2
    acc = evaluation.accuracy
    print(f"{evaluation.dataset} split {evaluation.split}, {acc.videos} videos, "
          f"{len(evaluation.models)} model(s), fusion {args.fusion}: "
          f"top-1 {100 * acc.top1:.2f}%, mean class accuracy {100 * acc.mean_class:.2f}%, "
          f"top-5 {100 * acc.top5:.2f}%")
    return 0

