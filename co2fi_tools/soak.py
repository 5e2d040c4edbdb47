"""Fault-injection soak of the demo (``make soak``; not in CI; docs/RELIABILITY.md).

A small demo runs in a folder on its own tmpfs. A seeded random schedule SIGKILLs, at >= 20
points, one of: the driver (tools/demo.py), a solver worker, a data-layer (prefetch) worker, an
extraction worker or the evaluation (the driver while it scores), and reruns the same command
after each kill. Once, mid-run, the tmpfs is filled with a ballast file: the demo must stop
with a one-line disk-full error, a rerun while still full too; then the ballast is freed. At
the end the soak checks that

- the run completed (exit 0, results.json);
- every stage finished before a kill kept its files byte-identical (each is hashed when first
  seen complete: frame folders with .done, lists, run folders with final.caffemodel and
  their health record, score files, nets);
- no file the pipeline marks complete is truncated or unparsable (caffemodel and solverstate
  parse with caffe_pb2 and the snapshots pass the resume checks, h5 files open and read, JSON
  loads, frames of finished videos decode), and no cut-short snapshot is left in staging;
- the final tables (results.json), the per-video scores and the final weights equal those of
  an uninterrupted run of the same seed within the tolerance CPU non-determinism allows,
  measured by running the uninterrupted demo twice.

It prints the counts (kills by target, reruns, resumes, files checked, mismatches) and writes
them to ``<base>/report.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from co2fi_layers.caffe_env import REPO_ROOT
from co2fi_tools.training.health import HEALTH_FILE

#: The demo soaked: one uninterrupted run takes about 1.5 minutes on 2 quiet cores (its
#: stages are long enough that most kills land inside a stage, not while one starts).
DEMO_ARGS = ("--classes", "6", "--clips-per-class", "4", "--frames", "24", "--max-iter", "60",
             "--pretrain-iters", "0", "--workers", "2")
TARGETS = ("driver", "solver", "data-worker", "extraction-worker", "evaluation")
DISK_FULL_TEXT = "no space left on device (disk full)"


@dataclass
class Report:
    seed: int
    demo_args: list[str]
    kills: Counter = field(default_factory=Counter)
    reruns: int = 0
    resumes: int = 0
    lock_waits: int = 0
    hangs: int = 0
    disk_full: list[dict] = field(default_factory=list)
    completed: bool = False
    files_hashed: int = 0
    changed_files: list[str] = field(default_factory=list)
    files_checked: int = 0
    corrupt_files: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    tolerance: dict = field(default_factory=dict)
    soak_vs_reference: dict = field(default_factory=dict)
    table_mismatches: list[str] = field(default_factory=list)
    minutes: dict = field(default_factory=dict)
    delays: tuple[float, float] = (0.0, 0.0)

    @property
    def ok(self) -> bool:
        return (self.completed and sum(self.kills.values()) >= 20 and len(self.disk_full) >= 1
                and all(d["stopped_in_one_line"] for d in self.disk_full)
                and not self.changed_files and not self.corrupt_files and not self.leftovers
                and not self.table_mismatches and not self.hangs)


# --- processes --------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _phase(log: Path) -> str:
    """The demo's current step, from its last progress line."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.startswith("[co2fi")]
    last = lines[-1] if lines else ""
    if "evaluating" in last:
        return "evaluation"
    if "extracting" in last:
        return "extraction"
    return "other"


def targets(demo: subprocess.Popen, log: Path) -> dict[str, list[int]]:
    """What can be killed now: kind -> pids (every data-layer worker of the solver: one of
    the test net's alone is never waited for, and the run would go on untouched)."""
    found: dict[str, list[int]] = {}
    if demo.poll() is not None:
        return found
    phase = _phase(log)
    found["evaluation" if phase == "evaluation" else "driver"] = [demo.pid]
    own = _cmdline(demo.pid)
    for child in _children(demo.pid):
        cmd = _cmdline(child)
        if "co2fi_tools.training.solver_worker" in cmd:
            found["solver"] = [child]
            workers = [w for w in _children(child) if _alive(w)]
            if workers:
                found["data-worker"] = workers
        elif cmd == own and phase == "extraction" and _alive(child):
            found["extraction-worker"] = [child]
    return found


# --- what the pipeline marks complete ---------------------------------------------------------


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def complete_files(out: Path) -> list[Path]:
    """The files of every finished step of a demo folder (never written again by a rerun)."""
    files: list[Path] = []
    data = out / "data"
    files += sorted((data / "splits").glob("*")) if (data / "splits" / "classInd.txt").exists() \
        else []
    files += sorted((data / "videos").rglob("*.avi"))
    for done in sorted((data / "frames").glob("*/.done")):
        files += sorted(p for p in done.parent.iterdir() if p.is_file())
    lists = sorted((data / "lists").glob("*.txt"))
    if len([p for p in lists if "split1" in p.name]) >= 6:
        files += lists
    # a run is finished once the pipeline has probed it (its health record follows the final
    # weights, and the probe's lines go into the run's log)
    for final in sorted((out / "runs").glob(f"*/{HEALTH_FILE}")):
        files += sorted(p for p in final.parent.rglob("*")
                        if p.is_file() and p.name != ".lock" and "discarded" not in p.parts)
    files += sorted((out / "scores").glob("*.h5"))
    files += sorted(p for p in (out / "nets").rglob("*.prototxt"))
    return [p for p in files if p.is_file()]


def record_hashes(out: Path, hashes: dict[str, str]) -> None:
    """Hash each complete file the first time it is seen."""
    for path in complete_files(out):
        key = str(path.relative_to(out))
        if key not in hashes:
            hashes[key] = _sha(path)


def check_file(path: Path) -> str | None:
    """Why a file the pipeline marks complete cannot be read, or None."""
    try:
        name = path.name
        if name.endswith(".caffemodel"):
            from caffe.proto import caffe_pb2

            net = caffe_pb2.NetParameter()
            net.ParseFromString(path.read_bytes())
            if not any(layer.blobs for layer in net.layer):
                return "holds no weights"
        elif name.endswith(".solverstate"):
            from co2fi_tools.training.runs import snapshot_problem

            return snapshot_problem(path)
        elif name.endswith(".h5"):
            import h5py

            with h5py.File(path, "r") as f:
                f.visititems(lambda _, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
        elif name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith(".jpg"):
            import cv2

            if cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is None:
                return "not a decodable image"
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def check_all(out: Path, report: Report) -> None:
    """Parse every file the finished demo marks complete; no leftovers of cut-short writes."""
    paths = set(complete_files(out))
    paths |= {p for p in out.rglob("*") if p.is_file()
              and p.suffix in (".caffemodel", ".solverstate", ".json")
              and ".writing" not in p.parts and not p.name.startswith(".")}
    for path in sorted(paths):
        report.files_checked += 1
        problem = check_file(path)
        if problem:
            report.corrupt_files.append(f"{path}: {problem}")
    for path in out.rglob("*"):
        if ".writing" in path.parts and path.is_file():
            report.leftovers.append(str(path))
        elif ".partial" in path.name or (path.name.startswith(".") and ".tmp" in path.name):
            report.leftovers.append(str(path))


# --- comparison with the uninterrupted runs ---------------------------------------------------


def _results(out: Path) -> dict[str, float]:
    records = json.loads((out / "results.json").read_text())["results"]
    table = {}
    for r in records:
        for key in ("accuracy", "mean_class_accuracy", "top5"):
            if r.get(key) is not None:
                table[f"{r['method']} / {r['stream']} / {key}"] = float(r[key])
    return table


def _scores(out: Path) -> dict[str, object]:
    import h5py
    import numpy as np

    found = {}
    for path in sorted((out / "scores").glob("*.h5")):
        with h5py.File(path, "r") as f:
            for name, group in f.items():
                if isinstance(group, h5py.Dataset) and np.issubdtype(group.dtype, np.floating):
                    found[f"{path.stem}/{name}"] = np.asarray(group[()], dtype=np.float64)
                elif isinstance(group, h5py.Group):
                    for sub, ds in group.items():
                        if isinstance(ds, h5py.Dataset) and np.issubdtype(ds.dtype, np.floating):
                            found[f"{path.stem}/{name}/{sub}"] = np.asarray(ds[()], np.float64)
    return found


def _weights(out: Path) -> dict[str, object]:
    import numpy as np
    from caffe.proto import caffe_pb2

    found = {}
    for path in sorted((out / "runs").glob("*/final.caffemodel")):
        net = caffe_pb2.NetParameter()
        net.ParseFromString(path.read_bytes())
        for layer in net.layer:
            for i, blob in enumerate(layer.blobs):
                found[f"{path.parent.name}/{layer.name}/{i}"] = np.asarray(blob.data, np.float64)
    return found


def differences(a: Path, b: Path) -> dict[str, float]:
    """Largest absolute differences between two finished demo folders: table entries (in
    percentage points), per-video scores, final weights; inf where one lacks an entry."""
    import numpy as np

    out = {}
    for kind, read, scale in (("table_points", _results, 100.0), ("scores", _scores, 1.0),
                              ("weights", _weights, 1.0)):
        x, y = read(a), read(b)
        worst = 0.0 if x.keys() == y.keys() else float("inf")
        for key in x.keys() & y.keys():
            xa, ya = np.asarray(x[key]), np.asarray(y[key])
            d = float("inf") if xa.shape != ya.shape else float(np.max(np.abs(xa - ya),
                                                                       initial=0.0))
            worst = max(worst, d * scale)
        out[kind] = worst
    return out


# --- running the demo -------------------------------------------------------------------------


def demo_command(out: Path, demo_args: list[str]) -> list[str]:
    return [sys.executable, "tools/demo.py", "--out", str(out), *demo_args]


def _start(out: Path, demo_args: list[str], log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - closed in _finish
    proc = subprocess.Popen(demo_command(out, demo_args), cwd=REPO_ROOT, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    proc.log_handle = handle  # type: ignore[attr-defined]
    return proc


def _finish(proc: subprocess.Popen, timeout: float, report: Report) -> int | None:
    """Wait for the demo; a hang past ``timeout`` is counted and killed."""
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        report.hangs += 1
        _kill_session(proc)
        rc = None
    proc.log_handle.close()  # type: ignore[attr-defined]
    return rc


def _kill_session(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _last_line(log: Path) -> str:
    lines = [x.strip() for x in log.read_text(errors="replace").replace("\r", "\n").splitlines()
             if x.strip()]
    return lines[-1] if lines else ""


#: Beside a reference run: how long it took (a reused reference still sizes the kill delays).
REFERENCE_TIME = "soak-reference.json"


def reference_run(out: Path, demo_args: list[str], log: Path, timeout: float) -> float:
    """An uninterrupted demo (reused when it finished before); returns its minutes."""
    timing = out / REFERENCE_TIME
    if (out / "results.json").exists() and timing.exists():
        return float(json.loads(timing.read_text())["minutes"])
    start = time.time()
    report = Report(0, [])
    rc = _finish(_start(out, demo_args, log), timeout, report)
    if rc != 0:
        raise RuntimeError(f"the uninterrupted demo in {out} failed ({rc}); see {log}")
    minutes = (time.time() - start) / 60
    timing.write_text(json.dumps({"minutes": minutes}) + "\n")
    return minutes


# --- the disk ---------------------------------------------------------------------------------


def mount_tmpfs(folder: Path, megabytes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(folder):
        return
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs",
                           str(folder)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"cannot mount a tmpfs on {folder} ({proc.stderr.strip()}); the "
                           "soak needs root for its disk-full step")


def fill(folder: Path) -> Path:
    """A ballast file that takes every free byte of ``folder``'s file system."""
    ballast = folder / "ballast"
    with open(ballast, "ab", buffering=0) as f:  # unbuffered: nothing left to fail at close
        for size in (1 << 20, 4096, 512):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return ballast


# --- the soak ---------------------------------------------------------------------------------


def kill_delays(min_delay: float, max_delay: float | None, reference_seconds: float,
                kills: int) -> tuple[float, float]:
    """Seconds from a (re)start to its kill, drawn uniformly from this range. Unless given, the
    upper end is the uninterrupted run's duration over the kills wanted (at least
    ``min_delay`` + 1 s): on a faster machine the kills come sooner, so the run still takes
    them all before it ends (a fixed 1-5 s let the demo end after 13 kills on 2 quiet cores)."""
    if max_delay is not None:
        return min_delay, max_delay
    return min_delay, max(min_delay + 1.0, reference_seconds / kills)


def soak(base: Path, seed: int, kills: int, demo_args: list[str], disk_mb: int,
         delays: tuple[float, float | None], attempt_timeout: float) -> Report:
    rng = random.Random(seed)
    report = Report(seed, list(demo_args))
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    report.minutes["reference_1"] = reference_run(base / "ref1", demo_args, logs / "ref1.log",
                                                  3600)
    report.minutes["reference_2"] = reference_run(base / "ref2", demo_args, logs / "ref2.log",
                                                  3600)
    report.tolerance = differences(base / "ref1", base / "ref2")
    delays = kill_delays(delays[0], delays[1], 60 * min(report.minutes.values()), kills)
    report.delays = delays
    print(f"soak: kills {delays[0]:.1f}-{delays[1]:.1f} s after each (re)start", file=sys.stderr)
    disk = base / "disk"
    mount_tmpfs(disk, disk_mb)
    out = disk / "run"
    hashes: dict[str, str] = {}
    disk_full_at = rng.randrange(kills // 3, 2 * kills // 3)
    attempt = 0
    soak_start = time.time()

    def run_once(kill: bool, fill_disk: bool = False, only: set[str] | None = None
                 ) -> int | None:
        """One (re)start; killed once ``delays`` after it starts (``only``: by the first
        target of these kinds that shows, however late), else to its end."""
        nonlocal attempt
        attempt += 1
        log = logs / f"attempt-{attempt:03d}.log"
        report.reruns += attempt > 1
        proc = _start(out, demo_args, log)
        if fill_disk:
            time.sleep(rng.uniform(*delays) + 5)
            ballast = fill(disk) if proc.poll() is None else None
            rc = _finish(proc, attempt_timeout, report)
            line = _last_line(log)
            event = {"attempt": attempt, "exit": rc, "line": line,
                     "stopped_in_one_line": rc == 1 and DISK_FULL_TEXT in line}
            if ballast is None:
                event["note"] = "the demo finished before the disk was filled"
            else:  # a rerun while still full
                attempt += 1
                report.reruns += 1
                rlog = logs / f"attempt-{attempt:03d}.log"
                rc2 = _finish(_start(out, demo_args, rlog), attempt_timeout, report)
                rline = _last_line(rlog)
                event.update(rerun_exit=rc2, rerun_line=rline)
                event["stopped_in_one_line"] &= rc2 == 1 and DISK_FULL_TEXT in rline
                ballast.unlink()
            report.disk_full.append(event)
            print(f"soak: disk full at attempt {event['attempt']}: {line}", file=sys.stderr)
            return rc
        if not kill:
            return _finish(proc, attempt_timeout, report)
        deadline = time.time() + (0.0 if only else rng.uniform(*delays))
        while proc.poll() is None:  # until one kill lands, or the demo ends by itself
            while time.time() < deadline and proc.poll() is None:
                time.sleep(0.05)
            found = {k: v for k, v in targets(proc, log).items() if not only or k in only}
            if found:
                kinds = sorted(found)
                weights = [1.0 / (1 + report.kills[k]) ** 2 for k in kinds]
                kind = rng.choices(kinds, weights)[0]
                try:
                    for pid in found[kind]:
                        os.kill(pid, signal.SIGKILL)
                    report.kills[kind] += 1
                    print(f"soak: kill {sum(report.kills.values())}: {kind} (pid "
                          f"{found[kind]}) at attempt {attempt}", file=sys.stderr)
                    break
                except ProcessLookupError:  # it ended meanwhile: another target soon
                    pass
            deadline = time.time() + rng.uniform(0.5, 2.0)
        return _finish(proc, attempt_timeout, report)

    done = False
    while sum(report.kills.values()) < kills and not done:
        full = not report.disk_full and sum(report.kills.values()) >= disk_full_at
        rc = run_once(kill=not full, fill_disk=full)
        record_hashes(out, hashes)
        done = rc == 0 and (out / "results.json").exists()
    # a kind the schedule missed (the evaluation comes last, after most kills are spent) is
    # killed once on the way to the end, when it shows
    missing = {k for k in TARGETS if not report.kills[k]}
    for _ in range(10):  # to the end, no more kills
        if done:
            break
        done = run_once(kill=bool(missing), only=missing) == 0
        missing = {k for k in missing if not report.kills[k]}
        record_hashes(out, hashes)
    report.completed = done and (out / "results.json").exists()
    for name in ("results.json", "comparison.md"):  # kept after the tmpfs is unmounted
        if (out / name).exists():
            (base / f"soaked-{name}").write_bytes((out / name).read_bytes())
    report.minutes["soak"] = (time.time() - soak_start) / 60
    for text in (p.read_text(errors="replace") for p in logs.glob("attempt-*.log")):
        report.lock_waits += text.count("waiting for the processes")
    for log in (out / "runs").glob("*/train.log"):
        report.resumes += sum("--restore=" in line for line in log.read_text(
            errors="replace").splitlines() if line.startswith("co2fi: "))
    report.files_hashed = len(hashes)
    for key, digest in sorted(hashes.items()):
        path = out / key
        if not path.exists() or _sha(path) != digest:
            report.changed_files.append(key)
    check_all(out, report)
    if report.completed:
        report.soak_vs_reference = differences(base / "ref1", out)
        for kind, diff in report.soak_vs_reference.items():
            if diff > report.tolerance.get(kind, 0.0):
                report.table_mismatches.append(
                    f"{kind}: differs by {diff:g} from the uninterrupted run (tolerance "
                    f"{report.tolerance.get(kind, 0.0):g})")
    report.minutes["total"] = (time.time() - t0) / 60
    return report


def summary(report: Report) -> str:
    k = report.kills
    lines = [
        f"soak (seed {report.seed}): {'OK' if report.ok else 'FAILED'}",
        f"  kills: {sum(k.values())} ({', '.join(f'{t} {k[t]}' for t in TARGETS)}); reruns "
        f"{report.reruns}; resumes from a snapshot {report.resumes}; lock waits for a killed "
        f"job's children {report.lock_waits}; hangs {report.hangs}",
        f"  disk full: {len(report.disk_full)} event(s): "
        + "; ".join(f"stopped with '{d['line']}', rerun while full: '{d.get('rerun_line')}'"
                    for d in report.disk_full),
        f"  completed: {report.completed}",
        f"  complete files hashed when first seen: {report.files_hashed}, changed since: "
        f"{len(report.changed_files)}",
        f"  files checked (parse/decode): {report.files_checked}, corrupt: "
        f"{len(report.corrupt_files)}, leftovers of cut-short writes: {len(report.leftovers)}",
        f"  uninterrupted run twice, largest difference (the tolerance): {report.tolerance}",
        f"  soak vs uninterrupted run: {report.soak_vs_reference}; mismatches "
        f"{len(report.table_mismatches)}",
        f"  minutes: {', '.join(f'{k} {v:.1f}' for k, v in report.minutes.items())}",
    ]
    for name in ("changed_files", "corrupt_files", "leftovers", "table_mismatches"):
        lines += [f"  {name}: {x}" for x in getattr(report, name)[:20]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/soak.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/soak"),
                    help="where the references, the soaked run (on a tmpfs) and the logs go")
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill schedule")
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--disk-mb", type=int, default=600, help="size of the soaked run's tmpfs")
    ap.add_argument("--min-delay", type=float, default=1.0)
    ap.add_argument("--max-delay", type=float,
                    help="default: an uninterrupted run's seconds over --kills, at least "
                         "--min-delay + 1")
    ap.add_argument("--attempt-timeout", type=float, default=900.0,
                    help="seconds before an attempt counts as a hang")
    ap.add_argument("--keep-mount", action="store_true", help="leave the tmpfs mounted")
    ap.add_argument("demo_args", nargs="*", default=list(DEMO_ARGS),
                    help=f"the demo's options (default: {' '.join(DEMO_ARGS)})")
    args = ap.parse_args(argv)
    if args.kills < 1 or args.min_delay < 0 or (args.max_delay is not None
                                                and args.min_delay > args.max_delay):
        ap.error("--kills must be positive and --min-delay at most --max-delay")
    base = args.out.expanduser().absolute()
    try:
        report = soak(base, args.seed, args.kills, args.demo_args, args.disk_mb,
                      (args.min_delay, args.max_delay), args.attempt_timeout)
    except (RuntimeError, OSError) as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return 1
    finally:
        disk = base / "disk"
        if not args.keep_mount and os.path.ismount(disk):
            subprocess.run(["umount", "-l", str(disk)], check=False)
    text = summary(report)
    print(text)
    record = asdict(report)
    record.update(kills=dict(report.kills), ok=report.ok)  # asdict makes a Counter of pairs
    (base / "report.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    return 0 if report.ok else 1
