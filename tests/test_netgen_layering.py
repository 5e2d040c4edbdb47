"""netgen is the ground layer: no module of netgen/ imports co2fi_layers or data_prep (the
limits and names both use live in netgen/paper.py and netgen/names.py and are imported from
there)."""

from __future__ import annotations

import ast
from pathlib import Path

from co2fi_layers import sampling
from data_prep import lists
from netgen import names, paper

NETGEN = Path(__file__).resolve().parents[1] / "netgen"
UPPER: tuple[str, ...] = ("co2fi_layers", "data_prep", "co2fi_tools")


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` of ``source`` names (any depth)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_imported_modules_sees_nested_imports():
    src = ("import os\ndef f():\n    from data_prep.lists import list_name\n"
           "    import co2fi_layers\n")
    assert imported_modules(src) == {"os", "data_prep.lists", "co2fi_layers"}


def test_no_netgen_module_imports_an_upper_layer():
    offenders = {
        f"{path.name}: {module}"
        for path in sorted(NETGEN.glob("*.py"))
        for module in imported_modules(path.read_text())
        if module.split(".")[0] in UPPER
    }
    assert sorted(NETGEN.glob("*.py")), "no netgen modules found"
    assert not offenders, f"netgen imports upward: {sorted(offenders)}"


def test_upper_layers_use_netgens_owners():
    """One owner each: the sampler's steps rule and the list names are netgen's objects."""
    assert sampling.check_period_steps is paper.check_period_steps
    for name in ("list_name", "list_path", "data_layer_paths", "list_modalities", "frames_root",
                 "lists_dir"):
        assert getattr(lists, name) is getattr(names, name)
    assert lists.list_name("flow", "val", 2, "frac8") == "flow_val_split2_frac8.txt"
