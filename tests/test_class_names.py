"""Class names from classInd.txt (UCF101) and HMDB51's split files reach every table and plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from co2fi_tools import pipeline
from co2fi_tools.evaluation.evaluate import _class_names
from data_prep import lists
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
