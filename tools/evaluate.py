#!/usr/bin/env python
"""Thin driver: see co2fi_tools.evaluation.evaluate."""

import os
import sys
from pathlib import Path

# Caffe's INFO lines (e.g. every train-only layer a deploy net ignores) off the console; glog
# reads this when pycaffe loads, so before the imports below.
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from co2fi_tools.evaluation.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
