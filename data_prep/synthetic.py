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

Designs (``--design``): ``classic`` is the set above (the demo's); ``miniature`` is the set of
`make claims`, in which the paper's claims can show (docs/MINIATURE.md: larger, faster, grainy
objects whose motion survives the flow quantisation; product groups that adding the streams'
scores resolves and pair groups that only fusion across time points can); ``pretrain`` is the
miniature's stand-in for ImageNet (other classes: shapes).

Output: ``<out>/videos/<Class>/v_<Class>_g<NN>_c01.avi`` (one clip per group number, like UCF101's
groups) and ``<out>/splits/{classInd,trainlist01,testlist01}.txt`` in UCF101's format, so the same
code path serves both. Every clip is a pure function of (seed, class, clip): a rerun skips
finished files, and files are written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from co2fi_tools.safe_io import atomic_path, atomic_write_text

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
    #: (direction, pattern) pairs a clip of the class draws from (miniature design only).
    cues: tuple[tuple[tuple[float, float], str], ...] = ()
    #: The texture shows from the first frame (the texture-pretraining design), not after the
    #: motion and its gap.
    textured_from_start: bool = False


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


def _distractors(rng: np.random.Generator, width: int, height: int, clutter: float,
                 speed: float, size: tuple[float, float], colour: tuple[float, float]
                 ) -> list[_Mover]:
    """2-4 moving shapes (times ``clutter``): speed in pixels a frame, size as a fraction of the
    height, colour range per channel."""
    return [
        _Mover(shape=str(rng.choice(SHAPES)), x=rng.uniform(0, width), y=rng.uniform(0, height),
               vx=rng.uniform(-speed, speed), vy=rng.uniform(-speed, speed),
               size=height * rng.uniform(*size),
               colour=rng.uniform(*colour, size=3).astype(np.float32))
        for _ in range(round(int(rng.integers(2, 5)) * clutter))
    ]


def _paint_distractors(img: np.ndarray, distractors: list[_Mover], mask: np.ndarray,
                       width: int, height: int) -> np.ndarray:
    """Paints each distractor over ``img`` and moves it one frame on (wrapping at the edges)."""
    for d in distractors:
        mask[:] = 0
        draw_shape_mask(mask, d.shape, d.x, d.y, d.size, 0.0)
        alpha = mask[..., None].astype(np.float32) / 255
        img = img * (1 - alpha) + d.colour * alpha
        d.x, d.y = (d.x + d.vx) % width, (d.y + d.vy) % height
    return img


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
    distractors = _distractors(rng, width, height, clutter, 2.5, (0.05, 0.08), (30, 230))
    frames = []
    mask = np.zeros((height, width), np.uint8)
    for t in range(num_frames):
        img = background * (1 + clutter * rng.uniform(-0.1, 0.1))
        img = _paint_distractors(img, distractors, mask, width, height)
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


# --- The miniature (docs/MINIATURE.md) -------------------------------------------------------
#: Designs of the generator: "classic" (the demo's set, above) and "miniature" (the set in which
#: the paper's claims can show: docs/MINIATURE.md).
DESIGNS = ("classic", "miniature", "pretrain", "pretrain_texture")
#: Miniature groups cycle through these kinds: a "product" group holds 4 classes, one per
#: (direction, pattern) pair, which adding the two streams' scores resolves; a "pair" group
#: holds 2 classes, each the union of two (direction, pattern) pairs arranged as an XOR, which
#: no single frame, no single flow stack and no sum of the two streams' scores can resolve.
MINI_KINDS = ("product", "product", "pair", "pair")
#: Linear motion whose two directions differ vertically. Training flips frames horizontally
#: (TSN's augmentation, flow x inverted), which turns Left into Right, Cw into Ccw: classes
#: told apart only by a horizontal direction or a spin sense get the same flipped inputs.
#: A spinning disc makes no optical flow at all.
MINI_FAMILIES: tuple[tuple[str, tuple[str, str], tuple[Vector, Vector]], ...] = (
    ("Lift", ("Up", "Down"), ((0.0, -1.0), (0.0, 1.0))),
    ("Drift", ("UpRight", "DownLeft"), ((0.7, -0.7), (-0.7, 0.7))),
    ("Tilt", ("UpLeft", "DownRight"), ((-0.7, -0.7), (0.7, 0.7))),
)
#: Object speed during the motion phase, pixels a frame at 128 px width (3-4 px at the 96x72
#: the frames are stored at: 19-26 grey levels under the +-20 flow quantisation). Faster motion
#: is underestimated by the demo's TV-L1 (3 scales, 3 warps), measured in docs/MINIATURE.md.
MINI_SPEED = (4.0, 5.5)
#: Contrast of the grain the tinted object carries (it moves with the object): a flat-coloured
#: object gives TV-L1 edges only, and its flow inside collapses towards 0.
MINI_GRAIN = 0.25
#: Object radius as a fraction of the frame height (classic: 0.16-0.21): training crops (TSN's
#: scale jitter and corner crops) of a 96x72 frame otherwise often miss most of the object.
MINI_SIZE = (0.30, 0.36)
MINI_CLUTTER = 0.15
#: Frames between the end of the motion and the first textured frame (inclusive range).
MINI_GAP = (3, 4)


def class_kind(spec: ClassSpec) -> str:
    """"pair" for a miniature class that is the union of two (direction, pattern) cues (an
    XOR only fusion across time points resolves), else "product"."""
    return "pair" if len(spec.cues) > 1 else "product"


def miniature_specs(num_classes: int) -> list[ClassSpec]:
    """Classes of the miniature, groups in the order of MINI_KINDS (cycled), truncated to
    ``num_classes``. A group shares shape, tint and motion family; its classes differ in
    direction and texture. ``cues`` lists the (direction, pattern) pairs a class's clips draw
    from: one for a product class, two (an XOR) for a pair class."""
    specs: list[ClassSpec] = []
    group = 0
    while len(specs) < num_classes:
        shape = SHAPES[group % len(SHAPES)]
        family, dir_names, dir_vectors = MINI_FAMILIES[group % len(MINI_FAMILIES)]
        kind = MINI_KINDS[group % len(MINI_KINDS)]
        if kind == "product":
            members = [(f"{dir_names[d]}{p}", ((dir_vectors[d], p),))
                       for p in PATTERNS for d in (0, 1)]
        else:
            same = ((dir_vectors[0], PATTERNS[0]), (dir_vectors[1], PATTERNS[1]))
            swap = ((dir_vectors[0], PATTERNS[1]), (dir_vectors[1], PATTERNS[0]))
            members = [("PairSame", same), ("PairSwap", swap)]
        for suffix, cues in members:
            if len(specs) == num_classes:
                break
            specs.append(ClassSpec(f"{shape}{family}{suffix}", group, shape, family,
                                   cues[0][0], cues[0][1], 1.0, cues))
        group += 1
    return specs


def pretrain_specs(num_classes: int) -> list[ClassSpec]:
    """The pretraining set (the miniature's stand-in for ImageNet): other classes, one a shape
    (SHAPES, cycled with a size tier), each clip with a random tint, texture and direction. Its
    trunk learns shapes, and is blind to textures (measured, docs/MINIATURE.md: a texture
    probe on its features is at chance), since no class needs them: pretrain_texture_specs."""
    cues = tuple((vec, pattern) for _, _, vectors in MINI_FAMILIES for vec in vectors
                 for pattern in PATTERNS)
    return [ClassSpec(f"{SHAPES[c % len(SHAPES)]}Shape{c // len(SHAPES) or ''}", -1,
                      SHAPES[c % len(SHAPES)], "Any", cues[0][0], cues[0][1], 1.0, cues)
            for c in range(num_classes)]


def pretrain_texture_specs(num_classes: int) -> list[ClassSpec]:
    """The pretraining set with textures as ImageNet has them: a class is a shape and a texture
    (SHAPES x PATTERNS, cycled), shown from the first frame; tint and direction random per
    clip. Its trunk learns shapes and textures, the two appearance cues of the miniature."""
    specs = []
    for c in range(num_classes):
        shape, pattern = SHAPES[(c // len(PATTERNS)) % len(SHAPES)], PATTERNS[c % len(PATTERNS)]
        tier = c // (len(SHAPES) * len(PATTERNS))
        cues = tuple((vec, pattern) for _, _, vectors in MINI_FAMILIES for vec in vectors)
        specs.append(ClassSpec(f"{shape}{pattern}Texture{tier or ''}", -1, shape, "Any",
                               cues[0][0], pattern, 1.0, cues, textured_from_start=True))
    return specs


def miniature_timeline(num_frames: int, rng: np.random.Generator) -> Timeline:
    """Motion over the first ~40 % of the clip, a neutral gap of MINI_GAP frames, then the
    texture to the end. A gap of >= 3 frames puts the two cues farther apart than a Delta = 1
    period reaches (2 steps of 1 frame, and a 5-field flow stack ends where its motion ends);
    a Delta = 5 period (2 steps of 5 frames) spans it (docs/MINIATURE.md)."""
    jitter = max(1, num_frames // 24)
    move_start = max(1, round(num_frames * 0.08) + int(rng.integers(-jitter, jitter + 1)))
    move_end = move_start + max(2, round(num_frames * 0.4))
    show_start = move_end + int(rng.integers(MINI_GAP[0], MINI_GAP[1] + 1))
    return Timeline(move_start, min(move_end, num_frames), min(show_start, num_frames - 1))


def render_miniature_clip(spec: ClassSpec, rng: np.random.Generator, num_frames: int,
                          width: int, height: int, clutter: float = MINI_CLUTTER
                          ) -> list[np.ndarray]:
    """Frames (BGR uint8) of one miniature clip: the object (its group's shape and tint) rests,
    moves in the clip's direction at MINI_SPEED, rests in its tint, then shows the clip's
    texture. The clip's (direction, pattern) is drawn from the class's ``cues``."""
    direction, pattern = spec.cues[int(rng.integers(len(spec.cues)))]
    timeline = miniature_timeline(num_frames, rng)
    if spec.textured_from_start:
        timeline = replace(timeline, show_start=0)
    background = _background(rng, width, height, clutter)
    size = height * rng.uniform(*MINI_SIZE)
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    pretrain = spec.group < 0
    if pretrain:  # shapes to learn: near the centre, where every training crop sees them
        x, y = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65)
    angle = rng.uniform(0, 360)
    hue = (spec.group * 47) % 180 if spec.group >= 0 else int(rng.integers(0, 180))
    tint = np.array(cv2.cvtColor(np.uint8([[[hue, 170, int(rng.uniform(170, 230))]]]),
                                 cv2.COLOR_HSV2BGR)[0, 0], np.float32)
    colour = np.array(cv2.cvtColor(
        np.uint8([[[rng.integers(0, 180), 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0], np.float32)
    texture = _texture(pattern, width, height, colour, period=max(3, round(size / 3)))
    norm = math.hypot(*direction) or 1.0
    speed = rng.uniform(*MINI_SPEED) * width / 128 * (0.2 if pretrain else 1.0)
    step = (direction[0] / norm * speed, direction[1] / norm * speed)
    coarse = rng.normal(0, 1, size=(height // 6 + 1, width // 6 + 1)).astype(np.float32)
    grain = 1 + MINI_GRAIN * np.clip(
        cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR), -2, 2)
    x0, y0 = x, y
    distractors = _distractors(rng, width, height, clutter, 1.5, (0.04, 0.06), (60, 200))
    frames = []
    mask = np.zeros((height, width), np.uint8)
    for t in range(num_frames):
        img = background * (1 + clutter * rng.uniform(-0.1, 0.1))
        img = _paint_distractors(img, distractors, mask, width, height)
        if timeline.move_start <= t < timeline.move_end:
            x, y = (x + step[0]) % width, (y + step[1]) % height
        mask[:] = 0
        draw_shape_mask(mask, spec.shape, x, y, size, angle)
        alpha = mask[..., None].astype(np.float32) / 255
        if t >= timeline.show_start:
            look = texture
        else:  # the grain travels with the object (offsets wrap as the object does)
            moved = np.roll(grain, (round(y - y0), round(x - x0)), axis=(0, 1))
            look = tint * moved[..., None]
        img = img * (1 - alpha) + look * alpha
        img += rng.normal(0, 6 * clutter, size=img.shape).astype(np.float32)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = FPS) -> None:
    """Writes ``frames`` to ``path`` atomically (temporary name, then rename)."""
    height, width = frames[0].shape[:2]
    with atomic_path(path, suffix=path.suffix) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"{tmp}: OpenCV cannot write {FOURCC} video")
        try:
            for frame in frames:
                writer.write(frame)
        finally:
            writer.release()


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
    atomic_write_text(path, "".join(line + "\n" for line in lines))


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


def _design(design: str, num_classes: int) -> tuple[list[ClassSpec], Callable[..., list]]:
    """The class specs and the clip renderer of ``design``."""
    specs = {"classic": class_specs, "miniature": miniature_specs,
             "pretrain": pretrain_specs,
             "pretrain_texture": pretrain_texture_specs}[design](num_classes)
    return specs, render_clip if design == "classic" else render_miniature_clip


def design_fingerprint(design: str, num_classes: int, num_frames: int, seed: int = 0,
                       width: int = 128, height: int = 96) -> str:
    """SHA-256 of the first clip of every class as ``generate`` renders it: a cache key that
    changes when what the generator draws changes, and not when its code is only rearranged."""
    specs, render = _design(design, num_classes)
    clutter = DEFAULT_CLUTTER if design == "classic" else MINI_CLUTTER
    digest = hashlib.sha256(f"{design} {num_classes} {num_frames} {width}x{height}".encode())
    for label, spec in enumerate(specs):
        rng = np.random.default_rng([seed, label, 0])
        for frame in render(spec, rng, num_frames, width, height, clutter):
            digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()


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
    clutter: float | None = None,
    design: str = "classic",
) -> list[Path]:
    """Writes the videos and split files; returns the video paths. Finished videos are kept.
    ``design``: "classic" (the demo's set) or "miniature" (docs/MINIATURE.md); ``clutter``
    defaults to the design's (DEFAULT_CLUTTER, MINI_CLUTTER)."""
    from netgen.presets import MAX_SYNTHETIC_CLASSES

    if not 1 <= num_classes <= MAX_SYNTHETIC_CLASSES:
        raise ValueError(f"--classes must be in 1..{MAX_SYNTHETIC_CLASSES}, not {num_classes}")
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    if clutter is None:
        clutter = DEFAULT_CLUTTER if design == "classic" else MINI_CLUTTER
    if num_classes < 1 or clips_per_class < 2 or num_frames < 2:
        raise ValueError("need >= 1 class, >= 2 clips a class and >= 2 frames a clip")
    if not 0 <= clutter <= 1:
        raise ValueError(f"clutter must be in [0, 1], got {clutter}")
    out_dir = Path(out_dir)
    specs, render = _design(design, num_classes)
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
        write_video(path, render(spec, rng, num_frames, width, height, clutter))
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
    p.add_argument("--clutter", type=float,
                   help="0..1: background colours, distractors, flicker and noise "
                        f"(default {DEFAULT_CLUTTER}; miniature {MINI_CLUTTER})")
    p.add_argument("--design", choices=DESIGNS, default="classic",
                   help="classic: the demo's set; miniature: the set of `make claims`; "
                        "pretrain: its pretraining set; pretrain_texture: one whose classes are "
                        "shapes and textures (docs/MINIATURE.md)")
    args = p.parse_args(argv)
    try:
        paths = generate(
            args.out_dir, args.classes, args.clips_per_class, args.frames, args.width,
            args.height, args.seed, args.test_fraction, args.splits, progress=True,
            clutter=args.clutter, design=args.design,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} videos under {Path(args.out_dir) / 'videos'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
