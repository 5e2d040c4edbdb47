"""``python -m netgen``: write (or ``--check``) every generated net and solver.

Examples::

    python -m netgen                       # both presets, every dataset and variant
    python -m netgen --check               # exit 1 and list the files that differ
    python -m netgen --preset small --synthetic-classes 20 --out /tmp/nets
    python -m netgen --side-slicing scale_associated --out /tmp/other_reading
    python -m netgen --list                # variant names
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from netgen.data import DEFAULT_DATA_ROOT, DEFAULT_SPLIT
from netgen.emit import differences, generate_all, stale, write
from netgen.presets import DATASETS, MAX_SYNTHETIC_CLASSES, PRESETS, get_preset
from netgen.readings import CHOICES, Readings
from netgen.schedule import DEFAULT_SCHEDULE, SCHEDULES, FusionSchedule
from netgen.variants import Settings, variant_names

REPO_ROOT = Path(__file__).resolve().parents[1]


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _parse_size(preset_fields: dict[str, object], item: str) -> tuple[str, object]:
    if "=" not in item:
        raise ValueError(f"--size wants KEY=VALUE, not {item!r}")
    key, value = item.split("=", 1)
    if key not in preset_fields or key == "name":
        raise ValueError(f"unknown preset size {key!r}; known: {sorted(preset_fields)}")
    current = preset_fields[key]
    kind = type(current[0] if isinstance(current, tuple) else current)
    try:
        if isinstance(current, tuple):
            return key, tuple(kind(x) for x in value.split(","))
        return key, kind(value)
    except ValueError:
        if isinstance(current, tuple):
            what, example = f"comma-separated {kind.__name__}s", ",".join(map(str, current))
        else:
            what, example = f"a number ({kind.__name__})", str(current)
        raise ValueError(f"--size {item}: {key} wants {what}, e.g. {key}={example}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m netgen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", help="paper, small or all (default: all)")
    p.add_argument("--synthetic-classes", type=int, default=DATASETS["small"]["synthetic"],
                   help="classes of the synthetic data set (small preset)")
    p.add_argument("--variant", action="append", help="only these variants (repeatable)")
    p.add_argument("--out", type=Path, default=REPO_ROOT, help="root of prototxt/ and solvers/")
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                   help="dataset folder the data layers name, {dataset} for the dataset "
                   "(default %(default)s)")
    p.add_argument("--split", type=int, default=DEFAULT_SPLIT,
                   help="split whose lists the data layers name (default %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 listing files that differ from the generators")
    p.add_argument("--list", action="store_true", help="print the variant names and exit")
    p.add_argument("--size", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset size, e.g. fc1=2048 (netgen/presets.py)")
    g = p.add_argument_group("paper numbers (default: netgen/paper.py)")
    g.add_argument("--alpha", type=_floats, help="alpha_k of Eq. 1, coarse to fine: 0.1,0.1,1")
    g.add_argument("--group-sizes", type=_ints, help="class group sizes, coarse to fine: 5,3,1")
    g.add_argument("--beta", type=float, help="beta of Eq. 3")
    g.add_argument("--delta", type=int, help="Delta of CO2FI+ASYN")
    g.add_argument("--baseline-deltas", type=_ints, help="Delta values of Baseline+ASYN rows")
    g.add_argument("--steps", type=int, help="T: fused pairs / LSTM units of the fusion nets")
    f = p.add_argument_group("fusion stage schedule (netgen/schedule.py; docs/REPRODUCTION.md)")
    f.add_argument("--fusion-schedule", choices=SCHEDULES, default=DEFAULT_SCHEDULE.kind,
                   help="staged: head warm-up with frozen towers, then joint Eq. 6; joint: "
                        "Sec. 6.1's one phase (default %(default)s)")
    for fld in dataclasses.fields(FusionSchedule):
        if fld.name != "kind":
            f.add_argument("--" + fld.name.replace("_", "-"), type=float, default=fld.default,
                           help="default %(default)s")
    r = p.add_argument_group("readings of ambiguities (docs/REPRODUCTION.md)")
    for f in dataclasses.fields(Readings):
        flag = "--" + f.name.replace("_", "-")
        if f.name in CHOICES:
            r.add_argument(flag, choices=CHOICES[f.name], default=f.default)
        else:
            r.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    readings = Readings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Readings)})
    changes = {k: getattr(args, k) for k in
               ("alpha", "group_sizes", "beta", "delta", "baseline_deltas", "steps")
               if getattr(args, k) is not None}
    schedule = FusionSchedule(args.fusion_schedule, **{
        fld.name: getattr(args, fld.name) for fld in dataclasses.fields(FusionSchedule)
        if fld.name != "kind"})
    return dataclasses.replace(Settings(readings=readings, schedule=schedule), **changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.list:
            print("\n".join(variant_names(settings)))
            return 0
        names = args.preset or ["all"]
        chosen = list(PRESETS) if "all" in names else names
        presets = [get_preset(name) for name in chosen]
        if args.size:
            changes = dict(_parse_size(dataclasses.asdict(presets[0]), s) for s in args.size)
            presets = [pr.replace(**changes) for pr in presets]
        if not 1 <= args.synthetic_classes <= MAX_SYNTHETIC_CLASSES:
            raise ValueError(f"--synthetic-classes must be in 1..{MAX_SYNTHETIC_CLASSES} "
                             f"(netgen/presets.py:MAX_SYNTHETIC_CLASSES), not "
                             f"{args.synthetic_classes}")
        datasets = {**DATASETS, "small": {"synthetic": args.synthetic_classes}}
        files = generate_all(presets, settings, datasets, args.variant, args.data_root,
                             args.split)
    except ValueError as err:
        print(f"netgen: error: {err}", file=sys.stderr)
        return 2
    if args.check:
        bad = differences(files, args.out)
        extra = [] if args.variant else stale(files, args.out, presets)
        for rel in bad:
            print(f"differs: {rel}")
        for rel in extra:
            print(f"not generated: {rel}")
        if bad or extra:
            print(f"netgen --check: {len(bad) + len(extra)} file(s) out of date; "
                  "run `python -m netgen`", file=sys.stderr)
            return 1
        print(f"netgen --check: {len(files)} files up to date")
        return 0
    written = write(files, args.out)
    print(f"netgen: wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
