"""Shared fixtures of the data tests: a tiny synthetic dataset, extracted and listed once."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep import extract, lists, synthetic

TINY = dict(num_classes=4, clips_per_class=3, num_frames=36, width=48, height=36, seed=3)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """<root>/videos, <root>/splits, <root>/frames (Farneback), <root>/lists (split 1)."""
    root = tmp_path_factory.mktemp("tiny")
    videos = synthetic.generate(root, **TINY)
    outcomes = extract.extract_all(videos, root / "frames",
                                   extract.ExtractOptions(size=None, flow="farneback"),
                                   workers=1, progress=False)
    assert all(o.status == "done" for o in outcomes), outcomes
    report = lists.build_lists("synthetic", root / "splits", root / "frames", root / "lists", 1,
                               fraction=0.5)
    assert not report.problems, report.problems
    return root
