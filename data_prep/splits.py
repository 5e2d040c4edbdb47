"""Parsers for the official split files of UCF101 and HMDB51 (and our synthetic set, UCF format).

Labels come out 0-based and contiguous. Every problem is a DataError naming file and line.

- UCF101: ``classInd.txt`` lines ``<1-based index> <ClassName>``; ``trainlist0k.txt`` lines
  ``<Class>/<video>.avi <1-based label>``; ``testlist0k.txt`` lines ``<Class>/<video>.avi`` (the
  label comes from the folder name). Official copies have CRLF line ends.
- HMDB51: ``<class>_test_split<k>.txt`` lines ``<video>.avi <0|1|2>`` (1 train, 2 test, 0 unused);
  classes are numbered in sorted name order (as TSN's build_file_list does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from data_prep.errors import DataError

HMDB_TRAIN, HMDB_TEST, HMDB_UNUSED = "1", "2", "0"


@dataclass(frozen=True)
class SplitEntry:
    video: str  # path relative to the dataset's video root, e.g. "Class/v_Class_g01_c01.avi"
    label: int  # 0-based


@dataclass(frozen=True)
class Split:
    classes: tuple[str, ...]
    train: tuple[SplitEntry, ...]
    test: tuple[SplitEntry, ...]


def _lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-empty lines; CRLF and CR tolerated."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(path, "split file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc.reason})") from None
    numbered = enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1)
    return [(n, line.strip()) for n, line in numbered if line.strip()]


def read_class_index(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """classInd.txt -> class names in 0-based label order; indices must be 1..N."""
    path = Path(path)
    names: dict[int, str] = {}
    for n, line in _lines(path):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise DataError(path, f"malformed line {line!r}: expected '<index> <ClassName>'", n)
        index, name = int(fields[0]), fields[1]
        if index in names:
            raise DataError(path, f"class index {index} given twice", n)
        if name in names.values():
            raise DataError(path, f"class name {name!r} given twice", n)
        names[index] = name
    if not names:
        raise DataError(path, "no classes")
    if sorted(names) != list(range(1, len(names) + 1)):
        raise DataError(path, f"class indices are not 1..{len(names)}")
    return tuple(names[i] for i in range(1, len(names) + 1))


def _class_of(video: str, lookup: dict[str, int], path: Path, n: int) -> int:
    folder = video.replace("\\", "/").split("/")[0] if "/" in video.replace("\\", "/") else ""
    if not folder:
        raise DataError(path, f"video {video!r} has no '<Class>/' folder", n)
    if folder in lookup:
        return lookup[folder]
    folded = {name.lower(): label for name, label in lookup.items()}
    if folder.lower() in folded:
        return folded[folder.lower()]
    raise DataError(path, f"unknown class {folder!r}", n)


def read_ucf_list(
    path: str | os.PathLike[str], classes: tuple[str, ...], labelled: bool
) -> tuple[SplitEntry, ...]:
    """A trainlist (``labelled``: ``<video> <1-based label>``) or testlist (``<video>``)."""
    path = Path(path)
    lookup = {name: i for i, name in enumerate(classes)}
    entries = []
    seen: dict[str, int] = {}
    for n, line in _lines(path):
        fields = line.split()
        if len(fields) != (2 if labelled else 1):
            want = "'<Class>/<video> <label>'" if labelled else "'<Class>/<video>'"
            raise DataError(path, f"malformed line {line!r}: expected {want}", n)
        video = fields[0]
        label = _class_of(video, lookup, path, n)
        if labelled:
            if not fields[1].isdigit() or not 1 <= int(fields[1]) <= len(classes):
                raise DataError(path, f"label {fields[1]!r} is not in 1..{len(classes)}", n)
            if int(fields[1]) - 1 != label:
                raise DataError(
                    path, f"label {fields[1]} disagrees with the class folder of {video!r}", n
                )
        _check_unique(video, seen, path, n)
        entries.append(SplitEntry(video, label))
    return tuple(entries)


def _check_unique(video: str, seen: dict[str, int], path: Path, n: int) -> None:
    """DataError when ``video`` was already listed (``seen``: video -> line), else record it."""
    key = video.replace("\\", "/")
    if key in seen:
        raise DataError(path, f"video {video!r} listed twice (first at line {seen[key]})", n)
    seen[key] = n


def check_disjoint(split: Split, train_file: Path, test_file: Path | None = None) -> None:
    """DataError naming the first test video that is also in the training list."""
    train = {e.video.replace("\\", "/") for e in split.train}
    for entry in split.test:
        if entry.video.replace("\\", "/") in train:
            where = test_file if test_file is not None else train_file
            raise DataError(where, f"test video {entry.video!r} is also in the training list "
                            f"{train_file.name}: a test video must not be trained on")


def read_ucf101_split(splits_dir: str | os.PathLike[str], split: int) -> Split:
    """UCF101-format split ``split`` (1-based) from classInd/trainlist0k/testlist0k."""
    splits_dir = Path(splits_dir)
    classes = read_class_index(splits_dir / "classInd.txt")
    train = read_ucf_list(splits_dir / f"trainlist{split:02d}.txt", classes, labelled=True)
    test = read_ucf_list(splits_dir / f"testlist{split:02d}.txt", classes, labelled=False)
    result = Split(classes, train, test)
    check_disjoint(result, splits_dir / f"trainlist{split:02d}.txt",
                   splits_dir / f"testlist{split:02d}.txt")
    return result


def hmdb51_classes(splits_dir: str | os.PathLike[str], split: int) -> tuple[str, ...]:
    suffix = f"_test_split{split}.txt"
    names = sorted(p.name[: -len(suffix)] for p in Path(splits_dir).glob(f"*{suffix}"))
    if not names:
        raise DataError(splits_dir, f"no '*{suffix}' files")
    return tuple(names)


def read_hmdb51_split(splits_dir: str | os.PathLike[str], split: int) -> Split:
    """HMDB51 split ``split`` (1-based) from the per-class ``<class>_test_split<k>.txt`` files."""
    splits_dir = Path(splits_dir)
    classes = hmdb51_classes(splits_dir, split)
    train, test = [], []
    for label, name in enumerate(classes):
        path = splits_dir / f"{name}_test_split{split}.txt"
        seen: dict[str, int] = {}
        for n, line in _lines(path):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in (HMDB_TRAIN, HMDB_TEST, HMDB_UNUSED):
                raise DataError(path, f"malformed line {line!r}: expected '<video> 0|1|2'", n)
            entry = SplitEntry(f"{name}/{fields[0]}", label)
            _check_unique(fields[0], seen, path, n)
            if fields[1] == HMDB_TRAIN:
                train.append(entry)
            elif fields[1] == HMDB_TEST:
                test.append(entry)
    return Split(classes, tuple(train), tuple(test))


def class_names(dataset: str, splits_dir: str | os.PathLike[str], split: int = 1
                ) -> tuple[str, ...]:
    """The class names in label order: classInd.txt (UCF101 format) or the names of HMDB51's
    per-class split files (sorted, as the labels are numbered)."""
    if dataset == "hmdb51":
        return hmdb51_classes(splits_dir, split)
    if dataset in DATASET_READERS:
        return read_class_index(Path(splits_dir) / "classInd.txt")
    raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(DATASET_READERS)}")


DATASET_READERS = {
    "ucf101": read_ucf101_split,
    "hmdb51": read_hmdb51_split,
    "synthetic": read_ucf101_split,
}


def read_split(dataset: str, splits_dir: str | os.PathLike[str], split: int) -> Split:
    try:
        reader = DATASET_READERS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(DATASET_READERS)}") from None
    return reader(splits_dir, split)
