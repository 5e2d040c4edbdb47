"""co2fi_tools.parallel: experiments side by side in child processes (`make claims --jobs`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from co2fi_tools.parallel import run_side_by_side
from co2fi_tools.pipeline import Experiment


def _experiment(out: Path, methods: tuple[str, ...]) -> Experiment:
    return Experiment(dataset="synthetic", data_root=out / "data", num_classes=4, out=out,
                      preset="small", methods=methods)


def test_a_failing_experiment_is_one_line_naming_its_folder_and_stops_the_queue(tmp_path):
    bad = _experiment(tmp_path / "seed0", ("No such method",))
    later = _experiment(tmp_path / "seed2", ("No such method",))
    done: list[int] = []
    with pytest.raises(RuntimeError) as exc:
        run_side_by_side([bad, later], jobs=1, on_done=done.append)
    message = str(exc.value)
    assert message.startswith(f"{tmp_path / 'seed0'}: ") and "No such method" in message
    assert "\n" not in message and done == []
    assert not (tmp_path / "seed2").exists()  # never started


def test_jobs_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="jobs must be 1 or more, got 0"):
        run_side_by_side([_experiment(tmp_path, ("Two-stream baseline",))], jobs=0)


def test_a_child_that_ends_without_a_report_is_named_with_its_exit_code(tmp_path):
    import multiprocessing
    import os

    from co2fi_tools.parallel import _silent_death

    context = multiprocessing.get_context("spawn")
    child = context.Process(target=os._exit, args=(9,))
    child.start()
    child.join()
    index, line = _silent_death({0: child}, [_experiment(tmp_path / "seed0", ())])
    assert index == 0
    assert line.startswith(f"{tmp_path / 'seed0'}: its process ended with exit code 9")
