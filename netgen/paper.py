"""Every number of the paper, in one place.

Lin, Mi, Wu, Lu, Xiong. "Action Recognition with Coarse-to-Fine Deep Feature Integration and
Asynchronous Fusion", AAAI-18. Section and equation numbers refer to that paper; numbers the
paper takes from TSN (Wang et al. 2016b, "the same method as", Sec. 6.1) are marked so.
Nothing else in the code base may repeat these literals: import them from here.
docs/REPRODUCTION.md maps each of them to the code and tests that use it.
"""

from __future__ import annotations

# --- Sec. 4.1, Fig. 3: multi-granularity feature extraction -------------------------------------
#: VGG-16 layers whose outputs feed the three side-output flows.
SIDE_OUTPUT_LAYERS: tuple[str, ...] = ("conv3_3", "conv4_3", "conv5_3")

# --- Sec. 4.2, Eq. 1: adaptive class group forming ---------------------------------------------
#: Size of the class group of each granularity, coarse to fine (top-5, top-3, top-1).
GROUP_SIZES: tuple[int, ...] = (5, 3, 1)
#: alpha_k of Eq. 1, one per granularity, coarse to fine (Sec. 6.1).
ALPHA: tuple[float, ...] = (0.1, 0.1, 1.0)

# --- Sec. 4.3, Eqs. 2-3: coarse-to-fine integration --------------------------------------------
#: beta of Eq. 3 (Sec. 6.1).
BETA: float = 2.0

# --- Sec. 5, Eqs. 5-6: asynchronous fusion -----------------------------------------------------
#: T of Eqs. 5 and 6: fused pairs, LSTM units and inputs of the five-input stream.
FUSION_STEPS: int = 5
#: Delta: temporal distance between the five inputs being fused (Sec. 5.1, Sec. 6.1).
DELTA: int = 5
#: The Delta values of Table 2's rows.
TABLE2_DELTAS: tuple[int, ...] = (1, 5)
#: Kernel side of each single-layer fusion ConvNet (Sec. 5.1: "a single layer ConvNet with 1 x 1
#: kernel").
FUSION_KERNEL: int = 1
#: gamma of Eq. 5 (Sec. 6.1).
GAMMA: float = 2.0

# --- Sec. 6.1: training ------------------------------------------------------------------------
BATCH_SIZE: int = 16
MOMENTUM: float = 0.9
BASE_LR: float = 1e-2
LR_GAMMA: float = 0.1  # "decreased to its 1/10"
LR_STEP: int = 20_000  # "... for every 20K iterations"
MAX_ITER: int = 100_000
#: The CNN_M_2048 grouper: 10K iterations on 1/8 of the training data.
GROUPER_MAX_ITER: int = 10_000
GROUPER_DATA_FRACTION: float = 1 / 8

# --- Sec. 6.1: evaluation ----------------------------------------------------------------------
#: Periods sampled from each test video; each holds FUSION_STEPS frames and flow stacks DELTA apart.
TEST_PERIODS: int = 12

# --- Sec. 6.1, after TSN (Wang et al. 2016b): inputs and augmentation --------------------------
#: Optical-flow fields per stack; x and y interleaved give 2 * FLOW_STACK channels.
FLOW_STACK: int = 10
#: Network input side.
INPUT_SIZE: int = 224
#: Frames are stored resized to this (width, height).
FRAME_SIZE: tuple[int, int] = (340, 256)
#: Scale jitter: crop sides, and how many steps apart width and height may be.
CROP_SCALES: tuple[int, ...] = (256, 224, 192, 168)
MAX_DISTORT: int = 1
#: Flow values are clipped to +-FLOW_BOUND and mapped linearly to 0..255 (TSN's dense_flow).
FLOW_BOUND: float = 20.0
#: Mean subtraction, BGR for frames and one value for flow (TSN's prototxt).
RGB_MEAN_BGR: tuple[float, float, float] = (104.0, 117.0, 123.0)
FLOW_MEAN: float = 128.0

# --- Limits of this implementation (not numbers of the paper) ---------------------------------
#: Largest T (odd: the period has a centre step) that netgen's fusion nets, the period sampler
#: (co2fi_layers.sampling) and the evaluation accept; the paper's T is FUSION_STEPS.
MAX_FUSION_STEPS: int = 9


def check_period_steps(period_steps: int) -> int:
    """``period_steps`` (T) if odd and in 1..MAX_FUSION_STEPS, else ValueError: the one rule of
    netgen's fusion nets and the period sampler (co2fi_layers.sampling imports it)."""
    if (not isinstance(period_steps, int) or isinstance(period_steps, bool)
            or not 1 <= period_steps <= MAX_FUSION_STEPS or period_steps % 2 == 0):
        raise ValueError(f"fusion steps T must be odd and in 1..{MAX_FUSION_STEPS} (the "
                         f"centre input sits at step (T+1)/2), not {period_steps!r}")
    return period_steps

# --- Sec. 6.1: datasets ------------------------------------------------------------------------
NUM_CLASSES: dict[str, int] = {"ucf101": 101, "hmdb51": 51}
