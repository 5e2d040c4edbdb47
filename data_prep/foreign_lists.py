"""List files made by other tools, used as they are (python -m data_prep.foreign_lists).

Three naming schemes are recognised in a folder, for dataset ``d`` and split ``k``
(docs/DATA.md has each tool's exact layout):

- ``co2fi``: ``{rgb,flow}_{train,val}_split<k>.txt`` (data_prep.lists);
- ``tsn``: ``<d>_{rgb,flow}_{train,val}_split_<k>.txt`` (TSN's tools/build_file_list.py);
- ``mmaction2``: ``<d>_{train,val}_split_<k>_rawframes.txt`` (mmaction2's
  tools/data/build_file_list.py): one list for both modalities whose ``num_frames`` is the
  RGB frame count, so the data layers are told ``list_counts: "rgb"``.

Lines may be ``<dir> <num_frames> <label>`` or mmaction2's ``<dir> <offset> <num_frames> <label>``.
:func:`adopt_lists` checks the files (format, labels, frame folders) and links them into a
dataset's ``lists/`` under co2fi's names, so that training and evaluation read them unchanged;
the grouper's class-stratified subset (``--fraction``) is written with the original lines.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from co2fi_layers import frames
from co2fi_tools.safe_io import atomic_path, atomic_write_text
from data_prep.errors import DataError
from data_prep.lists import (
    CLASSES_FILE,
    MODALITIES,
    SUBSETS,
    ListItem,
    fraction_tag,
    list_name,
    stratified_subset,
    write_class_names,
)
from data_prep.rawframes import tree_class_names
from data_prep.splits import read_class_index
from netgen import paper

STYLES = ("co2fi", "tsn", "mmaction2")


def list_names(style: str, dataset: str, split: int) -> dict[tuple[str, str], str]:
    """(modality, subset) -> file name of a naming scheme."""
    if style == "co2fi":
        return {(m, s): list_name(m, s, split) for m in MODALITIES for s in SUBSETS}
    if style == "tsn":
        return {(m, s): f"{dataset}_{m}_{s}_split_{split}.txt" for m in MODALITIES
                for s in SUBSETS}
    if style == "mmaction2":
        return {(m, s): f"{dataset}_{s}_split_{split}_rawframes.txt" for m in MODALITIES
                for s in SUBSETS}
    raise ValueError(f"unknown list style {style!r}; one of {STYLES}")


@dataclass
class FoundLists:
    style: str
    files: dict[tuple[str, str], Path]
    #: param_str keys the data layers need to read these lists.
    data_params: dict = field(default_factory=dict)


def find_lists(folder: str | os.PathLike[str], dataset: str, split: int) -> FoundLists:
    """The first naming scheme of which every file is in ``folder``; DataError otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such list folder")
    for style in STYLES:
        names = list_names(style, dataset, split)
        if all((folder / n).is_file() for n in names.values()):
            params = {"list_counts": "rgb"} if style == "mmaction2" else {}
            return FoundLists(style, {k: folder / n for k, n in names.items()}, params)
    expected = "; ".join(f"{s}: {', '.join(sorted(set(list_names(s, dataset, split).values())))}"
                         for s in STYLES)
    raise DataError(folder, f"no complete set of split-{split} lists ({expected})")


def _check(path: Path, frames_root: Path | None, num_classes: int | None,
           problems: list[DataError]) -> None:
    try:
        records = frames.read_list(path, frames_root or "")
    except DataError as exc:
        problems.append(exc)
        return
    labels = [r.label for r in records]
    if num_classes is not None and max(labels) >= num_classes:
        problems.append(DataError(path, f"label {max(labels)} does not fit {num_classes} "
                                        f"classes (labels are 0-based)"))
    if frames_root is not None:
        missing = [r.path for r in records if not os.path.isdir(r.path)]
        if missing:
            problems.append(DataError(path, f"{len(missing)} frame folders missing, e.g. "
                                            f"{missing[0]}"))


def _check_entries(found: FoundLists, problems: list[DataError]) -> None:
    """A video listed twice, or a test video in the training list, is a problem."""
    reported: set[str] = set()
    for m in MODALITIES:
        videos: dict[str, set[str]] = {}
        for s in SUBSETS:
            path = found.files[(m, s)]
            try:
                records = frames.read_list(path, "")
            except DataError:
                continue  # already reported by _check
            first: dict[tuple[str, int], int] = {}  # (folder, offset): clips of one video
            for number, record in enumerate(records, 1):
                key = (record.path, record.offset)
                if key in first and str(path) not in reported:
                    reported.add(str(path))
                    problems.append(DataError(path, f"video {record.path!r} listed twice "
                                                    f"(entries {first[key]} and {number})"))
                first.setdefault(key, number)
            videos[s] = {folder for folder, _ in first}
        leaked = sorted(videos.get("train", set()) & videos.get("val", set()))
        val = found.files[(m, "val")]
        if leaked and f"leak {val}" not in reported:
            reported.add(f"leak {val}")
            problems.append(DataError(val, f"{len(leaked)} test videos are also in the training "
                                           f"list {found.files[(m, 'train')].name}, e.g. "
                                           f"{leaked[0]!r}"))


def _subset_lines(path: Path, keep: set[str]) -> str:
    """The lines of a list whose frame folder is in ``keep``, unchanged."""
    lines = path.read_text(encoding="utf-8").splitlines()
    numbers = 3 if frames.detect_list_format(lines) == "offset" else 2
    return "".join(line.strip() + "\n" for line in lines
                   if line.strip() and line.strip().rsplit(maxsplit=numbers)[0] in keep)


def _link(target: Path, link: Path) -> None:
    """``link`` -> ``target`` (absolute), replacing an older link atomically."""
    if link.exists() and not link.is_symlink() and link.resolve() != target.resolve():
        raise DataError(link, f"exists and is not a link to {target}; move it away")
    with atomic_path(link) as tmp:
        tmp.unlink()
        tmp.symlink_to(target.resolve())


@dataclass
class Adopted:
    found: FoundLists
    written: list[Path]
    #: Where the class names in ``<out_dir>/classes.txt`` came from (None: no names).
    class_names_from: str | None = None


#: UCF101's class index, which mmaction2's and TSN's annotation folders hold beside the lists.
CLASS_INDEX = "classInd.txt"


def adopt_class_names(found: FoundLists, list_dir: Path, out: Path,
                      num_classes: int | None) -> str | None:
    """Write ``<out>/classes.txt`` unless it is there: from ``<list_dir>/classes.txt`` or
    ``classInd.txt``, else from the level-2 tree the lists name (``<class>/<video>``: the class
    folders, rawframes.tree_class_names). Returns where the names came from (None: nowhere, the
    tables then say class_<i>)."""
    if (out / CLASSES_FILE).is_file():
        return str(out / CLASSES_FILE)
    for name in (CLASSES_FILE, CLASS_INDEX):
        path = list_dir / name
        if path.is_file():
            names = (list(read_class_index(path)) if name == CLASS_INDEX else
                     [n.strip() for n in path.read_text(encoding="utf-8").splitlines()
                      if n.strip()])
            if num_classes is not None and len(names) != num_classes:
                raise DataError(path, f"{len(names)} class names for {num_classes} classes")
            write_class_names(out, names)
            return str(path)
    entries = [(r.path, r.label) for m in MODALITIES for s in SUBSETS
               for r in frames.read_list(found.files[(m, s)], "")]
    tree = tree_class_names(entries, num_classes)
    if tree is None:
        return None
    write_class_names(out, tree)
    return "the class folders of the level-2 tree"


def adopt_lists(list_dir: str | os.PathLike[str], dataset: str, split: int,
                out_dir: str | os.PathLike[str], frames_root: str | os.PathLike[str] | None = None,
                num_classes: int | None = None, fraction: float | None = None,
                seed: int = 0) -> Adopted:
    """Check the lists of ``list_dir`` and link them into ``out_dir`` under co2fi's names
    (plus the stratified training subset with ``fraction``, and classes.txt where the folder or
    a level-2 tree names the classes: adopt_class_names); DataError lists every problem."""
    found = find_lists(list_dir, dataset, split)
    root = Path(frames_root) if frames_root is not None else None
    problems: list[DataError] = []
    for path in sorted(set(found.files.values())):
        _check(path, root, num_classes, problems)
    _check_entries(found, problems)
    if problems:
        raise DataError(list_dir, "; ".join(str(p) for p in problems))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, name in list_names("co2fi", dataset, split).items():
        if found.files[key].resolve() != (out / name).resolve():
            _link(found.files[key], out / name)
        written.append(out / name)
    if fraction is not None:
        # frame_dir as written (root "" joins nothing), so the lines can be matched verbatim
        train = frames.read_list(found.files[("rgb", "train")], "")
        items = [ListItem(r.path, r.num_frames, r.label) for r in train]
        keep = {i.frame_dir for i in stratified_subset(items, fraction, seed)}
        for m in MODALITIES:
            path = out / list_name(m, "train", split, fraction_tag(fraction))
            atomic_write_text(path, _subset_lines(found.files[(m, "train")], keep))
            written.append(path)
    had_names = (out / CLASSES_FILE).is_file()
    source = adopt_class_names(found, Path(list_dir), out, num_classes)
    if source is not None and not had_names:
        written.append(out / CLASSES_FILE)
    return Adopted(found, written, source)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.foreign_lists",
                                description=__doc__.split("\n")[0])
    p.add_argument("dataset", help="dataset name in the file names (ucf101, hmdb51, ...)")
    p.add_argument("list_dir", help="folder of TSN's / mmaction2's list files")
    p.add_argument("out_dir", help="a dataset's lists/ folder")
    p.add_argument("--split", type=int, nargs="+", default=[1])
    p.add_argument("--frames-root", help="check that every listed frame folder exists here")
    p.add_argument("--num-classes", type=int, help="check that labels fit")
    p.add_argument("--fraction", type=float, nargs="?", const=paper.GROUPER_DATA_FRACTION,
                   default=None, help="also write the class-stratified training subset")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for split in args.split:
        try:
            adopted = adopt_lists(args.list_dir, args.dataset, split, args.out_dir,
                                  args.frames_root, args.num_classes, args.fraction, args.seed)
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"split {split}: {adopted.found.style} lists"
              + (f" (data layers: {adopted.found.data_params})" if adopted.found.data_params
                 else ""))
        for path in adopted.written:
            print(path)
        if adopted.class_names_from:
            print(f"class names: {adopted.class_names_from}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
