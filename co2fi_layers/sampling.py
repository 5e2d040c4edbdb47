"""Which frames a sample uses: pure functions of the frame counts (and an RNG), no Caffe.

Indices are 1-based, as the file names. A flow stack of length L "at" a time point p (a frame
index) is the flow frames p - L//2 ... p - L//2 + L - 1, i.e. the motion from frame p - L//2
to p + L//2: the stack is centred on the frame (docs/DATA.md). Rule for short videos: indices
that would fall outside the video are clamped to its first/last frame (frames repeat); nothing
raises.

Periods (Sec. 5, Fig. 5; Sec. 6.1): step t of a period centred on frame c is the time point
c + (t - centre_step(T)) * delta, for t in 1..T, T = ``period_steps`` (odd, at most
paper.MAX_FUSION_STEPS; the paper's paper.FUSION_STEPS by default, whose centre is step 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from netgen import paper
from netgen.paper import check_period_steps  # noqa: F401  (the rule's owner is netgen)


def centre_step(period_steps: int = paper.FUSION_STEPS) -> int:
    """The centre step of a period of ``period_steps`` steps: (T + 1) / 2."""
    return (check_period_steps(period_steps) + 1) // 2


def all_steps(period_steps: int = paper.FUSION_STEPS) -> tuple[int, ...]:
    """Every step of a period: 1..T."""
    return tuple(range(1, check_period_steps(period_steps) + 1))


CENTRE_STEP = centre_step()
ALL_STEPS = all_steps()


def stack_indices(start: int, length: int, num_frames: int) -> np.ndarray:
    """``length`` consecutive indices from ``start``, clamped to 1..num_frames."""
    return np.clip(np.arange(start, start + length), 1, max(1, num_frames))


def flow_stack_indices(time_point: int, flow_len: int, num_flow: int) -> np.ndarray:
    """Flow frames of the stack centred on ``time_point`` (clamped into the video)."""
    start = min(max(1, time_point - flow_len // 2), max(1, num_flow - flow_len + 1))
    return stack_indices(start, flow_len, num_flow)


def random_start(rng: np.random.Generator, num_frames: int, length: int) -> int:
    """Train sampling of a clip (TSN, one segment): a uniform start with the clip inside."""
    return int(rng.integers(1, max(1, num_frames - length + 1) + 1))


def test_starts(num_frames: int, length: int, num_segments: int) -> np.ndarray:
    """TSN's test sampling: ``num_segments`` starts evenly spread, each in its segment centre."""
    span = max(1, num_frames - length + 1)
    tick = span / num_segments
    return (np.floor(tick / 2 + tick * np.arange(num_segments)).astype(np.int64) + 1).clip(1, span)


def _offsets(steps: Sequence[int], delta: int, period_steps: int) -> np.ndarray:
    centre = centre_step(period_steps)
    steps = np.asarray(steps, dtype=np.int64)
    if steps.size == 0 or steps.min() < 1 or steps.max() > period_steps:
        raise ValueError(f"steps must be in 1..{period_steps}, got {list(steps)}")
    return (steps - centre) * delta


def centre_range(num_frames: int, steps: Sequence[int], delta: int, flow_len: int,
                 num_flow: int | None = None, period_steps: int = paper.FUSION_STEPS
                 ) -> tuple[int, int]:
    """Lowest and highest period centre with every step's frame (and flow stack) inside the
    video; lo > hi when the video is shorter than one period."""
    offsets = _offsets(steps, delta, period_steps)
    lo, hi = 1 - int(offsets.min()), num_frames - int(offsets.max())
    if flow_len > 0:
        num_flow = num_frames - 1 if num_flow is None else num_flow
        half = flow_len // 2
        lo = max(lo, 1 + half - int(offsets.min()))
        hi = min(hi, num_flow - flow_len + 1 + half - int(offsets.max()))
    return lo, hi


def _time_points(centres: np.ndarray, offsets: np.ndarray, num_frames: int) -> np.ndarray:
    return np.clip(centres[:, None] + offsets[None, :], 1, max(1, num_frames))


def period_indices(num_frames: int, num_periods: int, steps: Sequence[int], delta: int,
                   flow_len: int, num_flow: int | None = None,
                   period_steps: int = paper.FUSION_STEPS) -> np.ndarray:
    """Test sampling (Sec. 6.1): ``num_periods`` periods evenly spread over the video.

    Returns a (num_periods, len(steps)) int array of time points (1-based frame indices): the
    RGB frame of step ``steps[j]`` in period i is ``[i, j]``; its flow stack is
    :func:`flow_stack_indices` of it. Centres are chosen so that frames and flow stacks (of
    ``flow_len``, 0 for none; ``num_flow`` defaults to num_frames - 1) all fit, spread as TSN
    spreads test segments. A video shorter than one period: every period is centred on the
    middle of the allowed range and the time points are clamped (frames repeat)."""
    offsets = _offsets(steps, delta, period_steps)
    lo, hi = centre_range(num_frames, steps, delta, flow_len, num_flow, period_steps)
    if lo > hi:
        centres = np.full(num_periods, (lo + hi) // 2, dtype=np.int64)
    else:
        span = hi - lo + 1
        centres = lo + (span * (2 * np.arange(num_periods) + 1)) // (2 * num_periods)
    return _time_points(centres, offsets, num_frames)


def random_period(rng: np.random.Generator, num_frames: int, steps: Sequence[int], delta: int,
                  flow_len: int, num_flow: int | None = None,
                  period_steps: int = paper.FUSION_STEPS) -> np.ndarray:
    """Train sampling: one period with a uniform centre; (len(steps),) time points."""
    offsets = _offsets(steps, delta, period_steps)
    lo, hi = centre_range(num_frames, steps, delta, flow_len, num_flow, period_steps)
    centre = (lo + hi) // 2 if lo > hi else int(rng.integers(lo, hi + 1))
    return _time_points(np.array([centre]), offsets, num_frames)[0]
