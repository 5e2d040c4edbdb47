"""Net surgery: ImageNet weights into our nets, cross-modality init, bilinear upsampling.

Name mapping (docs/DESIGN.md "Naming in generated nets"):

- a tower prefix ``<anything>/`` is dropped: ``rgb_t3/conv1_1`` <- VGG-16 ``conv1_1``;
- ``grouper_<name>`` comes from CNN_M_2048 ``<name>``: ``grouper_conv1`` <- ``conv1``
  (also behind a tower prefix: ``flow_t1/grouper_conv1``);
- every other name comes from VGG-16 under the same name.

A layer absent from the source is skipped (new layers keep their fillers). A layer whose blobs
do not match raises ``ShapeMismatchError`` unless its source name is in the allowed-skip list
(by default ``fc8``: the ImageNet classifier has 1000 classes). Exception: the first convolution
of a tower whose input is not RGB gets TSN's cross-modality initialisation (mean over the three
RGB channels, replicated to every input channel: 2 x FLOW_STACK = 20 for flow).

Caffemodels are read with ``caffe_pb2.NetParameter`` in Python: ``layer`` (current), ``layers``
(V1, as the official VGG-16 and CNN_M_2048 files) and ``layers { layer }`` (V0) are all read; V1
blobs carry legacy 4-d ``num/channels/height/width`` shapes, matched the way Caffe's
``Blob::ShapeEquals`` does (``1x1x4096x25088`` fits ``4096x25088``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from co2fi_tools.safe_io import atomic_path
from netgen.names import CHANNELS, DIRECT_CNNM_PREFIX, GROUPER_PREFIX, TOWER_SEPARATOR

VGG16 = "vgg16"
CNN_M_2048 = "cnn_m_2048"
DEFAULT_ALLOWED_SKIP: tuple[str, ...] = ("fc8",)
#: Source layers that take the image; these get cross-modality initialisation.
FIRST_CONVS: tuple[str, ...] = ("conv1_1", "conv1")
RGB_CHANNELS = CHANNELS["rgb"]


class ShapeMismatchError(ValueError):
    pass


@dataclass
class SourceLayer:
    name: str
    blobs: list[np.ndarray]
    legacy_shape: list[bool]  # True where the blob's shape came from num/channels/height/width


@dataclass
class SourceModel:
    path: str
    format: str  # "layer" (current), "V1" or "V0"
    layers: dict[str, SourceLayer]


def caffe_pb2():
    from caffe.proto import caffe_pb2 as pb2  # needs the built pycaffe

    return pb2


def _blob_array(blob) -> tuple[np.ndarray, bool]:
    if blob.HasField("shape"):
        shape, legacy = tuple(int(d) for d in blob.shape.dim), False
    else:
        shape, legacy = (blob.num, blob.channels, blob.height, blob.width), True
    values = blob.double_data if len(blob.double_data) else blob.data
    array = np.fromiter(values, dtype=np.float32, count=len(values))  # 2x faster than asarray
    if array.size != int(np.prod(shape)):
        raise ValueError(f"blob holds {array.size} values for shape {shape}")
    return array.reshape(shape), legacy


def source_model_from_proto(net_param, path: str = "<memory>") -> SourceModel:
    layers: dict[str, SourceLayer] = {}
    formats = set()
    entries = [(layer.name, layer.blobs, "layer") for layer in net_param.layer]
    for v1 in net_param.layers:
        if v1.HasField("layer"):  # V0: the V0LayerParameter holds name and blobs
            entries.append((v1.name or v1.layer.name, list(v1.blobs) or list(v1.layer.blobs),
                            "V0"))
        else:
            entries.append((v1.name, v1.blobs, "V1"))
    for name, blobs, fmt in entries:
        formats.add(fmt)
        if not len(blobs):
            continue
        if name in layers:
            raise ValueError(f"{path}: layer {name!r} appears twice")
        try:
            arrays = [_blob_array(b) for b in blobs]
        except ValueError as err:
            raise ValueError(f"{path}: layer {name!r}: {err}") from err
        layers[name] = SourceLayer(name, [a for a, _ in arrays], [leg for _, leg in arrays])
    fmt = "+".join(sorted(formats)) if formats else "empty"
    return SourceModel(path, fmt, layers)


def read_caffemodel(path: str | os.PathLike) -> SourceModel:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: caffemodel not found")
    net_param = caffe_pb2().NetParameter()
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        net_param.ParseFromString(data)
    except Exception as err:  # protobuf raises DecodeError or RuntimeError by backend
        raise ValueError(f"{path}: not a binary NetParameter (caffemodel): {err}") from err
    return source_model_from_proto(net_param, path)


def caffemodel_shapes(path: str | os.PathLike) -> dict[str, list[tuple[tuple[int, ...], bool]]]:
    """Layer name -> [(blob shape, legacy)] of a caffemodel, without converting its values."""
    path = os.fspath(path)
    net_param = caffe_pb2().NetParameter()
    try:
        with open(path, "rb") as handle:
            net_param.ParseFromString(handle.read())
    except OSError as err:
        raise ValueError(f"{path}: cannot read the caffemodel: {err}") from err
    except Exception as err:  # protobuf raises DecodeError or RuntimeError by backend
        raise ValueError(f"{path}: not a binary NetParameter (caffemodel): {err}") from err
    out: dict[str, list[tuple[tuple[int, ...], bool]]] = {}
    entries = [(layer.name, layer.blobs) for layer in net_param.layer]
    entries += [(v1.name or v1.layer.name, list(v1.blobs) or list(v1.layer.blobs))
                for v1 in net_param.layers]
    for name, blobs in entries:
        if len(blobs):
            out[name] = [
                (tuple(int(d) for d in b.shape.dim), False) if b.HasField("shape")
                else ((b.num, b.channels, b.height, b.width), True) for b in blobs]
    return out


def shape_fits(source: Sequence[int], legacy: bool, target: Sequence[int]) -> bool:
    """A stored blob of ``source`` shape loads into a blob of ``target`` shape (as Caffe)."""
    return tuple(source) == tuple(target) or (legacy and legacy_shape_equals(source, target))


# --- name mapping and shape rules ---------------------------------------------------------------

def source_for(target_layer: str) -> tuple[str, str]:
    """(source model, source layer name) for a layer of our nets."""
    name = target_layer.rsplit(TOWER_SEPARATOR, 1)[-1]
    for prefix in (GROUPER_PREFIX, DIRECT_CNNM_PREFIX):
        if name.startswith(prefix):
            return CNN_M_2048, name[len(prefix):]
    return VGG16, name


def legacy_shape_equals(legacy: Sequence[int], shape: Sequence[int]) -> bool:
    """Caffe's Blob::ShapeEquals for a blob stored with num/channels/height/width."""
    if len(shape) > 4:
        return False
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return tuple(legacy) == padded


def cross_modality_weights(rgb_weights: np.ndarray, channels: int) -> np.ndarray:
    """TSN: average a first conv over its RGB input channels, replicate to ``channels``."""
    if rgb_weights.ndim != 4 or rgb_weights.shape[1] != RGB_CHANNELS:
        raise ValueError(f"cross-modality needs RGB conv weights (out, 3, h, w), "
                         f"got {rgb_weights.shape}")
    mean = rgb_weights.mean(axis=1, keepdims=True)
    return np.repeat(mean, channels, axis=1).astype(np.float32)


def bilinear_kernel(size: int) -> np.ndarray:
    """Caffe's BilinearFiller kernel: f = ceil(k/2), c = (k-1)/(2f), (1-|x/f-c|)(1-|y/f-c|)."""
    f = np.ceil(size / 2.0)
    c = (size - 1) / (2.0 * f)
    axis = 1 - np.abs(np.arange(size) / f - c)
    return np.outer(axis, axis).astype(np.float32)


def bilinear_weights(shape: Sequence[int]) -> np.ndarray:
    """What Caffe's bilinear filler writes into a Deconvolution weight blob of ``shape``:
    the same kernel in every (input, output) slot. Use group = channels for per-channel
    upsampling (Caffe's documented use)."""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"bilinear weights need a square 4-d kernel blob, got {tuple(shape)}")
    return np.broadcast_to(bilinear_kernel(int(shape[3])), tuple(shape)).copy()


# --- transplant ----------------------------------------------------------------------------------

@dataclass
class SurgeryReport:
    # (target layer, source model, source layer, note)
    copied: list[tuple[str, str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # target, reason
    bilinear: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"copied {len(self.copied)} layers, skipped {len(self.skipped)}, "
                 f"bilinear {len(self.bilinear)}"]
        lines += [f"  copied  {t} <- {m}:{s}{f' ({n})' if n else ''}"
                  for t, m, s, n in self.copied]
        lines += [f"  skipped {t}: {why}" for t, why in self.skipped]
        lines += [f"  bilinear {t}" for t in self.bilinear]
        return "\n".join(lines)


def _adapt_blob(source: np.ndarray, legacy: bool, target_shape: tuple[int, ...],
                src_name: str, cross_modality: bool) -> tuple[np.ndarray | None, str]:
    """The source blob reshaped to fit the target, or None; and a note."""
    if source.shape == target_shape:
        return source, ""
    if legacy and legacy_shape_equals(source.shape, target_shape):
        return source.reshape(target_shape), "legacy shape"
    if (cross_modality and src_name in FIRST_CONVS and source.ndim == 4
            and len(target_shape) == 4 and source.shape[1] == RGB_CHANNELS
            and target_shape[1] != RGB_CHANNELS
            and (source.shape[0],) + source.shape[2:] == (target_shape[0],) + target_shape[2:]):
        return (cross_modality_weights(source, target_shape[1]),
                f"cross-modality {RGB_CHANNELS}->{target_shape[1]} channels")
    return None, ""


def transplant(target: Mapping[str, Sequence[np.ndarray]],
               sources: Mapping[str, SourceModel],
               allowed_skip: Sequence[str] = DEFAULT_ALLOWED_SKIP,
               cross_modality: bool = True,
               source_for: Callable[[str], tuple[str, str]] = source_for) -> SurgeryReport:
    """Copy source blobs into ``target`` (layer name -> writable arrays) in place.

    ``source_for`` maps a target layer to (source key, source layer); by default the ImageNet
    rules above with ``sources`` keyed VGG16 / CNN_M_2048 (co2fi_tools.weights.stage_weights
    plugs in its own for trained stages). A layer is copied whole or not at all."""
    report = SurgeryReport()
    for layer, blobs in target.items():
        label, src_name = source_for(layer)
        model = sources.get(label)
        if model is None:
            report.skipped.append((layer, f"no {label} caffemodel given"))
            continue
        src = model.layers.get(src_name)
        if src is None:
            report.skipped.append((layer, f"{src_name!r} missing in {model.path}"))
            continue
        adapted, notes, problem = [], set(), ""
        if len(src.blobs) != len(blobs):
            problem = f"{len(blobs)} blobs in the net, {len(src.blobs)} in {model.path}"
        else:
            pairs = zip(blobs, src.blobs, src.legacy_shape, strict=True)
            for i, (dst, blob, legacy) in enumerate(pairs):
                fitted, note = _adapt_blob(blob, legacy, tuple(dst.shape), src_name,
                                           cross_modality)
                if fitted is None:
                    problem = (f"blob {i} has shape {tuple(dst.shape)} in the net, "
                               f"{tuple(blob.shape)} in {model.path} layer {src_name!r}")
                    break
                adapted.append(fitted)
                if note:
                    notes.add(note)
        if problem:
            if src_name in allowed_skip or layer in allowed_skip:
                report.skipped.append((layer, f"shape mismatch, allowed: {problem}"))
                continue
            raise ShapeMismatchError(
                f"layer {layer!r} <- {label} {src_name!r}: {problem}. "
                f"Add {src_name!r} to the allowed-skip list if this is intended.")
        for dst, fitted in zip(blobs, adapted, strict=False):
            dst[...] = fitted
        report.copied.append((layer, label, src_name, ", ".join(sorted(notes))))
    return report


def fill_bilinear(target: Mapping[str, Sequence[np.ndarray]], layers: Sequence[str],
                  report: SurgeryReport | None = None) -> None:
    for layer in layers:
        weights = target[layer][0]
        weights[...] = bilinear_weights(weights.shape)
        if report is not None:
            report.bilinear.append(layer)


def max_bilinear_error(weights: np.ndarray) -> float:
    return float(np.max(np.abs(weights - bilinear_weights(weights.shape))))


# --- with pycaffe -------------------------------------------------------------------------------

def _net_params(net) -> dict[str, list[np.ndarray]]:
    return {name: [blob.data for blob in blobs] for name, blobs in net.params.items()}


def deconvolution_layers(net) -> list[str]:
    return [name for name, layer in zip(net._layer_names, net.layers, strict=False)
            if layer.type == "Deconvolution" and len(layer.blobs)]


def initialise_loaded_net(net, sources: Mapping[str, SourceModel],
                          allowed_skip: Sequence[str] = DEFAULT_ALLOWED_SKIP,
                          cross_modality: bool = True, bilinear: bool = True) -> SurgeryReport:
    """Surgery on a caffe.Net already built (e.g. ``solver.net`` in a training driver, which
    also holds the train-only layers such as the grouper that a deploy net lacks)."""
    params = _net_params(net)
    upsampling = deconvolution_layers(net) if bilinear else []
    report = transplant({k: v for k, v in params.items() if k not in upsampling}, sources,
                        allowed_skip, cross_modality)
    fill_bilinear(params, upsampling, report)
    return report


def initialise_net(net_prototxt: str | os.PathLike, out_caffemodel: str | os.PathLike, *,
                   vgg16: str | os.PathLike | None = None,
                   cnn_m_2048: str | os.PathLike | None = None,
                   allowed_skip: Sequence[str] = DEFAULT_ALLOWED_SKIP,
                   cross_modality: bool = True, bilinear: bool = True,
                   phase: str = "test") -> SurgeryReport:
    """Build ``net_prototxt`` with pycaffe (CPU), copy ImageNet weights, fill Deconvolution
    layers bilinearly, and save the weights to ``out_caffemodel`` (atomically)."""
    import caffe

    caffe.set_mode_cpu()
    sources = {}
    if vgg16:
        sources[VGG16] = read_caffemodel(vgg16)
    if cnn_m_2048:
        sources[CNN_M_2048] = read_caffemodel(cnn_m_2048)
    if not sources:
        raise ValueError("give at least one source caffemodel (VGG-16 or CNN_M_2048)")
    caffe_phase = {"test": caffe.TEST, "train": caffe.TRAIN}[phase]
    net = caffe.Net(os.fspath(net_prototxt), caffe_phase)
    report = initialise_loaded_net(net, sources, allowed_skip, cross_modality, bilinear)
    with atomic_path(out_caffemodel) as tmp:
        net.save(os.fspath(tmp))
    return report


def describe_caffemodel(path: str | os.PathLike) -> str:
    model = read_caffemodel(path)
    lines = [f"{model.path}: format {model.format}, {len(model.layers)} layers with blobs"]
    for layer in model.layers.values():
        shapes = ", ".join(
            f"{'x'.join(map(str, b.shape))}{' (legacy)' if leg else ''}"
            for b, leg in zip(layer.blobs, layer.legacy_shape, strict=False))
        lines.append(f"  {layer.name}: {shapes}")
    return "\n".join(lines)


# --- command line (tools/net_surgery.py) ---

CLI_USAGE = r"""Initialise a net from ImageNet caffemodels (VGG-16, CNN_M_2048); inspect them.

    .venv/bin/python tools/net_surgery.py init --net prototxt/<preset>/<dataset>/deploy.prototxt \
        --vgg16 VGG_ILSVRC_16_layers.caffemodel --cnn-m CNN_M_2048.caffemodel --out init.caffemodel
    .venv/bin/python tools/net_surgery.py inspect VGG_ILSVRC_16_layers.caffemodel
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=CLI_USAGE.splitlines()[0],
                                     epilog=CLI_USAGE.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="copy ImageNet weights into a net and save a caffemodel")
    init.add_argument("--net", required=True, help="net prototxt (a deploy net is simplest)")
    init.add_argument("--out", required=True, help="caffemodel to write")
    init.add_argument("--vgg16", help="VGG-16 ImageNet caffemodel")
    init.add_argument("--cnn-m", dest="cnn_m", help="CNN_M_2048 ImageNet caffemodel")
    init.add_argument("--allow-skip", nargs="*", default=list(DEFAULT_ALLOWED_SKIP),
                      help="source layers skipped on a shape mismatch (default: fc8)")
    init.add_argument("--no-cross-modality", action="store_true",
                      help="a non-RGB first conv is a shape mismatch instead of TSN's init")
    init.add_argument("--no-bilinear", action="store_true",
                      help="leave Deconvolution weights as the net's filler made them")
    init.add_argument("--phase", choices=["test", "train"], default="test")
    init.add_argument("--report", help="also write the report to this text file")
    inspect = sub.add_parser("inspect", help="list a caffemodel's layers and blob shapes")
    inspect.add_argument("caffemodel")
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            print(describe_caffemodel(args.caffemodel))
            return 0
        report = initialise_net(
            args.net, args.out, vgg16=args.vgg16, cnn_m_2048=args.cnn_m,
            allowed_skip=args.allow_skip, cross_modality=not args.no_cross_modality,
            bilinear=not args.no_bilinear, phase=args.phase)
    except (OSError, ValueError) as err:
        print(f"net_surgery: {err}", file=sys.stderr)
        return 2
    summary = report.summary()
    print(summary)
    print(f"wrote {args.out}")
    if args.report:
        Path(args.report).write_text(summary + "\n", encoding="utf-8")
    return 0

