"""co2fi_tools.training.runs: the run folder's snapshots and their pruning (no Caffe)."""

from __future__ import annotations

from pathlib import Path

import pytest

from co2fi_tools.training.runs import Run


def _snapshot(run: Run, iteration: int, state: bool = True, h5: bool = False) -> None:
    run.snapshots.mkdir(parents=True, exist_ok=True)
    suffix = ".h5" if h5 else ""
    (run.snapshots / f"{run.name}_iter_{iteration}.caffemodel{suffix}").write_bytes(b"w")
    if state:
        (run.snapshots / f"{run.name}_iter_{iteration}.solverstate{suffix}").write_bytes(b"s")


def test_prune_keeps_the_newest_complete_snapshots(tmp_path: Path) -> None:
    run = Run(tmp_path, "net")
    for it in (5000, 10000, 15000, 20000):
        _snapshot(run, it)
    _snapshot(run, 25000, state=False)  # being written: weights saved, solver state not yet
    (run.snapshots / "other_iter_5000.caffemodel").write_bytes(b"x")  # another run's name
    deleted = run.prune_snapshots(2)
    assert sorted(p.name for p in deleted) == [
        "net_iter_10000.caffemodel", "net_iter_10000.solverstate",
        "net_iter_5000.caffemodel", "net_iter_5000.solverstate"]
    assert sorted(p.name for p in run.snapshots.iterdir()) == [
        "net_iter_15000.caffemodel", "net_iter_15000.solverstate",
        "net_iter_20000.caffemodel", "net_iter_20000.solverstate",
        "net_iter_25000.caffemodel", "other_iter_5000.caffemodel"]
    assert run.latest_solverstate()[0] == 20000  # resume still finds the newest
    assert run.prune_snapshots(2) == []


def test_prune_handles_hdf5_snapshots_and_refuses_zero(tmp_path: Path) -> None:
    run = Run(tmp_path, "net")
    for it in (1, 2, 3):
        _snapshot(run, it, h5=True)
    run.prune_snapshots(1)
    assert sorted(p.name for p in run.snapshots.iterdir()) == [
        "net_iter_3.caffemodel.h5", "net_iter_3.solverstate.h5"]
    with pytest.raises(ValueError, match="at least 1"):
        run.prune_snapshots(0)
