"""The bottom layer beside geometry: file formats (binvox, OBJ, OFF, PLY point clouds, depth
and index PNGs, palettes, IDX, MATLAB .mat, bounded .npz). Imports no part of bench but
``bench.errors``."""
