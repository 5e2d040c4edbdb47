"""Optical flow as TSN's dense_flow computes and stores it.

Flow is computed between consecutive (resized) grey frames, clipped to +-paper.FLOW_BOUND and
mapped linearly to 0..255 (dense_flow's ``CAST``: ``round(255 * (v + B) / (2B))``, saturated),
x and y stored as two greyscale JPEGs.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from netgen import paper

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: dense_flow's CPU Farneback settings (pyr_scale, levels, winsize, iterations, poly_n,
#: poly_sigma, flags).
FARNEBACK_PARAMS = (0.702, 5, 10, 2, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def tvl1() -> FlowFn:
    """TV-L1 with OpenCV's defaults (those of dense_flow's GPU TV-L1)."""
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    return lambda prev, nxt: solver.calc(prev, nxt, None)


#: A CPU-friendly TV-L1 for the demo: fewer pyramid levels and warps, looser stopping; about 14x
#: faster than the defaults on our synthetic clips (docs/DATA.md).
TVL1_FAST = {"nscales": 3, "warps": 3, "epsilon": 0.05}


def tvl1_fast() -> FlowFn:
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    solver.setScalesNumber(TVL1_FAST["nscales"])
    solver.setWarpingsNumber(TVL1_FAST["warps"])
    solver.setEpsilon(TVL1_FAST["epsilon"])
    return lambda prev, nxt: solver.calc(prev, nxt, None)


def farneback() -> FlowFn:
    return lambda prev, nxt: cv2.calcOpticalFlowFarneback(prev, nxt, None, *FARNEBACK_PARAMS)


METHODS: dict[str, Callable[[], FlowFn]] = {
    "tvl1": tvl1,
    "tvl1-fast": tvl1_fast,
    "farneback": farneback,
}


def quantize(component: np.ndarray, bound: float = paper.FLOW_BOUND) -> np.ndarray:
    """Flow component (pixels) -> uint8: -bound -> 0, +bound -> 255, linear, saturated."""
    scaled = np.rint((component.astype(np.float32) + bound) * (255.0 / (2 * bound)))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def dequantize(image: np.ndarray, bound: float = paper.FLOW_BOUND) -> np.ndarray:
    """Inverse of :func:`quantize` (up to rounding and clipping)."""
    return image.astype(np.float32) * (2 * bound / 255.0) - bound
