"""A training run's folder: its config, the code revision, the seed, nets, log and snapshots.

    <run>/config.json          what was asked (job, seed, code revision, command line)
    <run>/train.prototxt       the train net with this run's data lists
    <run>/solver.prototxt      the solver, pointing at the two files above
    <run>/init.caffemodel      initial weights after net surgery (when any)
    <run>/train.log            Caffe's glog output (appended across resumes)
    <run>/snapshots/           <name>_iter_<n>.caffemodel / .solverstate (the newest K kept)
    <run>/tensorboard/         TensorBoard event files, live (pycaffe backend)
    <run>/final.caffemodel     the trained weights, written last: the run is complete
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from co2fi_layers.caffe_env import REPO_ROOT

SNAPSHOT_RE = re.compile(r"_iter_(\d+)\.solverstate(\.h5)?$")
SNAPSHOT_FILE_RE = re.compile(r"_iter_(\d+)\.(caffemodel|solverstate)(\.h5)?$")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see either the old or the whole new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def code_revision() -> str:
    """The git revision of this checkout, with '+dirty' when it has uncommitted changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


class Run:
    """One training run's folder."""

    def __init__(self, path: Path | str, name: str) -> None:
        self.path = Path(path)
        self.name = name

    config = property(lambda self: self.path / "config.json")
    train_net = property(lambda self: self.path / "train.prototxt")
    solver = property(lambda self: self.path / "solver.prototxt")
    init_weights = property(lambda self: self.path / "init.caffemodel")
    log = property(lambda self: self.path / "train.log")
    snapshots = property(lambda self: self.path / "snapshots")
    final_weights = property(lambda self: self.path / "final.caffemodel")
    tensorboard = property(lambda self: self.path / "tensorboard")

    @property
    def snapshot_prefix(self) -> Path:
        return self.snapshots / self.name

    def is_complete(self) -> bool:
        return self.final_weights.exists()

    def latest_solverstate(self) -> tuple[int, Path] | None:
        """The newest snapshot's (iteration, solverstate path), or None."""
        found = []
        for p in self.snapshots.glob(f"{self.name}_iter_*.solverstate*"):
            m = SNAPSHOT_RE.search(p.name)
            if m and p.with_name(p.name.replace(".solverstate", ".caffemodel")).exists():
                found.append((int(m.group(1)), p))
        return max(found) if found else None

    def snapshot_pairs(self) -> list[tuple[int, list[Path]]]:
        """Every snapshot iteration with its files (.caffemodel, .solverstate[.h5]), oldest
        first."""
        by_iter: dict[int, list[Path]] = {}
        for p in self.snapshots.glob(f"{self.name}_iter_*"):
            m = SNAPSHOT_FILE_RE.search(p.name)
            if m:
                by_iter.setdefault(int(m.group(1)), []).append(p)
        return sorted(by_iter.items())

    def prune_snapshots(self, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` complete snapshots (weights and solver state);
        an incomplete newer one (being written) is left alone. Returns what was deleted."""
        if keep < 1:
            raise ValueError(f"keep_snapshots must be at least 1 (resume needs the newest), "
                             f"got {keep}")
        latest = self.latest_solverstate()
        if latest is None:
            return []
        older = [files for it, files in self.snapshot_pairs() if it <= latest[0]]
        deleted = []
        for files in older[:-keep]:
            for path in files:
                path.unlink(missing_ok=True)
                deleted.append(path)
        return deleted

    def write_config(self, config: dict) -> None:
        config = dict(config, code_revision=code_revision(), argv=sys.argv, name=self.name)
        if self.config.exists():
            old = json.loads(self.config.read_text())
            changed = sorted(k for k in ("variant", "preset", "dataset", "seed", "max_iter")
                             if k in old and old[k] != config.get(k))
            if changed:
                raise ValueError(
                    f"{self.config}: this run folder was made with other settings ({changed}); "
                    "use a new --run-dir or delete the folder")
            config["resumed_from_revision"] = old.get("code_revision")
        atomic_write_text(self.config, json.dumps(config, indent=2, sort_keys=True) + "\n")

