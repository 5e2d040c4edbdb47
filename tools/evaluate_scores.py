#!/usr/bin/env python3
r"""Accuracy of saved score files (one stream or several fused); optionally record it.

    .venv/bin/python tools/evaluate_scores.py runs/a/scores.h5:appearance_centred \
        runs/b/scores.h5:motion_centred --method "CO2FI+ASYN (Δ = 5)" --stream two-stream \
        --results runs/results.json --out-dir runs/eval/co2fi_asyn
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools.evaluation.evaluate_scores import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
