"""The towers of the five-input stream share their parameters (Eq. 6)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe in tests

import caffe  # noqa: E402

from netgen.nets import NetOptions  # noqa: E402
from netgen.presets import SMALL  # noqa: E402
from netgen.solvers import solver  # noqa: E402
from netgen.testing import fill_inputs, load  # noqa: E402
from netgen.variants import build  # noqa: E402

N = 10
OPT = NetOptions(preset=SMALL, num_classes=N, data_source="input", batch=2)


def _tower_layers(net, tower):
    return sorted(k[len(tower) + 1:] for k in net.params if k.startswith(tower + "/"))


def test_five_towers_share_blob_memory():
    net = load(build("co2fi_asyn_d5_rgb_centred", OPT))
    layers = _tower_layers(net, "flow_t1")
    assert "conv1_1" in layers and "c2f_lstm" in layers and "fc1_coarse" in layers
    assert "grouper_conv1" in layers
    for t in range(2, 6):
        assert _tower_layers(net, f"flow_t{t}") == layers
        for layer in layers:
            first, other = net.params[f"flow_t1/{layer}"], net.params[f"flow_t{t}/{layer}"]
            for a, b in zip(first, other, strict=True):
                assert np.shares_memory(a.data, b.data), (t, layer)
    # the centre tower of the other stream is separate
    assert not np.shares_memory(net.params["rgb_t3/conv1_2"][0].data,
                                net.params["flow_t1/conv1_2"][0].data)


def test_towers_equal_after_a_solver_step(tmp_path):
    net_path = tmp_path / "net.prototxt"
    net_path.write_text(str(build("baseline_asyn_d5_flow_centred", OPT)))
    sp = solver(str(net_path), SMALL, str(tmp_path / "snap"))
    sp.ClearField("test_iter")
    sp.ClearField("test_interval")
    sp.solver_mode = sp.CPU
    (tmp_path / "solver.prototxt").write_text(str(sp))
    caffe.set_mode_cpu()
    s = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    fill_inputs(s.net, N)
    before = s.net.params["rgb_t1/conv1_1"][0].data.copy()
    s.step(1)
    after = s.net.params["rgb_t1/conv1_1"][0].data
    assert not np.allclose(before, after), "the shared weights moved"
    for t in range(2, 6):
        for layer in ("conv1_1", "conv5_3", "fc7", "fc8"):
            np.testing.assert_array_equal(s.net.params[f"rgb_t{t}/{layer}"][0].data,
                                          s.net.params[f"rgb_t1/{layer}"][0].data)
    assert "flow_t3/conv1_1" in s.net.params


def _param_names(proto, layer):
    return [p.name for p in next(x for x in proto.layer if x.name == layer).param]


def test_each_lstm_unit_has_its_own_fc_in_single_nets_and_towers():
    """"an additional fully connected layer is added to the output of each LSTM unit": one FC
    per step, the same layers (names, shapes) in a single-stream net and in every tower, so
    that a trained net's FCs go one to one into the towers; the towers of the five-input
    stream share step t's FC among themselves, never across steps."""
    single = load(build("co2fi_flow", OPT))
    fcs = [f"c2f_score_t{t}" for t in range(1, 4)]
    assert all(not np.shares_memory(single.params[a][0].data, single.params[b][0].data)
               for a in fcs for b in fcs if a != b)
    proto = build("co2fi_asyn_d5_rgb_centred", OPT)
    fusion = load(proto)
    for tower in ["rgb_t3"] + [f"flow_t{i}" for i in range(1, 6)]:
        layers = _tower_layers(fusion, tower)
        assert [k for k in layers if "score" in k] == fcs, tower
        for layer in fcs:
            assert ([b.data.shape for b in fusion.params[f"{tower}/{layer}"]]
                    == [b.data.shape for b in single.params[layer]])
    for t in range(1, 4):
        assert _param_names(proto, f"flow_t2/c2f_score_t{t}") == [
            f"flow/c2f_score_t{t}/0", f"flow/c2f_score_t{t}/1"]
        assert _param_names(proto, f"rgb_t3/c2f_score_t{t}") == ["", ""]  # unnamed: own
        for i in range(2, 6):
            assert np.shares_memory(fusion.params[f"flow_t1/c2f_score_t{t}"][0].data,
                                    fusion.params[f"flow_t{i}/c2f_score_t{t}"][0].data)
    assert not np.shares_memory(fusion.params["flow_t1/c2f_score_t1"][0].data,
                                fusion.params["flow_t1/c2f_score_t2"][0].data)
    asyn = [f"async_score_t{t}" for t in range(1, 6)]
    assert all(not np.shares_memory(fusion.params[a][0].data, fusion.params[b][0].data)
               for a in asyn for b in asyn if a != b)


def test_shared_step_scores_reading_shares_one_fc_everywhere():
    from netgen.readings import Readings

    opt = NetOptions(preset=SMALL, num_classes=N, data_source="input", batch=2,
                     readings=Readings(step_scores="shared"))
    single = load(build("co2fi_rgb", opt))
    for t in (2, 3):
        assert np.shares_memory(single.params["c2f_score_t1"][0].data,
                                single.params[f"c2f_score_t{t}"][0].data)
    fusion = load(build("co2fi_asyn_d5_flow_centred", opt))
    assert np.shares_memory(fusion.params["rgb_t1/c2f_score_t1"][0].data,
                            fusion.params["rgb_t4/c2f_score_t3"][0].data)
    assert np.shares_memory(fusion.params["async_score_t1"][0].data,
                            fusion.params["async_score_t5"][0].data)
    assert not np.shares_memory(fusion.params["flow_t3/c2f_score_t1"][0].data,
                                fusion.params["rgb_t1/c2f_score_t1"][0].data)
