"""The paper's Tables 1-3, read from ``paper_results.csv`` (typed once, verbatim from the paper).

Columns: ``table, method, dataset, split, stream, accuracy``. ``accuracy`` is in percent as
printed; '–' entries are omitted. ``split`` is ``1`` (Tables 1-2) or ``mean3`` (Table 3: mean over
the three splits). ``stream`` is ``appearance``, ``motion`` or ``two-stream`` (Tables 1-2) and
``final`` for Table 3 (each method's final reported result, whatever its streams).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from netgen.paper import NUM_CLASSES

PAPER_RESULTS_CSV = Path(__file__).with_name("paper_results.csv")

TABLE_TITLES: dict[int, str] = {
    1: "Table 1: Results of coarse-to-fine network (split 1)",
    2: "Table 2: Results of asynchronous fusion network (split 1)",
    3: "Table 3: Comparison of different methods (3 splits)",
}
DATASET_LABELS: dict[str, str] = {"ucf101": "UCF101", "hmdb51": "HMDB51",
                                  "synthetic": "synthetic"}
STREAMS: tuple[str, ...] = ("appearance", "motion", "two-stream", "final")
#: The datasets the paper reports on.
NUM_CLASSES_DATASETS: tuple[str, ...] = tuple(NUM_CLASSES)


@dataclass(frozen=True)
class PaperRow:
    table: int
    method: str
    dataset: str
    split: str
    stream: str
    accuracy: float  # percent


def method_key(method: str) -> str:
    """Spelling-tolerant key: 'Baseline+ASYN (Δ = 5)' == 'baseline+asyn (delta=5)'."""
    key = method.casefold().replace("δ", "delta")
    return re.sub(r"[^0-9a-z]", "", key)


def split_label(split: str) -> str:
    return "mean of 3 splits" if split == "mean3" else f"split {split}"


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


@lru_cache(maxsize=4)
def load_paper_rows(path: str | None = None) -> tuple[PaperRow, ...]:
    csv_path = Path(path) if path else PAPER_RESULTS_CSV
    rows = []
    with open(csv_path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        expected = ["table", "method", "dataset", "split", "stream", "accuracy"]
        if reader.fieldnames != expected:
            raise ValueError(f"{csv_path}: columns are {reader.fieldnames}, expected {expected}")
        for line, rec in enumerate(reader, start=2):
            try:
                row = PaperRow(int(rec["table"]), rec["method"], rec["dataset"], rec["split"],
                               rec["stream"], float(rec["accuracy"]))
            except ValueError as err:
                raise ValueError(f"{csv_path}:{line}: {err}") from err
            if row.table not in TABLE_TITLES or row.stream not in STREAMS:
                raise ValueError(f"{csv_path}:{line}: unknown table or stream in {rec}")
            rows.append(row)
    return tuple(rows)


def paper_rows(table: int, dataset: str | None = None) -> list[PaperRow]:
    return [r for r in load_paper_rows()
            if r.table == table and (dataset is None or r.dataset == dataset)]


def methods_of(table: int) -> list[str]:
    """Methods of a table in the paper's order."""
    seen: dict[str, None] = {}
    for row in paper_rows(table):
        seen.setdefault(row.method, None)
    return list(seen)


def paper_accuracy(table: int, method: str, dataset: str, stream: str) -> float | None:
    key = method_key(method)
    for row in paper_rows(table, dataset):
        if method_key(row.method) == key and row.stream == stream:
            return row.accuracy
    return None
