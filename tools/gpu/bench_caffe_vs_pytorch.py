"""Throughput: our Caffe's train nets against a PyTorch VGG-16 training step on the same device.

Caffe (one process per net, pycaffe): the netgen train nets of a preset with Input layers fed
random data (two-stream baseline VGG-16 RGB and flow, CO2FI, CO2FI + ASYN by default), dropout as
generated; per iteration forward + backward (``net.forward(); net.backward()``), and the solver's
whole step (``solver.step(1)``: + SGD momentum update). PyTorch (one process per stream and TF32
setting): the same VGG-16 (shapes from the same preset: channels, fc widths, input size, classes),
fp32, cross-entropy loss (= SoftmaxWithLoss), SGD momentum 0.9 with weight decay; fwd+bwd and the
full step (+ ``optimizer.step()``). cudnn.benchmark on; TF32 off for fp32 parity (and on, for
reference). Times: median over --iters iterations after --warmup, each iteration synchronised
(CUDA events for PyTorch; for Caffe a read of a small blob, which waits for the device).

FLOPs are counted from the layer shapes (convolutions, deconvolutions, inner products, LSTMs):
forward 2*MACs, training = forward + weight gradients + input gradients (none for layers fed
by the net's inputs). The fp32 peak = SMs x 128 FP32 lanes x 2 x max SM clock (nvidia-smi).
Peak device memory: nvidia-smi's memory.used sampled every 50 ms during the run, less the value
before the process started (so it includes the CUDA context); PyTorch's allocator peak too.

``--device cpu --size tiny`` runs everything on the CPU with a tiny preset (tests, no GPU).
Writes Markdown (--out; on a GPU default docs/benchmarks/gpu-<gpu>.md) and JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_NETS = ("baseline_rgb", "baseline_flow", "co2fi_rgb", "co2fi_asyn_d5_rgb_centred")
FP32_LANES_PER_SM = 128   # Hopper (and Ampere GA10x, Ada): FP32 FMA lanes per SM
TARGET_RATIO = 0.5


# ---- presets ---------------------------------------------------------------------------------
def preset_for(size: str) -> tuple[Any, int]:
    """(netgen Preset, number of classes) of a size: paper (UCF101), small or tiny."""
    from netgen.presets import DATASETS, PAPER, SMALL

    if size == "paper":
        return PAPER, DATASETS["paper"]["ucf101"]
    if size == "small":
        return SMALL, DATASETS["small"]["synthetic"]
    if size == "tiny":
        return SMALL.replace(name="tiny", vgg_channels=(4, 8, 8, 16, 16), vgg_fc=32,
                             cnnm_channels=(4, 8, 8, 16, 16), cnnm_fc6=32, cnnm_fc7=16,
                             fc1=16, fc2=16, c2f_lstm=8, async_lstm=8), 10
    raise ValueError(f"unknown size {size!r}: paper, small or tiny")


def in_channels(stream: str) -> int:
    """Input channels of a stream (netgen.names: no pycaffe, which the PyTorch worker lacks)."""
    from netgen import names

    return names.channels(stream)


# ---- FLOPs -----------------------------------------------------------------------------------
def vgg16_flops(channels: Sequence[int], fc: int, size: int, cin: int, classes: int,
                batch: int) -> dict[str, float]:
    """Forward/training FLOPs of VGG-16 (13 3x3 convs, 5 pools, fc6, fc7, fc8) for a batch."""
    macs, first = 0, 0
    side, c = size, cin
    for stage, n_convs in enumerate((2, 2, 3, 3, 3)):
        for _ in range(n_convs):
            layer = batch * side * side * channels[stage] * c * 9
            first = first or layer
            macs += layer
            c = channels[stage]
        side //= 2
    macs += batch * (c * side * side * fc + fc * fc + fc * classes)
    fwd = 2.0 * macs
    return {"forward": fwd, "train": 3 * fwd - 2.0 * first}


def caffe_flops(net: Any, frozen: frozenset[str] = frozenset()) -> dict[str, float]:
    """Forward/training FLOPs of a pycaffe net from its layer shapes.

    Training = forward + weight gradients (layers with parameters not in ``frozen``, i.e. not
    all lr_mult 0) + input gradients (bottoms that need one). As Caffe decides it (Net::Init), a
    blob needs a gradient when a layer with trainable parameters lies upstream of it: the net's
    inputs, and what is computed from them alone, do not.
    """
    fwd = train = 0.0
    needs_grad: set[str] = set()
    names = list(net._layer_names)
    for name, layer in zip(names, net.layers, strict=True):
        tops, bottoms = net.top_names[name], net.bottom_names[name]
        trainable = name in net.params and name not in frozen
        bottom_grad = any(b in needs_grad for b in bottoms)
        if bottom_grad or trainable:
            needs_grad.update(tops)
        if layer.type not in ("Convolution", "Deconvolution", "InnerProduct", "LSTM"):
            continue
        w = net.params[name][0].data.shape
        if layer.type == "Convolution":
            top = net.blobs[tops[0]].data.shape
            macs = top[0] * top[1] * _prod(top[2:]) * _prod(w[1:])
        elif layer.type == "Deconvolution":
            bottom = net.blobs[bottoms[0]].data.shape
            macs = bottom[0] * bottom[1] * _prod(bottom[2:]) * _prod(w[1:])
        elif layer.type == "InnerProduct":
            count = net.blobs[tops[0]].data.size
            macs = count * w[1]
        else:  # LSTM: W_xc (4H x I), W_hc (4H x H); top T x N x H
            top = net.blobs[tops[0]].data.shape
            hidden = top[-1]
            w_hc = net.params[name][2].data.shape
            macs = top[0] * top[1] * 4 * hidden * (w[1] + w_hc[1])
        fwd += 2.0 * macs
        train += 2.0 * macs * (1 + trainable + bottom_grad)
    return {"forward": fwd, "train": train}


def frozen_layers(net_param: Any) -> frozenset[str]:
    """Layers whose every parameter has lr_mult 0 (the frozen groupers)."""
    return frozenset(layer.name for layer in net_param.layer
                     if layer.param and all(p.lr_mult == 0 for p in layer.param))


def _prod(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


# ---- device memory ---------------------------------------------------------------------------
class MemoryPoller:
    """Peak of nvidia-smi's memory.used (MiB) while running; no-op on the CPU."""

    def __init__(self, device: str, gpu_id: int):
        self.enabled = device == "cuda"
        self.gpu_id = gpu_id
        self.base = self.read() if self.enabled else 0
        self.peak = self.base
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> int:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,"
                              "nounits", "-i", str(self.gpu_id)], capture_output=True, text=True,
                             timeout=30).stdout
        return int(out.strip().splitlines()[0])

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.read())
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(0.05)

    def __enter__(self) -> MemoryPoller:
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.read())

    @property
    def used_mib(self) -> int | None:
        return self.peak - self.base if self.enabled else None


# ---- Caffe worker ----------------------------------------------------------------------------
def caffe_worker(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("GLOG_minloglevel", "2")
    poller = MemoryPoller(args.device, args.gpu_id)   # before CUDA is touched
    sys.path.insert(0, str(REPO))
    import caffe

    if os.environ.get("CO2FI_CAFFE_INIT_LOG") == "1":   # tools/gpu/diagnose_pycaffe.sh
        caffe.init_log()
    import numpy as np
    from caffe.proto import caffe_pb2

    from netgen.nets import NetOptions
    from netgen.solvers import solver as make_solver
    from netgen.variants import build

    preset, classes = preset_for(args.size)
    net = build(args.net, NetOptions(preset=preset, num_classes=classes, data_source="input",
                                     phase="train", batch=args.batch))
    fd, net_path = tempfile.mkstemp(suffix=".prototxt", prefix="co2fi-bench-")
    with os.fdopen(fd, "w") as f:
        f.write(str(net))
    sp = make_solver(net_path, preset, "/tmp/co2fi-bench-snapshot")
    del sp.test_iter[:]
    sp.test_interval, sp.snapshot, sp.display = 0, 0, 0
    sp.max_iter = 10 ** 8
    sp.solver_mode = (caffe_pb2.SolverParameter.GPU if args.device == "cuda"
                      else caffe_pb2.SolverParameter.CPU)
    fd, solver_path = tempfile.mkstemp(suffix=".prototxt", prefix="co2fi-bench-solver-")
    with os.fdopen(fd, "w") as f:
        f.write(str(sp))
    with poller:
        if args.device == "cuda":
            caffe.set_device(args.gpu_id)
            caffe.set_mode_gpu()
        else:
            caffe.set_mode_cpu()
        solver = caffe.SGDSolver(solver_path)
        os.unlink(net_path)
        os.unlink(solver_path)
        n = solver.net
        rng = np.random.default_rng(0)
        for name in n.inputs:
            shape = n.blobs[name].data.shape
            n.blobs[name].data[...] = (rng.integers(0, classes, shape) if name == "label"
                                       else rng.standard_normal(shape))
        # Reading the smallest parameter's diff waits for the device (cudaMemcpy, legacy stream).
        small = min((b for bl in n.params.values() for b in bl), key=lambda b: b.data.size)
        sync = lambda: float(small.diff.flat[0])  # noqa: E731

        def fwd_bwd() -> None:
            n.forward()
            n.backward()
            sync()

        def step() -> None:
            solver.step(1)
            sync()

        fb = time_it(fwd_bwd, args.warmup, args.iters)
        st = time_it(step, args.warmup, args.iters)
    flops = caffe_flops(n, frozen_layers(net))
    num_params = sum(b.data.size for b in {b.data.ctypes.data: b for bl in n.params.values()
                                           for b in bl}.values())
    frames = [name for name in n.inputs if name != "label"]
    return {"kind": "caffe", "net": args.net, "batch": args.batch, "fwd_bwd_ms": fb,
            "step_ms": st, "flops": flops, "params": int(num_params),
            "inputs": {name: list(n.blobs[name].data.shape) for name in frames},
            "device_mem_mib": poller.used_mib}


def time_it(fn: Any, warmup: int, iters: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return {"median": statistics.median(times), "min": min(times), "mean": statistics.fmean(times)}


# ---- PyTorch worker --------------------------------------------------------------------------
def torch_vgg16(preset: Any, cin: int, classes: int) -> Any:
    import torch.nn as nn

    layers: list[nn.Module] = []
    c = cin
    for stage, n_convs in enumerate((2, 2, 3, 3, 3)):
        for _ in range(n_convs):
            layers += [nn.Conv2d(c, preset.vgg_channels[stage], 3, padding=1), nn.ReLU(True)]
            c = preset.vgg_channels[stage]
        layers.append(nn.MaxPool2d(2, 2))
    side = preset.input_size // 32
    fc = preset.vgg_fc
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, fc), nn.ReLU(True),
                         nn.Dropout(preset.dropout), nn.Linear(fc, fc), nn.ReLU(True),
                         nn.Dropout(preset.dropout), nn.Linear(fc, classes))


def torch_worker(args: argparse.Namespace) -> dict[str, Any]:
    poller = MemoryPoller(args.device, args.gpu_id)
    sys.path.insert(0, str(REPO))
    import torch

    preset, classes = preset_for(args.size)
    cin = in_channels(args.stream)
    cuda = args.device == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    dev = torch.device("cuda", args.gpu_id) if cuda else torch.device("cpu")
    with poller:
        model = torch_vgg16(preset, cin, classes).to(dev).train()
        opt = torch.optim.SGD(model.parameters(), lr=preset.base_lr, momentum=preset.momentum,
                              weight_decay=preset.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        x = torch.randn(args.batch, cin, preset.input_size, preset.input_size, device=dev)
        y = torch.randint(0, classes, (args.batch,), device=dev)

        def fwd_bwd() -> None:
            opt.zero_grad(set_to_none=False)
            loss_fn(model(x), y).backward()

        def step() -> None:
            fwd_bwd()
            opt.step()

        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        fb = time_torch(fwd_bwd, args.warmup, args.iters, cuda)
        st = time_torch(step, args.warmup, args.iters, cuda)
        peak_alloc = torch.cuda.max_memory_allocated(dev) / 2 ** 20 if cuda else None
    flops = vgg16_flops(preset.vgg_channels, preset.vgg_fc, preset.input_size, cin, classes,
                        args.batch)
    params = sum(p.numel() for p in model.parameters())
    return {"kind": "torch", "net": f"pytorch_vgg16_{args.stream}", "stream": args.stream,
            "tf32": bool(args.tf32), "batch": args.batch, "fwd_bwd_ms": fb, "step_ms": st,
            "flops": flops, "params": int(params), "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "torch_cuda": torch.version.cuda, "alloc_peak_mib": peak_alloc,
            "device_mem_mib": poller.used_mib,
            "inputs": {"data": [args.batch, cin, preset.input_size, preset.input_size]}}


def time_torch(fn: Any, warmup: int, iters: int, cuda: bool) -> dict[str, float]:
    import torch

    if not cuda:
        return time_it(fn, warmup, iters)
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return {"median": statistics.median(times), "min": min(times), "mean": statistics.fmean(times)}


# ---- orchestration ---------------------------------------------------------------------------
def torch_python() -> str:
    """PyTorch's interpreter: CO2FI_HOST_PYTHON (the GPU machine's python3 when Caffe runs in
    the carried runtime, tools/gpu/use_runtime.sh), else this one."""
    return os.environ.get("CO2FI_HOST_PYTHON") or sys.executable


def run_worker(argv: list[str], env: dict[str, str], timeout: float,
               python: str | None = None) -> dict[str, Any]:
    cmd = [python or sys.executable, str(Path(__file__).resolve()), *argv]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s: {' '.join(argv)}"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-8:]
        return {"error": f"rc {p.returncode}: {' | '.join(tail)}", "argv": argv}
    return json.loads(lines[-1])


def torch_env() -> dict[str, str]:
    """The environment without the Caffe build's paths (tools/gpu/device_build.sh's env.sh)."""
    env = dict(os.environ)
    root = env.get("CO2FI_ROOT")
    if root:
        env.pop("PYTHONNOUSERSITE", None)
        for key in ("PYTHONPATH", "LD_LIBRARY_PATH", "PATH"):
            parts = [p for p in env.get(key, "").split(":") if p and not p.startswith(root)]
            env[key] = ":".join(parts)
    return env


def gpu_info(device: str, gpu_id: int) -> dict[str, Any]:
    info: dict[str, Any] = {"host": platform.node(), "python": platform.python_version()}
    if device != "cuda":
        info.update(name="cpu", processor=platform.processor() or platform.machine(),
                    cores=os.cpu_count())
        return info
    q = "name,driver_version,memory.total,clocks.max.sm,power.limit,pci.bus_id"
    out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits",
                          "-i", str(gpu_id)], capture_output=True, text=True, timeout=30).stdout
    name, driver, mem, clock, power, bus = [s.strip() for s in out.strip().split(",")]
    info.update(name=name, driver=driver, memory_mib=int(float(mem)), max_sm_mhz=float(clock),
                power_limit_w=power, pci=bus)
    code = (f"import torch, json; p = torch.cuda.get_device_properties({gpu_id}); "
            "print(json.dumps({'sms': p.multi_processor_count, 'cc': f'{p.major}.{p.minor}', "
            "'cuda': torch.version.cuda}))")
    r = subprocess.run([torch_python(), "-c", code], capture_output=True, text=True,
                       env=torch_env(), timeout=120)
    if r.returncode == 0:
        info.update(json.loads(r.stdout.strip().splitlines()[-1]))
        info["fp32_peak_tflops"] = (info["sms"] * FP32_LANES_PER_SM * 2 * info["max_sm_mhz"]
                                    * 1e6 / 1e12)
    try:
        nvcc = subprocess.run(["nvcc", "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip().splitlines()[-1]
        info["nvcc"] = nvcc
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return info


def caffe_build_info() -> str:
    prefix = os.environ.get("CO2FI_CAFFE_PREFIX")
    if prefix and Path(prefix, "co2fi-build.json").exists():
        return " ".join(Path(prefix, "co2fi-build.json").read_text().split())
    r = subprocess.run([sys.executable, "-c", "import caffe, os; print(os.path.dirname("
                        "caffe.__file__))"], capture_output=True, text=True, timeout=120)
    path = Path(r.stdout.strip()).parents[1] / "co2fi-build.json" if r.returncode == 0 else None
    return " ".join(path.read_text().split()) if path and path.exists() else "unknown"


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(results: list[dict[str, Any]], info: dict[str, Any],
             args: argparse.Namespace) -> str:
    peak = info.get("fp32_peak_tflops")
    lines = [f"# Caffe vs PyTorch training throughput: {info['name']}, {args.size} preset, "
             f"batch {args.batch}", "",
             f"Made by `tools/gpu/bench_caffe_vs_pytorch.py {' '.join(sys.argv[1:])}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Median of {args.iters} "
             f"iterations after {args.warmup} warm-up iterations.", "", "## Environment", ""]
    for key in ("name", "driver", "memory_mib", "sms", "cc", "max_sm_mhz", "power_limit_w",
                "cuda", "nvcc", "processor", "cores", "host", "python"):
        if key in info:
            lines.append(f"- {key}: {info[key]}")
    tv = next((r for r in results if r.get("kind") == "torch"), None)
    if tv:
        lines.append(f"- torch {tv['torch']}, CUDA {tv['torch_cuda']}, cuDNN {tv['cudnn']}")
    lines.append(f"- Caffe build: `{caffe_build_info()}`")
    if peak:
        lines.append(f"- fp32 peak (non-tensor): {info['sms']} SMs x {FP32_LANES_PER_SM} lanes x 2 "
                     f"x {info['max_sm_mhz']:.0f} MHz = {peak:.1f} TFLOP/s")
    lines += ["", "## Results", "",
              "| implementation | net | TF32 | inputs per sample | train GFLOP/iter | fwd+bwd ms "
              "| step ms | samples/s (step) | TFLOP/s (fwd+bwd) | % fp32 peak | device MiB "
              "| alloc MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| error | {' '.join(r.get('argv', []))} | | | | | | | | | | "
                         f"{r['error'][:200]} |")
            continue
        fb, st = r["fwd_bwd_ms"]["median"], r["step_ms"]["median"]
        tflops = r["flops"]["train"] / (fb / 1e3) / 1e12
        r["samples_per_s"] = r["batch"] / (st / 1e3)
        r["tflops"] = tflops
        shapes = "; ".join(f"{k} {'x'.join(map(str, v[1:]))}" for k, v in r["inputs"].items())
        shapes = shapes if len(r["inputs"]) <= 2 else (
            f"{len(r['inputs'])} x {'x'.join(map(str, next(iter(r['inputs'].values()))[2:]))}")
        impl = "Caffe" if r["kind"] == "caffe" else "PyTorch"
        tf32 = "off" if r["kind"] == "caffe" else ("on" if r["tf32"] else "off")
        lines.append(f"| {impl} | {r['net']} | {tf32} | {shapes} | "
                     f"{r['flops']['train'] / 1e9:.4g} | {fb:.2f} | {st:.2f} | "
                     f"{r['samples_per_s']:.1f} | {tflops:.3g} | "
                     f"{fmt(100 * tflops / peak if peak else None)} | "
                     f"{fmt(r.get('device_mem_mib'), '.0f')} | "
                     f"{fmt(r.get('alloc_peak_mib'), '.0f')} |")
    lines += ["", "## Caffe against PyTorch (TF32 off), two-stream baseline", ""]
    for stream in ("rgb", "flow"):
        c = next((r for r in results if r.get("net") == f"baseline_{stream}"
                  and "samples_per_s" in r), None)
        t = next((r for r in results if r.get("net") == f"pytorch_vgg16_{stream}"
                  and not r.get("tf32") and "samples_per_s" in r), None)
        if c and t:
            ratio = c["samples_per_s"] / t["samples_per_s"]
            same = ("same" if c["params"] == t["params"]
                    else f"DIFFER: {c['params']} vs {t['params']}")
            lines.append(f"- {stream}: Caffe {c['samples_per_s']:.1f} vs PyTorch "
                         f"{t['samples_per_s']:.1f} images/s = {100 * ratio:.0f}% "
                         f"(target >= {100 * TARGET_RATIO:.0f}%: "
                         f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}); parameters {same} "
                         f"({c['params']:,}); train FLOPs Caffe {c['flops']['train'] / 1e9:.4g} "
                         f"vs PyTorch {t['flops']['train'] / 1e9:.4g} GFLOP")
    lines += ["", "Notes: 'device MiB' is nvidia-smi's memory.used peak less its value before "
              "the process (CUDA context included); 'alloc MiB' is PyTorch's allocator peak. "
              "Caffe's convolutions are im2col + cuBLAS SGEMM per image (no cuDNN), fp32 "
              "without tensor cores; the CO2FI nets run Python layers on the CPU. See "
              "docs/GPU.md.", ""]
    return "\n".join(lines)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def orchestrate(args: argparse.Namespace) -> int:
    info = gpu_info(args.device, args.gpu_id)
    common = ["--device", args.device, "--size", args.size, "--batch", str(args.batch),
              "--iters", str(args.iters), "--warmup", str(args.warmup), "--gpu-id",
              str(args.gpu_id)]
    results: list[dict[str, Any]] = []
    t0 = time.time()
    out = args.out or (REPO / "docs" / "benchmarks" / f"gpu-{slug(info['name'])}.md"
                       if args.device == "cuda" else Path(tempfile.gettempdir()) / "bench-cpu.md")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> str:  # after every worker: a run cut short still leaves what it measured
        text = markdown(results, info, args)
        _write_atomic(out, text)
        if args.json:
            _write_atomic(args.json, json.dumps({"info": info, "results": results}, indent=1))
        return text

    # PyTorch first at TF32 off (the reference of the target), then the Caffe nets, baseline
    # first: if time runs out, the ratio the issue asks for is already measured.
    jobs: list[tuple[str, list[str], dict[str, str]]] = []
    torch_jobs = ([(f"torch vgg16 {stream} tf32={tf32}",
                    ["--worker", "torch", "--stream", stream, "--tf32", str(tf32), *common],
                    torch_env())
                   for tf32 in sorted(args.tf32) for stream in args.streams.split(",")]
                  if args.torch == "on" else [])
    caffe_jobs = [(f"caffe {net}", ["--worker", "caffe", "--net", net, *common],
                   dict(os.environ)) for net in args.nets.split(",") if net]
    jobs = [*torch_jobs[:len(args.streams.split(","))], *caffe_jobs,
            *torch_jobs[len(args.streams.split(",")):]]
    for label, argv, env in jobs:
        r = run_worker(argv, env, args.timeout,
                       torch_python() if label.startswith("torch") else None)
        print(f"{label}: {_summary(r)}", flush=True)
        results.append(r)
        text = save()
    print(text)
    print(f"report: {out} ({time.time() - t0:.0f} s)")
    return 1 if any("error" in r for r in results) else 0


def _write_atomic(path: Path, text: str) -> None:
    sys.path.insert(0, str(REPO))  # the orchestrator runs with neither pycaffe nor torch
    from co2fi_tools.safe_io import atomic_write_text

    atomic_write_text(path, text)


def _summary(r: dict[str, Any]) -> str:
    if "error" in r:
        return "ERROR " + r["error"]
    return (f"fwd+bwd {r['fwd_bwd_ms']['median']:.2f} ms, step {r['step_ms']['median']:.2f} ms,"
            f" device MiB {r.get('device_mem_mib')}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--size", choices=("paper", "small", "tiny"), default="paper")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--gpu-id", type=int, default=0)
    ap.add_argument("--nets", default=",".join(DEFAULT_NETS), help="comma-separated variants")
    ap.add_argument("--torch", choices=("on", "off"), default="on")
    ap.add_argument("--streams", default="rgb,flow", help="streams of the PyTorch VGG-16 runs")
    ap.add_argument("--tf32", type=lambda s: [int(x) for x in s.split(",")], default=None,
                    help="TF32 settings of the PyTorch runs: 0, 1 or 0,1 (default on cuda; "
                    "0 on cpu)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per worker")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", choices=("caffe", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--net", help=argparse.SUPPRESS)
    ap.add_argument("--stream", choices=("rgb", "flow"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tf32 is None:
        args.tf32 = [0, 1] if args.device == "cuda" else [0]
    if args.worker == "caffe":
        print(json.dumps(caffe_worker(args)))
        return 0
    if args.worker == "torch":
        args.tf32 = args.tf32[0]
        print(json.dumps(torch_worker(args)))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
