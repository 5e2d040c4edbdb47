"""Caffe GPU mode against CPU mode: every net of a preset, forward + backward, same weights/inputs.

For each variant (netgen, train phase, ``data_source="input"``: the Python data layers become Input
layers fed with the same random data), two nets are made from one prototxt with the same filler
seed: net A in CPU mode (the reference) and net B in GPU mode, B's weights copied from A. Both run
forward and backward once; every blob's data and diff and every parameter diff are compared. The
co2fi Python layers (class groups, group loss) run inside both nets as in training. Dropout ratios
are set to 0: the CPU and GPU random masks differ by design.

Tolerances (float32, different summation orders in cuBLAS and OpenBLAS): an array passes when its
relative L2 error ||B - A|| / ||A|| <= --tol-l2 (1e-4) and its max error relative to the array's
largest magnitude max|B - A| / max|A| <= --tol-max (1e-3), or when max|B - A| <= --atol (1e-7,
for arrays that are zero). ``--mode cpu-vs-cpu`` runs B in CPU mode too and demands equality
(all three tolerances 0): a self-test that needs no GPU. ``--perturb-weight`` changes one weight of
net B, so that the check must fail. ``--train-iters N`` also trains variants (``--train-variant``)
for N iterations with the preset's solver on learnable synthetic data in B's mode and checks that
the loss falls. Writes a Markdown report (``--report``); exit 1 if anything fails.

Run from the repo root with pycaffe importable (on the GPU machine: ``source /opt/co2fi/env.sh``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import caffe  # noqa: E402

if os.environ.get("CO2FI_CAFFE_INIT_LOG") == "1":   # tools/gpu/diagnose_pycaffe.sh
    caffe.init_log()
from caffe.proto import caffe_pb2  # noqa: E402

from co2fi_tools.safe_io import atomic_write_text  # noqa: E402
from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import DATASETS, get_preset  # noqa: E402
from netgen.readings import DEFAULT as DEFAULT_READINGS  # noqa: E402
from netgen.readings import Readings  # noqa: E402
from netgen.solvers import solver as make_solver  # noqa: E402
from netgen.variants import build, variant_names  # noqa: E402


@dataclasses.dataclass
class Tolerance:
    l2: float
    max_rel: float
    atol: float


@dataclasses.dataclass
class Worst:
    name: str = ""
    rel_l2: float = 0.0
    max_rel: float = 0.0
    max_abs: float = 0.0


@dataclasses.dataclass
class Result:
    variant: str
    ok: bool
    arrays: int
    failures: list[str]
    worst_l2: Worst
    worst_max: Worst
    seconds_a: float
    seconds_b: float
    error: str = ""


def set_mode(mode: str, gpu_id: int) -> None:
    if mode == "gpu":
        caffe.set_device(gpu_id)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()


def parse_readings(pairs: Sequence[str]) -> Readings:
    """``NAME=VALUE`` pairs (fields of netgen.readings.Readings) over the default readings."""
    fields = {f.name: f for f in dataclasses.fields(Readings)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"check_gpu_vs_cpu: error: --train-reading {pair!r}: expected "
                             f"NAME=VALUE with NAME one of {', '.join(fields)}")
        if isinstance(getattr(DEFAULT_READINGS, name), bool):
            if value.lower() not in ("true", "false", "on", "off", "1", "0"):
                raise SystemExit(f"check_gpu_vs_cpu: error: --train-reading {pair!r}: "
                                 "true or false")
            changes[name] = value.lower() in ("true", "on", "1")
        else:
            changes[name] = value
    try:
        return dataclasses.replace(DEFAULT_READINGS, **changes)
    except ValueError as err:
        raise SystemExit(f"check_gpu_vs_cpu: error: --train-reading: {err}") from None


def net_param(variant: str, preset_name: str, batch: int | None,
              readings: Readings = DEFAULT_READINGS) -> caffe_pb2.NetParameter:
    preset = get_preset(preset_name)
    classes = DATASETS[preset_name][next(iter(DATASETS[preset_name]))]
    opt = NetOptions(preset=preset, num_classes=classes, data_source="input", phase="train",
                     batch=batch, readings=readings)
    net = build(variant, opt)
    for layer in net.layer:
        if layer.type == "Dropout":
            layer.dropout_param.dropout_ratio = 0.0
    return net


def num_classes_of(preset_name: str) -> int:
    return DATASETS[preset_name][next(iter(DATASETS[preset_name]))]


def write_net(net: caffe_pb2.NetParameter) -> str:
    fd, path = tempfile.mkstemp(suffix=".prototxt", prefix="co2fi-check-")
    with os.fdopen(fd, "w") as f:
        f.write(str(net))
    return path


def random_inputs(net: caffe.Net, classes: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in net.inputs:
        shape = net.blobs[name].data.shape
        if name == "label":
            out[name] = rng.integers(0, classes, shape).astype(np.float32)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def run_once(net: caffe.Net, inputs: dict[str, np.ndarray], mode: str,
             gpu_id: int) -> dict[str, np.ndarray]:
    """Forward + backward in ``mode``; every blob's data/diff and every parameter diff."""
    set_mode(mode, gpu_id)
    for name, value in inputs.items():
        net.blobs[name].data[...] = value
    net.clear_param_diffs()
    net.forward()
    net.backward()
    arrays = {}
    for name, blob in net.blobs.items():
        arrays[f"blob {name} data"] = blob.data.copy()
        arrays[f"blob {name} diff"] = blob.diff.copy()
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            arrays[f"param {layer}[{i}] diff"] = blob.diff.copy()
    return arrays


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
            tol: Tolerance) -> tuple[list[str], Worst, Worst]:
    failures: list[str] = []
    worst_l2, worst_max = Worst(), Worst()
    for name, a in ref.items():
        b = got[name]
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        if not np.all(np.isfinite(b64)) or not np.all(np.isfinite(a64)):
            failures.append(f"{name}: NaN or Inf")
            continue
        d = np.abs(b64 - a64)
        max_abs = float(d.max()) if d.size else 0.0
        scale = float(np.abs(a64).max()) if a64.size else 0.0
        norm = float(np.linalg.norm(a64))
        rel_l2 = float(np.linalg.norm(b64 - a64) / norm) if norm > 0 else (0.0 if max_abs == 0
                                                                             else np.inf)
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
        if rel_l2 > worst_l2.rel_l2:
            worst_l2 = Worst(name, rel_l2, max_rel, max_abs)
        if max_rel > worst_max.max_rel:
            worst_max = Worst(name, rel_l2, max_rel, max_abs)
        ok = max_abs <= tol.atol or (rel_l2 <= tol.l2 and max_rel <= tol.max_rel)
        if not ok:
            failures.append(f"{name}: rel L2 {rel_l2:.2e}, max rel {max_rel:.2e}, "
                            f"max abs {max_abs:.2e}")
    return failures, worst_l2, worst_max


def check_variant(variant: str, args: argparse.Namespace, tol: Tolerance) -> Result:
    mode_b = "cpu" if args.mode == "cpu-vs-cpu" else "gpu"
    path = write_net(net_param(variant, args.preset, args.batch))
    try:
        set_mode("cpu", args.gpu_id)
        caffe.set_random_seed(args.seed)
        net_a = caffe.Net(path, caffe.TRAIN)
        set_mode(mode_b, args.gpu_id)
        caffe.set_random_seed(args.seed if args.b_seed is None else args.b_seed)
        net_b = caffe.Net(path, caffe.TRAIN)
        for layer, blobs in net_a.params.items():
            for i, blob in enumerate(blobs):
                net_b.params[layer][i].data[...] = blob.data
        if args.perturb_weight:
            first = next(iter(net_b.params))
            w = net_b.params[first][0].data
            w.flat[0] += 0.1 * float(np.abs(w).max()) + 1e-3
        inputs = random_inputs(net_a, num_classes_of(args.preset), args.seed)
        t = time.perf_counter()
        ref = run_once(net_a, inputs, "cpu", args.gpu_id)
        seconds_a = time.perf_counter() - t
        t = time.perf_counter()
        got = run_once(net_b, inputs, mode_b, args.gpu_id)
        seconds_b = time.perf_counter() - t
    except Exception as err:  # a net that does not run is a failure of the check, not a crash
        return Result(variant, False, 0, [], Worst(), Worst(), 0.0, 0.0,
                      f"{type(err).__name__}: {err}")
    finally:
        os.unlink(path)
    failures, worst_l2, worst_max = compare(ref, got, tol)
    return Result(variant, not failures, len(ref), failures, worst_l2, worst_max, seconds_a,
                  seconds_b)


def synthetic_batch(rng: np.random.Generator, templates: dict[str, np.ndarray],
                    shapes: dict[str, tuple[int, ...]], noise: float) -> dict[str, np.ndarray]:
    """A learnable batch: input = the label's class template (one value per channel, broadcast
    over the image) + Gaussian noise."""
    classes = next(iter(templates.values())).shape[0]
    labels = rng.integers(0, classes, shapes["label"][0])
    out = {"label": labels.astype(np.float32)}
    for name, t in templates.items():
        out[name] = (t[labels] + noise * rng.standard_normal(shapes[name])).astype(np.float32)
    return out


def train_check(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train ``variant`` for --train-iters iterations on synthetic data; does the loss fall?"""
    mode = "cpu" if args.mode == "cpu-vs-cpu" else "gpu"
    preset = get_preset(args.preset)
    classes = num_classes_of(args.preset)
    net = net_param(variant, args.preset, args.batch, parse_readings(args.train_reading))
    for layer in net.layer:   # real training: dropout as generated
        if layer.type == "Dropout":
            layer.dropout_param.ClearField("dropout_ratio")
    net_path = write_net(net)
    sp = make_solver(net_path, preset, "/tmp/co2fi-check-snapshot")
    del sp.test_iter[:]
    sp.test_interval = 0
    sp.max_iter = args.train_iters
    if args.train_lr:
        sp.base_lr = args.train_lr
    sp.snapshot = 0
    sp.display = 0
    sp.solver_mode = (caffe_pb2.SolverParameter.GPU if mode == "gpu"
                      else caffe_pb2.SolverParameter.CPU)
    fd, solver_path = tempfile.mkstemp(suffix=".prototxt", prefix="co2fi-solver-")
    with os.fdopen(fd, "w") as f:
        f.write(str(sp))
    try:
        set_mode(mode, args.gpu_id)
        caffe.set_random_seed(args.seed)
        solver = caffe.SGDSolver(solver_path)
        rng = np.random.default_rng(args.seed)
        inputs = [n for n in solver.net.inputs if n != "label"]
        templates = {n: 2 * rng.standard_normal((classes, solver.net.blobs[n].channels, 1, 1))
                     for n in inputs}
        shapes = {n: solver.net.blobs[n].data.shape for n in [*inputs, "label"]}
        losses = []
        t = time.perf_counter()
        for _ in range(args.train_iters):
            for name, value in synthetic_batch(rng, templates, shapes, 1.0).items():
                solver.net.blobs[name].data[...] = value
            solver.step(1)
            losses.append(sum(float(solver.net.blobs[o].data.sum()) for o in solver.net.outputs
                              if "loss" in o))
        seconds = time.perf_counter() - t
    finally:
        os.unlink(net_path)
        os.unlink(solver_path)
    k = max(1, len(losses) // 10)
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    ok = bool(np.all(np.isfinite(losses))) and last < 0.95 * first
    return {"variant": variant, "mode": mode, "iters": args.train_iters, "first": first,
            "last": last, "ok": ok, "seconds": seconds, "losses": losses}


def environment(mode: str) -> list[str]:
    lines = [f"- host: {platform.node()}, Python {platform.python_version()}, "
             f"numpy {np.__version__}, caffe {caffe.__version__} "
             f"({os.path.dirname(caffe.__file__)})"]
    build_json = Path(caffe.__file__).resolve().parents[2] / "co2fi-build.json"
    if build_json.exists():
        lines.append(f"- build: `{' '.join(build_json.read_text().split())}`")
    if mode == "gpu-vs-cpu":
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            smi = "nvidia-smi not available"
        lines.append(f"- GPU: {smi}")
    return lines


def report(results: Sequence[Result], trains: Sequence[dict[str, Any]], args: argparse.Namespace,
           tol: Tolerance) -> str:
    ok = all(r.ok for r in results) and all(t["ok"] for t in trains)
    what = "GPU vs CPU" if args.mode == "gpu-vs-cpu" else "CPU vs CPU (self-test)"
    lines = [f"# Caffe {what}: {args.preset} preset, forward + backward", "",
             f"Result: **{'PASS' if ok else 'FAIL'}** "
             f"({sum(r.ok for r in results)}/{len(results)} nets"
             + (f", {sum(t['ok'] for t in trains)}/{len(trains)} training runs" if trains else "")
             + "). Made by `tools/gpu/check_gpu_vs_cpu.py "
             + " ".join(sys.argv[1:]) + "`.", "", *environment(args.mode),
             f"- tolerance per array: rel. L2 <= {tol.l2:g} and max|B-A|/max|A| <= "
             f"{tol.max_rel:g}, or max|B-A| <= {tol.atol:g}; arrays = every blob's data and "
             "diff and every parameter diff", "- dropout ratio 0 in the comparison (random masks "
             "differ between CPU and GPU); Python layers (class groups, group loss) included",
             f"- inputs: standard normal data, uniform labels, seed {args.seed}; filler seed "
             f"of A {args.seed}, of B {args.seed if args.b_seed is None else args.b_seed}"
             + (f"; batch {args.batch}" if args.batch else "; the preset's batch"), ""]
    if args.perturb_weight:
        lines += ["- **one weight of net B perturbed on purpose (--perturb-weight)**", ""]
    lines += ["| net | result | arrays | worst rel. L2 (array) | worst max rel. (array) | "
              "A s | B s |", "|---|---|---|---|---|---|---|"]
    for r in results:
        status = "pass" if r.ok else ("error" if r.error else f"FAIL ({len(r.failures)})")
        lines.append(f"| {r.variant} | {status} | {r.arrays} | {r.worst_l2.rel_l2:.1e} "
                     f"({r.worst_l2.name}) | {r.worst_max.max_rel:.1e} ({r.worst_max.name}) | "
                     f"{r.seconds_a:.2f} | {r.seconds_b:.2f} |")
    bad = [r for r in results if not r.ok]
    if bad:
        lines += ["", "## Failures", ""]
        for r in bad:
            lines.append(f"- {r.variant}: {r.error or '; '.join(r.failures[:5])}"
                         + (f" (+{len(r.failures) - 5} more)" if len(r.failures) > 5 else ""))
    if trains:
        lines += ["", "## Training on synthetic data", "",
                  "Pass: finite losses, and the mean of the last 10% of iterations below 0.95x "
                  "the mean of the first 10%.", "",
                  f"The preset's solver (SGD, momentum, weight decay, dropout as generated) with "
                  f"base_lr {args.train_lr or 'of the preset'}; each batch: class template (one "
                  "value per channel) + standard normal noise. Readings of the trained nets: "
                  + (", ".join(args.train_reading) or "the defaults") + ". The loss is the "
                  "sum of the net's loss outputs, unweighted.", "",
                  "| net | mode | iterations | mean loss, first 10% | last 10% | result | s |",
                  "|---|---|---|---|---|---|---|"]
        for t in trains:
            lines.append(f"| {t['variant']} | {t['mode']} | {t['iters']} | {t['first']:.4f} | "
                         f"{t['last']:.4f} | {'pass' if t['ok'] else 'FAIL'} | "
                         f"{t['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("gpu-vs-cpu", "cpu-vs-cpu"), default="gpu-vs-cpu")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--variant", action="append", help="only these variants (default: all)")
    ap.add_argument("--batch", type=int, default=None, help="batch (default: the preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--b-seed", type=int, default=None,
                    help="filler seed of net B (default: --seed). Both nets are made with the "
                    "same seed because not all state is in net.params: LSTMs that share "
                    "parameters across towers keep unshared recurrent weights (docs/GPU.md); "
                    "another seed shows which nets have such state")
    ap.add_argument("--gpu-id", type=int, default=0)
    ap.add_argument("--tol-l2", type=float, default=1e-4)
    ap.add_argument("--tol-max", type=float, default=1e-3)
    ap.add_argument("--atol", type=float, default=1e-7)
    ap.add_argument("--perturb-weight", action="store_true",
                    help="perturb one weight of net B (the check must then fail)")
    ap.add_argument("--train-iters", type=int, default=0)
    ap.add_argument("--train-lr", type=float, default=1e-3,
                    help="base_lr of the training check (the small preset's 0.01 leaves VGG-16 "
                    "from scratch at chance level for 600 iterations on this data; 0.05 "
                    "diverges); 0 = the preset's")
    ap.add_argument("--train-variant", action="append",
                    help="variants to train (default: baseline_rgb and co2fi_rgb)")
    ap.add_argument("--train-reading", action="append", default=[], metavar="NAME=VALUE",
                    help="a reading of netgen.readings for the trained nets only, e.g. "
                    "class_normalization=false (docs/REPRODUCTION.md)")
    ap.add_argument("--report", type=Path, default=None, help="Markdown report to write")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tol = (Tolerance(0.0, 0.0, 0.0) if args.mode == "cpu-vs-cpu"
           else Tolerance(args.tol_l2, args.tol_max, args.atol))
    parse_readings(args.train_reading)   # a bad --train-reading fails now, not after the nets
    names = args.variant or variant_names()
    results: list[Result] = []
    trains: list[dict[str, Any]] = []

    def save() -> None:  # after every net: a run cut short still leaves what it measured
        if args.report:
            atomic_write_text(args.report, report(results, trains, args, tol))

    for name in names:
        r = check_variant(name, args, tol)
        print(f"{name:36s} {'pass' if r.ok else 'FAIL'}  arrays {r.arrays:5d}  worst rel L2 "
              f"{r.worst_l2.rel_l2:.1e}  worst max rel {r.worst_max.max_rel:.1e}  "
              f"{r.error}", flush=True)
        results.append(r)
        save()
    if args.train_iters > 0:
        for name in args.train_variant or ["baseline_rgb", "co2fi_rgb"]:
            t = train_check(name, args)
            print(f"train {name}: loss {t['first']:.4f} -> {t['last']:.4f} "
                  f"({'pass' if t['ok'] else 'FAIL'}, {t['seconds']:.1f} s)", flush=True)
            trains.append(t)
            save()
    if args.report:
        print(f"report: {args.report}")
    ok = all(r.ok for r in results) and all(t["ok"] for t in trains)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
