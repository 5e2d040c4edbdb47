"""Our Caffe trains: a Python loss layer and an LSTM, through pycaffe and the `caffe` tool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import requires_caffe

pytestmark = requires_caffe

ITERS = 120


def _write_net_and_solver(tmp_path: Path) -> Path:
    import caffe
    from caffe import layers as L
    from caffe import params as P

    n = caffe.NetSpec()
    n.x, n.cont, n.target = L.Python(
        ntop=3,
        python_param=dict(
            module="tests.fixtures.engine_layers",
            layer="SequenceDataLayer",
            param_str=json.dumps({"steps": 4, "batch": 8, "dim": 3, "seed": 1}),
        ),
    )
    n.lstm = L.LSTM(
        n.x,
        n.cont,
        recurrent_param=dict(
            num_output=8,
            weight_filler=dict(type="uniform", min=-0.2, max=0.2),
            bias_filler=dict(type="constant", value=0),
        ),
    )
    n.last = L.Slice(n.lstm, slice_param=dict(axis=0, slice_point=[3]), ntop=2)[1]
    n.pred = L.InnerProduct(n.last, num_output=1, axis=2, weight_filler=dict(type="xavier"))
    n.loss = L.Python(
        n.pred,
        n.target,
        loss_weight=1,
        python_param=dict(module="tests.fixtures.engine_layers", layer="EuclideanLossLayer"),
    )
    (tmp_path / "net.prototxt").write_text(str(n.to_proto()))
    solver = caffe.proto.caffe_pb2.SolverParameter(
        net=str(tmp_path / "net.prototxt"),
        base_lr=0.05,
        momentum=0.9,
        lr_policy="fixed",
        max_iter=ITERS,
        display=10,
        snapshot=ITERS,
        snapshot_prefix=str(tmp_path / "snap"),
        random_seed=3,
        solver_mode=P.Solver.CPU,
    )
    path = tmp_path / "solver.prototxt"
    path.write_text(str(solver))
    return path


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_sgd_solver_trains_python_loss_and_lstm(tmp_path: Path) -> None:
    import caffe

    solver = caffe.SGDSolver(str(_write_net_and_solver(tmp_path)))
    losses = []
    for _ in range(ITERS):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data.item()))
    assert solver.iter == ITERS
    assert _mean(losses[-20:]) < 0.5 * _mean(losses[:20])


def test_caffe_tool_trains_python_loss_and_lstm(tmp_path: Path) -> None:
    from co2fi_layers.caffe_env import caffe_binary, caffe_tool_env

    solver = _write_net_and_solver(tmp_path)
    proc = subprocess.run(
        [str(caffe_binary()), "train", f"--solver={solver}"],
        cwd=tmp_path,
        env=caffe_tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"Iteration \d+ .*loss = ([\d.e+-]+)", proc.stderr)]
    assert len(losses) >= 10, proc.stderr[-3000:]
    assert _mean(losses[-3:]) < 0.5 * _mean(losses[:3])
    assert (tmp_path / f"snap_iter_{ITERS}.caffemodel").exists()

