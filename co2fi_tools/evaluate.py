"""Evaluation as Sec. 6.1 does it: 12 periods per test video, scores summed, accuracies.

Each period holds FUSION_STEPS frames and as many flow stacks, DELTA frames apart. A
single-stream net (Table 1) scores every frame / flow stack of every period; a fusion net
(Table 2) scores every period; the appearance- and motion-centred models' scores are added,
as are the appearance and motion streams of Table 1 ("2-stream"). Scores are the raw class
scores before the deploy net's softmax, as TSN sums them (docs/EVALUATION.md for the switch).
Score files are written per video and resume (co2fi_tools.scores.ScoreWriter).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from co2fi_tools.stages import METHODS
from netgen import paper
from netgen.data import STREAMS

STREAM_NAMES = {"rgb": "appearance", "flow": "motion"}


@dataclass
class TestVideo:
    frame_dir: Path
    num_frames: int
    label: int


def read_test_list(path: Path, root: Path) -> list[TestVideo]:
    from data_prep.errors import DataError

    videos = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(path, f"line {lineno}: expected '<frame_dir> <num_frames> <label>'")
        folder = Path(parts[0])
        videos.append(TestVideo(folder if folder.is_absolute() else root / folder,
                                int(parts[1]), int(parts[2])))
    return videos


def method_variants(method: str) -> list[str]:
    """The deploy nets a method is evaluated with."""
    spec = METHODS[method]
    if "single" in spec:
        return [f"{spec['single']}_{s}" for s in STREAMS]
    return [f"{spec['fusion']}_{c}_centred" for c in STREAMS]


class DeployNet:
    """A deploy net and its weights; ``scores(inputs)`` gives the raw scores before `prob`."""

    def __init__(self, prototxt: Path, weights: Path, gpu: int = -1) -> None:
        import caffe

        if gpu >= 0:
            caffe.set_device(gpu)
            caffe.set_mode_gpu()
        else:
            caffe.set_mode_cpu()
        self.net = caffe.Net(os.fspath(prototxt), os.fspath(weights), caffe.TEST)
        if "prob" not in self.net.bottom_names:
            raise ValueError(f"{prototxt}: a deploy net must end in a Softmax layer named 'prob'")
        self.score_blob = self.net.bottom_names["prob"][0]
        self.inputs = list(self.net.inputs)
        self.batch = self.net.blobs[self.inputs[0]].data.shape[0]

    def scores(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = next(iter(inputs.values())).shape[0]
        if n != self.batch:
            raise ValueError(f"the deploy net takes batches of {self.batch}, got {n}")
        for name, data in inputs.items():
            self.net.blobs[name].data[...] = data
        self.net.forward()
        out = self.net.blobs[self.score_blob].data
        return out.reshape(n, -1).copy()


def score_video(net: DeployNet, variant: str, video: TestVideo, delta: int, size: int,
                test_inputs) -> np.ndarray:
    """[samples x classes]: every frame/stack of every period (single-stream) or every period."""
    from co2fi_layers.sampling import period_indices

    starts = period_indices(video.num_frames, paper.TEST_PERIODS, paper.FUSION_STEPS, delta,
                            paper.FLOW_STACK)  # [periods x steps], 1-based
    if variant.endswith("_centred"):
        inputs = {}
        for name in net.inputs:
            stream, step = name.split("_t")
            inputs[name] = test_inputs(video.frame_dir, stream, starts[:, int(step) - 1], size)
        return net.scores(inputs)
    stream = variant.rsplit("_", 1)[1]
    return net.scores({"data": test_inputs(video.frame_dir, stream, starts.reshape(-1), size)})


def evaluate_variant(exp, variant: str, weights: Path, videos: list[TestVideo],
                     class_names: list[str], out: Path) -> Path:
    """Score every test video with one deploy net into a resumable score file."""
    from co2fi_layers.testing import test_inputs
    from tqdm import tqdm

    from co2fi_tools.scores import ScoreWriter

    net = DeployNet(exp.net_file(variant, "deploy"), weights, exp.gpu)
    stream = (STREAM_NAMES[variant.rsplit("_", 1)[1]] if not variant.endswith("_centred")
              else variant.rsplit("_", 2)[1] + "_centred")
    samples = net.batch
    delta = _variant_delta(variant)
    from co2fi_tools.runs import Run

    iteration = Run(exp.run_dir(variant), variant).latest_solverstate()
    writer = ScoreWriter(out, streams=[stream], num_periods=samples,
                         labels=[v.label for v in videos],
                         video_ids=[v.frame_dir.name for v in videos], class_names=class_names,
                         dataset=exp.dataset, split=str(exp.split), net=variant,
                         iteration=iteration[0] if iteration else 0)
    with writer:
        todo = [i for i in range(len(videos)) if not writer.done(i)]
        for i in tqdm(todo, desc=f"eval {variant}", unit="video", dynamic_ncols=True):
            scores = score_video(net, variant, videos[i], delta, _input_size(net), test_inputs)
            writer.write(i, {stream: scores})
    return out


def _variant_delta(variant: str) -> int:
    """Delta of a fusion variant (its name says d1/d5); the paper's Delta otherwise."""
    for part in variant.split("_"):
        if part.startswith("d") and part[1:].isdigit():
            return int(part[1:])
    return paper.DELTA


def _input_size(net: DeployNet) -> int:
    return int(net.net.blobs[net.inputs[0]].data.shape[-1])


def evaluate_methods(exp, finals: dict[str, Path], results_path: Path) -> list[dict]:
    """Score files, accuracies, confusion matrices and per-class tables of every method."""
    from co2fi_tools import evaluate_scores as es

    class_names = _class_names(exp)
    videos = read_test_list(exp.data_root / "lists" / f"rgb_val_split{exp.split}.txt",
                            exp.data_root / "frames")
    flow_videos = read_test_list(exp.data_root / "lists" / f"flow_val_split{exp.split}.txt",
                                 exp.data_root / "frames")
    score_dir = exp.out / "scores"
    files: dict[str, Path] = {}
    for method in exp.methods:
        for variant in method_variants(method):
            if variant in files:
                continue
            use = flow_videos if variant.endswith("_flow") else videos
            files[variant] = evaluate_variant(exp, variant, finals[variant], use, class_names,
                                              score_dir / f"{variant}.h5")
    records = []
    for method in exp.methods:
        table = 2 if "fusion" in METHODS[method] or method == "CO2FI" else 1
        variants = method_variants(method)
        parts = [es.Selection(str(files[v]), ()) for v in variants]
        combos = {"two-stream": parts}
        if table == 1:
            combos.update({"appearance": parts[:1], "motion": parts[1:]})
        for result_stream, chosen in combos.items():
            evaluation = es.evaluate(chosen)
            slug = re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")
            es.write_artifacts(evaluation, exp.out / "eval" / slug / result_stream,
                               f"{method}, {result_stream} ({exp.dataset} split {exp.split})")
            row = es.record_result(evaluation, results_path, method, result_stream, table)
            records.append(asdict(row))
    return records


def _class_names(exp) -> list[str]:
    if exp.class_names:
        return list(exp.class_names)
    return [f"class_{i}" for i in range(exp.num_classes)]


def main(argv: list[str] | None = None) -> int:
    from co2fi_tools.pipeline import Experiment

    ap = argparse.ArgumentParser(prog="co2fi-evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the experiment folder (runs/, nets/)")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--num-classes", type=int, required=True)
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--method", action="append", required=True, choices=list(METHODS))
    ap.add_argument("--gpu", type=int, default=-1)
    args = ap.parse_args(argv)
    exp = Experiment(dataset=args.dataset, data_root=Path(args.data_root),
                     num_classes=args.num_classes, out=Path(args.out), split=args.split,
                     preset=args.preset, methods=tuple(args.method), gpu=args.gpu)
    finals = {v: exp.run_dir(v) / "final.caffemodel" for m in exp.methods
              for v in method_variants(m)}
    missing = [str(p) for p in finals.values() if not p.exists()]
    if missing:
        print(f"co2fi-evaluate: error: not trained yet: {missing}", file=sys.stderr)
        return 1
    evaluate_methods(exp, finals, exp.out / "results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
