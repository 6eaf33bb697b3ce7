"""Video object segmentation (DAVIS, semi-supervised): one sample is one sequence.

Sample: ``frames`` uint8 [T,3,H,W] (RGB; uint8 keeps 480p sequences small, divide by 255
for [0,1]), ``first_mask`` int64 [H,W] (object ids 1..N on 0, the given first-frame
annotation), ``num_objects`` N, ``annotations`` int64 [T,H,W] (ground truth, for the
metric only: a predictor must use ``first_mask`` alone), ``sequence_index``.
Prediction: an integer label map [T,H,W] per sequence (ids 0..N), as a list or a tensor
[B,T,H,W].

Predictions: the DAVIS results layout, ``<sequence>/<frame>.png`` (00000.png ...), palette
or 8-bit single-channel PNGs of object ids, either as a folder (what davis2017-evaluation's
``--results_path`` reads) or as a ``.zip``, optionally inside one top-level folder (what the
DAVIS challenge takes).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError, ModelError
from bench.families.base import Batch, Family, Predictor
from bench.formats.archive import read_member
from bench.formats.images import read_index_png
from bench.registry import FAMILIES


class ResultMasks:
    """Serves label maps [T,H,W] per sequence from masks in the DAVIS results layout,
    ``<sequence>/<frame>.png`` (frames 00000, 00001, ...); subclasses say where masks live."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def mask(self, sequence: str, frame: str) -> tuple[bytes | Path, str] | None:
        """The mask of one frame (its bytes or path, and a name for errors), None if absent."""
        raise NotImplementedError

    def has_sequence(self, sequence: str) -> bool:
        """Whether the results hold a folder for ``sequence``."""
        raise NotImplementedError

    def __call__(self, batch: Batch) -> list[torch.Tensor]:
        out = []
        for sequence, frames in zip(batch["id"], batch["frames"], strict=True):
            if not self.has_sequence(sequence):
                raise ModelError(f"{self.source} has no masks for sequence {sequence!r} "
                                 f"(expected {sequence}/00000.png ...)")
            labels = []
            for t in range(frames.shape[0]):
                found = self.mask(sequence, f"{t:05d}")
                if found is None:
                    raise ModelError(f"{self.source}: missing {sequence}/{t:05d}.png")
                labels.append(read_index_png(*found, ContractError))
            out.append(torch.from_numpy(np.stack(labels).astype(np.int64)).to(frames.device))
        return out


class ZipMasks(ResultMasks):
    """A zip of the DAVIS results layout, optionally inside one top-level folder."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self.archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise ContractError(f"{path} is not a zip file") from exc
        self.members: dict[str, dict[str, str]] = {}
        for member in self.archive.namelist():
            parts = Path(member).parts
            if member.endswith(".png") and len(parts) >= 2:
                self.members.setdefault(parts[-2], {})[Path(parts[-1]).stem] = member

    def has_sequence(self, sequence: str) -> bool:
        return bool(self.members.get(sequence))

    def mask(self, sequence: str, frame: str) -> tuple[bytes, str] | None:
        member = self.members[sequence].get(frame)
        if member is None:
            return None
        where = f"{self.source}:{member}"
        return read_member(self.archive, member, where), where


class FolderMasks(ResultMasks):
    """A results folder ``<sequence>/<frame>.png`` as davis2017-evaluation reads it (read
    only; nothing is listed up front, so a missing sequence or frame is named when needed)."""

    def has_sequence(self, sequence: str) -> bool:
        return (self.source / sequence).is_dir()

    def mask(self, sequence: str, frame: str) -> tuple[Path, str] | None:
        path = self.source / sequence / f"{frame}.png"
        return (path, str(path)) if path.is_file() else None


@FAMILIES.register("video")
class VideoFamily(Family):
    """DAVIS-style VOS: a sequence's frames and first-frame masks -> label maps per frame."""

    name = "video"
    sample_keys = ("id", "frames", "first_mask", "num_objects", "annotations", "sequence_index")

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        """Sequences differ in length and size: every key becomes a list."""
        return {key: [sample[key] for sample in samples] for key in samples[0]}

    def module_predictor(self, module: Any) -> Predictor:
        """``module(frames [T,3,H,W] float in [0,1], first_mask [H,W]) -> labels [T,H,W]``."""
        return lambda batch: [module(frames.float() / 255, first)
                              for frames, first in zip(batch["frames"], batch["first_mask"],
                                                       strict=True)]

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> list[torch.Tensor]:
        """One integer [T,H,W] label map per sequence, ids within 0..num_objects."""
        if isinstance(pred, torch.Tensor):
            pred = list(pred)
        if not isinstance(pred, list | tuple) or len(pred) != len(batch["id"]):
            got = len(pred) if isinstance(pred, list | tuple) else type(pred).__name__
            raise ContractError(f"expected a list of {len(batch['id'])} label maps, got {got}")
        out = []
        for labels, frames, num, sequence in zip(pred, batch["frames"], batch["num_objects"],
                                                 batch["id"], strict=True):
            want = (frames.shape[0], frames.shape[2], frames.shape[3])
            if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != want:
                got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels)
                raise ContractError(f"sequence {sequence!r}: label map shape {got}, "
                                    f"expected [T,H,W] = {list(want)}")
            if labels.is_floating_point() or labels.is_complex():
                raise ContractError(f"sequence {sequence!r}: label maps must be integer or bool, "
                                    f"got {labels.dtype}")
            labels = labels.long()
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > int(num)):
                raise ContractError(
                    f"sequence {sequence!r}: predicted object id {int(labels.max())} (or "
                    f"{int(labels.min())}) is outside 0..{int(num)}: only the objects of the "
                    "first frame may be segmented")
            out.append(labels)
        return out

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """``<sequence>/<frame>.png`` index masks (the DAVIS results layout) in a folder, as
        davis2017-evaluation reads them, or in a ``.zip``, as the DAVIS challenge takes them."""
        if path.is_dir():
            return FolderMasks(path)
        if path.suffix != ".zip":
            raise ContractError(f"{path}: VOS predictions must be a results folder or a .zip "
                                "of <sequence>/<frame>.png masks (the DAVIS results layout)")
        return ZipMasks(path)
