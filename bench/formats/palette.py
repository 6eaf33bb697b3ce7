"""The DAVIS / PASCAL VOC colour palette of indexed label PNGs."""

from __future__ import annotations


def davis_palette() -> list[int]:
    """The DAVIS / PASCAL VOC palette as a flat list of 768 ints (id -> RGB)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette += [r, g, b]
    return palette
