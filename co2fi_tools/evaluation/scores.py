"""Per-video score files (HDF5) and per-class tables.

Schema ``co2fi-scores/1`` (docs/EVALUATION.md):

- ``/scores/<stream>``: float32 ``[videos x periods x classes]``, one dataset per model/stream
  (e.g. ``appearance``, ``motion``, ``appearance_centred``, ``motion_centred``).
- ``/labels``: int32 ``[videos]`` (0-based); ``/video_ids``, ``/class_names``: UTF-8 strings.
- ``/done``: bool ``[videos]``; a video's scores are valid only where done.
- root attributes: ``schema``, ``dataset``, ``split``, ``net``, ``iteration``, ``score_kind``
  (``raw``: pre-softmax scores; ``probability``: softmax outputs).

``ScoreWriter`` writes ``<path>.partial`` and renames it to ``<path>`` once every video is done,
so a file at ``<path>`` is always complete; an interrupted evaluation resumes from the partial file.
A partial file that cannot be read (truncated by a kill or a full disk), or that was made for
other settings and holds no finished video yet, is started over, and said so; one made for other
settings that holds finished videos is named with what differs.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from co2fi_tools.evaluation.classification import ClassRow
from co2fi_tools.safe_io import atomic_path, os_error_cause

SCHEMA = "co2fi-scores/1"
SCORE_KINDS: tuple[str, ...] = ("raw", "probability")
_STR = h5py.string_dtype("utf-8")


@dataclass
class ScoreFile:
    """A score file; ``scores`` maps a stream name to ``[videos x periods x classes]``."""

    scores: dict[str, np.ndarray]
    labels: np.ndarray
    video_ids: list[str]
    class_names: list[str]
    dataset: str
    split: str
    net: str
    iteration: int
    score_kind: str = "raw"
    done: np.ndarray | None = None
    path: str = ""
    extra_attrs: dict[str, str] = field(default_factory=dict)

    @property
    def num_videos(self) -> int:
        return int(self.labels.shape[0])


def partial_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.partial")


def _attrs(dataset: str, split: str, net: str, iteration: int, score_kind: str) -> dict:
    if score_kind not in SCORE_KINDS:
        raise ValueError(f"score_kind must be one of {SCORE_KINDS}, got {score_kind!r}")
    return {"schema": SCHEMA, "dataset": str(dataset), "split": str(split), "net": str(net),
            "iteration": int(iteration), "score_kind": score_kind}


def _create_layout(h5: h5py.File, streams: Sequence[str], shape: tuple[int, int, int],
                   labels: np.ndarray, video_ids: Sequence[str], class_names: Sequence[str],
                   attrs: Mapping) -> None:
    num_videos, _, num_classes = shape
    if len(labels) != num_videos or len(video_ids) != num_videos:
        raise ValueError(f"{len(labels)} labels and {len(video_ids)} video ids for "
                         f"{num_videos} videos")
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    if not streams:
        raise ValueError("at least one stream is needed")
    group = h5.create_group("scores")
    for stream in streams:
        group.create_dataset(stream, shape=shape, dtype=np.float32, fillvalue=np.nan)
    h5.create_dataset("labels", data=np.asarray(labels, dtype=np.int32))
    h5.create_dataset("video_ids", data=list(video_ids), dtype=_STR)
    h5.create_dataset("class_names", data=list(class_names), dtype=_STR)
    h5.create_dataset("done", shape=(num_videos,), dtype=bool, fillvalue=False)
    h5.attrs.update(attrs)


def _strings(dataset: h5py.Dataset) -> list[str]:
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in dataset[()]]


def _read(h5: h5py.File, path: str) -> ScoreFile:
    if h5.attrs.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} score file (schema attribute is "
                         f"{h5.attrs.get('schema')!r})")
    known = {"schema", "dataset", "split", "net", "iteration", "score_kind"}
    return ScoreFile(
        scores={name: ds[()] for name, ds in h5["scores"].items()},
        labels=h5["labels"][()].astype(np.int64),
        video_ids=_strings(h5["video_ids"]),
        class_names=_strings(h5["class_names"]),
        dataset=str(h5.attrs["dataset"]), split=str(h5.attrs["split"]),
        net=str(h5.attrs["net"]), iteration=int(h5.attrs["iteration"]),
        score_kind=str(h5.attrs["score_kind"]), done=h5["done"][()].astype(bool), path=path,
        extra_attrs={k: str(v) for k, v in h5.attrs.items() if k not in known})


def load_scores(path: str | os.PathLike, allow_partial: bool = False) -> ScoreFile:
    """Read a score file; a partial file (or one with videos not done) needs ``allow_partial``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        hint = (f" (an unfinished evaluation left {partial_path(path)})"
                if partial_path(path).exists() else "")
        raise FileNotFoundError(f"{path}: score file not found{hint}")
    try:
        with h5py.File(path, "r") as h5:
            loaded = _read(h5, path)
    except OSError as err:
        raise ValueError(f"{path}: cannot read score file: {err}") from err
    if not allow_partial and not loaded.done.all():
        missing = int((~loaded.done).sum())
        raise ValueError(f"{path}: {missing} of {loaded.num_videos} videos have no scores")
    return loaded


def save_scores(path: str | os.PathLike, score_file: ScoreFile) -> None:
    """Write a complete score file atomically (temporary file, then rename)."""
    path = os.fspath(path)
    shapes = {name: s.shape for name, s in score_file.scores.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{path}: streams differ in shape: {shapes}")
    shape = next(iter(shapes.values()))
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
            _create_layout(h5, list(score_file.scores), shape, score_file.labels,
                           score_file.video_ids, score_file.class_names,
                           _attrs(score_file.dataset, score_file.split, score_file.net,
                                  score_file.iteration, score_file.score_kind))
            for name, scores in score_file.scores.items():
                h5["scores"][name][...] = scores
            done = score_file.done if score_file.done is not None else np.ones(shape[0], bool)
            h5["done"][...] = done
    except OSError as exc:
        raise OSError(exc.errno, f"{path}: cannot write scores: {os_error_cause(exc)}") from exc


class ScoreWriter:
    """Incremental, resumable writer of one score file.

    >>> writer = ScoreWriter(path, streams=["appearance"], num_periods=12, labels=labels,
    ...                      video_ids=ids, class_names=names, dataset="ucf101", split="1",
    ...                      net="co2fi_complete", iteration=100000)
    >>> for i in range(len(ids)):
    ...     if not writer.done(i):
    ...         writer.write(i, {"appearance": period_scores})  # [periods x classes]
    >>> writer.close()  # renames <path>.partial to <path> once every video is done
    """

    def __init__(self, path: str | os.PathLike, *, streams: Sequence[str], num_periods: int,
                 labels: Sequence[int], video_ids: Sequence[str], class_names: Sequence[str],
                 dataset: str, split: str, net: str, iteration: int,
                 score_kind: str = "raw") -> None:
        self.path = Path(path)
        self.partial = partial_path(path)
        self.streams = list(streams)
        self._shape = (len(video_ids), int(num_periods), len(class_names))
        self._expected = dict(
            attrs=_attrs(dataset, split, net, iteration, score_kind),
            labels=np.asarray(labels, dtype=np.int64), video_ids=list(video_ids),
            class_names=list(class_names))
        #: Why an existing partial file was started over (None: it was not).
        self.restarted: str | None = None
        if self.path.exists():
            self._check_matches(self.path)
            self._h5 = h5py.File(self.path, "r")
            self._complete = True
        elif self.partial.exists() and self._resumable():
            self._h5 = h5py.File(self.partial, "r+")
            self._complete = False
        else:
            self._create()
            self._complete = False
        self._done = self._h5["done"][()].astype(bool)

    def _create(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._h5 = h5py.File(self.partial, "w")
        except OSError as exc:
            raise OSError(exc.errno, f"{self.partial}: cannot create score file: "
                          f"{os_error_cause(exc)}") from exc
        try:
            _create_layout(self._h5, self.streams, self._shape, self._expected["labels"],
                           self._expected["video_ids"], self._expected["class_names"],
                           self._expected["attrs"])
            self._h5.flush()
        except Exception as exc:
            self._h5.close()
            self.partial.unlink()
            if isinstance(exc, OSError):
                raise OSError(exc.errno, f"{self.partial}: cannot write scores: "
                              f"{os_error_cause(exc)}") from exc
            raise

    def _resumable(self) -> bool:
        """Whether the partial file can be resumed; False (after saying why on stderr) when it
        is unreadable or was made for other settings and holds no finished video; ValueError
        when it holds finished videos of other settings."""
        import sys

        try:
            with h5py.File(self.partial, "r") as h5:
                found = _read(h5, str(self.partial))
        except (OSError, KeyError, ValueError) as err:
            self.restarted = f"unreadable ({type(err).__name__}: truncated or corrupt)"
        else:
            problems = self._problems(found)
            if not problems:
                return True
            if found.done is not None and found.done.any():
                raise ValueError(
                    f"{self.partial}: unfinished score file of another evaluation "
                    f"({int(found.done.sum())} videos scored; " + "; ".join(problems)
                    + "). Delete it to start over, or rerun with its settings.")
            self.restarted = "made for other settings (" + "; ".join(problems) + \
                "), no video scored yet"
        print(f"note: {self.partial}: {self.restarted}; starting it over", file=sys.stderr)
        self.partial.unlink()
        return False

    def _check_matches(self, existing: Path) -> None:
        try:
            with h5py.File(existing, "r") as h5:
                found = _read(h5, str(existing))
        except (OSError, KeyError) as err:
            raise ValueError(f"{existing}: cannot resume, the file is unreadable ({err}); "
                             f"delete it to start over") from err
        problems = self._problems(found)
        if problems:
            raise ValueError(f"{existing}: existing score file does not match this evaluation: "
                             + "; ".join(problems) + ". Delete it or choose another path.")

    def _problems(self, found: ScoreFile) -> list[str]:
        expected = self._expected
        problems = []
        for key, want in expected["attrs"].items():
            have = getattr(found, key, None) if key != "schema" else SCHEMA
            if have != want:
                problems.append(f"{key} is {have!r} in the file, {want!r} requested")
        if sorted(found.scores) != sorted(self.streams):
            problems.append(f"streams are {sorted(found.scores)} in the file, "
                            f"{sorted(self.streams)} requested")
        shape = next(iter(found.scores.values())).shape if found.scores else None
        if shape != self._shape:
            problems.append(f"scores shape is {shape} in the file, {self._shape} requested")
        for key in ("video_ids", "class_names"):
            if getattr(found, key) != expected[key]:
                problems.append(f"{key} differ")
        if not np.array_equal(found.labels, expected["labels"]):
            problems.append("labels differ")
        return problems

    @property
    def num_done(self) -> int:
        return int(self._done.sum())

    @property
    def complete(self) -> bool:
        return bool(self._done.all())

    def done(self, video_idx: int) -> bool:
        return bool(self._done[video_idx])

    def write(self, video_idx: int, scores: Mapping[str, np.ndarray]) -> None:
        """Store ``[periods x classes]`` scores of every stream of one video and mark it done."""
        if self._complete:
            raise ValueError(f"{self.path}: score file is complete; nothing more can be written")
        if sorted(scores) != sorted(self.streams):
            raise ValueError(f"{self.partial}: write() needs scores of streams "
                             f"{sorted(self.streams)}, got {sorted(scores)}")
        arrays = {stream: np.asarray(values, dtype=np.float32)
                  for stream, values in scores.items()}
        for stream, values in arrays.items():
            if values.shape != self._shape[1:]:
                raise ValueError(f"{self.partial}: stream {stream!r} video {video_idx}: scores "
                                 f"shape {values.shape}, expected {self._shape[1:]}")
        try:
            for stream, values in arrays.items():
                self._h5["scores"][stream][video_idx] = values
            self._h5.flush()  # the scores reach the file before the video is marked done
            self._h5["done"][video_idx] = True
            self._h5.flush()
        except (OSError, RuntimeError) as exc:
            cause = os_error_cause(exc) if isinstance(exc, OSError) else str(exc)
            raise OSError(getattr(exc, "errno", None), f"{self.partial}: cannot write scores "
                          f"of video {video_idx}: {cause}; rerun to resume") from exc
        self._done[video_idx] = True

    def close(self) -> Path:
        """Close; returns the final path when complete, else the partial one (resume later)."""
        if self._h5 is None:
            return self.path if self._complete else self.partial
        try:
            self._h5.close()  # flushes: a full disk shows here, naming no file
        except (OSError, RuntimeError) as exc:
            self._h5 = None
            cause = os_error_cause(exc) if isinstance(exc, OSError) else str(exc)
            message = f"{self.partial}: cannot write scores: {cause}"
            code = getattr(exc, "errno", None)
            raise (OSError(code, message) if code else OSError(message)) from exc
        self._h5 = None
        if not self._complete and self._done.all():
            os.replace(self.partial, self.path)
            self._complete = True
        return self.path if self._complete else self.partial

    def __enter__(self) -> ScoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- per-class tables -----------------------------------------------------------------------

def _fmt_recall(recall: float) -> str:
    return "n/a" if np.isnan(recall) else f"{100 * recall:.1f}"


def per_class_markdown(rows: Iterable[ClassRow], title: str = "") -> str:
    lines = [f"### {title}", ""] if title else []
    lines += ["| # | class | videos | correct | recall (%) | most confused with |",
              "|---:|---|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row.index} | {row.name} | {row.support} | {row.correct} | "
                     f"{_fmt_recall(row.recall)} | {row.most_confused_with} |")
    return "\n".join(lines) + "\n"


def per_class_csv(rows: Iterable[ClassRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "class", "videos", "correct", "recall", "most_confused_with"])
    for row in rows:
        recall = "" if np.isnan(row.recall) else f"{row.recall:.6f}"
        writer.writerow([row.index, row.name, row.support, row.correct, recall,
                         row.most_confused_with])
    return out.getvalue()


