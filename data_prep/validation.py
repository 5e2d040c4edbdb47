"""A validation split carved from a dataset folder's training videos (settings are chosen on it,
never on the test videos).

``carve_validation`` makes a second dataset folder whose frames are the original's (a link)
and whose split-1 lists hold the original training videos only: about ``fraction`` of each
class as its ``val`` list (the "test" videos of every tool that reads the folder), the rest as
its ``train`` list, with the grouper's subset list made from that rest. The original folder is
not touched; the test videos are in neither list.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from co2fi_tools.safe_io import atomic_write_text
from data_prep.errors import DataError
from data_prep.lists import (
    CLASSES_FILE,
    MODALITIES,
    ListItem,
    fraction_tag,
    frames_root,
    list_line,
    list_path,
    lists_dir,
    stratified_subset,
)
from data_prep.rawframes import SOURCE_FILE

#: Share of each class's training videos held out for validation.
VALIDATION_FRACTION = 0.25
#: The carved folder's lists are its split 1.
CARVED_SPLIT = 1


def read_list(path: Path) -> list[ListItem]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(path, f"cannot read the list: {exc.strerror}") from None
    items = []
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3 or not parts[-1].isdigit() or not parts[-2].isdigit():
            raise DataError(path, f"line {lineno}: expected '<frame_dir> <num_frames> <label>'")
        items.append(ListItem(" ".join(parts[:-2]), int(parts[-2]), int(parts[-1])))
    if not items:
        raise DataError(path, "the list is empty")
    return items


def _write(path: Path, items: list[ListItem]) -> None:
    atomic_write_text(path, "".join(list_line(item) + "\n" for item in items))


def carve_validation(data_root: str | os.PathLike, out_root: str | os.PathLike, split: int = 1,
                     fraction: float = VALIDATION_FRACTION, seed: int = 0,
                     grouper_fraction: float | None = None) -> Path:
    """``out_root``: a dataset folder over ``data_root``'s frames whose split-1 lists are the
    training videos of ``data_root``'s ``split``, carved into train and val (module
    docstring); returns it. The same videos are held out in both modalities."""
    data_root, out_root = Path(data_root), Path(out_root)
    train = {m: read_list(list_path(data_root, m, "train", split)) for m in MODALITIES}
    dirs = {m: [item.frame_dir for item in items] for m, items in train.items()}
    if dirs["rgb"] != dirs["flow"]:
        raise DataError(list_path(data_root, "flow", "train", split),
                        "lists the videos of the rgb list in another order or not all of them")
    held = {item.frame_dir for item in stratified_subset(train["rgb"], fraction, seed)}
    if len(held) == len(train["rgb"]):
        raise DataError(list_path(data_root, "rgb", "train", split),
                        f"too few videos a class to hold out {fraction:g} of them")
    lists_dir(out_root).mkdir(parents=True, exist_ok=True)
    link = frames_root(out_root)
    target = frames_root(data_root).resolve()
    if link.is_symlink() and link.resolve() != target:
        raise DataError(link, f"links to {link.resolve()}, not {target}")
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)
    for m, items in train.items():
        rest = [item for item in items if item.frame_dir not in held]
        _write(list_path(out_root, m, "val", CARVED_SPLIT),
               [item for item in items if item.frame_dir in held])
        _write(list_path(out_root, m, "train", CARVED_SPLIT), rest)
        if grouper_fraction is not None:
            _write(list_path(out_root, m, "train", CARVED_SPLIT, fraction_tag(grouper_fraction)),
                   stratified_subset(rest, grouper_fraction, seed))
    for name in (CLASSES_FILE,):
        if (lists_dir(data_root) / name).exists():
            shutil.copyfile(lists_dir(data_root) / name, lists_dir(out_root) / name)
    if (data_root / SOURCE_FILE).exists():
        shutil.copyfile(data_root / SOURCE_FILE, out_root / SOURCE_FILE)
    return out_root
