"""Does an appearance net carry the miniature's texture? A linear probe at each layer (issue 19).

The miniature's appearance cue within a group is the texture (striped or checked) its object
shows after the motion (docs/MINIATURE.md). For one appearance net (its deploy net and weights,
e.g. the pretrained trunk or a trained ``baseline_rgb``) this takes one textured frame of every
training and test video (half-way between the texture's first frame and the clip's end, the
evaluation's centre crop), reads each listed blob, fits a logistic regression of the texture on
the training frames and scores it on the test frames. ``data`` (the pixels) is the reference:
a layer at chance has lost what its input had.

    python -m co2fi_tools.reporting.texture_probe DATA_ROOT DEPLOY WEIGHTS [--blobs data fc7]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from co2fi_layers import augment, frames
from co2fi_tools.reporting.fusion_probe import CLIP, clip_cues, miniature_classes
from data_prep.errors import DataError
from data_prep.lists import frames_root, list_path

BLOBS = ("data", "conv2_2", "conv3_3", "conv4_3", "pool5", "fc6", "fc7")


def textured_frames(data_root: Path, subset: str, input_size: int, data_seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(frames N x 3 x S x S as the evaluation crops them, texture index of each) of one
    textured frame a video of the ``subset`` rgb list."""
    specs = miniature_classes(data_root)
    images, textures = [], []
    for video in frames.read_list(str(list_path(data_root, "rgb", subset, 1)),
                                  str(frames_root(data_root))):
        clip = int(CLIP.search(Path(video.path).name).group(1)) - 1
        cues = clip_cues(specs[video.label], video.label, clip, video.num_frames, data_seed)
        shown = (cues.timeline.show_start + video.num_frames) // 2 + 1  # 1-based
        out = np.empty((3, input_size, input_size), np.float32)
        augment.transform(frames.load_image(video.path, shown), augment.TEST_CROP, input_size,
                          False, out)
        images.append(out)
        textures.append(cues.texture)
    return np.stack(images), np.asarray(textures)


def blob_features(net, images: np.ndarray, blobs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each blob's values (flattened) for ``images``, one forward pass."""
    net.blobs["data"].reshape(*images.shape)
    net.reshape()
    net.blobs["data"].data[...] = images
    net.forward()
    return {b: net.blobs[b].data.reshape(len(images), -1).copy() for b in blobs}


def probe(train: dict[str, np.ndarray], train_y: np.ndarray, test: dict[str, np.ndarray],
          test_y: np.ndarray) -> dict[str, float]:
    """blob -> test accuracy of a logistic regression of the texture fitted on ``train``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for blob, features in train.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        model.fit(features, train_y)
        out[blob] = float(np.mean(model.predict(test[blob]) == test_y))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m co2fi_tools.reporting.texture_probe",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path, help="a miniature data folder (splits/, lists/)")
    ap.add_argument("deploy", type=Path, help="an appearance deploy net (input blob 'data')")
    ap.add_argument("weights", type=Path, help="its weights (layers it lacks stay random)")
    ap.add_argument("--blobs", nargs="+", default=list(BLOBS))
    args = ap.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        for path in (args.deploy, args.weights):
            if not path.is_file():
                raise ValueError(f"{path}: no such file")
        import caffe

        caffe.set_mode_cpu()
        net = caffe.Net(str(args.deploy), caffe.TEST)
        net.copy_from(str(args.weights))
        missing = [b for b in args.blobs if b not in net.blobs]
        if missing:
            raise ValueError(f"{args.deploy}: no blob {missing[0]!r}")
        size = int(net.blobs["data"].data.shape[-1])
        train_x, train_y = textured_frames(args.data_root, "train", size)
        test_x, test_y = textured_frames(args.data_root, "val", size)
        result = probe(blob_features(net, train_x, tuple(args.blobs)), train_y,
                       blob_features(net, test_x, tuple(args.blobs)), test_y)
    except (OSError, ValueError, KeyError, DataError) as exc:
        print(f"texture_probe: error: {exc}", file=sys.stderr)
        return 1
    print(f"texture probe, {args.weights} ({len(train_y)} training / {len(test_y)} test frames;"
          " chance 50 %)")
    for blob, accuracy in result.items():
        print(f"  {blob}: {100 * accuracy:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
