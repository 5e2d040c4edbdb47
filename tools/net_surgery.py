#!/usr/bin/env python3
r"""Initialise a net from ImageNet caffemodels (VGG-16, CNN_M_2048); inspect them.

    .venv/bin/python tools/net_surgery.py init --net prototxt/<preset>/<dataset>/deploy.prototxt \
        --vgg16 VGG_ILSVRC_16_layers.caffemodel --cnn-m CNN_M_2048.caffemodel --out init.caffemodel
    .venv/bin/python tools/net_surgery.py inspect VGG_ILSVRC_16_layers.caffemodel
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools.weights.net_surgery import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
