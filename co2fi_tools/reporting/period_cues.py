"""Which fusion periods of the miniature can see both of a clip's cues (docs/MINIATURE.md).

A miniature clip moves first and shows its texture after a gap (data_prep.synthetic:
miniature_timeline); a pair class is told only by the two together. A period sees both when
its centre step shows the centre stream's cue and one of the other stream's steps shows the
other's: for the appearance-centred model, the centre frame shows the texture and a flow stack
(FLOW_STACK fields around its time point) overlaps the motion; for the motion-centred model the
reverse. Periods are drawn as the period data layer draws them (co2fi_layers.sampling: one
uniform centre a training period, 12 evenly spread test periods); no net is trained.

    python -m co2fi_tools.reporting.period_cues [--clips 2000] [--frames 48] [--test-periods 12]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from co2fi_layers import sampling
from data_prep.synthetic import miniature_timeline
from netgen import names, paper


def sees_both(time_points: np.ndarray, timeline, num_frames: int, centre: str,
              flow_len: int = names.STACK["flow"]) -> bool:
    """Whether a period (its steps' 1-based time points) of the ``centre``-centred model
    shows the centre's cue at its centre step and the other stream's at one of its steps."""
    texture = (np.asarray(time_points) - 1) >= timeline.show_start
    motion = np.array([bool(np.any((idx >= timeline.move_start) & (idx < timeline.move_end - 1)))
                       for idx in (sampling.flow_stack_indices(int(k), flow_len, num_frames - 1)
                                   - 1 for k in time_points)])
    mid = sampling.centre_step(len(time_points)) - 1
    if centre == "rgb":
        return bool(texture[mid] and motion.any())
    return bool(motion[mid] and texture.any())


def table(clips: int = 2000, num_frames: int = 48, deltas: tuple[int, ...] = (1, 5),
          seed: int = 0, test_periods: int = paper.TEST_PERIODS) -> dict[str, float]:
    """Share of training periods, and of ``test_periods`` test periods, that see both cues,
    per Delta and centre stream, over ``clips`` drawn timelines."""
    rng = np.random.default_rng(seed)
    steps = list(sampling.all_steps(paper.FUSION_STEPS))
    flow_len = names.STACK["flow"]
    out: dict[str, list[float]] = {}
    for delta in deltas:
        for _ in range(clips):
            timeline = miniature_timeline(num_frames, rng)
            train = sampling.random_period(rng, num_frames, steps, delta, flow_len)
            test = sampling.period_indices(num_frames, test_periods, steps, delta, flow_len)
            for centre in names.STREAMS:
                out.setdefault(f"train {centre}-centred, Δ={delta}", []).append(
                    sees_both(train, timeline, num_frames, centre))
                hits = [sees_both(p, timeline, num_frames, centre) for p in test]
                out.setdefault(f"test {centre}-centred, Δ={delta}", []).append(np.mean(hits))
                out.setdefault(f"test videos with one such period, {centre}-centred, Δ={delta}",
                               []).append(any(hits))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m co2fi_tools.reporting.period_cues",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--test-periods", type=int, default=paper.TEST_PERIODS,
                    help="periods a test video (default %(default)s, Sec. 6.1; make claims: 4)")
    args = ap.parse_args(argv)
    if args.test_periods < 1:
        ap.error("--test-periods must be >= 1")
    for key, value in table(args.clips, args.frames, test_periods=args.test_periods).items():
        print(f"{key}: {100 * value:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
