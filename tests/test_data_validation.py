"""A validation split carved from the training videos (data_prep/validation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.errors import DataError
from data_prep.lists import frames_root, list_path
from data_prep.validation import carve_validation, read_list


def _dataset(root: Path, per_class: int = 8, classes: int = 3) -> Path:
    (root / "frames").mkdir(parents=True)
    train = [f"c{c}_v{v} 40 {c}" for c in range(classes) for v in range(per_class)]
    test = [f"c{c}_test{v} 40 {c}" for c in range(classes) for v in range(2)]
    for m in ("rgb", "flow"):
        list_path(root, m, "train", 1).parent.mkdir(parents=True, exist_ok=True)
        list_path(root, m, "train", 1).write_text("\n".join(train) + "\n")
        list_path(root, m, "val", 1).write_text("\n".join(test) + "\n")
    (root / "lists" / "classes.txt").write_text("a\nb\nc\n")
    return root


def test_a_quarter_of_each_class_is_held_out_from_the_training_videos(tmp_path):
    src = _dataset(tmp_path / "src")
    out = carve_validation(src, tmp_path / "val", fraction=0.25, grouper_fraction=0.5)
    for m in ("rgb", "flow"):
        train = read_list(list_path(out, m, "train", 1))
        val = read_list(list_path(out, m, "val", 1))
        assert len(val) == 6 and len(train) == 18  # 2 and 6 of 8 a class
        assert {i.label for i in val} == {0, 1, 2}
        assert not {i.frame_dir for i in train} & {i.frame_dir for i in val}
        assert not [i for i in train + val if "test" in i.frame_dir]  # test videos in neither
        grouper = read_list(list_path(out, m, "train", 1, "frac2"))
        assert {i.frame_dir for i in grouper} <= {i.frame_dir for i in train}
    assert read_list(list_path(out, "rgb", "val", 1)) == read_list(list_path(out, "flow", "val", 1))
    assert frames_root(out).resolve() == frames_root(src).resolve()
    assert (out / "lists" / "classes.txt").read_text() == "a\nb\nc\n"
    # carving again gives the same split
    again = carve_validation(src, tmp_path / "val2", fraction=0.25)
    assert (list_path(again, "rgb", "val", 1).read_text()
            == list_path(out, "rgb", "val", 1).read_text())


def test_lists_that_disagree_or_too_few_videos_are_one_line_errors(tmp_path):
    src = _dataset(tmp_path / "src", per_class=1)
    with pytest.raises(DataError, match="too few videos a class"):
        carve_validation(src, tmp_path / "v", fraction=0.25)
    src = _dataset(tmp_path / "src2")
    path = list_path(src, "flow", "train", 1)
    path.write_text("".join(reversed(path.read_text().splitlines(keepends=True))))
    with pytest.raises(DataError, match="in another order"):
        carve_validation(src, tmp_path / "v2")
