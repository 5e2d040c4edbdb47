"""tools/predict.py: one synthetic video, tiny nets with random weights, scored as evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from netgen import paper
from tests.conftest import requires_caffe

pytestmark = requires_caffe

S = 16
CLASSES = ["Archery", "Biking", "Diving", "Fencing", "Golf", "Jump", "Kayaking"]


def _deploy(path: Path, inputs: dict[str, tuple[int, ...]], seed: int) -> Path:
    """Inputs -> (concat) -> pooled -> InnerProduct -> prob, random weights saved beside."""
    import caffe
    from caffe import layers as L
    from caffe import params as P

    n = caffe.NetSpec()
    tops = []
    for name, shape in inputs.items():
        setattr(n, name, L.Input(shape=dict(dim=list(shape))))
        tops.append(getattr(n, name))
    n.joined = L.Concat(*tops, axis=1) if len(tops) > 1 else L.Split(tops[0])
    n.pooled = L.Pooling(n.joined, pool=P.Pooling.AVE, kernel_size=4, stride=4)
    n.fc = L.InnerProduct(n.pooled, num_output=len(CLASSES),
                          weight_filler=dict(type="gaussian", std=0.5),
                          bias_filler=dict(type="uniform", min=-1, max=1))
    n.prob = L.Softmax(n.fc)
    path.write_text(str(n.to_proto()))
    caffe.set_random_seed(seed)
    caffe.Net(str(path), caffe.TEST).save(str(path.with_suffix(".caffemodel")))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from data_prep import synthetic

    root = tmp_path_factory.mktemp("predict")
    video = synthetic.generate(root / "data", num_classes=1, clips_per_class=2, num_frames=40,
                               width=32, height=24, seed=1)[0]
    flow_c = 2 * paper.FLOW_STACK
    single = paper.TEST_PERIODS * paper.FUSION_STEPS
    nets = root / "nets"
    nets.mkdir()
    fusion_inputs = {f"rgb_t{t}": (paper.TEST_PERIODS, 3, S, S) for t in range(1, 6)}
    fusion_inputs.update({f"flow_t{t}": (paper.TEST_PERIODS, flow_c, S, S) for t in range(1, 6)})
    models = {
        "rgb": _deploy(nets / "tiny_rgb_deploy.prototxt", {"data": (single, 3, S, S)}, 1),
        "flow": _deploy(nets / "tiny_flow_deploy.prototxt", {"data": (single, flow_c, S, S)}, 2),
        "fusion": _deploy(nets / "tiny_asyn_d2_rgb_centred_deploy.prototxt", fusion_inputs, 3),
    }
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    return root, video, models


def _run(tiny, capsys, *extra):
    from co2fi_tools.evaluation.predict import main

    root, video, models = tiny
    out = root / "out.json"
    argv = [str(video), "--rgb-model", str(models["rgb"]),
            str(models["rgb"].with_suffix(".caffemodel")),
            "--flow-model", str(models["flow"]), str(models["flow"].with_suffix(".caffemodel")),
            "--fusion-model", str(models["fusion"]),
            str(models["fusion"].with_suffix(".caffemodel")),
            "--classes", str(root / "classes.txt"), "--size", "native", "--flow", "farneback",
            "--json", str(out), *extra]
    assert main(argv) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_prints_the_top5_classes_by_name_of_the_summed_period_scores(tiny, capsys):
    printed, result = _run(tiny, capsys)
    scores = {k: np.array(v) for k, v in result["period_scores"].items()}
    assert sorted(scores) == ["tiny_asyn_d2_rgb_centred", "tiny_flow", "tiny_rgb"]
    assert all(s.shape == (paper.TEST_PERIODS, len(CLASSES)) for s in scores.values())
    fused = sum(s.sum(axis=0) for s in scores.values())
    best = np.argsort(-fused)[:5]
    lines = printed.splitlines()[1:]
    assert lines == [f"{r}. {CLASSES[i]} (class {i}): {fused[i]:.3f}"
                     for r, i in enumerate(best, 1)]
    assert [t["name"] for t in result["top5"]] == [CLASSES[i] for i in best]


def one_video_experiment(tiny, frames: Path, tmp_path: Path, **settings):
    """The tiny video's kept ``frames`` as the one-video test set of an experiment folder."""
    from co2fi_tools.pipeline import Experiment

    _, video, _ = tiny
    data = tmp_path / "data"
    (data / "lists").mkdir(parents=True)
    (data / "frames").symlink_to(frames)
    (data / "lists" / "rgb_val_split1.txt").write_text(f"{video.stem} 40 0\n")
    (data / "lists" / "flow_val_split1.txt").write_text(f"{video.stem} 39 0\n")
    return Experiment("synthetic", data, len(CLASSES), tmp_path / "exp", preset="tiny",
                      **settings)


def test_periods_are_scored_exactly_as_the_evaluation_scores_them(tiny, capsys, tmp_path):
    from dataclasses import replace

    from co2fi_tools.evaluation.evaluate import evaluate_variant
    from co2fi_tools.evaluation.scores import load_scores
    from netgen.variants import get_variant

    root, video, models = tiny
    _, result = _run(tiny, capsys, "--keep-frames", str(tmp_path / "frames"), "--delta", "2")
    exp = one_video_experiment(tiny, tmp_path / "frames", tmp_path)
    # the evaluation reads what a variant is from its record (here: the tiny nets' own)
    records = {"rgb": replace(get_variant("baseline_rgb"), name="tiny_rgb"),
               "flow": replace(get_variant("baseline_flow"), name="tiny_flow"),
               "fusion": replace(get_variant("baseline_asyn_d1_rgb_centred"), delta=2,
                                 name="tiny_asyn_d2_rgb_centred")}
    for kind, record in records.items():
        variant = record.name
        exp.net_file(variant, "deploy").parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(models[kind], exp.net_file(variant, "deploy"))
        written = evaluate_variant(exp, record, models[kind].with_suffix(".caffemodel"),
                                   CLASSES, tmp_path / f"{variant}.h5")
        (evaluated,) = load_scores(written).scores.values()
        np.testing.assert_allclose(evaluated[0].sum(axis=0),
                                   np.array(result["period_scores"][variant]).sum(axis=0),
                                   rtol=1e-5)


def test_experiment_folder_gives_models_and_class_names(tiny, capsys, tmp_path):
    from co2fi_tools.evaluation.predict import main
    from data_prep.lists import write_class_names

    root, video, models = tiny
    out = tmp_path / "exp"
    write_class_names(tmp_path / "data" / "lists", CLASSES)
    for kind in ("rgb", "flow"):
        variant = f"baseline_{kind}"
        deploy = out / "nets" / "prototxt" / "small" / "synthetic" / f"{variant}_deploy.prototxt"
        deploy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(models[kind], deploy)
        (out / "runs" / variant).mkdir(parents=True)
        shutil.copy(models[kind].with_suffix(".caffemodel"),
                    out / "runs" / variant / "final.caffemodel")
        (out / "runs" / variant / "config.json").write_text(
            json.dumps({"data_root": str(tmp_path / "data")}))
    rc = main([str(video), "--experiment", str(out), "--method", "Two-stream baseline",
               "--size", "native", "--flow", "farneback"])
    printed = capsys.readouterr().out
    assert rc == 0 and "2 model(s) (baseline_rgb, baseline_flow)" in printed
    assert len(printed.splitlines()) == 6
    assert all(line.split(". ", 1)[1].split(" (class")[0] in CLASSES
               for line in printed.splitlines()[1:])


@pytest.mark.parametrize("argv, message", [
    (["v.avi"], "no model: give --rgb-model"),
    (["v.avi", "--rgb-model", "nope.prototxt", "w.caffemodel"], "nope.prototxt: deploy net"),
    (["v.avi", "--experiment", "x"], "--experiment needs --method"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    from co2fi_tools.evaluation.predict import main

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_missing_video_and_wrong_class_count_are_named(tiny, capsys, tmp_path):
    from co2fi_tools.evaluation.predict import main

    root, video, models = tiny
    rgb = [str(models["rgb"]), str(models["rgb"].with_suffix(".caffemodel"))]
    assert main([str(tmp_path / "none.avi"), "--rgb-model", *rgb]) == 1
    assert "none.avi: video not found" in capsys.readouterr().err
    (tmp_path / "classInd.txt").write_text("1 A\r\n2 B\r\n")
    assert main([str(video), "--rgb-model", *rgb, "--classes", str(tmp_path / "classInd.txt"),
                 "--size", "native", "--flow", "farneback"]) == 1
    assert "2 class names for nets with 7 classes" in capsys.readouterr().err
