"""tools/mutation.py (`make mutation`): scoping the mutants to functions or lines, and a real
scoped run's score."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_gpu_tools import load_script

REPO = Path(__file__).resolve().parents[1]
mutation = load_script(REPO / "tools" / "mutation.py")

SOURCE = '''\
def a(x):
    return x + 1


class Run:
    def b(self, y):
        return y < 2

    def c(self):
        def inner():
            return 3
        return inner
'''


def test_scope_lines_finds_functions_methods_and_classes_by_qualified_name() -> None:
    assert mutation.scope_lines(SOURCE, ["a"]) == [(1, 2)]
    assert mutation.scope_lines(SOURCE, ["Run.b", "Run.c.inner"]) == [(6, 7), (10, 11)]
    assert mutation.scope_lines(SOURCE, ("Run",)) == [(5, 12)]
    with pytest.raises(SystemExit) as err:
        mutation.scope_lines(SOURCE, ["b", "a"])
    assert str(err.value) == ("mutation: no function or class b in the module (known: Run, "
                              "Run.b, Run.c, Run.c.inner, a)")


def test_lines_are_first_last_or_one_line() -> None:
    assert mutation.parse_lines("10-40") == (10, 40)
    assert mutation.parse_lines("12") == mutation.parse_lines("12-") == (12, 12)
    for bad in ("x", "5-3", "0-2", "1-y"):
        with pytest.raises(argparse.ArgumentTypeError):
            mutation.parse_lines(bad)


def test_scopes_name_what_exists_and_modules_with_tests() -> None:
    for module, names in mutation.SCOPES.items():
        assert module in mutation.MODULES
        source = (REPO / module).read_text()
        assert len(mutation.scope_lines(source, names)) == len(names)
    for tests in mutation.MODULES.values():
        assert all((REPO / t).is_file() for t in tests)


@pytest.mark.parametrize("argv, message", [
    (["co2fi_tools/training/runs.py", "co2fi_tools/training/train.py", "--functions", "train"],
     "--functions and --lines need exactly one module"),
    (["co2fi_tools/evaluate.py"], "no tests known for ['co2fi_tools/evaluate.py']"),
    (["co2fi_tools/nope.py", "--tests", "tests/test_runs.py"], "no such module: "
                                                               "co2fi_tools/nope.py"),
])
def test_bad_arguments_are_one_line(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        mutation.main(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_a_scoped_run_mutates_only_that_function_and_runs_only_the_given_test() -> None:
    """runs._short (6 mutants) against the one test that asserts its output; the whole
    module has 88."""
    test = "tests/test_runs.py::test_settings_differences_name_each_key_before_and_now"
    proc = subprocess.run(
        [sys.executable, "tools/mutation.py", "co2fi_tools/training/runs.py", "--functions",
         "_short", "--tests", test, "--list"], cwd=REPO, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    [(first, last)] = mutation.scope_lines((REPO / "co2fi_tools/training/runs.py").read_text(),
                                           ["_short"])
    mutated = [int(line.split()[1].split(":")[1]) for line in lines
               if line.startswith(("  killed", "  SURVIVED"))]
    assert len(mutated) == 6 and all(first <= n <= last for n in mutated)
    assert "co2fi_tools/training/runs.py [_short]: 6/6 mutants killed (100 %)" in lines
