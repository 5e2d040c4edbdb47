"""End to end on a tiny synthetic set: videos -> flow -> lists -> every demo stage -> tables.

The demo runs as `make demo` runs it: `python tools/demo.py` with its default, relative
``--out runs/demo``, here from a temporary working directory (tiny sizes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, requires_caffe

pytestmark = requires_caffe

ARGS = ["--classes", "5", "--clips-per-class", "3", "--frames", "40", "--flow", "farneback",
        "--max-iter", "4", "--fusion-iters", "4", "--workers", "1",
        "--pretrain-iters", "3", "--pretrain-clips", "2", "--pretrain-cache", "pretrain-cache"]


def run_demo(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """tools/demo.py as the Makefile's `demo` target calls it, in ``cwd``."""
    env = dict(os.environ, GLOG_minloglevel="2")
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "demo.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("cwd")
    done = run_demo(cwd, *ARGS)
    assert done.returncode == 0, done.stderr[-3000:]
    out = cwd / "runs" / "demo"  # the default --out, relative to the working directory
    assert (out / "results.json").exists()
    # The trunk was pretrained into the relative --pretrain-cache, and it started the nets.
    assert list((cwd / "pretrain-cache").glob("*/vgg16_trunk.caffemodel"))
    log = (out / "runs" / "baseline_rgb" / "train.log").read_text()
    assert "conv1_1 <- vgg16:conv1_1" in log
    return out


def test_makefile_demo_target_is_tools_demo_with_default_arguments() -> None:
    recipe = (REPO_ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n")[1]
    assert recipe.strip() == "$(PY) tools/demo.py $(DEMO_ARGS)"


def test_every_demo_method_is_evaluated_and_compared(demo_run: Path) -> None:
    results = json.loads((demo_run / "results.json").read_text())["results"]
    got = {(r["method"], r["stream"]) for r in results}
    for method in ("Two-stream baseline", "CO2FI-complete"):
        assert {(method, s) for s in ("appearance", "motion", "two-stream")} <= got
    assert ("CO2FI+ASYN (Δ = 5)", "two-stream") in got
    assert ("CO2FI", "two-stream") in got  # Table 2's name for CO2FI-complete
    for r in results:
        assert r["dataset"] == "synthetic" and r["split"] == "1"
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["mean_class_accuracy"] <= 1.0
    table = (demo_run / "comparison.md").read_text()
    assert "ours: synthetic split 1, not comparable in absolute terms" in table
    assert "ours UCF101" not in table


def test_stages_scores_and_plots_are_written(demo_run: Path) -> None:
    runs = demo_run / "runs"
    for stage in ("grouper_rgb", "grouper_flow", "baseline_rgb", "co2fi_flow",
                  "co2fi_asyn_d5_rgb_centred", "co2fi_asyn_d5_flow_centred"):
        assert (runs / stage / "final.caffemodel").exists(), stage
        assert "co2fi: initial weights" in (runs / stage / "train.log").read_text() or \
            stage.startswith(("grouper", "baseline"))
    # the demo trains at a constant rate (--lr-step-fraction 0: the generated solver's step)
    assert "stepsize: 1000\n" in (runs / "baseline_rgb" / "solver.prototxt").read_text()
    grouper_list = json.loads((runs / "grouper_rgb" / "config.json").read_text())
    assert grouper_list["train_list_tag"] == "frac8"
    assert "_frac8.txt" in (runs / "grouper_rgb" / "train.prototxt").read_text()
    for variant in ("baseline_rgb", "co2fi_flow", "co2fi_asyn_d5_flow_centred"):
        assert (demo_run / "scores" / f"{variant}.h5").exists()
    assert list((demo_run / "plots").glob("*/*.png"))
    assert list((demo_run / "eval").glob("*/*/confusion.png"))


def test_fusion_towers_start_from_the_trained_single_stream_nets(demo_run: Path) -> None:
    # the warm-up phase (towers frozen) starts from the single-stream nets ...
    runs = demo_run / "runs"
    log = (runs / "co2fi_asyn_d5_rgb_centred_warmup" / "train.log").read_text()
    assert "copied  flow_t1/conv1_1 <- flow:conv1_1" in log
    assert "copied  rgb_t3/grouper_conv1 <- rgb_grouper:grouper_conv1" in log
    assert "copied  flow_t5/c2f_score_t3 <- flow:c2f_score_t3" in log
    # ... and the joint phase from the warm-up's final weights, as they are
    log = (runs / "co2fi_asyn_d5_rgb_centred" / "train.log").read_text()
    warm = runs / "co2fi_asyn_d5_rgb_centred_warmup" / "final.caffemodel"
    assert f"co2fi: initial weights {warm} (as they are)" in log
    assert "copied  " not in log
    for stream in ("rgb", "flow"):
        log = (demo_run / "runs" / f"co2fi_{stream}" / "train.log").read_text()
        assert "copied  grouper_fc8 <- grouper:grouper_fc8" in log


def test_rerun_resumes_without_redoing_anything(demo_run: Path) -> None:
    finals = sorted((demo_run / "runs").glob("*/final.caffemodel"))
    stamps = [p.stat().st_mtime_ns for p in finals]
    scores = [p.stat().st_mtime_ns for p in sorted((demo_run / "scores").glob("*.h5"))]
    # from another working directory, with the folders given relative to it
    done = run_demo(demo_run.parent, "--out", "demo", *ARGS,
                    "--pretrain-cache", "../pretrain-cache")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in finals] == stamps
    assert [p.stat().st_mtime_ns for p in sorted((demo_run / "scores").glob("*.h5"))] == scores


def test_generated_nets_name_the_experiment_data(demo_run: Path) -> None:
    net = demo_run / "nets" / "prototxt" / "small" / "synthetic" / "baseline_rgb_train.prototxt"
    text = net.read_text()
    assert str(demo_run / "data" / "lists" / "rgb_train_split1.txt") in text
    assert "data/synthetic/lists" not in text


def test_a_fusion_stage_cut_in_its_joint_phase_resumes_there(demo_run: Path) -> None:
    """Killed in the joint phase (its final weights and snapshots gone): the rerun trains the
    joint phase again from the warm-up's weights, and the warm-up is not redone."""
    runs = demo_run / "runs"
    warm = runs / "co2fi_asyn_d5_flow_centred_warmup" / "final.caffemodel"
    joint = runs / "co2fi_asyn_d5_flow_centred"
    stamp = warm.stat().st_mtime_ns
    (joint / "final.caffemodel").unlink()
    for snap in (joint / "snapshots").glob("*"):
        snap.unlink()
    done = run_demo(demo_run.parent, "--out", "demo", *ARGS,
                    "--pretrain-cache", "../pretrain-cache")
    assert done.returncode == 0, done.stderr[-3000:]
    assert warm.stat().st_mtime_ns == stamp
    assert (joint / "final.caffemodel").exists()
    assert "co2fi_asyn_d5_flow_centred (joint) (training)" in done.stdout
    assert "co2fi_asyn_d5_flow_centred (warmup: towers frozen) (done)" in done.stdout


def _train_data_params(run: Path) -> list[dict]:
    """The param_str of every TRAIN data layer of a run's net, as the run trained it."""
    from caffe.proto import caffe_pb2

    from co2fi_tools.training.train import read_prototxt, train_data_layers

    net = read_prototxt(run / "train.prototxt", caffe_pb2.NetParameter())
    return [json.loads(layer.python_param.param_str) for layer in train_data_layers(net)]


def test_the_joint_phase_reads_on_where_the_warmup_stopped(demo_run: Path) -> None:
    """A fusion stage's two phases are one data stream: the joint phase starts at the batch
    after the warm-up's last (it used to replay the warm-up's first batches, crops and all)."""
    from caffe.proto import caffe_pb2

    from co2fi_tools.training.train import read_prototxt

    for centre in ("rgb", "flow"):
        warm = demo_run / "runs" / f"co2fi_asyn_d5_{centre}_centred_warmup"
        joint = demo_run / "runs" / f"co2fi_asyn_d5_{centre}_centred"
        warm_iters = read_prototxt(warm / "solver.prototxt", caffe_pb2.SolverParameter()).max_iter
        assert warm_iters == 3  # --fusion-iters 4: three in the warm-up, one joint
        assert [p.get("first_batch", 0) for p in _train_data_params(warm)] == [0]
        assert [p.get("first_batch", 0) for p in _train_data_params(joint)] == [warm_iters]


def test_every_run_was_probed_and_no_fusion_stage_ends_worse_than_it_starts(
        demo_run: Path) -> None:
    """The guard ran after every stage; on this tiny fixture no fusion phase raised a tower's
    loss on the fixed probe batches, and the warm-up left the towers exactly as they were."""
    from co2fi_tools.training.health import Probe, assess

    for run in sorted((demo_run / "runs").iterdir()):
        if not (run / "final.caffemodel").exists():
            continue
        record = json.loads((run / "health.json").read_text())
        assert record["end"]["losses"] and record["end"]["active"], run.name
        if "_centred" not in run.name:
            continue
        health = assess(Probe(**record["start"]), Probe(**record["end"]))
        towers = {k: v for k, v in health.rose.items() if k.startswith(("rgb_t", "flow_t"))}
        assert not towers, (run.name, towers)
        if run.name.endswith("_warmup"):
            for name, value in record["end"]["losses"].items():
                if name.startswith(("rgb_t", "flow_t")):
                    assert value == pytest.approx(record["start"]["losses"][name], rel=1e-6)
