"""The bottom layer: cameras, rotations, meshes, grids, distances, the renderer, the hand
skeleton and the process's thread pool (``threads``). Imports no part of bench but
``bench.errors``."""
