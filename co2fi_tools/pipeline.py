"""The whole experiment for one dataset split: nets -> training stages -> evaluation -> tables.

The same path serves the synthetic demo (small preset, CPU) and UCF101/HMDB51 (paper preset,
GPU). Every step writes into ``out`` and is skipped when its output is already there, so an
interrupted run resumes where it stopped:

    out/nets/prototxt/<preset>/<dataset>/...   the generated nets for this class count
    out/nets/solvers/<preset>/<dataset>/...
    out/runs/<variant>/                        one training run each (co2fi_tools.training.runs)
    out/scores/<method>.h5                     per-video scores (co2fi_tools.evaluation.scores)
    out/results.json                           accuracies (co2fi_tools.reporting.compare reads)
    out/comparison.md, comparison.csv          ours beside the paper's Tables 1-3
    out/plots/<variant>/*.png                  training curves
    out/experiment.json                        the settings the results were made with
    out/.lock                                  held while an experiment writes here

A rerun into ``out`` with settings that would change the results (dataset, class count, preset,
split, seed, iterations, ImageNet weights, class names) stops and names what differs, instead of
reusing or overwriting the old work; methods may be added.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from co2fi_tools.evaluation.evaluate import evaluate_methods
from co2fi_tools.experiment import SETTINGS_FILE, Experiment, experiment_settings
from co2fi_tools.reporting import compare
from co2fi_tools.reporting.caffe_log import parse_log
from co2fi_tools.reporting.plots import plot_training_curves
from co2fi_tools.safe_io import (
    FolderLock,
    atomic_write_text,
    check_settings,
    check_space,
    error_line,
    read_settings,
    record_settings,
)
from co2fi_tools.stages import METHODS, Stage, method_variants, plan
from co2fi_tools.training.health import HEALTH_FILE, check_run
from co2fi_tools.training.multigpu import parse_gpus
from co2fi_tools.training.runs import Run
from co2fi_tools.training.train import (
    EXIT_INTERRUPTED,
    TrainingInterrupted,
    TrainJob,
    run_iterations,
    train,
)
from data_prep import extract, foreign_lists, lists, rawframes, splits
from data_prep.errors import DataError
from netgen import paper
from netgen.data import DataPaths
from netgen.emit import generate, write
from netgen.names import FLOW
from netgen.presets import get_preset
from netgen.schedule import DEFAULT_SCHEDULE, SCHEDULES, WARMUP
from netgen.variants import SINGLE, get_variant, warmup_name

__all__ = ["SETTINGS_FILE", "Experiment", "experiment_settings", "run_experiment", "main"]

T = TypeVar("T")


def claim_output(out: Path, settings: dict, remedy: str = "use another --out, or delete it to "
                 "start over") -> None:
    """Check ``settings`` against those ``out`` was made with (SettingsMismatch naming each
    difference and ``remedy``) and record them; the caller holds ``out``'s lock. Settings not
    recorded yet (the demo records its own before the experiment's) are added, not compared."""
    path = out / SETTINGS_FILE
    recorded = read_settings(path)
    if recorded is not None:
        check_settings(out, recorded, {k: v for k, v in settings.items() if k in recorded},
                       remedy)
    record_settings(path, {**(recorded or {}), **settings})


def log(msg: str) -> None:
    print(f"[co2fi {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def generate_nets(exp: Experiment, stages: list[Stage]) -> None:
    """Write the nets this experiment trains, for its class count (checked-in files are for
    the paper's datasets and the default synthetic set; a run generates its own)."""
    variants = [s.variant for s in stages]
    deploy_only = [v for v in _deploy_variants(exp) if v not in variants]
    files = generate(get_preset(exp.preset).replace(**exp.preset_changes), exp.dataset,
                     exp.num_classes, exp.settings, names=variants + deploy_only,
                     data_paths=DataPaths(str(exp.data_root), exp.split))
    write(files, exp.nets)


def _deploy_variants(exp: Experiment) -> list[str]:
    return [v.name for m in exp.methods for v in method_variants(m, exp.settings)]


def train_stages(exp: Experiment, stages: list[Stage],
                 trained: dict[str, Path] | None = None) -> dict[str, Path]:
    """Train every stage in order; returns variant -> final.caffemodel. ``trained``: variants
    already trained elsewhere (their stages are passed over; they start the others)."""
    finals: dict[str, Path] = dict(trained or {})
    for i, stage in enumerate(stages, 1):
        if stage.variant in finals:
            continue
        init = {key: str(finals[dep]) for key, dep in stage.init.items()}
        for key, path in exp.imagenet.items():
            init.setdefault(key, path)
        weights = None
        read = 0  # iterations of the stage's data stream its earlier phases read
        for phase in stage_phases(exp, stage):
            run = exp.run_dir(phase.name)
            state = "done" if (run / "final.caffemodel").exists() else "training"
            what = f" ({phase.label})" if phase.label else ""
            log(f"stage {i}/{len(stages)}: {stage.variant}{what} ({state}) -> {run}")
            job = _job(exp, stage, phase, {} if weights else init, weights, read)
            final = train(job, run, exp.backend, exp.gpu)
            report_health(job, run, final)
            weights = str(final)
            read += run_iterations(Run(run, job.name))
        finals[stage.variant] = Path(weights)
    return finals


def report_health(job: TrainJob, run_dir: Path, final: Path) -> None:
    """Probe a finished run (co2fi_tools.training.health) and say, on the console and in its
    log, when a loss head ended above its start or ReLUs died."""
    run = Run(run_dir, job.name)
    start = run.init_weights if run.init_weights.exists() else (
        Path(job.weights) if job.weights else None)
    try:
        health, fresh = check_run(run.train_net, start, final, run_dir / HEALTH_FILE)
    except (OSError, ValueError, RuntimeError) as exc:
        log(f"{job.name}: health not checked: {error_line(exc)}")
        return
    lines = [health.summary()] + [f"WARNING: {p}" for p in health.problems()]
    for line in lines:
        log(f"{job.name}: {line}")
    if fresh:
        with open(run.log, "a") as f:
            f.writelines(f"co2fi: health: {line}\n" for line in lines)


@dataclass(frozen=True)
class Phase:
    """One training run of a stage: its net/solver/run name, iterations and base lr (None:
    the generated solver's)."""

    name: str
    max_iter: int | None
    base_lr: float | None
    label: str = ""
    #: The solver's stepsize (None: the generated solver's).
    lr_step: int | None = None


def stage_phases(exp: Experiment, stage: Stage) -> list[Phase]:
    """The runs of a stage: one, or a fusion stage's warm-up and joint phases
    (netgen.schedule), which share the stage's iterations."""
    total = exp.fusion_max_iter if stage.fusion and exp.fusion_max_iter is not None \
        else exp.max_iter
    lr = exp.fusion_base_lr if stage.fusion else _single_base_lr(exp, stage)
    schedule = exp.fusion_schedule
    if not stage.fusion:
        step = (None if exp.lr_step_fraction is None or total is None
                else max(1, round(total * exp.lr_step_fraction)))
        return [Phase(stage.variant, total, lr, lr_step=step)]
    if not schedule.staged:
        return [Phase(stage.variant, total, lr)]
    warm, joint = schedule.split_iterations(total) if total is not None else (None, None)
    return [
        Phase(warmup_name(stage.variant), warm,
              None if lr is None else lr * schedule.warmup_lr_factor,
              f"{WARMUP}: towers frozen"),
        Phase(stage.variant, joint, None if lr is None else lr * schedule.joint_lr_factor,
              "joint"),
    ]


def _single_base_lr(exp: Experiment, stage: Stage) -> float | None:
    """Base lr of a single-stream stage: the generated solver's (None), or for a motion net
    the preset's times ``exp.flow_lr_factor``."""
    variant = get_variant(stage.variant, exp.settings)
    if exp.flow_lr_factor == 1.0 or variant.kind != SINGLE or variant.stream != FLOW:
        return None
    return get_preset(exp.preset).replace(**exp.preset_changes).base_lr * exp.flow_lr_factor


def _job(exp: Experiment, stage: Stage, phase: Phase, init: dict[str, str],
         weights: str | None, data_offset: int = 0) -> TrainJob:
    return TrainJob(
        name=phase.name,
        train_net=str(exp.net_file(phase.name, "train")),
        solver=str(exp.net_file(phase.name, "solver")),
        data_root=str(exp.data_root),
        split=exp.split,
        train_list_tag=_grouper_tag() if stage.grouper_data else None,
        num_classes=exp.num_classes,
        max_iter=phase.max_iter,
        base_lr=phase.base_lr,
        lr_step=phase.lr_step,
        seed=exp.seed,
        init=init,
        weights=weights,
        keep_snapshots=exp.keep_snapshots,
        gpus=tuple(exp.gpus),
        batch_per_gpu=exp.batch_per_gpu,
        data_offset=data_offset,
        meta={"variant": stage.variant, "preset": exp.preset, "dataset": exp.dataset,
              "split": exp.split},
    )


def _grouper_tag() -> str:
    return lists.fraction_tag(paper.GROUPER_DATA_FRACTION)


def plot_curves(exp: Experiment, stages: list[Stage]) -> list[Path]:
    written = []
    for stage in stages:
        log_path = exp.run_dir(stage.variant) / "train.log"
        if log_path.exists():
            curves = parse_log(log_path)
            written += plot_training_curves(curves, exp.out / "plots" / stage.variant,
                                            title=stage.variant)
    return written


def write_comparison(results_path: Path, out_stem: Path) -> str:
    """comparison.md and comparison.csv beside the paper's tables; returns the Markdown."""
    sections = compare.build_comparison(compare.read_results(results_path),
                                        source=str(results_path))
    markdown = compare.to_markdown(sections)
    atomic_write_text(out_stem.with_suffix(".md"), markdown)
    atomic_write_text(out_stem.with_suffix(".csv"), compare.to_csv(sections))
    return markdown


def run_experiment(exp: Experiment) -> dict:
    """Train, evaluate and compare; returns the results records."""
    # ValueError for unknown methods, before anything is written
    stages = plan(exp.methods, exp.settings)
    with FolderLock(exp.out, "experiment"):
        claim_output(exp.out, experiment_settings(exp))
        return _run_locked(exp, stages)


def _run_locked(exp: Experiment, stages: list[Stage]) -> dict:
    log(f"{len(stages)} training stages for {', '.join(exp.methods)}")
    generate_nets(exp, stages)
    finals = train_stages(exp, stages)
    log(f"evaluating ({exp.test_periods} periods per test video; Sec. 6.1: {paper.TEST_PERIODS})")
    results = evaluate_methods(exp, finals, exp.out / "results.json")
    tables = write_comparison(exp.out / "results.json", exp.out / "comparison")
    plots = plot_curves(exp, stages)
    log(f"training curves: {len(plots)} plots under {exp.out / 'plots'}")
    return {"results": results, "tables": tables}


def prepare_dataset(dataset: str, root: Path, split: int, splits_dir: Path | None,
                    videos: Path | None, rawframes: Path | None, flow: str,
                    workers: int, list_dir: Path | None = None,
                    layout: dict | None = None, level: str = "auto",
                    num_classes: int | None = None) -> Path:
    """A dataset folder with frames/ and lists/: from videos (extracted), rawframes of TSN's
    or mmaction2's tools (linked, read with ``layout``), or as it is; lists from the official
    splits or, with ``list_dir``, TSN's / mmaction2's own lists (linked). Errors name the
    folder and what is missing. ``root`` is locked meanwhile: a second experiment on the same
    data root stops in one line while the first extracts or writes lists."""
    with FolderLock(root, "dataset preparation"):
        return _prepare_dataset_locked(dataset, root, split, splits_dir, videos, rawframes,
                                       flow, workers, list_dir, layout, level, num_classes)


def _prepare_dataset_locked(dataset: str, root: Path, split: int, splits_dir: Path | None,
                            videos: Path | None, rawframes: Path | None, flow: str,
                            workers: int, list_dir: Path | None = None,
                            layout: dict | None = None, level: str = "auto",
                            num_classes: int | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    frames = lists.frames_root(root)
    if videos is not None:
        if not videos.is_dir():
            raise FileNotFoundError(f"--videos {videos}: no such folder")
        log(f"extracting frames and {flow} flow of {videos} into {frames}")
        if extract.main([str(videos), str(frames), "--flow", flow, "--workers", str(workers)]):
            check_space(frames)  # a full disk: said in one line
            raise RuntimeError(f"extraction of {videos} stopped or failed for some videos "
                               "(see above)")
    elif rawframes is not None:
        if not rawframes.is_dir():
            raise FileNotFoundError(f"--rawframes {rawframes}: no such folder")
        if not frames.exists():
            frames.symlink_to(rawframes.resolve(), target_is_directory=True)
    if not frames.is_dir():
        raise FileNotFoundError(
            f"{root}: expected {frames} (one folder of img_/flow_x_/flow_y_ JPEGs per video); "
            "give --videos or --rawframes")
    lists_dir = lists.lists_dir(root)
    if rawframes is not None or list_dir is not None or layout:
        return _prepare_foreign(dataset, root, split, splits_dir, rawframes is not None,
                                list_dir, dict(layout or {}), level, num_classes)
    wanted = _split_lists(root, split)
    if not all(p.exists() for p in wanted):
        if splits_dir is None or not splits_dir.is_dir():
            raise FileNotFoundError(f"{lists_dir}: lists missing ({[p.name for p in wanted]}); "
                                    "give --splits with the dataset's official split files")
        args = [dataset, str(splits_dir), str(frames), str(lists_dir), "--split", str(split),
                "--fraction"]
        if rawframes is not None:
            args.append("--no-require-done")
        if lists.main(args):
            raise RuntimeError(f"building the lists of {dataset} split {split} failed (above)")
    return root


def _split_lists(root: Path, split: int) -> list[Path]:
    """The train and val lists of both modalities of a split, in dataset folder ``root``."""
    return [lists.list_path(root, m, s, split) for m in lists.MODALITIES for s in lists.SUBSETS]


def _prepare_foreign(dataset: str, root: Path, split: int, splits_dir: Path | None,
                     no_done: bool, list_dir: Path | None, layout: dict, level: str,
                     num_classes: int | None) -> Path:
    """Lists of rawframes made by other tools: theirs (adopted) or built from the splits with
    their file names; records how to read them in <root>/source.json."""
    rawframes.layout_from_params(layout)  # ValueError on a bad template, before any work
    frames, lists_dir = lists.frames_root(root), lists.lists_dir(root)
    source = dict(layout)
    if list_dir is not None:
        try:
            adopted = foreign_lists.adopt_lists(list_dir, dataset, split, lists_dir, frames,
                                                num_classes, paper.GROUPER_DATA_FRACTION)
        except DataError as exc:
            raise ValueError(f"--lists: {exc}") from None
        log(f"using {adopted.found.style} lists of {list_dir} as they are"
            + (f"; class names from {adopted.class_names_from}" if adopted.class_names_from
               else ""))
        source.update(adopted.found.data_params)
    elif splits_dir is None and all(p.exists() for p in _split_lists(root, split)):
        log(f"using the lists already in {lists_dir}")
        try:  # a level-2 tree they name gives the class names if nothing else does
            found = foreign_lists.find_lists(lists_dir, dataset, split)
            named = foreign_lists.adopt_class_names(found, lists_dir, lists_dir, num_classes)
        except DataError as exc:
            raise ValueError(f"{lists_dir}: {exc}") from None
        if named:
            log(f"class names from {named}")
    else:
        if splits_dir is None or not splits_dir.is_dir():
            raise FileNotFoundError(f"{lists_dir}: no lists; give --splits with the dataset's "
                                    "official split files or --lists with TSN's/mmaction2's")
        args = [dataset, str(splits_dir), str(frames), str(lists_dir), "--split", str(split),
                "--fraction", "--level", level]
        if no_done:
            args.append("--no-require-done")
        for key, value in layout.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        if lists.main(args):
            raise RuntimeError(f"building the lists of {dataset} split {split} failed (above)")
    rawframes.write_source_params(root, source)
    return root


def dataset_class_names(dataset: str, splits_dir: Path | None, split: int,
                        num_classes: int) -> list[str]:
    """Class names from the official split files (classInd.txt; HMDB51's per-class files);
    [] without them (evaluation then takes the dataset's lists/classes.txt)."""
    if splits_dir is None:
        return []
    try:
        names = list(splits.class_names(dataset, splits_dir, split))
    except DataError as exc:
        raise ValueError(f"--splits: {exc}") from None
    if len(names) != num_classes:
        raise ValueError(f"--splits {splits_dir}: {len(names)} classes, the experiment has "
                         f"{num_classes} (--num-classes)")
    return names


def gpu_usable(gpu: int) -> bool:
    """Whether this Caffe build can run on GPU ``gpu``. Probed in a child process: Caffe aborts
    (CHECK) on a CPU-only build or a missing device."""
    code = f"import caffe; caffe.set_mode_gpu(); caffe.set_device({int(gpu)})"
    env = dict(os.environ, GLOG_minloglevel="3")
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def choose_gpu(gpu: int | None, usable=gpu_usable) -> int:
    """``--gpu``: None picks GPU 0 when usable, else the CPU (-1, said on stderr); an explicit
    GPU that is not usable is a ValueError with the hint."""
    if gpu is not None and gpu < 0:
        return -1
    if usable(0 if gpu is None else gpu):
        return 0 if gpu is None else gpu
    if gpu is None:
        print("run_experiment: no usable GPU (CPU-only Caffe build, or no device): running on "
              "the CPU; --gpu N to insist", file=sys.stderr)
        return -1
    raise ValueError(f"--gpu {gpu}: this Caffe build cannot use GPU {gpu} (a CPU-only build, "
                     "or no such device); use --gpu -1 for the CPU, or build with "
                     "tools/install_caffe.sh --cuda on")



def run_reporting_errors(prog: str, job: Callable[[], T]) -> tuple[int, T | None]:
    """Runs a command line's ``job``: (0, its result), or (exit code, None) after one line on
    stderr: 130 when interrupted (the rerun resumes), 1 for a bad input or an OS error."""
    try:
        return 0, job()
    except TrainingInterrupted as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
    except (OSError, ValueError, RuntimeError, DataError) as exc:
        print(f"{prog}: error: {error_line(exc)}", file=sys.stderr)
        return 1, None
    return EXIT_INTERRUPTED, None

def main(argv: list[str] | None = None) -> int:
    # Caffe's INFO lines go to each run's train.log; the console shows progress only.
    os.environ.setdefault("GLOG_minloglevel", "2")
    ap = argparse.ArgumentParser(
        prog="tools/run_experiment.py",
        description="Train, evaluate and compare the paper's methods on UCF101/HMDB51 "
                    "(or any dataset in UCF101 split format).")
    ap.add_argument("--dataset", required=True, choices=["ucf101", "hmdb51", "synthetic"])
    ap.add_argument("--data-root", required=True, type=Path,
                    help="dataset folder: frames/ and lists/ are kept (or made) here")
    ap.add_argument("--videos", type=Path, help="the dataset's videos (extracted first)")
    ap.add_argument("--rawframes", type=Path,
                    help="rawframes of TSN's or mmaction2's tools (used as they are; see "
                         "--layout, --level)")
    ap.add_argument("--lists", type=Path,
                    help="folder of TSN's or mmaction2's list files for the split (used as they "
                         "are, instead of building lists from --splits)")
    ap.add_argument("--level", choices=["auto", "1", "2"], default="auto",
                    help="rawframes tree: <video>/ (1), <class>/<video>/ (2), or either")
    ap.add_argument("--splits", type=Path, help="official split files folder")
    ap.add_argument("--split", type=int, default=1, choices=[1, 2, 3])
    ap.add_argument("--num-classes", type=int, help="default: the dataset's (101, 51)")
    ap.add_argument("--preset", default="paper", choices=["paper", "small"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS)[:6] + list(METHODS)[7:],
                    choices=list(METHODS))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--gpu", type=int, default=None,
                    help="GPU id; -1 for the CPU (default: GPU 0 when this Caffe build can use "
                         "it, else the CPU)")
    ap.add_argument("--gpus", help="train data-parallel on these GPUs, e.g. 0,1 (pycaffe NCCL; "
                                   "evaluation uses the first)")
    ap.add_argument("--batch-per-gpu", type=int,
                    help="each GPU's batch; iter_size keeps the paper's batch of 16")
    ap.add_argument("--backend", default="pycaffe", choices=["pycaffe", "tool"])
    ap.add_argument("--vgg16", help="ImageNet VGG_ILSVRC_16_layers.caffemodel")
    ap.add_argument("--cnn-m-2048", help="ImageNet VGG_CNN_M_2048.caffemodel")
    ap.add_argument("--flow", default="tvl1", choices=["tvl1", "tvl1-fast", "farneback"])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-iter", type=int)
    ap.add_argument("--keep-snapshots", type=int, default=3,
                    help="snapshots kept per training run, newest first (default %(default)s; "
                         "100K iterations x 22 stages would otherwise fill hundreds of GB)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=paper.FUSION_STEPS,
                    help="T of the fusion nets: steps of the periods they are trained and "
                         f"evaluated on (odd, at most {paper.MAX_FUSION_STEPS})")
    ap.add_argument("--fusion-schedule", choices=SCHEDULES, default=DEFAULT_SCHEDULE.kind,
                    help="fusion stages: staged (head warm-up with frozen towers, then joint "
                         "Eq. 6; netgen/schedule.py) or joint (Sec. 6.1's one phase)")
    lists.add_layout_arguments(ap)
    args = ap.parse_args(argv)
    # Every path the user typed, resolved once against the working directory.
    for key in ("data_root", "videos", "rawframes", "splits", "lists", "out", "vgg16",
                "cnn_m_2048"):
        if getattr(args, key) is not None:
            setattr(args, key, Path(getattr(args, key)).expanduser().absolute())
    def experiment() -> dict:
        num_classes = args.num_classes or paper.NUM_CLASSES.get(args.dataset)
        if num_classes is None:
            raise ValueError("--num-classes is needed for this dataset")
        class_names = dataset_class_names(args.dataset, args.splits, args.split, num_classes)
        gpus = ()
        if args.gpus:
            gpus = parse_gpus(args.gpus)
            args.gpu = gpus[0]
        else:
            args.gpu = choose_gpu(args.gpu)
        layout = lists.layout_params(args) if (args.rawframes or args.lists) else None
        root = prepare_dataset(args.dataset, args.data_root, args.split, args.splits,
                               args.videos, args.rawframes, args.flow, args.workers,
                               list_dir=args.lists, layout=layout, level=args.level,
                               num_classes=num_classes)
        imagenet = {k: str(v) for k, v in (("vgg16", args.vgg16),
                                           ("cnn_m_2048", args.cnn_m_2048)) if v}
        exp = Experiment(dataset=args.dataset, data_root=root, num_classes=num_classes,
                         out=args.out, split=args.split, preset=args.preset,
                         methods=tuple(args.methods), backend=args.backend, gpu=args.gpu,
                         seed=args.seed, max_iter=args.max_iter, imagenet=imagenet,
                         class_names=class_names, keep_snapshots=args.keep_snapshots,
                         gpus=gpus, batch_per_gpu=args.batch_per_gpu, steps=args.steps,
                         fusion_schedule=replace(DEFAULT_SCHEDULE, kind=args.fusion_schedule))
        return run_experiment(exp)

    code, summary = run_reporting_errors("run_experiment", experiment)
    if code:
        return code
    print(summary["tables"])
    return 0
