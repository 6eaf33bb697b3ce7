"""The bottom layer: cameras, rotations, meshes, grids, distances, the renderer and the hand
skeleton. Imports no part of bench but ``bench.errors``."""
