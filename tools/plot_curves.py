#!/usr/bin/env python3
r"""Plot loss heads, learning rate and accuracy from a Caffe training log (glog output).

    .venv/bin/python tools/plot_curves.py runs/<run>/train.log --out runs/<run>/curves
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools.reporting.plots import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
