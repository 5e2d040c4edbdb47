"""The coarse-to-fine network (Sec. 4, Fig. 3): its blocks, one function each.

multi-granularity feature extraction (Sec. 4.1): ``side_outputs`` -> ``side_map_groups`` ->
``multi_granularity_features`` (FC1 per granularity);
adaptive class group forming (Sec. 4.2, training only): ``class_group_heads`` (FC2, FC3),
``adaptive_class_groups`` (CNN_M_2048 grouper + ClassGroupLayer), ``group_loss`` (Eq. 1);
coarse-to-fine integration (Sec. 4.3): ``coarse_to_fine_integration`` (Eq. 2) and ``step_losses``
(Eq. 3); ``coarse_to_fine_tower`` puts them together (Eq. 4). Every block takes the NetSpec,
the net's ``BuildContext`` (netgen.blocks), the tower's ``Scope`` and the blobs it works on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from caffe import layers as L
from caffe.net_spec import NetSpec, Top

from netgen import names, paper
from netgen.blocks import (
    ELTWISE_SUM,
    TEST_ONLY,
    TRAIN_ONLY,
    BuildContext,
    Scope,
    conv,
    fc,
    python_param,
)
from netgen.headings import block
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


@block(lambda a: f"Fig. 3: side outputs ({', '.join(paper.SIDE_OUTPUT_LAYERS)})")
def side_outputs(
    n: NetSpec, ctx: BuildContext, s: Scope, stages: dict[str, Top], grans: Sequence[str]
) -> dict[str, Top]:
    """Side outputs of conv3_3, conv4_3, conv5_3 (1x1 conv, G*C maps), upsampled to one grid."""
    out = {}
    finest = VGG16_STAGE_STRIDES[paper.SIDE_OUTPUT_LAYERS[0]]
    for stage in paper.SIDE_OUTPUT_LAYERS:
        channels = len(stage_granularities(stage, grans, ctx.readings.side_slicing))
        channels *= ctx.preset.side_channels
        top = conv(n, s, f"side_{stage}", stages[stage], channels, 1)
        factor = VGG16_STAGE_STRIDES[stage] // finest
        if factor > 1:
            top = upsample(n, s, f"side_up_{stage}", top, channels, factor)
        out[stage] = top
    return out


@block(lambda a: "Fig. 3: side-map groups (side-output slices concatenated per granularity: "
       f"{', '.join(a['grans'])})")
def side_map_groups(
    n: NetSpec, ctx: BuildContext, s: Scope, side: dict[str, Top], grans: Sequence[str]
) -> dict[str, Top]:
    """Slice every side output per granularity; concatenate same-granularity slices (Fig. 3)."""
    parts: dict[str, list[Top]] = {g: [] for g in grans}
    c = ctx.preset.side_channels
    for stage in paper.SIDE_OUTPUT_LAYERS:
        stage_grans = stage_granularities(stage, grans, ctx.readings.side_slicing)
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


@block(lambda a: f"Sec. 4.1, Fig. 3: FC1 x{len(a['groups'])} (the features x_k of the "
       "granularities)")
def multi_granularity_features(
    n: NetSpec, ctx: BuildContext, s: Scope, groups: dict[str, Top]
) -> dict[str, Top]:
    """FC1 of every side-map group: the feature x_k of granularity k."""
    return {
        g: fc(n, s, f"fc1_{g}", top, ctx.preset.fc1, relu=f"relu_fc1_{g}",
              dropout=(f"drop_fc1_{g}", ctx.preset.dropout))
        for g, top in groups.items()
    }


@block("Sec. 4.2: FC2 and FC3 of every granularity (logits of p(n|W,k); training only)")
def class_group_heads(
    n: NetSpec, ctx: BuildContext, s: Scope, feats: dict[str, Top]
) -> dict[str, Top]:
    """FC2 and FC3 on every granularity's feature (training only): the logits of p(n|W,k)."""
    return {
        g: fc(n, s, f"fc3_{g}",
              fc(n, s, f"fc2_{g}", top, ctx.preset.fc2, relu=f"relu_fc2_{g}",
                 dropout=(f"drop_fc2_{g}", ctx.preset.dropout), extra=TRAIN_ONLY),
              ctx.num_classes, extra=TRAIN_ONLY)
        for g, top in feats.items()
    }


@block("Sec. 4.2: adaptive class groups (frozen CNN_M_2048 grouper + ClassGroupLayer; "
       "training only)")
def adaptive_class_groups(
    n: NetSpec, ctx: BuildContext, s: Scope, data: Top, config: CoarseToFineConfig
) -> dict[str, Top]:
    """The frozen CNN_M_2048 grouper scores the input; ClassGroupLayer forms the groups.

    Returns one B x N membership mask per granularity (``class_group_<granularity>``).
    """
    frozen = s.frozen_copy()
    feat = cnn_m_2048_trunk(n, frozen, data, ctx.preset, names.GROUPER_PREFIX, dropout=False,
                            extra=TRAIN_ONLY)
    score = fc(n, frozen, f"{names.GROUPER_PREFIX}fc8", feat, ctx.num_classes, extra=TRAIN_ONLY)
    active = config.active()
    params = {"group_sizes": [size for _, size, _ in active], "num_classes": ctx.num_classes,
              "forced_gt": ctx.readings.forced_gt, "tie_break": ctx.readings.tie_break}
    masks = L.Python(score, ctx.label, name=s.name("class_groups"), ntop=len(active),
                     python_param=python_param(*names.CLASS_GROUP_LAYER, params),
                     propagate_down=[False, False], **TRAIN_ONLY)
    if len(active) == 1:
        masks = (masks,)
    out = {}
    for (g, _, _), top in zip(active, masks, strict=True):
        n[s.name(f"class_group_{g}")] = top
        out[g] = top
    return out


@block("Eq. 1: class-group loss (GroupLossLayer)")
def group_loss(
    n: NetSpec, ctx: BuildContext, s: Scope, logits: dict[str, Top], masks: dict[str, Top],
    config: CoarseToFineConfig,
) -> Top:
    """Eq. 1: -(1/N) sum_k alpha_k sum_{n in G_k} log p(n|W,k), batch-averaged (GroupLossLayer)."""
    active = config.active()
    params = {"alpha": [a for _, _, a in active], "num_classes": ctx.num_classes,
              "class_normalization": ctx.readings.class_normalization,
              "reading": ctx.readings.group_loss}
    name = s.name("loss_group")
    bottoms = [logits[g] for g, _, _ in active] + [masks[g] for g, _, _ in active]
    n[name] = L.Python(*bottoms, name=name, loss_weight=1.0,
                       propagate_down=[True] * len(active) + [False] * len(active),
                       python_param=python_param(*names.GROUP_LOSS_LAYER, params),
                       **TRAIN_ONLY)
    return n[name]


@block("Eq. 1 with every group the ground truth: softmax losses (CO2FI-no coarseness)")
def ground_truth_group_losses(
    n: NetSpec, ctx: BuildContext, s: Scope, logits: dict[str, Top], config: CoarseToFineConfig
) -> list[Top]:
    """Eq. 1 when every group is {ground truth} (CO2FI-no coarseness): softmax losses, alpha_k/N."""
    tops = []
    for g, _, alpha in config.active():
        name = s.name(f"loss_group_{g}")
        n[name] = L.SoftmaxWithLoss(logits[g], ctx.label, name=name,
                                    loss_weight=alpha * ctx.loss_scale(), **TRAIN_ONLY)
        tops.append(n[name])
    return tops


@block(lambda a: f"Eq. 2: {len(a['feats'])}-unit coarse-to-fine LSTM over x_k, coarse to fine")
def coarse_to_fine_integration(
    n: NetSpec, ctx: BuildContext, s: Scope, feats: dict[str, Top]
) -> list[Top]:
    """Eq. 2: a len(feats)-unit LSTM over the granularity features, coarse to fine."""
    ordered = [feats[g] for g in GRANULARITIES if g in feats]
    return lstm(n, s, "c2f_lstm", ordered, ctx.preset.fc1, ctx.preset.c2f_lstm,
                ctx.readings.lstm_weights)


@block(lambda a: (f"Eq. {3 if a['name'] == 'c2f' else 5}: FC scores of the LSTM steps"
                  + (" and their softmax losses" if a["ctx"].train else "")))
def step_losses(
    n: NetSpec, ctx: BuildContext, s: Scope, name: str, hs: list[Top], weight: float,
    accuracy: bool = True,
) -> list[Top]:
    """An FC on every LSTM step (its own per unit, or one shared: readings.step_scores); softmax
    loss with ``weight`` per step.

    Eq. 3 (name "c2f", weight beta [/N]) and Eq. 5 (name "async", weight gamma [/N]). In train
    nets an Accuracy layer (TEST phase) scores the last step. Deploy nets score only the steps
    the prediction reads. Returns the score blobs.
    """
    scores = []
    for t, h in enumerate(hs, start=1):
        if not ctx.train and ctx.readings.test_output == "last_step" and t < len(hs):
            continue
        shared = f"{name}_score" if ctx.readings.step_scores == "shared" else None
        score = fc(n, s, f"{name}_score_t{t}", h, ctx.num_classes, param_layer=shared)
        scores.append(score)
        if ctx.train:
            loss = s.name(f"{name}_loss_t{t}")
            n[loss] = L.SoftmaxWithLoss(score, ctx.label, name=loss, loss_weight=weight)
    if ctx.train and accuracy:
        acc = s.name(f"{name}_accuracy")
        n[acc] = L.Accuracy(scores[-1], ctx.label, name=acc, **TEST_ONLY)
    return scores


@block("Test-time output: prob (softmax of the last step, or of the mean of the steps' scores)")
def prediction(n: NetSpec, ctx: BuildContext, s: Scope, name: str, scores: list[Top]) -> Top:
    """Test-time output: softmax of the last step's scores, or (``mean_steps``) of the mean of
    every step's scores. Either way the layer ``prob`` has one bottom, the scores the
    evaluation sums over periods and streams before any softmax (TSN)."""
    out = s.name(name)
    score = scores[-1]
    if ctx.readings.test_output == "mean_steps" and len(scores) > 1:
        mean = s.name(f"{name}_score_mean")
        n[mean] = L.Eltwise(*scores, name=mean, eltwise_param={
            "operation": ELTWISE_SUM, "coeff": [1.0 / len(scores)] * len(scores)})
        score = n[mean]
    n[out] = L.Softmax(score, name=out)
    return n[out]


def coarse_to_fine_tower(
    n: NetSpec, ctx: BuildContext, s: Scope, data: Top, config: CoarseToFineConfig,
    scores: bool = True, accuracy: bool = True,
) -> tuple[Top, list[Top]]:
    """One coarse-to-fine network on ``data`` with the loss of Eq. 4 when ``ctx.train``.

    ``scores=False`` (fusion deploy nets) leaves out the per-step FC. Returns (integrated
    feature h_T as B x H, per-step score blobs).
    """
    active = config.active()
    grans = [g for g, _, _ in active]
    stages = vgg16_trunk(n, s, data, ctx.preset, upto="conv5_3")
    side = side_outputs(n, ctx, s, stages, grans)
    groups = side_map_groups(n, ctx, s, side, grans)
    feats = multi_granularity_features(n, ctx, s, groups)
    if ctx.train and config.class_grouping != "none":
        logits = class_group_heads(n, ctx, s, feats)
        if config.class_grouping == "adaptive":
            masks = adaptive_class_groups(n, ctx, s, data, config)
            group_loss(n, ctx, s, logits, masks, config)
        else:
            ground_truth_group_losses(n, ctx, s, logits, config)
    hs = coarse_to_fine_integration(n, ctx, s, feats)
    if not scores:
        return hs[-1], []
    weight = config.beta * ctx.loss_scale()
    return hs[-1], step_losses(n, ctx, s, "c2f", hs, weight, accuracy)
