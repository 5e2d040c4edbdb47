"""Faults of evaluation and prediction: weights that do not fit the net (modality, class count,
truncated file) named in one line before Caffe sees them; unreadable or mismatched partial score
files; a full disk; malformed results files; the accuracies printed."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from co2fi_tools.evaluation import scores
from co2fi_tools.reporting import compare
from co2fi_tools.weights.weight_fit import NetShapes, WeightsMisfit, misfits
from tests.conftest import requires_caffe

S = 8


def _deploy(path: Path, channels: int, classes: int, seed: int = 0) -> tuple[Path, Path]:
    """Input -> conv1 -> fc (classes) -> prob, random weights saved beside."""
    import caffe
    from caffe import layers as L

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, channels, S, S]))
    n.conv1 = L.Convolution(n.data, num_output=4, kernel_size=3,
                            weight_filler=dict(type="gaussian", std=0.1))
    n.fc = L.InnerProduct(n.conv1, num_output=classes,
                          weight_filler=dict(type="gaussian", std=0.1))
    n.prob = L.Softmax(n.fc)
    path.write_text(str(n.to_proto()))
    caffe.set_random_seed(seed)
    weights = path.with_suffix(".caffemodel")
    caffe.Net(str(path), caffe.TEST).save(str(weights))
    return path, weights


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    return {"rgb4": _deploy(root / "rgb4.prototxt", 3, 4),
            "flow4": _deploy(root / "flow4.prototxt", 20, 4),
            "rgb10": _deploy(root / "rgb10.prototxt", 3, 10)}


@requires_caffe
def test_flow_weights_in_an_rgb_net_name_the_modality(nets):
    from co2fi_tools.evaluation.evaluate import DeployNet

    with pytest.raises(WeightsMisfit) as info:
        DeployNet(nets["rgb4"][0], nets["flow4"][1])
    assert str(info.value) == (
        f"{nets['flow4'][1]} does not fit {nets['rgb4'][0]}: layer conv1 takes 20 input "
        "channels (flow, 10 stacked fields) in the weights, 3 (RGB) in the net: weights of the "
        "other modality")


@requires_caffe
def test_weights_of_another_class_count_are_named(nets):
    from co2fi_tools.evaluation.evaluate import DeployNet

    with pytest.raises(WeightsMisfit, match="layer fc scores 4 classes in the weights, 10 in "
                                            "the net: weights of another class count"):
        DeployNet(nets["rgb10"][0], nets["rgb4"][1])


@requires_caffe
def test_fitting_weights_load_and_score(nets):
    import caffe

    from co2fi_tools.evaluation.evaluate import DeployNet

    net = DeployNet(nets["rgb4"][0], nets["rgb4"][1])
    ref = caffe.Net(str(nets["rgb4"][0]), str(nets["rgb4"][1]), caffe.TEST)
    np.testing.assert_array_equal(net.net.params["fc"][0].data, ref.params["fc"][0].data)
    assert net.num_classes == 4


@requires_caffe
@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_weights_file_is_named_not_a_caffe_abort(nets, tmp_path, keep):
    from co2fi_tools.evaluation.evaluate import DeployNet

    data = nets["rgb4"][1].read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(WeightsMisfit, match=r"cut\.caffemodel: .*truncated or corrupt"):
        DeployNet(nets["rgb4"][0], cut)


@requires_caffe
def test_predict_with_misfit_weights_is_one_line(nets, tmp_path, capsys):
    from co2fi_tools.evaluation.predict import main

    video = tmp_path / "v.avi"
    video.write_bytes(b"")  # checked before the video is read
    rc = main([str(video), "--rgb-model", str(nets["rgb10"][0]), str(nets["rgb4"][1])])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert err.startswith("predict: error: ") and f"fit {nets['rgb10'][0]}: layer fc scores 4 " \
        "classes in the weights, 10 in the net" in err


def test_legacy_v1_shapes_fit_and_blob_count_is_checked():
    net = NetShapes({"fc8": [(101, 4096), (101,)]}, {"fc8": "InnerProduct"}, set(), 101)
    assert misfits(net, {"fc8": [(1, 1, 101, 4096), (1, 1, 1, 101)]}) == []
    assert misfits(net, {"fc8": [(101, 4096)]}) == [
        "layer fc8 has 1 blobs in the weights, 2 in the net (bias_term differs?)"]
    assert misfits(net, {"fc7": [(3, 3)]}) == []  # only shared layers are compared
    assert misfits(net, {"fc8": [(101, 2048), (101,)]}) == [
        "layer fc8 blob 0: shape [101, 2048] in the weights, [101, 4096] in the net"]


# --- partial score files --------------------------------------------------------------------

IDS = ["v_a", "v_b", "v_c"]


def _writer(path, names=("A", "B"), **kw):
    return scores.ScoreWriter(path, streams=["appearance"], num_periods=2, labels=[0, 1, 1],
                              video_ids=IDS, class_names=list(names), dataset="synthetic",
                              split="1", net="n", iteration=10, **kw)


def test_truncated_partial_is_said_and_recomputed(tmp_path, capsys):
    path = tmp_path / "s.h5"
    w = _writer(path)
    w.write(0, {"appearance": np.ones((2, 2))})
    w.close()
    part = scores.partial_path(path)
    part.write_bytes(part.read_bytes()[:700])
    w = _writer(path)
    assert w.num_done == 0 and "unreadable" in w.restarted
    assert "s.h5.partial: unreadable" in capsys.readouterr().err
    for i in range(3):
        w.write(i, {"appearance": np.full((2, 2), i)})
    assert w.close() == path
    assert scores.load_scores(path).scores["appearance"][2, 0, 0] == 2


def test_wrong_class_count_partial_does_not_block_the_corrected_rerun(tmp_path):
    path = tmp_path / "s.h5"
    wrong = _writer(path, names=("A", "B", "C"))  # --num-classes 3 for a 2-class net:
    with pytest.raises(ValueError, match="scores shape"):  # the first write fails
        wrong.write(0, {"appearance": np.ones((2, 2))})
    wrong.close()
    assert scores.partial_path(path).exists()
    right = _writer(path)
    assert "class_names differ" in right.restarted
    for i in range(3):
        right.write(i, {"appearance": np.ones((2, 2))})
    assert right.close() == path


def test_disk_full_while_scoring_is_one_line_and_the_video_stays_undone(tmp_path, monkeypatch):
    path = tmp_path / "s.h5"
    w = _writer(path)
    w.write(0, {"appearance": np.ones((2, 2))})

    def full():
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(w._h5, "flush", full)
    with pytest.raises(OSError) as info:
        w.write(1, {"appearance": np.ones((2, 2))})
    assert str(info.value).endswith(
        "s.h5.partial: cannot write scores of video 1: no space left on device (disk full); "
        "rerun to resume")
    assert not w.done(1)
    monkeypatch.undo()
    w.close()
    again = _writer(path)
    assert again.done(0) and not again.done(1)
    again.close()


# --- results ----------------------------------------------------------------------------------

def test_compare_on_malformed_json_names_the_file(tmp_path, capsys):
    bad = tmp_path / "results.json"
    bad.write_text('{"schema": "co2fi-results/1", "results": [')
    assert compare.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"compare: {bad}: not valid JSON") and err.count("\n") == 1


def test_evaluate_prints_its_accuracies():
    from co2fi_tools.evaluation.evaluate import format_records

    record = {"method": "CO2FI", "stream": "two-stream", "dataset": "synthetic", "split": "1",
              "accuracy": 0.75, "mean_class_accuracy": 0.625, "top5": 1.0}
    assert format_records([record]) == ("CO2FI (two-stream, synthetic split 1): top-1 75.00%, "
                                        "mean class accuracy 62.50%, top-5 100.00%")
    json.dumps(record)


@requires_caffe
def test_wrong_num_classes_in_evaluation_is_named_before_any_score_file(nets, tmp_path):
    import shutil
    from dataclasses import replace

    from co2fi_tools.evaluation.evaluate import evaluate_variant
    from co2fi_tools.pipeline import Experiment
    from netgen.variants import get_variant

    exp = Experiment("synthetic", tmp_path / "data", 10, tmp_path / "exp", preset="tiny")
    deploy = exp.net_file("tiny_rgb", "deploy")
    deploy.parent.mkdir(parents=True)
    shutil.copy(nets["rgb4"][0], deploy)
    out = tmp_path / "scores" / "tiny_rgb.h5"
    with pytest.raises(ValueError, match="the net tiny_rgb scores 4 classes, this evaluation "
                                         r"has 10 \(--num-classes"):
        evaluate_variant(exp, replace(get_variant("baseline_rgb"), name="tiny_rgb"),
                         nets["rgb4"][1], [f"c{i}" for i in range(10)], out)
    assert not out.exists() and not scores.partial_path(out).exists()
