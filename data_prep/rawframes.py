"""TSN "rawframes" layout: file names, counting, the completion marker (docs/DESIGN.md).

A video's folder ``<frames_root>/<video_id>/`` holds ``img_%05d.jpg`` (1-based, one per decoded
frame) and ``flow_x_%05d.jpg`` / ``flow_y_%05d.jpg``; flow frame i is the flow from frame i to
frame i + 1, so F frames give F - 1 flow frames. ``.done`` is written last, atomically, and
holds the counts as JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from data_prep.errors import DataError

IMG_PREFIX = "img_"
FLOW_X_PREFIX = "flow_x_"
FLOW_Y_PREFIX = "flow_y_"
DONE_MARKER = ".done"


def img_name(index: int) -> str:
    return f"{IMG_PREFIX}{index:05d}.jpg"


def flow_x_name(index: int) -> str:
    return f"{FLOW_X_PREFIX}{index:05d}.jpg"


def flow_y_name(index: int) -> str:
    return f"{FLOW_Y_PREFIX}{index:05d}.jpg"


def video_id(video_path: str | os.PathLike[str]) -> str:
    """The folder name of a video's frames: its file name without extension."""
    return Path(video_path).stem


@dataclass(frozen=True)
class FrameCounts:
    rgb: int
    flow_x: int
    flow_y: int


def count_frames(frame_dir: str | os.PathLike[str]) -> FrameCounts:
    """Counts img_/flow_x_/flow_y_ JPEGs in a folder (raises DataError if it does not exist)."""
    rgb = flow_x = flow_y = 0
    try:
        entries = os.scandir(frame_dir)
    except OSError as exc:
        raise DataError(frame_dir, f"frame folder not readable ({exc.strerror})") from None
    with entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(".jpg"):
                continue
            if name.startswith(IMG_PREFIX):
                rgb += 1
            elif name.startswith(FLOW_X_PREFIX):
                flow_x += 1
            elif name.startswith(FLOW_Y_PREFIX):
                flow_y += 1
    return FrameCounts(rgb, flow_x, flow_y)


def is_done(frame_dir: str | os.PathLike[str]) -> bool:
    return os.path.isfile(os.path.join(frame_dir, DONE_MARKER))


def read_done(frame_dir: str | os.PathLike[str]) -> dict:
    path = os.path.join(frame_dir, DONE_MARKER)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(path, "no completion marker: extraction incomplete") from None
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable completion marker ({exc})") from None


def write_done(frame_dir: str | os.PathLike[str], info: dict) -> None:
    """Writes the completion marker atomically (temp file, then rename)."""
    final = os.path.join(frame_dir, DONE_MARKER)
    tmp = f"{final}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
