"""Names and input shapes the generated nets share with their readers, in one place.

netgen writes these names into the prototxt; co2fi_layers (the data and class-group layers),
co2fi_tools (weight surgery, evaluation) and the tools read them back. Like netgen/paper.py this
module imports nothing from Caffe, so every reader imports it, also where pycaffe is missing
(the PyTorch benchmark worker, the data preparation). docs/DESIGN.md describes the names.
"""

from __future__ import annotations

import re

from netgen import paper

# --- streams and their inputs ------------------------------------------------------------------
#: The two streams (the data layers call them modalities).
STREAMS: tuple[str, ...] = ("rgb", "flow")
#: Images one network input stacks: one frame, or FLOW_STACK flow fields (each an x and a y
#: image).
STACK: dict[str, int] = {"rgb": 1, "flow": paper.FLOW_STACK}
#: Channels of one stacked image: BGR, or x and y of a flow field.
CHANNELS_PER_IMAGE: dict[str, int] = {"rgb": 3, "flow": 2}
#: Input channels of a stream: 3 for a frame, 2 * FLOW_STACK for a flow stack (x/y interleaved).
CHANNELS: dict[str, int] = {s: STACK[s] * CHANNELS_PER_IMAGE[s] for s in STREAMS}
#: Image files of one stacked image: a frame, or the x and the y file of a flow field.
FILES_PER_IMAGE: dict[str, int] = {"rgb": 1, "flow": 2}
#: Image files one network input reads.
FILES_PER_SAMPLE: dict[str, int] = {s: STACK[s] * FILES_PER_IMAGE[s] for s in STREAMS}


def channels(stream: str) -> int:
    """Input channels of ``stream``; ValueError naming the known streams for any other."""
    if stream not in CHANNELS:
        raise ValueError(f"unknown stream {stream!r}; known: {STREAMS}")
    return CHANNELS[stream]


# --- towers of the fusion nets -----------------------------------------------------------------
#: Between a tower's name and its layer names: ``rgb_t3/conv1_1``.
TOWER_SEPARATOR = "/"


def tower(stream: str, step: int) -> str:
    """Name of the tower (and of its input blob) of ``stream`` at period step ``step``:
    ``rgb_t3``."""
    return f"{stream}_t{step}"


_TOWER_LAYER = re.compile(rf"^({'|'.join(STREAMS)})_t\d+{re.escape(TOWER_SEPARATOR)}(.+)$")


def split_tower(layer: str) -> tuple[str | None, str]:
    """(stream, name inside the tower) of a layer name: ``rgb_t3/conv1_1`` -> ``("rgb",
    "conv1_1")``; ``(None, layer)`` for a layer outside the towers."""
    m = _TOWER_LAYER.match(layer)
    return (m.group(1), m.group(2)) if m else (None, layer)


# --- layer-name prefixes -----------------------------------------------------------------------
#: Layers of the frozen CNN_M_2048 class grouper (``grouper_conv1`` ... ``grouper_fc8``).
GROUPER_PREFIX = "grouper_"
#: Layers of the trained CNN_M_2048 trunk of the Table 1 "direct combine" net.
DIRECT_CNNM_PREFIX = "cnnm_"

# --- Python layers (module, class) the prototxt names ------------------------------------------
CLIP_DATA_LAYER: tuple[str, str] = ("co2fi_layers.clip_data", "ClipDataLayer")
PERIOD_DATA_LAYER: tuple[str, str] = ("co2fi_layers.period_data", "PeriodDataLayer")
CLASS_GROUP_LAYER: tuple[str, str] = ("co2fi_layers.class_groups", "ClassGroupLayer")
GROUP_LOSS_LAYER: tuple[str, str] = ("co2fi_layers.group_loss", "GroupLossLayer")
PYTHON_LAYERS: tuple[tuple[str, str], ...] = (CLIP_DATA_LAYER, PERIOD_DATA_LAYER,
                                              CLASS_GROUP_LAYER, GROUP_LOSS_LAYER)
