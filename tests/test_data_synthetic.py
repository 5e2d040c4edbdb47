"""The synthetic generator: UCF101-format splits, groups, determinism, resumability."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from data_prep import synthetic
from data_prep.splits import read_split


def _decode(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_class_groups_share_shape_and_motion_and_differ_in_details():
    specs = synthetic.class_specs(10)
    assert len({s.name for s in specs}) == 10
    for s in specs:
        mates = [m for m in specs if m.group == s.group]
        assert {(m.shape, m.family) for m in mates} == {(s.shape, s.family)}
        assert len({(m.direction, m.pattern) for m in mates}) == len(mates)
    assert len({(s.shape, s.family, s.speed) for s in synthetic.class_specs(101)}) == 26


def test_motion_cue_ends_before_appearance_cue_begins():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = synthetic.clip_timeline(48, rng)
        assert 0 < t.move_start < t.move_end < t.show_start < 48


def test_generate_writes_readable_videos_and_ucf_splits(tmp_path):
    paths = synthetic.generate(tmp_path, num_classes=3, clips_per_class=4, num_frames=10,
                               width=40, height=32, seed=1)
    assert len(paths) == 12 and all(p.suffix == ".avi" for p in paths)
    frames = _decode(paths[0])
    assert len(frames) == 10 and frames[0].shape == (32, 40, 3)
    split = read_split("synthetic", tmp_path / "splits", 1)
    assert len(split.train) == 9 and len(split.test) == 3
    assert split.train[0].video.startswith(f"{split.classes[0]}/v_{split.classes[0]}_g")
    first = (tmp_path / "splits" / "trainlist01.txt").read_text().splitlines()[0]
    assert first.endswith(" 1")  # 1-based labels, as UCF101


def test_same_seed_same_pixels_and_finished_files_are_kept(tmp_path):
    a = synthetic.generate(tmp_path / "a", num_classes=2, clips_per_class=2, num_frames=6,
                           width=32, height=24, seed=5)
    b = synthetic.generate(tmp_path / "b", num_classes=2, clips_per_class=2, num_frames=6,
                           width=32, height=24, seed=5)
    assert all(np.array_equal(x, y) for p, q in zip(a, b, strict=True)
               for x, y in zip(_decode(p), _decode(q), strict=True))
    stamp = a[0].stat().st_mtime_ns
    a[1].unlink()
    synthetic.main([str(tmp_path / "a"), "--classes", "2", "--clips-per-class", "2",
                    "--frames", "6", "--width", "32", "--height", "24", "--seed", "5"])
    assert a[0].stat().st_mtime_ns == stamp and a[1].exists()
    assert not list((tmp_path / "a").rglob(".*tmp*"))


def test_miniature_pair_classes_are_an_xor_of_the_two_cues():
    specs = synthetic.miniature_specs(12)
    assert len({s.name for s in specs}) == 12
    pairs = [s for s in specs if len(s.cues) == 2]
    assert len(pairs) == 4 and len([s for s in specs if len(s.cues) == 1]) == 8
    for group in {s.group for s in pairs}:
        a, b = (s for s in pairs if s.group == group)
        # each cue alone (direction or texture) occurs in both classes: no stream decides
        assert {d for d, _ in a.cues} == {d for d, _ in b.cues}
        assert {p for _, p in a.cues} == {p for _, p in b.cues}
        assert not set(a.cues) & set(b.cues)  # the conjunction does


def test_miniature_gap_is_beyond_delta_1_and_within_delta_5():
    rng = np.random.default_rng(0)
    for _ in range(50):
        t = synthetic.miniature_timeline(48, rng)
        assert 3 <= t.show_start - t.move_end <= 4 and t.move_end - t.move_start >= 15
        assert t.show_start < 48 - 10  # texture long enough for several periods


def test_miniature_motion_survives_the_flow_quantisation():
    from data_prep import flow

    spec = synthetic.miniature_specs(12)[0]
    rng = np.random.default_rng([0, 0, 0])
    frames = synthetic.render_miniature_clip(spec, rng, 48, 128, 96)
    grey = [cv2.cvtColor(cv2.resize(f, (96, 72), interpolation=cv2.INTER_AREA),
                         cv2.COLOR_BGR2GRAY) for f in frames]
    fn = flow.METHODS["tvl1-fast"]()
    peaks = [np.percentile(np.hypot(*np.moveaxis(fn(grey[i], grey[i + 1]), -1, 0)), 99.5)
             for i in range(47)]
    assert max(peaks) >= 2.5  # >= 16 grey levels of the stored flow (+-20 px -> 0..255)
    assert sorted(peaks)[len(peaks) // 4] < 1.0  # and near 0 while the object rests


def test_pretrain_classes_are_other_classes():
    mini = {s.name for s in synthetic.miniature_specs(12)}
    pre = synthetic.pretrain_specs(8)
    assert len({s.name for s in pre}) == 8 and not mini & {s.name for s in pre}
    assert all(s.group == -1 for s in pre)  # random tint: the group colour is not a cue


def test_designs_write_their_classes(tmp_path):
    synthetic.main([str(tmp_path / "m"), "--design", "miniature", "--classes", "12",
                    "--clips-per-class", "2", "--frames", "20", "--width", "32",
                    "--height", "24"])
    names = (tmp_path / "m" / "splits" / "classInd.txt").read_text().split()
    assert "TriangleTiltPairSame" in names and "DiscLiftUpStriped" in names


def test_miniature_directions_survive_the_horizontal_flip_of_training():
    """Training flips frames left-right (flow x inverted): a class told apart from a group mate
    only by a horizontal direction would get the same flipped inputs as that mate."""
    for spec in synthetic.miniature_specs(12):
        mates = [m for m in synthetic.miniature_specs(12) if m.group == spec.group]
        for (dx, dy), _ in spec.cues:
            flipped = (-dx, dy)
            others = {d for m in mates for d, _ in m.cues if d != (dx, dy)}
            assert flipped not in others, spec.name


def test_texture_pretraining_classes_are_shape_and_texture_shown_from_the_first_frame():
    pre = synthetic.pretrain_texture_specs(16)
    assert {(s.shape, s.pattern) for s in pre} == {(shape, p) for shape in synthetic.SHAPES
                                                  for p in synthetic.PATTERNS}
    assert not {s.name for s in synthetic.miniature_specs(12)} & {s.name for s in pre}
    assert all(s.group == -1 and {c[1] for c in s.cues} == {s.pattern} for s in pre)
    # the object wears its texture from frame 0 (the miniature's objects only after a gap):
    # the striped and checked versions of the same clip differ in the first frame
    striped, checked = pre[0], pre[1]
    assert (striped.shape, striped.pattern, checked.pattern) == ("Disc", "Striped", "Checked")
    first = [synthetic.render_miniature_clip(s, np.random.default_rng([0, 0, 0]), 8, 64, 48)[0]
             for s in (striped, checked)]
    assert np.abs(first[0].astype(int) - first[1]).max() > 50
    plain = [synthetic.render_miniature_clip(
        replace(s, textured_from_start=False), np.random.default_rng([0, 0, 0]), 8, 64, 48)[0]
        for s in (striped, checked)]
    np.testing.assert_array_equal(plain[0], plain[1])
