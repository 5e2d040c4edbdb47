"""tools/docker/test.sh (`make docker-test`): what a user sees when it cannot run.

The real run (image build, pycaffe's tests and a tiny demo in the container) is `make docker-test`
itself; here the engine and debootstrap are stand-ins, so each refusal is checked in seconds.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "docker" / "test.sh"


def _shim(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    f = bin_dir / name
    f.write_text("#!/bin/sh\n" + body + "\n")
    f.chmod(f.stat().st_mode | stat.S_IEXEC)


def _bin_with(tmp_path: Path, *tools: str) -> Path:
    """A PATH folder holding only the named host tools (no docker, podman or debootstrap)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dirname", "id", "mkdir", "mktemp", "rm", "tar", "tail", "date", "cat", "sed",
                 "awk", "find", "grep", "chown", *tools):
        where = shutil.which(tool)
        if where and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(where)
    return bin_dir


def _run(tmp_path: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "CO2FI_CACHE": str(tmp_path / "cache")}
    return subprocess.run([shutil.which("bash"), str(SCRIPT), "--out", str(tmp_path / "out"),
                           *args], env=env, capture_output=True, text=True, timeout=60)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("docker-test: error: "), proc.stderr
    return last


def test_no_engine_says_what_to_install(tmp_path: Path) -> None:
    proc = _run(tmp_path, _bin_with(tmp_path))
    assert proc.stderr.count("\n") == 1
    assert "no container engine" in _one_error_line(proc)
    assert "apt-get install podman runc" in proc.stderr


def test_docker_without_its_daemon_says_so(tmp_path: Path) -> None:
    bin_dir = _bin_with(tmp_path)
    _shim(bin_dir, "docker", 'echo "Cannot connect to the Docker daemon" >&2; exit 1')
    line = _one_error_line(_run(tmp_path, bin_dir))
    assert "daemon does not answer" in line and "podman" in line


def _fake_podman(bin_dir: Path, base_exists: bool, build_rc: int = 0) -> None:
    _shim(bin_dir, "podman", f"""while [ "$1" = --runtime ]; do shift 2; done
case "$1" in
  info) exit 0 ;;
  image) exit {0 if base_exists else 1} ;;
  build) echo "STEP 15/18: RUN tools/install_caffe.sh"; echo "make: *** [all] Error 2"
         exit {build_rc} ;;
  *) exit 0 ;;
esac""")


def test_base_that_cannot_be_made_names_the_mirror(tmp_path: Path) -> None:
    bin_dir = _bin_with(tmp_path)
    _fake_podman(bin_dir, base_exists=False)
    _shim(bin_dir, "id", 'case "$1" in -u|-g) echo 0 ;; *) echo "uid=0(root)" ;; esac')
    _shim(bin_dir, "debootstrap", 'echo "E: Failed getting release file" ; exit 1')
    proc = subprocess.run(
        [shutil.which("bash"), str(SCRIPT), "--out", str(tmp_path / "out")],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "CO2FI_CACHE": str(tmp_path / "cache"),
             "CO2FI_DEBIAN_MIRROR": "http://mirror.invalid/debian"},
        capture_output=True, text=True, timeout=60)
    line = _one_error_line(proc)
    assert "debootstrap of Debian 12 from http://mirror.invalid/debian failed" in line
    assert "E: Failed getting release file" in line and "CO2FI_DEBIAN_MIRROR" in line
    assert not list((tmp_path / "cache" / "docker").glob("*")), "a failed base leaves nothing"


def test_missing_debootstrap_says_what_to_install(tmp_path: Path) -> None:
    bin_dir = _bin_with(tmp_path)
    _fake_podman(bin_dir, base_exists=False)
    line = _one_error_line(_run(tmp_path, bin_dir))
    assert "debootstrap is missing" in line and "--base IMAGE" in line


def test_failed_build_shows_the_log_end_and_one_line(tmp_path: Path) -> None:
    bin_dir = _bin_with(tmp_path)
    _fake_podman(bin_dir, base_exists=True, build_rc=1)
    proc = _run(tmp_path, bin_dir)
    line = _one_error_line(proc)
    assert "the image build failed" in line
    log = Path(line.split("the end of ")[1].split(")")[0])
    assert log.is_file() and "Error 2" in log.read_text()
    assert "make: *** [all] Error 2" in proc.stderr
    assert not (tmp_path / "out").exists(), "nothing runs after a failed build"
