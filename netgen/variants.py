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

    def config(self, **kw: object) -> CoarseToFineConfig:
        return CoarseToFineConfig(alpha=tuple(self.alpha), group_sizes=tuple(self.group_sizes),
                                  beta=self.beta, **kw)  # type: ignore[arg-type]

    def validate(self) -> None:
        for d in (self.delta, *self.baseline_deltas):
            validate_fusion(d, self.steps, "co2fi", "rgb")


@dataclass(frozen=True)
class Variant:
    name: str
    #: "Table 1", "Table 2" or "grouper".
    table: str
    description: str
    #: Generator function (file:function for the headers and docs).
    function: str
    make: Callable[[NetOptions], caffe_pb2.NetParameter]
    grouper: bool = False


def variants(settings: Settings | None = None) -> list[Variant]:
    """Every variant, in a stable order."""
    st = settings or Settings()
    out: list[Variant] = []
    for s in STREAMS:
        out += [
            Variant(f"baseline_{s}", "Table 1", f"Two-stream baseline, {s} stream (VGG-16)",
                    "netgen/nets.py:two_stream_baseline",
                    lambda o, s=s: two_stream_baseline(s, o)),
            Variant(f"direct_combine_{s}", "Table 1",
                    f"Direct combine ConvNets (VGG-16 + CNN_M_2048 at the FCs), {s} stream",
                    "netgen/nets.py:direct_combine_net",
                    lambda o, s=s: direct_combine_net(s, o)),
            Variant(f"co2fi_no_grouping_{s}", "Table 1",
                    f"CO2FI-no class grouping (Eq. 3 loss only), {s} stream",
                    "netgen/nets.py:coarse_to_fine_net",
                    lambda o, s=s: coarse_to_fine_net(s, o, st.config(class_grouping="none"))),
            Variant(f"co2fi_two_granularities_{s}", "Table 1",
                    f"CO2FI-two granularities (coarsest removed), {s} stream",
                    "netgen/nets.py:coarse_to_fine_net",
                    lambda o, s=s: coarse_to_fine_net(s, o, st.config(granularities=2))),
            Variant(f"co2fi_no_coarseness_{s}", "Table 1",
                    f"CO2FI-no coarseness (every group = ground truth), {s} stream",
                    "netgen/nets.py:coarse_to_fine_net",
                    lambda o, s=s: coarse_to_fine_net(
                        s, o, st.config(class_grouping="ground_truth"))),
            Variant(f"co2fi_{s}", "Table 1", f"CO2FI-complete, {s} stream",
                    "netgen/nets.py:coarse_to_fine_net",
                    lambda o, s=s: coarse_to_fine_net(s, o, st.config())),
            Variant(f"grouper_{s}", "grouper", f"CNN_M_2048 class grouper, {s} stream",
                    "netgen/nets.py:grouper_net", lambda o, s=s: grouper_net(s, o), grouper=True),
        ]
    for c in STREAMS:
        label = "appearance" if c == "rgb" else "motion"
        out.append(Variant(
            f"baseline_syn_{c}_centred", "Table 2", f"Baseline+SYN, {label}-centred model",
            "netgen/nets.py:asynchronous_fusion_net",
            lambda o, c=c: asynchronous_fusion_net(c, o, "baseline", st.delta, st.steps,
                                                   synchronous=True)))
        for d in st.baseline_deltas:
            out.append(Variant(
                f"baseline_asyn_d{d}_{c}_centred", "Table 2",
                f"Baseline+ASYN (Delta={d}), {label}-centred model",
                "netgen/nets.py:asynchronous_fusion_net",
                lambda o, c=c, d=d: asynchronous_fusion_net(c, o, "baseline", d, st.steps)))
        out.append(Variant(
            f"co2fi_asyn_d{st.delta}_{c}_centred", "Table 2",
            f"CO2FI+ASYN (Delta={st.delta}), {label}-centred model",
            "netgen/nets.py:asynchronous_fusion_net",
            lambda o, c=c: asynchronous_fusion_net(c, o, "co2fi", st.delta, st.steps,
                                                   config=st.config())))
    return out


def variant_names(settings: Settings | None = None) -> list[str]:
    return [v.name for v in variants(settings)]


def get_variant(name: str, settings: Settings | None = None) -> Variant:
    """The variant called ``name``; ValueError for an unknown one."""
    for v in variants(settings):
        if v.name == name:
            return v
    raise ValueError(f"unknown variant {name!r}; known: {variant_names(settings)}")


def build(name: str, opt: NetOptions, settings: Settings | None = None) -> caffe_pb2.NetParameter:
    """The NetParameter of variant ``name`` (named after it)."""
    variant = get_variant(name, settings)
    net = variant.make(opt)
    net.name = variant.name
    return net
