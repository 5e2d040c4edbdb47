"""Evaluation as Sec. 6.1 does it: 12 periods per test video, scores summed, accuracies.

The number of periods is the experiment's ``test_periods`` (Sec. 6.1's 12 by default; the deploy
net is reshaped to it).

Each period holds T frames and as many flow stacks, Delta frames apart (T = FUSION_STEPS, the
experiment's ``steps`` for fusion nets; Delta: the variant's). A
single-stream net (Table 1) scores every frame / flow stack of every period; a fusion net
(Table 2) scores every period; the appearance- and motion-centred models' scores are added,
as are the appearance and motion streams of Table 1 ("2-stream"). Scores are the raw class
scores before the deploy net's softmax, as TSN sums them (docs/EVALUATION.md for the switch).
Score files are written per video and resume (co2fi_tools.evaluation.scores.ScoreWriter); one
evaluation at a time holds ``<out>/scores/.lock``. Weights are checked against their deploy net
before Caffe loads them (co2fi_tools.weights.weight_fit), and the net's class count against the
experiment's before a score file is made.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from co2fi_layers import sampling
from co2fi_layers.batches import PeriodBatches, source_options
from co2fi_tools.evaluation import evaluate_scores as es
from co2fi_tools.evaluation.scores import ScoreWriter
from co2fi_tools.experiment import Experiment
from co2fi_tools.safe_io import FolderLock, LockHeld, error_line
from co2fi_tools.stages import METHODS, method_variants
from co2fi_tools.training.runs import Run
from co2fi_tools.weights.net_surgery import caffemodel_shapes, shape_fits
from co2fi_tools.weights.weight_fit import check_weights_fit
from data_prep.errors import DataError
from data_prep.lists import CLASSES_FILE, frames_root, list_path, lists_dir, read_class_names
from data_prep.rawframes import read_source_params
from netgen import paper
from netgen.variants import FUSION, Variant

STREAM_NAMES = {"rgb": "appearance", "flow": "motion"}
#: Table 2 calls Table 1's "CO2FI-complete" (two-stream) just "CO2FI".
TABLE_ALIASES = {"CO2FI": "CO2FI-complete"}


def check_weights(net, prototxt: Path, weights: Path) -> None:
    """ValueError unless ``weights`` hold every parameter layer of ``net`` with its shape.

    Caffe's own loading ignores layers it does not find (they keep their random fillers) and
    aborts on a shape mismatch; scoring must do neither."""
    if not Path(weights).is_file():
        raise ValueError(f"{weights}: no such caffemodel")
    stored = caffemodel_shapes(weights)
    wanted = {name: [tuple(b.data.shape) for b in blobs] for name, blobs in net.params.items()}
    missing = [name for name in wanted if name not in stored]
    if wanted and len(missing) == len(wanted):
        raise ValueError(f"{weights}: no layer matches the net {prototxt} (weights of another "
                         f"net?); e.g. the net's {missing[0]!r} is not in it")
    if missing:
        raise ValueError(f"{weights}: lacks {len(missing)} of the {len(wanted)} parameter "
                         f"layers of {prototxt}, first {missing[0]!r}; they would stay untrained")
    for name, shapes in wanted.items():
        blobs = stored[name]
        if len(blobs) != len(shapes) or not all(
                shape_fits(src, legacy, dst) for (src, legacy), dst in zip(blobs, shapes,
                                                                           strict=False)):
            raise ValueError(f"{weights}: layer {name!r} has blobs {[s for s, _ in blobs]}, the "
                             f"net {prototxt} wants {shapes}")


class DeployNet:
    """A deploy net and its weights; ``scores(inputs)`` gives the raw scores before `prob`."""

    def __init__(self, prototxt: Path, weights: Path, gpu: int = -1) -> None:
        import caffe  # after the callers' GLOG settings (glog reads them when pycaffe loads)

        if gpu >= 0:
            caffe.set_device(gpu)
            caffe.set_mode_gpu()
        else:
            caffe.set_mode_cpu()
        self.net = caffe.Net(os.fspath(prototxt), caffe.TEST)
        if "prob" not in self.net.bottom_names:
            raise ValueError(f"{prototxt}: a deploy net must end in a Softmax layer named 'prob'")
        self.score_blob = self.net.bottom_names["prob"][0]
        # shapes, class count and modality checked here: Caffe would CHECK-abort on a misfit
        check_weights_fit(self.net, prototxt, weights, self.score_blob)
        # then: every parameter layer present (Caffe would leave a missing one untrained)
        check_weights(self.net, prototxt, weights)
        self.net.copy_from(os.fspath(weights))
        self.num_classes = int(self.net.blobs[self.score_blob].data.shape[-1])
        self.inputs = list(self.net.inputs)
        self.batch = self.net.blobs[self.inputs[0]].data.shape[0]

    def fit_batch(self, inputs: dict[str, np.ndarray]) -> None:
        """Reshape the net's inputs to ``inputs``' (a deploy net is generated for Sec. 6.1's
        12 periods; an evaluation of fewer or more periods reshapes it once)."""
        if all(self.net.blobs[name].data.shape == data.shape for name, data in inputs.items()):
            return
        for name, data in inputs.items():
            self.net.blobs[name].reshape(*data.shape)
        self.net.reshape()
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


def period_source(exp: Experiment, delta: int, input_size: int,
                  steps: int = paper.FUSION_STEPS, subset: str = "val") -> PeriodBatches:
    """The ``exp.test_periods`` test periods (``steps`` steps, ``delta`` frames apart) of every
    video of the ``subset`` lists (the test videos by default), as the test-phase
    PeriodDataLayer makes them.

    Frames and flow stacks are sampled together for every net, so that the appearance and
    motion nets of a method see the same time points."""
    return PeriodBatches(str(list_path(exp.data_root, "rgb", subset, exp.split)),
                         str(list_path(exp.data_root, "flow", subset, exp.split)),
                         str(frames_root(exp.data_root)), input_size=input_size, delta=delta,
                         rgb_steps=sampling.all_steps(steps),
                         flow_steps=sampling.all_steps(steps), phase="test",
                         test_periods=exp.test_periods, period_steps=steps,
                         **source_options(read_source_params(exp.data_root)))


def net_inputs(periods: dict[str, np.ndarray], names: list[str], stream: str | None = None,
               steps: int = paper.FUSION_STEPS) -> dict[str, np.ndarray]:
    """A deploy net's inputs from one video's periods (``rgb_t<i>``: periods x C x S x S).

    A fusion net (``stream`` None) takes its steps as they are; a single-stream net of
    ``stream`` takes every step (1..``steps``) of every period as one batch, period-major."""
    if stream is None:
        return {name: periods[name] for name in names}
    frames = [periods[f"{stream}_t{t}"] for t in sampling.all_steps(steps)]
    return {"data": np.stack(frames, axis=1).reshape(-1, *frames[0].shape[1:])}


def variant_inputs(variant: Variant, periods: dict[str, np.ndarray], names: list[str]
                   ) -> dict[str, np.ndarray]:
    """:func:`net_inputs` of a variant's deploy net."""
    return net_inputs(periods, names, None if variant.kind == FUSION else variant.stream,
                      variant.steps)


def score_stream(variant: Variant) -> str:
    """The stream a variant's scores are stored under: ``appearance``, ``motion``, or
    ``appearance_centred`` / ``motion_centred`` for a fusion net."""
    name = STREAM_NAMES[variant.stream]
    return f"{name}_centred" if variant.kind == FUSION else name


def evaluate_variant(exp: Experiment, variant: Variant, weights: Path, class_names: list[str],
                     out: Path) -> Path:
    """Score every test video with one deploy net into a resumable score file."""
    from tqdm import tqdm

    net = DeployNet(exp.net_file(variant.name, "deploy"), weights, exp.gpu)
    if net.num_classes != len(class_names):
        raise ValueError(f"{weights}: the net {variant.name} scores {net.num_classes} classes, "
                         f"this evaluation has {len(class_names)} (--num-classes / class names)")
    source = period_source(exp, variant.delta, _input_size(net), variant.steps)
    check_labels([v.label for v in source.videos], len(class_names),
                 list_path(exp.data_root, "rgb", "val", exp.split))
    stream = score_stream(variant)
    shapes = source.shapes()
    periods = {name: np.empty(shape, np.float32) for name, shape in shapes.items()}
    net.fit_batch(variant_inputs(variant, periods, net.inputs))
    state = Run(exp.run_dir(variant.name), variant.name).latest_solverstate()
    writer = ScoreWriter(out, streams=[stream], num_periods=net.batch,
                         labels=[v.label for v in source.videos],
                         video_ids=[Path(v.path).name for v in source.videos],
                         class_names=class_names, dataset=exp.dataset, split=str(exp.split),
                         net=variant.name, iteration=state[0] if state else 0)
    with writer:
        todo = [i for i in range(len(source.videos)) if not writer.done(i)]
        for i in tqdm(todo, desc=f"eval {variant.name}", unit="video", dynamic_ncols=True):
            source.fill(i, periods)
            writer.write(i, {stream: net.scores(variant_inputs(variant, periods, net.inputs))})
    return out


def check_labels(labels: list[int], num_classes: int, where: Path) -> None:
    """ValueError naming the list ``where`` when a label lies outside 0..num_classes-1."""
    if labels and (min(labels) < 0 or max(labels) >= num_classes):
        raise ValueError(f"{where}: labels must lie in 0..{num_classes - 1}, got "
                         f"{min(labels)}..{max(labels)} (--num-classes {num_classes}, or the "
                         "lists of another dataset?)")


def artifacts_dir(out: Path, method: str, result_stream: str) -> Path:
    """Where the confusion matrix and per-class tables of a method's stream go."""
    slug = re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")
    return out / "eval" / slug / result_stream


def _input_size(net: DeployNet) -> int:
    return int(net.net.blobs[net.inputs[0]].data.shape[-1])


def evaluate_methods(exp: Experiment, finals: dict[str, Path], results_path: Path
                     ) -> list[dict]:
    """Score files, accuracies, confusion matrices and per-class tables of every method."""
    class_names = _class_names(exp)
    score_dir = exp.out / "scores"
    files: dict[str, Path] = {}
    with FolderLock(score_dir, "evaluation"):
        for method in exp.methods:
            for v in method_variants(method, exp.settings):
                if v.name not in files:
                    files[v.name] = evaluate_variant(exp, v, finals[v.name], class_names,
                                                     score_dir / f"{v.name}.h5")
    records = []
    for method in exp.methods:
        chosen_variants = method_variants(method, exp.settings)
        parts = [es.Selection(str(files[v.name]), ()) for v in chosen_variants]
        combos = {"two-stream": parts}
        if chosen_variants[0].kind != FUSION:
            combos.update({"appearance": parts[:1], "motion": parts[1:]})
        for result_stream, chosen in combos.items():
            evaluation = es.evaluate(chosen)
            es.write_artifacts(evaluation, artifacts_dir(exp.out, method, result_stream),
                               f"{method}, {result_stream} ({exp.dataset} split {exp.split})")
            # No table: the row shows in every table that lists the method.
            names = [method] + [a for a, m in TABLE_ALIASES.items()
                                if m == method and result_stream == "two-stream"]
            for name in names:
                row = es.record_result(evaluation, results_path, name, result_stream)
                records.append(asdict(row))
    return records


def method_correct(out: Path, method: str, result_stream: str, settings=None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(1 where a test video is classified right, else 0; labels) of one method's result
    stream (``two-stream``, or ``appearance`` / ``motion`` of a single-stream method), from
    the score files an evaluation wrote under ``out/scores``, fused as evaluate_methods does."""
    chosen = method_variants(method, settings)
    parts = [es.Selection(str(out / "scores" / f"{v.name}.h5"), ()) for v in chosen]
    if result_stream != "two-stream":
        parts = parts[:1] if result_stream == "appearance" else parts[1:]
    ev = es.evaluate(parts)
    return (np.argmax(ev.video_scores, axis=1) == ev.labels).astype(int), ev.labels


def _class_names(exp: Experiment) -> list[str]:
    """The experiment's class names, else the dataset's lists/classes.txt (written by
    data_prep.lists from classInd.txt or HMDB51's split files), else class_<i>."""
    names = list(exp.class_names) or read_class_names(lists_dir(exp.data_root))
    if not names:
        return [f"class_{i}" for i in range(exp.num_classes)]
    if len(names) != exp.num_classes:
        raise ValueError(f"{len(names)} class names (from the split files / "
                         f"{lists_dir(exp.data_root) / CLASSES_FILE}) for {exp.num_classes} "
                         "classes")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="co2fi-evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the experiment folder (runs/, nets/)")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--num-classes", type=int, required=True)
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--method", action="append", required=True, choices=list(METHODS))
    ap.add_argument("--gpu", type=int, default=-1)
    ap.add_argument("--steps", type=int, default=paper.FUSION_STEPS,
                    help="T of the fusion nets (as the experiment trained them)")
    ap.add_argument("--test-periods", type=int, default=paper.TEST_PERIODS,
                    help="periods scored a test video (default %(default)s, Sec. 6.1)")
    args = ap.parse_args(argv)
    if args.test_periods < 1:
        ap.error("--test-periods must be >= 1")
    exp = Experiment(dataset=args.dataset,
                     data_root=Path(args.data_root).expanduser().absolute(),
                     num_classes=args.num_classes, out=Path(args.out).expanduser().absolute(),
                     split=args.split,
                     preset=args.preset, methods=tuple(args.method), gpu=args.gpu,
                     steps=args.steps, test_periods=args.test_periods)
    try:
        finals = {v.name: exp.run_dir(v.name) / "final.caffemodel" for m in exp.methods
                  for v in method_variants(m, exp.settings)}
    except ValueError as exc:  # --steps outside the limit
        print(f"co2fi-evaluate: error: --steps: {exc}", file=sys.stderr)
        return 1
    missing = [str(p) for p in finals.values() if not p.exists()]
    if missing:
        print(f"co2fi-evaluate: error: not trained yet: {missing}", file=sys.stderr)
        return 1
    try:
        records = evaluate_methods(exp, finals, exp.out / "results.json")
    except (OSError, ValueError, LockHeld, DataError) as exc:  # DataError: a missing frame
        print(f"co2fi-evaluate: error: {error_line(exc)}", file=sys.stderr)
        return 1
    print(format_records(records))
    print(f"written to {exp.out / 'results.json'}")
    return 0


def format_records(records: list[dict]) -> str:
    """One line a result: method, stream, top-1, mean class accuracy, top-5 (percent)."""
    lines = []
    for r in records:
        top5 = "" if r.get("top5") is None else f", top-5 {100 * r['top5']:.2f}%"
        lines.append(f"{r['method']} ({r['stream']}, {r['dataset']} split {r['split']}): "
                     f"top-1 {100 * r['accuracy']:.2f}%, mean class accuracy "
                     f"{100 * r['mean_class_accuracy']:.2f}%{top5}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
