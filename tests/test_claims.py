"""`make claims` (co2fi_tools.claims): verdicts, the summary's structure, and one tiny run end to
end (1 seed, a few iterations) whose trunk comes from the cached pretraining."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from co2fi_tools import claims
from co2fi_tools.evaluation.paired import PairedDifference
from tests.conftest import REPO_ROOT, requires_caffe


def _diff(low: float, high: float) -> PairedDifference:
    return PairedDifference((low + high) / 2, (high - low) / 4, (low, high), 3.0, 96, 3)


def test_verdict_reads_the_paired_interval() -> None:
    assert claims.verdict(_diff(0.01, 0.05)) == "held"
    assert claims.verdict(_diff(-0.05, -0.01)) == "not held"
    assert claims.verdict(_diff(-0.01, 0.05)) == "within noise"


def test_summary_lists_every_row_and_claim() -> None:
    rows = {("Two-stream baseline", s): {"mca": [0.5, 0.6], "top1": [0.5, 0.6]}
            for s in claims.RESULT_STREAMS}
    rows[("CO2FI-complete", "two-stream")] = {"mca": [0.9, 0.91], "top1": [0.9, 0.9]}
    paired = {("CO2FI-complete", "Two-stream baseline", "two-stream"): _diff(0.02, 0.06),
              ("CO2FI+ASYN (Δ = 5)", "CO2FI-complete", "two-stream"): _diff(-0.08, -0.02)}
    markdown, summary = claims.summarise(rows, 96, "# t", paired=paired)
    for method in claims.TABLE1 + claims.TABLE2:
        assert f"| {method} |" in markdown
    assert "| Two-stream baseline | 2 | 55.0 ± 7.1 / 55.0 ± 7.1 |" in markdown
    verdicts = {c["claim"]: c["verdict"] for c in summary["claims"]}
    assert set(verdicts) == {c[0] for c in claims.CLAIMS}
    assert verdicts["co2fi>baseline"] == "held"
    assert verdicts["co2fi+asyn>co2fi"] == "not held"
    assert verdicts["asyn5>asyn1"] == "not run"
    assert ("| CO2FI-complete > Two-stream baseline (two-stream) | Table 1 | +4.0 | 1.0 | "
            "[+2.0, +6.0] | 3.0 of 96 | 3 | held |") in markdown
    assert "| CO2FI+ASYN (Δ = 5) | CO2FI-complete | -5.0 | 1.5 | [-8.0, -2.0] | 3.0 of 96 | 3 | " \
        "**no** (not held) |" in markdown
    assert "Largest paired standard error of a claim: 1.5 points (the miniature's target: at " \
        "most 3; met)." in markdown
    assert summary["largest_claim_se"] == 0.015


def test_paired_claims_come_from_each_seeds_score_files(tmp_path: Path) -> None:
    """Two seeds' score files (written as the evaluation writes them): the claim's difference
    is the mean class accuracy difference over the same videos, averaged over the seeds."""
    import numpy as np

    from co2fi_tools.evaluation.scores import ScoreWriter

    labels = [0, 0, 1, 1]
    right = {  # method -> per seed, which videos it gets right
        "Two-stream baseline": [[1, 0, 1, 0], [1, 0, 0, 0]],
        "CO2FI-complete": [[1, 1, 1, 0], [1, 0, 1, 1]],
    }
    variants = {"Two-stream baseline": ("baseline_rgb", "baseline_flow"),
                "CO2FI-complete": ("co2fi_rgb", "co2fi_flow")}
    for seed in range(2):
        for method, (rgb, flow) in variants.items():
            for variant, stream in ((rgb, "appearance"), (flow, "motion")):
                path = tmp_path / f"seed{seed}" / "scores" / f"{variant}.h5"
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = ScoreWriter(path, streams=[stream], num_periods=1, labels=labels,
                                     video_ids=[f"v{i}" for i in range(4)],
                                     class_names=["a", "b"], dataset="synthetic", split="1",
                                     net=variant, iteration=1)
                with writer:
                    for i, ok in enumerate(right[method][seed]):
                        score = np.zeros((1, 2), np.float32)
                        score[0, labels[i] if ok else 1 - labels[i]] = 1
                        writer.write(i, {stream: score})
    got = claims.collect_paired([tmp_path / "seed0", tmp_path / "seed1"],
                                [("CO2FI-complete", "Two-stream baseline", "two-stream"),
                                 ("Baseline+SYN", "Two-stream baseline", "two-stream")])
    d = got[("CO2FI-complete", "Two-stream baseline", "two-stream")]
    # per seed: (3/4 - 2/4) and (3/4 - 1/4); their mean
    assert d.mean == pytest.approx(0.375) and d.seeds == 2 and d.videos == 4
    assert ("Baseline+SYN", "Two-stream baseline", "two-stream") not in got  # not scored


@requires_caffe
def test_claims_tiny_end_to_end(tmp_path: Path) -> None:
    out, cache = tmp_path / "claims", tmp_path / "cache"
    methods = ["Two-stream baseline", "CO2FI-complete", "Baseline+ASYN (Δ = 5)"]
    # two seeds side by side (--jobs 2): each in its own process, folder and lock
    args = ["--out", str(out), "--seeds", "2", "--jobs", "2", "--classes", "6",
            "--clips-per-class", "4",
            "--test-clips", "2", "--test-periods", "2", "--frames", "40", "--flow", "farneback",
            "--max-iter", "3", "--fusion-iters", "2",
            "--pretrain-iters", "3", "--pretrain-clips", "2", "--pretrain-cache", str(cache),
            "--workers", "1", "--methods", *methods]
    env = dict(os.environ, GLOG_minloglevel="2")
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "claims.py"), *args],
                          env=env, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "claims.json").read_text())
    got = {(r["method"], r["stream"]): r["seeds"] for r in summary["rows"]}
    assert got[("CO2FI-complete", "motion")] == ["seed0", "seed1"]
    assert got[("Baseline+ASYN (Δ = 5)", "two-stream")] == ["seed0", "seed1"]
    assert "2 seeds, 2 at a time" in done.stdout
    verdicts = {c["claim"]: c["verdict"] for c in summary["claims"]}
    assert verdicts["co2fi>baseline"] in {"held", "not held", "within noise"}
    assert verdicts["asyn5>baseline"] in {"held", "not held", "within noise"}
    assert verdicts["asyn5>asyn1"] == "not run"
    assert "| CO2FI-complete | 2 |" in (out / "claims.md").read_text()
    assert "## Two-stream accuracy by class kind" in (out / "claims.md").read_text()
    assert set(summary["class_kinds"]) == set(methods)
    # The cached trunk started the baseline streams (flow: cross-modality) and the groupers.
    trunk = next(cache.iterdir())
    assert (trunk / "vgg16_trunk.caffemodel").exists()
    runs = out / "seed0" / "runs"
    assert "conv1_1 <- vgg16:conv1_1" in (runs / "baseline_flow" / "train.log").read_text()
    assert "grouper_conv1 <- cnn_m_2048:conv1" in (runs / "grouper_rgb" / "train.log").read_text()
    # The miniature's stages keep the generated solvers' step (--lr-step-fraction 0).
    for run in ("baseline_flow", "grouper_rgb", "co2fi_rgb", "baseline_asyn_d5_rgb_centred"):
        assert "stepsize: 1000\n" in (runs / run / "solver.prototxt").read_text(), run
    # The miniature's dropout (0: no Dropout layer) holds for every net, the pretraining's too.
    nets = out / "seed0" / "nets" / "prototxt" / "small" / "synthetic"
    text = (nets / "baseline_rgb_train.prototxt").read_text()
    assert 'type: "Dropout"' not in text and 'type: "InnerProduct"' in text
    grouper = (trunk / "runs" / "grouper_rgb" / "train.prototxt").read_text()
    assert 'type: "Dropout"' not in grouper and 'type: "InnerProduct"' in grouper
    # A rerun resumes: nothing retrains, the trunk is not pretrained again.
    again = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "claims.py"), *args],
                           env=env, capture_output=True, text=True, timeout=3000)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(cached)" in again.stdout and "(training)" not in again.stdout
    # The test set and its periods are the run's: 2 clips a class, each scored on 2 periods.
    from co2fi_tools.evaluation.scores import load_scores

    assert summary["num_test_videos"] == 12
    fused = load_scores(out / "seed0" / "scores" / "baseline_asyn_d5_rgb_centred.h5")
    assert next(iter(fused.scores.values())).shape == (12, 2, 6)
    assert "(2 a class tested, 2 periods a test video)" in (out / "claims.md").read_text()
    # Another test set into the same folder: one line naming the difference, nothing made.
    other = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "claims.py"),
                            *args[:-len(methods) - 1], "--test-clips", "1", "--methods",
                            *methods], env=env, capture_output=True, text=True, timeout=600)
    assert other.returncode == 1
    assert other.stderr.count("\n") == 1 and "test_clips" in other.stderr, other.stderr
    assert str(out) in other.stderr


def test_class_kind_accuracy_comes_from_each_seeds_per_class_table(tmp_path: Path) -> None:
    from co2fi_tools.evaluation.evaluate import artifacts_dir

    for seed, (pair_right, product_right) in enumerate([(3, 8), (1, 4)]):
        table = artifacts_dir(tmp_path / f"seed{seed}", "Baseline+SYN", "two-stream")
        table.mkdir(parents=True)
        (table / "per_class.csv").write_text(
            "index,class,videos,correct,recall,most_confused_with\n"
            f"0,APairSame,4,{pair_right},0,\n1,BUp,8,{product_right},0,\n2,BDown,8,0,0,\n")
    kinds = {"APairSame": "pair", "BUp": "product", "BDown": "product"}
    got = claims.collect_kinds([tmp_path / "seed0", tmp_path / "seed1", tmp_path / "seed2"],
                               kinds)
    assert got == {"Baseline+SYN": {"pair": [0.75, 0.25], "product": [0.5, 0.25]}}
    markdown, summary = claims.summarise({}, 96, "# t", got)
    assert "| Baseline+SYN | 50.0 ± 35.4 | 37.5 ± 17.7 |" in markdown
    assert summary["class_kinds"] == got


def test_claims_test_set_is_sized_for_paired_differences() -> None:
    """The defaults of `make claims`: the demo's 24 training clips a class, 32 test clips a
    class (384 test videos), 4 periods each (docs/MINIATURE.md)."""
    import argparse

    from co2fi_tools import miniature

    ap = argparse.ArgumentParser()
    ap.add_argument("--max-iter", type=int)
    ap.add_argument("--fusion-iters", type=int)
    miniature.add_arguments(ap)
    args = ap.parse_args([])
    miniature.resolve_sizes(args, claims.CLAIMS_ITERS, claims.CLAIMS_FUSION_ITERS,
                            claims.CLAIMS_CLIPS, claims.CLAIMS_TEST_CLIPS, ap=ap)
    mini, pre = miniature.from_arguments(args)
    assert (mini.clips_per_class - mini.test_clips, mini.test_clips) == (24, 32)
    assert mini.classes * mini.test_clips == 384 and claims.CLAIMS_TEST_PERIODS == 4
    assert (pre.classes, pre.clips_per_class, pre.design) == (16, 20, "pretrain_texture")


def test_a_run_made_smaller_scales_its_fusion_stages_and_pretraining_down() -> None:
    import argparse

    from co2fi_tools import miniature

    def resolved(**given) -> argparse.Namespace:
        args = argparse.Namespace(max_iter=None, fusion_iters=None, clips_per_class=None,
                                  pretrain_iters=None, pretrain_clips=None)
        vars(args).update(given)
        miniature.resolve_sizes(args, 500, 100)
        return args

    quick = resolved(max_iter=3, clips_per_class=3)
    assert (quick.max_iter, quick.fusion_iters, quick.pretrain_iters) == (3, 3, 3)
    assert (quick.clips_per_class, quick.pretrain_clips, quick.test_clips) == (3, 3, 1)
    full = resolved()
    assert (full.max_iter, full.fusion_iters) == (500, 100)
    assert (full.pretrain_iters, full.pretrain_clips) == (4000, 20)  # 16 texture classes
    assert (full.clips_per_class, full.test_clips) == (32, 8)
    with pytest.raises(ValueError, match=r"--test-clips must be in 1..2 \(of --clips-per-class "
                                         r"3\), got 3"):
        resolved(clips_per_class=3, test_clips=3)
    shapes = resolved(pretrain_design="shapes")
    assert shapes.pretrain_clips == 40  # 8 classes x 40: the textures design's 320 clips
    # what the user sets stays as set
    own = resolved(max_iter=3, fusion_iters=50, pretrain_iters=0, pretrain_clips=5)
    assert (own.fusion_iters, own.pretrain_iters, own.pretrain_clips) == (50, 0, 5)
