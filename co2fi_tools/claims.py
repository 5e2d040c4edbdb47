"""`make claims`: every row of Tables 1 and 2 in miniature, over seeds, each claim marked.

The miniature (docs/MINIATURE.md): the ``miniature`` design of data_prep.synthetic, the small
preset, every method started from a trunk pretrained once on a separate synthetic set of other
classes (the ``pretrain`` design), as the paper starts from ImageNet. The pretrained weights are
cached outside the clone (``~/.cache/co2fi/pretrain/<key>/``), keyed by what made them.

Each seed is one experiment of co2fi_tools.pipeline (``<out>/seed<k>/``: runs, scores,
results.json, training curves under plots/); rerunning resumes every one of them. The summary,
``<out>/claims.md`` and ``claims.json``, holds mean +- standard deviation over seeds of the mean
class accuracy and top-1 of every row, and each claim of the paper marked held / not held /
within noise (``verdict``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from co2fi_tools.pipeline import Experiment, generate_nets, log, run_experiment, train_stages
from co2fi_tools.stages import Stage
from data_prep.lists import list_path

REPO = Path(__file__).resolve().parent.parent
TABLE1 = ("Two-stream baseline", "Direct combine ConvNets", "CO2FI-no class grouping",
          "CO2FI-two granularities", "CO2FI-no coarseness", "CO2FI-complete")
TABLE2 = ("Baseline+SYN", "Baseline+ASYN (Δ = 1)", "Baseline+ASYN (Δ = 5)", "CO2FI+ASYN (Δ = 5)")
ALL_METHODS = TABLE1 + TABLE2
RESULT_STREAMS = ("appearance", "motion", "two-stream")
#: The paper's claims: (claim id, better method, worse method, stream, where in the paper).
CLAIMS: tuple[tuple[str, str, str, str, str], ...] = (
    ("co2fi>baseline (appearance)", "CO2FI-complete", "Two-stream baseline", "appearance",
     "Table 1"),
    ("co2fi>baseline (motion)", "CO2FI-complete", "Two-stream baseline", "motion", "Table 1"),
    ("co2fi>baseline", "CO2FI-complete", "Two-stream baseline", "two-stream", "Table 1"),
    ("co2fi>direct combine", "CO2FI-complete", "Direct combine ConvNets", "two-stream",
     "Table 1"),
    ("co2fi>no class grouping", "CO2FI-complete", "CO2FI-no class grouping", "two-stream",
     "Table 1"),
    ("co2fi>two granularities", "CO2FI-complete", "CO2FI-two granularities", "two-stream",
     "Table 1"),
    ("co2fi>no coarseness", "CO2FI-complete", "CO2FI-no coarseness", "two-stream", "Table 1"),
    ("asyn5>asyn1", "Baseline+ASYN (Δ = 5)", "Baseline+ASYN (Δ = 1)", "two-stream", "Table 2"),
    ("asyn1>syn", "Baseline+ASYN (Δ = 1)", "Baseline+SYN", "two-stream", "Table 2"),
    ("asyn5>syn", "Baseline+ASYN (Δ = 5)", "Baseline+SYN", "two-stream", "Table 2"),
    ("asyn5>baseline", "Baseline+ASYN (Δ = 5)", "Two-stream baseline", "two-stream", "Table 2"),
    ("co2fi+asyn>co2fi", "CO2FI+ASYN (Δ = 5)", "CO2FI-complete", "two-stream", "Table 2"),
    ("co2fi+asyn>baseline+asyn", "CO2FI+ASYN (Δ = 5)", "Baseline+ASYN (Δ = 5)", "two-stream",
     "Table 2"),
)
#: Dropout of the miniature's nets (the small preset's 0.5 kept them at chance:
#: docs/benchmarks/claims-cpu.md).
MINIATURE_DROPOUT = 0.0
#: A difference counts when it exceeds this many standard errors (see ``verdict``).
NOISE_Z = 2.0


@dataclass(frozen=True)
class Miniature:
    """What makes the miniature's data (docs/MINIATURE.md)."""

    classes: int = 12
    clips_per_class: int = 32
    frames: int = 48
    flow: str = "tvl1-fast"
    data_seed: int = 0


@dataclass(frozen=True)
class Pretraining:
    """What makes the pretrained trunk (the key of its cache folder)."""

    classes: int = 8
    clips_per_class: int = 40
    frames: int = 48
    #: The pretraining trains appearance nets only; its flow is extracted (the lists need it)
    #: but never read, so the fastest method does.
    flow: str = "farneback"
    #: The small preset divides the learning rate by 10 at 1000 iterations.
    iters: int = 1500
    seed: int = 0


def prepare_data(root: Path, design: str, classes: int, clips: int, frames: int, flow: str,
                 workers: int, seed: int) -> None:
    """Synthetic videos of ``design``, frames + flow and lists under ``root`` (resumable)."""
    from co2fi_tools.demo import prepare_synthetic
    from data_prep import synthetic

    if not (root / "splits" / "classInd.txt").exists():
        log(f"making {classes} x {clips} synthetic videos ({design}) under {root / 'videos'}")
        rc = synthetic.main([str(root), "--design", design, "--classes", str(classes),
                             "--clips-per-class", str(clips), "--frames", str(frames),
                             "--seed", str(seed)])
        if rc:
            raise RuntimeError(f"synthetic video generation failed under {root} (exit {rc})")
    prepare_synthetic(root, classes, clips, frames, flow, workers, seed)


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def pretrain_key(pre: Pretraining, preset: str, changes: dict | None = None) -> str:
    """Hash of the settings, the generator's code and the nets that make the trunk."""
    from netgen.emit import generate
    from netgen.presets import get_preset

    nets = generate(get_preset(preset).replace(**(changes or {})), "synthetic", pre.classes,
                    names=["baseline_rgb", "grouper_rgb"])
    parts = {"settings": asdict(pre),
             "preset": preset, "preset_changes": changes or {},
             "generator": _sha((REPO / "data_prep" / "synthetic.py").read_bytes()),
             "nets": {k: _sha(v) for k, v in sorted(nets.items())}}
    return _sha(json.dumps(parts, sort_keys=True, default=str))[:16]


def default_cache() -> Path:
    return Path(os.environ.get("CO2FI_CACHE", Path.home() / ".cache" / "co2fi")) / "pretrain"


def strip_for_trunk(src: Path, dst: Path, prefix: str = "") -> None:
    """A trained net as an ImageNet-like source: the classifier (fc8, class-specific) dropped
    and ``prefix`` taken off layer names (a grouper's ``grouper_conv1`` -> ``conv1``)."""
    from co2fi_tools.training.train import _caffe_pb2

    pb = _caffe_pb2()
    net = pb.NetParameter()
    net.ParseFromString(src.read_bytes())
    kept = [layer for layer in net.layer if layer.blobs
            and layer.name.removeprefix(prefix) != "fc8"]
    del net.layer[:]
    for layer in kept:
        layer.name = layer.name.removeprefix(prefix)
        net.layer.add().CopyFrom(layer)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.write_bytes(net.SerializeToString())
    os.replace(tmp, dst)


def pretrained_trunk(pre: Pretraining, preset: str, cache: Path, workers: int, gpu: int,
                     backend: str, changes: dict | None = None) -> dict[str, str]:
    """{"vgg16": ..., "cnn_m_2048": ...} trained once on the pretraining set (cached)."""
    folder = cache / pretrain_key(pre, preset, changes)
    trunk = {"vgg16": folder / "vgg16_trunk.caffemodel",
             "cnn_m_2048": folder / "cnn_m_2048_trunk.caffemodel"}
    if all(p.exists() for p in trunk.values()):
        log(f"pretrained trunk: {folder} (cached)")
        return {k: str(v) for k, v in trunk.items()}
    log(f"pretraining the trunks once on {pre.classes} other synthetic classes -> {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(
        {"pretraining": asdict(pre), "preset": preset, "preset_changes": changes or {}},
        indent=1) + "\n")
    data = folder / "data"
    prepare_data(data, "pretrain", pre.classes, pre.clips_per_class, pre.frames, pre.flow,
                 workers, pre.seed)
    exp = Experiment(dataset="synthetic", data_root=data, num_classes=pre.classes, out=folder,
                     preset=preset, backend=backend, gpu=gpu, seed=pre.seed, max_iter=pre.iters,
                     preset_changes=dict(changes or {}))
    stages = [Stage("baseline_rgb"), Stage("grouper_rgb")]
    generate_nets(exp, stages)
    finals = train_stages(exp, stages)
    strip_for_trunk(finals["baseline_rgb"], trunk["vgg16"])
    strip_for_trunk(finals["grouper_rgb"], trunk["cnn_m_2048"], prefix="grouper_")
    return {k: str(v) for k, v in trunk.items()}


# ------------------------------------------------------------------ summary and verdicts
def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def verdict(better: list[float], worse: list[float], num_test: int) -> tuple[str, float, float]:
    """("held" | "not held" | "within noise", difference of means, its standard error).

    The standard error of the difference of means comes from the seeds' spread when both rows
    have >= 2 seeds, otherwise from the test set (binomial, ``num_test`` videos); a claim is
    held when the difference exceeds NOISE_Z standard errors, not held when it is below
    -NOISE_Z standard errors."""
    (ma, sa), (mb, sb) = mean_std(better), mean_std(worse)
    diff = ma - mb
    if len(better) >= 2 and len(worse) >= 2:
        se = math.sqrt(sa ** 2 / len(better) + sb ** 2 / len(worse))
    else:
        p = (ma + mb) / 2
        se = math.sqrt(2 * p * (1 - p) / max(1, num_test))
    se = max(se, 1e-12)
    if diff > NOISE_Z * se:
        return "held", diff, se
    if diff < -NOISE_Z * se:
        return "not held", diff, se
    return "within noise", diff, se


def collect(seed_dirs: list[Path]) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(method, stream) -> {"mca": [...], "top1": [...], "seeds": [...]} over seeds' results."""
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for folder in seed_dirs:
        path = folder / "results.json"
        if not path.exists():
            continue
        for r in json.loads(path.read_text())["results"]:
            row = rows.setdefault((r["method"], r["stream"]), {"mca": [], "top1": [],
                                                               "seeds": []})
            row["mca"].append(r["mean_class_accuracy"])
            row["top1"].append(r["accuracy"])
            row["seeds"].append(folder.name)
    return rows


def summarise(rows: dict, num_test: int, header: str) -> tuple[str, dict]:
    """The Markdown table and the JSON summary."""
    def cell(values: list[float]) -> str:
        m, s = mean_std(values)
        return f"{100 * m:.1f} ± {100 * s:.1f}"

    lines = [header, "", "## Table 1 (mean class accuracy / top-1, %, mean ± std over seeds)", "",
             "| method | seeds | appearance | motion | two-stream |", "|---|---:|---:|---:|---:|"]
    table: dict[str, dict] = {}
    for method in TABLE1:
        cells = []
        for stream in RESULT_STREAMS:
            row = rows.get((method, stream))
            cells.append(f"{cell(row['mca'])} / {cell(row['top1'])}" if row else "not run")
            if row:
                table.setdefault(method, {})[stream] = row
        seeds = len(rows.get((method, "two-stream"), {}).get("mca", []))
        lines.append(f"| {method} | {seeds} | " + " | ".join(cells) + " |")
    lines += ["", "## Table 2 (two-stream; mean class accuracy / top-1, %)", "",
              "| method | seeds | two-stream |", "|---|---:|---:|"]
    for method in ("Two-stream baseline",) + TABLE2[:3] + ("CO2FI-complete", TABLE2[3]):
        row = rows.get((method, "two-stream"))
        if row:
            table.setdefault(method, {})["two-stream"] = row
        text = f"{cell(row['mca'])} / {cell(row['top1'])}" if row else "not run"
        name = "CO2FI" if method == "CO2FI-complete" else method
        lines.append(f"| {name} | {len(row['mca']) if row else 0} | {text} |")
    lines += ["", f"## Claims (mean class accuracy; held / not held: the difference exceeds "
              f"{NOISE_Z:g} standard errors; {num_test} test videos)", "",
              "| claim | where | difference (points) | standard error | verdict |",
              "|---|---|---:|---:|---|"]
    claims = []
    for cid, better, worse, stream, where in CLAIMS:
        a, b = rows.get((better, stream)), rows.get((worse, stream))
        if not a or not b:
            lines.append(f"| {better} > {worse} ({stream}) | {where} | | | not run |")
            claims.append({"claim": cid, "verdict": "not run"})
            continue
        v, diff, se = verdict(a["mca"], b["mca"], num_test)
        lines.append(f"| {better} > {worse} ({stream}) | {where} | {100 * diff:+.1f} | "
                     f"{100 * se:.1f} | {v} |")
        claims.append({"claim": cid, "better": better, "worse": worse, "stream": stream,
                       "difference": diff, "standard_error": se, "verdict": v,
                       "seeds": [len(a["mca"]), len(b["mca"])]})
    summary = {"rows": [{"method": m, "stream": s, **r} for (m, s), r in sorted(rows.items())],
               "claims": claims, "noise_z": NOISE_Z, "num_test_videos": num_test}
    return "\n".join(lines) + "\n", summary


def _num_test(data: Path) -> int:
    path = list_path(data, "rgb", "val", 1)
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    ap = argparse.ArgumentParser(prog="tools/claims.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/claims", help="where everything goes")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (default 3)")
    ap.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS,
                    help="rows to run (default: every row of Tables 1 and 2)")
    ap.add_argument("--classes", type=int, default=Miniature.classes)
    ap.add_argument("--clips-per-class", type=int, default=Miniature.clips_per_class)
    ap.add_argument("--frames", type=int, default=Miniature.frames)
    ap.add_argument("--flow", default=Miniature.flow, choices=["tvl1", "tvl1-fast", "farneback"])
    ap.add_argument("--max-iter", type=int, default=1000,
                    help="iterations of every single-stream stage (default %(default)s)")
    ap.add_argument("--fusion-iters", type=int, default=200,
                    help="iterations of each fusion stage (default %(default)s)")
    ap.add_argument("--pretrain-iters", type=int, default=Pretraining.iters,
                    help="iterations of the pretraining (0: no pretrained trunk, from scratch)")
    ap.add_argument("--pretrain-clips", type=int, default=Pretraining.clips_per_class)
    ap.add_argument("--pretrain-cache", default=str(default_cache()),
                    help="folder of the cached pretrained trunks (default %(default)s)")
    ap.add_argument("--dropout", type=float, default=MINIATURE_DROPOUT,
                    help="dropout ratio of the small preset's FC layers in every net of the "
                         "miniature, pretraining included (default %(default)s; the preset's "
                         "0.5 kept the small nets at chance, docs/MINIATURE.md)")
    ap.add_argument("--gpu", type=int, default=-1, help="GPU id (default -1: the CPU)")
    ap.add_argument("--backend", default="pycaffe", choices=["pycaffe", "tool"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    from co2fi_tools.stages import METHODS
    from data_prep.splits import read_class_index

    start = time.time()
    out = Path(args.out).expanduser().absolute()
    mini = Miniature(args.classes, args.clips_per_class, args.frames, args.flow)
    changes = {"dropout": args.dropout}
    try:
        data = out / "data"
        prepare_data(data, "miniature", mini.classes, mini.clips_per_class, mini.frames,
                     mini.flow, args.workers, mini.data_seed)
        imagenet: dict[str, str] = {}
        if args.pretrain_iters > 0:
            pre = Pretraining(clips_per_class=args.pretrain_clips, frames=args.frames,
                              iters=args.pretrain_iters)
            imagenet = pretrained_trunk(pre, "small", Path(args.pretrain_cache).expanduser(),
                                        args.workers, args.gpu, args.backend, changes)
        methods = tuple(m for m in METHODS if m in args.methods)
        seed_dirs = [out / f"seed{s}" for s in range(args.seeds)]
        for s, folder in enumerate(seed_dirs):
            log(f"seed {s + 1}/{args.seeds}: {len(methods)} rows -> {folder}")
            exp = Experiment(dataset="synthetic", data_root=data, num_classes=mini.classes,
                             out=folder, preset="small", methods=methods, backend=args.backend,
                             gpu=args.gpu, seed=s, max_iter=args.max_iter,
                             fusion_max_iter=args.fusion_iters, imagenet=imagenet,
                             preset_changes=changes,
                             class_names=list(read_class_index(data / "splits" /
                                                               "classInd.txt")))
            run_experiment(exp)
    except KeyboardInterrupt:
        print("claims: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"claims: error: {exc}", file=sys.stderr)
        return 1
    trunk = f"yes, {args.pretrain_iters} iterations" if imagenet else "no"
    command = shlex.join(["tools/claims.py", *(argv if argv is not None else sys.argv[1:])])
    header = (f"# Claims in miniature\n\n`{command}`"
              f" — {args.seeds} seed(s), {mini.classes} classes × {mini.clips_per_class} clips, "
              f"dropout {args.dropout:g}, "
              f"single-stream stages {args.max_iter} iterations, fusion {args.fusion_iters}, "
              f"pretrained trunk: {trunk}"
              f"; {(time.time() - start) / 60:.1f} min this call.")
    markdown, summary = summarise(collect(seed_dirs), _num_test(data), header)
    from co2fi_tools.training.runs import atomic_write_text

    atomic_write_text(out / "claims.md", markdown)
    atomic_write_text(out / "claims.json", json.dumps(summary, indent=1, ensure_ascii=False))
    print(markdown)
    log(f"claims: {out / 'claims.md'}; training curves under {out}/seed*/plots/")
    return 0
