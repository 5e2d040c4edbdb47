"""The paper's training stages as a plan: which variant trains after which, from which weights.

Sec. 4.2 and 6.1: the CNN_M_2048 grouper of each stream is trained first (on 1/8 of the training
data) and then frozen; each stream's coarse-to-fine net is trained with its grouper; the
asynchronous fusion nets (appearance- and motion-centred) are trained jointly with the
coarse-to-fine towers (Eq. 6), starting from the single-stream nets. The baseline rows train
VGG-16 alone, and Baseline+SYN/ASYN start from the baseline streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netgen.variants import FUSION, GROUPER, Settings, Variant, family_variants, get_variant

#: Method names of the comparison tables (co2fi_tools/reporting/paper_results.csv) -> the family of
#: variants (netgen.variants.Variant.family) that is evaluated for it, one a stream.
METHODS: dict[str, str] = {
    "Two-stream baseline": "baseline",
    "Direct combine ConvNets": "direct_combine",
    "CO2FI-no class grouping": "co2fi_no_grouping",
    "CO2FI-two granularities": "co2fi_two_granularities",
    "CO2FI-no coarseness": "co2fi_no_coarseness",
    "CO2FI-complete": "co2fi",
    "CO2FI": "co2fi",  # Table 2's name for Table 1's CO2FI-complete
    "Baseline+SYN": "baseline_syn",
    "Baseline+ASYN (Δ = 1)": "baseline_asyn_d1",
    "Baseline+ASYN (Δ = 5)": "baseline_asyn_d5",
    "CO2FI+ASYN (Δ = 5)": "co2fi_asyn_d5",
}
#: The demo's methods: the two-stream baseline, CO2FI and CO2FI+ASYN (Delta = 5).
DEMO_METHODS = ("Two-stream baseline", "CO2FI-complete", "CO2FI+ASYN (Δ = 5)")


def method_variants(method: str, settings: Settings | None = None) -> list[Variant]:
    """The variants a method is evaluated with, one a stream (fusion nets: one a centre)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {list(METHODS)}")
    return family_variants(METHODS[method], settings)


@dataclass
class Stage:
    """One training run: a generated variant and the runs whose weights start it."""

    variant: str
    init: dict[str, str] = field(default_factory=dict)  # source key -> stage variant
    grouper_data: bool = False  # train on the GROUPER_DATA_FRACTION subset lists
    fusion: bool = False  # a fusion net (it fine-tunes trained towers)


def plan(methods: list[str] | tuple[str, ...], settings: Settings | None = None) -> list[Stage]:
    """The stages that train ``methods``, each once, in an order that respects dependencies:
    every variant after those whose weights start it (Variant.init)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    (settings or Settings()).validate()  # e.g. the steps limit, before anything is trained
    stages: dict[str, Stage] = {}

    def add(variant: Variant) -> None:
        for dep in variant.init.values():
            add(get_variant(dep, settings))
        stages.setdefault(variant.name, Stage(variant.name, dict(variant.init),
                                              grouper_data=variant.kind == GROUPER,
                                              fusion=variant.kind == FUSION))

    for m in methods:
        for variant in method_variants(m, settings):
            add(variant)
    return list(stages.values())
