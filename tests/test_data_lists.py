"""TSN list building: format, labels, counts, checks, the stratified subset."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from data_prep import lists, rawframes
from data_prep.errors import DataError
from netgen import paper
from tests.test_data_helpers import TINY, tiny_dataset  # noqa: F401 - fixture


def _read(path):
    return [line.split() for line in path.read_text().splitlines()]


def test_lists_have_tsn_format_and_consistent_counts(tiny_dataset):  # noqa: F811
    rgb = _read(tiny_dataset / "lists" / "rgb_train_split1.txt")
    flow = _read(tiny_dataset / "lists" / "flow_train_split1.txt")
    assert len(rgb) == TINY["num_classes"] * 2  # 3 clips a class, 1 held out
    assert [r[0] for r in rgb] == [f[0] for f in flow]
    assert all(int(r[1]) == TINY["num_frames"] and int(f[1]) == TINY["num_frames"] - 1
               for r, f in zip(rgb, flow, strict=True))
    assert sorted({int(r[2]) for r in rgb}) == list(range(TINY["num_classes"]))
    val = _read(tiny_dataset / "lists" / "rgb_val_split1.txt")
    assert not {v[0] for v in val} & {r[0] for r in rgb}


def test_stratified_fraction_keeps_every_class():
    items = [lists.ListItem(f"v{i}", 10, i % 4) for i in range(64)]
    subset = lists.stratified_subset(items, paper.GROUPER_DATA_FRACTION, seed=0)
    assert Counter(i.label for i in subset) == {0: 2, 1: 2, 2: 2, 3: 2}
    assert subset == lists.stratified_subset(items, paper.GROUPER_DATA_FRACTION, seed=0)
    assert lists.fraction_tag(paper.GROUPER_DATA_FRACTION) == "frac8"


def test_missing_and_inconsistent_videos_are_errors(tiny_dataset, tmp_path):  # noqa: F811
    frames = tmp_path / "frames"
    shutil.copytree(tiny_dataset / "frames", frames)
    victims = sorted(frames.iterdir())
    shutil.rmtree(victims[0])
    (victims[1] / rawframes.flow_y_name(1)).unlink()
    report = lists.build_lists("synthetic", tiny_dataset / "splits", frames, tmp_path / "l", 1)
    assert not report.written
    messages = sorted(str(p) for p in report.problems)
    assert len(messages) == 2
    assert any(victims[0].name in m and "no frame folder" in m for m in messages)
    assert any(victims[1].name in m and "flow_y" in m for m in messages)
    code = lists.main(["synthetic", str(tiny_dataset / "splits"), str(frames),
                       str(tmp_path / "l"), "--skip-missing", "--fraction"])
    assert code == 1
    assert len(_read(tmp_path / "l" / "rgb_train_split1.txt")) + len(
        _read(tmp_path / "l" / "rgb_val_split1.txt")) == TINY["num_classes"] * 3 - 2
    assert (tmp_path / "l" / "flow_train_split1_frac8.txt").exists()


def test_unfinished_folder_needs_done_unless_told(tiny_dataset, tmp_path):  # noqa: F811
    folder = next((tiny_dataset / "frames").iterdir())
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    (copy / rawframes.DONE_MARKER).unlink()
    with pytest.raises(DataError, match="no .done"):
        lists.check_video(copy, True, lists.MODALITIES)
    assert lists.check_video(copy, False, lists.MODALITIES)["flow"] == TINY["num_frames"] - 1
