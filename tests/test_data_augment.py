"""TSN augmentation: crop sizes/positions, flip inverting flow x, mean, centre crop."""

from __future__ import annotations

import numpy as np

from co2fi_layers import augment
from netgen import paper


def test_crop_sizes_scale_with_the_stored_frame():
    assert augment.crop_sizes(min(paper.FRAME_SIZE)) == list(paper.CROP_SCALES)
    assert augment.crop_sizes(64) == [64, 56, 48, 42]
    assert all(abs(i - j) <= paper.MAX_DISTORT for i, j in augment.scale_pairs())
    assert len(augment.fixed_offsets(340, 256, 224, 224)) == 13
    assert augment.fixed_offsets(340, 256, 224, 224, more_fix_crop=False)[4] == (58, 16)


def test_every_random_crop_is_inside_the_frame():
    rng = np.random.default_rng(0)
    for width, height in [(340, 256), (85, 64), (48, 36)]:
        for _ in range(200):
            x, y, w, h = augment.random_crop(rng).box(width, height)
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height


def test_centre_crop_and_mean():
    x, y, w, h = augment.TEST_CROP.box(*paper.FRAME_SIZE)
    assert (w, h) == (paper.INPUT_SIZE, paper.INPUT_SIZE)
    assert (x, y) == ((paper.FRAME_SIZE[0] - w) // 2, (paper.FRAME_SIZE[1] - h) // 2)
    image = np.full((paper.FRAME_SIZE[1], paper.FRAME_SIZE[0], 3), 200, np.uint8)
    out = np.empty((3, 32, 32), np.float32)
    augment.transform(image, augment.TEST_CROP, 32, False, out)
    assert np.allclose(out[:, 0, 0], 200 - np.array(paper.RGB_MEAN_BGR))


def test_flip_mirrors_and_inverts_flow_x_only():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, size=(8, 8, 2 * paper.FLOW_STACK), dtype=np.uint8)
    crop = augment.CropChoice(0, 0, 0, flip=False)  # full frame (8 = short side), no resize
    plain, flipped = (np.empty((2 * paper.FLOW_STACK, 8, 8), np.float32) for _ in range(2))
    augment.transform(stack, crop, 8, True, plain)
    augment.transform(stack, augment.CropChoice(0, 0, 0, flip=True), 8, True, flipped)
    mean = paper.FLOW_MEAN
    assert np.array_equal(flipped[1::2], plain[1::2, :, ::-1])
    assert np.array_equal(flipped[0::2] + mean, 255 - (plain[0::2, :, ::-1] + mean))
    rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    a, b = np.empty((3, 8, 8), np.float32), np.empty((3, 8, 8), np.float32)
    augment.transform(rgb, crop, 8, False, a)
    augment.transform(rgb, augment.CropChoice(0, 0, 0, flip=True), 8, False, b)
    assert np.array_equal(a[:, :, ::-1], b)
