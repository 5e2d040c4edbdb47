#!/usr/bin/env python
"""`make claims`: every row of Tables 1 and 2 in miniature, over seeds (co2fi_tools.claims)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from co2fi_tools.claims import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
