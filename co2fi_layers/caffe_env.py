"""Where our Caffe build lives, and the environment the `caffe` command-line tool needs.

The `caffe` binary embeds its own Python interpreter and ignores virtual environments: without
PYTHONPATH naming pycaffe, this repo and the venv's site-packages, its Python layers import
another numpy (or none) and the process aborts.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class CaffeNotBuiltError(RuntimeError):
    """pycaffe is not importable: `make caffe` has not run in this environment."""


def pycaffe_dir() -> Path:
    """The folder that holds the `caffe` Python package of our build."""
    try:
        import caffe
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise CaffeNotBuiltError(
            f"cannot import pycaffe ({exc}); run `make caffe` (tools/install_caffe.sh) first"
        ) from exc
    return Path(caffe.__file__).resolve().parent.parent


def caffe_prefix() -> Path:
    """The install prefix of our build (holds bin/caffe, lib/, python/)."""
    return pycaffe_dir().parent


def caffe_binary() -> Path:
    """Path of the `caffe` command-line tool of our build."""
    binary = caffe_prefix() / "bin" / "caffe"
    if not binary.exists():
        raise CaffeNotBuiltError(
            f"the caffe tool is missing: {binary} (rebuild with `make caffe`)")
    return binary


def caffe_tool_env(extra_paths: list[str] | None = None) -> dict[str, str]:
    """os.environ plus what `caffe train` needs to find pycaffe, our layers and the venv numpy."""
    paths = [str(pycaffe_dir()), str(REPO_ROOT)]
    paths += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    paths += list(extra_paths or [])
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
    # glog's INFO lines to stderr: training logs are parsed (progress, losses, curves).
    env["GLOG_logtostderr"] = "1"
    env["GLOG_minloglevel"] = "0"
    env.setdefault("PYTHONHASHSEED", "0")
    env["CO2FI_PYTHON"] = sys.executable
    return env
