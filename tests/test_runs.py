"""co2fi_tools.training.runs: the run folder's snapshots, the one resume picks, its settings,
pruning (fast: tiny files; the snapshot checks write real Caffe protobufs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from co2fi_tools.training.runs import Run
from tests.conftest import requires_caffe


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


# --- the snapshot resume picks (fast: tiny files written with caffe_pb2) ------------------------


def write_snapshot(run: Run, iteration: int, value: float = 1.0, history: float = 0.5,
                   state_iter: int | None = None) -> Path:
    """A tiny but real Caffe snapshot: weights ``[value, 2]`` in layer fc, solver history
    ``[history]``; returns the .solverstate."""
    from caffe.proto import caffe_pb2

    run.snapshots.mkdir(parents=True, exist_ok=True)
    net = caffe_pb2.NetParameter(name="tiny")
    layer = net.layer.add(name="fc", type="InnerProduct")
    layer.blobs.add(data=[value, 2.0]).shape.dim.extend([2])
    model = run.snapshots / f"{run.name}_iter_{iteration}.caffemodel"
    model.write_bytes(net.SerializeToString())
    state = caffe_pb2.SolverState(iter=iteration if state_iter is None else state_iter,
                                  learned_net=str(model))
    state.history.add(data=[history]).shape.dim.extend([1])
    path = run.snapshots / f"{run.name}_iter_{iteration}.solverstate"
    path.write_bytes(state.SerializeToString())
    return path


def write_h5_snapshot(run: Run, iteration: int, value: float = 1.0,
                      history: float = 0.5) -> Path:
    import h5py
    import numpy as np

    run.snapshots.mkdir(parents=True, exist_ok=True)
    with h5py.File(run.snapshots / f"{run.name}_iter_{iteration}.caffemodel.h5", "w") as f:
        f["data/fc/0"] = np.array([value, 2.0], dtype=np.float32)
        f["data/fc/count"] = np.array([7], dtype=np.int32)  # not a float: never "non-finite"
    path = run.snapshots / f"{run.name}_iter_{iteration}.solverstate.h5"
    with h5py.File(path, "w") as f:
        f["iter"] = iteration
        f["history/0"] = np.array([history], dtype=np.float32)
    return path


@requires_caffe
def test_a_sound_snapshot_has_no_problem(tmp_path: Path) -> None:
    from co2fi_tools.training.runs import snapshot_problem

    run = Run(tmp_path, "net")
    assert snapshot_problem(write_snapshot(run, 20)) is None
    assert snapshot_problem(write_h5_snapshot(run, 30)) is None


@requires_caffe
def test_each_snapshot_problem_is_named(tmp_path: Path) -> None:
    from co2fi_tools.training.runs import snapshot_problem

    run = Run(tmp_path, "net")
    nan, inf = float("nan"), float("inf")
    assert snapshot_problem(write_snapshot(run, 1, value=nan)) == (
        "holds non-finite (NaN/inf) values")
    assert snapshot_problem(write_snapshot(run, 2, history=inf)) == (
        "holds non-finite (NaN/inf) values")
    assert snapshot_problem(write_snapshot(run, 3, state_iter=7)) == (
        "net_iter_3.solverstate holds iteration 7")
    assert snapshot_problem(write_h5_snapshot(run, 4, value=nan)) == (
        "holds non-finite (NaN/inf) values")
    assert snapshot_problem(write_h5_snapshot(run, 5, history=-inf)) == (
        "holds non-finite (NaN/inf) values")

    state = write_snapshot(run, 6)
    (run.snapshots / "net_iter_6.caffemodel").unlink()
    assert snapshot_problem(state) == "net_iter_6.caffemodel is missing"

    state = write_snapshot(run, 8)
    (run.snapshots / "net_iter_8.caffemodel").write_bytes(b"")  # a net without weights
    assert snapshot_problem(state) == "net_iter_8.caffemodel holds no weights"

    state = write_snapshot(run, 9)
    model = run.snapshots / "net_iter_9.caffemodel"
    model.write_bytes(model.read_bytes()[:-3])  # killed while writing
    assert snapshot_problem(state).startswith("cannot be read (truncated?): ")

    state = write_snapshot(run, 10)
    state.write_bytes(state.read_bytes()[:-2])
    assert snapshot_problem(state).startswith("cannot be read (truncated?): ")

    state = write_h5_snapshot(run, 11)
    state.write_bytes(state.read_bytes()[:100])
    assert snapshot_problem(state).startswith("cannot be read (truncated?): ")


@requires_caffe
def test_resume_takes_the_newest_sound_snapshot_and_lists_those_passed_over(
        tmp_path: Path) -> None:
    run = Run(tmp_path, "net")
    write_snapshot(run, 20)
    write_snapshot(run, 100)
    write_snapshot(run, 40, value=float("nan"))
    write_snapshot(run, 60)
    (run.snapshots / "net_iter_60.caffemodel").write_bytes(b"\x0a\xff")  # truncated
    (run.snapshots / "net_iter_120.solverstate").write_bytes(b"s")  # weights not written yet
    write_snapshot(Run(tmp_path, "other"), 200)  # another run's snapshots
    snaps = run.snapshots

    # unchecked: the newest complete pair, numerically (100 > 60 > 40 > 20)
    assert run.latest_solverstate() == (100, snaps / "net_iter_100.solverstate")
    assert run.unusable == []
    (snaps / "net_iter_100.caffemodel").unlink()
    assert run.latest_solverstate() == (60, snaps / "net_iter_60.solverstate")
    assert run.latest_solverstate(check=True) == (20, snaps / "net_iter_20.solverstate")
    assert [(p.name, why[:14]) for p, why in run.unusable] == [
        ("net_iter_60.solverstate", "cannot be read"),
        ("net_iter_40.solverstate", "holds non-fini")]
    (snaps / "net_iter_20.solverstate").write_bytes(b"\xff")
    assert run.latest_solverstate(check=True) is None
    assert [p.name for p, _ in run.unusable] == [
        "net_iter_60.solverstate", "net_iter_40.solverstate", "net_iter_20.solverstate"]
    assert run.latest_solverstate() == (60, snaps / "net_iter_60.solverstate")
    assert run.unusable == []  # only the last call's
    assert Run(tmp_path / "empty", "net").latest_solverstate(check=True) is None


# --- settings, config, discarding ---------------------------------------------------------------


def test_settings_differences_name_each_key_before_and_now(tmp_path: Path) -> None:
    import json

    run = Run(tmp_path, "net")
    settings = {"max_iter": 20, "seed": 0, "data": {"list": "a.txt"}, "init": {}}
    assert run.settings_differences(settings) == []  # a new folder
    run.config.write_text(json.dumps({"name": "net"}))
    assert run.settings_differences(settings) == []  # recorded before settings existed
    run.config.write_text(json.dumps({"settings": settings}))
    assert run.settings_differences(dict(settings)) == []
    now = dict(settings, max_iter=40, data={"list": "b.txt"}, tag="frac8")
    del now["seed"]
    assert run.settings_differences(now) == [
        'data: {"list": "a.txt"} -> {"list": "b.txt"}', "max_iter: 20 -> 40",
        "seed: 0 -> null", 'tag: null -> "frac8"']
    long = {"init": {"model": "/x/" + "w" * 100}}
    assert run.settings_differences(dict(settings, **long)) == [
        "init: {} -> " + '{"model": "/x/' + "w" * 63 + "..."]  # 77 characters and "..."
    for size, shown in ((78, '"' + "w" * 78 + '"'), (79, '"' + "w" * 76 + "...")):
        assert run.settings_differences(dict(settings, seed="w" * size)) == [
            f"seed: 0 -> {shown}"]  # 80 characters are shown whole, 81 are not
    assert run.settings_differences(dict(settings, data={"list": "a.txt", "b": 1})) == [
        'data: {"list": "a.txt"} -> {"b": 1, "list": "a.txt"}']  # keys sorted
    run.config.write_text("{not json")
    assert run.settings_differences(settings) == [
        f"{run.config} cannot be read (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))"]


def test_atomic_write_goes_through_a_hidden_temporary_beside_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from co2fi_tools.training.runs import atomic_write_text

    replaced = []
    real_replace = os.replace

    def replace(src, dst) -> None:
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "run" / "sub" / "config.json"  # folders made as needed
    atomic_write_text(path, "one")
    assert path.read_text() == "one"
    [(tmp, dst)] = replaced
    assert dst == path and tmp.parent == path.parent and tmp.name.startswith(".config.json.")

    def full(src, dst) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "two")
    assert path.read_text() == "one"
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left


def test_write_config_records_the_revision_it_resumed_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from co2fi_tools.training import runs

    run = Run(tmp_path / "run", "net")
    monkeypatch.setattr(runs, "code_revision", lambda: "aaa")
    run.write_config({"seed": 3})
    first = json.loads(run.config.read_text())
    assert first["code_revision"] == "aaa" and first["seed"] == 3 and first["name"] == "net"
    assert "resumed_from_revision" not in first
    text = run.config.read_text()
    assert text.endswith("}\n") and '\n  "code_revision"' in text  # indented, one line each
    assert list(json.loads(text)) == ["argv", "code_revision", "name", "seed"]  # sorted
    assert first["argv"] == sys.argv  # the command line that made the run
    monkeypatch.setattr(runs, "code_revision", lambda: "bbb")
    run.write_config({"seed": 3})
    second = json.loads(run.config.read_text())
    assert (second["code_revision"], second["resumed_from_revision"]) == ("bbb", "aaa")
    run.config.write_text("{")
    run.write_config({"seed": 3})
    assert json.loads(run.config.read_text())["resumed_from_revision"] is None
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json"]  # no temporary left


def test_discard_moves_the_run_aside_and_keeps_other_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    run = Run(tmp_path, "net")
    assert run.discard() is None and not run.discarded.exists()
    monkeypatch.setattr(time, "strftime", lambda fmt: "20261130-010203")
    _snapshot(run, 20)
    for part in (run.config, run.log, run.final_weights):
        part.write_text(part.name)
    (tmp_path / "notes.txt").write_text("mine")
    dest = run.discard()
    assert dest == tmp_path / "discarded" / "20261130-010203"
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.json", "final.caffemodel", "snapshots", "train.log"]
    assert sorted(p.name for p in (dest / "snapshots").iterdir()) == [
        "net_iter_20.caffemodel", "net_iter_20.solverstate"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["discarded", "notes.txt"]
    run.log.write_text("again")  # discarded twice within a second
    assert run.discard() == tmp_path / "discarded" / "20261130-010203x"
    assert (tmp_path / "discarded" / "20261130-010203x" / "train.log").read_text() == "again"


def test_snapshot_pairs_group_each_iterations_files_oldest_first(tmp_path: Path) -> None:
    run = Run(tmp_path, "net")
    _snapshot(run, 100, h5=True)
    _snapshot(run, 20)
    _snapshot(run, 3, state=False)
    (run.snapshots / "net_iter_7.log").write_text("x")
    assert [(it, sorted(p.name for p in files)) for it, files in run.snapshot_pairs()] == [
        (3, ["net_iter_3.caffemodel"]),
        (20, ["net_iter_20.caffemodel", "net_iter_20.solverstate"]),
        (100, ["net_iter_100.caffemodel.h5", "net_iter_100.solverstate.h5"])]


def test_prune_keeps_exactly_k_and_nothing_without_a_complete_snapshot(tmp_path: Path) -> None:
    run = Run(tmp_path, "net")
    _snapshot(run, 10, state=False)
    assert run.prune_snapshots(1) == []  # no complete snapshot: nothing to resume from
    for it in (20, 30):
        _snapshot(run, it)
    assert run.prune_snapshots(2) == [run.snapshots / "net_iter_10.caffemodel"]
    assert run.prune_snapshots(3) == []
    assert [it for it, _ in run.snapshot_pairs()] == [20, 30]
