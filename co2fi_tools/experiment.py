"""The description of one experiment (dataset split, preset, methods, settings) and its folder.

Read by the pipeline (co2fi_tools.pipeline), the evaluation (co2fi_tools.evaluation.evaluate)
and the tools around them; it imports neither, so neither imports the other for it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from netgen import paper
from netgen.schedule import DEFAULT_SCHEDULE, FusionSchedule
from netgen.variants import Settings

#: The settings record of an experiment folder.
SETTINGS_FILE = "experiment.json"


@dataclass
class Experiment:
    dataset: str  # synthetic | ucf101 | hmdb51
    data_root: Path  # holds frames/ and lists/ (data_prep layout)
    num_classes: int
    out: Path
    split: int = 1
    preset: str = "small"
    methods: tuple[str, ...] = ()
    backend: str = "pycaffe"
    gpu: int = -1
    seed: int = 0
    #: Iterations of every stage (None: the generated solver's); for quick runs and tests.
    max_iter: int | None = None
    #: Iterations of the fusion stages only (None: as max_iter): they fine-tune trained towers.
    fusion_max_iter: int | None = None
    #: Base learning rate of the fusion stages (None: the generated solver's, as every stage).
    fusion_base_lr: float | None = None
    #: Factor on the base learning rate of the single-stream motion nets (TSN trains its flow
    #: nets at 5x its RGB nets' rate; Sec. 6.1 gives one rate: 1.0, the paper's reading).
    flow_lr_factor: float = 1.0
    #: Where the rate of a single-stream stage or grouper drops tenfold, as a fraction of the
    #: stage's iterations when ``max_iter`` sets them (None: the generated solver's step; the
    #: small preset's is at 1000 of 1500, which a shorter stage never reaches).
    lr_step_fraction: float | None = None
    #: ImageNet weights: {"vgg16": path, "cnn_m_2048": path} (optional).
    imagenet: dict[str, str] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    #: Snapshots kept per training run (the newest; final.caffemodel besides).
    keep_snapshots: int = 3
    #: Data-parallel training on these GPUs (co2fi_tools.training.multigpu); () = the single
    #: ``gpu``.
    gpus: tuple[int, ...] = ()
    batch_per_gpu: int | None = None
    #: Sizes of the preset changed for this experiment (``Preset.replace``), e.g. the
    #: miniature's {"dropout": 0.0} (docs/MINIATURE.md).
    preset_changes: dict = field(default_factory=dict)
    #: T of the fusion nets (trained and evaluated on periods of T steps; netgen --steps).
    steps: int = paper.FUSION_STEPS
    #: How the fusion stages train from trained towers (netgen.schedule).
    fusion_schedule: FusionSchedule = DEFAULT_SCHEDULE
    #: Periods scored a test video (Sec. 6.1: 12; `make claims` scores fewer periods of more
    #: videos, docs/MINIATURE.md).
    test_periods: int = paper.TEST_PERIODS

    def __post_init__(self) -> None:
        if self.test_periods < 1:
            raise ValueError(f"test periods must be >= 1, got {self.test_periods}")
        if not self.flow_lr_factor > 0:
            raise ValueError(f"flow lr factor must be > 0, got {self.flow_lr_factor}")
        if self.lr_step_fraction is not None and not 0 < self.lr_step_fraction <= 1:
            raise ValueError(f"lr step fraction must lie in (0, 1], got {self.lr_step_fraction}")

    @property
    def settings(self) -> Settings:
        """The netgen settings its nets are generated with (and its variants read from)."""
        return Settings(steps=self.steps, schedule=self.fusion_schedule)

    @property
    def nets(self) -> Path:
        return self.out / "nets"

    def net_file(self, variant: str, kind: str) -> Path:
        sub = "solvers" if kind == "solver" else "prototxt"
        return self.nets / sub / self.preset / self.dataset / f"{variant}_{kind}.prototxt"

    def run_dir(self, variant: str) -> Path:
        return self.out / "runs" / variant


def experiment_settings(exp: Experiment) -> dict:
    """The settings that change an experiment's results (what its folder is fingerprinted by);
    methods, backend, GPUs and snapshots kept do not."""
    return {"dataset": exp.dataset, "num_classes": exp.num_classes, "preset": exp.preset,
            "split": exp.split, "seed": exp.seed, "max_iter": exp.max_iter,
            "fusion_max_iter": exp.fusion_max_iter, "imagenet": dict(sorted(exp.imagenet.items())),
            "class_names": list(exp.class_names), "steps": exp.steps,
            "data_root": os.path.abspath(exp.data_root),
            "fusion_schedule": asdict(exp.fusion_schedule),
            # recorded only when set: folders made before the option keep their fingerprint
            **({"fusion_base_lr": exp.fusion_base_lr} if exp.fusion_base_lr is not None
               else {}),
            **({"test_periods": exp.test_periods} if exp.test_periods != paper.TEST_PERIODS
               else {}),
            # always recorded: a folder made before the option lacks it, and a key the folder
            # lacks is added, not compared (co2fi_tools.pipeline.claim_output)
            "flow_lr_factor": exp.flow_lr_factor, "lr_step_fraction": exp.lr_step_fraction}
