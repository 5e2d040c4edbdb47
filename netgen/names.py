"""Names and input shapes the generated nets share with their readers, in one place.

netgen writes these names into the prototxt; co2fi_layers (the data and class-group layers),
co2fi_tools (weight surgery, evaluation) and the tools read them back. Like netgen/paper.py this
module imports nothing from Caffe, so every reader imports it, also where pycaffe is missing
(the PyTorch benchmark worker, the data preparation). docs/DESIGN.md describes the names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from netgen import paper

# --- streams and their inputs ------------------------------------------------------------------
#: The two streams (the data layers call them modalities): appearance and motion.
RGB, FLOW = "rgb", "flow"
STREAMS: tuple[str, ...] = (RGB, FLOW)
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


# --- the files of a dataset folder (data_prep.lists writes them, the data layers read them) ---
#: The streams whose lists a dataset folder holds (data_prep.lists writes them).
MODALITIES: tuple[str, ...] = STREAMS
#: A list holds a split's training or test ("val") videos.
SUBSETS = ("train", "val")
#: A dataset folder (data_prep's layout, the data layers' paths): frames under FRAMES_DIR,
#: lists under LISTS_DIR.
FRAMES_DIR, LISTS_DIR = "frames", "lists"
#: param_str keys of the data layers that name a list -> its modality (None: the layer's own
#: ``modality``), and the key of the frames root.
LIST_KEYS: dict[str, str | None] = {"list": None, "rgb_list": "rgb", "flow_list": "flow"}
ROOT_KEY = "root"


def list_name(modality: str, subset: str, split: int, tag: str | None = None) -> str:
    """File name of a list: ``{rgb,flow}_{train,val}_split<k>[_<tag>].txt`` (TSN's names; tag:
    a subset of the training list, e.g. ``frac8``, see data_prep.lists.fraction_tag)."""
    if modality not in MODALITIES or subset not in SUBSETS:
        raise ValueError(f"no list for modality {modality!r} / subset {subset!r}; "
                         f"modalities {MODALITIES}, subsets {SUBSETS}")
    return f"{modality}_{subset}_split{split}" + (f"_{tag}" if tag else "") + ".txt"


def lists_dir(data_root: str | os.PathLike[str]) -> Path:
    return Path(data_root) / LISTS_DIR


def frames_root(data_root: str | os.PathLike[str]) -> Path:
    return Path(data_root) / FRAMES_DIR


def list_path(data_root: str | os.PathLike[str], modality: str, subset: str, split: int,
              tag: str | None = None) -> Path:
    """Where the list of (modality, subset, split[, tag]) of a dataset folder is."""
    return lists_dir(data_root) / list_name(modality, subset, split, tag)


def list_modalities(params: dict) -> dict[str, str]:
    """List key -> modality of each list a data layer's param_str names (LIST_KEYS)."""
    return {key: modality or params.get("modality", "rgb")
            for key, modality in LIST_KEYS.items() if key in params}


def data_layer_paths(modalities: dict[str, str], data_root: str | os.PathLike[str], subset: str,
                     split: int, tag: str | None = None) -> dict[str, str]:
    """The path keys of a data layer's param_str for a dataset folder: each list key (of
    ``modalities``: key -> modality) and the frames ``root``."""
    out = {key: str(list_path(data_root, m, subset, split, tag)) for key, m in modalities.items()}
    out[ROOT_KEY] = str(frames_root(data_root))
    return out


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
