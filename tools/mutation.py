#!/usr/bin/env python3
"""Mutation score of core modules (``make mutation``; not run by CI): do the tests catch bugs?

Each mutant changes one node of a module's syntax tree, the way a slip of the pen would: a
comparison (< <=, == !=), an arithmetic operator (+ -, * /, // /), a number (n -> n + 1, 1 -> 0),
True/False, and/or, a dropped ``not``, min/max, a keyword argument removed (``kind="stable"``),
or the first two arguments of a call swapped (``Accuracy(top1, mean)``; not for calls whose
arguments commute, such as min, max and np.clip). Each mutant is written
into a scratch copy of the repository and the module's tests run against it; a failing (or
timed-out) run kills the mutant. Code inside f-strings, annotations and docstrings is left
alone. Some survivors are equivalent mutants (no test can tell them apart), so 100 % is not
always reachable; the survivors are listed to be read.

A module in SCOPES is mutated only inside the functions (or classes) named there, and scored
against fast tests of just those: the training driver's resume logic, whose other tests train
real nets. ``--functions`` and ``--lines`` narrow any module the same way, ``--tests`` replaces
its tests.

    .venv/bin/python tools/mutation.py                     # every module of MODULES
    .venv/bin/python tools/mutation.py co2fi_layers/sampling.py --max 40 --list
    .venv/bin/python tools/mutation.py co2fi_tools/training/runs.py --functions Run.prune_snapshots
    .venv/bin/python tools/mutation.py co2fi_tools/training/train.py --lines 470-500 --list
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Module -> the tests that exercise it.
MODULES: dict[str, list[str]] = {
    "co2fi_layers/group_weighted_loss.py": ["tests/test_group_loss.py",
                                            "tests/test_exact_values.py",
                                            "tests/test_layer_params.py"],
    "co2fi_tools/evaluation/classification.py": ["tests/test_classification.py",
                                                 "tests/test_exact_values.py"],
    "co2fi_layers/sampling.py": ["tests/test_data_sampling.py", "tests/test_exact_values.py"],
    "co2fi_layers/group_forming.py": ["tests/test_class_groups.py", "tests/test_exact_values.py",
                                      "tests/test_layer_params.py"],
    "co2fi_tools/weights/stage_weights.py": ["tests/test_stage_weights.py",
                                             "tests/test_exact_values.py"],
    "co2fi_tools/safe_io.py": ["tests/test_faults_experiment.py", "tests/test_faults_extract.py"],
    "co2fi_tools/training/runs.py": ["tests/test_runs.py", "tests/test_train_resume.py"],
    "co2fi_tools/training/train.py": ["tests/test_train_resume.py"],
}
#: Modules mutated only inside these functions or classes (qualified names, "Run" = all its
#: methods): the training driver's resume logic (snapshot picks and checks, settings, --restart,
#: pruning, the stop messages of _stream). Left out: runs.code_revision (asks git, which the
#: scratch copy is not) and what of train.py is not about resuming (data lists, nets, solver
#: files: tests/test_train_driver.py trains real nets for them).
SCOPES: dict[str, tuple[str, ...]] = {
    "co2fi_tools/training/runs.py": ("snapshot_problem", "Run", "_short"),
    "co2fi_tools/training/train.py": ("settings_fingerprint", "_stream", "train", "_train_locked"),
}
COPIED = ("co2fi_layers", "co2fi_tools", "data_prep", "netgen", "tests", "pyproject.toml")

#: Calls whose first two arguments commute (np.clip(a, lo, hi) = min(max(a, lo), hi) too):
#: swapping them gives an equivalent mutant, so it is not made.
SYMMETRIC = frozenset({"min", "max", "minimum", "maximum", "clip", "accuracy_score",
                       "array_equal", "allclose", "isclose", "add", "multiply"})
_CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
             ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
             ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
             ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes not to mutate: f-strings, annotations, docstrings, __future__ imports."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            drop(node)
        elif isinstance(node, ast.arg):
            drop(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            drop(node.returns)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                drop(first)
    return skip


def _mutations(node: ast.AST) -> Iterator[tuple[str, callable]]:
    """(description, function that mutates ``node`` in place) pairs."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _CMP_SWAP:
                new = _CMP_SWAP[type(op)]

                def change(n, i=i, new=new):
                    n.ops[i] = new()
                yield f"{type(op).__name__} -> {new.__name__}", change
    elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
        new = _BIN_SWAP[type(node.op)]
        yield f"{type(node.op).__name__} -> {new.__name__}", \
            lambda n, new=new: setattr(n, "op", new())
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{type(node.op).__name__} -> {new.__name__}", \
            lambda n, new=new: setattr(n, "op", new())
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield f"drop {type(node.op).__name__}", lambda n: setattr(n, "op", ast.UAdd())
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            yield f"{value} -> {not value}", lambda n: setattr(n, "value", not n.value)
        elif isinstance(value, int):
            new = 0 if value == 1 else value + 1
            yield f"{value} -> {new}", lambda n, new=new: setattr(n, "value", new)
        elif isinstance(value, float):
            new = value + 1.0 if value in (0.0, 1.0) else value * 2
            yield f"{value} -> {new}", lambda n, new=new: setattr(n, "value", new)
    elif isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name in ("min", "max") and isinstance(func, ast.Name):
            other = "max" if name == "min" else "min"
            yield f"{name} -> {other}", lambda n, other=other: setattr(n.func, "id", other)
        for i, kw in enumerate(node.keywords):
            if kw.arg is not None:
                yield f"drop {kw.arg}=", lambda n, i=i: n.keywords.pop(i)
        args = node.args
        if (len(args) >= 2 and name not in SYMMETRIC
                and not any(isinstance(a, ast.Starred) for a in args[:2])
                and ast.dump(args[0]) != ast.dump(args[1])):
            def swap(n):
                n.args[0], n.args[1] = n.args[1], n.args[0]
            yield f"swap arguments of {name}()", swap


def mutants(source: str) -> list[tuple[int, str, str]]:
    """(line, description, mutated source) of every mutant of ``source``."""
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    found = []
    nodes = list(ast.walk(tree))  # deep copies walk in the same order
    for index, node in enumerate(nodes):
        if id(node) in skip:
            continue
        for description, change in _mutations(node):
            mutated = copy.deepcopy(tree)
            try:
                change(list(ast.walk(mutated))[index])
                text = ast.unparse(ast.fix_missing_locations(mutated))
                compile(text, "<mutant>", "exec")
            except (IndexError, SyntaxError, ValueError, TypeError):
                continue
            found.append((getattr(node, "lineno", 0), description, text))
    return found


def scope_lines(source: str, names: tuple[str, ...] | list[str]) -> list[tuple[int, int]]:
    """(first, last) line of each function or class of ``source`` named in ``names``
    (qualified: ``Run.prune_snapshots``); SystemExit naming any name not found."""
    spans: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                spans[name] = (child.lineno, child.end_lineno or child.lineno)
                visit(child, name + ".")

    visit(ast.parse(source), "")
    missing = [n for n in names if n not in spans]
    if missing:
        raise SystemExit(f"mutation: no function or class {', '.join(missing)} in the module "
                         f"(known: {', '.join(sorted(spans))})")
    return [spans[n] for n in names]


def parse_lines(text: str) -> tuple[int, int]:
    """``--lines 10-40`` (or a single line, ``12``) as (first, last)."""
    first, _, last = text.partition("-")
    try:
        span = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST, got {text!r}") from None
    if span[0] < 1 or span[1] < span[0]:
        raise argparse.ArgumentTypeError(f"expected 1 <= FIRST <= LAST, got {text!r}")
    return span


def _scratch() -> Path:
    root = Path(tempfile.mkdtemp(prefix="co2fi-mutation-"))
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(src, root / name)
    return root


def _preload() -> None:
    """Import the heavy dependencies once; every test run is a fork of this process, so a
    mutant costs its tests' time, not Python's and Caffe's start-up. None of the project's own
    modules is imported here: each fork imports the mutated copy."""
    import cv2  # noqa: F401
    import h5py  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import sklearn.metrics  # noqa: F401

    try:
        import caffe  # noqa: F401
    except ImportError:
        pass


def _run_tests(root: Path, tests: list[str], timeout: float) -> str:
    """"pass", "fail" or "timeout" of ``tests`` run by pytest in a fork, in ``root``."""
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 3
        try:
            os.chdir(root)
            sys.path.insert(0, str(root))
            sys.dont_write_bytecode = True
            os.environ["GLOG_minloglevel"] = "3"
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            import pytest

            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests]))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "pass" if os.waitstatus_to_exitcode(status) == 0 else "fail"
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.02)


def score_module(module: str, tests: list[str], max_mutants: int | None, seed: int,
                 show: bool, spans: list[tuple[int, int]] | None = None
                 ) -> tuple[int, int, list[str]]:
    """(killed, total, survivors) of one module; only mutants on the lines of ``spans`` when
    given."""
    source = (REPO / module).read_text(encoding="utf-8")
    found = mutants(source)
    if spans is not None:
        found = [m for m in found if any(a <= m[0] <= b for a, b in spans)]
    if max_mutants is not None and len(found) > max_mutants:
        found = sorted(random.Random(seed).sample(found, max_mutants))
    root = _scratch()
    try:
        start = time.monotonic()
        if _run_tests(root, tests, 600) != "pass":  # also warms the file cache
            raise SystemExit(f"mutation: {module}: the tests fail without a mutant: {tests}")
        timeout = max(30.0, 5 * (time.monotonic() - start))
        killed, survivors = 0, []
        for line, description, text in found:
            (root / module).write_text(text, encoding="utf-8")
            outcome = _run_tests(root, tests, timeout)
            if outcome == "pass":
                survivors.append(f"{module}:{line}: {description}")
            else:
                killed += 1
            if show:
                print(f"  {'SURVIVED' if outcome == 'pass' else 'killed  '} "
                      f"{module}:{line}: {description}", flush=True)
        return killed, len(found), survivors
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"default: {', '.join(MODULES)}")
    ap.add_argument("--max", type=int, help="at most this many mutants a module (sampled)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="print every mutant's outcome")
    ap.add_argument("--functions", help="only mutants inside these functions or classes "
                                        "(comma-separated, e.g. Run.prune_snapshots,train); "
                                        "default: the module's SCOPES entry, else all")
    ap.add_argument("--lines", type=parse_lines, action="append", metavar="FIRST-LAST",
                    help="only mutants on these lines (repeatable; with --functions: both)")
    ap.add_argument("--tests", nargs="+", metavar="TEST",
                    help="run these tests (pytest paths or node ids) instead of MODULES'")
    args = ap.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES and not args.tests]
    if unknown:
        ap.error(f"no tests known for {unknown}; add them to MODULES in tools/mutation.py "
                 "or pass --tests")
    missing = [m for m in args.modules if not (REPO / m).is_file()]
    if missing:
        ap.error(f"no such module: {', '.join(missing)}")
    if (args.functions or args.lines) and len(args.modules) != 1:
        ap.error("--functions and --lines need exactly one module")
    _preload()
    rows = []
    for module in args.modules or list(MODULES):
        source = (REPO / module).read_text(encoding="utf-8")
        names = args.functions.split(",") if args.functions else SCOPES.get(module)
        spans = scope_lines(source, names) if names else None
        if args.lines:
            spans = [(max(a, c), min(b, d)) for a, b in (spans or [(1, 10**9)])
                     for c, d in args.lines if max(a, c) <= min(b, d)]
        tests = args.tests or MODULES[module]
        killed, total, survivors = score_module(module, tests, args.max, args.seed, args.list,
                                                spans)
        rows.append((module, killed, total))
        pct = 100 * killed / total if total else 100.0
        where = f" [{', '.join(names)}]" if names else ""
        print(f"{module}{where}: {killed}/{total} mutants killed ({pct:.0f} %)", flush=True)
        for survivor in survivors:
            print(f"  survived {survivor}", flush=True)
    killed = sum(r[1] for r in rows)
    total = sum(r[2] for r in rows)
    print(f"total: {killed}/{total} mutants killed "
          f"({100 * killed / total if total else 100:.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
