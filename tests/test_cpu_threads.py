"""co2fi_tools.cpu_threads: the BLAS threads of CPU Caffe processes, and the usable cores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from co2fi_tools import cpu_threads
from tests.conftest import REPO_ROOT, requires_caffe

_PROBE = """
import co2fi_tools.claims  # loads Caffe (netgen reads caffe_pb2), so OpenBLAS with it
from co2fi_tools import cpu_threads
before = cpu_threads.blas_threads_in_force()
count = cpu_threads.set_blas_threads({threads})
print(before, count, cpu_threads.blas_threads_in_force())
"""


def _probe(threads, env_value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != cpu_threads.BLAS_THREADS_VARIABLE}
    if env_value is not None:
        env[cpu_threads.BLAS_THREADS_VARIABLE] = env_value
    done = subprocess.run([sys.executable, "-c", _PROBE.format(threads=threads)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


@requires_caffe
def test_the_default_makes_the_loaded_openblas_run_one_thread():
    before, count, after = _probe(None, None)
    assert before.isdigit()  # loaded with OpenBLAS's own count before the call: told at run time
    assert count == "1" and after == "1"


@requires_caffe
def test_the_users_environment_wins_over_the_default_and_a_flag_over_both():
    assert _probe(None, "2")[1:] == ["2", "2"]
    assert _probe(3, "2")[1:] == ["3", "3"]


def test_zero_leaves_the_environment_as_it_is(monkeypatch):
    monkeypatch.delenv(cpu_threads.BLAS_THREADS_VARIABLE, raising=False)
    assert cpu_threads.set_blas_threads(0) is None
    assert cpu_threads.BLAS_THREADS_VARIABLE not in os.environ


def test_usable_cores_are_this_process_share():
    cores = cpu_threads.usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("tool", ["demo.py", "claims.py", "tune_fusion.py"])
def test_a_negative_blas_thread_count_is_one_line(tool):
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / tool), "--blas-threads",
                           "-1", "--out", "/nonexistent/never-made"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        "--blas-threads must be 0 (OpenBLAS's own) or more, got -1")
