"""tools/install_caffe.sh: its refusals and failures are clear and leave no half-built cache."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import requires_caffe

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "install_caffe.sh"
DEB_VERSION = "1.0.0+git20180821.99bd997-8"
ORIG = "caffe_1.0.0+git20180821.99bd997.orig.tar.gz"


def _run(env_extra: dict[str, str], *args: str, path_prefix: Path | None = None):
    env = dict(os.environ)
    env.pop("CAFFE_SRC", None)
    env.update(env_extra)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable, "--cuda", "off", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _shim(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    f = bin_dir / name
    f.write_text("#!/bin/sh\n" + body + "\n")
    f.chmod(f.stat().st_mode | stat.S_IEXEC)


def test_missing_packages_without_root_prints_the_apt_command(tmp_path: Path) -> None:
    shims = tmp_path / "bin"
    _shim(shims, "id", 'if [ "$1" = "-u" ]; then echo 1000; else /usr/bin/id "$@"; fi')
    _shim(shims, "dpkg-query",
          'case "$*" in *libgflags-dev*) exit 1;; *) exec /usr/bin/dpkg-query "$@";; esac')
    proc = _run({"CO2FI_CACHE": str(tmp_path / "cache")}, path_prefix=shims)
    assert proc.returncode == 2
    assert "apt-get install -y --no-install-recommends libgflags-dev" in proc.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("caffe-*"))


def test_checksum_mismatch_is_refused_with_both_hashes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    src = cache / "src" / f"debian-{DEB_VERSION}"
    src.mkdir(parents=True)
    (src / ORIG).write_bytes(b"not the caffe tarball")
    (src / ".done").touch()
    proc = _run({"CO2FI_CACHE": str(cache)})
    assert proc.returncode != 0
    assert "checksum mismatch" in proc.stderr
    assert str(src / ORIG) in proc.stderr
    assert "e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c" in proc.stderr
    got = subprocess.run(["sha256sum", str(src / ORIG)], capture_output=True, text=True)
    assert got.stdout.split()[0] in proc.stderr
    assert not list(cache.glob("caffe-*"))


def test_build_failure_shows_the_log_and_leaves_no_cache(tmp_path: Path) -> None:
    fake = tmp_path / "caffe-src"
    (fake / "src" / "caffe").mkdir(parents=True)
    (fake / "CMakeLists.txt").write_text("message(FATAL_ERROR broken)\n")
    cache = tmp_path / "cache"
    proc = _run({"CO2FI_CACHE": str(cache), "CAFFE_SRC": str(fake)})
    assert proc.returncode == 1
    assert "build failed" in proc.stderr and "Full log: " in proc.stderr
    log = Path(proc.stderr.split("Full log: ")[1].split()[0])
    assert log.exists() and "last lines of the log" in proc.stderr
    assert not list(cache.glob("caffe-*")), "a failed build must not leave an install"
    assert not list(cache.glob("build-*")), "a failed build must not leave its work folder"


def test_bad_option_is_refused() -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--cuda", "maybe"], capture_output=True, text=True)
    assert proc.returncode != 0 and "--cuda must be auto, on or off" in proc.stderr


@requires_caffe
def test_print_prefix_names_a_complete_cached_build() -> None:
    """The build the test session runs under is the one the script would reuse."""
    import caffe

    proc = _run({}, "--print-prefix")
    prefix = Path(proc.stdout.strip())
    assert proc.returncode == 0, f"no complete build at {prefix}: run `make caffe`"
    assert prefix.name.startswith("caffe-cpu-")
    assert (prefix / "bin" / "caffe").exists()
    assert Path(caffe.__file__).resolve().is_relative_to(prefix.resolve())


def test_nccl_switch_is_checked_and_leaves_the_cpu_build_alone() -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--nccl", "maybe"], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "--nccl must be auto, on or off" in proc.stderr
    proc = _run({}, "--nccl", "on", "--print-prefix")
    assert proc.returncode != 0 and "--nccl on needs a CUDA build (--cuda on)" in proc.stderr
    # NCCL is a CUDA-build option: a CPU build has the same cache key with or without it
    default, off = _run({}, "--print-prefix"), _run({}, "--nccl", "off", "--print-prefix")
    assert default.stdout.strip() and default.stdout == off.stdout
def _fake_cuda(tmp_path: Path, archs: str = "75 80 86 89 90 100 120") -> Path:
    """A CUDA toolkit that only answers nvcc's --version and --list-gpu-arch (a CUDA 13 list)."""
    root = tmp_path / "cuda"
    (root / "include").mkdir(parents=True, exist_ok=True)
    for header in ("cuda_runtime.h", "cublas_v2.h"):
        (root / "include" / header).touch()
    listing = "\\n".join(f"compute_{a}" for a in archs.split())
    _shim(root / "bin", "nvcc", f"""case "$1" in
  --list-gpu-arch) printf '{listing}\\n' ;;
  *) echo 'Cuda compilation tools, release 13.0, V13.0.88'; echo 'Build cuda_13.0' ;;
esac""")
    return root / "bin"


def _cuda_prefix(tmp_path: Path, arch: str) -> subprocess.CompletedProcess:
    """--print-prefix of a CUDA build of a fake Caffe tree (no network, nothing is built)."""
    fake = tmp_path / "caffe-src"
    (fake / "src" / "caffe").mkdir(parents=True, exist_ok=True)
    (fake / "CMakeLists.txt").write_text("project(fake)\n")
    env = dict(os.environ, CAFFE_SRC=str(fake), CO2FI_CACHE=str(tmp_path / "cache"),
               CO2FI_CUDA_COMPILE_ONLY="1", PATH=f"{_fake_cuda(tmp_path)}:{os.environ['PATH']}")
    return subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable, "--cuda", "on", "--cuda-arch", arch,
         "--print-prefix"], env=env, capture_output=True, text=True, timeout=300)


def test_cuda_arch_list_names_the_build_and_its_spellings_share_one_key(tmp_path: Path) -> None:
    lists = {arch: _cuda_prefix(tmp_path, arch) for arch in
             ("75 80 86 89 90 +PTX", "90+PTX,8.9,86 80,75", "75 80 86 89 90", "90")}
    for arch, proc in lists.items():
        assert "error" not in proc.stderr, (arch, proc.stderr)
    prefixes = {arch: Path(proc.stdout.strip()).name for arch, proc in lists.items()}
    assert prefixes["75 80 86 89 90 +PTX"].startswith("caffe-cuda75-80-86-89-90-")
    # The same architectures and PTX, spelled otherwise: the same cached build.
    assert prefixes["75 80 86 89 90 +PTX"] == prefixes["90+PTX,8.9,86 80,75"]
    # Without PTX it is another build; a single number is sm_N + compute_N, as it always was.
    assert prefixes["75 80 86 89 90"] != prefixes["75 80 86 89 90 +PTX"]
    assert prefixes["90"].startswith("caffe-cuda90-")


def test_cuda_arch_the_compiler_lacks_is_refused_naming_it(tmp_path: Path) -> None:
    proc = _cuda_prefix(tmp_path, "70 75 80 86 89 90 +PTX")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cuda-arch 70" in lines[0] and "sm_70" in lines[0], proc.stderr
    assert "nvcc 13.0" in lines[0] and "drop 70 from the list" in lines[0]


def test_cuda_arch_that_is_no_compute_capability_is_refused(tmp_path: Path) -> None:
    for bad in ("sm_90", "+PTX", "75 abc"):
        proc = _cuda_prefix(tmp_path, bad)
        assert proc.returncode == 1, bad
        assert proc.stderr.startswith("install_caffe: error: --cuda-arch"), (bad, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
