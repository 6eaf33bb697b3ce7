"""Monocular depth: sample ``image`` [3,H,W] in [0,1], ``depth`` [H,W] (m, 0 = unknown),
``valid`` [H,W] bool, ``K`` [3,3]; prediction depth [H,W] per image.

A predictor returns depth [B,H,W] (or [B,1,H,W], or a list of [H,W] when images differ in
size), or declares another kind with a dict: ``{"inverse_depth": ...}`` (1/m) or
``{"disparity": ...}`` (inverse depth up to an unknown scale and shift, as MiDaS predicts).
A plain network is called as ``module(images [B,3,H,W])`` and read as depth unless it has
an attribute ``arbench_output`` naming another kind. The metric converts and aligns.

Predictions (``--predictions PATH``, read only, never written):

- ``.npz`` with ``ids`` [N] (str) and one array ``depth``, ``inverse_depth`` or
  ``disparity`` [N,H,W] (float16 or float32, at the images' size);
- a folder (or a ``.zip`` of it) of per-image ``.npy`` float depth maps in metres [H,W],
  named by sample id with the image extension replaced (``kitchen/rgb_00045.npy``);
- a folder (or a ``.zip`` of it) of per-image 16-bit PNGs as BTS's ``bts_test.py`` writes
  them and ``utils/eval_with_pngs.py`` reads them: ``<scene>_rgb_00045.png`` for NYU,
  ``<date>_drive_<n>_sync_<frame>.png`` for KITTI; the depth scale (1000 for NYU's
  millimetres, 256 for KITTI) is the data set's (``DatasetInfo.meta``), never a flag.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError, ModelError
from bench.families.base import (
    Batch,
    Family,
    PredictionTable,
    Predictor,
    batch_device,
    check_tensor,
)
from bench.families.saving import PredictionWriter, write_bytes_atomic
from bench.formats.archive import read_member
from bench.formats.images import decode_depth_png
from bench.formats.npz import NpzFile
from bench.registry import FAMILIES

KINDS = ("depth", "inverse_depth", "disparity")


def check_values(kind: str, value: torch.Tensor) -> torch.Tensor:
    """Refuse NaN anywhere and infinity in inverse depth or disparity; infinite depth is
    allowed (the metric clamps it to max_depth, as BTS does)."""
    nan = int(torch.isnan(value).sum())
    if nan:
        raise ContractError(f"prediction {kind!r} has {nan} NaN values")
    if kind != "depth" and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ContractError(f"prediction {kind!r} has {bad} infinite values")
    return value


class DepthTable(PredictionTable):
    """Serves per-image maps of a predictions file by sample id."""

    def __init__(self, ids: list[str], maps: np.ndarray, kind: str, source: Path) -> None:
        super().__init__(ids, source)
        self.maps, self.kind = maps, kind

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        rows = np.stack([self.maps[row] for row in self.rows_for(batch)]).astype(np.float32)
        return {self.kind: torch.from_numpy(rows).to(batch_device(batch))}


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm")


def npy_name(sample_id: str) -> str:
    """The ``.npy`` file of a sample: its id with an image extension replaced
    (``kitchen/rgb_00045.jpg`` -> ``kitchen/rgb_00045.npy``) or ``.npy`` appended
    (``bear/00003`` -> ``bear/00003.npy``)."""
    path = PurePosixPath(sample_id)
    stem = path.with_suffix("") if path.suffix.lower() in IMAGE_SUFFIXES else path
    return f"{stem}.npy"


def bts_png_name(sample_id: str, layout: str) -> str:
    """The PNG BTS's ``bts_test.py`` writes for a sample id (the image path of its file list).

    ``nyu``: ``<scene>/rgb_00045.jpg`` -> ``<scene>_rgb_00045.png``; ``kitti``:
    ``2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png`` ->
    ``2011_09_26_drive_0002_sync_0000000069.png``.
    """
    parts = PurePosixPath(sample_id).parts
    if layout == "nyu" and len(parts) == 2:
        return f"{parts[0]}_{PurePosixPath(parts[1]).stem}.png"
    if layout == "kitti" and len(parts) >= 3:
        return f"{parts[1]}_{PurePosixPath(parts[-1]).stem}.png"
    raise ContractError(f"sample id {sample_id!r} has no BTS prediction PNG name in the "
                        f"{layout!r} layout")


class MapSource:
    """Files of a predictions folder or ``.zip`` (members at its root or under one top
    folder), read by relative name and never written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.is_file()
        if self.is_zip:
            if not zipfile.is_zipfile(path):
                raise ContractError(f"{path}: depth predictions must be an .npz file, a .zip or "
                                    "a folder of per-image .npy or .png maps")
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
            tops = {m.split("/", 1)[0] for m in members}
            nested = len(tops) == 1 and all("/" in m for m in members)
            self.prefix = f"{tops.pop()}/" if nested else ""
            self.names = {m[len(self.prefix):] for m in members}
        else:
            self.prefix = ""
            self.names = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}

    def where(self, name: str) -> str:
        """Where ``name`` is (or would be), for messages."""
        return f"{self.path}:{self.prefix}{name}" if self.is_zip else str(self.path / name)

    def read(self, name: str) -> bytes:
        """The bytes of ``name``; ModelError naming it when it is not there."""
        if name not in self.names:
            raise ModelError(f"no depth prediction {self.where(name)}",
                             "docs/depth.md lists the file names each layout expects")
        if self.is_zip:
            with zipfile.ZipFile(self.path) as archive:
                return read_member(archive, self.prefix + name, self.where(name))
        return (self.path / name).read_bytes()


def decode_npy(data: bytes, where: str) -> np.ndarray:
    """A 2-D float ``.npy`` depth map (metres); ContractError naming ``where`` otherwise."""
    try:
        depth = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ContractError(f"{where} is not a readable .npy array ({exc})") from exc
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ContractError(f"{where} holds {depth.dtype} of shape {depth.shape}; expected a "
                            "float depth map [H,W] in metres")
    return depth.astype(np.float32)


class DepthMapFiles:
    """Serves per-image depth maps from a folder or archive by sample id, read lazily."""

    def __init__(self, source: MapSource, name_of: Callable[[str], str],
                 decode: Callable[[bytes, str], np.ndarray]) -> None:
        self.source, self.name_of, self.decode = source, name_of, decode

    def __call__(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        device = batch_device(batch)
        maps = []
        for sample_id in batch["id"]:
            name = self.name_of(str(sample_id))
            depth = self.decode(self.source.read(name), self.source.where(name))
            maps.append(torch.from_numpy(depth).to(device))
        return {"depth": maps}


def map_files(path: Path, dataset: Any) -> DepthMapFiles:
    """The per-image layout of a folder or ``.zip``: ``.npy`` maps when it holds any, else
    BTS's 16-bit PNGs at the data set's scale and naming (``DatasetInfo.meta``)."""
    source = MapSource(path)
    if any(name.endswith(".npy") for name in source.names):
        return DepthMapFiles(source, npy_name, decode_npy)
    if not any(name.endswith(".png") for name in source.names):
        raise ContractError(f"{path} holds no .npy or .png depth maps")
    meta = dataset.info.meta
    scale, layout = meta.get("depth_scale"), meta.get("bts_layout")
    if scale is None or layout is None:
        raise ContractError(f"{path} holds PNG depth maps, but data set {dataset.info.name!r} "
                            "has no BTS PNG layout (depth scale and file names)",
                            "give per-image .npy depth maps in metres instead")
    return DepthMapFiles(source, lambda sample_id: bts_png_name(sample_id, layout),
                         lambda data, where: decode_depth_png(data, where, float(scale),
                                                           ContractError))


class DepthMapFolder(PredictionWriter):
    """A folder of per-image ``.npy`` float32 depth maps in metres named by sample id
    (``npy_name``), each written to a temporary file and renamed into place."""

    target_name = "depth"

    def write(self, batch: Batch, raw: Any, pred: dict[str, Any]) -> None:
        if pred["kind"] != "depth":
            raise ContractError(f"{pred['kind']} predictions cannot be saved: the per-image "
                                "folder holds depth in metres", "predict depth to save it")
        for sample_id, depth in zip(batch["id"], pred["value"], strict=True):
            buffer = io.BytesIO()
            np.save(buffer, depth.detach().cpu().numpy().astype(np.float32))
            write_bytes_atomic(self.target / npy_name(str(sample_id)), buffer.getvalue())


@FAMILIES.register("depth")
class DepthFamily(Family):
    """Monocular depth: image, depth (m), valid mask, K -> depth [H,W] (or inverse depth)."""

    name = "depth"
    sample_keys = ("id", "image", "depth", "valid", "K")

    def module_predictor(self, module: Any) -> Predictor:
        """``module(images [B,3,H,W]) -> [B,H,W] or [B,1,H,W]``; per image for mixed sizes."""
        kind = getattr(module, "arbench_output", "depth")

        def predict(batch: Batch) -> dict[str, Any]:
            images = batch["image"]
            if isinstance(images, torch.Tensor):
                return {kind: module(images)}
            return {kind: [module(image[None])[0] for image in images]}

        return predict

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> dict[str, Any]:
        """Normalise to ``{"kind": str, "value": [B,H,W] tensor or list of [H,W]}``."""
        kind = "depth"
        if isinstance(pred, dict):
            keys = [k for k in pred if k in KINDS]
            if len(keys) != 1:
                raise ContractError(f"a depth prediction dict needs exactly one key of {KINDS}, "
                                    f"got {sorted(pred)}")
            kind = keys[0]
            pred = pred[kind]
        size = len(batch["id"])
        if isinstance(pred, list | tuple):
            if len(pred) != size:
                raise ContractError(f"{len(pred)} {kind} maps for a batch of {size} images")
            value: Any = [self._map(kind, p) for p in pred]
        else:
            if isinstance(pred, torch.Tensor) and pred.ndim == 4 and pred.shape[1] == 1:
                pred = pred[:, 0]
            value = check_values(kind, check_tensor(kind, pred, (size, None, None),
                                                    finite=False)).float()
        return {"kind": kind, "value": value}

    @staticmethod
    def _map(kind: str, value: Any) -> torch.Tensor:
        if isinstance(value, torch.Tensor) and value.ndim == 3 and value.shape[0] == 1:
            value = value[0]
        return check_values(kind, check_tensor(kind, value, (None, None), finite=False)).float()

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """``.npz`` with ``ids`` and one of ``depth`` / ``inverse_depth`` / ``disparity``, or
        a folder or ``.zip`` of per-image ``.npy`` (metres) or BTS 16-bit PNG maps."""
        if path.suffix != ".npz":
            return map_files(path, dataset)
        with NpzFile(path, str(path)) as data:
            kinds = [k for k in KINDS if k in data]
            if "ids" not in data or len(kinds) != 1:
                raise ContractError(f"{path} must hold 'ids' and exactly one of {KINDS}; "
                                    f"it holds {sorted(data.files)}")
            ids = [str(i) for i in data["ids"]]
            maps = np.asarray(data[kinds[0]])
        if maps.ndim != 3 or len(maps) != len(ids):
            raise ContractError(f"{path}: {kinds[0]} has shape {maps.shape}, expected "
                                f"[{len(ids)}, H, W] for {len(ids)} ids")
        return DepthTable(ids, maps, kinds[0], path)

    def prediction_writer(self, folder: Path, dataset: Any) -> DepthMapFolder:
        """A folder of per-image ``.npy`` depth maps (metres) named by sample id."""
        return DepthMapFolder(folder, dataset)
