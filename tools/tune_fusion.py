#!/usr/bin/env python3
"""Choose the fusion stage's schedule on a validation split (co2fi_tools.tuning)."""

import os
import sys
from pathlib import Path

# glog reads this when pycaffe loads, so before the imports below
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools.tuning import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
