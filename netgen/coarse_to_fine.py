"""The coarse-to-fine network (Sec. 4, Fig. 3): its blocks, one function each.

multi-granularity feature extraction (Sec. 4.1): ``side_outputs`` -> ``side_map_groups`` ->
``multi_granularity_features`` (FC1 per granularity);
adaptive class group forming (Sec. 4.2, training only): ``class_group_heads`` (FC2, FC3),
``adaptive_class_groups`` (CNN_M_2048 grouper + ClassGroupLayer), ``group_loss`` (Eq. 1);
coarse-to-fine integration (Sec. 4.3): ``coarse_to_fine_integration`` (Eq. 2) and ``step_losses``
(Eq. 3); ``coarse_to_fine_tower`` puts them together (Eq. 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from caffe import layers as L
from caffe.net_spec import NetSpec, Top

from netgen import names, paper
from netgen.blocks import TEST_ONLY, TRAIN_ONLY, Scope, conv, fc, python_param
from netgen.presets import Preset
from netgen.readings import Readings
from netgen.recurrent import lstm
from netgen.trunks import VGG16_STAGE_STRIDES, cnn_m_2048_trunk, vgg16_trunk

#: Names of the granularities of paper.GROUP_SIZES, coarse to fine.
GRANULARITIES: tuple[str, ...] = ("coarse", "medium", "fine")
#: How class groups are formed: by the grouper (CO2FI), not at all (no Eq. 1 loss), or from the
#: ground truth alone (CO2FI-no coarseness).
CLASS_GROUPING: tuple[str, ...] = ("adaptive", "none", "ground_truth")


@dataclass(frozen=True)
class CoarseToFineConfig:
    """What distinguishes the Table 1 CO2FI variants."""

    class_grouping: str = "adaptive"
    #: Granularities used, counted from the finest (3 = all, 2 = coarsest removed).
    granularities: int = len(paper.GROUP_SIZES)
    group_sizes: tuple[int, ...] = paper.GROUP_SIZES
    alpha: tuple[float, ...] = paper.ALPHA
    beta: float = paper.BETA

    def active(self) -> tuple[tuple[str, int, float], ...]:
        """(name, group size, alpha) of every granularity used, coarse to fine."""
        k = self.granularities
        return tuple(zip(GRANULARITIES[-k:], self.group_sizes[-k:], self.alpha[-k:], strict=True))


def validate_coarse_to_fine(config: CoarseToFineConfig, num_classes: int) -> None:
    """ValueError for any configuration no coarse-to-fine net can be built from."""
    if config.class_grouping not in CLASS_GROUPING:
        raise ValueError(f"class_grouping must be one of {CLASS_GROUPING}, "
                         f"not {config.class_grouping!r}")
    if len(config.group_sizes) != len(GRANULARITIES):
        raise ValueError(f"group_sizes must list {len(GRANULARITIES)} sizes (coarse to fine), "
                         f"got {list(config.group_sizes)}")
    if len(config.alpha) != len(config.group_sizes):
        raise ValueError(f"alpha has {len(config.alpha)} weights but there are "
                         f"{len(config.group_sizes)} granularities: {list(config.alpha)}")
    if not 1 <= config.granularities <= len(GRANULARITIES):
        raise ValueError(f"granularities must be 1..{len(GRANULARITIES)}, "
                         f"not {config.granularities}")
    if any(g < 1 for g in config.group_sizes):
        raise ValueError(f"group sizes must be positive: {list(config.group_sizes)}")
    if num_classes < max(config.group_sizes):
        raise ValueError(f"{num_classes} classes cannot fill a top-{max(config.group_sizes)} "
                         f"class group; need at least {max(config.group_sizes)} classes")


def loss_scale(num_classes: int, readings: Readings) -> float:
    """The 1/N of Eqs. 1, 3 and 5 under readings.class_normalization, else 1 (batch mean).

    Applied to every softmax loss of the Table 1-2 nets alike, the baselines' included, so that
    every row trains under the same loss scale."""
    return 1.0 / num_classes if readings.class_normalization else 1.0


def stage_granularities(stage: str, grans: Sequence[str], slicing: str) -> list[str]:
    """Granularities whose side-map group draws on side output ``stage``.

    ``shared``: every stage feeds every group. ``scale_associated`` (DeepSkeleton): the
    coarse group draws on conv5_3 only, medium on conv4_3 and conv5_3, fine on all three.
    """
    if slicing == "shared":
        return list(grans)
    if slicing == "scale_associated":
        depth = paper.SIDE_OUTPUT_LAYERS.index(stage)
        last = len(paper.SIDE_OUTPUT_LAYERS) - 1
        return [g for g in grans if depth >= last - GRANULARITIES.index(g)]
    raise ValueError(f"unknown side slicing {slicing!r}")


def upsample(n: NetSpec, s: Scope, name: str, bottom: Top, channels: int, factor: int) -> Top:
    """Frozen bilinear upsampling by ``factor`` (Deconvolution, one filter per channel)."""
    n[s.name(name)] = L.Deconvolution(
        bottom, name=s.name(name), param=s.params(name, lr=(0.0,), decay=(0.0,)),
        convolution_param={
            "num_output": channels, "group": channels, "bias_term": False,
            "kernel_size": 2 * factor - factor % 2, "stride": factor,
            "pad": int(math.ceil((factor - 1) / 2.0)), "weight_filler": {"type": "bilinear"},
        },
    )
    return n[s.name(name)]


def side_outputs(
    n: NetSpec, s: Scope, stages: dict[str, Top], preset: Preset, grans: Sequence[str],
    readings: Readings,
) -> dict[str, Top]:
    """Side outputs of conv3_3, conv4_3, conv5_3 (1x1 conv, G*C maps), upsampled to one grid."""
    out = {}
    finest = VGG16_STAGE_STRIDES[paper.SIDE_OUTPUT_LAYERS[0]]
    for stage in paper.SIDE_OUTPUT_LAYERS:
        channels = len(stage_granularities(stage, grans, readings.side_slicing))
        channels *= preset.side_channels
        top = conv(n, s, f"side_{stage}", stages[stage], channels, 1)
        factor = VGG16_STAGE_STRIDES[stage] // finest
        if factor > 1:
            top = upsample(n, s, f"side_up_{stage}", top, channels, factor)
        out[stage] = top
    return out


def side_map_groups(
    n: NetSpec, s: Scope, side: dict[str, Top], preset: Preset, grans: Sequence[str],
    readings: Readings,
) -> dict[str, Top]:
    """Slice every side output per granularity; concatenate same-granularity slices (Fig. 3)."""
    parts: dict[str, list[Top]] = {g: [] for g in grans}
    c = preset.side_channels
    for stage in paper.SIDE_OUTPUT_LAYERS:
        stage_grans = stage_granularities(stage, grans, readings.side_slicing)
        if len(stage_grans) == 1:
            parts[stage_grans[0]].append(side[stage])
            continue
        slices = L.Slice(side[stage], name=s.name(f"side_slice_{stage}"), ntop=len(stage_grans),
                         slice_param={"axis": 1,
                                      "slice_point": [c * i for i in range(1, len(stage_grans))]})
        for g, top in zip(stage_grans, slices, strict=True):
            n[s.name(f"side_{stage}_{g}")] = top
            parts[g].append(top)
    groups = {}
    for g in grans:
        name = s.name(f"side_map_group_{g}")
        n[name] = L.Concat(*parts[g], name=name, concat_param={"axis": 1})
        groups[g] = n[name]
    return groups


def multi_granularity_features(
    n: NetSpec, s: Scope, groups: dict[str, Top], preset: Preset
) -> dict[str, Top]:
    """FC1 of every side-map group: the feature x_k of granularity k."""
    return {
        g: fc(n, s, f"fc1_{g}", top, preset.fc1, relu=f"relu_fc1_{g}",
              dropout=(f"drop_fc1_{g}", preset.dropout))
        for g, top in groups.items()
    }


def class_group_heads(
    n: NetSpec, s: Scope, feats: dict[str, Top], preset: Preset, num_classes: int
) -> dict[str, Top]:
    """FC2 and FC3 on every granularity's feature (training only): the logits of p(n|W,k)."""
    return {
        g: fc(n, s, f"fc3_{g}",
              fc(n, s, f"fc2_{g}", top, preset.fc2, relu=f"relu_fc2_{g}",
                 dropout=(f"drop_fc2_{g}", preset.dropout), extra=TRAIN_ONLY),
              num_classes, extra=TRAIN_ONLY)
        for g, top in feats.items()
    }


def adaptive_class_groups(
    n: NetSpec, s: Scope, data: Top, label: Top, preset: Preset, num_classes: int,
    config: CoarseToFineConfig, readings: Readings,
) -> dict[str, Top]:
    """The frozen CNN_M_2048 grouper scores the input; ClassGroupLayer forms the groups.

    Returns one B x N membership mask per granularity (``class_group_<granularity>``).
    """
    frozen = s.frozen_copy()
    feat = cnn_m_2048_trunk(n, frozen, data, preset, names.GROUPER_PREFIX, dropout=False,
                            extra=TRAIN_ONLY)
    score = fc(n, frozen, f"{names.GROUPER_PREFIX}fc8", feat, num_classes, extra=TRAIN_ONLY)
    active = config.active()
    params = {"group_sizes": [size for _, size, _ in active], "num_classes": num_classes,
              "forced_gt": readings.forced_gt, "tie_break": readings.tie_break}
    masks = L.Python(score, label, name=s.name("class_groups"), ntop=len(active),
                     python_param=python_param(*names.CLASS_GROUP_LAYER, params),
                     propagate_down=[False, False], **TRAIN_ONLY)
    if len(active) == 1:
        masks = (masks,)
    out = {}
    for (g, _, _), top in zip(active, masks, strict=True):
        n[s.name(f"class_group_{g}")] = top
        out[g] = top
    return out


def group_loss(
    n: NetSpec, s: Scope, logits: dict[str, Top], masks: dict[str, Top], num_classes: int,
    config: CoarseToFineConfig, readings: Readings,
) -> Top:
    """Eq. 1: -(1/N) sum_k alpha_k sum_{n in G_k} log p(n|W,k), batch-averaged (GroupLossLayer)."""
    active = config.active()
    params = {"alpha": [a for _, _, a in active], "num_classes": num_classes,
              "class_normalization": readings.class_normalization,
              "reading": readings.group_loss}
    name = s.name("loss_group")
    bottoms = [logits[g] for g, _, _ in active] + [masks[g] for g, _, _ in active]
    n[name] = L.Python(*bottoms, name=name, loss_weight=1.0,
                       propagate_down=[True] * len(active) + [False] * len(active),
                       python_param=python_param(*names.GROUP_LOSS_LAYER, params),
                       **TRAIN_ONLY)
    return n[name]


def ground_truth_group_losses(
    n: NetSpec, s: Scope, logits: dict[str, Top], label: Top, num_classes: int,
    config: CoarseToFineConfig, readings: Readings,
) -> list[Top]:
    """Eq. 1 when every group is {ground truth} (CO2FI-no coarseness): softmax losses, alpha_k/N."""
    scale = loss_scale(num_classes, readings)
    tops = []
    for g, _, alpha in config.active():
        name = s.name(f"loss_group_{g}")
        n[name] = L.SoftmaxWithLoss(logits[g], label, name=name, loss_weight=alpha * scale,
                                    **TRAIN_ONLY)
        tops.append(n[name])
    return tops


def coarse_to_fine_integration(
    n: NetSpec, s: Scope, feats: dict[str, Top], preset: Preset, readings: Readings
) -> list[Top]:
    """Eq. 2: a len(feats)-unit LSTM over the granularity features, coarse to fine."""
    ordered = [feats[g] for g in GRANULARITIES if g in feats]
    return lstm(n, s, "c2f_lstm", ordered, preset.fc1, preset.c2f_lstm, readings.lstm_weights)


def step_losses(
    n: NetSpec, s: Scope, name: str, hs: list[Top], num_classes: int, label: Top | None,
    weight: float, train: bool, readings: Readings, accuracy: bool = True,
) -> list[Top]:
    """An FC on every LSTM step (its own per unit, or one shared: readings.step_scores); softmax
    loss with ``weight`` per step.

    Eq. 3 (name "c2f", weight beta [/N]) and Eq. 5 (name "async", weight gamma [/N]). In train
    nets an Accuracy layer (TEST phase) scores the last step. Deploy nets score only the steps
    the prediction reads. Returns the score blobs.
    """
    scores = []
    for t, h in enumerate(hs, start=1):
        if not train and readings.test_output == "last_step" and t < len(hs):
            continue
        shared = f"{name}_score" if readings.step_scores == "shared" else None
        score = fc(n, s, f"{name}_score_t{t}", h, num_classes, param_layer=shared)
        scores.append(score)
        if train:
            loss = s.name(f"{name}_loss_t{t}")
            n[loss] = L.SoftmaxWithLoss(score, label, name=loss, loss_weight=weight)
    if train and accuracy:
        acc = s.name(f"{name}_accuracy")
        n[acc] = L.Accuracy(scores[-1], label, name=acc, **TEST_ONLY)
    return scores


def prediction(n: NetSpec, s: Scope, name: str, scores: list[Top], readings: Readings) -> Top:
    """Test-time output: softmax of the last step (or the mean of every step's softmax)."""
    out = s.name(name)
    if readings.test_output == "last_step" or len(scores) == 1:
        n[out] = L.Softmax(scores[-1], name=out)
        return n[out]
    probs = []
    for t, score in enumerate(scores, start=1):
        p = s.name(f"{name}_t{t}")
        n[p] = L.Softmax(score, name=p)
        probs.append(n[p])
    n[out] = L.Eltwise(*probs, name=out,
                       eltwise_param={"operation": 1, "coeff": [1.0 / len(probs)] * len(probs)})
    return n[out]


def coarse_to_fine_tower(
    n: NetSpec, s: Scope, data: Top, label: Top | None, preset: Preset, num_classes: int,
    config: CoarseToFineConfig, readings: Readings, train: bool, scores: bool = True,
    accuracy: bool = True,
) -> tuple[Top, list[Top]]:
    """One coarse-to-fine network on ``data`` with the loss of Eq. 4 when ``train``.

    ``scores=False`` (fusion deploy nets) leaves out the per-step FC. Returns (integrated
    feature h_T as B x H, per-step score blobs).
    """
    active = config.active()
    grans = [g for g, _, _ in active]
    stages = vgg16_trunk(n, s, data, preset, upto="conv5_3")
    side = side_outputs(n, s, stages, preset, grans, readings)
    groups = side_map_groups(n, s, side, preset, grans, readings)
    feats = multi_granularity_features(n, s, groups, preset)
    if train and config.class_grouping != "none":
        logits = class_group_heads(n, s, feats, preset, num_classes)
        if config.class_grouping == "adaptive":
            masks = adaptive_class_groups(n, s, data, label, preset, num_classes, config, readings)
            group_loss(n, s, logits, masks, num_classes, config, readings)
        else:
            ground_truth_group_losses(n, s, logits, label, num_classes, config, readings)
    hs = coarse_to_fine_integration(n, s, feats, preset, readings)
    if not scores:
        return hs[-1], []
    weight = config.beta * loss_scale(num_classes, readings)
    return hs[-1], step_losses(n, s, "c2f", hs, num_classes, label, weight, train, readings,
                               accuracy)
