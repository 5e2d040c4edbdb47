"""Initial weights of a training stage from the stages before it (and ImageNet).

Source keys and what they hold:

    vgg16, cnn_m_2048    ImageNet models (official layer names; weights.net_surgery rules)
    model                a trained single-stream net of ours (same layer names as the target)
    grouper              a trained grouper of ours (netgen's ``grouper_net``): its layers carry
                         the names they have in our nets, ``grouper_conv1`` ... ``grouper_fc8``
    rgb, flow            trained single-stream nets feeding the towers ``rgb_t<i>/...`` and
                         ``flow_t<i>/...`` (``rgb_t3/conv1_1`` <- ``conv1_1`` of ``rgb``)
    rgb_grouper, ...     trained groupers feeding the towers' ``<stream>_t<i>/grouper_...`` layers

Every layer of the target net has one *responsible* source: the first of its candidates
(``candidates``) that was given. Grouper layers look at the grouper first, then the model of
their stream (which holds a copy of its grouper), then ImageNet CNN_M_2048; every other layer
at the model of its stream, then ImageNet. A trained source must fill every layer it is
responsible for, and must fill at least one layer: otherwise ``WeightTransferError`` names the
layer (or the source), before any training. An ImageNet source fills the layers it has (fc8 may
differ in classes); layers it lacks are new and keep their fillers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from co2fi_tools.safe_io import atomic_path
from co2fi_tools.weights import net_surgery as surgery
from netgen import names

#: Layers whose shape depends on the number of classes: a mismatch there is skipped, not fatal,
#: only when it comes from ImageNet.
IMAGENET_CLASSIFIERS = ("fc8",)
IMAGENET = (surgery.VGG16, surgery.CNN_M_2048)
TRAINED = ("model", "grouper", "rgb", "flow", "rgb_grouper", "flow_grouper")


class WeightTransferError(ValueError):
    """A source of initial weights is missing, unreadable or does not fill what it should."""


def candidates(layer: str) -> list[tuple[str, str]]:
    """(source key, source layer) pairs that may initialise ``layer``, best first."""
    stream, name = names.split_tower(layer)
    own = stream or "model"
    if name.startswith(names.GROUPER_PREFIX):
        grouper = f"{stream}_grouper" if stream else "grouper"
        bare = name[len(names.GROUPER_PREFIX):]
        return [(grouper, name), (own, name), (surgery.CNN_M_2048, bare)]
    if name.startswith(names.DIRECT_CNNM_PREFIX):
        return [(own, name), (surgery.CNN_M_2048, name[len(names.DIRECT_CNNM_PREFIX):])]
    return [(own, name), (surgery.VGG16, name)]


def responsible(layer: str, given: set[str] | Mapping[str, object]) -> tuple[str, str]:
    """The (source key, source layer) that initialises ``layer`` with the sources ``given``
    (the first candidate given; the first candidate when none is)."""
    options = candidates(layer)
    return next(((k, n) for k, n in options if k in given), options[0])


def load_sources(sources: Mapping[str, str | os.PathLike]) -> dict[str, surgery.SourceModel]:
    unknown = sorted(set(sources) - set(TRAINED) - set(IMAGENET))
    if unknown:
        raise WeightTransferError(f"unknown weight source(s) {unknown}; "
                                  f"known: {sorted(TRAINED + IMAGENET)}")
    models = {}
    for key, path in sources.items():
        if not Path(path).is_file():
            raise WeightTransferError(f"weights for {key!r}: no such caffemodel {path}")
        try:
            models[key] = surgery.read_caffemodel(path)
        except ValueError as err:
            raise WeightTransferError(f"weights for {key!r}: {err}") from err
    return models


def check_transfer(net_name: str, layers: list[str], models: Mapping[str, surgery.SourceModel],
                   report: surgery.SurgeryReport) -> None:
    """WeightTransferError unless every trained source filled every layer it is responsible
    for, and each filled at least one."""
    copied = {(t, m) for t, m, _, _ in report.copied}
    skipped = dict(report.skipped)
    used: set[str] = set()
    for layer in layers:
        key, name = responsible(layer, models)
        if key not in models:
            continue
        if (layer, key) in copied:
            used.add(key)
        elif key in TRAINED:
            why = skipped.get(layer, "not copied")
            raise WeightTransferError(
                f"{net_name}: layer {layer!r} should come from {key} ({models[key].path}, layer "
                f"{name!r}) but was not filled: {why}")
    idle = [k for k in models if k in TRAINED and k not in used]
    if idle:
        key = idle[0]
        raise WeightTransferError(
            f"{net_name}: weights {key}={models[key].path} fill no layer of this net "
            f"(none of its {len(models[key].layers)} layers is one this net takes from {key})")


def initialise_from_stages(net_prototxt: str | os.PathLike, out_caffemodel: str | os.PathLike,
                           sources: Mapping[str, str | os.PathLike], seed: int = 0) -> str:
    """Build the net, copy weights from ``sources``, fill upsampling bilinearly, check that no
    trained source missed a layer, save; returns the report. The layers no source fills get
    Caffe's fillers drawn with ``seed`` (the same weights in every process)."""
    import caffe

    models = load_sources(sources)
    caffe.set_mode_cpu()
    caffe.set_random_seed(seed)
    net = caffe.Net(os.fspath(net_prototxt), caffe.TRAIN)
    params = {name: [b.data for b in blobs] for name, blobs in net.params.items()}
    upsampling = surgery.deconvolution_layers(net)
    targets = {k: v for k, v in params.items() if k not in upsampling}
    try:
        report = surgery.transplant(targets, models, IMAGENET_CLASSIFIERS, cross_modality=True,
                                    source_for=lambda layer: responsible(layer, models))
    except surgery.ShapeMismatchError as err:
        raise WeightTransferError(f"{os.fspath(net_prototxt)}: {err}") from err
    check_transfer(os.fspath(net_prototxt), list(targets), models, report)
    surgery.fill_bilinear(params, upsampling, report)
    with atomic_path(out_caffemodel) as tmp:
        net.save(os.fspath(tmp))
    return report.summary()
