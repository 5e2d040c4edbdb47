"""The miniature of docs/MINIATURE.md: its data and its pretrained trunk (the paper's ImageNet).

The data is the ``miniature`` design of data_prep.synthetic; every method starts from a trunk
pretrained once on a separate synthetic set of other classes (the ``pretrain`` design), as the
paper starts from ImageNet. The trunk is cached outside the clone
(``~/.cache/co2fi/pretrain/<key>/``, ``$CO2FI_CACHE`` moves it), keyed by what made it.
`make claims` (co2fi_tools.claims) and `make demo` (co2fi_tools.demo) share both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from co2fi_tools.cpu_threads import BLAS_THREADS_VARIABLE, MINIATURE_BLAS_THREADS, set_blas_threads
from co2fi_tools.pipeline import Experiment, generate_nets, log, train_stages
from co2fi_tools.safe_io import FolderLock, atomic_write_bytes, atomic_write_text, check_space
from co2fi_tools.stages import Stage
from netgen import names
from netgen.presets import SMALL
from netgen.schedule import DEFAULT_SCHEDULE, SCHEDULES, FusionSchedule

#: Dropout of the miniature's nets (the small preset's 0.5 kept them at chance:
#: docs/benchmarks/claims-cpu.md).
MINIATURE_DROPOUT = 0.0
#: Factor on the single-stream motion nets' learning rate (Experiment.flow_lr_factor; decided
#: on the validation split: docs/MINIATURE.md, "the single-stream stages' learning rate").
MINIATURE_FLOW_LR_FACTOR = 1.0
#: Where a single-stream stage's or grouper's rate drops tenfold, as a fraction of its
#: iterations (Experiment.lr_step_fraction); 0: the generated solver's step, a constant rate
#: within the miniature's stages. Halving at 0.5 helped the towers on the validation split and
#: took the fusion stages' gain away there: not adopted yet (docs/MINIATURE.md, "the
#: single-stream stages' learning rate").
MINIATURE_LR_STEP_FRACTION = 0.0


@dataclass(frozen=True)
class Miniature:
    """What makes the miniature's data (docs/MINIATURE.md)."""

    classes: int = 12
    clips_per_class: int = 32
    #: Clips a class held out for testing (the rest train): a quarter, as UCF101's splits.
    test_clips: int = 8
    frames: int = 48
    flow: str = "tvl1-fast"
    data_seed: int = 0


#: --pretrain-design: (synthetic design, classes, clips a class); both 320 clips. "textures"
#: (shape x texture) was chosen on the validation split (docs/MINIATURE.md); the "shapes"
#: trunk, the default until 2026-12-07, is blind to textures.
PRETRAIN_DESIGNS = {"textures": ("pretrain_texture", 16, 20), "shapes": ("pretrain", 8, 40)}
DEFAULT_PRETRAIN_DESIGN = "textures"
_DESIGN, _CLASSES, _CLIPS = PRETRAIN_DESIGNS[DEFAULT_PRETRAIN_DESIGN]


@dataclass(frozen=True)
class Pretraining:
    """What makes the pretrained trunk (the key of its cache folder)."""

    classes: int = _CLASSES
    clips_per_class: int = _CLIPS
    frames: int = 48
    #: The pretraining trains appearance nets only; its flow is extracted (the lists need it)
    #: but never read, so the fastest method does.
    flow: str = "farneback"
    iters: int = 4000
    #: The learning rate drops tenfold here (the small preset drops it at 1000, which stopped
    #: the pretraining at 25 % test accuracy; docs/benchmarks/claims-cpu.md).
    lr_step: int = 3000
    seed: int = 0
    #: The synthetic design of its classes (data_prep.synthetic; PRETRAIN_DESIGNS).
    design: str = _DESIGN


#: The share of a class's clips held out for testing when only the clip count is given.
TEST_SHARE = 0.25

#: Frames are stored with the small preset's input (64) as TSN's 224 is to 256: short side 72.
FRAME_SIZE = "96x72"


def prepare_data(root: Path, classes: int, clips: int, frames: int, flow: str, workers: int,
                 seed: int, design: str = "miniature", test_clips: int | None = None) -> None:
    """Synthetic videos of ``design``, frames + flow and split lists under ``root``, each made
    by data_prep's own CLI (resumable: every step skips what is done). ``test_clips`` of the
    ``clips`` a class are held out (default: the generator's quarter)."""
    from data_prep import extract, lists, synthetic

    if not (root / "splits" / "classInd.txt").exists():
        log(f"making {classes} x {clips} synthetic videos ({design}) under {root / 'videos'}")
        held_out = [] if test_clips is None else ["--test-fraction", repr(test_clips / clips)]
        rc = synthetic.main([str(root), "--design", design, "--classes", str(classes),
                             "--clips-per-class", str(clips), "--frames", str(frames),
                             "--seed", str(seed), *held_out])
        if rc:
            raise RuntimeError(f"synthetic video generation failed under {root} (exit {rc})")
    frames_root, lists_dir = lists.frames_root(root), lists.lists_dir(root)
    log(f"extracting frames and {flow} optical flow into {frames_root}")
    if extract.main([str(root / "videos"), str(frames_root), "--size", FRAME_SIZE,
                     "--flow", flow, "--workers", str(workers)]):
        check_space(frames_root)  # a full disk: said in one line
        raise RuntimeError(f"extraction into {frames_root} failed for some videos (see above)")
    if lists.main(["synthetic", str(root / "splits"), str(frames_root), str(lists_dir),
                   "--fraction"]):
        raise RuntimeError(f"building the lists under {lists_dir} failed (see above)")


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


#: The pretraining's solver: never clipped (its trunks were trained so before the preset's
#: clip_gradients existed; the cache keys of both designs stay valid).
PRETRAIN_SOLVER = {"clip_gradients": 0.0}
#: Sizes of the fusion nets only: the pretraining's nets have none, its key ignores them.
FUSION_SIZES = ("fusion_channels",)
#: Preset sizes the miniature's tools set by a flag of the same name (--clip-gradients, ...),
#: named in a run's preset changes and settings only when not the preset's own.
FLAG_SIZES = ("clip_gradients", *FUSION_SIZES)


def flag_sizes(args: argparse.Namespace) -> dict:
    """FLAG_SIZES as the options give them (the preset's value where a caller has none)."""
    return {k: getattr(args, k, getattr(SMALL, k)) for k in FLAG_SIZES}


def pretrain_key(pre: Pretraining, preset: str, changes: dict | None = None) -> str:
    """Hash of the settings, of what the generator draws and of the nets that make the trunk."""
    from data_prep import synthetic
    from netgen.emit import generate
    from netgen.presets import get_preset

    changes = _pretrain_changes(changes)
    nets = generate(get_preset(preset).replace(**changes, **PRETRAIN_SOLVER), "synthetic",
                    pre.classes, names=["baseline_rgb", "grouper_rgb"])
    settings = asdict(pre)
    if pre.design == PRETRAIN_DESIGNS["shapes"][0]:  # its key from before the field existed
        del settings["design"]
    parts = {"settings": settings,
             "preset": preset, "preset_changes": changes or {},
             "clips": synthetic.design_fingerprint(pre.design, pre.classes, pre.frames,
                                                   pre.seed),
             "nets": {k: _sha(v) for k, v in sorted(nets.items())}}
    return _sha(json.dumps(parts, sort_keys=True, default=str))[:16]


def default_cache() -> Path:
    return Path(os.environ.get("CO2FI_CACHE", Path.home() / ".cache" / "co2fi")) / "pretrain"


def strip_for_trunk(src: Path, dst: Path, prefix: str = "") -> None:
    """A trained net as an ImageNet-like source: the classifier (fc8, class-specific) dropped
    and ``prefix`` taken off layer names (a grouper's ``grouper_conv1`` -> ``conv1``)."""
    from co2fi_tools.training.train import _caffe_pb2

    pb = _caffe_pb2()
    net = pb.NetParameter()
    net.ParseFromString(src.read_bytes())
    kept = [layer for layer in net.layer if layer.blobs
            and layer.name.removeprefix(prefix) != "fc8"]
    del net.layer[:]
    for layer in kept:
        layer.name = layer.name.removeprefix(prefix)
        net.layer.add().CopyFrom(layer)
    atomic_write_bytes(dst, net.SerializeToString())


def pretrained_trunk(pre: Pretraining, preset: str, cache: Path, workers: int, gpu: int,
                     backend: str, changes: dict | None = None) -> dict[str, str]:
    """{"vgg16": ..., "cnn_m_2048": ...} trained once on the pretraining set (cached)."""
    folder = cache / pretrain_key(pre, preset, changes)
    trunk = {"vgg16": folder / "vgg16_trunk.caffemodel",
             "cnn_m_2048": folder / "cnn_m_2048_trunk.caffemodel"}
    if all(p.exists() for p in trunk.values()):
        log(f"pretrained trunk: {folder} (cached)")
        return {k: str(v) for k, v in trunk.items()}
    log(f"pretraining the trunks once on {pre.classes} other synthetic classes ({pre.design}) "
        f"-> {folder}")
    with FolderLock(folder, "pretraining"):  # a second pretraining here stops with the holder
        atomic_write_text(folder / "settings.json", json.dumps(
            {"pretraining": asdict(pre), "preset": preset, "preset_changes": changes or {}},
            indent=1) + "\n")
        data = folder / "data"
        prepare_data(data, pre.classes, pre.clips_per_class, pre.frames, pre.flow, workers,
                     pre.seed, design=pre.design)
        exp = Experiment(dataset="synthetic", data_root=data, num_classes=pre.classes,
                         out=folder, preset=preset, backend=backend, gpu=gpu, seed=pre.seed,
                         max_iter=pre.iters,
                         preset_changes={**(changes or {}), **PRETRAIN_SOLVER,
                                         "lr_step": pre.lr_step})
        stages = [Stage("baseline_rgb"), Stage("grouper_rgb")]
        generate_nets(exp, stages)
        finals = train_stages(exp, stages)
        strip_for_trunk(finals["baseline_rgb"], trunk["vgg16"])
        strip_for_trunk(finals["grouper_rgb"], trunk["cnn_m_2048"],
                        prefix=names.GROUPER_PREFIX)
    return {k: str(v) for k, v in trunk.items()}


def _absolute_path(text: str) -> Path:
    """A path option resolved once, where the user gave it (relative to their cwd)."""
    return Path(os.path.abspath(Path(text).expanduser()))


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options that make the miniature's data and trunk (claims and demo alike)."""
    ap.add_argument("--classes", type=int, default=Miniature.classes)
    ap.add_argument("--clips-per-class", type=int,
                    help="clips a class, training and test (default: the run's own)")
    ap.add_argument("--test-clips", type=int,
                    help="clips a class held out for testing (default: the run's own, or a "
                         "quarter of --clips-per-class when that is given)")
    ap.add_argument("--frames", type=int, default=Miniature.frames)
    ap.add_argument("--flow", default=Miniature.flow, choices=["tvl1", "tvl1-fast", "farneback"],
                    help="TV-L1 with fewer scales and warps by default: full TV-L1 takes "
                    "about 40 s a synthetic clip on 2 cores")
    ap.add_argument("--pretrain-iters", type=int,
                    help=f"iterations of the pretraining (default {Pretraining.iters}, or "
                         "--max-iter when that is given and smaller: a quick run stays quick; "
                         "0: no pretrained trunk, from scratch)")
    ap.add_argument("--pretrain-clips", type=int,
                    help="clips a pretraining class (default: the design's, "
                         f"{', '.join(f'{k} {v[2]}' for k, v in PRETRAIN_DESIGNS.items())}, or "
                         "--clips-per-class when that is given and smaller)")
    ap.add_argument("--pretrain-design", choices=list(PRETRAIN_DESIGNS),
                    default=DEFAULT_PRETRAIN_DESIGN,
                    help="classes of the pretraining set: textures (16: shape x texture) or "
                         "shapes (8, textures random: its trunk is blind to textures) (default "
                         "%(default)s; docs/MINIATURE.md)")
    ap.add_argument("--pretrain-cache", default=default_cache(), type=_absolute_path,
                    help="folder of the cached pretrained trunks (default %(default)s)")
    ap.add_argument("--dropout", type=float, default=MINIATURE_DROPOUT,
                    help="dropout ratio of the small preset's FC layers in every net of the "
                         "miniature, pretraining included (default %(default)s; the preset's "
                         "0.5 kept the small nets at chance, docs/MINIATURE.md)")
    ap.add_argument("--clip-gradients", type=float, default=SMALL.clip_gradients,
                    help="Caffe's clip_gradients of every stage's solver, pretraining excepted "
                         "(0: none; default %(default)s; docs/REPRODUCTION.md, \"gradient "
                         "clipping\")")
    ap.add_argument("--fusion-channels", type=int, default=SMALL.fusion_channels,
                    help="output maps of each 1x1 stream-wise fusion conv (Sec. 5.1) in every "
                         "fusion net (default %(default)s; 1: the two streams' features summed; "
                         "docs/REPRODUCTION.md, \"fusion conv output channels\")")
    ap.add_argument("--fusion-lr", type=float,
                    help="base learning rate of the fusion stages (default: the generated "
                         "solver's, as every stage; docs/benchmarks/claims-cpu.md measures why "
                         "a lower one may be wanted)")
    ap.add_argument("--flow-lr-factor", type=float, default=MINIATURE_FLOW_LR_FACTOR,
                    help="factor on the base learning rate of the single-stream motion nets "
                         "(default %(default)s; TSN trains flow at 5x RGB's rate; "
                         "docs/REPRODUCTION.md, \"learning rate of the motion nets\")")
    ap.add_argument("--lr-step-fraction", type=float, default=MINIATURE_LR_STEP_FRACTION,
                    help="where the learning rate of every single-stream stage and grouper "
                         "drops tenfold, as a fraction of its iterations (default %(default)s: "
                         "the small preset's step at 1000, which stages of 1000 iterations or "
                         "fewer never reach; docs/MINIATURE.md)")
    ap.add_argument("--fusion-schedule", choices=SCHEDULES, default=DEFAULT_SCHEDULE.kind,
                    help="how the fusion stages train from trained towers: staged (head "
                         "warm-up with frozen towers, then joint Eq. 6 with the towers at a "
                         "lower rate; netgen/schedule.py) or joint (Sec. 6.1's one phase) "
                         "(default %(default)s)")
    ap.add_argument("--gpu", type=int, default=-1, help="GPU id (default -1: the CPU)")
    ap.add_argument("--backend", default="pycaffe", choices=["pycaffe", "tool"])
    ap.add_argument("--workers", type=int, default=2, help="extraction processes")
    ap.add_argument("--blas-threads", type=int,
                    help=f"threads of the BLAS under CPU Caffe (default {MINIATURE_BLAS_THREADS}, "
                         f"or ${BLAS_THREADS_VARIABLE} when set; 0: OpenBLAS's own, one a core; "
                         "docs/benchmarks/nets-cpu.md, \"BLAS threads\")")


def resolve_sizes(args: argparse.Namespace, default_max_iter: int,
                  default_fusion_iters: int, default_clips: int = Miniature.clips_per_class,
                  default_test_clips: int = Miniature.test_clips,
                  ap: argparse.ArgumentParser | None = None) -> None:
    """Fill the sizes left unset (in place): the run's own defaults, and the fusion stages and
    the pretraining scaled down with a run the user made smaller (``--max-iter 3`` trains
    every stage, the pretraining included, at most 3 iterations). ``ap``: where a size that
    cannot be (a test split, a negative clip, no fusion map) is said (one line, exit 2).
    The BLAS threads of ``--blas-threads`` are set here too, for this process and its children."""
    given_iters, given_clips = args.max_iter, args.clips_per_class
    if args.max_iter is None:
        args.max_iter = default_max_iter
    if args.fusion_iters is None:
        args.fusion_iters = (default_fusion_iters if given_iters is None
                             else min(default_fusion_iters, given_iters))
    if args.clips_per_class is None:
        args.clips_per_class = default_clips
    if getattr(args, "test_clips", None) is None:
        args.test_clips = (default_test_clips if given_clips is None
                           else max(1, round(given_clips * TEST_SHARE)))
    for message in _size_errors(args):
        if ap is None:
            raise ValueError(message)
        ap.error(message)
    # before any Caffe loads: OpenBLAS reads its thread count once (co2fi_tools.cpu_threads)
    set_blas_threads(getattr(args, "blas_threads", None))
    if args.pretrain_iters is None:
        args.pretrain_iters = (Pretraining.iters if given_iters is None
                               else min(Pretraining.iters, given_iters))
    if args.pretrain_clips is None:
        design_clips = PRETRAIN_DESIGNS[getattr(args, "pretrain_design",
                                                DEFAULT_PRETRAIN_DESIGN)][2]
        args.pretrain_clips = (design_clips if given_clips is None
                               else min(design_clips, given_clips))


def _size_errors(args: argparse.Namespace) -> list[str]:
    errors = []
    if not 1 <= args.test_clips < args.clips_per_class:
        errors.append(f"--test-clips must be in 1..{args.clips_per_class - 1} (of "
                      f"--clips-per-class {args.clips_per_class}), got {args.test_clips}")
    if getattr(args, "clip_gradients", 0.0) < 0:
        errors.append(f"--clip-gradients must be 0 (none) or more, got {args.clip_gradients}")
    if not getattr(args, "flow_lr_factor", 1.0) > 0:
        errors.append(f"--flow-lr-factor must be more than 0, got {args.flow_lr_factor}")
    if not 0 <= getattr(args, "lr_step_fraction", 0.0) <= 1:
        errors.append(f"--lr-step-fraction must lie in [0, 1], got {args.lr_step_fraction}")
    if getattr(args, "fusion_channels", 1) < 1:
        errors.append(f"--fusion-channels must be 1 or more, got {args.fusion_channels}")
    if (getattr(args, "blas_threads", None) or 0) < 0:
        errors.append(f"--blas-threads must be 0 (OpenBLAS's own) or more, got {args.blas_threads}")
    return errors


def from_arguments(args: argparse.Namespace) -> tuple[Miniature, Pretraining | None]:
    """The miniature and its pretraining (None: from scratch) the options describe."""
    mini = Miniature(args.classes, args.clips_per_class, args.test_clips, args.frames,
                     args.flow)
    design, classes, _ = PRETRAIN_DESIGNS[args.pretrain_design]
    pre = (Pretraining(classes=classes, clips_per_class=args.pretrain_clips, frames=args.frames,
                       iters=args.pretrain_iters, design=design)
           if args.pretrain_iters > 0 else None)
    return mini, pre


def prepare(mini: Miniature, pre: Pretraining | None, data: Path, cache: Path, workers: int,
            gpu: int, backend: str, changes: dict) -> dict[str, str]:
    """The miniature's data under ``data`` and the pretrained trunk ({} without one)."""
    prepare_data(data, mini.classes, mini.clips_per_class, mini.frames, mini.flow, workers,
                 mini.data_seed, test_clips=mini.test_clips)
    if pre is None:
        return {}
    return pretrained_trunk(pre, "small", cache, workers, gpu, backend, changes)


def stage_rates(args: argparse.Namespace) -> dict:
    """The Experiment fields of ``--flow-lr-factor`` and ``--lr-step-fraction`` (0: None, the
    solver's own step); a namespace without an option has the miniature's. The tools pass them
    to their Experiment and record them with their folder's settings."""
    return {"flow_lr_factor": getattr(args, "flow_lr_factor", MINIATURE_FLOW_LR_FACTOR),
            "lr_step_fraction": getattr(args, "lr_step_fraction",
                                        MINIATURE_LR_STEP_FRACTION) or None}


def fusion_schedule(args: argparse.Namespace) -> FusionSchedule:
    """The fusion stages' schedule of ``--fusion-schedule`` (its numbers: netgen.schedule)."""
    return replace(DEFAULT_SCHEDULE, kind=args.fusion_schedule)


def preset_changes(args: argparse.Namespace) -> dict:
    """What the miniature changes in the small preset, for every net (pretraining included,
    but for the clipping: PRETRAIN_SOLVER). ``clip_gradients`` and ``fusion_channels`` only
    when not the preset's, so that folders made before the options keep their fingerprint."""
    return {"dropout": args.dropout,
            **{k: v for k, v in flag_sizes(args).items() if v != getattr(SMALL, k)}}


def _pretrain_changes(changes: dict | None) -> dict:
    """The preset changes the pretraining keys and trains by: the trunk is trained as before
    gradient clipping existed (PRETRAIN_SOLVER), whatever the stages after it clip at, and the
    fusion nets' sizes (FUSION_SIZES) change none of its nets."""
    return {k: v for k, v in (changes or {}).items()
            if k not in PRETRAIN_SOLVER and k not in FUSION_SIZES}
