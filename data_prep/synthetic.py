"""Synthetic action videos in UCF101 format (python -m data_prep.synthetic).

Made so that the paper's two ideas have something to find:

- Coarse-to-fine (Sec. 4, Fig. 1a): a class is (group, direction, pattern). The classes of a group
  share the object's shape and motion family (slide sideways, lift up/down, spin, drift
  diagonally); they differ only in details: the direction of the motion and the texture the
  object shows (stripes or checks).
- Asynchrony (Sec. 1, Fig. 1b; Sec. 5): the motion cue and the appearance cue come at different
  times. The object rests, then moves (the telling motion, mid-clip), rests again in a neutral
  grey for a gap, and only then shows its texture (the telling appearance, at the end). Motion
  wraps around the frame and starts at a random place and angle, so where the object ends up
  says nothing of the direction. No single frame or flow stack shows both cues.
- Clutter: a smooth random background, small distractor shapes moving all the time, brightness
  flicker, pixel noise and JPEG (MJPG) artefacts, random object size/grey level/colour.

Output: ``<out>/videos/<Class>/v_<Class>_g<NN>_c01.avi`` (one clip per group number, like UCF101's
groups) and ``<out>/splits/{classInd,trainlist01,testlist01}.txt`` in UCF101's format, so the same
code path serves both. Every clip is a pure function of (seed, class, clip): a rerun skips
finished files, and files are written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_EXT = ".avi"
FOURCC = "MJPG"  # written and read back by opencv-python-headless's bundled FFmpeg
FPS = 25.0

SHAPES = ("Disc", "Square", "Triangle", "Cross", "Ring", "Diamond", "Bar", "Arrow")
#: Motion families and their two directions; for "Spin" the vector is (deg/frame sign, 0).
Vector = tuple[float, float]
FAMILIES: tuple[tuple[str, tuple[str, str], tuple[Vector, Vector]], ...] = (
    ("Slide", ("Left", "Right"), ((-1.0, 0.0), (1.0, 0.0))),
    ("Lift", ("Up", "Down"), ((0.0, -1.0), (0.0, 1.0))),
    ("Spin", ("Cw", "Ccw"), ((1.0, 0.0), (-1.0, 0.0))),
    ("Drift", ("UpRight", "DownLeft"), ((0.7, -0.7), (-0.7, 0.7))),
)
PATTERNS = ("Striped", "Checked")
CLASSES_PER_GROUP = 4  # 2 directions x 2 patterns
#: Background colour, distractors, flicker and noise (1: the full set). At 1 the small nets
#: trained from scratch stay at chance within a CPU budget: saturated background blobs look
#: like the object; at 0.3 they learn (docs/REPRODUCTION.md, "Data pipeline").
DEFAULT_CLUTTER = 0.3


@dataclass(frozen=True)
class ClassSpec:
    name: str
    group: int
    shape: str
    family: str
    direction: tuple[float, float]
    pattern: str
    speed: float


def class_specs(num_classes: int) -> list[ClassSpec]:
    """Class c is in group c // 4; within a group, direction = c % 2 and pattern = (c // 2) % 2.
    Groups cycle through shapes and motion families; every 8 groups the speed tier goes up."""
    specs = []
    for c in range(num_classes):
        group, j = divmod(c, CLASSES_PER_GROUP)
        shape = SHAPES[group % len(SHAPES)]
        family, dir_names, dir_vectors = FAMILIES[group % len(FAMILIES)]
        tier = group // len(SHAPES)
        direction = j % 2
        pattern = PATTERNS[j // 2]
        tier_name = f"Tier{tier}" if tier else ""
        name = f"{shape}{family}{dir_names[direction]}{pattern}{tier_name}"
        specs.append(
            ClassSpec(name, group, shape, family, dir_vectors[direction], pattern, 1 + 0.5 * tier)
        )
    return specs


@dataclass(frozen=True)
class Timeline:
    move_start: int
    move_end: int  # exclusive
    show_start: int  # first frame with the texture


def clip_timeline(num_frames: int, rng: np.random.Generator) -> Timeline:
    jitter = max(1, num_frames // 24)
    move_start = round(num_frames * 0.22) + int(rng.integers(-jitter, jitter + 1))
    move_end = move_start + max(2, round(num_frames * 0.3))
    show_start = move_end + max(1, round(num_frames * 0.15)) + int(rng.integers(0, jitter + 1))
    return Timeline(move_start, min(move_end, num_frames), min(show_start, num_frames - 1))


def _shape_polygon(shape: str, size: float, angle_deg: float) -> list[np.ndarray]:
    """Outline(s) of a shape centred on (0, 0), rotated; a list of int32 polygons."""
    t = np.deg2rad(angle_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    if shape == "Square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        polys = [np.array(pts, float) * 0.8]
    elif shape == "Triangle":
        polys = [np.array([(0, -1.1), (1, 0.8), (-1, 0.8)], float)]
    elif shape == "Cross":
        a, b = 1.0, 0.35
        polys = [np.array([(-a, -b), (a, -b), (a, b), (-a, b)], float),
                 np.array([(-b, -a), (b, -a), (b, a), (-b, a)], float)]
    elif shape == "Diamond":
        polys = [np.array([(0, -1.1), (0.75, 0), (0, 1.1), (-0.75, 0)], float)]
    elif shape == "Bar":
        polys = [np.array([(-1.1, -0.35), (1.1, -0.35), (1.1, 0.35), (-1.1, 0.35)], float)]
    elif shape == "Arrow":
        polys = [np.array([(-1, -0.3), (0.2, -0.3), (0.2, -0.7), (1.1, 0), (0.2, 0.7),
                           (0.2, 0.3), (-1, 0.3)], float)]
    else:
        raise ValueError(f"not a polygon shape: {shape}")
    return [np.round((p * size) @ rot.T * 16).astype(np.int32) for p in polys]


def draw_shape_mask(
    mask: np.ndarray, shape: str, cx: float, cy: float, size: float, angle: float
) -> None:
    """Draws a filled shape (value 255) into ``mask``; wraps around the frame edges."""
    h, w = mask.shape
    for ox in (-w, 0, w):
        for oy in (-h, 0, h):
            x, y = cx + ox, cy + oy
            if x + 2 * size < 0 or x - 2 * size > w or y + 2 * size < 0 or y - 2 * size > h:
                continue
            centre = (round(x * 16), round(y * 16))
            if shape == "Disc":
                cv2.circle(mask, centre, round(size * 16), 255, -1, cv2.LINE_AA, 4)
            elif shape == "Ring":
                cv2.circle(mask, centre, round(size * 0.75 * 16), 255,
                           max(2, round(size * 0.45)), cv2.LINE_AA, 4)
            else:
                polys = [p + np.array(centre, np.int32) for p in _shape_polygon(shape, size, angle)]
                cv2.fillPoly(mask, polys, 255, cv2.LINE_AA, 4)


def _background(rng: np.random.Generator, width: int, height: int, clutter: float = DEFAULT_CLUTTER
                ) -> np.ndarray:
    low = rng.uniform(40, 200, size=(4, 5, 3)).astype(np.float32)
    low = 120 + clutter * (low - 120)  # less clutter: colours pulled towards mid-grey
    bg = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 12 * clutter, size=(height // 4 + 1, width // 4 + 1, 3)).astype(
        np.float32)
    bg += cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR)[:height, :width]
    return bg


def _texture(pattern: str, width: int, height: int, colour: np.ndarray, period: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    if pattern == "Striped":
        on = (yy // period) % 2 == 0
    else:
        on = ((yy // period) + (xx // period)) % 2 == 0
    tex = np.where(on[..., None], colour, colour * 0.25)
    return tex.astype(np.float32)


@dataclass
class _Mover:
    shape: str
    x: float
    y: float
    vx: float
    vy: float
    size: float
    colour: np.ndarray


def render_clip(
    spec: ClassSpec, rng: np.random.Generator, num_frames: int, width: int, height: int,
    clutter: float = DEFAULT_CLUTTER,
) -> list[np.ndarray]:
    """Frames (BGR uint8) of one clip of class ``spec``. ``clutter`` (0..1) scales the
    background's colours, the distractors, the flicker and the noise (1: the full set)."""
    timeline = clip_timeline(num_frames, rng)
    background = _background(rng, width, height, clutter)
    size = height * rng.uniform(0.16, 0.21)
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    angle = rng.uniform(0, 360)
    # Before its texture shows, the object wears its coarse group's tint: the classes of a
    # group share their look (Fig. 1a) and differ only in motion direction and texture.
    hue = (spec.group * 47) % 180
    grey = np.array(cv2.cvtColor(np.uint8([[[hue, 150, int(rng.uniform(150, 220))]]]),
                                 cv2.COLOR_HSV2BGR)[0, 0], np.float32)
    colour = np.array(cv2.cvtColor(
        np.uint8([[[rng.integers(0, 180), 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0], np.float32)
    texture = _texture(spec.pattern, width, height, colour, period=max(2, round(size / 3)))
    steps = max(1, timeline.move_end - timeline.move_start)
    travel = rng.uniform(0.5, 0.7) * spec.speed
    if spec.family == "Spin":
        per_frame = (spec.direction[0] * travel * 300 / steps, 0.0)
    else:
        per_frame = (spec.direction[0] * travel * width / steps,
                     spec.direction[1] * travel * height / steps)
    distractors = [
        _Mover(
            shape=str(rng.choice(SHAPES)),
            x=rng.uniform(0, width), y=rng.uniform(0, height),
            vx=rng.uniform(-2.5, 2.5), vy=rng.uniform(-2.5, 2.5),
            size=height * rng.uniform(0.05, 0.08),
            colour=rng.uniform(30, 230, size=3).astype(np.float32),
        )
        for _ in range(round(int(rng.integers(2, 5)) * clutter))
    ]
    frames = []
    mask = np.zeros((height, width), np.uint8)
    for t in range(num_frames):
        img = background * (1 + clutter * rng.uniform(-0.1, 0.1))
        for d in distractors:
            mask[:] = 0
            draw_shape_mask(mask, d.shape, d.x, d.y, d.size, 0.0)
            alpha = mask[..., None].astype(np.float32) / 255
            img = img * (1 - alpha) + d.colour * alpha
            d.x, d.y = (d.x + d.vx) % width, (d.y + d.vy) % height
        if timeline.move_start <= t < timeline.move_end:
            if spec.family == "Spin":
                angle += per_frame[0]
            else:
                x, y = (x + per_frame[0]) % width, (y + per_frame[1]) % height
        mask[:] = 0
        draw_shape_mask(mask, spec.shape, x, y, size, angle)
        alpha = mask[..., None].astype(np.float32) / 255
        look = texture if t >= timeline.show_start else np.float32(grey)
        img = img * (1 - alpha) + look * alpha
        img += rng.normal(0, 6 * clutter, size=img.shape).astype(np.float32)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = FPS) -> None:
    """Writes ``frames`` to ``path`` atomically (temporary name, then rename)."""
    height, width = frames[0].shape[:2]
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{tmp}: OpenCV cannot write {FOURCC} video")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    os.replace(tmp, path)


def clip_relpath(spec: ClassSpec, clip: int) -> str:
    """UCF101-style ``Class/v_Class_gNN_c01.avi``; each clip is its own group NN (1-based)."""
    return f"{spec.name}/v_{spec.name}_g{clip + 1:02d}_c01{VIDEO_EXT}"


def test_clips(clips_per_class: int, test_fraction: float, split: int) -> set[int]:
    """Clip numbers (0-based) in the test set of ``split`` (1-based): consecutive blocks of
    groups, as UCF101's splits hold out groups 1-7, 8-14, 15-21."""
    n_test = max(1, round(clips_per_class * test_fraction))
    start = ((split - 1) * n_test) % clips_per_class
    return {(start + i) % clips_per_class for i in range(n_test)}


def _write_text(path: Path, lines: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def write_splits(
    splits_dir: Path, specs: Sequence[ClassSpec], clips_per_class: int, test_fraction: float,
    num_splits: int,
) -> None:
    splits_dir.mkdir(parents=True, exist_ok=True)
    _write_text(splits_dir / "classInd.txt", [f"{i + 1} {s.name}" for i, s in enumerate(specs)])
    for split in range(1, num_splits + 1):
        held_out = test_clips(clips_per_class, test_fraction, split)
        train, test = [], []
        for label, spec in enumerate(specs):
            for clip in range(clips_per_class):
                if clip in held_out:
                    test.append(clip_relpath(spec, clip))
                else:
                    train.append(f"{clip_relpath(spec, clip)} {label + 1}")
        _write_text(splits_dir / f"trainlist{split:02d}.txt", train)
        _write_text(splits_dir / f"testlist{split:02d}.txt", test)


def generate(
    out_dir: str | os.PathLike[str],
    num_classes: int = 10,
    clips_per_class: int = 12,
    num_frames: int = 48,
    width: int = 128,
    height: int = 96,
    seed: int = 0,
    test_fraction: float = 0.25,
    num_splits: int = 1,
    progress: bool = False,
    clutter: float = DEFAULT_CLUTTER,
) -> list[Path]:
    """Writes the videos and split files; returns the video paths. Finished videos are kept."""
    from netgen.presets import MAX_SYNTHETIC_CLASSES

    if not 1 <= num_classes <= MAX_SYNTHETIC_CLASSES:
        raise ValueError(f"--classes must be in 1..{MAX_SYNTHETIC_CLASSES}, not {num_classes}")
    if num_classes < 1 or clips_per_class < 2 or num_frames < 2:
        raise ValueError("need >= 1 class, >= 2 clips a class and >= 2 frames a clip")
    if not 0 <= clutter <= 1:
        raise ValueError(f"clutter must be in [0, 1], got {clutter}")
    out_dir = Path(out_dir)
    specs = class_specs(num_classes)
    paths = []
    jobs = [(label, clip) for label in range(num_classes) for clip in range(clips_per_class)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="synthetic videos", unit="video")
    for label, clip in jobs:
        spec = specs[label]
        path = out_dir / "videos" / clip_relpath(spec, clip)
        paths.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, label, clip])
        write_video(path, render_clip(spec, rng, num_frames, width, height, clutter))
    write_splits(out_dir / "splits", specs, clips_per_class, test_fraction, num_splits)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m data_prep.synthetic", description=__doc__.split("\n")[0]
    )
    p.add_argument("out_dir", help="writes <out_dir>/videos/ and <out_dir>/splits/")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--clips-per-class", type=int, default=12)
    p.add_argument("--frames", type=int, default=48, help="frames a clip")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.25, help="clips a class held out")
    p.add_argument("--splits", type=int, default=1, help="number of train/test splits")
    p.add_argument("--clutter", type=float, default=DEFAULT_CLUTTER,
                   help="0..1: background colours, distractors, flicker and noise "
                        f"(default {DEFAULT_CLUTTER})")
    args = p.parse_args(argv)
    try:
        paths = generate(
            args.out_dir, args.classes, args.clips_per_class, args.frames, args.width,
            args.height, args.seed, args.test_fraction, args.splits, progress=True,
            clutter=args.clutter,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} videos under {Path(args.out_dir) / 'videos'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
