"""Split-file parsers: UCF101 (CRLF, 1-based classInd), HMDB51, and their errors."""

from __future__ import annotations

import pytest

from data_prep.errors import DataError
from data_prep.splits import read_class_index, read_split
from netgen import paper
from tests.conftest import SHARED_SPLITS


def _write(path, lines, newline="\r\n"):
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


@pytest.fixture
def ucf_dir(tmp_path):
    _write(tmp_path / "classInd.txt", ["1 Archery", "2 HandstandPushups", "3 YoYo"])
    _write(tmp_path / "trainlist01.txt", ["Archery/v_Archery_g08_c01.avi 1",
                                          "YoYo/v_YoYo_g09_c02.avi 3"])
    _write(tmp_path / "testlist01.txt", ["HandstandPushups/v_HandStandPushups_g01_c01.avi",
                                         "YoYo/v_YoYo_g01_c01.avi", ""])
    return tmp_path


def test_ucf_crlf_lists_give_zero_based_labels(ucf_dir):
    split = read_split("ucf101", ucf_dir, 1)
    assert split.classes == ("Archery", "HandstandPushups", "YoYo")
    assert [(e.video, e.label) for e in split.train] == [
        ("Archery/v_Archery_g08_c01.avi", 0), ("YoYo/v_YoYo_g09_c02.avi", 2)]
    assert [e.label for e in split.test] == [1, 2]


def test_unknown_class_names_file_and_line(ucf_dir):
    _write(ucf_dir / "testlist01.txt", ["YoYo/v_YoYo_g01_c01.avi", "Juggling/v_J_g01_c01.avi"])
    with pytest.raises(DataError, match=r"testlist01.txt:2: unknown class 'Juggling'"):
        read_split("ucf101", ucf_dir, 1)


@pytest.mark.parametrize("line", ["Archery/v_Archery_g08_c01.avi", "Archery/v.avi x",
                                  "Archery/v.avi 7", "Archery/v.avi 2"])
def test_malformed_train_line_names_file_and_line(ucf_dir, line):
    _write(ucf_dir / "trainlist01.txt", ["YoYo/v_YoYo_g09_c02.avi 3", line])
    with pytest.raises(DataError, match=r"trainlist01.txt:2: "):
        read_split("ucf101", ucf_dir, 1)


def test_class_index_must_be_one_based_and_complete(tmp_path):
    _write(tmp_path / "classInd.txt", ["0 A", "1 B"])
    with pytest.raises(DataError, match="not 1..2"):
        read_class_index(tmp_path / "classInd.txt")
    _write(tmp_path / "classInd.txt", ["1 A", "oops"])
    with pytest.raises(DataError, match=r"classInd.txt:2: malformed"):
        read_class_index(tmp_path / "classInd.txt")


def test_hmdb_splits_by_sorted_class(tmp_path):
    _write(tmp_path / "wave_test_split1.txt", ["w_0.avi 1 ", "w_1.avi 2 ", "w_2.avi 0 "], "\n")
    _write(tmp_path / "clap_test_split1.txt", ["c_0.avi 2 ", "c_1.avi 1 "], "\n")
    split = read_split("hmdb51", tmp_path, 1)
    assert split.classes == ("clap", "wave")
    assert [(e.video, e.label) for e in split.train] == [("clap/c_1.avi", 0), ("wave/w_0.avi", 1)]
    assert [(e.video, e.label) for e in split.test] == [("clap/c_0.avi", 0), ("wave/w_1.avi", 1)]
    _write(tmp_path / "wave_test_split1.txt", ["w_0.avi 1", "w_1.avi 3"], "\n")
    with pytest.raises(DataError, match=r"wave_test_split1.txt:2: malformed"):
        read_split("hmdb51", tmp_path, 1)


@pytest.mark.skipif(not (SHARED_SPLITS / "ucf101").is_dir(), reason="official splits absent")
@pytest.mark.parametrize("dataset,counts", [
    ("ucf101", {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}),
    ("hmdb51", {1: (3570, 1530), 2: (3570, 1530), 3: (3570, 1530)})])
def test_official_splits(dataset, counts):
    for k, (n_train, n_test) in counts.items():
        split = read_split(dataset, SHARED_SPLITS / dataset, k)
        assert len(split.classes) == paper.NUM_CLASSES[dataset]
        assert (len(split.train), len(split.test)) == (n_train, n_test)
        labels = {e.label for e in split.train} | {e.label for e in split.test}
        assert labels == set(range(len(split.classes)))
        assert not {e.video for e in split.train} & {e.video for e in split.test}
