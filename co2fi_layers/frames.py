"""TSN lists and frame files for the data layers (no Caffe here).

A list line is ``<frame_dir> <num_frames> <label>``; ``frame_dir`` is relative to the layer's
``root`` or absolute (docs/DESIGN.md). Frames are decoded with OpenCV: images as BGR, flow
fields as single-channel greyscale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from data_prep import rawframes
from data_prep.errors import DataError


@dataclass(frozen=True)
class VideoRecord:
    path: str  # frame folder (root joined)
    num_frames: int
    label: int


def read_list(list_path: str | os.PathLike[str], root: str | os.PathLike[str] = "") -> list[
    VideoRecord
]:
    """Parses a TSN list; DataError names the file and line of a malformed one."""
    list_path = os.fspath(list_path)
    records = []
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise DataError(list_path, "list file not found") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.strip().rsplit(maxsplit=2)  # frame_dir may contain spaces
        if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
            raise DataError(
                list_path, f"malformed line {line!r}: expected '<frame_dir> <num_frames> <label>'",
                n)
        if int(fields[1]) < 1:
            raise DataError(list_path, f"video {fields[0]!r} has no frames", n)
        records.append(VideoRecord(os.path.join(os.fspath(root), fields[0]), int(fields[1]),
                                   int(fields[2])))
    if not records:
        raise DataError(list_path, "empty list")
    return records


def _decode(path: str, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(path, "missing frame file") from None
    except OSError as exc:
        raise DataError(path, f"unreadable frame file ({exc.strerror})") from None
    image = cv2.imdecode(data, flags)
    if image is None:
        raise DataError(path, "not a decodable image (corrupt JPEG?)")
    return image


def load_image(frame_dir: str, index: int) -> np.ndarray:
    """RGB frame ``index`` (1-based) as H x W x 3 BGR uint8."""
    return _decode(os.path.join(frame_dir, rawframes.img_name(index)), cv2.IMREAD_COLOR)


def load_flow_planes(frame_dir: str, indices: np.ndarray) -> list[np.ndarray]:
    """Flow frames ``indices`` (1-based) as 2L greyscale planes x1, y1, x2, y2, ... (TSN)."""
    planes = []
    for index in indices:
        index = int(index)
        planes.append(_decode(os.path.join(frame_dir, rawframes.flow_x_name(index)),
                              cv2.IMREAD_GRAYSCALE))
        planes.append(_decode(os.path.join(frame_dir, rawframes.flow_y_name(index)),
                              cv2.IMREAD_GRAYSCALE))
    return planes


def load_flow_stack(frame_dir: str, indices: np.ndarray) -> np.ndarray:
    """Flow frames ``indices`` (1-based) as H x W x 2L uint8, channels x1, y1, x2, y2, ..."""
    return cv2.merge(load_flow_planes(frame_dir, indices))
