"""Our results beside the paper's Tables 1-3, as Markdown and CSV.

Results file (schema ``co2fi-results/1``), JSON::

    {"schema": "co2fi-results/1",
     "results": [{"method": "CO2FI-complete", "dataset": "ucf101", "split": "1",
                  "stream": "appearance", "accuracy": 0.815, "mean_class_accuracy": 0.812,
                  "source": "runs/x/scores.h5", "table": 1}]}

or CSV with the same columns. ``accuracy`` (top-1), ``mean_class_accuracy`` and ``top5``
(optional; written since top-5 is reported) are fractions in [0, 1]; ``table`` is optional
(default: every table that lists the method); ``stream`` is ``appearance``, ``motion`` or
``two-stream``; ``num_classes`` (optional, written by the evaluation) is the classes our run had.

Rules: a row maps to paper rows by method name (spelling-tolerant, ``paper_tables.method_key``)
and stream. A difference to the paper is shown only when dataset, split and class count are the
paper's (UCF101: 101 classes, HMDB51: 51); for any other dataset (``synthetic``), split or class
count (a 3-class tree named ucf101) the paper's column is shown as reference only, under a
caption that says so. Synthetic results are never labelled UCF101, and a run with fewer classes
is labelled with its class count.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

from co2fi_tools.reporting import paper_tables as pt
from co2fi_tools.safe_io import atomic_write_text, error_line

RESULTS_SCHEMA = "co2fi-results/1"
RESULT_STREAMS: tuple[str, ...] = ("appearance", "motion", "two-stream")
METRICS: dict[str, str] = {"mean_class": "mean class accuracy", "top1": "top-1 accuracy"}
#: The paper dataset our results are set against when ours is not one of the paper's.
REFERENCE_DATASET = "ucf101"


@dataclass(frozen=True)
class ResultRow:
    method: str
    dataset: str
    split: str
    stream: str
    accuracy: float
    mean_class_accuracy: float
    source: str = ""
    table: int | None = None
    top5: float | None = None  # added after schema co2fi-results/1 was fixed: optional
    num_classes: int | None = None  # likewise optional (None: not recorded)


def _row_from_record(record: dict, where: str) -> ResultRow:
    required = ["method", "dataset", "split", "stream", "accuracy", "mean_class_accuracy"]
    missing = [k for k in required if record.get(k) in (None, "")]
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    try:
        table = record.get("table")
        row = ResultRow(
            method=str(record["method"]), dataset=str(record["dataset"]).lower(),
            split=str(record["split"]), stream=str(record["stream"]),
            accuracy=float(record["accuracy"]),
            mean_class_accuracy=float(record["mean_class_accuracy"]),
            source=str(record.get("source") or ""),
            table=int(table) if table not in (None, "") else None,
            top5=float(record["top5"]) if record.get("top5") not in (None, "") else None,
            num_classes=(int(record["num_classes"])
                         if record.get("num_classes") not in (None, "") else None))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err
    if row.stream not in RESULT_STREAMS:
        raise ValueError(f"{where}: stream {row.stream!r} is not one of {RESULT_STREAMS}")
    for name in ("accuracy", "mean_class_accuracy"):
        value = getattr(row, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}: {name} = {value} is not a fraction in [0, 1]")
    if row.num_classes is not None and row.num_classes < 2:
        raise ValueError(f"{where}: num_classes = {row.num_classes} is not a class count (>= 2)")
    if row.table is not None and row.table not in pt.TABLE_TITLES:
        raise ValueError(f"{where}: table {row.table} is not one of {sorted(pt.TABLE_TITLES)}")
    return row


def read_results(path: str | os.PathLike) -> list[ResultRow]:
    path = os.fspath(path)
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            try:
                data = json.load(handle)
            except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
                raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA:
            raise ValueError(f"{path}: expected a JSON object with schema {RESULTS_SCHEMA!r}")
        records = data.get("results", [])
    elif path.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as handle:
            records = list(csv.DictReader(handle))
    else:
        raise ValueError(f"{path}: results file must end in .json or .csv")
    return [_row_from_record(rec, f"{path}: result {i + 1}") for i, rec in enumerate(records)]


def write_results(path: str | os.PathLike, rows: Sequence[ResultRow]) -> None:
    """Atomic write, JSON or CSV by suffix."""
    path = os.fspath(path)
    records = [asdict(r) for r in rows]
    if path.endswith(".json"):
        text = json.dumps({"schema": RESULTS_SCHEMA, "results": records}, indent=1,
                          ensure_ascii=False) + "\n"
    elif path.endswith(".csv"):
        out = io.StringIO()
        writer = csv.DictWriter(out, [f.name for f in fields(ResultRow)], lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in rec.items()}
                         for rec in records)
        text = out.getvalue()
    else:
        raise ValueError(f"{path}: results file must end in .json or .csv")
    _write_text(path, text)


def _write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic: a temporary file in the same folder, then rename."""
    atomic_write_text(path, text)


def upsert_result(path: str | os.PathLike, row: ResultRow) -> None:
    """Add ``row`` to a results file, replacing a row with the same method/dataset/split/stream."""
    rows = read_results(path) if os.path.exists(path) else []
    same = (row.method, row.dataset, row.split, row.stream, row.table)
    rows = [r for r in rows if (r.method, r.dataset, r.split, r.stream, r.table) != same]
    write_results(path, rows + [row])


# --- comparison -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComparedRow:
    method: str
    stream: str
    paper: float | None  # percent
    ours: ResultRow | None


@dataclass(frozen=True)
class Section:
    table: int
    paper_dataset: str
    paper_split: str
    our_dataset: str
    our_split: str
    rows: tuple[ComparedRow, ...]
    #: Classes of our run (None: not recorded, taken to be the paper's).
    our_classes: int | None = None

    @property
    def paper_classes(self) -> int:
        return pt.NUM_CLASSES[self.paper_dataset]

    @property
    def same_classes(self) -> bool:
        return self.our_classes is None or self.our_classes == self.paper_classes

    @property
    def comparable(self) -> bool:
        return (self.our_dataset == self.paper_dataset and self.our_split == self.paper_split
                and self.same_classes)

    @property
    def ours_label(self) -> str:
        """``UCF101 split 1``, with the class count when it is not the paper's for that dataset
        (``UCF101 split 1 (3 classes)``; other datasets are not the paper's anyway)."""
        label = f"{pt.dataset_label(self.our_dataset)} {pt.split_label(self.our_split)}"
        shown = self.our_dataset == self.paper_dataset and not self.same_classes
        return f"{label} ({self.our_classes} classes)" if shown else label

    @property
    def caption(self) -> str:
        paper = f"paper: {pt.dataset_label(self.paper_dataset)} {pt.split_label(self.paper_split)}"
        ours = f"ours: {self.ours_label}"
        if self.comparable:
            return f"{paper}; {ours}"
        if self.our_dataset != self.paper_dataset:
            return (f"{paper}; {ours}, not comparable in absolute terms "
                    f"(paper column is reference only)")
        if not self.same_classes:
            return (f"{paper}; {ours}, not the paper's {self.paper_classes} classes "
                    f"(paper column is reference only)")
        return f"{paper}; {ours}, different splits (paper column is reference only)"


def _paper_stream(table: int, stream: str) -> str:
    return "final" if table == 3 and stream == "two-stream" else stream


def _tables_of(row: ResultRow) -> list[int]:
    key = pt.method_key(row.method)
    return [t for t in pt.TABLE_TITLES
            if (row.table is None or row.table == t)
            and any(pt.method_key(m) == key for m in pt.methods_of(t))]


def _check_known(results: Sequence[ResultRow], source: str) -> None:
    for i, row in enumerate(results):
        if not _tables_of(row):
            where = f"table {row.table}" if row.table else "Tables 1-3"
            known = sorted({m for t in pt.TABLE_TITLES for m in pt.methods_of(t)
                            if row.table in (None, t)})
            raise ValueError(f"{source}: result {i + 1}: unknown method {row.method!r} "
                             f"(not in the paper's {where}); known methods: {', '.join(known)}")


def build_comparison(results: Sequence[ResultRow], tables: Iterable[int] = (1, 2, 3),
                     source: str = "results") -> list[Section]:
    """One section per (table, our dataset, our split) that has at least one of our rows."""
    _check_known(results, source)
    sections = []
    for table in tables:
        mine = [r for r in results if table in _tables_of(r)]
        groups = sorted({(r.dataset, r.split, r.num_classes) for r in mine},
                        key=lambda g: (g[0], g[1], -1 if g[2] is None else g[2]))
        for dataset, split, classes in groups:
            paper_dataset = dataset if dataset in pt.NUM_CLASSES_DATASETS else REFERENCE_DATASET
            paper_split = "mean3" if table == 3 else "1"
            ours_here = {(pt.method_key(r.method), _paper_stream(table, r.stream)): r
                         for r in mine if (r.dataset, r.split, r.num_classes) == (dataset, split,
                                                                                  classes)}
            rows = []
            listed = set()
            for paper in pt.paper_rows(table, paper_dataset):
                key = (pt.method_key(paper.method), paper.stream)
                listed.add(key)
                rows.append(ComparedRow(paper.method, paper.stream, paper.accuracy,
                                        ours_here.get(key)))
            # Methods the paper left as '–' here, in streams the table reports at all.
            table_streams = {p.stream for d in pt.NUM_CLASSES_DATASETS
                             for p in pt.paper_rows(table, d)}
            for key, ours in ours_here.items():
                if key not in listed and key[1] in table_streams:
                    rows.append(ComparedRow(ours.method, key[1], None, ours))
            sections.append(Section(table, paper_dataset, paper_split, dataset, split,
                                    tuple(rows), classes))
    return sections


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _our_value(row: ResultRow | None, metric: str) -> float | None:
    if row is None:
        return None
    return 100 * (row.mean_class_accuracy if metric == "mean_class" else row.accuracy)


def to_markdown(sections: Sequence[Section], metric: str = "mean_class") -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    out = []
    for s in sections:
        paper_col = f"paper {pt.dataset_label(s.paper_dataset)} {pt.split_label(s.paper_split)}"
        if not s.comparable:
            paper_col += " (reference only)"
        ours_col = f"ours {s.ours_label}"
        header = (f"| method | stream | {paper_col} (%) | {ours_col}: mean class acc. (%) "
                  f"| {ours_col}: top-1 (%) |")
        rule = "|---|---|---:|---:|---:|"
        if s.comparable:
            header += f" ours − paper ({METRICS[metric]}) |"
            rule += "---:|"
        out += [f"### {pt.TABLE_TITLES[s.table]} — ours: {s.ours_label}", "",
                f"*{s.caption}.*", "", header, rule]
        for r in s.rows:
            mean_class, top1 = _our_value(r.ours, "mean_class"), _our_value(r.ours, "top1")
            line = (f"| {r.method} | {r.stream} | {_pct(r.paper)} | {_pct(mean_class)} | "
                    f"{_pct(top1)} |")
            if s.comparable:
                ours = _our_value(r.ours, metric)
                diff = "–" if ours is None or r.paper is None else f"{ours - r.paper:+.1f}"
                line += f" {diff} |"
            out.append(line)
        out.append("")
    return "\n".join(out)


CSV_COLUMNS = ["table", "method", "stream", "paper_dataset", "paper_split", "paper_accuracy_pct",
               "our_dataset", "our_split", "our_mean_class_accuracy_pct", "our_top1_pct",
               "comparable", "source", "our_classes"]


def to_csv(sections: Sequence[Section]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in sections:
        for r in s.rows:
            mean_class, top1 = _our_value(r.ours, "mean_class"), _our_value(r.ours, "top1")
            writer.writerow([
                s.table, r.method, r.stream, s.paper_dataset, s.paper_split,
                "" if r.paper is None else r.paper, s.our_dataset, s.our_split,
                "" if mean_class is None else f"{mean_class:.2f}",
                "" if top1 is None else f"{top1:.2f}", s.comparable,
                r.ours.source if r.ours else "",
                "" if s.our_classes is None else s.our_classes])
    return out.getvalue()


# --- command line (tools/compare.py) ---

CLI_USAGE = r"""Print our results beside the paper's Tables 1-3 (Markdown; optionally CSV).

    .venv/bin/python tools/compare.py runs/results.json --tables 1 2 \
        --markdown cmp.md --csv cmp.csv
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=CLI_USAGE.splitlines()[0],
                                     epilog=CLI_USAGE.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results file (.json or .csv, schema co2fi-results/1)")
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--metric", choices=sorted(METRICS), default="mean_class",
                        help="our accuracy set against the paper's (default: mean class)")
    parser.add_argument("--markdown", help="also write the Markdown here")
    parser.add_argument("--csv", help="also write the comparison as CSV here")
    args = parser.parse_args(argv)
    try:
        results = read_results(args.results)
        sections = build_comparison(results, args.tables, source=args.results)
    except (OSError, ValueError) as err:
        print(f"compare: {error_line(err)}", file=sys.stderr)
        return 2
    if not sections:
        print(f"compare: {args.results}: no result maps to tables {args.tables}", file=sys.stderr)
        return 1
    markdown = to_markdown(sections, args.metric)
    print(markdown)
    if args.markdown:
        _write_text(args.markdown, markdown)
    if args.csv:
        _write_text(args.csv, to_csv(sections))
    return 0

