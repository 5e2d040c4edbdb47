"""PNG plots: training curves from a parsed Caffe log, and confusion matrices (Agg backend)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from co2fi_tools.reporting.caffe_log import TrainingLog, parse_log, sorted_series  # noqa: E402
from co2fi_tools.safe_io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    try:
        with atomic_path(path, suffix=path.suffix or ".png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _is_accuracy(name: str) -> bool:
    return "acc" in name.lower()


def _finite(values: Sequence[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def plot_loss_heads(log: TrainingLog, path: Path, title: str = "") -> Path | None:
    """One panel per loss head (raw value; its loss weight in the title), plus the total."""
    panels: list[tuple[str, dict[int, float]]] = []
    if log.loss:
        panels.append(("total loss (smoothed, weighted sum)", log.loss))
    for name in log.loss_heads():
        panels.append((f"{name} (loss weight {log.train_loss_weight[name]:g})", log.train[name]))
    for name, series in log.test.items():
        if log.test_loss_weight.get(name) or name.startswith("test_loss"):
            panels.append((f"test: {name}", series))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False,
                             layout="constrained")
    for ax, (label, series) in zip(axes.flat, panels, strict=False):
        iters, values = sorted_series(series)
        ax.plot(iters, values, lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        for restart in log.restarts:
            ax.axvline(restart, color="grey", ls=":", lw=0.8)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_learning_rate(log: TrainingLog, path: Path, title: str = "") -> Path | None:
    if not log.lr:
        return None
    iters, values = sorted_series(log.lr)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.step(iters, values, where="post")
    if all(v > 0 for v in values):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    ax.set_title(title or "learning rate")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_accuracy(log: TrainingLog, path: Path, title: str = "") -> Path | None:
    """Every output whose name contains 'acc', test and train, in one axes."""
    curves = [(f"test: {n}", s) for n, s in log.test.items() if _is_accuracy(n)]
    curves += [(f"train: {n}", s) for n, s in log.train.items() if _is_accuracy(n)]
    curves = [(label, s) for label, s in curves if _finite(list(s.values()))]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, series in curves:
        iters, values = sorted_series(series)
        ax.plot(iters, values, marker="o" if label.startswith("test") else None, ms=3, lw=1,
                label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title or "accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_training_curves(log: TrainingLog, out_dir: str | os.PathLike,
                         title: str = "") -> list[Path]:
    """Writes loss_heads.png, lr.png and accuracy.png (those with data) into ``out_dir``."""
    out = Path(out_dir)
    written = [plot_loss_heads(log, out / "loss_heads.png", title),
               plot_learning_rate(log, out / "lr.png", title),
               plot_accuracy(log, out / "accuracy.png", title)]
    return [p for p in written if p is not None]


#: Confusion matrix PNG: inches a class (so that 101 UCF101 names stay readable), the tick
#: label font size (points) and the class count up to which cell values are printed.
CM_INCH_PER_CLASS = 0.22
CM_FONT_PT = 7
CM_VALUES_UP_TO = 20


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str] | None = None,
                     title: str = "", normalise: bool = True):
    """sklearn's ConfusionMatrixDisplay, rows true class, columns predicted (rows normalised
    to recall when ``normalise``), sized so that every class name is a readable tick label."""
    from sklearn.metrics import ConfusionMatrixDisplay

    confusion = np.asarray(confusion, dtype=np.float64)
    n = confusion.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}-class confusion matrix")
    shown = confusion
    if normalise:
        support = confusion.sum(axis=1, keepdims=True)
        shown = np.divide(confusion, support, out=np.zeros_like(confusion), where=support > 0)
    label_room = 0.09 * max(len(name) for name in names) + 1.5  # inches for the names
    side = max(5.0, CM_INCH_PER_CLASS * n) + label_room
    fig, ax = plt.subplots(figsize=(side, side))
    display = ConfusionMatrixDisplay(shown, display_labels=names)
    display.plot(ax=ax, cmap="Blues", colorbar=True, include_values=n <= CM_VALUES_UP_TO,
                 values_format=".2f" if normalise else "d", xticks_rotation="vertical",
                 im_kw={"vmin": 0, "vmax": 1} if normalise else None)
    ax.tick_params(labelsize=CM_FONT_PT if n > CM_VALUES_UP_TO else 9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(confusion: np.ndarray, path: str | os.PathLike,
                          class_names: Sequence[str] | None = None, title: str = "",
                          normalise: bool = True) -> Path:
    """The confusion matrix PNG (:func:`confusion_figure`)."""
    return _save(confusion_figure(confusion, class_names, title, normalise), Path(path))


# --- command line (tools/plot_curves.py) ---

CLI_USAGE = r"""Plot loss heads, learning rate and accuracy from a Caffe training log (glog output).

    .venv/bin/python tools/plot_curves.py runs/<run>/train.log --out runs/<run>/curves
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=CLI_USAGE.splitlines()[0],
                                     epilog=CLI_USAGE.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="Caffe training log, e.g. <run>/train.log")
    parser.add_argument("--out", help="output folder (default: <log folder>/curves)")
    parser.add_argument("--title", default="", help="figure title (default: the run folder)")
    parser.add_argument("--json", help="also write the parsed series as JSON here")
    args = parser.parse_args(argv)
    log_path = Path(args.log)
    try:
        log = parse_log(log_path)
    except (OSError, ValueError) as err:
        print(f"plot_curves: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else log_path.parent / "curves"
    written = plot_training_curves(log, out, args.title or log_path.parent.name)
    if args.json:
        series = {"loss": log.loss, "lr": log.lr, "train": log.train, "test": log.test,
                  "train_loss_weight": log.train_loss_weight, "restarts": log.restarts}
        Path(args.json).write_text(json.dumps(series, indent=1) + "\n", encoding="utf-8")
    print(f"{log_path}: last iteration {log.last_iteration}, loss heads "
          f"{', '.join(log.loss_heads()) or '-'}, test outputs {', '.join(log.test) or '-'}")
    for path in written:
        print(f"wrote {path}")
    return 0

