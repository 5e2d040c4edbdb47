"""co2fi_tools.reporting.fusion_probe: the cues of a clip drawn again as the generator drew them,
and probes that decode what is linearly there (a cue) and not what is not (the XOR of two)."""

from __future__ import annotations

import numpy as np

from co2fi_tools.reporting import fusion_probe
from data_prep import synthetic


def test_clip_cues_are_the_cues_the_renderer_drew(monkeypatch) -> None:
    drawn = {}
    real_texture, real_timeline = synthetic._texture, synthetic.miniature_timeline

    def texture(pattern, *args, **kw):
        drawn["pattern"] = pattern
        return real_texture(pattern, *args, **kw)

    def timeline(num_frames, rng):
        drawn["timeline"] = real_timeline(num_frames, rng)
        return drawn["timeline"]

    monkeypatch.setattr(synthetic, "_texture", texture)
    monkeypatch.setattr(synthetic, "miniature_timeline", timeline)
    specs = synthetic.miniature_specs(12)
    pairs = [(label, s) for label, s in enumerate(specs) if synthetic.class_kind(s) == "pair"]
    assert [s.name.endswith("PairSwap") for _, s in pairs] == [False, True, False, True]
    seen = set()
    for label, spec in pairs:
        for clip in range(6):
            synthetic.render_miniature_clip(spec, np.random.default_rng([0, label, clip]), 48,
                                            32, 24)
            cues = fusion_probe.clip_cues(spec, label, clip, 48)
            assert synthetic.PATTERNS[cues.texture] == drawn["pattern"]
            assert cues.timeline == drawn["timeline"]
            # the class is the XOR of the two cues: PairSame when they agree
            assert cues.pair_class == int(spec.name.endswith("PairSwap"))
            seen.add((cues.direction, cues.texture))
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


def _features(rng, direction, texture, noise=0.3):
    """Two linear codes (one a cue) in 8 noisy dimensions."""
    x = rng.normal(0, noise, size=(direction.size, 8))
    x[:, 0] += 2 * direction - 1
    x[:, 1] += 2 * texture - 1
    return x


def test_probes_decode_each_cue_but_not_their_xor_from_a_linear_code() -> None:
    rng = np.random.default_rng(0)

    def periods(n):
        d, t = rng.integers(0, 2, n), rng.integers(0, 2, n)
        x = _features(rng, d, t)
        return {"towers": x, "fused": x, "lstm": np.c_[x, (d != t) * 2.0 - 1],
                "group": np.repeat([2, 3], n // 2), "direction": d, "texture": t,
                "class": (d != t).astype(int), "both": np.arange(n) % 2 == 0}

    got = fusion_probe.probe(periods(400), periods(400))
    for depth in ("towers", "fused", "lstm"):
        assert got[depth]["direction"]["all"] > 0.95 and got[depth]["texture"]["all"] > 0.95
    assert got["towers"]["class"]["all"] < 0.65  # both cues there, their XOR not linear
    assert got["lstm"]["class"]["all"] > 0.95  # a head that combined them


def test_texture_probe_reads_each_videos_texture_and_scores_blobs(tmp_path) -> None:
    from co2fi_tools.miniature import prepare_data
    from co2fi_tools.reporting import texture_probe
    from data_prep.splits import read_class_index

    data = tmp_path / "data"
    prepare_data(data, classes=4, clips=3, frames=40, flow="farneback", workers=1, seed=0)
    names = read_class_index(data / "splits" / "classInd.txt")
    images, textures = texture_probe.textured_frames(data, "train", 16)
    assert images.shape == (8, 3, 16, 16)  # 4 product classes x 2 training clips
    labels = [line.split()[2] for line in
              (data / "lists" / "rgb_train_split1.txt").read_text().splitlines()]
    assert [synthetic.PATTERNS[t] for t in textures] == [
        next(p for p in synthetic.PATTERNS if names[int(k)].endswith(p)) for k in labels]
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    blobs = {"coded": np.c_[2.0 * y - 1 + rng.normal(0, 0.3, 200), rng.normal(size=(200, 5))],
             "blind": rng.normal(size=(200, 6))}
    got = texture_probe.probe({k: v[:100] for k, v in blobs.items()}, y[:100],
                              {k: v[100:] for k, v in blobs.items()}, y[100:])
    assert got["coded"] > 0.95 and 0.3 < got["blind"] < 0.7
