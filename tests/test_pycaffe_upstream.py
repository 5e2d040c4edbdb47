"""pycaffe's own unit tests (python/caffe/test of the Caffe source), run against our build.

Each upstream unittest case is one pytest case, so that a patch of ours that breaks Caffe
shows up by name. install_caffe.sh copies the upstream tests into the build's caffe package.
"""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest

from tests.conftest import HAVE_CAFFE

UPSTREAM_TEST_COUNT = 52


def _upstream_cases() -> list[unittest.TestCase]:
    if not HAVE_CAFFE:
        return []
    import caffe

    test_dir = Path(caffe.__file__).resolve().parent / "test"
    suite = unittest.defaultTestLoader.discover(
        str(test_dir), pattern="test_*.py", top_level_dir=str(test_dir)
    )
    cases: list[unittest.TestCase] = []

    def flatten(s: unittest.TestSuite) -> None:
        for item in s:
            if isinstance(item, unittest.TestSuite):
                flatten(item)
            else:
                cases.append(item)

    flatten(suite)
    return cases


CASES = _upstream_cases()


@pytest.mark.skipif(not HAVE_CAFFE, reason="pycaffe not built (make caffe)")
def test_upstream_suite_is_complete() -> None:
    broken = [c.id() for c in CASES if type(c).__name__ in ("_FailedTest", "ModuleImportFailure")]
    assert not broken, f"upstream test modules failed to import: {broken}"
    assert len(CASES) == UPSTREAM_TEST_COUNT


@pytest.mark.parametrize("case", CASES, ids=[c.id() for c in CASES])
def test_upstream(case: unittest.TestCase) -> None:
    result = unittest.TestResult()
    case.run(result)
    problems = result.errors + result.failures
    assert not problems, problems[0][1]
    assert not result.skipped, f"skipped: {result.skipped[0][1]}"
