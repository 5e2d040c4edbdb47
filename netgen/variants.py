"""Every net of the paper under one CLI name: Table 1, Table 2 and the grouper.

``variants(settings)`` lists them; ``build(name, opt, settings)`` is the one function call that
makes a variant's NetParameter (train/val or deploy, per ``opt.phase``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from caffe.proto import caffe_pb2

from netgen import paper
from netgen.coarse_to_fine import CoarseToFineConfig
from netgen.names import STREAMS
from netgen.nets import (
    NetOptions,
    asynchronous_fusion_net,
    coarse_to_fine_net,
    direct_combine_net,
    grouper_net,
    two_stream_baseline,
    validate_fusion,
)
from netgen.readings import DEFAULT, Readings
from netgen.schedule import DEFAULT_SCHEDULE, WARMUP, FusionSchedule


@dataclass(frozen=True)
class Settings:
    """Paper numbers a user may change for a run of the generators (defaults: netgen.paper)."""

    readings: Readings = field(default_factory=lambda: DEFAULT)
    alpha: tuple[float, ...] = paper.ALPHA
    group_sizes: tuple[int, ...] = paper.GROUP_SIZES
    beta: float = paper.BETA
    #: Delta of CO2FI+ASYN and the Delta values of the Baseline+ASYN rows.
    delta: int = paper.DELTA
    baseline_deltas: tuple[int, ...] = paper.TABLE2_DELTAS
    #: T of the fusion nets.
    steps: int = paper.FUSION_STEPS
    #: How the fusion stages train from trained towers (one phase or two).
    schedule: FusionSchedule = DEFAULT_SCHEDULE

    def config(self, **kw: object) -> CoarseToFineConfig:
        return CoarseToFineConfig(alpha=tuple(self.alpha), group_sizes=tuple(self.group_sizes),
                                  beta=self.beta, **kw)  # type: ignore[arg-type]

    def validate(self) -> None:
        for d in (self.delta, *self.baseline_deltas):
            validate_fusion(d, self.steps, "co2fi", "rgb")


#: Kinds of variant: a single-stream net of Table 1, a fusion net of Table 2, a class grouper.
SINGLE, FUSION, GROUPER = "single", "fusion", "grouper"
KINDS: tuple[str, ...] = (SINGLE, FUSION, GROUPER)
#: Single-stream families whose towers read a trained grouper (Sec. 4.2).
GROUPED_FAMILIES: tuple[str, ...] = ("co2fi", "co2fi_two_granularities")


@dataclass(frozen=True)
class Variant:
    """One generated net and every fact about it a consumer reads (training stages, pipeline,
    evaluation): nothing is parsed back out of ``name``."""

    name: str
    #: "Table 1", "Table 2" or "grouper".
    table: str
    description: str
    #: Generator function (file:function for the headers and docs).
    function: str
    make: Callable[[NetOptions], caffe_pb2.NetParameter]
    #: SINGLE, FUSION or GROUPER.
    kind: str
    #: What the variants of the two streams share (e.g. ``co2fi``, ``baseline_asyn_d5``): the
    #: key of co2fi_tools.stages.METHODS.
    family: str
    #: The stream of a single-stream net or grouper; the centre stream of a fusion net.
    stream: str
    #: Delta: frames between the steps of the periods it is trained (fusion) and evaluated on.
    delta: int = paper.DELTA
    #: T: steps of those periods (a fusion net's inputs of the other stream, LSTM units).
    steps: int = paper.FUSION_STEPS
    #: Source key (co2fi_tools.weights.stage_weights) -> variant whose trained weights start
    #: this one.
    init: dict[str, str] = field(default_factory=dict)
    #: Whether a trained grouper starts it (its own, or each stream's for a fusion net).
    needs_grouper: bool = False
    #: The warm-up phase's net (towers frozen) of a fusion variant under a staged schedule
    #: (netgen.schedule); None: the variant trains in one phase.
    warmup: Callable[[NetOptions], caffe_pb2.NetParameter] | None = None

    @property
    def grouper(self) -> bool:
        """Whether this is a class grouper (trained first, on GROUPER_DATA_FRACTION)."""
        return self.kind == GROUPER


def single_name(family: str, stream: str) -> str:
    """Name of a single-stream variant or grouper: ``<family>_<stream>``."""
    return f"{family}_{stream}"


def fusion_family(towers: str, delta: int, synchronous: bool = False) -> str:
    """``<towers>_syn`` (Baseline+SYN) or ``<towers>_asyn_d<Delta>``."""
    return f"{towers}_syn" if synchronous else f"{towers}_asyn_d{delta}"


def fusion_name(family: str, centre: str) -> str:
    """Name of a fusion variant: ``<family>_<centre>_centred``."""
    return f"{family}_{centre}_centred"


def warmup_name(variant: str) -> str:
    """Name of a fusion variant's warm-up phase (its net, solver and run): ``<variant>_warmup``."""
    return f"{variant}_{WARMUP}"


def _single_init(family: str, stream: str) -> dict[str, str]:
    return {"grouper": single_name(GROUPER, stream)} if family in GROUPED_FAMILIES else {}


def _fusion_init(towers: str) -> dict[str, str]:
    init = {s: single_name(towers, s) for s in STREAMS}
    if towers in GROUPED_FAMILIES:
        init.update({f"{s}_grouper": single_name(GROUPER, s) for s in STREAMS})
    return init


def variants(settings: Settings | None = None) -> list[Variant]:
    """Every variant, in a stable order."""
    st = settings or Settings()
    out: list[Variant] = []

    def single(family: str, s: str, description: str, function: str,
               make: Callable[[NetOptions], caffe_pb2.NetParameter]) -> Variant:
        return Variant(single_name(family, s), "Table 1", description, f"netgen/nets.py:{function}",
                       make, SINGLE, family, s, init=_single_init(family, s),
                       needs_grouper=family in GROUPED_FAMILIES)

    for s in STREAMS:
        out += [
            single("baseline", s, f"Two-stream baseline, {s} stream (VGG-16)",
                   "two_stream_baseline", lambda o, s=s: two_stream_baseline(s, o)),
            single("direct_combine", s,
                   f"Direct combine ConvNets (VGG-16 + CNN_M_2048 at the FCs), {s} stream",
                   "direct_combine_net", lambda o, s=s: direct_combine_net(s, o)),
            single("co2fi_no_grouping", s,
                   f"CO2FI-no class grouping (Eq. 3 loss only), {s} stream", "coarse_to_fine_net",
                   lambda o, s=s: coarse_to_fine_net(s, o, st.config(class_grouping="none"))),
            single("co2fi_two_granularities", s,
                   f"CO2FI-two granularities (coarsest removed), {s} stream",
                   "coarse_to_fine_net",
                   lambda o, s=s: coarse_to_fine_net(s, o, st.config(granularities=2))),
            single("co2fi_no_coarseness", s,
                   f"CO2FI-no coarseness (every group = ground truth), {s} stream",
                   "coarse_to_fine_net",
                   lambda o, s=s: coarse_to_fine_net(
                       s, o, st.config(class_grouping="ground_truth"))),
            single("co2fi", s, f"CO2FI-complete, {s} stream", "coarse_to_fine_net",
                   lambda o, s=s: coarse_to_fine_net(s, o, st.config())),
            Variant(single_name(GROUPER, s), "grouper", f"CNN_M_2048 class grouper, {s} stream",
                    "netgen/nets.py:grouper_net", lambda o, s=s: grouper_net(s, o), GROUPER,
                    GROUPER, s),
        ]

    def fusion(towers: str, c: str, delta: int, synchronous: bool, description: str,
               config: CoarseToFineConfig | None = None) -> Variant:
        family = fusion_family(towers, delta, synchronous)

        def make(o: NetOptions, scale: float = st.schedule.tower_lr_scale()
                 ) -> caffe_pb2.NetParameter:
            return asynchronous_fusion_net(c, o, towers, delta, st.steps,
                                           synchronous=synchronous, config=config,
                                           tower_lr_scale=scale if o.train else 1.0)

        return Variant(
            fusion_name(family, c), "Table 2", description,
            "netgen/nets.py:asynchronous_fusion_net", make,
            FUSION, family, c, delta, st.steps, _fusion_init(towers),
            needs_grouper=towers in GROUPED_FAMILIES,
            warmup=(lambda o: make(o, 0.0)) if st.schedule.staged else None)

    for c in STREAMS:
        label = "appearance" if c == "rgb" else "motion"
        out.append(fusion("baseline", c, st.delta, True, f"Baseline+SYN, {label}-centred model"))
        for d in st.baseline_deltas:
            out.append(fusion("baseline", c, d, False,
                              f"Baseline+ASYN (Delta={d}), {label}-centred model"))
        out.append(fusion("co2fi", c, st.delta, False,
                          f"CO2FI+ASYN (Delta={st.delta}), {label}-centred model", st.config()))
    return out


def variant_names(settings: Settings | None = None) -> list[str]:
    return [v.name for v in variants(settings)]


def get_variant(name: str, settings: Settings | None = None) -> Variant:
    """The variant called ``name``; ValueError for an unknown one."""
    for v in variants(settings):
        if v.name == name:
            return v
    raise ValueError(f"unknown variant {name!r}; known: {variant_names(settings)}")


def family_variants(family: str, settings: Settings | None = None) -> list[Variant]:
    """The variants of ``family``, one a stream in STREAMS order; ValueError for none."""
    found = [v for v in variants(settings) if v.family == family]
    if not found:
        families = sorted({v.family for v in variants(settings)})
        raise ValueError(f"no variant of {family!r} with these settings; known: {families}")
    return sorted(found, key=lambda v: STREAMS.index(v.stream))


def build(name: str, opt: NetOptions, settings: Settings | None = None) -> caffe_pb2.NetParameter:
    """The NetParameter of variant ``name`` (named after it)."""
    variant = get_variant(name, settings)
    net = variant.make(opt)
    net.name = variant.name
    return net
