"""Rawframes layouts: file names, counting, the completion marker (docs/DATA.md).

Ours (TSN's): a video's folder ``<frames_root>/<video_id>/`` holds ``img_%05d.jpg`` (1-based, one
per decoded frame) and ``flow_x_%05d.jpg`` / ``flow_y_%05d.jpg``; flow frame i is the flow from
frame i to frame i + 1, so F frames give F - 1 flow frames. ``.done`` is written last,
atomically, and holds the counts as JSON.

Rawframes of other tools are read as they are through a :class:`FrameLayout`: file-name
templates of the frames and both flow planes (``str.format`` with the file's index) and the
index of the first file (``start_index``, 0 or 1). Presets: ``tsn`` (TSN's build_of.py /
dense_flow, also what mmaction2's build_rawframes.py writes with denseflow) and ``mmaction2``
(the ``filename_tmpl`` of mmaction2's flow configs, ``{}_{:05d}.jpg`` -> ``x_00001.jpg``).
Everywhere else in co2fi a frame index is 1-based; :meth:`FrameLayout.file_index` maps it to
the file's number.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from co2fi_tools.safe_io import atomic_write_text
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


def _template_pattern(template: str, what: str = "template") -> re.Pattern[str]:
    """The regex of the file names a template makes; ValueError unless it has exactly one
    integer field, e.g. ``img_{:05d}.jpg``."""
    try:
        parts = list(string.Formatter().parse(template))
        fields = [p for p in parts if p[1] is not None]
        if len(fields) != 1 or fields[0][1] not in ("", "0"):
            raise ValueError
        template.format(1)
    except (ValueError, IndexError, KeyError):
        raise ValueError(f"{what} {template!r}: expected one integer field, e.g. "
                         "'img_{:05d}.jpg'") from None
    at = next(i for i, p in enumerate(parts) if p[1] is not None)
    prefix = "".join(re.escape(p[0]) for p in parts[: at + 1])
    suffix = "".join(re.escape(p[0]) for p in parts[at + 1:])
    return re.compile(prefix + r"\d+" + suffix)


@dataclass(frozen=True)
class FrameLayout:
    """How one tool names the files of a video's folder."""

    img_tmpl: str = "img_{:05d}.jpg"
    flow_x_tmpl: str = "flow_x_{:05d}.jpg"
    flow_y_tmpl: str = "flow_y_{:05d}.jpg"
    start_index: int = 1

    def __post_init__(self) -> None:
        for key in ("img_tmpl", "flow_x_tmpl", "flow_y_tmpl"):
            _template_pattern(getattr(self, key), key)
        if self.start_index not in (0, 1):
            raise ValueError(f"start_index must be 0 or 1, got {self.start_index!r}")
        if len({self.img_tmpl, self.flow_x_tmpl, self.flow_y_tmpl}) != 3:
            raise ValueError("img_tmpl, flow_x_tmpl and flow_y_tmpl must differ")

    def file_index(self, index: int, offset: int = 0) -> int:
        """The number in the file name of frame ``index`` (1-based) of a video whose list line
        gives ``offset`` (mmaction2's ``with_offset`` lists)."""
        return int(index) - 1 + self.start_index + int(offset)

    def img(self, index: int, offset: int = 0) -> str:
        return self.img_tmpl.format(self.file_index(index, offset))

    def flow_x(self, index: int, offset: int = 0) -> str:
        return self.flow_x_tmpl.format(self.file_index(index, offset))

    def flow_y(self, index: int, offset: int = 0) -> str:
        return self.flow_y_tmpl.format(self.file_index(index, offset))

    def to_params(self) -> dict[str, Any]:
        return {"img_tmpl": self.img_tmpl, "flow_x_tmpl": self.flow_x_tmpl,
                "flow_y_tmpl": self.flow_y_tmpl, "start_index": self.start_index}


#: Presets of the tools users extract with (docs/DATA.md has each tool's exact layout).
LAYOUTS: dict[str, FrameLayout] = {
    "tsn": FrameLayout("img_{:05d}.jpg", "flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg", 1),
    "mmaction2": FrameLayout("img_{:05}.jpg", "x_{:05d}.jpg", "y_{:05d}.jpg", 1),
}
DEFAULT_LAYOUT = LAYOUTS["tsn"]
#: param_str / config keys that describe a layout.
LAYOUT_KEYS = ("layout", "img_tmpl", "flow_x_tmpl", "flow_y_tmpl", "start_index")


def layout_from_params(params: Mapping[str, Any]) -> FrameLayout:
    """A layout from ``{"layout": preset, "img_tmpl": ..., "start_index": ...}`` (every key
    optional: the preset, default ``tsn``, then the single keys override it)."""
    name = params.get("layout") or "tsn"
    if name not in LAYOUTS:
        raise ValueError(f"unknown frame layout {name!r}; one of {sorted(LAYOUTS)}")
    fields = LAYOUTS[name].to_params()
    for key in fields:
        if params.get(key) is not None:
            fields[key] = params[key]
    try:
        fields["start_index"] = int(fields["start_index"])
    except (TypeError, ValueError):
        raise ValueError(f"start_index must be 0 or 1, got {fields['start_index']!r}") from None
    return FrameLayout(**fields)


def video_id(video_path: str | os.PathLike[str]) -> str:
    """The folder name of a video's frames: its file name without extension."""
    return Path(video_path).stem


@dataclass(frozen=True)
class FrameCounts:
    rgb: int
    flow_x: int
    flow_y: int


def count_frames(frame_dir: str | os.PathLike[str],
                 layout: FrameLayout = DEFAULT_LAYOUT) -> FrameCounts:
    """Counts the frame and flow files of a folder whose names match the layout's templates
    (raises DataError if the folder does not exist)."""
    patterns = [_template_pattern(t) for t in (layout.img_tmpl, layout.flow_x_tmpl,
                                                layout.flow_y_tmpl)]
    counts = [0, 0, 0]
    try:
        entries = os.scandir(frame_dir)
    except OSError as exc:
        raise DataError(frame_dir, f"frame folder not readable ({exc.strerror})") from None
    with entries:
        for entry in entries:
            for i, pattern in enumerate(patterns):
                if pattern.fullmatch(entry.name):
                    counts[i] += 1
                    break
    return FrameCounts(*counts)


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
    atomic_write_text(os.path.join(frame_dir, DONE_MARKER), json.dumps(info, sort_keys=True))


#: A dataset folder's record of how its frames and lists are read (written by
#: tools/run_experiment.py for --rawframes; read by training and evaluation).
SOURCE_FILE = "source.json"


def read_source_params(data_root: str | os.PathLike[str] | None) -> dict:
    """The data-layer keys (layout, templates, start_index, list_counts) of a dataset folder;
    {} when it has no source.json (our own extraction: TSN names, own counts)."""
    if data_root is None:
        return {}
    path = os.path.join(data_root, SOURCE_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            params = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable ({exc})") from None
    if not isinstance(params, dict):
        raise DataError(path, "expected a JSON object")
    return params


def write_source_params(data_root: str | os.PathLike[str], params: Mapping[str, Any]) -> None:
    atomic_write_text(os.path.join(data_root, SOURCE_FILE),
                      json.dumps(dict(params), indent=1, sort_keys=True) + "\n")


def tree_class_names(entries: Iterable[tuple[str, int]],
                     num_classes: int | None = None) -> list[str] | None:
    """Class names in label order from a level-2 tree (mmaction2's ``<class>/<video>/``): the
    folder above each listed ``(frame_dir, label)``. None unless every entry sits in a class
    folder, each label has one folder and each folder one label, and the labels are all of
    0..N-1 (N: ``num_classes``, else the largest label + 1): a flat tree names no classes."""
    by_label: dict[int, set[str]] = {}
    by_folder: dict[str, set[int]] = {}
    for frame_dir, label in entries:
        parts = [p for p in str(frame_dir).replace("\\", "/").split("/") if p]
        if len(parts) < 2:
            return None
        by_label.setdefault(int(label), set()).add(parts[-2])
        by_folder.setdefault(parts[-2], set()).add(int(label))
    if not by_label:
        return None
    count = num_classes if num_classes is not None else max(by_label) + 1
    if (sorted(by_label) != list(range(count))
            or any(len(v) != 1 for v in (*by_label.values(), *by_folder.values()))):
        return None
    return [next(iter(by_label[i])) for i in range(count)]
