"""Batch makers of the data layers, no Caffe: ``fill(batch_index, outputs)`` writes batch
number ``batch_index`` into preallocated arrays. A batch is a pure function of (lists, params,
seed, batch_index), so prefetch workers can make batches in any order and any number of them.

Train order: the videos are shuffled once an epoch (seeded by (seed, epoch)) and taken in turn;
test order: the list order, wrapping around.

Data-parallel training (one solver process per GPU, co2fi_tools.training.multigpu): ``rank`` r of
``world`` N takes the samples r, r + N, r + 2N, ... of that shared order, so the ranks see
disjoint videos within an epoch (as a DistributedSampler), and draws its crops from a generator
seeded by (seed, batch, rank). With world 1 nothing changes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from co2fi_layers import augment, frames, sampling
from data_prep import rawframes
from data_prep.errors import DataError
from netgen import paper

TRAIN, TEST = "train", "test"
CAFFE_PHASES = {0: TRAIN, 1: TEST}  # caffe.TRAIN, caffe.TEST
CHANNELS = {"rgb": 3, "flow": 2 * paper.FLOW_STACK}
#: What a list's num_frames counts: "own" (TSN: an rgb list counts frames, a flow list flow
#: frames) or "rgb" (mmaction2's build_file_list writes one list with the RGB frame count F for
#: both modalities; a video then has F - 1 flow frames, as denseflow writes them).
LIST_COUNTS = ("own", "rgb")
#: param_str keys on the files and lists of other tools (docs/DATA.md).
SOURCE_KEYS = set(rawframes.LAYOUT_KEYS) | {"list_format", "list_counts"}
#: param_str keys of data-parallel training (set by the layer from Caffe's solver rank).
RANK_KEYS = {"rank", "world"}


def rank_options(params: Mapping[str, Any]) -> dict[str, int]:
    rank, world = int(params.get("rank", 0)), int(params.get("world", 1))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank must be in 0..world-1 and world >= 1, got rank {rank}, "
                         f"world {world}")
    return {"rank": rank, "world": world}


def _batch_rng(seed: int, batch_index: int, rank: int, world: int) -> np.random.Generator:
    key = [seed, batch_index] if world == 1 else [seed, batch_index, rank, world]
    return np.random.default_rng(key)


def source_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor keywords of the frame layout and list reading from a param_str."""
    counts = params.get("list_counts", "own")
    if counts not in LIST_COUNTS:
        raise ValueError(f"list_counts must be one of {LIST_COUNTS}, got {counts!r}")
    list_format = params.get("list_format", "auto")
    if list_format not in frames.LIST_FORMATS:
        raise ValueError(f"list_format must be one of {frames.LIST_FORMATS}, got {list_format!r}")
    return {"layout": rawframes.layout_from_params(params), "list_format": list_format,
            "list_counts": counts}


def _flow_count(num_frames: int, list_counts: str) -> int:
    return max(1, num_frames - 1) if list_counts == "rgb" else num_frames


def _check_keys(params: Mapping[str, Any], allowed: set[str], layer: str) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"{layer} param_str: unknown keys {sorted(unknown)}; "
                         f"known: {sorted(allowed)}")


def _phase(params: Mapping[str, Any], caffe_phase: int | None) -> str:
    phase = params.get("phase", CAFFE_PHASES.get(caffe_phase, TRAIN))
    if phase not in (TRAIN, TEST):
        raise ValueError(f"phase must be 'train' or 'test', got {phase!r}")
    return phase


class _EpochOrder:
    """Sample k of training -> video index; a fresh permutation every epoch."""

    def __init__(self, num_videos: int, seed: int):
        self.num_videos, self.seed = num_videos, seed

    @functools.lru_cache(maxsize=4)  # noqa: B019 - few epochs alive at once
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 1]).permutation(self.num_videos)

    def video(self, sample: int) -> int:
        epoch, position = divmod(sample, self.num_videos)
        return int(self._permutation(epoch)[position])


class ClipBatches:
    """Single-frame RGB or FLOW_STACK-field flow samples (Table 1 nets, the grouper)."""

    KEYS = {"list", "root", "modality", "batch_size", "input_size", "phase", "seed",
            "test_segments", "more_fix_crop", "flip", "workers", "prefetch"} | SOURCE_KEYS \
        | RANK_KEYS

    def __init__(self, list_path: str, root: str = "", modality: str = "rgb",
                 batch_size: int = paper.BATCH_SIZE, input_size: int = paper.INPUT_SIZE,
                 phase: str = TRAIN, seed: int = 0, test_segments: int = 1,
                 more_fix_crop: bool = True, flip: bool = True,
                 layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
                 list_format: str = "auto", list_counts: str = "own", rank: int = 0,
                 world: int = 1):
        if modality not in CHANNELS:
            raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}")
        self.layout = layout
        self.records = frames.read_list(list_path, root, list_format)
        if modality == "flow":
            self.records = [frames.VideoRecord(r.path, _flow_count(r.num_frames, list_counts),
                                               r.label, r.offset) for r in self.records]
        self.modality, self.batch_size, self.input_size = modality, batch_size, input_size
        self.phase, self.seed, self.test_segments = phase, seed, test_segments
        self.more_fix_crop, self.flip = more_fix_crop, flip
        self.length = 1 if modality == "rgb" else paper.FLOW_STACK
        self.order = _EpochOrder(len(self.records), seed)
        self.rank, self.world = rank, world

    @classmethod
    def from_params(cls, params: Mapping[str, Any], caffe_phase: int | None = None
                    ) -> ClipBatches:
        _check_keys(params, cls.KEYS, "ClipDataLayer")
        if "list" not in params:
            raise ValueError("ClipDataLayer param_str needs 'list'")
        return cls(params["list"], params.get("root", ""), params.get("modality", "rgb"),
                   int(params.get("batch_size", paper.BATCH_SIZE)),
                   int(params.get("input_size", paper.INPUT_SIZE)), _phase(params, caffe_phase),
                   int(params.get("seed", 0)), int(params.get("test_segments", 1)),
                   bool(params.get("more_fix_crop", True)), bool(params.get("flip", True)),
                   **source_options(params), **rank_options(params))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        side = self.input_size
        return {"data": (self.batch_size, CHANNELS[self.modality], side, side),
                "label": (self.batch_size,)}

    def batches_per_pass(self) -> int:
        """Test batches that cover every (video, segment) once (the last one wraps around)."""
        items = len(self.records) * self.test_segments
        return -(-items // self.batch_size)

    def _sample(self, k: int, rng: np.random.Generator) -> tuple[frames.VideoRecord, int,
                                                                  augment.CropChoice]:
        if self.phase == TRAIN:
            record = self.records[self.order.video(k * self.world + self.rank)]
            start = sampling.random_start(rng, record.num_frames, self.length)
            return record, start, augment.random_crop(rng, self.more_fix_crop, self.flip)
        video, segment = divmod(k % (len(self.records) * self.test_segments), self.test_segments)
        record = self.records[video]
        start = sampling.test_starts(record.num_frames, self.length, self.test_segments)[segment]
        return record, int(start), augment.TEST_CROP

    def fill(self, batch_index: int, outputs: Mapping[str, np.ndarray]) -> None:
        rng = _batch_rng(self.seed, batch_index, self.rank, self.world)
        for j in range(self.batch_size):
            record, start, crop = self._sample(batch_index * self.batch_size + j, rng)
            if self.modality == "rgb":
                image = frames.load_image(record.path, start, self.layout, record.offset)
            else:
                indices = sampling.stack_indices(start, self.length, record.num_frames)
                planes = frames.load_flow_planes(record.path, indices, self.layout,
                                                 record.offset)
            if self.modality == "rgb":
                augment.transform(image, crop, self.input_size, False, outputs["data"][j])
            else:
                augment.transform_planes(planes, crop, self.input_size, outputs["data"][j])
            outputs["label"][j] = record.label


class PeriodVideo(NamedTuple):
    """One video of a PeriodBatches: its folder, frame counts, label and list offsets."""

    path: str
    num_rgb: int
    num_flow: int
    label: int
    rgb_offset: int
    flow_offset: int


class PeriodBatches:
    """Periods for the fusion nets: frames at rgb_steps and flow stacks at flow_steps, delta
    apart, of one video, one crop/flip for all inputs of a sample. Test phase: a batch is the
    test_periods periods of one video (``batch_size`` is then ignored). ``period_steps`` is
    T, the steps of a period (rgb_steps and flow_steps are subsets of 1..T)."""

    KEYS = {"rgb_list", "flow_list", "root", "batch_size", "input_size", "delta", "rgb_steps",
            "flow_steps", "phase", "seed", "test_periods", "more_fix_crop", "flip", "workers",
            "prefetch", "period_steps"} | SOURCE_KEYS | RANK_KEYS

    def __init__(self, rgb_list: str | None, flow_list: str | None, root: str = "",
                 batch_size: int = paper.BATCH_SIZE, input_size: int = paper.INPUT_SIZE,
                 delta: int = paper.DELTA, rgb_steps: tuple[int, ...] = sampling.ALL_STEPS,
                 flow_steps: tuple[int, ...] = sampling.ALL_STEPS, phase: str = TRAIN,
                 seed: int = 0, test_periods: int = paper.TEST_PERIODS,
                 more_fix_crop: bool = True, flip: bool = True,
                 layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
                 list_format: str = "auto", list_counts: str = "own", rank: int = 0,
                 world: int = 1, period_steps: int = paper.FUSION_STEPS):
        self.period_steps = sampling.check_period_steps(period_steps)
        self.rgb_steps, self.flow_steps = tuple(rgb_steps), tuple(flow_steps)
        if not self.rgb_steps and not self.flow_steps:
            raise ValueError("PeriodDataLayer needs rgb_steps or flow_steps")
        self.steps = tuple(sorted(set(self.rgb_steps) | set(self.flow_steps)))
        self.flow_len = paper.FLOW_STACK if self.flow_steps else 0
        self.layout = layout
        self.videos = self._join(rgb_list if self.rgb_steps else None,
                                 flow_list if self.flow_steps else None, root, list_format,
                                 list_counts)
        self.batch_size = test_periods if phase == TEST else batch_size
        self.input_size, self.delta, self.phase, self.seed = input_size, delta, phase, seed
        self.test_periods, self.more_fix_crop, self.flip = test_periods, more_fix_crop, flip
        self.order = _EpochOrder(len(self.videos), seed)
        self.rank, self.world = rank, world

    @staticmethod
    def _join(rgb_list: str | None, flow_list: str | None, root: str, list_format: str = "auto",
              list_counts: str = "own") -> list[PeriodVideo]:
        """The videos in the order of the rgb (else flow) list."""
        rgb = frames.read_list(rgb_list, root, list_format) if rgb_list else None
        flow = frames.read_list(flow_list, root, list_format) if flow_list else None
        if rgb is None and flow is None:
            raise ValueError("PeriodDataLayer needs rgb_list for rgb_steps / flow_list for "
                             "flow_steps")
        if flow is not None:
            flow = [frames.VideoRecord(r.path, _flow_count(r.num_frames, list_counts), r.label,
                                       r.offset) for r in flow]
        if rgb is None:
            return [PeriodVideo(r.path, r.num_frames + 1, r.num_frames, r.label, r.offset,
                                r.offset) for r in flow]
        if flow is None:
            return [PeriodVideo(r.path, r.num_frames, r.num_frames - 1, r.label, r.offset,
                                r.offset) for r in rgb]
        by_path = {os.path.normpath(r.path): r for r in flow}
        joined = []
        for r in rgb:
            f = by_path.get(os.path.normpath(r.path))
            if f is None:
                raise DataError(flow_list, f"no line for {r.path!r} of {rgb_list}")
            if f.label != r.label:
                raise DataError(flow_list, f"label of {r.path!r} is {f.label}, "
                                           f"{r.label} in {rgb_list}")
            joined.append(PeriodVideo(r.path, r.num_frames, f.num_frames, r.label, r.offset,
                                      f.offset))
        return joined

    @classmethod
    def from_params(cls, params: Mapping[str, Any], caffe_phase: int | None = None
                    ) -> PeriodBatches:
        _check_keys(params, cls.KEYS, "PeriodDataLayer")
        return cls(params.get("rgb_list"), params.get("flow_list"), params.get("root", ""),
                   int(params.get("batch_size", paper.BATCH_SIZE)),
                   int(params.get("input_size", paper.INPUT_SIZE)),
                   int(params.get("delta", paper.DELTA)),
                   tuple(params.get("rgb_steps", sampling.ALL_STEPS)),
                   tuple(params.get("flow_steps", sampling.ALL_STEPS)),
                   _phase(params, caffe_phase), int(params.get("seed", 0)),
                   int(params.get("test_periods", paper.TEST_PERIODS)),
                   bool(params.get("more_fix_crop", True)), bool(params.get("flip", True)),
                   **source_options(params), **rank_options(params),
                   period_steps=int(params.get("period_steps", paper.FUSION_STEPS)))

    def top_names(self) -> list[str]:
        return ([f"rgb_t{t}" for t in self.rgb_steps] + [f"flow_t{t}" for t in self.flow_steps]
                + ["label"])

    def shapes(self) -> dict[str, tuple[int, ...]]:
        b, s = self.batch_size, self.input_size
        shapes: dict[str, tuple[int, ...]] = {}
        for t in self.rgb_steps:
            shapes[f"rgb_t{t}"] = (b, CHANNELS["rgb"], s, s)
        for t in self.flow_steps:
            shapes[f"flow_t{t}"] = (b, CHANNELS["flow"], s, s)
        shapes["label"] = (b,)
        return shapes

    def batches_per_pass(self) -> int:
        return len(self.videos) if self.phase == TEST else -(-len(self.videos) // self.batch_size)

    def time_points(self, video: int) -> np.ndarray:
        """The test periods of a video: (test_periods, len(self.steps)) frame indices."""
        v = self.videos[video]
        return sampling.period_indices(v.num_rgb, self.test_periods, self.steps, self.delta,
                                       self.flow_len, v.num_flow, self.period_steps)

    def fill(self, batch_index: int, outputs: Mapping[str, np.ndarray]) -> None:
        rng = _batch_rng(self.seed, batch_index, self.rank, self.world)
        if self.phase == TEST:
            video = batch_index % len(self.videos)
            plans = [(video, points, augment.TEST_CROP) for points in self.time_points(video)]
        else:
            plans = []
            for j in range(self.batch_size):
                video = self.order.video((batch_index * self.batch_size + j) * self.world
                                         + self.rank)
                v = self.videos[video]
                points = sampling.random_period(rng, v.num_rgb, self.steps, self.delta,
                                                self.flow_len, v.num_flow, self.period_steps)
                plans.append((video, points, augment.random_crop(rng, self.more_fix_crop,
                                                                 self.flip)))
        column = {t: i for i, t in enumerate(self.steps)}
        for j, (video, points, crop) in enumerate(plans):
            path, _, num_flow, label, rgb_offset, flow_offset = self.videos[video]
            for t in self.rgb_steps:
                image = frames.load_image(path, int(points[column[t]]), self.layout, rgb_offset)
                augment.transform(image, crop, self.input_size, False, outputs[f"rgb_t{t}"][j])
            for t in self.flow_steps:
                indices = sampling.flow_stack_indices(int(points[column[t]]), self.flow_len,
                                                      num_flow)
                planes = frames.load_flow_planes(path, indices, self.layout, flow_offset)
                augment.transform_planes(planes, crop, self.input_size, outputs[f"flow_t{t}"][j])
            outputs["label"][j] = label
