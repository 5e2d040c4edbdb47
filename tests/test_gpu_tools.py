"""tools/gpu/: what runs without a GPU (the GPU runs are tools/gpu/run_on_device.sh)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GPU_TOOLS = REPO / "tools" / "gpu"

def load_script(path: Path):
    """A tools/ script as a module (registered: dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod


def needs_caffe() -> None:
    pytest.importorskip("caffe")


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_make_bundle_dry_run_lists_caffe_build_dependencies() -> None:
    p = run(["bash", str(GPU_TOOLS / "make_bundle.sh"), "--dry-run"])
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for pkg in ("libboost1.74-dev", "libboost-thread1.74-dev", "libprotobuf-dev",
                "protobuf-compiler", "libgoogle-glog-dev", "libgflags-dev", "libhdf5-dev",
                "libopenblas-dev", "liblmdb-dev", "libhdf5-103-1", "libopenblas0-pthread"):
        assert pkg in out, pkg
    assert "boost1.74" in out and "libs/python" in out
    assert "caffe=1.0.0+git20180821.99bd997-8" in out
    for f in ("deps.tar.xz", "caffe-src.tar.xz", "boost-python-src.tar.xz", "MANIFEST.txt"):
        assert f in out, f
    # cuBLAS/cuRAND come from the device's PyTorch, never from the bundle.
    assert "cublas" not in out.lower()


def test_device_scripts_parse() -> None:
    for script in ("make_bundle.sh", "device_build.sh", "run_on_device.sh", "rehearse_local.sh",
                   "diagnose_pycaffe.sh", "drop_system_libs.sh", "rehearse_chroot.sh",
                   "make_runtime.sh", "use_runtime.sh", "build_runtime.sh"):
        p = run(["bash", "-n", str(GPU_TOOLS / script)])
        assert p.returncode == 0, f"{script}: {p.stderr}"
        text = (GPU_TOOLS / script).read_text()
        assert "set -euo pipefail" in text or "set -uo pipefail" in text, script


def check(*args: str) -> subprocess.CompletedProcess[str]:
    needs_caffe()
    return run([sys.executable, str(GPU_TOOLS / "check_gpu_vs_cpu.py"), "--mode", "cpu-vs-cpu",
                "--variant", "baseline_rgb", "--batch", "2", *args])


def test_check_cpu_vs_cpu_passes_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "check.md"
    p = check("--report", str(report))
    assert p.returncode == 0, p.stdout + p.stderr
    text = report.read_text()
    assert "Result: **PASS**" in text
    assert "| baseline_rgb | pass |" in text
    assert "rel. L2" in text and "dropout ratio 0" in text


def test_check_detects_a_perturbed_weight(tmp_path: Path) -> None:
    report = tmp_path / "check.md"
    p = check("--perturb-weight", "--report", str(report))
    assert p.returncode == 1, p.stdout + p.stderr
    text = report.read_text()
    assert "Result: **FAIL**" in text and "## Failures" in text
    assert "perturbed on purpose" in text


def test_check_compare_tolerances() -> None:
    needs_caffe()
    mod = load_script(GPU_TOOLS / "check_gpu_vs_cpu.py")
    import numpy as np

    a = {"x": np.ones(1000, np.float32), "zero": np.zeros(3, np.float32)}
    tol = mod.Tolerance(1e-4, 1e-3, 1e-7)
    near = {"x": a["x"] * (1 + 1e-6), "zero": a["zero"]}
    assert mod.compare(a, near, tol)[0] == []
    far = {"x": a["x"] * (1 + 1e-2), "zero": a["zero"]}
    assert len(mod.compare(a, far, tol)[0]) == 1
    nan = {"x": a["x"], "zero": np.array([0, np.nan, 0], np.float32)}
    assert "NaN" in mod.compare(a, nan, tol)[0][0]


def test_bench_tiny_cpu_report(tmp_path: Path) -> None:
    needs_caffe()
    pytest.importorskip("torch")
    out, js = tmp_path / "bench.md", tmp_path / "bench.json"
    p = run([sys.executable, str(GPU_TOOLS / "bench_caffe_vs_pytorch.py"), "--device", "cpu",
             "--size", "tiny", "--batch", "2", "--iters", "1", "--warmup", "0", "--nets",
             "baseline_rgb", "--streams", "rgb", "--out", str(out), "--json", str(js)],
            timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    text = out.read_text()
    for field in ("## Environment", "| implementation | net | TF32 |", "fwd+bwd ms",
                  "samples/s", "TFLOP/s", "% fp32 peak", "device MiB", "| Caffe | baseline_rgb |",
                  "| PyTorch | pytorch_vgg16_rgb | off |", "Caffe build:"):
        assert field in text, field
    data = json.loads(js.read_text())
    by_kind = {r["kind"]: r for r in data["results"]}
    caffe_r, torch_r = by_kind["caffe"], by_kind["torch"]
    # Same VGG-16: same parameter count and the same FLOPs, counted two ways.
    assert caffe_r["params"] == torch_r["params"]
    assert caffe_r["flops"]["train"] == pytest.approx(torch_r["flops"]["train"])
    assert caffe_r["fwd_bwd_ms"]["median"] > 0 and torch_r["step_ms"]["median"] > 0
    assert "rgb: Caffe" in text and "parameters same" in text


def test_check_rejects_a_bad_training_reading_before_running_nets() -> None:
    p = check("--train-iters", "1", "--train-reading", "class_normalization=maybe")
    assert p.returncode != 0
    assert "--train-reading 'class_normalization=maybe': true or false" in p.stderr
    assert "baseline_rgb" not in p.stdout          # no net ran
    p = check("--train-iters", "1", "--train-reading", "no_such_reading=1")
    assert p.returncode != 0 and "expected NAME=VALUE" in p.stderr


def test_bench_data_reads_the_gpu_demand_of_the_baseline_nets(tmp_path: Path) -> None:
    mod = load_script(REPO / "tools" / "bench_data.py")
    bench = tmp_path / "gpu-bench.json"
    bench.write_text(json.dumps({"info": {}, "results": [
        {"kind": "torch", "net": "pytorch_vgg16_rgb", "batch": 16, "step_ms": {"median": 10.0}},
        {"kind": "caffe", "net": "baseline_rgb", "batch": 16, "step_ms": {"median": 100.0}},
        {"kind": "caffe", "net": "baseline_flow", "batch": 16, "step_ms": {"median": 80.0}},
        {"kind": "caffe", "net": "co2fi_rgb", "batch": 16, "step_ms": {"median": 50.0}},
        {"error": "rc 1: timed out", "argv": ["--net", "baseline_x"]}]}))
    demand = mod.gpu_demand(bench)
    # 16 samples per 0.1 s (RGB) and per 0.08 s (flow); a flow sample is a stack of 10 frames,
    # x and y: 20 JPEGs decoded.
    assert demand == {"rgb": pytest.approx(160.0), "flow": pytest.approx(4000.0)}


def test_bench_input_channels_match_netgen() -> None:
    needs_caffe()
    from netgen.names import channels

    mod = load_script(GPU_TOOLS / "bench_caffe_vs_pytorch.py")
    assert [mod.in_channels(s) for s in ("rgb", "flow")] == [channels("rgb"), channels("flow")]


def test_diagnose_pycaffe_picks_the_interpreter_that_runs_the_smoke_test(tmp_path: Path) -> None:
    needs_caffe()
    report = tmp_path / "diagnosis.md"
    p = run(["bash", str(GPU_TOOLS / "diagnose_pycaffe.sh"), str(report), "cpu", sys.executable])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == f"RUNNER={sys.executable}"
    text = report.read_text()
    assert "## step by step (faulthandler)" in text and "\nOK\n" in text
    assert "## candidate: as is" in text and "chosen: " + sys.executable in text


def test_diagnose_pycaffe_says_when_nothing_runs(tmp_path: Path) -> None:
    needs_caffe()
    import caffe

    if caffe.__file__ and "cuda" in caffe.__file__:
        pytest.skip("a CUDA build: GPU mode may work here")
    report = tmp_path / "diagnosis.md"
    # GPU mode in a CPU-only build aborts under every candidate: no runner is chosen.
    p = run(["bash", str(GPU_TOOLS / "diagnose_pycaffe.sh"), str(report), "gpu", sys.executable])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "RUNNER="
    text = report.read_text()
    assert "## candidate: caffe.init_log() first" in text and "## chosen: none" in text


def make_deb(tmp: Path, name: str, files: dict[str, str | None], links: dict[str, str]) -> Path:
    """A .deb installing FILES (path: content) and LINKS (path: target), built with dpkg-deb."""
    root = tmp / name
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content or "")
    for rel, target in links.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: t\n")
    deb = tmp / f"{name}_1_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


LIB = "usr/lib/x86_64-linux-gnu"


@pytest.mark.skipif(not Path("/usr/bin/dpkg-deb").exists(), reason="needs dpkg-deb")
def test_bundle_lists_soname_links_and_the_device_drops_what_the_system_has(tmp_path: Path) -> None:
    # libffi as Debian ships it: the soname is a link to the versioned file.
    deb = make_deb(tmp_path, "libffi8", {f"{LIB}/libffi.so.8.1.2": "debian's libffi",
                                         "usr/share/doc/libffi8/copyright": "c"},
                   {f"{LIB}/libffi.so.8": "libffi.so.8.1.2"})
    p = run(["bash", str(GPU_TOOLS / "make_bundle.sh"), "--list-libs", str(deb)])
    assert p.returncode == 0, p.stderr
    listed = p.stdout.split()
    # The link's own path (what the loader looks up), not its target's bare name.
    assert listed == [f"{LIB}/libffi.so.8", f"{LIB}/libffi.so.8.1.2"]

    deps = tmp_path / "deps"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(deps)], check=True)
    (deps / LIB / "libglog.so.1").write_text("kept: not in the list")
    lst = tmp_path / "libs.txt"
    lst.write_text(p.stdout)
    drop = [str(GPU_TOOLS / "drop_system_libs.sh"), str(deps), str(lst)]
    # The system has libffi.so.8: the bundle's link and file go, so the loader takes the system's.
    p = subprocess.run(drop, input="libc.so.6\nlibffi.so.8\n", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["libffi.so.8"]
    assert sorted(f.name for f in (deps / LIB).iterdir()) == ["libglog.so.1"]


def test_drop_system_libs_keeps_what_the_system_lacks(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    (deps / LIB).mkdir(parents=True)
    (deps / LIB / "libgmp.so.10.4.1").write_text("gmp")
    (deps / LIB / "libgmp.so.10").symlink_to("libgmp.so.10.4.1")
    lst = tmp_path / "libs.txt"
    lst.write_text(f"{LIB}/libgmp.so.10\n{LIB}/libgmp.so.10.4.1\n")
    p = subprocess.run([str(GPU_TOOLS / "drop_system_libs.sh"), str(deps), str(lst)],
                       input="libc.so.6\n", capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == ""
    assert (deps / LIB / "libgmp.so.10").resolve().read_text() == "gmp"
    p = subprocess.run([str(GPU_TOOLS / "drop_system_libs.sh"), str(tmp_path / "nope"), str(lst)],
                       input="", capture_output=True, text=True)
    assert p.returncode == 1 and "no folder" in p.stderr and "Traceback" not in p.stderr


def test_use_runtime_says_in_one_line_when_there_is_no_runtime(tmp_path: Path) -> None:
    p = run(["bash", str(GPU_TOOLS / "use_runtime.sh"), "--prefix", str(tmp_path / "p"),
             "--runtime", str(tmp_path / "none.tar.xz")])
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        f"use_runtime: error: no runtime at {tmp_path / 'none.tar.xz'} "
        "(tools/gpu/make_runtime.sh makes it here)"]


def test_run_on_device_without_a_gpu_says_what_it_skips(tmp_path: Path) -> None:
    # No GPU and no build: the rehearsal line, then one line saying nothing else can run.
    env = {"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "HOME": str(tmp_path),
           "CO2FI_PREFIX": str(tmp_path / "prefix"), "CO2FI_DEADLINE_S": "30"}
    p = subprocess.run(["bash", str(GPU_TOOLS / "run_on_device.sh"), "check"], cwd=REPO,
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 1
    assert "no GPU visible (nvidia-smi -L fails): a rehearsal" in p.stdout
    assert "no build at" in p.stdout and "nothing else can run" in p.stdout
    assert (tmp_path / "out" / "run_on_device.log").exists()
