#!/usr/bin/env python3
"""Initialise one of our nets from ImageNet caffemodels (VGG-16, CNN_M_2048); inspect caffemodels.

    .venv/bin/python tools/net_surgery.py init --net prototxt/<preset>/<dataset>/deploy.prototxt \
        --vgg16 VGG_ILSVRC_16_layers.caffemodel --cnn-m CNN_M_2048.caffemodel --out init.caffemodel
    .venv/bin/python tools/net_surgery.py inspect VGG_ILSVRC_16_layers.caffemodel
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools import net_surgery  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="copy ImageNet weights into a net and save a caffemodel")
    init.add_argument("--net", required=True, help="net prototxt (a deploy net is simplest)")
    init.add_argument("--out", required=True, help="caffemodel to write")
    init.add_argument("--vgg16", help="VGG-16 ImageNet caffemodel")
    init.add_argument("--cnn-m", dest="cnn_m", help="CNN_M_2048 ImageNet caffemodel")
    init.add_argument("--allow-skip", nargs="*", default=list(net_surgery.DEFAULT_ALLOWED_SKIP),
                      help="source layers skipped on a shape mismatch (default: fc8)")
    init.add_argument("--no-cross-modality", action="store_true",
                      help="a non-RGB first conv is a shape mismatch instead of TSN's init")
    init.add_argument("--no-bilinear", action="store_true",
                      help="leave Deconvolution weights as the net's filler made them")
    init.add_argument("--phase", choices=["test", "train"], default="test")
    init.add_argument("--report", help="also write the report to this text file")
    inspect = sub.add_parser("inspect", help="list a caffemodel's layers and blob shapes")
    inspect.add_argument("caffemodel")
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            print(net_surgery.describe_caffemodel(args.caffemodel))
            return 0
        report = net_surgery.initialise_net(
            args.net, args.out, vgg16=args.vgg16, cnn_m_2048=args.cnn_m,
            allowed_skip=args.allow_skip, cross_modality=not args.no_cross_modality,
            bilinear=not args.no_bilinear, phase=args.phase)
    except (OSError, ValueError) as err:
        print(f"net_surgery: {err}", file=sys.stderr)
        return 2
    summary = report.summary()
    print(summary)
    print(f"wrote {args.out}")
    if args.report:
        Path(args.report).write_text(summary + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
