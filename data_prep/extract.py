"""Frames and optical flow of videos, in TSN's rawframes layout (python -m data_prep.extract).

Each video ``.../<video_id>.<ext>`` becomes ``<frames_root>/<video_id>/`` holding ``img_%05d.jpg``
(every decoded frame, resized), ``flow_x_%05d.jpg``/``flow_y_%05d.jpg`` (flow i = frame i -> i+1,
so F frames give F - 1 flow frames) and, written last, ``.done`` with the counts and the settings
(size, flow, bound, quality). A video is extracted into a hidden temporary folder that is renamed
to ``<video_id>/`` once complete, so a folder with ``.done`` always holds every frame. A video
whose folder has ``.done`` is skipped when its settings match; a rerun with another ``--size`` or
``--flow`` stops and names the difference (``--redo`` extracts those videos again). One extraction
at a time holds ``<frames_root>/.lock`` (one per shard with ``--shard``).
Videos are spread over ``--workers`` processes; ``--shard i/n`` takes every n-th video from the
i-th (0-based) of the sorted list, so machines can split a dataset. Videos that fail are named on
stderr (and in ``--report``), the others go on, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import os
import shutil
import socket
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from co2fi_tools.safe_io import (
    FolderLock,
    LockHeld,
    atomic_write_text,
    os_error_cause,
    pid_alive,
    settings_diff,
)
from data_prep import flow as flowlib
from data_prep import rawframes
from data_prep.errors import DataError
from netgen import paper

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v")
JPEG_QUALITY = 95  # dense_flow writes with OpenCV's default JPEG quality, 95


@dataclass(frozen=True)
class ExtractOptions:
    size: tuple[int, int] | None = paper.FRAME_SIZE  # (width, height); None keeps the video's
    flow: str | None = "tvl1"  # a key of data_prep.flow.METHODS, or None for frames only
    bound: float = paper.FLOW_BOUND
    quality: int = JPEG_QUALITY


@dataclass(frozen=True)
class Outcome:
    video: str
    status: str  # "done", "skipped" or "failed"
    message: str = ""


def _write_jpeg(path: str, image: np.ndarray, quality: int) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DataError(path, "cannot encode JPEG")
    try:
        with open(path, "wb") as handle:
            handle.write(data.tobytes())
    except OSError as exc:
        raise DataError(path, f"cannot write frame: {os_error_cause(exc)}"
                        ) from exc


def done_settings(options: ExtractOptions) -> dict:
    """The settings a ``.done`` records and a rerun must match."""
    return {"flow": options.flow, "flow_bound": options.bound, "quality": options.quality,
            **({"size": list(options.size)} if options.size is not None else {})}


def settings_differ(out_dir: str | os.PathLike[str], options: ExtractOptions) -> list[str]:
    """How a finished video's recorded settings differ from ``options`` (``[]``: they match).
    Settings a ``.done`` of an older version does not record are not compared."""
    done = rawframes.read_done(out_dir)
    wanted = {k: v for k, v in done_settings(options).items() if k in done}
    return settings_diff(done, wanted)


def _temp_dir(out_dir: str) -> str:
    parent, name = os.path.split(out_dir)
    return os.path.join(parent, f".{name}.partial-{socket.gethostname()}-{os.getpid()}")


def extract_video(video: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  options: ExtractOptions = ExtractOptions(), redo: bool = False) -> str:
    """Extracts one video into ``out_dir``; returns "done" or "skipped" (already complete with
    the same settings). A complete folder made with other settings raises DataError unless
    ``redo``. Frames go to a temporary folder renamed to ``out_dir`` when complete."""
    video, out_dir = os.fspath(video), os.fspath(out_dir)
    if rawframes.is_done(out_dir):
        diffs = settings_differ(out_dir, options)
        if not diffs:
            return "skipped"
        if not redo:
            raise DataError(out_dir, f"extracted with other settings ({'; '.join(diffs)}); "
                            "use another frames folder, or --redo to extract it again")
    if not os.path.isfile(video):
        raise DataError(video, "video file not found")
    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise DataError(video, "cannot open video (corrupt or unsupported format)")
    container_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    final_dir, out_dir = out_dir, _temp_dir(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    try:
        os.makedirs(out_dir)
    except OSError as exc:
        capture.release()
        raise DataError(out_dir, f"cannot create folder: {os_error_cause(exc)}"
                        ) from exc
    try:
        result = _extract_into(video, capture, out_dir, options, container_frames)
        _publish(out_dir, final_dir)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return result


def _publish(tmp_dir: str, final_dir: str) -> None:
    """Rename the complete ``tmp_dir`` to ``final_dir``, replacing an incomplete or outdated
    one; when another process published the video first, keep theirs."""
    try:
        os.rename(tmp_dir, final_dir)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise DataError(final_dir, f"cannot rename {tmp_dir}: "
                            f"{os_error_cause(exc)}") from exc
    old = f"{tmp_dir}.old"
    os.rename(final_dir, old)
    os.rename(tmp_dir, final_dir)
    shutil.rmtree(old, ignore_errors=True)


def _extract_into(video: str, capture, out_dir: str, options: ExtractOptions,
                  container_frames: int) -> str:
    flow_fn = flowlib.METHODS[options.flow]() if options.flow else None
    frames = flows = 0
    previous = None
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            if options.size is not None and frame.shape[1::-1] != tuple(options.size):
                frame = cv2.resize(frame, tuple(options.size), interpolation=cv2.INTER_LINEAR)
            frames += 1
            _write_jpeg(os.path.join(out_dir, rawframes.img_name(frames)), frame, options.quality)
            if flow_fn is None:
                continue
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if previous is not None:
                field = flow_fn(previous, grey)
                flows += 1
                for name, component in ((rawframes.flow_x_name(flows), field[..., 0]),
                                        (rawframes.flow_y_name(flows), field[..., 1])):
                    image = flowlib.quantize(component, options.bound)
                    _write_jpeg(os.path.join(out_dir, name), image, options.quality)
            previous = grey
    finally:
        capture.release()
    if frames == 0:
        raise DataError(video, "no frames decoded (empty, corrupt or unreadable video)")
    height, width = previous.shape[:2] if previous is not None else frame_shape(out_dir)
    try:
        rawframes.write_done(out_dir, {
            "frames": frames,
            "flow_frames": flows if flow_fn else 0,
            "flow": options.flow,
            "flow_bound": options.bound,
            "quality": options.quality,
            "size": [width, height],
            "container_frames": container_frames,
            "source": video,
        })
    except OSError as exc:
        raise DataError(os.path.join(out_dir, rawframes.DONE_MARKER),
                        f"cannot write: {os_error_cause(exc)}") from exc
    return "done"


def frame_shape(out_dir: str) -> tuple[int, int]:
    image = cv2.imread(os.path.join(out_dir, rawframes.img_name(1)))
    return image.shape[:2]


def find_videos(sources: Iterable[str | os.PathLike[str]],
                extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Video files: given files as they are, folders searched recursively; sorted, unique.
    Extensions may be given with or without the dot (``avi`` or ``.avi``)."""
    found: set[Path] = set()
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    for source in sources:
        source = Path(source)
        if source.is_file():
            found.add(source)
        elif source.is_dir():
            found.update(p for p in source.rglob("*") if p.suffix.lower() in wanted and p.is_file())
        else:
            raise DataError(source, "no such video file or folder")
    return sorted(found)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants i/n, got {text!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"--shard i/n wants 0 <= i < n, got {text!r}")
    return index, count


def parse_size(text: str) -> tuple[int, int] | None:
    if text == "native":
        return None
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size wants WxH or native, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"--size wants a positive width and height, "
                                         f"got {text!r}")
    return width, height


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one core a worker: processes, not threads, give the speed-up


def _pool_worker_init() -> None:
    """A pool worker: as _worker_init, and it ends with the extraction (Linux: SIGKILL when
    its parent dies), so that no orphan keeps the frames folder locked."""
    _worker_init()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):  # not Linux
        pass
    if os.getppid() == 1:  # the parent died before prctl: nothing to extract for
        os._exit(1)


def _run_one(job: tuple) -> Outcome:
    """(video, out_dir, options[, redo]) -> Outcome; never raises."""
    video, out_dir, options, *rest = job
    redo = bool(rest and rest[0])
    try:
        return Outcome(video, extract_video(video, out_dir, options, redo))
    except Exception as exc:  # noqa: BLE001 - reported, and the other videos go on
        return Outcome(video, "failed", str(exc) if isinstance(exc, DataError)
                       else f"{video}: {type(exc).__name__}: {exc}")


def _remove_dead_partials(frames_root: Path) -> None:
    """Temporary folders of extractions on this host whose process is gone."""
    host = socket.gethostname()
    for path in frames_root.glob(".*.partial-*"):
        rest = path.name.rsplit(".partial-", 1)[1]
        owner, _, pid = rest.rpartition("-")
        if owner == host and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def check_done_settings(jobs: Sequence[tuple[str, str]], options: ExtractOptions) -> None:
    """DataError naming the first finished video made with other settings (and how many)."""
    bad = []
    for _, out_dir in jobs:
        if rawframes.is_done(out_dir):
            diffs = settings_differ(out_dir, options)
            if diffs:
                bad.append((out_dir, diffs))
    if bad:
        more = f" (and {len(bad) - 1} more videos)" if len(bad) > 1 else ""
        raise DataError(bad[0][0], f"extracted with other settings ({'; '.join(bad[0][1])})"
                        f"{more}; use another frames folder, or --redo to extract again")


def extract_all(videos: Sequence[Path], frames_root: str | os.PathLike[str],
                options: ExtractOptions, workers: int = 1,
                progress: bool = True, redo: bool = False,
                shard: tuple[int, int] = (0, 1)) -> list[Outcome]:
    """Extracts ``videos`` into ``frames_root`` with ``workers`` processes, holding the folder's
    lock (one per shard)."""
    ids: dict[str, Path] = {}
    for video in videos:
        vid = rawframes.video_id(video)
        if vid in ids:
            raise DataError(video, f"same video id {vid!r} as {ids[vid]}")
        ids[vid] = video
    frames_root = Path(frames_root)
    if frames_root.exists() and not frames_root.is_dir():
        raise DataError(frames_root, "output folder is a file")
    try:
        frames_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(frames_root, f"cannot create output folder: "
                        f"{os_error_cause(exc)}") from None
    name = ".lock" if shard[1] == 1 else f".lock.shard-{shard[0]}-of-{shard[1]}"
    try:
        lock = FolderLock(frames_root, "extraction", name=name).acquire()
    except LockHeld as exc:
        raise DataError(frames_root, str(exc).split(": ", 1)[1]) from None
    try:
        return _extract_locked(videos, frames_root, options, workers, progress, redo)
    finally:
        lock.release()


def _extract_locked(videos: Sequence[Path], frames_root: Path, options: ExtractOptions,
                    workers: int, progress: bool, redo: bool) -> list[Outcome]:
    _remove_dead_partials(frames_root)
    pairs = [(str(v), str(frames_root / rawframes.video_id(v))) for v in videos]
    if not redo:
        check_done_settings(pairs, options)
    jobs = [(v, d, options, redo) for v, d in pairs]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="extract", unit="video")
    outcomes = []
    try:
        if workers <= 1:
            _worker_init()
            results: Iterable[Outcome] = map(_run_one, jobs)
            for outcome in results:
                outcomes.append(outcome)
                if bar:
                    bar.update()
        else:
            # not multiprocessing.Pool: it waits forever for the video of a worker that was
            # killed; an executor is told (BrokenProcessPool)
            with ProcessPoolExecutor(workers, multiprocessing.get_context("fork"),
                                     _pool_worker_init) as pool:
                try:
                    for future in as_completed([pool.submit(_run_one, job) for job in jobs]):
                        outcomes.append(future.result())
                        if bar:
                            bar.update()
                except BrokenProcessPool:
                    raise DataError(frames_root, "an extraction worker died (killed, or out of "
                                    "memory); finished videos are kept (.done): rerun to "
                                    "extract the rest") from None
    finally:
        if bar:
            bar.close()
    return outcomes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m data_prep.extract",
                                description=__doc__.split("\n")[0])
    p.add_argument("sources", nargs="+", metavar="VIDEO_OR_FOLDER",
                   help="video files and/or folders searched recursively")
    p.add_argument("frames_root", help="output root, one folder per video")
    p.add_argument("--size", type=parse_size, default=paper.FRAME_SIZE,
                   help="WxH to resize frames to, or 'native' (default %(default)s)")
    p.add_argument("--flow", choices=[*flowlib.METHODS, "none"], default="tvl1",
                   help="optical flow method (default tvl1; farneback is ~50x faster)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n",
                   help="take videos i, i+n, i+2n, ... of the sorted list (0 <= i < n)")
    p.add_argument("--ext", nargs="+", default=list(VIDEO_EXTENSIONS),
                   help="video file extensions searched in folders")
    p.add_argument("--quality", type=int, default=JPEG_QUALITY, help="JPEG quality")
    p.add_argument("--report", type=Path, help="also write failed videos to this file")
    p.add_argument("--redo", action="store_true",
                   help="extract again the videos done with other settings (--size, --flow, ...)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = ExtractOptions(size=args.size, flow=None if args.flow == "none" else args.flow,
                             quality=args.quality)
    try:
        videos = find_videos(args.sources, args.ext)
        if not videos:
            raise DataError(", ".join(map(str, args.sources)),
                            f"no videos found with extensions {' '.join(args.ext)}")
        index, count = args.shard
        videos = videos[index::count]
        if not videos:
            print(f"shard {index}/{count}: no videos in this shard", file=sys.stderr)
            return 0
        outcomes = extract_all(videos, args.frames_root, options, args.workers, args.progress,
                               redo=args.redo, shard=args.shard)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished videos are kept (.done); rerun to complete",
              file=sys.stderr)
        return 130
    failed = [o for o in outcomes if o.status == "failed"]
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    for outcome in failed:
        print(f"FAILED {outcome.message}", file=sys.stderr)
    if any("disk full" in o.message for o in failed):
        print(f"error: {args.frames_root}: no space left on device (disk full); free space and "
              "rerun (finished videos are kept)", file=sys.stderr)
    if args.report is not None:
        atomic_write_text(args.report, "".join(f"{o.video}\t{o.message}\n" for o in failed))
    print(f"{done} extracted, {skipped} already done, {len(failed)} failed "
          f"(of {len(videos)} videos)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
