"""The README and docs/ render as written: every code fence closes, and a closing fence stands
alone on its line (text after it, as README's "What the demo shows" once had, turns the rest of
the section into code)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fence_problems(text: str) -> list[str]:
    """Where the fences of a Markdown text do not pair up (CommonMark's rules, simplified)."""
    problems, opener = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        m = FENCE.match(line)
        if not m:
            continue
        marks, rest = m.groups()
        if opener is None:
            opener = (number, marks)
        elif marks[0] == opener[1][0] and len(marks) >= len(opener[1]):
            if rest.strip():
                problems.append(f"line {number}: text after the closing fence: {rest.strip()!r}")
            opener = None
    if opener is not None:
        problems.append(f"line {opener[0]}: fence never closed")
    return problems


def test_the_check_finds_text_after_a_closing_fence():
    assert fence_problems("```bash\nmake demo\n``` The demo proves\n") == [
        "line 3: text after the closing fence: 'The demo proves'"]
    assert fence_problems("```\nx\n") == ["line 1: fence never closed"]
    assert fence_problems("```bash\nmake\n```\ntext\n") == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_fences_pair_up(path):
    assert fence_problems(path.read_text(encoding="utf-8")) == []
