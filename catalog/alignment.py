"""Similarity transforms between two images' level-0 pixels (pure).

A transform ``(tx, ty, rotation, scale)`` maps a pixel p of the *other*
image onto the first: ``scale * R(rotation) * p + (tx, ty)``, R turning
clockwise on screen (y points down), rotation in degrees.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Transform(NamedTuple):
    tx: float = 0.0
    ty: float = 0.0
    rotation: float = 0.0
    scale: float = 1.0

    def apply(self, x: float, y: float) -> tuple[float, float]:
        c, s = math.cos(math.radians(self.rotation)), math.sin(math.radians(self.rotation))
        return (self.scale * (c * x - s * y) + self.tx, self.scale * (s * x + c * y) + self.ty)

    def inverse(self) -> Transform:
        """The transform the other way round (first image's pixels onto the other's)."""
        c, s = math.cos(math.radians(self.rotation)), math.sin(math.radians(self.rotation))
        k = 1.0 / self.scale
        # p = R(-θ) (q - t) / s
        tx = -k * (c * self.tx + s * self.ty)
        ty = -k * (-s * self.tx + c * self.ty)
        rot = -self.rotation
        return Transform(tx, ty, ((rot + 180.0) % 360.0) - 180.0, k)
