"""tools/run_experiment.py: a dataset folder without the expected layout fails before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from co2fi_tools.pipeline import main, prepare_dataset
from tests.conftest import requires_caffe


def test_folder_without_frames_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"frames .*give --videos or --rawframes"):
        prepare_dataset("ucf101", tmp_path / "ucf", 1, None, None, None, "tvl1", 1)


def test_missing_lists_without_split_files_names_the_lists(tmp_path: Path) -> None:
    (tmp_path / "ucf" / "frames").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"rgb_train_split2.txt.*give --splits"):
        prepare_dataset("ucf101", tmp_path / "ucf", 2, None, None, None, "tvl1", 1)


def test_missing_videos_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"--videos .*nope: no such folder"):
        prepare_dataset("hmdb51", tmp_path / "h", 1, None, tmp_path / "nope", None, "tvl1", 1)


def test_cli_reports_the_error_and_writes_no_run(tmp_path: Path, capsys) -> None:
    rc = main(["--dataset", "ucf101", "--data-root", str(tmp_path / "ucf"),
               "--out", str(tmp_path / "out"), "--gpu", "-1"])
    assert rc == 1
    assert "run_experiment: error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@requires_caffe
def test_relative_data_root_and_out_are_taken_from_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`tools/run_experiment.py --data-root data/x --out runs/y` as a user types it."""
    import json

    from co2fi_tools.miniature import prepare_data

    prepare_data(tmp_path / "data" / "x", classes=5, clips=3, frames=40, flow="farneback",
                 workers=1, seed=0)
    monkeypatch.chdir(tmp_path)
    rc = main(["--dataset", "synthetic", "--num-classes", "5", "--preset", "small",
               "--data-root", "data/x", "--out", "runs/y", "--gpu", "-1",
               "--methods", "Two-stream baseline", "--max-iter", "2"])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "runs" / "y"
    assert (out / "runs" / "baseline_flow" / "final.caffemodel").exists()
    results = json.loads((out / "results.json").read_text())["results"]
    assert {r["stream"] for r in results} == {"appearance", "motion", "two-stream"}
