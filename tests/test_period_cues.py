"""Which fusion periods of the miniature see both cues (co2fi_tools/reporting/period_cues.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from co2fi_tools.reporting.period_cues import sees_both, table


def test_a_period_sees_both_cues_only_with_the_centre_cue_at_its_centre():
    timeline = SimpleNamespace(move_start=4, move_end=23, show_start=27)
    # appearance-centred: centre frame 30 shows the texture, the step at 20 the motion
    assert sees_both(np.array([20, 25, 30, 35, 40]), timeline, 48, "rgb")
    # the same period motion-centred: its centre flow stack (25..34) misses the motion
    assert not sees_both(np.array([20, 25, 30, 35, 40]), timeline, 48, "flow")
    assert sees_both(np.array([10, 15, 20, 25, 30]), timeline, 48, "flow")


def test_delta_5_sees_both_cues_in_a_third_of_the_periods_and_delta_1_rarely():
    t = table(clips=300)
    for centre in ("rgb", "flow"):
        d5, d1 = t[f"train {centre}-centred, Δ=5"], t[f"train {centre}-centred, Δ=1"]
        assert d5 > 0.3 and d5 > 3 * d1
        assert t[f"test videos with one such period, {centre}-centred, Δ=5"] == 1.0
        # a 10-field flow stack reaches 5 frames past its time point: across the gap
        assert 0 < d1 < 0.15
