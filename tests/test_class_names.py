"""Class names from classInd.txt (UCF101) and HMDB51's split files reach every table and plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from co2fi_tools import pipeline
from co2fi_tools.evaluation.evaluate import _class_names
from data_prep import lists
from data_prep.errors import DataError
from data_prep.splits import class_names
from tests.conftest import SHARED_SPLITS
from tests.test_data_foreign import write_tsn
from tests.test_data_helpers import TINY, tiny_dataset  # noqa: F401 - fixture

official = pytest.mark.skipif(not (SHARED_SPLITS / "ucf101").is_dir()
                              or not (SHARED_SPLITS / "hmdb51").is_dir(),
                              reason="official splits absent (/work/shared/data/splits)")


@official
def test_official_ucf101_and_hmdb51_names_in_label_order():
    ucf = class_names("ucf101", SHARED_SPLITS / "ucf101")
    assert len(ucf) == 101 and (ucf[0], ucf[36], ucf[100]) == (
        "ApplyEyeMakeup", "HandstandPushups", "YoYo")
    assert not any("\r" in n or " " in n for n in ucf)  # the CRLF files are read cleanly
    hmdb = class_names("hmdb51", SHARED_SPLITS / "hmdb51", 2)
    assert len(hmdb) == 51 and (hmdb[0], hmdb[50]) == ("brush_hair", "wave")
    assert list(hmdb) == sorted(hmdb)


def test_lists_write_the_class_names_beside_them(tiny_dataset):  # noqa: F811
    names = lists.read_class_names(tiny_dataset / "lists")
    assert names == list(class_names("synthetic", tiny_dataset / "splits"))
    assert len(names) == TINY["num_classes"] and not names[0].startswith("class_")


def test_evaluation_takes_the_dataset_names_and_checks_their_count(tmp_path):
    lists.write_class_names(tmp_path / "d" / "lists", ["Jump", "Run"])
    exp = pipeline.Experiment("ucf101", tmp_path / "d", 2, tmp_path / "out")
    assert _class_names(exp) == ["Jump", "Run"]
    assert _class_names(pipeline.Experiment("ucf101", tmp_path / "none", 3, tmp_path)) == [
        "class_0", "class_1", "class_2"]
    with pytest.raises(ValueError, match=r"2 class names .*classes.txt\) for 3 classes"):
        _class_names(pipeline.Experiment("ucf101", tmp_path / "d", 3, tmp_path / "out"))


@official
def test_run_experiment_passes_the_official_names_on(tmp_path, monkeypatch):
    seen = {}

    def fake_run(exp):
        seen["exp"] = exp
        return {"tables": ""}

    monkeypatch.setattr(pipeline, "run_experiment", fake_run)
    tsn = write_tsn(tmp_path / "tsn")
    for dataset, splits, count, first in (("ucf101", "ucf101", 101, "ApplyEyeMakeup"),
                                          ("hmdb51", "hmdb51", 51, "brush_hair")):
        if dataset == "hmdb51":  # TSN's list names carry the dataset
            for f in tsn.glob("ucf101_*"):
                f.rename(f.with_name(f.name.replace("ucf101", "hmdb51")))
        rc = pipeline.main(["--dataset", dataset, "--data-root", str(tmp_path / dataset),
                            "--out", str(tmp_path / "out"), "--gpu", "-1",
                            "--rawframes", str(tsn / "rawframes"), "--lists", str(tsn),
                            "--splits", str(SHARED_SPLITS / splits)])
        assert rc == 0
        names = seen["exp"].class_names
        assert len(names) == count and names[0] == first
        assert _class_names(seen["exp"]) == names


def test_wrong_split_folder_is_one_line(tmp_path: Path, capsys):
    rc = pipeline.main(["--dataset", "ucf101", "--data-root", str(tmp_path / "d"), "--out",
                        str(tmp_path / "out"), "--splits", str(tmp_path), "--gpu", "-1"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert "--splits: " in err and "classInd.txt: split file not found" in err


# --- class names from a level-2 rawframes tree (mmaction2's <class>/<video>/) ---------------

TREE_CLASSES = ("ApplyEyeMakeup", "Archery", "BabyCrawling")


def _write_level2_tree(root: Path) -> Path:
    """mmaction2's rawframes (level 2) and its list files, no classInd.txt, no classes file."""
    import numpy as np
    from PIL import Image

    frames = root / "rawframes"
    for subset, group in (("train", "g01"), ("val", "g02")):
        lines = []
        for label, cls in enumerate(TREE_CLASSES):
            video = frames / cls / f"v_{cls}_{group}_c01"
            video.mkdir(parents=True)
            for i in range(1, 5):
                Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(
                    video / f"img_{i:05d}.jpg")
                for axis in "xy":
                    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(
                        video / f"{axis}_{i:05d}.jpg")
            lines.append(f"{cls}/{video.name} 4 {label}\n")
        (root / f"ucf101_{subset}_split_1_rawframes.txt").write_text("".join(lines))
    return root


def test_tree_class_names_need_a_full_level2_tree():
    from data_prep.rawframes import tree_class_names

    entries = [("Archery/v_2", 1), ("ApplyEyeMakeup/v_1", 0), ("Archery/v_3", 1)]
    assert tree_class_names(entries) == ["ApplyEyeMakeup", "Archery"]
    assert tree_class_names(entries, 3) is None  # label 2 has no folder to name it
    assert tree_class_names([("v_1", 0), ("v_2", 1)]) is None  # a flat tree names nothing
    assert tree_class_names([("A/v_1", 0), ("B/v_2", 0), ("C/v_3", 1)]) is None  # 2 names, 1 label
    assert tree_class_names([("A/v_1", 0), ("A/v_2", 1)]) is None  # 1 folder, 2 labels
    assert tree_class_names([("/data/f/A/v_1", 0), ("/data/f/B/v_2", 1)]) == ["A", "B"]


def test_a_level2_tree_names_the_classes_of_every_table(tmp_path):
    """mmaction2's lists used as they are: classes.txt from the class folders, so evaluation,
    the per-class tables and the comparison name ApplyEyeMakeup ..., and the 3-class run is not
    set against the paper's 101-class UCF101 (no 'ours − paper' column)."""
    import numpy as np

    from co2fi_tools.evaluation import evaluate_scores as es
    from co2fi_tools.evaluation import scores

    mm = _write_level2_tree(tmp_path / "mm")
    root = pipeline.prepare_dataset("ucf101", tmp_path / "data", 1, None, None,
                                    mm / "rawframes", "tvl1", 1, list_dir=mm, num_classes=3,
                                    layout={"layout": "mmaction2"})
    assert lists.read_class_names(root / "lists") == list(TREE_CLASSES)
    exp = pipeline.Experiment("ucf101", root, 3, tmp_path / "out")
    names = _class_names(exp)
    assert names == list(TREE_CLASSES)
    # what evaluate_methods does with them: a score file, its tables, the results row
    video_scores = np.eye(3, dtype=np.float32)[:, None, :].repeat(2, axis=1)
    path = tmp_path / "out" / "scores" / "co2fi_rgb.h5"
    path.parent.mkdir(parents=True)
    scores.save_scores(path, scores.ScoreFile({"appearance": video_scores}, np.arange(3),
                                              ["a", "b", "c"], names, "ucf101", "1",
                                              "co2fi_rgb", 10))
    evaluation = es.evaluate([es.Selection(str(path), ())])
    written = es.write_artifacts(evaluation, tmp_path / "out" / "eval", "CO2FI, appearance")
    per_class = (tmp_path / "out" / "eval" / "per_class.md").read_text()
    assert all(f"| {cls} |" in per_class for cls in TREE_CLASSES) and "class_0" not in per_class
    assert len(written) == 3
    results = tmp_path / "out" / "results.json"
    es.record_result(evaluation, results, "CO2FI-complete", "appearance")
    markdown = pipeline.write_comparison(results, tmp_path / "out" / "comparison")
    assert "ours − paper" not in markdown and "(reference only)" in markdown
    assert "ours: UCF101 split 1 (3 classes), not the paper's 101 classes" in markdown


def test_a_classes_file_or_class_index_beside_the_lists_wins_over_the_tree(tmp_path):
    from data_prep import foreign_lists

    mm = _write_level2_tree(tmp_path / "mm")
    (mm / "classInd.txt").write_text("1 Eye\n2 Bow\n3 Baby\n")
    adopted = foreign_lists.adopt_lists(mm, "ucf101", 1, tmp_path / "l1", mm / "rawframes", 3)
    assert lists.read_class_names(tmp_path / "l1") == ["Eye", "Bow", "Baby"]
    assert adopted.class_names_from == str(mm / "classInd.txt")
    (mm / "classInd.txt").write_text("1 Eye\n2 Bow\n")
    with pytest.raises(DataError, match=r"classInd.txt: 2 class names for 3 classes"):
        foreign_lists.adopt_lists(mm, "ucf101", 1, tmp_path / "l2", mm / "rawframes", 3)
    (mm / "classInd.txt").unlink()
    lists.write_class_names(tmp_path / "l3", ["kept", "as", "is"])  # already there: kept
    foreign_lists.adopt_lists(mm, "ucf101", 1, tmp_path / "l3", mm / "rawframes", 3)
    assert lists.read_class_names(tmp_path / "l3") == ["kept", "as", "is"]


def test_lists_already_in_the_dataset_folder_get_names_from_the_tree(tmp_path):
    """A dataset folder whose lists/ someone filled by hand (co2fi's names, level-2 entries)."""
    mm = _write_level2_tree(tmp_path / "mm")
    root = tmp_path / "data"
    (root / "lists").mkdir(parents=True)
    for m in lists.MODALITIES:
        for subset in lists.SUBSETS:
            text = (mm / f"ucf101_{subset}_split_1_rawframes.txt").read_text()
            (root / "lists" / lists.list_name(m, subset, 1)).write_text(text)
    pipeline.prepare_dataset("ucf101", root, 1, None, None, mm / "rawframes", "tvl1", 1,
                             num_classes=3, layout={"layout": "mmaction2"})
    assert lists.read_class_names(root / "lists") == list(TREE_CLASSES)
