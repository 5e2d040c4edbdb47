#!/usr/bin/env python3
r"""Print our results beside the paper's Tables 1-3 (Markdown; optionally CSV).

    .venv/bin/python tools/compare.py runs/results.json --tables 1 2 \
        --markdown cmp.md --csv cmp.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools.reporting.compare import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
