"""Bad arguments raise a clear ValueError (CLI: exit 2) before any file is written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe in tests

from netgen.__main__ import main  # noqa: E402
from netgen.emit import generate  # noqa: E402
from netgen.nets import NetOptions, asynchronous_fusion_net, coarse_to_fine_net  # noqa: E402
from netgen.presets import SMALL, get_preset  # noqa: E402
from netgen.readings import Readings  # noqa: E402
from netgen.variants import Settings, build  # noqa: E402

OPT = NetOptions(preset=SMALL, num_classes=10)


def test_unknown_variant_and_preset():
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        build("nope", OPT)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ValueError, match="unknown stream"):
        coarse_to_fine_net("depth", OPT)
    with pytest.raises(ValueError, match="phase"):
        coarse_to_fine_net("rgb", NetOptions(preset=SMALL, phase="val"))


def test_too_few_classes_for_a_top5_group():
    with pytest.raises(ValueError, match="top-5"):
        generate(SMALL, "synthetic", 4)
    with pytest.raises(ValueError, match="top-5"):
        coarse_to_fine_net("rgb", NetOptions(preset=SMALL, num_classes=4))


@pytest.mark.parametrize("delta", [0, -1, 1000])
def test_delta_out_of_range(delta):
    with pytest.raises(ValueError, match="delta"):
        asynchronous_fusion_net("rgb", OPT, delta=delta)
    with pytest.raises(ValueError, match="delta"):
        generate(SMALL, "synthetic", 10, Settings(delta=delta))


@pytest.mark.parametrize("steps", [0, 4, 11])
def test_fusion_steps_out_of_range(steps):
    with pytest.raises(ValueError, match="steps T"):
        asynchronous_fusion_net("flow", OPT, steps=steps)
    with pytest.raises(ValueError, match="steps T"):
        generate(SMALL, "synthetic", 10, Settings(steps=steps))


def test_group_weights_of_wrong_length():
    with pytest.raises(ValueError, match="alpha has 2 weights"):
        generate(SMALL, "synthetic", 10, Settings(alpha=(0.1, 1.0)))
    with pytest.raises(ValueError, match="group_sizes"):
        generate(SMALL, "synthetic", 10, Settings(group_sizes=(5, 1)))


def test_bad_readings_and_sizes():
    with pytest.raises(ValueError, match="side_slicing"):
        Readings(side_slicing="random")
    with pytest.raises(ValueError, match="unknown preset field"):
        SMALL.replace(fc9=3)
    with pytest.raises(ValueError, match="multiple of 32"):
        coarse_to_fine_net("rgb", NetOptions(preset=SMALL.replace(input_size=48)))


@pytest.mark.parametrize("argv", [
    ["--variant", "nope"],
    ["--preset", "huge"],
    ["--synthetic-classes", "4"],
    ["--delta", "0"],
    ["--steps", "4"],
    ["--alpha", "0.1,1"],
    ["--size", "fc9=3"],
])
def test_cli_rejects_before_writing(tmp_path, capsys, argv):
    out = tmp_path / "out"
    assert main([*argv, "--preset", "small", "--out", str(out)]) == 2
    assert "netgen: error:" in capsys.readouterr().err
    assert not out.exists()
