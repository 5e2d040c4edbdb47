"""The paper's training stages as a plan: which variant trains after which, from which weights.

Sec. 4.2 and 6.1: the CNN_M_2048 grouper of each stream is trained first (on 1/8 of the training
data) and then frozen; each stream's coarse-to-fine net is trained with its grouper; the
asynchronous fusion nets (appearance- and motion-centred) are trained jointly with the
coarse-to-fine towers (Eq. 6), starting from the single-stream nets. The baseline rows train
VGG-16 alone, and Baseline+SYN/ASYN start from the baseline streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netgen.names import STREAMS

#: Method names of the comparison tables (co2fi_tools/paper_results.csv) -> what they need.
METHODS: dict[str, dict] = {
    "Two-stream baseline": {"single": "baseline"},
    "Direct combine ConvNets": {"single": "direct_combine"},
    "CO2FI-no class grouping": {"single": "co2fi_no_grouping"},
    "CO2FI-two granularities": {"single": "co2fi_two_granularities"},
    "CO2FI-no coarseness": {"single": "co2fi_no_coarseness"},
    "CO2FI-complete": {"single": "co2fi"},
    "CO2FI": {"single": "co2fi"},  # Table 2's name for Table 1's CO2FI-complete
    "Baseline+SYN": {"fusion": "baseline_syn", "base": "baseline"},
    "Baseline+ASYN (Δ = 1)": {"fusion": "baseline_asyn_d1", "base": "baseline"},
    "Baseline+ASYN (Δ = 5)": {"fusion": "baseline_asyn_d5", "base": "baseline"},
    "CO2FI+ASYN (Δ = 5)": {"fusion": "co2fi_asyn_d5", "base": "co2fi"},
}
#: Single-stream variants that need a trained grouper.
NEEDS_GROUPER = ("co2fi", "co2fi_two_granularities")
#: The demo's methods: the two-stream baseline, CO2FI and CO2FI+ASYN (Delta = 5).
DEMO_METHODS = ("Two-stream baseline", "CO2FI-complete", "CO2FI+ASYN (Δ = 5)")


@dataclass
class Stage:
    """One training run: a generated variant and the runs whose weights start it."""

    variant: str
    init: dict[str, str] = field(default_factory=dict)  # source key -> stage variant
    grouper_data: bool = False  # train on the GROUPER_DATA_FRACTION subset lists


def plan(methods: list[str] | tuple[str, ...]) -> list[Stage]:
    """The stages that train ``methods``, each once, in an order that respects dependencies."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    stages: dict[str, Stage] = {}

    def single(kind: str) -> None:
        for s in STREAMS:
            init = {}
            if kind in NEEDS_GROUPER:
                stages.setdefault(f"grouper_{s}", Stage(f"grouper_{s}", grouper_data=True))
                init["grouper"] = f"grouper_{s}"
            stages.setdefault(f"{kind}_{s}", Stage(f"{kind}_{s}", init))

    for m in methods:
        spec = METHODS[m]
        if "single" in spec:
            single(spec["single"])
        else:
            base = spec["base"]
            single(base)
            for centre in STREAMS:
                init = {s: f"{base}_{s}" for s in STREAMS}
                if base in NEEDS_GROUPER:
                    init.update({f"{s}_grouper": f"grouper_{s}" for s in STREAMS})
                name = f"{spec['fusion']}_{centre}_centred"
                stages.setdefault(name, Stage(name, init))
    return list(stages.values())
