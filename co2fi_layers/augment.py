"""TSN's augmentation (Sec. 6.1 "the same method as" Wang et al. 2016b), no Caffe.

Train: scale jitter plus fixed-position crops ("more_fix_crop"): crop width and height are drawn
from paper.CROP_SCALES (given for a 256-pixel shorter side, scaled to the stored frame's
shorter side) at most paper.MAX_DISTORT steps apart, placed at one of TSN's 13 fixed positions
(or 5 without more_fix_crop), resized to the input size, flipped horizontally with probability
1/2 (flow x is then inverted: 255 - v). Test: the centre crop of side
paper.INPUT_SIZE / 256 x shorter side, resized to the input size. Then the mean is subtracted
(paper.RGB_MEAN_BGR, paper.FLOW_MEAN) and the result laid out C x H x W in float32.

A crop is drawn once as a :class:`CropChoice` (indices, not pixels) and turned into a pixel box
per frame size, so every input of a period gets the same crop even if sizes differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from netgen import paper

REFERENCE_SHORT_SIDE = min(paper.FRAME_SIZE)  # the side CROP_SCALES are given for
RGB_MEAN = np.array(paper.RGB_MEAN_BGR, dtype=np.float32)
FLOW_MEAN = np.float32(paper.FLOW_MEAN)


def crop_sizes(short_side: int) -> list[int]:
    return [max(1, round(s * short_side / REFERENCE_SHORT_SIDE)) for s in paper.CROP_SCALES]


def scale_pairs() -> list[tuple[int, int]]:
    """(width index, height index) into CROP_SCALES at most MAX_DISTORT apart."""
    n = len(paper.CROP_SCALES)
    return [(i, j) for i in range(n) for j in range(n) if abs(i - j) <= paper.MAX_DISTORT]


def fixed_offsets(width: int, height: int, crop_w: int, crop_h: int,
                  more_fix_crop: bool = True) -> list[tuple[int, int]]:
    """TSN's fixed crop positions (x, y): centre, 4 corners, and with more_fix_crop the 4 edge
    centres and 4 quarter points (GroupMultiScaleCrop.fill_fix_offset)."""
    ws, hs = (width - crop_w) // 4, (height - crop_h) // 4
    offsets = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
    if more_fix_crop:
        offsets += [(0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0),
                    (1 * ws, 1 * hs), (3 * ws, 1 * hs), (1 * ws, 3 * hs), (3 * ws, 3 * hs)]
    return offsets


@dataclass(frozen=True)
class CropChoice:
    scale_w: int = -1  # index into CROP_SCALES; -1 = the test centre crop
    scale_h: int = -1
    position: int = 4  # index into fixed_offsets (4 = centre)
    flip: bool = False
    more_fix_crop: bool = True

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) in a frame of ``width`` x ``height``."""
        short = min(width, height)
        if self.scale_w < 0:
            side = min(short, max(1, round(paper.INPUT_SIZE * short / REFERENCE_SHORT_SIDE)))
            return (width - side) // 2, (height - side) // 2, side, side
        sizes = crop_sizes(short)
        crop_w, crop_h = sizes[self.scale_w], sizes[self.scale_h]
        x, y = fixed_offsets(width, height, crop_w, crop_h, self.more_fix_crop)[self.position]
        return x, y, crop_w, crop_h


TEST_CROP = CropChoice()


def random_crop(rng: np.random.Generator, more_fix_crop: bool = True,
                flip: bool = True) -> CropChoice:
    pairs = scale_pairs()
    scale_w, scale_h = pairs[int(rng.integers(len(pairs)))]
    positions = 13 if more_fix_crop else 5
    return CropChoice(scale_w, scale_h, int(rng.integers(positions)),
                      bool(flip and rng.integers(2)), more_fix_crop)


def transform(image: np.ndarray, crop: CropChoice, input_size: int, is_flow: bool,
              out: np.ndarray) -> None:
    """Crops/resizes/flips ``image`` (H x W x C uint8) and writes C x S x S float32, mean
    subtracted, into ``out``."""
    if is_flow:
        transform_planes([image[:, :, c] for c in range(image.shape[2])], crop, input_size, out)
        return
    height, width = image.shape[:2]
    x, y, w, h = crop.box(width, height)
    patch = image[y:y + h, x:x + w]
    if (w, h) != (input_size, input_size):
        patch = cv2.resize(patch, (input_size, input_size), interpolation=cv2.INTER_LINEAR)
    if crop.flip:
        patch = cv2.flip(patch, 1)
    np.subtract(patch.transpose(2, 0, 1), RGB_MEAN[:, None, None], out=out, dtype=np.float32)


def transform_planes(planes: list[np.ndarray], crop: CropChoice, input_size: int,
                     out: np.ndarray) -> None:
    """Flow stack given as its 2L greyscale planes (x1, y1, x2, y2, ...): plane by plane, which
    is faster than merging them first; flipping inverts the x planes."""
    height, width = planes[0].shape[:2]
    x, y, w, h = crop.box(width, height)
    resize = (w, h) != (input_size, input_size)
    inverted_mean = np.float32(255) - FLOW_MEAN
    for c, plane in enumerate(planes):
        patch = plane[y:y + h, x:x + w]
        if resize:
            patch = cv2.resize(patch, (input_size, input_size), interpolation=cv2.INTER_LINEAR)
        if crop.flip:
            patch = cv2.flip(patch, 1)
            if c % 2 == 0:  # x: 255 - v, minus the mean
                np.subtract(inverted_mean, patch, out=out[c], dtype=np.float32)
                continue
        np.subtract(patch, FLOW_MEAN, out=out[c], dtype=np.float32)
