#!/usr/bin/env python
"""The README's main job: synthetic videos -> training -> evaluation -> comparison (CPU)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from co2fi_tools.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
