"""Is a pair class's information in a trained fusion net's features? Linear probes (issue 19).

A pair class of the miniature (docs/MINIATURE.md) is the XOR of a clip's direction (its early
motion) and its texture (shown after a gap): only a net that sees both cues of the same clip can
tell ``PairSame`` from ``PairSwap``. For one trained fusion net, this reads the features it has
at three depths on the pair-group videos' test periods (``towers``: the towers' features that
enter the fusion; ``fused``: the T stream-wise fused maps; ``lstm``: the last LSTM step's hidden
state), fits a logistic regression on the training videos' periods for the direction, the
texture and the pair class (within each pair group), and scores it on the test videos' periods:
all of them, and those that see both cues (co2fi_tools.reporting.period_cues). A cue that no
probe decodes is not in the features; two cues decoded while the class is not, at the last
step, is a head that does not combine them. The net's own period accuracy on the pair classes is
printed beside.

    python -m co2fi_tools.reporting.fusion_probe SEED_DIR VARIANT [--periods 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from co2fi_tools.experiment import SETTINGS_FILE, Experiment
from co2fi_tools.reporting.period_cues import sees_both
from co2fi_tools.safe_io import error_line
from data_prep.errors import DataError
from data_prep.lists import lists_dir, read_class_names
from data_prep.splits import read_class_index
from data_prep.synthetic import (
    PATTERNS,
    ClassSpec,
    Timeline,
    class_kind,
    miniature_specs,
    miniature_timeline,
)
from netgen.variants import get_variant

#: Where in the fusion net each probe reads (blob name patterns of netgen/fusion.py).
DEPTHS = ("towers", "fused", "lstm")
TARGETS = ("direction", "texture", "class")
CLIP = re.compile(r"_g(\d+)_c\d+$")


@dataclass(frozen=True)
class ClipCues:
    """What a miniature clip shows: the index of its direction and texture in its group, and
    when (its timeline); drawn again exactly as data_prep.synthetic drew them."""

    group: int
    direction: int
    texture: int
    timeline: Timeline

    @property
    def pair_class(self) -> int:
        """0 for PairSame ((dir 0, Striped) or (dir 1, Checked)), 1 for PairSwap: the XOR."""
        return int(self.direction != self.texture)


def clip_cues(spec: ClassSpec, label: int, clip: int, num_frames: int,
              data_seed: int = 0) -> ClipCues:
    """The cues of clip ``clip`` (0-based) of class ``label`` (render_miniature_clip's first
    two draws from the clip's generator: its (direction, pattern), then its timeline)."""
    rng = np.random.default_rng([data_seed, label, clip])
    direction, pattern = spec.cues[int(rng.integers(len(spec.cues)))]
    timeline = miniature_timeline(num_frames, rng)
    directions = [c[0] for c in spec.cues]  # a pair class lists direction 0, then 1
    return ClipCues(spec.group, directions.index(direction), PATTERNS.index(pattern), timeline)


def miniature_classes(data_root: Path) -> list[ClassSpec]:
    """The miniature's class specs of a data folder, counted from the class names its lists
    (or split files) give; ValueError when the names are not the miniature's."""
    names = read_class_names(lists_dir(data_root)) or list(
        read_class_index(data_root / "splits" / "classInd.txt"))
    specs = miniature_specs(len(names))
    if [s.name for s in specs] != list(names):
        raise ValueError(f"{data_root}: its classes are not the miniature's "
                         f"({names[0]!r}, ...; docs/MINIATURE.md)")
    return specs


def _features(net, depth: str, steps: int) -> np.ndarray:
    blobs = net.net.blobs
    if depth == "towers":
        names = [n for n in blobs if n.startswith("fuse_in_")]
    elif depth == "fused":
        names = [f"fuse_t{t}" for t in range(1, steps + 1)]
    else:
        names = [f"async_lstm_h{steps}"]
    return np.concatenate([blobs[n].data.reshape(blobs[n].data.shape[0], -1) for n in names],
                          axis=1)


def read_periods(exp: Experiment, variant_name: str, subset: str, specs: list[ClassSpec],
                 data_seed: int) -> dict[str, np.ndarray]:
    """Features of every depth, the cues and the net's own prediction, a row per period of
    each pair-group video of ``subset``."""
    from co2fi_tools.evaluation.evaluate import (
        DeployNet,
        _input_size,
        period_source,
        variant_inputs,
    )

    variant = get_variant(variant_name, exp.settings)
    net = DeployNet(exp.net_file(variant.name, "deploy"),
                    exp.run_dir(variant.name) / "final.caffemodel", exp.gpu)
    source = period_source(exp, variant.delta, _input_size(net), variant.steps, subset)
    periods = {name: np.empty(shape, np.float32) for name, shape in source.shapes().items()}
    net.fit_batch(variant_inputs(variant, periods, net.inputs))
    rows: dict[str, list] = {k: [] for k in (*DEPTHS, "group", "direction", "texture", "class",
                                             "both", "right")}
    for i, video in enumerate(source.videos):
        spec = specs[video.label]
        if class_kind(spec) != "pair":
            continue
        clip = int(CLIP.search(Path(video.path).name).group(1)) - 1
        cues = clip_cues(spec, video.label, clip, video.num_rgb, data_seed)
        source.fill(i, periods)
        scores = net.scores(variant_inputs(variant, periods, net.inputs))
        for depth in DEPTHS:
            rows[depth].append(_features(net, depth, variant.steps))
        n = scores.shape[0]
        rows["group"] += [cues.group] * n
        rows["direction"] += [cues.direction] * n
        rows["texture"] += [cues.texture] * n
        rows["class"] += [cues.pair_class] * n
        rows["right"] += list(np.argmax(scores, axis=1) == video.label)
        rows["both"] += [sees_both(points, cues.timeline, video.num_rgb, variant.stream)
                         for points in source.time_points(i)]
    return {k: (np.concatenate(v) if k in DEPTHS else np.asarray(v)) for k, v in rows.items()}


def probe(train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> dict[str, dict]:
    """depth -> target -> accuracy of a logistic regression on the test periods (all, and those
    that see both cues), fitted on the training periods within each pair group and averaged."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, dict] = {}
    for depth in DEPTHS:
        for target in TARGETS:
            right = np.zeros(len(test[target]), bool)
            for group in np.unique(test["group"]):
                fit, score = train["group"] == group, test["group"] == group
                model = make_pipeline(StandardScaler(),
                                      LogisticRegression(C=0.1, max_iter=2000))
                model.fit(train[depth][fit], train[target][fit])
                right[score] = model.predict(test[depth][score]) == test[target][score]
            out.setdefault(depth, {})[target] = {
                "all": float(right.mean()), "both_cues": float(right[test["both"]].mean())}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m co2fi_tools.reporting.fusion_probe",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("experiment", type=Path, help="a trained experiment folder (a claims seed)")
    ap.add_argument("variant", help="a fusion variant, e.g. co2fi_asyn_d5_rgb_centred")
    ap.add_argument("--periods", type=int, default=4, help="periods a video (default 4)")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--data-root", type=Path,
                    help="the data folder (default: the one the experiment's settings record)")
    ap.add_argument("--json", type=Path, help="write the accuracies here too")
    args = ap.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        settings = args.experiment / SETTINGS_FILE
        if args.data_root is None and not settings.exists():
            raise ValueError(f"{settings}: no such file (give --data-root)")
        recorded = json.loads(settings.read_text()) if settings.exists() else {}
        data_root = (args.data_root or Path(recorded["data_root"])).absolute()
        specs = miniature_classes(data_root)
        exp = Experiment("synthetic", data_root, len(specs), args.experiment.absolute(),
                         preset=recorded.get("preset", "small"), test_periods=args.periods)
        if get_variant(args.variant, exp.settings).kind != "fusion":
            raise ValueError(f"{args.variant}: not a fusion variant")
        train = read_periods(exp, args.variant, "train", specs, args.data_seed)
        test = read_periods(exp, args.variant, "val", specs, args.data_seed)
    except (OSError, KeyError, ValueError, DataError) as exc:
        print(f"fusion_probe: error: {error_line(exc)}", file=sys.stderr)
        return 1
    result = {"variant": args.variant, "periods": {"train": len(train["class"]),
                                                   "test": len(test["class"]),
                                                   "test_both_cues": int(test["both"].sum())},
              "net_pair_accuracy": {"all": float(test["right"].mean()),
                                    "both_cues": float(test["right"][test["both"]].mean())},
              "probes": probe(train, test)}
    print(f"{args.variant}: {result['periods']}; the net's own period accuracy on the pair "
          f"classes {100 * result['net_pair_accuracy']['all']:.1f} % (periods that see both "
          f"cues: {100 * result['net_pair_accuracy']['both_cues']:.1f} %)")
    print("| depth | direction | texture | pair class |\n|---|---:|---:|---:|")
    for depth, targets in result["probes"].items():
        print(f"| {depth} | " + " | ".join(
            f"{100 * targets[t]['all']:.1f} ({100 * targets[t]['both_cues']:.1f})"
            for t in TARGETS) + " |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
