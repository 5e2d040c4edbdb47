"""Whole networks: every net of Tables 1 and 2, and the grouper. Each returns a NetParameter.

Common keyword arguments (``NetOptions``): preset, num_classes, dataset, readings, phase
(``train`` = train/val net, ``deploy``), data_source (``python`` data layers or ``input``
layers for tests) and batch (default: the preset's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from caffe import layers as L
from caffe.net_spec import NetSpec, Top
from caffe.proto import caffe_pb2

from netgen import names, paper
from netgen.blocks import ELTWISE_SUM, TEST_ONLY, BuildContext, Scope, fc
from netgen.coarse_to_fine import (
    CoarseToFineConfig,
    coarse_to_fine_tower,
    prediction,
    validate_coarse_to_fine,
)
from netgen.data import (
    DATA_SOURCES,
    DataPaths,
    add_test_data_layer,
    clip_data,
    deploy_inputs,
    period_data,
)
from netgen.fusion import as_map, asynchronous_integration, stream_wise_fusion
from netgen.headings import block
from netgen.presets import SMALL, Preset
from netgen.readings import DEFAULT, Readings
from netgen.trunks import cnn_m_2048_trunk, vgg16_trunk

PHASES: tuple[str, ...] = ("train", "deploy")
TOWERS: tuple[str, ...] = ("baseline", "co2fi")
#: Largest Delta accepted (frames between fused inputs). Not a paper number: a period spans
#: (T-1)*Delta frames and must fit in a video (UCF101 clips average about 7 s = 175 frames).
MAX_DELTA: int = 40


@dataclass(frozen=True)
class NetOptions:
    preset: Preset = SMALL
    num_classes: int = 10
    dataset: str = "synthetic"
    #: The dataset folder and split the data layers name (None: data/<dataset>, split 1).
    data_paths: DataPaths | None = None
    readings: Readings = field(default_factory=lambda: DEFAULT)
    phase: str = "train"
    data_source: str = "python"
    batch: int | None = None

    @property
    def train(self) -> bool:
        return self.phase == "train"

    def data(self) -> DataPaths:
        return self.data_paths or DataPaths.default(self.dataset)

    def train_batch(self) -> int:
        return self.batch if self.batch is not None else self.preset.batch_size

    def context(self, label: Top | None) -> BuildContext:
        """What the blocks of a net with these options read; ``label`` from its inputs."""
        return BuildContext(self.preset, self.readings, self.num_classes, self.train, label)


def validate_options(opt: NetOptions) -> None:
    if opt.phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {opt.phase!r}")
    if opt.data_source not in DATA_SOURCES:
        raise ValueError(f"data_source must be one of {DATA_SOURCES}, not {opt.data_source!r}")
    if opt.num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, not {opt.num_classes}")
    if opt.batch is not None and opt.batch < 1:
        raise ValueError(f"batch must be positive, not {opt.batch}")
    if opt.preset.input_size % 32:
        raise ValueError(f"input_size {opt.preset.input_size} must be a multiple of 32 "
                         "(five 2x2 VGG-16 poolings)")


def _check_stream(stream: str) -> None:
    if stream not in names.STREAMS:
        raise ValueError(f"unknown stream {stream!r}; known: {names.STREAMS}")


def _single_stream_inputs(n: NetSpec, stream: str, opt: NetOptions) -> tuple[Top, Top | None]:
    if opt.train:
        return clip_data(n, stream, opt.data(), opt.preset, opt.data_source, opt.train_batch())
    data = deploy_inputs(n, [("data", stream)], opt.preset, opt.preset.deploy_batch_single)
    return data["data"], None


def silence_unused(net: caffe_pb2.NetParameter) -> None:
    """Consume blobs nobody reads (e.g. early LSTM steps of a deploy net) with a Silence layer,
    so that a net's outputs are its losses, accuracies and ``prob`` only (in place)."""
    last_producer: dict[str, int] = {}
    last_consumer: dict[str, int] = {}
    outputs: set[str] = set()
    for i, layer in enumerate(net.layer):
        for b in layer.bottom:
            last_consumer[b] = i
        for top in layer.top:
            last_producer[top] = i
            if layer.loss_weight or layer.type in ("Accuracy", "SoftmaxWithLoss") or top == "prob":
                outputs.add(top)
    # a blob is read when a layer after its last producer (an in-place layer counts as
    # producer) takes it as a bottom
    unused = [top for top, i in last_producer.items()
              if top not in outputs and last_consumer.get(top, -1) <= i]
    if unused:
        silence = net.layer.add()
        silence.name = "silence_unused"
        silence.type = "Silence"
        silence.bottom.extend(unused)


def _finish(n: NetSpec, name: str, opt: NetOptions, test_batch: int) -> caffe_pb2.NetParameter:
    net = n.to_proto()
    net.name = name
    silence_unused(net)
    if opt.train and opt.data_source == "python":
        add_test_data_layer(net, test_batch, opt.data())
    return net


@block(lambda a: f"Classifier {a['name']} and its "
       + ("softmax loss" if a["ctx"].train else "prob"))
def _classifier(
    n: NetSpec, ctx: BuildContext, s: Scope, name: str, feature: Top, loss_weight: float = 1.0,
    accuracy: bool = True, prob: bool = True,
) -> Top:
    """FC to N classes; softmax loss (+ TEST accuracy) when training, ``prob`` when deploying."""
    score = fc(n, s, name, feature, ctx.num_classes)
    if ctx.train:
        n[s.name("loss")] = L.SoftmaxWithLoss(score, ctx.label, name=s.name("loss"),
                                              loss_weight=loss_weight)
        if accuracy:
            n[s.name("accuracy")] = L.Accuracy(score, ctx.label, name=s.name("accuracy"),
                                               **TEST_ONLY)
    elif prob:
        n[s.name("prob")] = L.Softmax(score, name=s.name("prob"))
    return score


# --- Table 1 ------------------------------------------------------------------------------------


def two_stream_baseline(stream: str, opt: NetOptions) -> caffe_pb2.NetParameter:
    """Table 1 "two-stream baseline": VGG-16 + softmax, one stream."""
    validate_options(opt)
    _check_stream(stream)
    n = NetSpec()
    data, label = _single_stream_inputs(n, stream, opt)
    ctx = opt.context(label)
    tops = vgg16_trunk(n, Scope(), data, opt.preset, upto="fc7")
    _classifier(n, ctx, Scope(), "fc8", tops["fc7"], loss_weight=ctx.loss_scale())
    return _finish(n, f"baseline_{stream}", opt, opt.train_batch())


def direct_combine_net(stream: str, opt: NetOptions) -> caffe_pb2.NetParameter:
    """Table 1 "direct combine ConvNets": VGG-16 and CNN_M_2048, both trained, fused at the FCs.

    readings.direct_combine: ``concat_fc7`` (fc7 of both -> concat -> FC -> softmax) or
    ``sum_scores`` (an FC on each fc7, scores added).
    """
    validate_options(opt)
    _check_stream(stream)
    n = NetSpec()
    s = Scope()
    data, label = _single_stream_inputs(n, stream, opt)
    ctx = opt.context(label)
    vgg = vgg16_trunk(n, s, data, opt.preset, upto="fc7")["fc7"]
    cnnm = cnn_m_2048_trunk(n, s, data, opt.preset, names.DIRECT_CNNM_PREFIX, dropout=True)
    if opt.readings.direct_combine == "concat_fc7":
        n.fc7_combine = L.Concat(vgg, cnnm, name="fc7_combine", concat_param={"axis": 1})
        _classifier(n, ctx, s, "fc8_combine", n.fc7_combine, loss_weight=ctx.loss_scale())
    else:
        a = fc(n, s, "fc8", vgg, opt.num_classes)
        b = fc(n, s, f"{names.DIRECT_CNNM_PREFIX}fc8", cnnm, opt.num_classes)
        n.fc8_combine = L.Eltwise(a, b, name="fc8_combine",
                                  eltwise_param={"operation": ELTWISE_SUM})
        score = n.fc8_combine
        if opt.train:
            n.loss = L.SoftmaxWithLoss(score, label, name="loss", loss_weight=ctx.loss_scale())
            n.accuracy = L.Accuracy(score, label, name="accuracy", **TEST_ONLY)
        else:
            n.prob = L.Softmax(score, name="prob")
    return _finish(n, f"direct_combine_{stream}", opt, opt.train_batch())


def grouper_net(stream: str, opt: NetOptions) -> caffe_pb2.NetParameter:
    """The CNN_M_2048 grouper alone (Sec. 4.2), trained before the coarse-to-fine nets."""
    validate_options(opt)
    _check_stream(stream)
    n = NetSpec()
    data, label = _single_stream_inputs(n, stream, opt)
    feat = cnn_m_2048_trunk(n, Scope(), data, opt.preset, names.GROUPER_PREFIX, dropout=True)
    _classifier(n, opt.context(label), Scope(), f"{names.GROUPER_PREFIX}fc8", feat)
    return _finish(n, f"grouper_{stream}", opt, opt.train_batch())


def coarse_to_fine_net(
    stream: str, opt: NetOptions, config: CoarseToFineConfig | None = None
) -> caffe_pb2.NetParameter:
    """Table 1 CO2FI variants: the coarse-to-fine network (Fig. 3) with a softmax after it.

    ``config`` picks the variant: complete (default), no class grouping
    (class_grouping="none"), two granularities (granularities=2), no coarseness
    (class_grouping="ground_truth").
    """
    config = config or CoarseToFineConfig()
    validate_options(opt)
    validate_coarse_to_fine(config, opt.num_classes)
    _check_stream(stream)
    n = NetSpec()
    s = Scope()
    data, label = _single_stream_inputs(n, stream, opt)
    ctx = opt.context(label)
    _, scores = coarse_to_fine_tower(n, ctx, s, data, config)
    if not opt.train:
        prediction(n, ctx, s, "prob", scores)
    return _finish(n, f"co2fi_{stream}", opt, opt.train_batch())


# --- Table 2 ------------------------------------------------------------------------------------


def fusion_steps(
    synchronous: bool, steps: int, readings: Readings
) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """(centre-stream steps, other-stream steps, fused (centre, other) step pairs)."""
    centre = (steps + 1) // 2
    every = list(range(1, steps + 1))
    if not synchronous:
        return [centre], every, [(centre, t) for t in every]
    if readings.syn_pairs == "five_pairs":
        return every, every, [(t, t) for t in every]
    return [centre], [centre], [(centre, centre)]


def validate_fusion(delta: int, steps: int, towers: str, centre: str) -> None:
    if towers not in TOWERS:
        raise ValueError(f"towers must be one of {TOWERS}, not {towers!r}")
    _check_stream(centre)
    if not isinstance(delta, int) or not 1 <= delta <= MAX_DELTA:
        raise ValueError(f"delta must be an integer in 1..{MAX_DELTA}, not {delta!r}")
    paper.check_period_steps(steps)  # the data layer samples periods of T steps: one rule for both


def asynchronous_fusion_net(
    centre: str,
    opt: NetOptions,
    towers: str = "co2fi",
    delta: int = paper.DELTA,
    steps: int = paper.FUSION_STEPS,
    synchronous: bool = False,
    config: CoarseToFineConfig | None = None,
    tower_lr_scale: float = 1.0,
) -> caffe_pb2.NetParameter:
    """Table 2 fusion nets (Fig. 5): ``centre`` stream's feature fused with ``steps`` features
    of the other stream, ``delta`` frames apart (``synchronous``: Baseline+SYN).

    ``towers``: ``baseline`` (VGG-16 fc7 features) or ``co2fi`` (coarse-to-fine features, each
    tower with its Eq. 4 loss: Eq. 6). Towers of a stream with several inputs share weights.
    ``tower_lr_scale`` multiplies every tower parameter's lr_mult (0: frozen towers, the
    warm-up phase of netgen.schedule).
    """
    config = config or CoarseToFineConfig()
    validate_options(opt)
    validate_fusion(delta, steps, towers, centre)
    if towers == "co2fi":
        validate_coarse_to_fine(config, opt.num_classes)
    other = "flow" if centre == "rgb" else "rgb"
    centre_steps, other_steps, pairs = fusion_steps(synchronous, steps, opt.readings)
    steps_of = {centre: centre_steps, other: other_steps}
    n = NetSpec()
    if opt.train:
        inputs, label = period_data(n, steps_of["rgb"], steps_of["flow"], opt.data(),
                                    opt.preset, opt.data_source, opt.train_batch(), delta,
                                    steps)
    else:
        towers_in = [(names.tower(st, i), st) for st in names.STREAMS for i in steps_of[st]]
        inputs = deploy_inputs(n, towers_in, opt.preset, opt.preset.deploy_batch_fusion)
        label = None
    ctx = opt.context(label)
    # the towers' own losses (Eq. 6), unless readings.tower_losses leaves them out
    tower_ctx = dataclasses.replace(ctx, train=opt.train and opt.readings.tower_losses)
    maps: dict[str, Top] = {}
    dim = opt.preset.vgg_fc if towers == "baseline" else opt.preset.c2f_lstm
    for stream in (centre, other):
        share = stream if len(steps_of[stream]) > 1 else None
        for i in steps_of[stream]:
            tower = names.tower(stream, i)
            s = Scope(prefix=tower + names.TOWER_SEPARATOR, share=share,
                      lr_scale=tower_lr_scale)
            if towers == "baseline":
                feat = vgg16_trunk(n, s, inputs[tower], opt.preset, upto="fc7")["fc7"]
                if tower_ctx.train:
                    _classifier(n, tower_ctx, s, "fc8", feat, accuracy=False,
                                loss_weight=ctx.loss_scale())
            else:
                feat, _ = coarse_to_fine_tower(n, tower_ctx, s, inputs[tower], config,
                                               scores=tower_ctx.train, accuracy=False)
            maps[tower] = as_map(n, f"fuse_in_{tower}", feat)
    fused = [
        stream_wise_fusion(n, ctx, Scope(), t, maps[names.tower(centre, ci)],
                           maps[names.tower(other, oi)])
        for t, (ci, oi) in enumerate(pairs, start=1)
    ]
    asynchronous_integration(n, ctx, Scope(), fused, dim, paper.GAMMA * ctx.loss_scale())
    # named after its variant by netgen.variants (the one owner of variant names)
    return _finish(n, "asynchronous_fusion", opt, paper.TEST_PERIODS)
