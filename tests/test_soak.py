"""The soak's own checks (co2fi_tools.soak; the soak itself is `make soak`, not in CI): what it
counts as complete, what it calls corrupt, how it compares two runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from co2fi_tools import soak
from co2fi_tools.training.runs import Run
from tests.conftest import requires_caffe
from tests.test_runs import write_snapshot

pytestmark = requires_caffe


def _finished_run(out: Path, name: str, value: float) -> Path:
    run = Run(out / "runs" / name, name)
    state = write_snapshot(run, 20, value=value)
    model = state.with_suffix(".caffemodel")
    run.final_weights.write_bytes(model.read_bytes())
    (run.path / "health.json").write_text("{}")  # probed: the pipeline is done with it
    return run.path


def test_only_finished_steps_count_as_complete(tmp_path: Path) -> None:
    done = _finished_run(tmp_path, "a", 1.0)
    unfinished = Run(tmp_path / "runs" / "b", "b")
    write_snapshot(unfinished, 10)
    unprobed = _finished_run(tmp_path, "c", 1.0)  # final weights, not probed yet
    (unprobed / "health.json").unlink()
    frames = tmp_path / "data" / "frames"
    (frames / "v1").mkdir(parents=True)
    (frames / "v1" / "img_00001.jpg").write_bytes(b"x")
    (frames / "v1" / ".done").write_text("{}")
    (frames / "v2").mkdir()
    (frames / "v2" / "img_00001.jpg").write_bytes(b"x")  # not done
    files = {str(p.relative_to(tmp_path)) for p in soak.complete_files(tmp_path)}
    assert "runs/a/final.caffemodel" in files and "runs/a/snapshots/a_iter_20.caffemodel" in files
    assert not [f for f in files if f.startswith(("runs/b", "runs/c"))]
    assert "data/frames/v1/img_00001.jpg" in files
    assert "data/frames/v2/img_00001.jpg" not in files
    assert done.exists()


def test_truncated_and_unparsable_files_are_found(tmp_path: Path) -> None:
    report = soak.Report(0, [])
    run = _finished_run(tmp_path, "a", 1.0)
    model = run / "snapshots" / "a_iter_20.caffemodel"
    model.write_bytes(model.read_bytes()[:-3])
    (tmp_path / "experiment.json").write_text("{not json")
    (run / "snapshots" / ".writing").mkdir()
    (run / "snapshots" / ".writing" / "a_iter_30.caffemodel").write_bytes(b"cut")
    soak.check_all(tmp_path, report)
    assert report.files_checked >= 4
    corrupt = "\n".join(report.corrupt_files)
    assert "a_iter_20.solverstate: cannot be read (truncated?)" in corrupt  # its weights are cut
    assert "a_iter_20.caffemodel: " in corrupt and "experiment.json: JSONDecodeError" in corrupt
    assert report.leftovers == [str(run / "snapshots" / ".writing" / "a_iter_30.caffemodel")]


def test_differences_are_zero_for_equal_runs_and_named_for_others(tmp_path: Path) -> None:
    record = {"schema": "co2fi-results/1", "results": [
        {"method": "M", "stream": "two-stream", "accuracy": 0.5, "mean_class_accuracy": 0.5,
         "top5": 1.0}]}
    for name, value, acc in (("x", 1.0, 0.5), ("y", 1.0, 0.5), ("z", 1.25, 0.75)):
        _finished_run(tmp_path / name, "a", value)
        record["results"][0]["accuracy"] = acc
        (tmp_path / name / "results.json").write_text(json.dumps(record))
    assert soak.differences(tmp_path / "x", tmp_path / "y") == {
        "table_points": 0.0, "scores": 0.0, "weights": 0.0}
    diff = soak.differences(tmp_path / "x", tmp_path / "z")
    assert diff["table_points"] == 25.0 and diff["weights"] == 0.25


def test_kill_delays_scale_with_the_uninterrupted_run_unless_given() -> None:
    # 24 kills of a 54 s run (2 quiet cores): kills come within 1-2.25 s of each (re)start
    assert soak.kill_delays(1.0, None, 54.0, 24) == (1.0, 2.25)
    assert soak.kill_delays(1.0, None, 240.0, 24) == (1.0, 10.0)  # a slower machine
    assert soak.kill_delays(1.0, None, 10.0, 24) == (1.0, 2.0)  # never below min + 1 s
    assert soak.kill_delays(2.0, 12.0, 54.0, 24) == (2.0, 12.0)  # as the user gave them


def test_a_reused_reference_keeps_its_duration(tmp_path, monkeypatch) -> None:
    ref = tmp_path / "ref1"
    ref.mkdir()
    (ref / "results.json").write_text("{}")
    (ref / soak.REFERENCE_TIME).write_text('{"minutes": 1.5}')
    monkeypatch.setattr(soak, "_start", lambda *a: pytest.fail("a finished reference reran"))
    assert soak.reference_run(ref, [], tmp_path / "log", 10) == 1.5
