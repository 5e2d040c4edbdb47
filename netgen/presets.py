"""Size presets: one topology, two sets of numbers.

``paper`` holds the sizes of the paper (Sec. 6.1 via ``netgen.paper``) and of the two cited trunks
(VGG-16, CNN_M_2048); ``small`` has the same topology with narrower layers and 64x64 inputs so the
CPU demo and the tests train in minutes. A preset changes numbers only: every generator takes a
``Preset`` and never branches on its name.

Sizes the paper leaves open (FC1, FC2, the LSTMs, side-output and fusion channels) are marked
"ambiguity" here; docs/REPRODUCTION.md gives the choice and the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from netgen import paper

#: Number of classes of the synthetic data set (small preset); a CLI option overrides it.
SYNTHETIC_CLASSES: int = 10


@dataclass(frozen=True)
class Preset:
    """Every size a generator needs. Fields are numbers only."""

    name: str
    #: Side of the square network input (paper: 224, after TSN).
    input_size: int
    #: Inputs are multiplied by this before the first convolution (Caffe Power layer, left
    #: out when 1). The paper preset starts from ImageNet VGG-16, which expects raw
    #: mean-subtracted pixels; nets trained from scratch (small) learn far faster on unit scale.
    input_scale: float
    #: VGG-16 output channels of stages 1..5 and the width of fc6/fc7.
    vgg_channels: tuple[int, int, int, int, int]
    vgg_fc: int
    #: CNN_M_2048 channels of conv1..conv5, fc6 and fc7 (Chatfield et al. 2014).
    cnnm_channels: tuple[int, int, int, int, int]
    cnnm_fc6: int
    cnnm_fc7: int
    #: Ambiguity: channels C of each side-output slice (a 1x1 side conv has G*C channels).
    side_channels: int
    #: Ambiguity: width of FC1 (the per-granularity feature x_k) and of FC2.
    fc1: int
    fc2: int
    #: Ambiguity: hidden units of the 3-unit coarse-to-fine LSTM (Eq. 2).
    c2f_lstm: int
    #: Ambiguity: output channels of each 1x1 stream-wise fusion conv (Sec. 5.1).
    fusion_channels: int
    #: Ambiguity: hidden units of the 5-unit asynchronous LSTM (Sec. 5.2).
    async_lstm: int
    #: Ambiguity: dropout ratio after fc6/fc7/FC1/FC2 (VGG-16's own value).
    dropout: float
    #: Solver (Sec. 6.1).
    batch_size: int
    base_lr: float
    lr_gamma: float
    lr_step: int
    max_iter: int
    momentum: float
    #: Ambiguity: weight decay is not in the paper (TSN/VGG use 5e-4).
    weight_decay: float
    #: Not in the paper: Caffe's clip_gradients (a gradient whose global L2 norm exceeds it is
    #: scaled down to it; 0: none). Every stage alike; docs/REPRODUCTION.md, "gradient clipping".
    clip_gradients: float
    grouper_max_iter: int
    #: Not in the paper: validation and bookkeeping of the solver.
    test_iter: int
    test_interval: int
    display: int
    snapshot: int
    solver_mode: str
    #: Batch of deploy nets: frames of one video (single-stream) / periods of one video (fusion).
    deploy_batch_single: int
    deploy_batch_fusion: int

    def replace(self, **changes: object) -> Preset:
        """A copy with some sizes changed (unknown names raise ValueError)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown preset field(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **changes)


PAPER = Preset(
    name="paper",
    input_size=paper.INPUT_SIZE,
    input_scale=1.0,
    vgg_channels=(64, 128, 256, 512, 512),
    vgg_fc=4096,
    cnnm_channels=(96, 256, 512, 512, 512),
    cnnm_fc6=4096,
    cnnm_fc7=2048,
    side_channels=1,
    fc1=1024,
    fc2=1024,
    c2f_lstm=512,
    fusion_channels=2,
    async_lstm=512,
    dropout=0.5,
    batch_size=paper.BATCH_SIZE,
    base_lr=paper.BASE_LR,
    lr_gamma=paper.LR_GAMMA,
    lr_step=paper.LR_STEP,
    max_iter=paper.MAX_ITER,
    momentum=paper.MOMENTUM,
    weight_decay=5e-4,
    clip_gradients=0.0,
    grouper_max_iter=paper.GROUPER_MAX_ITER,
    test_iter=100,
    test_interval=5000,
    display=20,
    snapshot=5000,
    solver_mode="GPU",
    deploy_batch_single=paper.TEST_PERIODS * paper.FUSION_STEPS,
    deploy_batch_fusion=paper.TEST_PERIODS,
)

SMALL = Preset(
    name="small",
    input_size=64,
    input_scale=1 / 128,
    vgg_channels=(8, 16, 32, 64, 64),
    vgg_fc=256,
    cnnm_channels=(12, 32, 64, 64, 64),
    cnnm_fc6=256,
    cnnm_fc7=128,
    side_channels=1,
    fc1=128,
    fc2=128,
    c2f_lstm=64,
    fusion_channels=2,
    async_lstm=64,
    dropout=0.5,
    batch_size=8,
    # Trained from scratch, with He init and unit-scale inputs: 0.01 stalls, 3e-3 learns.
    base_lr=3e-3,
    lr_gamma=paper.LR_GAMMA,
    lr_step=1000,
    max_iter=1500,
    momentum=paper.MOMENTUM,
    weight_decay=5e-4,
    # Without it the LSTM-only losses of CO2FI-no class grouping blew up and stuck at ln 12 in
    # 3 of 3 seeds, and the fusion stages' joint phases raised their losses (docs/MINIATURE.md).
    clip_gradients=10.0,
    grouper_max_iter=300,
    test_iter=10,
    test_interval=500,
    display=10,
    snapshot=500,
    solver_mode="CPU",
    deploy_batch_single=paper.TEST_PERIODS * paper.FUSION_STEPS,
    deploy_batch_fusion=paper.TEST_PERIODS,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (PAPER, SMALL)}

#: Most classes a synthetic data set may have. Not a paper number: the generator's speed tier
#: grows every 32 classes (1 + 0.5 per tier), so past a few hundred classes objects cross the
#: frame in a step; 1000 (ImageNet's count) bounds fc8 and the class-group tables.
MAX_SYNTHETIC_CLASSES: int = 1000

#: Datasets generated per preset, with their number of classes.
DATASETS: dict[str, dict[str, int]] = {
    "paper": dict(paper.NUM_CLASSES),
    "small": {"synthetic": SYNTHETIC_CLASSES},
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError for an unknown one."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
