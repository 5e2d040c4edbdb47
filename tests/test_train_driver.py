"""co2fi_tools.train: run folders, resume, divergence, both backends, bad data before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import requires_caffe

pytestmark = requires_caffe


def _job(tmp_path: Path, base_lr: float = 0.05, max_iter: int = 40, **kw):
    from co2fi_tools.train import TrainJob
    from tests.test_engine_training import _write_net_and_solver

    solver = _write_net_and_solver(tmp_path)
    text = solver.read_text().replace("base_lr: 0.05", f"base_lr: {base_lr}")
    solver.write_text(text)
    return TrainJob(name="tiny", train_net=str(tmp_path / "net.prototxt"), solver=str(solver),
                    max_iter=max_iter, snapshot=20, seed=7, meta={"variant": "tiny"}, **kw)


def test_pycaffe_run_folder_is_complete(tmp_path: Path) -> None:
    from co2fi_tools.train import train

    final = train(_job(tmp_path), tmp_path / "run")
    run = tmp_path / "run"
    assert final == run / "final.caffemodel" and final.exists()
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 7 and config["code_revision"] and config["variant"] == "tiny"
    log = (run / "train.log").read_text()
    assert "Iteration 40" in log or "Snapshotting to binary proto file" in log
    assert (run / "snapshots" / "tiny_iter_40.caffemodel").exists()
    solver = (run / "solver.prototxt").read_text()
    assert "random_seed: 7" in solver and str(run / "train.prototxt") in solver


def test_resume_continues_from_the_last_snapshot(tmp_path: Path) -> None:
    from co2fi_tools.train import train

    job = _job(tmp_path)
    run = tmp_path / "run"
    train(job, run)
    # Interrupted after the snapshot at 20: the later snapshot and the final weights are gone.
    for p in [run / "final.caffemodel", *run.glob("snapshots/tiny_iter_40.*")]:
        p.unlink()
    (run / "train.log").write_text("")
    train(job, run)
    log = (run / "train.log").read_text()
    assert "--restore=" in log and "tiny_iter_20.solverstate" in log
    import re

    iters = [int(i) for i in re.findall(r"Iteration (\d+)", log)]
    assert iters and min(iters) >= 20
    assert "tiny_iter_40.caffemodel" in log
    assert (run / "final.caffemodel").exists()


def test_finished_run_is_not_redone(tmp_path: Path) -> None:
    from co2fi_tools.train import train

    run = tmp_path / "run"
    train(_job(tmp_path), run)
    stamp = (run / "final.caffemodel").stat().st_mtime_ns
    train(_job(tmp_path), run)
    assert (run / "final.caffemodel").stat().st_mtime_ns == stamp


def test_diverging_loss_stops_with_a_snapshot(tmp_path: Path) -> None:
    from co2fi_tools.train import TrainingError, train

    with pytest.raises(TrainingError, match="training stopped") as err:
        train(_job(tmp_path, base_lr=1e8, max_iter=200), tmp_path / "run")
    assert "snapshot" in str(err.value)
    assert list((tmp_path / "run" / "snapshots").glob("tiny_iter_*.caffemodel"))
    assert not (tmp_path / "run" / "final.caffemodel").exists()


def test_caffe_tool_backend(tmp_path: Path) -> None:
    from co2fi_tools.train import train

    final = train(_job(tmp_path), tmp_path / "run", backend="tool")
    assert final.exists()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "/bin/caffe train --solver=" in log


def test_labels_beyond_the_net_classes_fail_before_training(tmp_path: Path) -> None:
    from co2fi_tools.train import TrainingError, TrainJob, train

    frames = tmp_path / "frames"
    frames.mkdir()
    lst = tmp_path / "list.txt"
    lst.write_text("v1 10 0\nv2 10 12\n")
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "data" type: "Python" top: "data" top: "label" python_param { '
        'module: "co2fi_layers.clip_data" layer: "ClipDataLayer" param_str: "{}" } }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
        "inner_product_param { num_output: 10 } }\n"
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }\n')
    solver = tmp_path / "solver.prototxt"
    solver.write_text('base_lr: 0.1 lr_policy: "fixed" max_iter: 10\n')
    job = TrainJob(name="bad", train_net=str(net), solver=str(solver),
                   data={"list": str(lst), "root": str(frames)})
    msg = r"list.txt: label 12 does not fit the net's 10 classes"
    with pytest.raises(TrainingError, match=msg):
        train(job, tmp_path / "run")
    assert not (tmp_path / "run" / "snapshots").exists() or not any(
        (tmp_path / "run" / "snapshots").iterdir())


def test_missing_frames_root_fails_before_training(tmp_path: Path) -> None:
    from co2fi_tools.train import TrainingError, check_data

    with pytest.raises(TrainingError, match="frames root .* is not a folder"):
        check_data({"root": str(tmp_path / "nope")}, 10, "net.prototxt layer data")


def test_relocate_points_default_paths_at_the_dataset_split_and_subset() -> None:
    from co2fi_tools.train import TrainJob, relocate

    job = TrainJob(name="g", train_net="n", solver="s", data_root="/d/ucf", split=2,
                   train_list_tag="frac8")
    params = {"list": "data/ucf101/lists/rgb_train_split1.txt", "root": "data/ucf101/frames",
              "batch_size": 16}
    train = relocate(params, job, is_test=False)
    assert train == {"list": "/d/ucf/lists/rgb_train_split2_frac8.txt",
                     "root": "/d/ucf/frames", "batch_size": 16}
    test = relocate({"list": "data/ucf101/lists/rgb_val_split1.txt"}, job, is_test=True)
    assert test == {"list": "/d/ucf/lists/rgb_val_split2.txt"}


@pytest.mark.parametrize("backend", ["pycaffe", "tool"])
def test_only_the_newest_snapshots_are_kept(tmp_path: Path, backend: str) -> None:
    from co2fi_tools.train import train

    job = _job(tmp_path, max_iter=30, keep_snapshots=2)
    job.snapshot = 5
    final = train(job, tmp_path / "run", backend=backend)
    left = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert left == ["tiny_iter_25.caffemodel", "tiny_iter_25.solverstate",
                    "tiny_iter_30.caffemodel", "tiny_iter_30.solverstate"]
    assert final.exists()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "tiny_iter_5.solverstate" in log  # it was written, then pruned while training ran
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["keep_snapshots"] == 2


def test_keep_snapshots_below_one_is_refused(tmp_path: Path) -> None:
    from co2fi_tools.train import main

    rc = main(["--train-net", "n", "--solver", "s", "--run-dir", str(tmp_path / "r"),
               "--keep-snapshots", "0"])
    assert rc == 1 and not (tmp_path / "r").exists()
