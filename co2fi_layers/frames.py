"""Lists and frame files for the data layers (no Caffe here).

A list line is TSN's ``<frame_dir> <num_frames> <label>`` or mmaction2's offset form
``<frame_dir> <offset> <num_frames> <label>`` (``with_offset``); ``frame_dir`` is relative to the
layer's ``root`` or absolute (docs/DATA.md). File names come from a
:class:`data_prep.rawframes.FrameLayout`. Frames are decoded with OpenCV: images as BGR, flow
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
    offset: int = 0  # mmaction2's with_offset lists: the video starts at file start_index+offset


#: List formats: "tsn" ``dir num_frames label``, "offset" ``dir offset num_frames label``,
#: "auto": "offset" when every line has four fields ending in three integers, else "tsn".
LIST_FORMATS = ("auto", "tsn", "offset")
_EXPECTED = {"tsn": "'<frame_dir> <num_frames> <label>'",
             "offset": "'<frame_dir> <offset> <num_frames> <label>'"}


def detect_list_format(lines: list[str]) -> str:
    rows = [line.split() for line in lines if line.strip()]
    if rows and all(len(r) == 4 and all(f.isdigit() for f in r[1:]) for r in rows):
        return "offset"
    return "tsn"


def read_list(list_path: str | os.PathLike[str], root: str | os.PathLike[str] = "",
              list_format: str = "auto") -> list[VideoRecord]:
    """Parses a TSN or mmaction2 list; DataError names the file and line of a malformed one."""
    list_path = os.fspath(list_path)
    if list_format not in LIST_FORMATS:
        raise ValueError(f"list_format must be one of {LIST_FORMATS}, got {list_format!r}")
    records = []
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise DataError(list_path, "list file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(list_path, f"unreadable list file ({exc})") from None
    if list_format == "auto":
        list_format = detect_list_format(lines)
    numbers = 3 if list_format == "offset" else 2
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.strip().rsplit(maxsplit=numbers)  # frame_dir may contain spaces
        if len(fields) != numbers + 1 or not all(f.isdigit() for f in fields[1:]):
            raise DataError(list_path, f"malformed line {line!r}: expected "
                                       f"{_EXPECTED[list_format]}", n)
        offset = int(fields[1]) if list_format == "offset" else 0
        num_frames, label = int(fields[-2]), int(fields[-1])
        if num_frames < 1:
            raise DataError(list_path, f"video {fields[0]!r} has no frames", n)
        records.append(VideoRecord(os.path.join(os.fspath(root), fields[0]), num_frames, label,
                                   offset))
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


def load_image(frame_dir: str, index: int,
               layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
               offset: int = 0) -> np.ndarray:
    """RGB frame ``index`` (1-based) as H x W x 3 BGR uint8."""
    return _decode(os.path.join(frame_dir, layout.img(index, offset)), cv2.IMREAD_COLOR)


def load_flow_planes(frame_dir: str, indices: np.ndarray,
                     layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
                     offset: int = 0) -> list[np.ndarray]:
    """Flow frames ``indices`` (1-based) as 2L greyscale planes x1, y1, x2, y2, ... (TSN)."""
    planes = []
    for index in indices:
        index = int(index)
        planes.append(_decode(os.path.join(frame_dir, layout.flow_x(index, offset)),
                              cv2.IMREAD_GRAYSCALE))
        planes.append(_decode(os.path.join(frame_dir, layout.flow_y(index, offset)),
                              cv2.IMREAD_GRAYSCALE))
    return planes


def load_flow_stack(frame_dir: str, indices: np.ndarray,
                    layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
                    offset: int = 0) -> np.ndarray:
    """Flow frames ``indices`` (1-based) as H x W x 2L uint8, channels x1, y1, x2, y2, ..."""
    return cv2.merge(load_flow_planes(frame_dir, indices, layout, offset))
