#!/usr/bin/env python
"""Thin driver: see co2fi_tools.evaluation.predict."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from co2fi_tools.evaluation.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
