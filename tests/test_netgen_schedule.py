"""The fusion stage's phases (netgen/schedule.py): a warm-up net whose towers do not move,
a joint net whose towers move at tower_lr_mult, and solvers that share the stage's budget."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")

import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

from netgen.__main__ import main as netgen_main  # noqa: E402
from netgen.emit import generate  # noqa: E402
from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import SMALL  # noqa: E402
from netgen.schedule import DEFAULT_SCHEDULE, JOINT, FusionSchedule  # noqa: E402
from netgen.solvers import solver  # noqa: E402
from netgen.testing import fill_inputs  # noqa: E402
from netgen.variants import Settings, get_variant  # noqa: E402

N = 10
OPT = NetOptions(preset=SMALL, num_classes=N, data_source="input", batch=2)
VARIANT = "co2fi_asyn_d5_rgb_centred"
HEAD = ("fuse_t1", "async_lstm", "async_score_t5")


def _step(tmp_path: Path, net: caffe_pb2.NetParameter) -> dict[str, np.ndarray]:
    """How much each parameter layer's first blob moved in one SGD step from fixed weights."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    net_path = tmp_path / f"{net.name}.prototxt"
    net_path.write_text(str(net))
    sp = solver(str(net_path), SMALL, str(tmp_path / "snap"))
    sp.ClearField("test_iter")
    sp.ClearField("test_interval")
    sp.solver_mode = sp.CPU
    sp.random_seed = 3
    solver_path = tmp_path / f"{net.name}_solver.prototxt"
    solver_path.write_text(str(sp))
    caffe.set_mode_cpu()
    s = caffe.SGDSolver(str(solver_path))
    fill_inputs(s.net, N, seed=1)
    before = {k: v[0].data.copy() for k, v in s.net.params.items()}
    s.step(1)
    return {k: np.abs(s.net.params[k][0].data - before[k]).max() for k in before}


def test_warmup_moves_the_head_only_and_joint_moves_towers_at_tower_lr_mult(tmp_path):
    v = get_variant(VARIANT)
    warm = _step(tmp_path / "w", _named(v.warmup(OPT), "warm"))
    joint = _step(tmp_path / "j", _named(v.make(OPT), "joint"))
    literal = _step(tmp_path / "l", _named(
        get_variant(VARIANT, Settings(schedule=FusionSchedule(JOINT))).make(OPT), "literal"))
    towers = [k for k in warm if k.startswith(("rgb_t3/", "flow_t"))
              and "grouper" not in k and "upsample" not in k]
    assert towers and all(warm[k] == 0 for k in towers)
    assert all(warm[k] > 0 for k in HEAD)
    # the same random fillers, the same batch: the joint net's towers take a tenth of the step
    moved = [k for k in towers if literal[k] > 1e-7]
    assert len(moved) > len(towers) // 2
    ratios = np.array([joint[k] / literal[k] for k in moved])
    assert np.allclose(ratios, DEFAULT_SCHEDULE.tower_lr_mult, rtol=0.05), ratios
    for k in HEAD:
        assert joint[k] == pytest.approx(literal[k], rel=1e-5)


def _named(net: caffe_pb2.NetParameter, name: str) -> caffe_pb2.NetParameter:
    net.name = name
    return net


def _files(settings: Settings | None = None) -> dict[str, str]:
    return generate(SMALL, "synthetic", N, settings, names=[VARIANT, "co2fi_rgb"])


def test_the_phases_share_the_stages_iterations_and_scale_its_rate():
    files = _files()
    base = "solvers/small/synthetic/"
    warm = text_format.Parse(_body(files[base + f"{VARIANT}_warmup_solver.prototxt"]),
                             caffe_pb2.SolverParameter())
    joint = text_format.Parse(_body(files[base + f"{VARIANT}_solver.prototxt"]),
                              caffe_pb2.SolverParameter())
    single = text_format.Parse(_body(files[base + "co2fi_rgb_solver.prototxt"]),
                               caffe_pb2.SolverParameter())
    assert warm.max_iter + joint.max_iter == SMALL.max_iter == single.max_iter
    assert warm.base_lr == pytest.approx(SMALL.base_lr * DEFAULT_SCHEDULE.warmup_lr_factor)
    assert joint.base_lr == pytest.approx(SMALL.base_lr * DEFAULT_SCHEDULE.joint_lr_factor)
    assert warm.net.endswith(f"{VARIANT}_warmup_train.prototxt")
    assert "prototxt/small/synthetic/co2fi_rgb_warmup_train.prototxt" not in files


def test_warmup_and_joint_nets_hold_the_same_parameters():
    """The joint phase starts from the warm-up's weights as they are: same layers, shapes."""
    files = _files()
    nets = {}
    for name in (f"{VARIANT}_warmup", VARIANT):
        net = text_format.Parse(_body(files[f"prototxt/small/synthetic/{name}_train.prototxt"]),
                                caffe_pb2.NetParameter())
        nets[name] = [(layer.name, layer.type, [p.name for p in layer.param])
                      for layer in net.layer]
    assert nets[f"{VARIANT}_warmup"] == nets[VARIANT]


def test_the_literal_one_phase_schedule_emits_no_warmup(tmp_path):
    assert netgen_main(["--preset", "small", "--variant", VARIANT, "--fusion-schedule", "joint",
                        "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.rglob("*.prototxt"))
    assert not [n for n in written if "warmup" in n]
    text = (tmp_path / "prototxt/small/synthetic" / f"{VARIANT}_train.prototxt").read_text()
    assert "lr_mult: 0.1" not in text


def test_bad_schedule_values_are_one_line_errors(capsys):
    assert netgen_main(["--preset", "small", "--warmup-fraction", "1.5", "--list"]) == 2
    assert "warmup_fraction must lie in (0, 1), not 1.5" in capsys.readouterr().err
    with pytest.raises(ValueError, match="fusion schedule 'both'"):
        FusionSchedule("both")
    with pytest.raises(ValueError, match="tower_lr_mult must be 0 or more"):
        dataclasses.replace(DEFAULT_SCHEDULE, tower_lr_mult=-0.1)
    dataclasses.replace(DEFAULT_SCHEDULE, tower_lr_mult=0)  # towers frozen in both phases


def test_split_iterations():
    s = FusionSchedule(warmup_fraction=0.5)
    assert s.split_iterations(100) == (50, 50)
    assert s.split_iterations(3) == (2, 1)
    assert FusionSchedule(warmup_fraction=0.99).split_iterations(10) == (9, 1)
    assert FusionSchedule(JOINT).split_iterations(7) == (0, 7)
    with pytest.raises(ValueError, match="at least 2 iterations"):
        s.split_iterations(1)


def _body(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
