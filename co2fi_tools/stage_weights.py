"""Initial weights of a training stage from the stages before it (and ImageNet).

Source keys and what they hold:

    vgg16, cnn_m_2048    ImageNet models (official layer names; co2fi_tools.net_surgery rules)
    model                a trained single-stream net of ours (same layer names as the target)
    grouper              a trained CNN_M_2048 grouper of ours: its `conv1` -> our `grouper_conv1`
    rgb, flow            trained single-stream nets feeding the towers `rgb_t<i>/...` and
                         `flow_t<i>/...`
    rgb_grouper, ...     trained groupers feeding the towers' `<stream>_t<i>/grouper_...` layers

For each layer of the target net the first source that has it wins, in the order: our trained
model of the layer's stream, our trained grouper, ImageNet. A layer no source has keeps its filler.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from co2fi_tools import net_surgery as surgery

TOWER_RE = re.compile(r"^(rgb|flow)_t\d+/(.+)$")
#: Layers whose shape depends on the number of classes: a mismatch there is skipped, not fatal,
#: only when it comes from ImageNet.
IMAGENET_CLASSIFIERS = ("fc8",)


def candidates(layer: str) -> list[tuple[str, str]]:
    """(source key, source layer) pairs that may initialise ``layer``, best first."""
    m = TOWER_RE.match(layer)
    stream, name = (m.group(1), m.group(2)) if m else (None, layer)
    own = stream or "model"
    out = [(own, name)]
    if name.startswith(surgery.GROUPER_PREFIX):
        bare = name[len(surgery.GROUPER_PREFIX):]
        out += [(f"{stream}_grouper" if stream else "grouper", bare), (surgery.CNN_M_2048, bare)]
    elif name.startswith(surgery.CNNM_PREFIX):
        out.append((surgery.CNN_M_2048, name[len(surgery.CNNM_PREFIX):]))
    else:
        out.append((surgery.VGG16, name))
    return out


def resolver(models: Mapping[str, surgery.SourceModel]):
    """A source_for function for net_surgery.transplant over the loaded models."""

    def source_for(layer: str) -> tuple[str, str]:
        options = candidates(layer)
        for key, name in options:
            if key in models and name in models[key].layers:
                return key, name
        return options[0]

    return source_for


def load_sources(sources: Mapping[str, str | os.PathLike]) -> dict[str, surgery.SourceModel]:
    known = {"model", "grouper", "rgb", "flow", "rgb_grouper", "flow_grouper",
             surgery.VGG16, surgery.CNN_M_2048}
    unknown = sorted(set(sources) - known)
    if unknown:
        raise ValueError(f"unknown weight source(s) {unknown}; known: {sorted(known)}")
    models = {}
    for key, path in sources.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"weights for {key!r}: no such caffemodel {path}")
        models[key] = surgery.read_caffemodel(path)
    return models


def initialise_from_stages(net_prototxt: str | os.PathLike, out_caffemodel: str | os.PathLike,
                           sources: Mapping[str, str | os.PathLike]) -> str:
    """Build the net, copy weights from ``sources``, fill upsampling bilinearly, save; report."""
    import caffe

    models = load_sources(sources)
    caffe.set_mode_cpu()
    net = caffe.Net(os.fspath(net_prototxt), caffe.TRAIN)
    params = {name: [b.data for b in blobs] for name, blobs in net.params.items()}
    upsampling = surgery.deconvolution_layers(net)
    report = surgery.transplant({k: v for k, v in params.items() if k not in upsampling},
                                models, IMAGENET_CLASSIFIERS, cross_modality=True,
                                source_for=resolver(models))
    surgery.fill_bilinear(params, upsampling, report)
    out = Path(out_caffemodel)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        net.save(os.fspath(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return report.summary()
