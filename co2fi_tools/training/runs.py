"""A training run's folder: its config, the code revision, the seed, nets, log and snapshots.

    <run>/config.json          what was asked (job, seed, code revision, command line)
    <run>/train.prototxt       the train net with this run's data lists
    <run>/solver.prototxt      the solver, pointing at the two files above
    <run>/init.caffemodel      initial weights after net surgery (when any)
    <run>/train.log            Caffe's glog output (appended across resumes)
    <run>/snapshots/           <name>_iter_<n>.caffemodel / .solverstate (the newest K kept)
    <run>/snapshots/.writing/  where Caffe writes each snapshot; moved into snapshots/ only when
                               complete (publish_snapshot), so that a write cut short (a full
                               disk, a kill) never sits where resume looks
    <run>/tensorboard/         TensorBoard event files, live (pycaffe backend)
    <run>/final.caffemodel     the trained weights, written last: the run is complete
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from co2fi_layers.caffe_env import REPO_ROOT
from co2fi_tools.safe_io import atomic_write_bytes, atomic_write_text

SNAPSHOT_RE = re.compile(r"_iter_(\d+)\.solverstate(\.h5)?$")
SNAPSHOT_FILE_RE = re.compile(r"_iter_(\d+)\.(caffemodel|solverstate)(\.h5)?$")
#: The folder under snapshots/ that Caffe's snapshot_prefix points into.
STAGING = ".writing"


def publish_snapshot(staged_prefix: str | os.PathLike[str], iteration: int) -> Path | None:
    """Move the snapshot Caffe wrote at ``iteration`` under ``staged_prefix``
    (``<run>/snapshots/.writing/<name>``) into ``<run>/snapshots/``: the weights first, then
    the solver state (its ``learned_net`` pointed at the moved weights), written atomically,
    so that a solver state in snapshots/ always has its complete weights beside it. Call it
    only once Caffe has returned from writing both. Returns the published solver state, or
    None when nothing was staged at that iteration."""
    staged_prefix = Path(staged_prefix)
    final_dir = staged_prefix.parent.parent
    model = Path(f"{staged_prefix}_iter_{iteration}.caffemodel")
    states = [Path(f"{staged_prefix}_iter_{iteration}.solverstate{ext}") for ext in ("", ".h5")]
    state = next((p for p in states if p.exists()), None)
    if state is None:
        return None
    if state.suffix == ".h5":
        model = Path(f"{staged_prefix}_iter_{iteration}.caffemodel.h5")
    final_model, final_state = final_dir / model.name, final_dir / state.name
    if model.exists() and state.suffix != ".h5":
        _check_readable(model, final_model, "NetParameter")
    if model.exists():
        with open(model, "rb") as f:
            os.fsync(f.fileno())
        os.replace(model, final_model)
    elif not final_model.exists():
        return None
    if state.suffix == ".h5":
        _repoint_h5_state(state, final_model)
        os.replace(state, final_state)
    else:

        solver_state = _check_readable(state, final_state, "SolverState")
        solver_state.learned_net = str(final_model)
        atomic_write_bytes(final_state, solver_state.SerializeToString())
        state.unlink()
    return final_state


class SnapshotIncomplete(OSError):
    """Caffe wrote a snapshot file that cannot be read back (a full disk loses the end of a
    file without Caffe noticing)."""


def _check_readable(path: Path, final: Path, message: str):
    from caffe.proto import caffe_pb2

    parsed = getattr(caffe_pb2, message)()
    try:
        parsed.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        path.unlink(missing_ok=True)
        st = os.statvfs(path.parent)
        full = st.f_bavail * st.f_frsize < (1 << 20)
        cause = "no space left on device (disk full)" if full else f"written incompletely ({exc})"
        raise SnapshotIncomplete(f"{final}: {cause}; the snapshot was not kept") from None
    return parsed


def _repoint_h5_state(state: Path, model: Path) -> None:
    import h5py
    import numpy as np

    with h5py.File(state, "r+") as f:
        if "learned_net" in f:
            del f["learned_net"]
        f.create_dataset("learned_net", data=np.bytes_(str(model)))


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


def snapshot_problem(state: Path) -> str | None:
    """Why a snapshot (``.solverstate`` + its ``.caffemodel``) cannot be resumed from, or None.

    A process killed while Caffe writes, or a full disk, leaves truncated files; a divergence
    stop leaves non-finite weights. Both are caught here, before Caffe sees them."""
    import numpy as np

    model = state.with_name(state.name.replace(".solverstate", ".caffemodel"))
    if not model.exists():
        return f"{model.name} is missing"
    try:
        if state.suffix == ".h5":
            import h5py

            arrays = []
            for path in (model, state):
                with h5py.File(path, "r") as f:
                    f.visititems(lambda _, obj: arrays.append(obj[()])
                                 if isinstance(obj, h5py.Dataset) else None)
        else:
            from caffe.proto import caffe_pb2

            net = caffe_pb2.NetParameter()
            net.ParseFromString(model.read_bytes())
            solver_state = caffe_pb2.SolverState()
            solver_state.ParseFromString(state.read_bytes())
            m = SNAPSHOT_RE.search(state.name)
            if m and solver_state.iter != int(m.group(1)):
                return f"{state.name} holds iteration {solver_state.iter}"
            blobs = [b for layer in net.layer for b in layer.blobs]
            blobs += list(solver_state.history)
            if not [b for layer in net.layer for b in layer.blobs]:
                return f"{model.name} holds no weights"
            arrays = [np.asarray(b.data, dtype=np.float32) for b in blobs]
    except Exception as exc:  # protobuf DecodeError/RuntimeError, OSError, h5py errors
        return f"cannot be read (truncated?): {type(exc).__name__}: {exc}"
    for array in arrays:
        if np.issubdtype(np.asarray(array).dtype, np.floating) and not np.all(
                np.isfinite(array)):
            return "holds non-finite (NaN/inf) values"
    return None


class Run:
    """One training run's folder."""

    def __init__(self, path: Path | str, name: str) -> None:
        # Absolute: the solver runs with the run folder as its working directory.
        self.path = Path(path).absolute()
        self.name = name
        #: Snapshots passed over by the last latest_solverstate(check=True): (path, reason).
        self.unusable: list[tuple[Path, str]] = []

    config = property(lambda self: self.path / "config.json")
    train_net = property(lambda self: self.path / "train.prototxt")
    solver = property(lambda self: self.path / "solver.prototxt")
    init_weights = property(lambda self: self.path / "init.caffemodel")
    log = property(lambda self: self.path / "train.log")
    snapshots = property(lambda self: self.path / "snapshots")
    final_weights = property(lambda self: self.path / "final.caffemodel")
    discarded = property(lambda self: self.path / "discarded")
    tensorboard = property(lambda self: self.path / "tensorboard")

    @property
    def snapshot_prefix(self) -> Path:
        """Where resume looks: ``snapshots/<name>`` (``_iter_<n>.caffemodel`` ...)."""
        return self.snapshots / self.name

    @property
    def staging(self) -> Path:
        return self.snapshots / STAGING

    @property
    def staged_prefix(self) -> Path:
        """Caffe's snapshot_prefix: it writes here, publish_snapshot moves what is complete."""
        return self.staging / self.name

    def staged_iterations(self) -> list[int]:
        """Iterations with a solver state in the staging folder, oldest first."""
        found = set()
        for p in self.staging.glob(f"{self.name}_iter_*.solverstate*"):
            m = SNAPSHOT_RE.search(p.name)
            if m:
                found.add(int(m.group(1)))
        return sorted(found)

    def clear_staging(self) -> list[Path]:
        """Remove what a solver that did not finish left in the staging folder (a write cut
        short by a full disk or a kill); only while no solver of this run runs."""
        removed = []
        for p in self.staging.glob("*"):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def is_complete(self) -> bool:
        return self.final_weights.exists()

    def latest_solverstate(self, check: bool = False) -> tuple[int, Path] | None:
        """The newest snapshot's (iteration, solverstate path), or None.

        ``check``: pass over snapshots that are truncated or hold non-finite values (listed in
        ``self.unusable``), falling back to the previous one."""
        found = []
        for p in self.snapshots.glob(f"{self.name}_iter_*.solverstate*"):
            m = SNAPSHOT_RE.search(p.name)
            if m and p.with_name(p.name.replace(".solverstate", ".caffemodel")).exists():
                found.append((int(m.group(1)), p))
        self.unusable = []
        for it, p in sorted(found, reverse=True):
            problem = snapshot_problem(p) if check else None
            if problem is None:
                return it, p
            self.unusable.append((p, problem))
        return None

    def settings_differences(self, settings: dict) -> list[str]:
        """How ``settings`` differ from those this folder was made with ([] if the same, or if
        the folder has no recorded settings yet)."""
        if not self.config.exists():
            return []
        try:
            old = json.loads(self.config.read_text()).get("settings")
        except (OSError, json.JSONDecodeError) as exc:
            return [f"{self.config} cannot be read ({exc})"]
        if old is None:
            return []
        return [f"{key}: {_short(old.get(key))} -> {_short(settings.get(key))}"
                for key in sorted(set(old) | set(settings)) if old.get(key) != settings.get(key)]

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
            try:
                old = json.loads(self.config.read_text())
            except (OSError, json.JSONDecodeError):
                old = {}
            config["resumed_from_revision"] = old.get("code_revision")
        atomic_write_text(self.config, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def discard(self) -> Path | None:
        """Move everything this run made into discarded/<time>/ (nothing is deleted);
        returns that folder, or None when there was nothing."""
        parts = [self.config, self.train_net, self.solver, self.init_weights, self.log,
                 self.snapshots, self.final_weights]
        present = [p for p in parts if p.exists()]
        if not present:
            return None
        dest = self.discarded / time.strftime("%Y%m%d-%H%M%S")
        while dest.exists():
            dest = dest.with_name(dest.name + "x")
        dest.mkdir(parents=True)
        for p in present:
            os.replace(p, dest / p.name)
        return dest


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
