#!/usr/bin/env python3
"""Plot loss heads, learning rate and accuracy from a Caffe training log (glog output).

    .venv/bin/python tools/plot_curves.py runs/<run>/train.log --out runs/<run>/curves
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools.caffe_log import parse_log  # noqa: E402
from co2fi_tools.plots import plot_training_curves  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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


if __name__ == "__main__":
    sys.exit(main())
