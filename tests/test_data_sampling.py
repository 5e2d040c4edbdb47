"""Frame sampling: periods (Sec. 5, Sec. 6.1), TSN segments, short videos."""

from __future__ import annotations

import numpy as np
import pytest

from co2fi_layers import sampling
from netgen import paper

STEPS = sampling.ALL_STEPS
L = paper.FLOW_STACK


@pytest.mark.parametrize("num_frames", [31, 48, 64, 300])
def test_test_periods_are_spread_delta_apart_and_inside(num_frames):
    points = sampling.period_indices(num_frames, paper.TEST_PERIODS, STEPS, paper.DELTA, L)
    assert points.shape == (paper.TEST_PERIODS, paper.FUSION_STEPS)
    assert (np.diff(points, axis=1) == paper.DELTA).all()
    centres = points[:, sampling.CENTRE_STEP - 1]
    assert (np.diff(centres) >= 0).all()
    assert points.min() >= 1 and points.max() <= num_frames
    for p in points.ravel():
        stack = sampling.flow_stack_indices(int(p), L, num_frames - 1)
        assert (np.diff(stack) == 1).all() and stack.min() >= 1 and stack.max() <= num_frames - 1
        assert stack[0] == p - L // 2  # centred, never clamped when the video is long enough
    lo, hi = sampling.centre_range(num_frames, STEPS, paper.DELTA, L)
    assert lo <= centres[0] and centres[-1] <= hi
    assert centres[-1] - centres[0] >= (hi - lo) * (paper.TEST_PERIODS - 1) / paper.TEST_PERIODS - 1


@pytest.mark.parametrize("num_frames", [1, 2, 7, 20, 30])
def test_short_videos_clamp_without_error(num_frames):
    points = sampling.period_indices(num_frames, paper.TEST_PERIODS, STEPS, paper.DELTA, L)
    assert points.min() >= 1 and points.max() <= num_frames
    assert (np.diff(points, axis=1) >= 0).all()
    rng = np.random.default_rng(0)
    train = sampling.random_period(rng, num_frames, STEPS, paper.DELTA, L)
    assert train.min() >= 1 and train.max() <= num_frames
    stack = sampling.flow_stack_indices(int(points[0, 0]), L, max(1, num_frames - 1))
    assert len(stack) == L and stack.max() <= max(1, num_frames - 1)


def test_single_step_stream_uses_the_centre():
    full = sampling.period_indices(64, 3, STEPS, paper.DELTA, L)
    centre = sampling.period_indices(64, 3, STEPS, paper.DELTA, L)[:, [2]]
    assert (full[:, 2:3] == centre).all()
    with pytest.raises(ValueError):
        sampling.period_indices(64, 3, (0, 6), paper.DELTA, L)


def test_random_period_covers_the_allowed_range():
    rng = np.random.default_rng(1)
    lo, hi = sampling.centre_range(60, STEPS, paper.DELTA, L)
    centres = {int(sampling.random_period(rng, 60, STEPS, paper.DELTA, L)[2])
               for _ in range(500)}
    assert centres == set(range(lo, hi + 1))


def test_tsn_segments():
    assert sampling.test_starts(25, 1, 5).tolist() == [3, 8, 13, 18, 23]
    assert sampling.test_starts(4, L, 3).tolist() == [1, 1, 1]
    rng = np.random.default_rng(0)
    starts = {sampling.random_start(rng, 20, L) for _ in range(300)}
    assert starts == set(range(1, 12))
    assert sampling.stack_indices(3, 4, 4).tolist() == [3, 4, 4, 4]
