"""co2fi_tools.training.train: run folders, resume, divergence, both backends, bad data before
training."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import requires_caffe
from tests.test_data_helpers import tiny_dataset  # noqa: F401 - fixture

pytestmark = requires_caffe


def _job(tmp_path: Path, base_lr: float = 0.05, max_iter: int = 40, **kw):
    from co2fi_tools.training.train import TrainJob
    from tests.test_engine_training import _write_net_and_solver

    solver = _write_net_and_solver(tmp_path)
    text = solver.read_text().replace("base_lr: 0.05", f"base_lr: {base_lr}")
    solver.write_text(text)
    return TrainJob(name="tiny", train_net=str(tmp_path / "net.prototxt"), solver=str(solver),
                    max_iter=max_iter, snapshot=20, seed=7, meta={"variant": "tiny"}, **kw)


def test_pycaffe_run_folder_is_complete(tmp_path: Path) -> None:
    from co2fi_tools.training.train import train

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
    from co2fi_tools.training.train import train

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
    from co2fi_tools.training.train import train

    run = tmp_path / "run"
    train(_job(tmp_path), run)
    stamp = (run / "final.caffemodel").stat().st_mtime_ns
    train(_job(tmp_path), run)
    assert (run / "final.caffemodel").stat().st_mtime_ns == stamp


def test_diverging_loss_stops_with_a_snapshot(tmp_path: Path) -> None:
    from co2fi_tools.training.train import TrainingError, train

    with pytest.raises(TrainingError, match="training stopped") as err:
        train(_job(tmp_path, base_lr=1e8, max_iter=200), tmp_path / "run")
    assert "snapshot" in str(err.value)
    assert list((tmp_path / "run" / "snapshots").glob("tiny_iter_*.caffemodel"))
    assert not (tmp_path / "run" / "final.caffemodel").exists()


def test_caffe_tool_backend(tmp_path: Path) -> None:
    from co2fi_tools.training.train import train

    final = train(_job(tmp_path), tmp_path / "run", backend="tool")
    assert final.exists()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "/bin/caffe train --solver=" in log


def test_labels_beyond_the_net_classes_fail_before_training(tmp_path: Path) -> None:
    from co2fi_tools.training.train import TrainingError, TrainJob, train

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
    from co2fi_tools.training.train import TrainingError, check_data

    with pytest.raises(TrainingError, match="frames root .* is not a folder"):
        check_data({"root": str(tmp_path / "nope")}, 10, "net.prototxt layer data")


def test_relocate_points_default_paths_at_the_dataset_split_and_subset() -> None:
    from co2fi_tools.training.train import TrainJob, relocate

    job = TrainJob(name="g", train_net="n", solver="s", data_root="/d/ucf", split=2,
                   train_list_tag="frac8")
    params = {"list": "data/ucf101/lists/rgb_train_split1.txt", "root": "data/ucf101/frames",
              "modality": "rgb", "batch_size": 16}
    train = relocate(params, job, is_test=False)
    assert train == {"list": "/d/ucf/lists/rgb_train_split2_frac8.txt",
                     "root": "/d/ucf/frames", "modality": "rgb", "batch_size": 16}
    test = relocate({"list": "data/ucf101/lists/rgb_val_split1.txt", "modality": "rgb"}, job,
                    is_test=True)
    assert test == {"list": "/d/ucf/lists/rgb_val_split2.txt", "modality": "rgb"}
    # keys, not strings: a flow layer and a period layer get their own lists, whatever the
    # net's paths were
    flow = relocate({"list": "elsewhere.txt", "modality": "flow"}, job, is_test=True)
    assert flow["list"] == "/d/ucf/lists/flow_val_split2.txt"
    period = relocate({"rgb_list": "a", "flow_list": "b", "root": "c"}, job, is_test=False)
    assert period == {"rgb_list": "/d/ucf/lists/rgb_train_split2_frac8.txt",
                      "flow_list": "/d/ucf/lists/flow_train_split2_frac8.txt",
                      "root": "/d/ucf/frames"}


def test_a_split_without_a_dataset_folder_is_refused() -> None:
    from co2fi_tools.training.train import TrainingError, TrainJob, relocate

    params = {"list": "data/ucf101/lists/rgb_train_split1.txt", "modality": "rgb"}
    job = TrainJob(name="g", train_net="n", solver="s", split=2)
    with pytest.raises(TrainingError, match="give --data-root"):
        relocate(params, job, is_test=False)
    assert relocate(params, TrainJob(name="g", train_net="n", solver="s"), False) == params


@pytest.mark.parametrize("backend", ["pycaffe", "tool"])
def test_only_the_newest_snapshots_are_kept(tmp_path: Path, backend: str) -> None:
    from co2fi_tools.training.train import train

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
    from co2fi_tools.training.train import main

    rc = main(["--train-net", "n", "--solver", "s", "--run-dir", str(tmp_path / "r"),
               "--keep-snapshots", "0"])
    assert rc == 1 and not (tmp_path / "r").exists()


def _clip_net(tmp_path: Path, root: Path, **layer: object) -> tuple[Path, Path]:
    params = {"list": str(root / "lists" / "rgb_train_split1.txt"),
              "root": str(root / "frames"), "modality": "rgb", "batch_size": 8,
              "input_size": 16, "workers": 0, **layer}
    net = tmp_path / "clip_net.prototxt"
    net.write_text(
        'layer { name: "data" type: "Python" top: "data" top: "label" python_param { '
        'module: "co2fi_layers.clip_data" layer: "ClipDataLayer" '
        f"param_str: '{json.dumps(params)}' }} }}\n"
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
        'inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" '
        'top: "loss" }\n')
    solver = tmp_path / "clip_solver.prototxt"
    solver.write_text('base_lr: 0.01 lr_policy: "step" gamma: 0.5 stepsize: 2 max_iter: 4 '
                      'snapshot: 4 display: 1\n')
    return net, solver


def _solver_and_batch(run: Path) -> tuple[str, int]:
    solver = (run / "solver.prototxt").read_text()
    net = (run / "train.prototxt").read_text()
    batch = int(re.search(r'\\"batch_size\\": (\d+)', net).group(1))
    return solver, batch


def test_batch_per_gpu_trains_with_iter_size_keeping_the_batch(tmp_path: Path,
                                                                tiny_dataset) -> None:  # noqa: F811
    from co2fi_tools.training.train import TrainJob, train

    net, solver = _clip_net(tmp_path, tiny_dataset)
    job = TrainJob(name="clip", train_net=str(net), solver=str(solver), batch_per_gpu=4)
    assert train(job, tmp_path / "run").exists()  # on the CPU: 2 x 4 per update
    text, batch = _solver_and_batch(tmp_path / "run")
    assert batch == 4 and "iter_size: 2" in text
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["batch_per_gpu"] == 4


def test_several_gpus_go_to_pycaffe_nccl_and_a_cpu_build_says_so(tmp_path: Path,
                                                                 tiny_dataset) -> None:  # noqa: F811
    import caffe

    from co2fi_tools.training.train import TrainingError, TrainJob, train

    net, solver = _clip_net(tmp_path, tiny_dataset)
    job = TrainJob(name="clip", train_net=str(net), solver=str(solver), gpus=(0, 1))
    with pytest.raises(ValueError, match="needs --backend pycaffe"):
        train(job, tmp_path / "tool", backend="tool")
    if caffe.has_nccl():
        pytest.skip("this Caffe has NCCL: the refusal below is for CPU builds")
    with pytest.raises(TrainingError) as err:
        train(job, tmp_path / "run")
    assert "this Caffe build has no NCCL" in str(err.value)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "--gpus=0,1" in log  # one solver process per GPU, through the worker
    text, batch = _solver_and_batch(tmp_path / "run")
    assert batch == 4 and "iter_size: 1" in text and "solver_mode: GPU" in text


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars of the event files in ``folder`` (TFRecord framing)."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_solver_worker_writes_live_tensorboard_curves(tmp_path: Path, tiny_dataset) -> None:  # noqa: F811
    from co2fi_tools.training.train import TrainJob, train

    net, solver = _clip_net(tmp_path, tiny_dataset)
    train(TrainJob(name="clip", train_net=str(net), solver=str(solver)), tmp_path / "run")
    scalars = _scalars(tmp_path / "run" / "tensorboard")
    assert sorted(scalars) == ["loss/loss", "loss/total", "lr"]
    assert [step for step, _ in scalars["loss/total"]] == [0, 1, 2, 3]
    assert scalars["loss/total"] == scalars["loss/loss"]  # one head, weight 1
    # numbered as Caffe's log: "Iteration 2, lr = 0.005" (step policy, gamma 0.5 every 2)
    assert [v for _, v in scalars["lr"]] == pytest.approx([0.01, 0.01, 0.005, 0.005])
    log = (tmp_path / "run" / "train.log").read_text()
    logged = {int(i): float(v) for i, v in re.findall(r"Iteration (\d+) \(.*\), loss = (\S+)",
                                                      log)}
    assert logged and all(v == pytest.approx(dict(scalars["loss/total"])[i], rel=1e-4)
                          for i, v in logged.items())


def _first_batch(run: Path) -> dict:
    """Batch 0 as the run's own TRAIN data layer draws it."""
    import numpy as np

    from co2fi_layers.batches import ClipBatches
    from co2fi_tools.training.train import _caffe_pb2, read_prototxt, train_data_layers

    net = read_prototxt(run / "train.prototxt", _caffe_pb2().NetParameter())
    (layer,) = train_data_layers(net)
    params = json.loads(layer.python_param.param_str)
    source = ClipBatches.from_params(params)
    outputs = {name: np.zeros(shape, np.float32) for name, shape in source.shapes().items()}
    source.fill(0, outputs)
    return {"seed": params["seed"], **outputs}


def test_the_runs_seed_draws_its_data_not_only_its_weights(tmp_path: Path,
                                                           tiny_dataset) -> None:  # noqa: F811
    import numpy as np

    from co2fi_tools.training.train import TrainJob, train

    net, solver = _clip_net(tmp_path, tiny_dataset, seed=0)  # as netgen writes it
    batches = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        job = TrainJob(name="clip", train_net=str(net), solver=str(solver), seed=seed)
        assert train(job, tmp_path / name).exists()
        batches[name] = _first_batch(tmp_path / name)
    assert [batches[n]["seed"] for n in "abc"] == [5, 5, 6]
    assert np.array_equal(batches["a"]["data"], batches["b"]["data"])  # reproducible
    assert not np.array_equal(batches["a"]["data"], batches["c"]["data"])  # another draw
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["settings"]["data_seed"] == 6
