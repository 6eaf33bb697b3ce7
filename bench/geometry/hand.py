"""The hand skeleton: FreiHAND's 21 keypoint names and its 20 bones."""

from __future__ import annotations

FINGERS = ("thumb", "index", "middle", "ring", "little")
KEYPOINT_NAMES = ["wrist"] + [f"{finger}_{i}" for finger in FINGERS for i in range(1, 5)]
# (child, parent) of each of the 20 bones, FreiHAND order.
BONES = [(1 + 4 * f + j, 0 if j == 0 else 4 * f + j) for f in range(5) for j in range(4)]
