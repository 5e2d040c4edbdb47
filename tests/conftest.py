"""Shared pytest setup: the repo root importable, Caffe quiet, matplotlib headless."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


def _caffe_importable() -> bool:
    try:
        import caffe  # noqa: F401
    except ImportError:
        return False
    return True


HAVE_CAFFE = _caffe_importable()
SHARED_SPLITS = REPO_ROOT.parent / "shared" / "data" / "splits"

requires_caffe = pytest.mark.skipif(not HAVE_CAFFE, reason="pycaffe not built (make caffe)")


@pytest.fixture(autouse=True)
def _caffe_cpu_mode():
    if HAVE_CAFFE:
        import caffe

        caffe.set_mode_cpu()
    yield
