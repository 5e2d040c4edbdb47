#!/usr/bin/env python3
"""Print our results beside the paper's Tables 1-3 (Markdown; optionally also CSV files).

    .venv/bin/python tools/compare.py runs/results.json --tables 1 2 --markdown cmp.md --csv cmp.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co2fi_tools import compare  # noqa: E402
from co2fi_tools.scores import write_text_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results file (.json or .csv, schema co2fi-results/1)")
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--metric", choices=sorted(compare.METRICS), default="mean_class",
                        help="our accuracy set against the paper's (default: mean class)")
    parser.add_argument("--markdown", help="also write the Markdown here")
    parser.add_argument("--csv", help="also write the comparison as CSV here")
    args = parser.parse_args(argv)
    try:
        results = compare.read_results(args.results)
        sections = compare.build_comparison(results, args.tables, source=args.results)
    except (OSError, ValueError) as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2
    if not sections:
        print(f"compare: {args.results}: no result maps to tables {args.tables}", file=sys.stderr)
        return 1
    markdown = compare.to_markdown(sections, args.metric)
    print(markdown)
    if args.markdown:
        write_text_atomic(args.markdown, markdown)
    if args.csv:
        write_text_atomic(args.csv, compare.to_csv(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
