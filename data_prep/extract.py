"""Frames and optical flow of videos, in TSN's rawframes layout (python -m data_prep.extract).

Each video ``.../<video_id>.<ext>`` becomes ``<frames_root>/<video_id>/`` holding ``img_%05d.jpg``
(every decoded frame, resized), ``flow_x_%05d.jpg``/``flow_y_%05d.jpg`` (flow i = frame i -> i+1,
so F frames give F - 1 flow frames) and, written last, ``.done`` with the counts. A video whose
folder has ``.done`` is skipped; a folder without it (an interrupted run) is wiped and redone.
Videos are spread over ``--workers`` processes; ``--shard i/n`` takes every n-th video from the
i-th (0-based) of the sorted list, so machines can split a dataset. Videos that fail are named on
stderr (and in ``--report``), the others go on, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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
    if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise DataError(path, "cannot write JPEG")


def extract_video(video: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  options: ExtractOptions = ExtractOptions()) -> str:
    """Extracts one video into ``out_dir``; returns "done" or "skipped" (already complete)."""
    video, out_dir = os.fspath(video), os.fspath(out_dir)
    if rawframes.is_done(out_dir):
        return "skipped"
    if os.path.exists(out_dir):  # left over from an interrupted run
        shutil.rmtree(out_dir)
    if not os.path.isfile(video):
        raise DataError(video, "video file not found")
    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise DataError(video, "cannot open video (corrupt or unsupported format)")
    container_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    os.makedirs(out_dir)
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
        shutil.rmtree(out_dir, ignore_errors=True)
        raise DataError(video, "no frames decoded (empty, corrupt or unreadable video)")
    height, width = previous.shape[:2] if previous is not None else frame_shape(out_dir)
    rawframes.write_done(out_dir, {
        "frames": frames,
        "flow_frames": flows if flow_fn else 0,
        "flow": options.flow,
        "flow_bound": options.bound,
        "size": [width, height],
        "container_frames": container_frames,
        "source": video,
    })
    return "done"


def frame_shape(out_dir: str) -> tuple[int, int]:
    image = cv2.imread(os.path.join(out_dir, rawframes.img_name(1)))
    return image.shape[:2]


def find_videos(sources: Iterable[str | os.PathLike[str]],
                extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Video files: given files as they are, folders searched recursively; sorted, unique."""
    found: set[Path] = set()
    wanted = {e.lower() for e in extensions}
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
    return width, height


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one core a worker: processes, not threads, give the speed-up


def _run_one(job: tuple[str, str, ExtractOptions]) -> Outcome:
    video, out_dir, options = job
    try:
        return Outcome(video, extract_video(video, out_dir, options))
    except Exception as exc:  # noqa: BLE001 - reported, and the other videos go on
        return Outcome(video, "failed", str(exc) if isinstance(exc, DataError)
                       else f"{video}: {type(exc).__name__}: {exc}")


def extract_all(videos: Sequence[Path], frames_root: str | os.PathLike[str],
                options: ExtractOptions, workers: int = 1,
                progress: bool = True) -> list[Outcome]:
    """Extracts ``videos`` into ``frames_root`` with ``workers`` processes."""
    ids: dict[str, Path] = {}
    for video in videos:
        vid = rawframes.video_id(video)
        if vid in ids:
            raise DataError(video, f"same video id {vid!r} as {ids[vid]}")
        ids[vid] = video
    frames_root = Path(frames_root)
    frames_root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(v), str(frames_root / rawframes.video_id(v)), options) for v in videos]
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
            with multiprocessing.get_context("fork").Pool(workers, _worker_init) as pool:
                for outcome in pool.imap_unordered(_run_one, jobs, chunksize=1):
                    outcomes.append(outcome)
                    if bar:
                        bar.update()
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
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = ExtractOptions(size=args.size, flow=None if args.flow == "none" else args.flow,
                             quality=args.quality)
    try:
        videos = find_videos(args.sources, args.ext)
        index, count = args.shard
        videos = videos[index::count]
        outcomes = extract_all(videos, args.frames_root, options, args.workers, args.progress)
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
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("".join(f"{o.video}\t{o.message}\n" for o in failed),
                               encoding="utf-8")
    print(f"{done} extracted, {skipped} already done, {len(failed)} failed "
          f"(of {len(videos)} videos)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
