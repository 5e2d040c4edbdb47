"""Switches between readings of the paper where its text admits more than one.

Each field of ``Readings`` is one ambiguity of docs/REPRODUCTION.md; the default is the reading
we chose. Every field is also a CLI flag of ``python -m netgen`` (``--side-slicing``, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: Allowed values of each string-valued reading (first = default).
CHOICES: dict[str, tuple[str, ...]] = {
    "side_slicing": ("shared", "scale_associated"),
    "group_loss": ("sum_log", "log_sum"),
    "lstm_weights": ("shared", "per_unit"),
    "step_scores": ("per_unit", "shared"),
    "forced_gt": ("replace_last", "append"),
    "tie_break": ("lower_index", "higher_index"),
    "syn_pairs": ("five_pairs", "centre_pair"),
    "test_output": ("last_step", "mean_steps"),
    "direct_combine": ("concat_fc7", "sum_scores"),
}


@dataclass(frozen=True)
class Readings:
    """Which reading of each ambiguity a generator follows."""

    #: How side outputs become side-map groups: every stage feeds every group ("shared", each
    #: stage's 1x1 side conv has G*C channels, sliced in G) or DeepSkeleton's scale-associated
    #: flows (coarser groups draw only on deeper stages).
    side_slicing: str = "shared"
    #: Eq. 1: sum over group members of log p ("sum_log", literal) or log of the summed group
    #: probability ("log_sum").
    group_loss: str = "sum_log"
    #: The 1/N of Eqs. 1, 3, 5. False (default): the batch mean Caffe's losses already take;
    #: alpha, beta, gamma are the loss weights and every softmax loss of every Table 1-2 net has
    #: weight 1 (times its alpha/beta/gamma). True: N = number of classes, applied to every
    #: row alike: alpha/N, beta/N, gamma/N, and 1/N on the baselines' softmax losses too.
    class_normalization: bool = False
    #: Eq. 2 writes Phi_t per unit: one Caffe LSTM shared over time ("shared") or one
    #: single-step LSTM per unit chained through expose_hidden ("per_unit").
    lstm_weights: str = "shared"
    #: "an additional fully connected layer is added to the output of each LSTM unit": one FC
    #: per step ("per_unit") or one FC shared by every step ("shared"); Eqs. 3 and 5.
    step_scores: str = "per_unit"
    #: A missing ground truth replaces the lowest-ranked member ("replace_last") or is appended.
    forced_gt: str = "replace_last"
    #: Order of equal grouper scores.
    tie_break: str = "lower_index"
    #: Baseline+SYN: five synchronous pairs (rgb_ti, flow_ti) or only the centre pair.
    syn_pairs: str = "five_pairs"
    #: Output of every 1x1 fusion conv goes through a ReLU.
    fusion_relu: bool = False
    #: Fusion nets keep each tower's own loss (Eq. 6 sums L_C over the towers).
    tower_losses: bool = True
    #: Test-time prediction: softmax of the last LSTM step, or the mean of every step's softmax.
    test_output: str = "last_step"
    #: Table 1 "direct combine": concatenated fc7s -> FC -> softmax, or the sum of two FC scores.
    direct_combine: str = "concat_fc7"

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"reading {name}={value!r} is not one of {list(choices)}")

    def replace(self, **changes: object) -> Readings:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown reading(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **changes)


DEFAULT = Readings()
