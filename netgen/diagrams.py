"""``python -m netgen.diagrams``: PNG diagrams of the main nets (small preset) in docs/diagrams/.

Uses pycaffe's caffe.draw (pydot + graphviz ``dot``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

import caffe.draw  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import SMALL  # noqa: E402
from netgen.variants import build  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
#: (variant, phase) pairs drawn: Fig. 3 (train and deploy), the baseline, Fig. 5 (a
#: baseline fusion net; the CO2FI+ASYN one is the same with Fig. 3 towers, too big to read).
DIAGRAMS: tuple[tuple[str, str], ...] = (
    ("baseline_rgb", "deploy"),
    ("co2fi_rgb", "train"),
    ("co2fi_rgb", "deploy"),
    ("baseline_asyn_d5_rgb_centred", "deploy"),
)


def draw(name: str, phase: str, out_dir: Path) -> Path:
    opt = NetOptions(preset=SMALL, num_classes=10, phase=phase, data_source="input")
    net = build(name, opt)
    path = out_dir / f"{name}_{phase}.png"
    caffe.draw.draw_net_to_file(net, str(path), "TB",
                                caffe_pb2.TRAIN if phase == "train" else caffe_pb2.TEST)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netgen.diagrams", description=__doc__)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "diagrams")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, phase in DIAGRAMS:
        print(draw(name, phase, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
