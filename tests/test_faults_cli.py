"""Small faults of the command lines: netgen's flags, split files with duplicates or a test
video in the training list, an output folder that is a file, the steps limit shared by netgen,
the sampler and the evaluation, the synthetic class bound."""

from __future__ import annotations

import pytest

from co2fi_layers import sampling
from data_prep import lists, synthetic
from data_prep.errors import DataError
from data_prep.splits import read_split
from netgen import paper
from netgen.__main__ import main as netgen_main
from netgen.nets import fusion_steps, validate_fusion
from netgen.presets import MAX_SYNTHETIC_CLASSES
from netgen.readings import Readings
from tests.test_data_helpers import tiny_dataset  # noqa: F401 - fixture


def _netgen_error(argv, tmp_path, capsys) -> str:
    out = tmp_path / "out"
    assert netgen_main([*argv, "--preset", "small", "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("netgen: error: ")
    return err


def test_netgen_size_with_a_bad_value_names_the_flag(tmp_path, capsys):
    err = _netgen_error(["--size", "fc1=abc"], tmp_path, capsys)
    assert err == "netgen: error: --size fc1=abc: fc1 wants a number (int), e.g. fc1=128"


def test_netgen_synthetic_classes_are_bounded(tmp_path, capsys):
    err = _netgen_error(["--synthetic-classes", "1000000"], tmp_path, capsys)
    assert f"--synthetic-classes must be in 1..{MAX_SYNTHETIC_CLASSES}" in err
    with pytest.raises(ValueError, match="--classes must be in 1..1000"):
        synthetic.generate(tmp_path / "syn", num_classes=1001)


def test_netgen_steps_beyond_the_data_layer_are_refused(tmp_path, capsys):
    err = _netgen_error(["--steps", str(paper.MAX_FUSION_STEPS + 2)], tmp_path, capsys)
    assert f"fusion steps T must be odd and in 1..{paper.MAX_FUSION_STEPS}" in err


@pytest.mark.parametrize("steps", range(1, paper.MAX_FUSION_STEPS + 1, 2))
def test_every_step_count_netgen_accepts_the_sampler_accepts(steps):
    """One owner of the limit (paper.MAX_FUSION_STEPS): each T netgen writes, the data layer can
    sample, and the evaluation's periods hold every input."""
    validate_fusion(paper.DELTA, steps, "co2fi", "rgb")
    for synchronous in (True, False):
        centre, other, _ = fusion_steps(synchronous, steps, Readings())
        sampling.centre_range(200, list(centre) + list(other), paper.DELTA, paper.FLOW_STACK,
                              period_steps=steps)


def test_netgen_limit_plus_two_is_refused():
    with pytest.raises(ValueError, match=f"odd and in 1..{paper.MAX_FUSION_STEPS}"):
        validate_fusion(paper.DELTA, paper.MAX_FUSION_STEPS + 2, "co2fi", "rgb")
    with pytest.raises(ValueError, match=f"odd and in 1..{paper.MAX_FUSION_STEPS}"):
        sampling.all_steps(paper.MAX_FUSION_STEPS + 2)


def test_a_seven_step_period_is_centred_on_step_four():
    # offsets (t - 4) * 5 for t = 1..7: -15 .. +15 around the centre frame
    points = sampling.period_indices(200, 1, sampling.all_steps(7), 5, 0, period_steps=7)
    centre = points[0, 3]
    assert (points[0] - centre).tolist() == [-15, -10, -5, 0, 5, 10, 15]
    with pytest.raises(ValueError, match=r"steps must be in 1\.\.5"):
        sampling.period_indices(200, 1, (7,), 5, 0)  # the paper's T = 5 by default


# --- split files ------------------------------------------------------------------------------

def _ucf(tmp_path, train, test):
    (tmp_path / "classInd.txt").write_text("1 Archery\n2 YoYo\n")
    (tmp_path / "trainlist01.txt").write_text("".join(f"{v}\n" for v in train))
    (tmp_path / "testlist01.txt").write_text("".join(f"{v}\n" for v in test))
    return tmp_path


def test_duplicate_training_entry_is_named_with_both_lines(tmp_path):
    d = _ucf(tmp_path, ["Archery/v_a.avi 1", "YoYo/v_b.avi 2", "Archery/v_a.avi 1"],
             ["YoYo/v_c.avi"])
    with pytest.raises(DataError) as info:
        read_split("ucf101", d, 1)
    assert str(info.value) == (f"{d / 'trainlist01.txt'}:3: video 'Archery/v_a.avi' listed "
                               "twice (first at line 1)")


def test_test_video_in_the_training_list_is_refused(tmp_path):
    d = _ucf(tmp_path, ["Archery/v_a.avi 1", "YoYo/v_b.avi 2"], ["YoYo/v_b.avi"])
    with pytest.raises(DataError, match=r"testlist01\.txt: test video 'YoYo/v_b\.avi' is also "
                                        r"in the training list trainlist01\.txt"):
        read_split("ucf101", d, 1)


def test_hmdb_duplicate_line_is_named(tmp_path):
    (tmp_path / "wave_test_split1.txt").write_text("a.avi 1\nb.avi 2\na.avi 2\n")
    with pytest.raises(DataError, match=r"wave_test_split1\.txt:3: video 'a\.avi' listed twice"):
        read_split("hmdb51", tmp_path, 1)


def test_lists_into_a_file_is_one_line(tiny_dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "lists"
    out.write_text("")
    rc = lists.main(["synthetic", str(tiny_dataset / "splits"), str(tiny_dataset / "frames"),
                     str(out)])
    assert rc == 2 and capsys.readouterr().err.strip() == f"error: {out}: output folder is a file"




def _foreign(tmp_path, train, val):
    from data_prep.foreign_lists import adopt_lists

    d = tmp_path / "tsn"
    d.mkdir()
    for m in ("rgb", "flow"):
        (d / f"ucf101_{m}_train_split_1.txt").write_text("".join(f"{v} 30 0\n" for v in train))
        (d / f"ucf101_{m}_val_split_1.txt").write_text("".join(f"{v} 30 0\n" for v in val))
    return lambda: adopt_lists(d, "ucf101", 1, tmp_path / "lists")


def test_foreign_lists_with_a_duplicate_or_a_leaked_test_video_are_refused(tmp_path):
    adopt = _foreign(tmp_path, ["v_a", "v_b", "v_a"], ["v_c"])
    with pytest.raises(DataError, match=r"ucf101_rgb_train_split_1\.txt: video 'v_a' listed "
                                        r"twice \(entries 1 and 3\)"):
        adopt()
    (tmp_path / "tsn").rename(tmp_path / "old")
    adopt = _foreign(tmp_path, ["v_a", "v_b"], ["v_b", "v_c"])
    with pytest.raises(DataError, match=r"ucf101_rgb_val_split_1\.txt: 1 test videos are also "
                                        r"in the training list ucf101_rgb_train_split_1\.txt, "
                                        r"e\.g\. 'v_b'"):
        adopt()
    assert not (tmp_path / "lists").exists()
