"""The training-stage guard (co2fi_tools/training/health.py): loss heads that end above their
start and ReLUs that die are reported, on the console and in the run's log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from co2fi_tools.training.health import Probe, assess
from tests.conftest import requires_caffe
from tests.test_data_helpers import TINY, tiny_dataset  # noqa: F401 - fixture


def test_a_head_that_ends_above_its_start_is_reported():
    start = Probe({"loss": 1.68, "lstm": 2.4}, {"relu1": 0.4})
    end = Probe({"loss": 2.45, "lstm": 1.9}, {"relu1": 0.38})
    h = assess(start, end)
    assert h.rose == {"loss": (1.68, 2.45)} and not h.dead and not h.ok
    assert h.problems() == ["loss head loss rose 1.6800 -> 2.4500"]
    assert "2 loss heads (1 ended above their start), 1 ReLU layers (0 dead)" == h.summary()


def test_noise_within_the_tolerance_is_not_a_rise():
    h = assess(Probe({"loss": 2.0}, {}), Probe({"loss": 2.0 * 1.02 + 0.005}, {}))
    assert h.ok


def test_dead_and_collapsed_relus_are_reported():
    start = Probe({}, {"a": 0.40, "b": 0.40, "c": 0.40, "d": 0.01, "e": 0.051, "f": 0.06})
    end = Probe({}, {"a": 0.01, "b": 0.08, "c": 0.30, "d": 0.01, "e": 0.046, "f": 0.045})
    h = assess(start, end)
    # d was never alive; c is fine; e hovers at the line (the demo's textures trunk, 5.0 % ->
    # 4.6 %); f crossed it losing a quarter of its units
    assert set(h.dead) == {"a", "b", "f"}
    assert h.problems()[0] == "ReLU a: 1.0 % of units active (was 40 %)"


def test_a_nan_loss_counts_as_a_rise_and_without_a_start_only_dead_relus_count():
    assert "loss" in assess(Probe({"loss": 1.0}, {}), Probe({"loss": float("nan")}, {})).rose
    h = assess(None, Probe({"loss": 9.0}, {"r": 0.0}))
    assert not h.rose and set(h.dead) == {"r"} and "no start weights" in h.summary()


def test_a_net_whose_softmax_heads_all_end_at_chance_is_reported_wherever_it_started():
    """CO2FI-no class grouping's appearance net (claims run, seed 0) started at ln 12 and
    ended at 2.47: no head rose, yet it learned nothing."""
    ln12 = float(np.log(12))
    start = Probe({"c2f_loss_t3": 2.4847, "group": 1.0}, {}, {"c2f_loss_t3": ln12})
    end = Probe({"c2f_loss_t3": 2.4518, "group": 3.0}, {}, {"c2f_loss_t3": ln12})
    h = assess(start, end)
    assert h.at_chance == {"c2f_loss_t3": (2.4518, ln12)} and not h.ok
    assert "1 at chance" in h.summary()
    assert h.problems()[-1] == ("loss head c2f_loss_t3 ended at chance: 2.4518 (ln of its "
                                "classes: 2.4849)")
    learned = assess(start, Probe({"c2f_loss_t3": 1.8}, {}, {"c2f_loss_t3": ln12}))
    assert not learned.at_chance
    # one head of many at chance is not a net that learned nothing (the demo's frozen flow
    # tower on t5, whose shared weights are above chance on t1..t4)
    heads = {"flow_t5/loss": ln12 - 0.005, "flow_t1/loss": 1.9, "async_loss_t5": 1.1}
    some = assess(None, Probe(heads, {}, dict.fromkeys(heads, ln12)))
    assert some.ok


@requires_caffe
def test_the_guard_catches_a_stage_that_ruins_its_net(tiny_dataset: Path, tmp_path: Path,  # noqa: F811
                                                     capsys) -> None:
    """A stage started from trained weights at 50x the learning rate: the probe on the same
    fixed batches says its loss rose and its ReLUs died, and the run's log says so."""
    from co2fi_tools.pipeline import report_health
    from co2fi_tools.training.train import TrainJob, train
    from netgen.emit import generate, write
    from netgen.presets import SMALL

    write(generate(SMALL, "synthetic", TINY["num_classes"], names=["baseline_rgb"]), tmp_path)
    net = tmp_path / "prototxt/small/synthetic/baseline_rgb_train.prototxt"
    solver = tmp_path / "solvers/small/synthetic/baseline_rgb_solver.prototxt"
    common = dict(train_net=str(net), solver=str(solver), data_root=str(tiny_dataset),
                  num_classes=TINY["num_classes"], seed=1)
    good = train(TrainJob(name="good", max_iter=30, **common), tmp_path / "good")
    bad_job = TrainJob(name="bad", max_iter=10, base_lr=0.15, weights=str(good), **common)
    bad = train(bad_job, tmp_path / "bad")
    report_health(bad_job, tmp_path / "bad", bad)
    out = capsys.readouterr().out
    assert "bad: WARNING: " in out
    log = (tmp_path / "bad" / "train.log").read_text()
    assert "co2fi: health: 1 loss heads" in log and "co2fi: health: WARNING: " in log
    record = json.loads((tmp_path / "bad" / "health.json").read_text())
    assert record["end"]["chance"] == {"loss": pytest.approx(np.log(TINY["num_classes"]))}
    # the first stage, started from nothing, has nothing to compare and nothing dead (after
    # 30 iterations it is still at chance, and the guard says that)
    report_health(TrainJob(name="good", max_iter=30, **common), tmp_path / "good", good)
    warnings = [x for x in capsys.readouterr().out.splitlines() if "good: WARNING" in x]
    assert not [x for x in warnings if "at chance" not in x], warnings


if __name__ == "__main__":
    pytest.main([__file__])
