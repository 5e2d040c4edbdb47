#!/usr/bin/env python3
"""Fault-injection soak of the demo: kills, a full disk, reruns; checks nothing is lost
(co2fi_tools.soak; `make soak`, not in CI)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from co2fi_tools.soak import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
