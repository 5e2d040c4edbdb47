"""TSN-style lists ``<frame_dir> <num_frames> <label>`` from split files (data_prep.lists CLI).

Writes ``{rgb,flow}_{train,val}_split<k>.txt`` into ``--out-dir`` and, with ``--fraction``, a
class-stratified subset of the training list ``{rgb,flow}_train_split<k>_frac<1/f>.txt`` (the
grouper's 1/8, paper.GROUPER_DATA_FRACTION). ``num_frames`` is the number of frame files for rgb
lists and of flow-x files for flow lists. Every listed video is checked: its folder exists, is
complete (``.done``, unless ``--no-require-done`` for rawframes made by other tools), and its
counts agree (flow_x = flow_y, and rgb - flow is 1 (ours) or 0 (some TSN tools)).

Rawframes of other tools are listed as they are: ``--layout tsn|mmaction2`` (or the single
templates and ``--start-index``) names their files, and ``--level 2`` (or ``auto``) finds
mmaction2's ``<class>/<video>/`` folders; the list then names ``<class>/<video>``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from co2fi_tools.safe_io import atomic_write_text, os_error_cause
from data_prep import rawframes
from data_prep.errors import DataError
from data_prep.splits import DATASET_READERS, SplitEntry, read_split
from netgen import names, paper

# The files of a dataset folder: netgen.names owns their names (the generated nets' data layers
# name the same paths); here under their data_prep names for the readers of this module.
MODALITIES, SUBSETS = names.MODALITIES, names.SUBSETS
FRAMES_DIR, LISTS_DIR = names.FRAMES_DIR, names.LISTS_DIR
LIST_KEYS, ROOT_KEY = names.LIST_KEYS, names.ROOT_KEY
list_name, list_path, lists_dir = names.list_name, names.list_path, names.lists_dir
frames_root, list_modalities = names.frames_root, names.list_modalities
data_layer_paths = names.data_layer_paths


@dataclass(frozen=True)
class ListItem:
    frame_dir: str
    num_frames: int
    label: int


def list_line(item: ListItem) -> str:
    return f"{item.frame_dir} {item.num_frames} {item.label}"


def check_video(frame_dir: Path, require_done: bool, modalities: Sequence[str],
                layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT) -> dict[str, int]:
    """Frame counts {"rgb": F, "flow": F - 1} of one folder; DataError on any inconsistency."""
    if not frame_dir.is_dir():
        raise DataError(frame_dir, "no frame folder (not extracted?)")
    if require_done and not rawframes.is_done(frame_dir):
        raise DataError(frame_dir, "extraction incomplete: no .done marker")
    counts = rawframes.count_frames(frame_dir, layout)
    img, fx, fy = layout.img_tmpl, layout.flow_x_tmpl, layout.flow_y_tmpl
    if counts.rgb == 0 and "rgb" in modalities:
        raise DataError(frame_dir, f"no frames named like {img}")
    if "flow" in modalities:
        if counts.flow_x != counts.flow_y:
            raise DataError(frame_dir, f"{counts.flow_x} {fx} but {counts.flow_y} {fy} frames")
        if counts.flow_x == 0:
            raise DataError(frame_dir, f"no flow frames named like {fx}")
        if "rgb" in modalities and counts.rgb - counts.flow_x not in (0, 1):
            raise DataError(frame_dir, f"{counts.rgb} {img} frames but {counts.flow_x} flow frames")
    if rawframes.is_done(frame_dir):
        done = rawframes.read_done(frame_dir)
        recorded = (done.get("frames"), done.get("flow_frames"))
        if recorded[0] is not None and recorded[0] != counts.rgb:
            raise DataError(frame_dir, f".done records {recorded[0]} frames, found {counts.rgb}")
        if recorded[1] is not None and recorded[1] != counts.flow_x:
            raise DataError(
                frame_dir, f".done records {recorded[1]} flow frames, found {counts.flow_x}"
            )
    return {"rgb": counts.rgb, "flow": counts.flow_x}


def stratified_subset(
    items: Sequence[ListItem], fraction: float, seed: int = 0
) -> list[ListItem]:
    """About ``fraction`` of each class (at least one video a class), original order kept."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_class[item.label].append(i)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        n = max(1, round(len(members) * fraction))
        keep.extend(rng.choice(members, size=n, replace=False).tolist())
    return [items[i] for i in sorted(keep)]


def fraction_tag(fraction: float) -> str:
    """1/8 -> "frac8"; other fractions by their decimal digits ("frac0.3")."""
    inverse = 1 / fraction
    return f"frac{round(inverse)}" if math.isclose(inverse, round(inverse)) else f"frac{fraction:g}"


LEVELS = ("auto", "1", "2")


def frame_folder(frames_root: Path, video: str, level: str = "auto") -> tuple[Path, str]:
    """(folder, name in the list) of a split entry ``<Class>/<video>.avi``: ``<video>`` in a
    flat tree (level 1: ours, TSN's), ``<Class>/<video>`` in mmaction2's level-2 tree; "auto"
    takes the flat folder when it exists, else the level-2 one."""
    vid = rawframes.video_id(video)
    parts = video.replace("\\", "/").split("/")
    nested = f"{parts[-2]}/{vid}" if len(parts) >= 2 else vid
    if level == "1" or (level == "auto" and (frames_root / vid).is_dir()):
        return frames_root / vid, vid
    if level == "2" or (frames_root / nested).is_dir():
        return frames_root / nested, nested
    return frames_root / vid, vid  # missing either way: named as the flat folder


#: Class names in label order, one a line, written beside the lists (tables and plots show them).
CLASSES_FILE = "classes.txt"


def read_class_names(lists_dir: str | os.PathLike[str]) -> list[str] | None:
    """The names of ``<lists_dir>/classes.txt``, or None when there is none."""
    path = Path(lists_dir) / CLASSES_FILE
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise DataError(path, "no class names")
    return names


def write_class_names(lists_dir: str | os.PathLike[str], names: Sequence[str]) -> Path:
    path = Path(lists_dir) / CLASSES_FILE
    atomic_write_text(path, "".join(f"{n}\n" for n in names))
    return path


@dataclass
class ListReport:
    written: list[Path]
    problems: list[DataError]


def build_lists(
    dataset: str,
    splits_dir: str | os.PathLike[str],
    frames_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    split: int,
    modalities: Sequence[str] = MODALITIES,
    absolute: bool = False,
    require_done: bool = True,
    skip_missing: bool = False,
    fraction: float | None = None,
    seed: int = 0,
    layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
    level: str = "auto",
) -> ListReport:
    """Writes the lists of one split; problems are collected (and the lists not written unless
    ``skip_missing``, in which case the bad videos are left out)."""
    parsed = read_split(dataset, splits_dir, split)
    frames_root = Path(frames_root)
    out_dir = Path(out_dir)
    problems: list[DataError] = []

    def items_of(entries: Sequence[SplitEntry]) -> dict[str, list[ListItem]]:
        out: dict[str, list[ListItem]] = {m: [] for m in modalities}
        for entry in entries:
            folder, vid = frame_folder(frames_root, entry.video, str(level))
            try:
                counts = check_video(folder, require_done, modalities, layout)
            except DataError as exc:
                problems.append(exc)
                continue
            name = str(folder.resolve()) if absolute else vid
            for m in modalities:
                out[m].append(ListItem(name, counts[m], entry.label))
        return out

    train, val = items_of(parsed.train), items_of(parsed.test)
    written: list[Path] = []
    if problems and not skip_missing:
        return ListReport(written, problems)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "output folder is a file")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(out_dir, f"cannot create output folder: {os_error_cause(exc)}") from None
    outputs = {}
    for m in modalities:
        outputs[list_name(m, "train", split)] = train[m]
        outputs[list_name(m, "val", split)] = val[m]
        if fraction is not None:
            subset = stratified_subset(train[m], fraction, seed)
            outputs[list_name(m, "train", split, fraction_tag(fraction))] = subset
    outputs_text = {name: "".join(list_line(item) + "\n" for item in items)
                    for name, items in outputs.items()}
    outputs_text[CLASSES_FILE] = "".join(f"{name}\n" for name in parsed.classes)
    for name, text in outputs_text.items():
        path = out_dir / name
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            raise DataError(path, f"cannot write: {os_error_cause(exc)}") from None
        written.append(path)
    return ListReport(written, problems)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m data_prep.lists",
                                description=__doc__.split("\n")[0])
    p.add_argument("dataset", choices=sorted(DATASET_READERS))
    p.add_argument("splits_dir", help="folder of classInd/trainlist/testlist or HMDB51 split files")
    p.add_argument("frames_root", help="rawframes root (one folder per video)")
    p.add_argument("out_dir", help="where the lists go")
    p.add_argument("--split", type=int, nargs="+", default=[1], help="split numbers (default 1)")
    p.add_argument("--modality", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    p.add_argument("--absolute", action="store_true", help="write absolute frame folders")
    p.add_argument(
        "--no-require-done",
        dest="require_done",
        action="store_false",
        help="accept folders without .done (rawframes made by TSN's tools)",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave bad/missing videos out of the lists instead of writing none (exit code 1)",
    )
    p.add_argument(
        "--fraction",
        type=float,
        nargs="?",
        const=paper.GROUPER_DATA_FRACTION,
        default=None,
        help="also write a class-stratified subset of the training list "
        "(no value: paper.GROUPER_DATA_FRACTION)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the subset draw")
    add_layout_arguments(p)
    p.add_argument("--level", choices=LEVELS, default="auto",
                   help="frame folders <video>/ (1), <class>/<video>/ (2, mmaction2), or either")
    return p.parse_args(argv)


def add_layout_arguments(p: argparse.ArgumentParser) -> None:
    """--layout and its overrides (also used by tools/run_experiment.py)."""
    p.add_argument("--layout", choices=sorted(rawframes.LAYOUTS), default="tsn",
                   help="file names of the rawframes: tsn (img_/flow_x_/flow_y_) or mmaction2 "
                        "(img_/x_/y_); docs/DATA.md")
    p.add_argument("--img-tmpl", help="frame file template, e.g. 'img_{:05d}.jpg'")
    p.add_argument("--flow-x-tmpl", help="flow x file template, e.g. 'flow_x_{:05d}.jpg'")
    p.add_argument("--flow-y-tmpl", help="flow y file template, e.g. 'flow_y_{:05d}.jpg'")
    p.add_argument("--start-index", type=int, choices=[0, 1],
                   help="number of the first file (default: the layout's, 1)")


def layout_params(args: argparse.Namespace) -> dict:
    """The layout keys of parsed --layout/--*-tmpl/--start-index (for param_str and configs)."""
    params = {"layout": args.layout, "img_tmpl": args.img_tmpl,
              "flow_x_tmpl": args.flow_x_tmpl, "flow_y_tmpl": args.flow_y_tmpl,
              "start_index": args.start_index}
    return {k: v for k, v in params.items() if v is not None}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        layout = rawframes.layout_from_params(layout_params(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for split in args.split:
        try:
            report = build_lists(
                args.dataset,
                args.splits_dir,
                args.frames_root,
                args.out_dir,
                split,
                modalities=args.modality,
                absolute=args.absolute,
                require_done=args.require_done,
                skip_missing=args.skip_missing,
                fraction=args.fraction,
                seed=args.seed,
                layout=layout,
                level=args.level,
            )
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for problem in report.problems:
            print(f"error: {problem}", file=sys.stderr)
        if report.problems:
            status = 1
            verb = "left out" if args.skip_missing else "no lists written"
            print(f"split {split}: {len(report.problems)} bad videos ({verb})", file=sys.stderr)
        for path in report.written:
            print(path)
    return status


if __name__ == "__main__":
    sys.exit(main())
