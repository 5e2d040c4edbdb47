"""Score one video as the evaluation does and print its top-5 classes (tools/predict.py).

The video is extracted (frames + optical flow, data_prep.extract) into a temporary folder (or
``--keep-frames``), its ``paper.TEST_PERIODS`` = 12 periods are sampled exactly as the
test-phase PeriodDataLayer samples them for evaluation
(co2fi_tools.evaluation.evaluate.period_source), every model scores them, and the raw scores are
summed over periods and models (Sec. 6.1; co2fi_tools.evaluation.fusion). Models are deploy nets
with weights:

    --rgb-model / --flow-model DEPLOY CAFFEMODEL     Table 1 single-stream nets
    --fusion-model DEPLOY CAFFEMODEL (repeatable)    Table 2/3 appearance-/motion-centred nets
    --experiment OUT --method NAME                   the nets a run_experiment folder trained

Class names: ``--classes`` (UCF101's classInd.txt, a classes.txt of one name a line, or a folder
holding either or HMDB51's split files); with ``--experiment``, the dataset's lists/classes.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netgen import paper

TOP_K = 5


@dataclass(frozen=True)
class Model:
    kind: str  # "rgb", "flow" (single-stream) or "fusion"
    deploy: Path
    weights: Path
    delta: int = paper.DELTA
    #: T: steps of the periods it scores (fusion nets: as they were generated).
    steps: int = paper.FUSION_STEPS

    @property
    def name(self) -> str:
        return self.deploy.name.removesuffix(".prototxt").removesuffix("_deploy")

    @property
    def stream(self) -> str | None:
        """The stream of a single-stream model; None for a fusion model."""
        return None if self.kind == "fusion" else self.kind


def _generated_delta(deploy: Path) -> int:
    """Delta of a deploy net netgen generated (named after its variant), else paper.DELTA."""
    from netgen.variants import get_variant  # loads pycaffe: after main's GLOG settings

    try:
        return get_variant(deploy.name.removesuffix(".prototxt").removesuffix("_deploy")).delta
    except ValueError:
        return paper.DELTA


def experiment_models(out: Path, method: str) -> tuple[list[Model], Path | None]:
    """The deploy nets and final weights of ``method`` in a run_experiment folder, and the
    dataset folder its runs trained on (for the class names)."""
    from co2fi_tools.experiment import SETTINGS_FILE
    from co2fi_tools.stages import METHODS, method_variants
    from netgen.variants import FUSION, Settings

    if method not in METHODS:
        raise ValueError(f"--method {method!r}: not one of {sorted(METHODS)}")
    recorded = out / SETTINGS_FILE
    steps = (json.loads(recorded.read_text()).get("steps", paper.FUSION_STEPS)
             if recorded.is_file() else paper.FUSION_STEPS)
    models, data_root = [], None
    for v in method_variants(method, Settings(steps=steps)):
        variant = v.name
        found = sorted(out.glob(f"nets/prototxt/*/*/{variant}_deploy.prototxt"))
        if len(found) != 1:
            raise FileNotFoundError(f"--experiment {out}: expected one "
                                    f"nets/prototxt/*/*/{variant}_deploy.prototxt, found "
                                    f"{len(found)}")
        weights = out / "runs" / variant / "final.caffemodel"
        if not weights.is_file():
            raise FileNotFoundError(f"--experiment {out}: {weights} missing (not trained yet?)")
        config = out / "runs" / variant / "config.json"
        if data_root is None and config.is_file():
            root = json.loads(config.read_text()).get("data_root")
            data_root = Path(root) if root else None
        kind = "fusion" if v.kind == FUSION else v.stream
        models.append(Model(kind, found[0], weights, v.delta, v.steps))
    return models, data_root


def read_class_names(path: Path) -> list[str]:
    """classInd.txt (``<index> <name>``), one name a line, or a folder with either (or HMDB51's
    split files)."""
    from data_prep import lists, splits

    if path.is_dir():
        for name in ("classInd.txt", lists.CLASSES_FILE):
            if (path / name).is_file():
                return read_class_names(path / name)
        return list(splits.hmdb51_classes(path, 1))
    if not path.is_file():
        raise FileNotFoundError(f"--classes {path}: no such file or folder")
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    if rows and all(len(r) == 2 and r[0].isdigit() for r in rows):
        return list(splits.read_class_index(path))
    if not rows or any(len(r) != 1 for r in rows):
        raise ValueError(f"--classes {path}: expected classInd.txt lines '<index> <name>' or "
                         "one class name a line")
    return [r[0] for r in rows]


def _one_video_lists(frames_dir: Path) -> tuple[str, str]:
    """Lists of the one extracted video (label 0, unused), as data_prep.lists writes them."""
    from data_prep import lists

    counts = lists.check_video(frames_dir, True, lists.MODALITIES)
    rgb, flow = frames_dir.parent / "rgb.txt", frames_dir.parent / "flow.txt"
    rgb.write_text(f"{frames_dir.name} {counts['rgb']} 0\n")
    flow.write_text(f"{frames_dir.name} {counts['flow']} 0\n")
    return str(rgb), str(flow)


def score_models(frames_dir: Path, models: list[Model], gpu: int = -1) -> dict[str, np.ndarray]:
    """``{model name: [periods x classes]}`` raw scores of the extracted video."""
    from co2fi_layers.batches import PeriodBatches
    from co2fi_layers.sampling import all_steps
    from co2fi_tools.evaluation.evaluate import DeployNet, _input_size, net_inputs

    rgb_list, flow_list = _one_video_lists(frames_dir)
    scores = {}
    for model in models:
        net = DeployNet(model.deploy, model.weights, gpu)
        source = PeriodBatches(rgb_list, flow_list, str(frames_dir.parent),
                               input_size=_input_size(net), delta=model.delta, phase="test",
                               test_periods=paper.TEST_PERIODS, rgb_steps=all_steps(model.steps),
                               flow_steps=all_steps(model.steps), period_steps=model.steps)
        periods = {name: np.empty(shape, np.float32) for name, shape in source.shapes().items()}
        source.fill(0, periods)
        out = net.scores(net_inputs(periods, net.inputs, model.stream, model.steps))
        if model.kind != "fusion":  # one score a frame / flow stack: sum the steps of a period
            out = out.reshape(paper.TEST_PERIODS, -1, out.shape[-1]).sum(axis=1)
        scores[model.name] = out
    return scores


def top_classes(scores: dict[str, np.ndarray], class_names: list[str] | None,
                k: int = TOP_K) -> list[tuple[int, str, float]]:
    """(class index, name, fused score) of the k best classes, best first."""
    from co2fi_tools.evaluation.fusion import fuse

    fused = fuse({name: s[None] for name, s in scores.items()})[0]
    if class_names is not None and len(class_names) != fused.size:
        raise ValueError(f"{len(class_names)} class names for nets with {fused.size} classes")
    names = class_names or [f"class_{i}" for i in range(fused.size)]
    order = np.argsort(-fused, kind="stable")[:k]
    return [(int(i), names[i], float(fused[i])) for i in order]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from data_prep import extract
    from data_prep import flow as flowlib

    ap = argparse.ArgumentParser(prog="tools/predict.py", description=__doc__.splitlines()[0],
                                 epilog=__doc__.split("\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--rgb-model", nargs=2, metavar=("DEPLOY", "CAFFEMODEL"))
    ap.add_argument("--flow-model", nargs=2, metavar=("DEPLOY", "CAFFEMODEL"))
    ap.add_argument("--fusion-model", nargs=2, action="append", default=[],
                    metavar=("DEPLOY", "CAFFEMODEL"))
    ap.add_argument("--delta", type=int, default=None,
                    help="period step of fusion models (default: that of the variant a "
                         f"generated net is named after, else {paper.DELTA})")
    ap.add_argument("--experiment", type=Path, help="a tools/run_experiment.py --out folder")
    ap.add_argument("--method", help="paper method name with --experiment")
    ap.add_argument("--classes", type=Path, help="classInd.txt, classes.txt, or a split folder")
    ap.add_argument("--size", type=extract.parse_size, default=paper.FRAME_SIZE,
                    help="frame size WxH as the training data was extracted (default "
                         f"{paper.FRAME_SIZE[0]}x{paper.FRAME_SIZE[1]}), or native")
    ap.add_argument("--flow", choices=list(flowlib.METHODS), default="tvl1")
    ap.add_argument("--keep-frames", type=Path, help="extract here and keep (else a temp dir)")
    ap.add_argument("--gpu", type=int, default=-1)
    ap.add_argument("--json", type=Path, help="also write the scores and the top-5 as JSON")
    return ap.parse_args(argv)


def _models(args: argparse.Namespace) -> tuple[list[Model], Path | None]:
    models: list[Model] = []
    data_root = None
    if args.experiment is not None:
        if not args.method:
            raise ValueError("--experiment needs --method")
        models, data_root = experiment_models(args.experiment, args.method)
    for kind, given in (("rgb", args.rgb_model), ("flow", args.flow_model)):
        if given:
            models.append(Model(kind, Path(given[0]), Path(given[1])))
    for deploy, weights in args.fusion_model:
        delta = args.delta or _generated_delta(Path(deploy))
        models.append(Model("fusion", Path(deploy), Path(weights), delta))
    if not models:
        raise ValueError("no model: give --rgb-model/--flow-model, --fusion-model or "
                         "--experiment with --method")
    for model in models:
        for flag, path in (("deploy net", model.deploy), ("weights", model.weights)):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: {flag} not found")
    return models, data_root


def check_models_fit(models: list[Model]) -> None:
    """WeightsMisfit (one line) for the first model whose weights do not fit its deploy net."""
    import caffe

    from co2fi_tools.weights.weight_fit import check_weights_fit

    for model in models:
        net = caffe.Net(os.fspath(model.deploy), caffe.TEST)
        score = net.bottom_names["prob"][0] if "prob" in net.bottom_names else None
        check_weights_fit(net, model.deploy, model.weights, score)
        del net


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    args = parse_args(argv)
    from data_prep import extract, rawframes
    from data_prep.errors import DataError
    from data_prep.lists import lists_dir
    from data_prep.lists import read_class_names as dataset_class_names

    try:
        models, data_root = _models(args)
        if args.classes is not None:
            names = read_class_names(args.classes)
        elif data_root is not None:
            names = dataset_class_names(lists_dir(data_root))
        else:
            names = None
        if not args.video.is_file():
            raise FileNotFoundError(f"{args.video}: video not found")
        check_models_fit(models)  # before the extraction, which takes a while
        with tempfile.TemporaryDirectory(prefix="co2fi-predict-") as tmp:
            root = args.keep_frames or Path(tmp)
            frames_dir = root / rawframes.video_id(args.video)
            # flow even for RGB-only models: the periods are placed as in the evaluation,
            # where frames and flow stacks must both fit
            options = extract.ExtractOptions(size=args.size, flow=args.flow)
            extract.extract_video(args.video, frames_dir, options)
            scores = score_models(frames_dir, models, args.gpu)
        best = top_classes(scores, names)
    except (OSError, ValueError, DataError) as exc:
        print(f"predict: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.video}: {len(models)} model(s) "
          f"({', '.join(m.name for m in models)}), {paper.TEST_PERIODS} periods")
    for rank, (index, name, score) in enumerate(best, 1):
        print(f"{rank}. {name} (class {index}): {score:.3f}")
    if args.json:
        args.json.write_text(json.dumps({
            "video": str(args.video), "models": [m.name for m in models],
            "period_scores": {k: v.tolist() for k, v in scores.items()},
            "top5": [{"index": i, "name": n, "score": s} for i, n, s in best]}, indent=1)
            + "\n")
    return 0
