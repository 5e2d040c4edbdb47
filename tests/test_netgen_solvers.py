"""Generated solvers (netgen/solvers.py): gradient clipping, the one solver setting the paper
does not name that the miniature decides (docs/REPRODUCTION.md, "gradient clipping")."""

from __future__ import annotations

import argparse

import pytest
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from netgen.emit import generate
from netgen.presets import SMALL


def _solvers(preset) -> dict[str, caffe_pb2.SolverParameter]:
    files = generate(preset, "synthetic", 12)
    return {path: text_format.Merge(text, caffe_pb2.SolverParameter())
            for path, text in files.items() if path.endswith("_solver.prototxt")}


def test_every_solver_clips_at_the_presets_value_and_none_without_it():
    clipped = _solvers(SMALL.replace(clip_gradients=7.5))
    assert len(clipped) > 20  # every variant, warm-up phases and groupers included
    assert {p: s.clip_gradients for p, s in clipped.items()} == dict.fromkeys(clipped, 7.5)
    plain = _solvers(SMALL.replace(clip_gradients=0.0))
    assert not [p for p, s in plain.items() if s.HasField("clip_gradients")]


def test_the_miniature_names_clipping_and_fusion_channels_only_when_not_the_presets():
    from co2fi_tools import miniature

    def changes(*argv: str) -> dict:
        ap = argparse.ArgumentParser()
        miniature.add_arguments(ap)
        return miniature.preset_changes(ap.parse_args(list(argv)))

    assert "clip_gradients" not in changes()
    assert changes("--clip-gradients", "3")["clip_gradients"] == 3.0
    assert "fusion_channels" not in changes()
    assert changes("--fusion-channels", "1")["fusion_channels"] == 1


def test_a_negative_clip_is_a_one_line_error(capsys):
    from co2fi_tools import demo

    with pytest.raises(SystemExit) as exit_:  # argparse's usage error
        demo.main(["--clip-gradients", "-1", "--out", "unused"])
    assert exit_.value.code == 2
    assert "--clip-gradients must be 0 (none) or more, got -1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--fusion-channels", "0", "--out", "unused"])
    assert exit_.value.code == 2
    assert "--fusion-channels must be 1 or more, got 0" in capsys.readouterr().err


def test_the_pretrained_trunk_is_never_clipped_and_keeps_its_cache_key():
    """The trunks cached before clipping existed stay valid: their keys (the folders under
    ~/.cache/co2fi/pretrain/) are those of docs/MINIATURE.md, whatever the stages clip at."""
    from co2fi_tools import miniature

    textures = miniature.Pretraining()
    shapes = miniature.Pretraining(design=miniature.PRETRAIN_DESIGNS["shapes"][0], classes=8,
                                   clips_per_class=40)
    for pre, key in ((textures, "d7c842dcaf870065"), (shapes, "91e1f286713820dc")):
        assert miniature.pretrain_key(pre, "small", {"dropout": 0.0}) == key
        assert miniature.pretrain_key(pre, "small", {"dropout": 0.0, "clip_gradients": 4.0}) == key
        assert miniature.pretrain_key(pre, "small", {"dropout": 0.0, "fusion_channels": 1}) == key
