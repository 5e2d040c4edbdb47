"""co2fi_tools.evaluation.evaluate: how a video's periods become deploy-net batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from co2fi_tools.evaluation.evaluate import net_inputs, score_stream, variant_inputs
from co2fi_tools.stages import method_variants
from netgen.variants import Settings, get_variant
from tests.conftest import REPO_ROOT, requires_caffe
from tests.test_predict import tiny  # noqa: F401 - fixture


def _periods(periods: int = 12, steps: int = 5) -> dict[str, np.ndarray]:
    out = {}
    for stream, channels in (("rgb", 3), ("flow", 20)):
        for t in range(1, steps + 1):
            # value = 100 * period + step, so the layout can be read back
            values = 100 * np.arange(periods)[:, None, None, None] + t
            out[f"{stream}_t{t}"] = np.broadcast_to(values, (periods, channels, 2, 2)).astype(
                np.float32)
    return out


def test_single_stream_batch_is_every_step_of_every_period_period_major() -> None:
    data = variant_inputs(get_variant("co2fi_flow"), _periods(), ["data"])["data"]
    assert data.shape == (60, 20, 2, 2)
    assert [int(v) for v in data[:7, 0, 0, 0]] == [1, 2, 3, 4, 5, 101, 102]


def test_fusion_net_takes_its_own_steps() -> None:
    inputs = variant_inputs(get_variant("co2fi_asyn_d5_rgb_centred"), _periods(),
                            ["rgb_t3", "flow_t1"])
    assert set(inputs) == {"rgb_t3", "flow_t1"}
    assert inputs["rgb_t3"].shape == (12, 3, 2, 2) and int(inputs["rgb_t3"][1, 0, 0, 0]) == 103


def test_a_single_stream_net_of_seven_step_periods_takes_all_seven() -> None:
    data = net_inputs(_periods(steps=7), ["data"], "rgb", steps=7)["data"]
    assert data.shape == (84, 3, 2, 2)
    assert [int(v) for v in data[:8, 0, 0, 0]] == [1, 2, 3, 4, 5, 6, 7, 101]


def _names(method: str, settings: Settings | None = None) -> list[str]:
    return [v.name for v in method_variants(method, settings)]


def test_delta_of_a_variant_and_methods_to_nets() -> None:
    assert get_variant("baseline_asyn_d1_flow_centred").delta == 1
    assert get_variant("co2fi_no_coarseness_rgb").delta == 5
    assert _names("CO2FI+ASYN (Δ = 5)") == ["co2fi_asyn_d5_rgb_centred",
                                             "co2fi_asyn_d5_flow_centred"]
    assert _names("Two-stream baseline") == ["baseline_rgb", "baseline_flow"]


def test_fields_not_names_say_what_a_variant_is() -> None:
    fusion = get_variant("baseline_asyn_d1_flow_centred", Settings(steps=7))
    assert (fusion.kind, fusion.stream, fusion.delta, fusion.steps) == ("fusion", "flow", 1, 7)
    assert fusion.init == {"rgb": "baseline_rgb", "flow": "baseline_flow"}
    assert not fusion.needs_grouper
    assert score_stream(fusion) == "motion_centred"
    single = get_variant("co2fi_rgb", Settings(steps=7))
    assert (single.kind, single.stream, single.steps) == ("single", "rgb", 5)
    assert single.needs_grouper and single.init == {"grouper": "grouper_rgb"}
    assert score_stream(single) == "appearance"
    assert get_variant("grouper_flow").grouper and not get_variant("co2fi_flow").grouper


# --- weights that do not fit the deploy net are an error, not an untrained net's accuracy ---

NETS = REPO_ROOT / "prototxt" / "small" / "synthetic"


def _save_random(variant: str, path: Path) -> Path:
    import caffe

    caffe.Net(str(NETS / f"{variant}_deploy.prototxt"), caffe.TEST).save(str(path))
    return path


@requires_caffe
def test_weights_of_another_net_are_refused(tmp_path: Path) -> None:
    from co2fi_tools.evaluation.evaluate import DeployNet

    grouper = _save_random("grouper_rgb", tmp_path / "grouper.caffemodel")
    with pytest.raises(ValueError, match="no layer matches the net"):
        DeployNet(NETS / "baseline_rgb_deploy.prototxt", grouper)
    with pytest.raises(ValueError, match="weights file not found"):
        DeployNet(NETS / "baseline_rgb_deploy.prototxt", tmp_path / "missing.caffemodel")


@requires_caffe
def test_weights_missing_a_layer_or_with_other_shapes_are_refused(tmp_path: Path) -> None:
    from caffe.proto import caffe_pb2

    from co2fi_tools.evaluation.evaluate import DeployNet

    full = _save_random("baseline_rgb", tmp_path / "baseline.caffemodel")
    DeployNet(NETS / "baseline_rgb_deploy.prototxt", full)  # fits
    net = caffe_pb2.NetParameter()
    net.ParseFromString(full.read_bytes())
    kept = [layer for layer in net.layer if layer.name != "fc8"]
    del net.layer[:]
    net.layer.extend(kept)
    (tmp_path / "no_fc8.caffemodel").write_bytes(net.SerializeToString())
    with pytest.raises(ValueError, match="lacks 1 of the .* first 'fc8'"):
        DeployNet(NETS / "baseline_rgb_deploy.prototxt", tmp_path / "no_fc8.caffemodel")
    # the motion net's conv1_1 takes 20 channels: Caffe would abort, we name the layer
    with pytest.raises(ValueError,
                       match="layer conv1_1 takes 3 input channels .RGB. in the weights, 20 .flow"):
        DeployNet(NETS / "baseline_flow_deploy.prototxt", full)


@requires_caffe
def test_evaluate_cli_refuses_weights_of_another_net_in_one_line(tmp_path: Path, capsys) -> None:
    import shutil

    from co2fi_tools.evaluation.evaluate import main

    nets = tmp_path / "out" / "nets" / "prototxt" / "small" / "synthetic"
    nets.mkdir(parents=True)
    for stream in ("rgb", "flow"):
        shutil.copy(NETS / f"baseline_{stream}_deploy.prototxt", nets)
        run = tmp_path / "out" / "runs" / f"baseline_{stream}"
        run.mkdir(parents=True)
        _save_random(f"grouper_{stream}", run / "final.caffemodel")
    rc = main(["--out", str(tmp_path / "out"), "--data-root", str(tmp_path / "data"),
               "--dataset", "synthetic", "--num-classes", "10",
               "--method", "Two-stream baseline"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "no layer matches the net" in err
    assert not (tmp_path / "out" / "results.json").exists()


# --- fewer test periods (make claims): the deploy net reshaped, the periods Sec. 6.1 spreads ---

@requires_caffe
def test_fewer_test_periods_reshape_the_net_and_keep_the_periods_they_share(tmp_path, capsys,
                                                                            tiny):  # noqa: F811
    import shutil
    from dataclasses import replace

    from co2fi_tools.evaluation.evaluate import evaluate_variant
    from co2fi_tools.evaluation.scores import load_scores
    from tests.test_predict import CLASSES, _run, one_video_experiment

    _, _, models = tiny
    _run(tiny, capsys, "--keep-frames", str(tmp_path / "frames"), "--delta", "2")
    records = {"rgb": replace(get_variant("baseline_rgb"), name="tiny_rgb"),
               "fusion": replace(get_variant("baseline_asyn_d1_rgb_centred"), delta=2,
                                 name="tiny_asyn_d2_rgb_centred")}
    per_period = {"rgb": 5, "fusion": 1}  # a single-stream net scores each of a period's frames
    for kind, record in records.items():
        scored = {}
        for periods in (1, 3, 12):
            exp = one_video_experiment(tiny, tmp_path / "frames", tmp_path / f"{kind}{periods}",
                                       test_periods=periods)
            exp.net_file(record.name, "deploy").parent.mkdir(parents=True)
            shutil.copy(models[kind], exp.net_file(record.name, "deploy"))
            written = evaluate_variant(exp, record, models[kind].with_suffix(".caffemodel"),
                                       CLASSES, tmp_path / f"{kind}{periods}.h5")
            (scored[periods],) = load_scores(written).scores.values()
            assert scored[periods].shape == (1, periods * per_period[kind], len(CLASSES))
        # one period is centred where the middle one of three is: the same frames, same scores
        k = per_period[kind]
        np.testing.assert_allclose(scored[1][0], scored[3][0, k:2 * k], rtol=1e-5)
        assert not np.allclose(scored[3][0, :k], scored[3][0, k:2 * k])


def test_test_periods_below_one_are_refused_and_fingerprinted_only_when_not_the_papers(
        tmp_path) -> None:
    from co2fi_tools.experiment import Experiment, experiment_settings

    with pytest.raises(ValueError, match="test periods must be >= 1, got 0"):
        Experiment("synthetic", tmp_path, 4, tmp_path, test_periods=0)
    assert "test_periods" not in experiment_settings(Experiment("synthetic", tmp_path, 4, tmp_path))
    assert experiment_settings(Experiment("synthetic", tmp_path, 4, tmp_path,
                                          test_periods=4))["test_periods"] == 4
