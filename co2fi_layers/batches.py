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
from co2fi_layers.params import build
from data_prep import rawframes
from data_prep.errors import DataError
from netgen import names, paper

TRAIN, TEST = "train", "test"
CAFFE_PHASES = {0: TRAIN, 1: TEST}  # caffe.TRAIN, caffe.TEST
#: What a list's num_frames counts: "own" (TSN: an rgb list counts frames, a flow list flow
#: frames) or "rgb" (mmaction2's build_file_list writes one list with the RGB frame count F for
#: both modalities; a video then has F - 1 flow frames, as denseflow writes them).
LIST_COUNTS = ("own", "rgb")
#: param_str keys the data layer reads itself (co2fi_layers.data_layer), not the batch makers.
LAYER_KEYS = {"workers", "prefetch", "first_batch"}


def _check_rank(rank: int, world: int) -> None:
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank must be in 0..world-1 and world >= 1, got rank {rank}, "
                         f"world {world}")


def _batch_rng(seed: int, batch_index: int, rank: int, world: int) -> np.random.Generator:
    key = [seed, batch_index] if world == 1 else [seed, batch_index, rank, world]
    return np.random.default_rng(key)


def _check_list_counts(list_counts: str) -> None:
    # list_format: checked by frames.read_list
    if list_counts not in LIST_COUNTS:
        raise ValueError(f"list_counts must be one of {LIST_COUNTS}, got {list_counts!r}")


def source_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor keywords of the frame layout and list reading from a param_str (the keys it
    leaves out keep the constructor's defaults)."""
    options = {key: params[key] for key in ("list_format", "list_counts") if key in params}
    return {"layout": rawframes.layout_from_params(params), **options}


def _flow_count(num_frames: int, list_counts: str) -> int:
    return max(1, num_frames - 1) if list_counts == "rgb" else num_frames


def _phase(params: Mapping[str, Any], caffe_phase: int | None) -> str:
    phase = params.get("phase", CAFFE_PHASES.get(caffe_phase, TRAIN))
    if phase not in (TRAIN, TEST):
        raise ValueError(f"phase must be 'train' or 'test', got {phase!r}")
    return phase


def _from_params(cls: type[Any], layer: str, rename: Mapping[str, str],
                 params: Mapping[str, Any], caffe_phase: int | None) -> Any:
    """``cls`` from a data layer's param_str: every key is a constructor keyword (``rename``
    where the names differ), but for the frame-layout keys, which make ``layout``, the phase,
    which defaults to the net's, and the layer's own keys."""
    return build(cls, params, layer, rename,
                 other_keys=set(rawframes.LAYOUT_KEYS) | LAYER_KEYS | {"phase"},
                 layout=rawframes.layout_from_params(params), phase=_phase(params, caffe_phase))


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

    #: param_str key -> constructor parameter, where the names differ.
    RENAME = {"list": "list_path"}

    def __init__(self, list_path: str, root: str = "", modality: str = "rgb",
                 batch_size: int = paper.BATCH_SIZE, input_size: int = paper.INPUT_SIZE,
                 phase: str = TRAIN, seed: int = 0, test_segments: int = 1,
                 more_fix_crop: bool = True, flip: bool = True,
                 layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
                 list_format: str = "auto", list_counts: str = "own", rank: int = 0,
                 world: int = 1):
        if modality not in names.STREAMS:
            raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}")
        _check_list_counts(list_counts)
        _check_rank(int(rank), int(world))
        self.layout = layout
        self.records = frames.read_list(list_path, root, list_format)
        if modality == "flow":
            self.records = [frames.VideoRecord(r.path, _flow_count(r.num_frames, list_counts),
                                               r.label, r.offset) for r in self.records]
        self.modality, self.batch_size, self.input_size = modality, int(batch_size), int(input_size)
        self.phase, self.seed, self.test_segments = phase, int(seed), int(test_segments)
        self.more_fix_crop, self.flip = bool(more_fix_crop), bool(flip)
        self.length = names.STACK[modality]
        self.order = _EpochOrder(len(self.records), self.seed)
        self.rank, self.world = int(rank), int(world)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], caffe_phase: int | None = None
                    ) -> ClipBatches:
        """The maker of a ClipDataLayer's param_str (keys as the constructor's keywords)."""
        return _from_params(cls, "ClipDataLayer", cls.RENAME, params, caffe_phase)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        side = self.input_size
        return {"data": (self.batch_size, names.CHANNELS[self.modality], side, side),
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

    def __init__(self, rgb_list: str | None = None, flow_list: str | None = None, root: str = "",
                 batch_size: int = paper.BATCH_SIZE, input_size: int = paper.INPUT_SIZE,
                 delta: int = paper.DELTA, rgb_steps: tuple[int, ...] = sampling.ALL_STEPS,
                 flow_steps: tuple[int, ...] = sampling.ALL_STEPS, phase: str = TRAIN,
                 seed: int = 0, test_periods: int = paper.TEST_PERIODS,
                 more_fix_crop: bool = True, flip: bool = True,
                 layout: rawframes.FrameLayout = rawframes.DEFAULT_LAYOUT,
                 list_format: str = "auto", list_counts: str = "own", rank: int = 0,
                 world: int = 1, period_steps: int = paper.FUSION_STEPS):
        self.period_steps = sampling.check_period_steps(int(period_steps))
        self.rgb_steps = tuple(int(t) for t in rgb_steps)
        self.flow_steps = tuple(int(t) for t in flow_steps)
        if not self.rgb_steps and not self.flow_steps:
            raise ValueError("PeriodDataLayer needs rgb_steps or flow_steps")
        _check_list_counts(list_counts)
        _check_rank(int(rank), int(world))
        self.steps = tuple(sorted(set(self.rgb_steps) | set(self.flow_steps)))
        self.flow_len = names.STACK["flow"] if self.flow_steps else 0
        self.layout = layout
        self.videos = self._join(rgb_list if self.rgb_steps else None,
                                 flow_list if self.flow_steps else None, root, list_format,
                                 list_counts)
        self.batch_size = int(test_periods if phase == TEST else batch_size)
        self.input_size, self.delta, self.phase = int(input_size), int(delta), phase
        self.seed, self.test_periods = int(seed), int(test_periods)
        self.more_fix_crop, self.flip = bool(more_fix_crop), bool(flip)
        self.order = _EpochOrder(len(self.videos), self.seed)
        self.rank, self.world = int(rank), int(world)

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
        """The maker of a PeriodDataLayer's param_str (keys as the constructor's keywords)."""
        return _from_params(cls, "PeriodDataLayer", {}, params, caffe_phase)

    def top_names(self) -> list[str]:
        return list(self.shapes())

    def shapes(self) -> dict[str, tuple[int, ...]]:
        b, s = self.batch_size, self.input_size
        shapes: dict[str, tuple[int, ...]] = {}
        for stream, steps in (("rgb", self.rgb_steps), ("flow", self.flow_steps)):
            for t in steps:
                shapes[names.tower(stream, t)] = (b, names.CHANNELS[stream], s, s)
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
                augment.transform(image, crop, self.input_size, False,
                                  outputs[names.tower("rgb", t)][j])
            for t in self.flow_steps:
                indices = sampling.flow_stack_indices(int(points[column[t]]), self.flow_len,
                                                      num_flow)
                planes = frames.load_flow_planes(path, indices, self.layout, flow_offset)
                augment.transform_planes(planes, crop, self.input_size,
                                         outputs[names.tower("flow", t)][j])
            outputs["label"][j] = label
