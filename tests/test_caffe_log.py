"""Caffe glog training output -> per-output series (format of BVLC solver.cpp/sgd_solver.cpp)."""

import math
import subprocess
import sys
import textwrap

import pytest

from co2fi_tools.reporting import caffe_log
from tests.conftest import requires_caffe

# Exactly what solver.cpp / sgd_solver.cpp print, with glog's prefix; a Python layer's print and
# another thread's glog line interleaved; then a run resumed from the iteration-40 snapshot.
LOG = """\
I1124 10:00:00.000001  4242 solver.cpp:330] Iteration 0, Testing net (#0)
I1124 10:00:01.000001  4242 solver.cpp:397]     Test net output #0: accuracy = 0.02
I1124 10:00:01.000001  4242 solver.cpp:397]     Test net output #1: loss_fusion = 4.6 (* 0.0396 = 0.182 loss)
I1124 10:00:02.000001  4242 solver.cpp:218] Iteration 0 (-nan iter/s, 1.5s/20 iters), loss = 6.2
I1124 10:00:02.000001  4242 solver.cpp:237]     Train net output #0: loss_c2f_t1 = 2.3 (* 0.0198 = 0.0455 loss)
I1124 10:00:02.000001  4242 solver.cpp:237]     Train net output #1: loss_fusion = 4.61 (* 0.0396 = 0.183 loss)
I1124 10:00:02.000001  4242 solver.cpp:237]     Train net output #2: train_accuracy = 0
I1124 10:00:02.000001  4242 sgd_solver.cpp:105] Iteration 0, lr = 0.01
period layer: loaded 16 periodsI1124 10:00:03.000001  4250 data_layer.cpp:73] Restarting data prefetching from start.
I1124 10:00:20.000001  4242 solver.cpp:218] Iteration 20 (1.2 iter/s, 16.7s/20 iters), loss = 5.9
I1124 10:00:20.000001  4242 solver.cpp:237]     Train net output #0: loss_c2f_t1 = 2.1 (* 0.0198 = 0.0416 loss)
I1124 10:00:20.000001  4242 solver.cpp:237]     Train net output #1: loss_fusion = 4.4 (* 0.0396 = 0.174 loss)
I1124 10:00:20.000001  4242 solver.cpp:237]     Train net output #2: train_accuracy = 0.0625
I1124 10:00:20.000001  4242 sgd_solver.cpp:105] Iteration 20, lr = 0.01
I1124 10:00:40.000001  4242 solver.cpp:218] Iteration 40 (1.1 iter/s, 18s/20 iters), loss = 5.5
I1124 10:00:40.000001  4242 solver.cpp:237]     Train net output #0: loss_c2f_t1 = 1.9 (* 0.0198 = 0.0376 loss)
I1124 10:00:40.000001  4242 sgd_solver.cpp:105] Iteration 40, lr = 0.001
I1124 10:00:41.000001  4242 solver.cpp:330] Iteration 60, Testing net (#0)
I1124 10:00:42.000001  4242 solver.cpp:397]     Test net output #0: accuracy = 0.3
I1124 10:00:42.000001  4242 solver.cpp:218] Iteration 60 (1 iter/s, 20s/20 iters), loss = 5.0
I1124 10:00:42.000001  4242 solver.cpp:237]     Train net output #0: loss_c2f_t1 = 1.7 (* 0.0198 = 0.0337 loss)
F1124 10:00:43.000001  4242 syncedmem.cpp:56] Check failed: error == cudaSuccess (2 vs. 0)  out of memory
I1124 11:00:00.000001  5151 solver.cpp:292] Solving co2fi
I1124 11:00:00.000001  5151 solver.cpp:283] Restoring previous solver status from runs/x/snap_iter_40.solverstate
I1124 11:00:02.000001  5151 solver.cpp:218] Iteration 40 (0 iter/s, 0.9s/20 iters), loss = 5.45
I1124 11:00:02.000001  5151 solver.cpp:237]     Train net output #0: loss_c2f_t1 = 1.95 (* 0.0198 = 0.0386 loss)
I1124 11:00:02.000001  5151 sgd_solver.cpp:105] Iteration 40, lr = 0.001
I1124 11:00:20.000001  5151 solver.cpp:218] Iteration 50, loss = 5.2
I1124 11:00:20.000001  5151 solver.cpp:237]     Train net output #0: loss_c2f_t1 = 1.8 (* 0.0198 = 0.0356 loss)
I1124 11:00:20.000001  5151 sgd_solver.cpp:105] Iteration 50, lr = 1e-03
"""  # noqa: E501


def test_parses_every_series():
    log = caffe_log.parse_lines(LOG.splitlines())
    assert log.loss == {0: 6.2, 20: 5.9, 40: 5.45, 50: 5.2}
    assert log.lr == {0: 0.01, 20: 0.01, 40: 0.001, 50: 0.001}
    assert log.train["loss_c2f_t1"] == {0: 2.3, 20: 2.1, 40: 1.95, 50: 1.8}
    assert log.train_loss_weight == {"loss_c2f_t1": 0.0198, "loss_fusion": 0.0396}
    assert log.loss_heads() == ["loss_c2f_t1", "loss_fusion"]
    assert log.train["train_accuracy"] == {0: 0.0, 20: 0.0625}
    assert log.iter_per_s[20] == 1.2 and math.isnan(log.iter_per_s[0])
    assert log.test["accuracy"] == {0: 0.02}
    assert log.test["loss_fusion"] == {0: 4.6}
    assert log.test_loss_weight == {"loss_fusion": 0.0396}


def test_resumed_run_drops_values_from_the_snapshot_on():
    log = caffe_log.parse_lines(LOG.splitlines())
    assert log.restarts == [40]
    assert log.restored_from == ["runs/x/snap_iter_40.solverstate"]
    assert 60 not in log.loss and 60 not in log.test["accuracy"]  # lost with the crashed run
    assert log.last_iteration == 50


def test_second_test_net_is_kept_apart():
    lines = ["I1 solver.cpp:330] Iteration 100, Testing net (#1)",
             "I1 solver.cpp:397]     Test net output #0: accuracy = 0.5",
             "I1 solver.cpp:330] Iteration 100, Testing net (#0)",
             "I1 solver.cpp:397]     Test net output #0: accuracy = 0.25"]
    log = caffe_log.parse_lines(lines)
    assert log.test == {"accuracy#1": {100: 0.5}, "accuracy": {100: 0.25}}


def test_file_without_caffe_output_is_an_error(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match=r"train\.log: no Caffe training output"):
        caffe_log.parse_log(path)
    with pytest.raises(FileNotFoundError, match="missing.log"):
        caffe_log.parse_log(tmp_path / "missing.log")


_TRAIN_SCRIPT = textwrap.dedent("""
    import os, sys, tempfile
    import caffe
    from caffe import layers as L
    caffe.set_mode_cpu()
    d = tempfile.mkdtemp()
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[4, 3]), dict(dim=[4])], ntop=2,
                                  data_filler=[dict(type="gaussian"), dict(type="constant")])
    n.fc = L.InnerProduct(n.data, num_output=2, weight_filler=dict(type="xavier"))
    n.loss_head = L.SoftmaxWithLoss(n.fc, n.label, loss_weight=0.5)
    n.accuracy = L.Accuracy(n.fc, n.label)
    open(d + "/net.prototxt", "w").write(str(n.to_proto()))
    open(d + "/solver.prototxt", "w").write(
        f'net: "{d}/net.prototxt"\\nbase_lr: 0.1\\nlr_policy: "step"\\ngamma: 0.1\\n'
        'stepsize: 4\\ndisplay: 2\\nmax_iter: 8\\ntest_iter: 1\\ntest_interval: 4\\n'
        f'snapshot_prefix: "{d}/s"\\nsnapshot_after_train: false\\n')
    solver = caffe.SGDSolver(d + "/solver.prototxt")
    solver.step(8)
""")


@requires_caffe
def test_real_caffe_output_parses(tmp_path):
    """The built Caffe's own glog output, as tools/train.py captures it (stderr)."""
    env = {"GLOG_logtostderr": "1", "GLOG_minloglevel": "0", "PATH": "/usr/bin:/bin"}
    env.update({k: v for k, v in __import__("os").environ.items()
                if k in ("PYTHONPATH", "LD_LIBRARY_PATH", "HOME")})
    proc = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = caffe_log.parse_lines(proc.stderr.splitlines())
    assert sorted(log.loss) == [0, 2, 4, 6]
    assert log.lr == {0: 0.1, 2: 0.1, 4: pytest.approx(0.01), 6: pytest.approx(0.01)}
    assert log.train_loss_weight == {"loss_head": 0.5}
    assert sorted(log.train["accuracy"]) == [0, 2, 4, 6]
    assert sorted(log.test["accuracy"]) == [0, 4]  # test_initialization
    assert log.test_loss_weight == {"loss_head": 0.5}
