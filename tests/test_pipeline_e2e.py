"""End to end on a tiny synthetic set: videos -> flow -> lists -> every demo stage -> tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import requires_caffe

pytestmark = requires_caffe

ARGS = ["--classes", "5", "--clips-per-class", "3", "--frames", "40", "--flow", "farneback",
        "--max-iter", "4", "--workers", "1"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from co2fi_tools.demo import main

    out = tmp_path_factory.mktemp("demo")
    assert main(["--out", str(out), *ARGS]) == 0
    return out


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
    grouper_list = json.loads((runs / "grouper_rgb" / "config.json").read_text())
    assert grouper_list["train_list_tag"] == "frac8"
    assert "_frac8.txt" in (runs / "grouper_rgb" / "train.prototxt").read_text()
    for variant in ("baseline_rgb", "co2fi_flow", "co2fi_asyn_d5_flow_centred"):
        assert (demo_run / "scores" / f"{variant}.h5").exists()
    assert list((demo_run / "plots").glob("*/*.png"))
    assert list((demo_run / "eval").glob("*/*/confusion.png"))


def test_fusion_towers_start_from_the_trained_single_stream_nets(demo_run: Path) -> None:
    log = (demo_run / "runs" / "co2fi_asyn_d5_rgb_centred" / "train.log").read_text()
    assert "copied  flow_t1/conv1_1 <- flow:conv1_1" in log
    assert "copied  rgb_t3/grouper_conv1 <- rgb:grouper_conv1" in log


def test_rerun_resumes_without_redoing_anything(demo_run: Path) -> None:
    from co2fi_tools.demo import main

    finals = sorted((demo_run / "runs").glob("*/final.caffemodel"))
    stamps = [p.stat().st_mtime_ns for p in finals]
    scores = [p.stat().st_mtime_ns for p in sorted((demo_run / "scores").glob("*.h5"))]
    assert main(["--out", str(demo_run), *ARGS]) == 0
    assert [p.stat().st_mtime_ns for p in finals] == stamps
    assert [p.stat().st_mtime_ns for p in sorted((demo_run / "scores").glob("*.h5"))] == scores
