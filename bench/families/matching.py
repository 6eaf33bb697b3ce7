"""Keypoint matching: a sample is an image pair related by a homography; a prediction is,
per pair, keypoints and descriptors of both images (matched by the spec's matcher) or the
keypoints and the matches themselves.

Sample: ``id`` (``<seq>/1-<k>``), ``image0``/``image1`` float32 [3,H,W] in [0,1] (sizes
differ, so a batch keeps them in lists), ``H`` float64 [3,3] mapping pixels of image0 to
image1, ``kind`` (``i`` illumination / ``v`` viewpoint), ``image_ids`` (``<seq>/<n>``),
``image_scales`` (each image's size over its size on disk, 1.0 unless the adapter resized).

Prediction for a batch: a list with one dict per pair holding ``keypoints0``/``keypoints1``
[N,2] (x, y; OpenCV pixel convention, centre of the top-left pixel at (0, 0)) and either
``descriptors0``/``descriptors1`` [N,D] (float for L2, uint8 packed bits for Hamming) or
``matches`` int64 [M,2] (index into keypoints0, index into keypoints1); optional
``scores0``/``scores1`` [N] rank keypoints when the metric keeps at most max_keypoints.

Predictions file (``.npz``): per image ``<image_id>/keypoints`` [N,2], ``<image_id>/
descriptors`` [N,D] and optionally ``<image_id>/scores`` [N]; or per pair
``<pair id>/matches`` [M,2] with the images' keypoints (see docs/matching.md).

Predictions folder (the D2-Net / R2D2 HPatches convention): per image, an ``.npz`` named
``<seq>/<k>.ppm.<method>`` beside the images (or in a mirror of the sequences folder)
holding ``keypoints`` [N,>=2] (x, y first, in pixels of the image on disk),
``descriptors`` [N,D] and optionally ``scores`` [N]; ``--predictions DIR::METHOD`` picks
the method when the folder holds several.
"""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError, ModelError
from bench.families.base import Batch, Family, Predictor, check_tensor
from bench.families.saving import PredictionWriter, write_bytes_atomic
from bench.formats.npz import NpzFile
from bench.registry import FAMILIES

FEATURE_KEYS = ("keypoints", "descriptors", "scores")
FEATURE_FILE = re.compile(r"^(\d+)\.(ppm|png|jpg)\.(.+)$")


def matching_params(spec: Any) -> dict[str, Any]:
    """The parameters of the spec's ``matching`` metric (max_keypoints, matcher ...)."""
    for metric in spec.metrics:
        if metric.name == "matching":
            return dict(metric.params)
    return {}


def check_pair(pred: Any, image0: torch.Tensor, image1: torch.Tensor, index: int) -> dict:
    """Validate one pair's prediction; return it with float keypoints and optional keys set."""
    if not isinstance(pred, dict):
        raise ContractError(f"pair {index}: the prediction must be a dict of tensors, got "
                            f"{type(pred).__name__}")
    out: dict[str, Any] = {}
    direct = pred.get("matches") is not None
    for side, image in ((0, image0), (1, image1)):
        height, width = image.shape[-2:]
        kp = check_tensor(f"keypoints{side}", pred.get(f"keypoints{side}"), (None, 2)).float()
        outside = ((kp[:, 0] < -0.5) | (kp[:, 0] > width - 0.5) | (kp[:, 1] < -0.5)
                   | (kp[:, 1] > height - 0.5))
        if outside.any():
            first = kp[outside][0].tolist()
            raise ContractError(
                f"pair {index}: {int(outside.sum())} keypoints{side} lie outside the "
                f"{width}x{height} image (first at x={first[0]:.1f}, y={first[1]:.1f}); "
                "valid x in [-0.5, W-0.5], y in [-0.5, H-0.5]")
        out[f"keypoints{side}"] = kp
        scores = pred.get(f"scores{side}")
        if scores is not None:
            scores = check_tensor(f"scores{side}", scores, (len(kp),)).float()
        out[f"scores{side}"] = scores
        if not direct:
            desc = pred.get(f"descriptors{side}")
            if not isinstance(desc, torch.Tensor):
                raise ContractError(f"pair {index}: prediction needs descriptors{side} [N,D] "
                                    "(or matches [M,2])")
            desc = check_tensor(f"descriptors{side}", desc, (None, None),
                                floating=False)
            if len(desc) != len(kp):
                raise ContractError(f"pair {index}: {len(desc)} descriptors{side} for "
                                    f"{len(kp)} keypoints{side}; expected one per keypoint")
            if not (desc.is_floating_point() or desc.dtype == torch.uint8):
                raise ContractError(f"descriptors{side} have dtype {desc.dtype}; expected a "
                                    "float dtype (L2) or uint8 packed bits (Hamming)")
            out[f"descriptors{side}"] = desc
    if direct:
        matches = check_tensor("matches", pred["matches"], (None, 2), floating=False).long()
        if len(matches) and (matches.min() < 0 or matches[:, 0].max() >= len(out["keypoints0"])
                             or matches[:, 1].max() >= len(out["keypoints1"])):
            raise ContractError(f"pair {index}: matches index outside the keypoints "
                                f"({len(out['keypoints0'])} and {len(out['keypoints1'])})")
        out["matches"] = matches
    return out


class FeatureCache:
    """Per-image features by image id (the reference image recurs in 5 pairs of a sequence)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.items: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, compute: Any) -> Any:
        """The cached value for ``key``, computing it with ``compute()`` when missing."""
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = compute()
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


def per_image_predictor(extract: Any) -> Predictor:
    """A pair predictor from ``extract(image [3,H,W]) -> dict(keypoints, descriptors[,
    scores])`` with features cached per image id."""
    cache = FeatureCache()

    def predict(batch: Batch) -> list[dict[str, Any]]:
        out = []
        for index in range(len(batch["id"])):
            pair = {}
            for side in (0, 1):
                image = batch[f"image{side}"][index]
                feats = cache.get(batch["image_ids"][index][side], lambda im=image: extract(im))
                pair.update({f"{k}{side}": v for k, v in feats.items()})
            out.append(pair)
        return out

    return predict


class PredictionFile:
    """Serves a predictions ``.npz`` (per-image features, optional per-pair matches)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = NpzFile(path, f"cannot read predictions file {path}", error=ModelError)

    def _array(self, key: str, required: bool = True) -> torch.Tensor | None:
        if key not in self.data.files:
            if required:
                raise ModelError(f"{self.path} has no array {key!r}")
            return None
        return torch.from_numpy(np.asarray(self.data[key]))

    def __call__(self, batch: Batch) -> list[dict[str, Any]]:
        out = []
        for pair_id, image_ids in zip(batch["id"], batch["image_ids"], strict=True):
            pair: dict[str, Any] = {}
            matches = self._array(f"{pair_id}/matches", required=False)
            for side, image_id in enumerate(image_ids):
                pair[f"keypoints{side}"] = self._array(f"{image_id}/keypoints")
                pair[f"scores{side}"] = self._array(f"{image_id}/scores", required=False)
                if matches is None:
                    pair[f"descriptors{side}"] = self._array(f"{image_id}/descriptors")
            pair["matches"] = matches
            out.append(pair)
        return out


def feature_methods(root: Path) -> list[str]:
    """Method names of the feature files ``<seq>/<k>.<ppm|png|jpg>.<method>`` under ``root``."""
    return sorted({match.group(3) for path in root.glob("*/*.*.*")
                   if (match := FEATURE_FILE.match(path.name)) and path.is_file()})


class FeatureFolder:
    """Serves the per-image feature files of one method, ``<seq>/<k>.ppm.<method>`` (npz with
    ``keypoints`` [N,>=2], ``descriptors`` [N,D], optional ``scores`` [N]), as D2-Net's and
    R2D2's HPatches evaluations read them. Keypoints are pixels of the image on disk and
    follow the image's resize (pixel-centre convention). The folder is only read."""

    def __init__(self, root: Path, method: str) -> None:
        self.root = root
        self.method = method
        self.source_files = sorted(path for path in root.glob(f"*/*.*.{method}")
                            if FEATURE_FILE.match(path.name) and path.is_file())
        if not self.source_files:
            raise ModelError(f"{root} has no feature files <seq>/<k>.ppm.{method}",
                             _methods_hint(root))
        self.cache = FeatureCache()

    def path_for(self, image_id: str) -> Path:
        """The feature file of image ``<seq>/<k>`` (``<k>.ppm.<method>``, or .png / .jpg)."""
        sequence, _, k = image_id.rpartition("/")
        candidates = [self.root / sequence / f"{k}.{ext}.{self.method}"
                      for ext in ("ppm", "png", "jpg")]
        found = [path for path in candidates if path.is_file()]
        if not found:
            raise ModelError(f"{self.root}: missing feature file {sequence}/{k}.ppm.{self.method}")
        return found[0]

    def read(self, image_id: str) -> dict[str, torch.Tensor | None]:
        """Keypoints [N,2] (x, y), descriptors [N,D] and scores [N] (or None) of one image."""
        path = self.path_for(image_id)
        name = path.relative_to(self.root)
        with NpzFile(path, f"{self.root}: cannot read feature file {name} as npz",
                     error=ModelError) as data:
            arrays = {key: data[key] for key in FEATURE_KEYS if key in data}
        for key in ("keypoints", "descriptors"):
            if key not in arrays:
                raise ModelError(f"{self.root}: feature file {name} has no {key!r} array")
        keypoints, descriptors = arrays["keypoints"], arrays["descriptors"]
        if keypoints.ndim != 2 or keypoints.shape[1] < 2:
            raise ModelError(f"{self.root}: feature file {name}: keypoints have shape "
                             f"{keypoints.shape}, expected [N,>=2] (x, y, ...)")
        if descriptors.ndim != 2 or len(descriptors) != len(keypoints):
            raise ModelError(f"{self.root}: feature file {name}: descriptors have shape "
                             f"{descriptors.shape}, expected [{len(keypoints)},D]")
        scores = arrays.get("scores")
        if scores is not None and scores.shape != (len(keypoints),):
            raise ModelError(f"{self.root}: feature file {name}: scores have shape "
                             f"{scores.shape}, expected [{len(keypoints)}]")
        return {"keypoints": torch.from_numpy(keypoints[:, :2].astype(np.float32)),
                "descriptors": torch.from_numpy(descriptors),
                "scores": None if scores is None else torch.from_numpy(scores)}

    def __call__(self, batch: Batch) -> list[dict[str, Any]]:
        out = []
        for index, image_ids in enumerate(batch["image_ids"]):
            pair: dict[str, Any] = {}
            scales = batch.get("image_scales", [(1.0, 1.0)] * len(batch["id"]))[index]
            for side, (image_id, scale) in enumerate(zip(image_ids, scales, strict=True)):
                feats = self.cache.get(image_id, lambda i=image_id: self.read(i))
                keypoints = feats["keypoints"]
                if float(scale) != 1.0:
                    keypoints = (keypoints + 0.5) * float(scale) - 0.5
                pair[f"keypoints{side}"] = keypoints
                pair[f"descriptors{side}"] = feats["descriptors"]
                pair[f"scores{side}"] = feats["scores"]
            out.append(pair)
        return out


def _methods_hint(root: Path) -> str:
    methods = feature_methods(root)
    if methods:
        return f"methods found there: {', '.join(methods)}; pick one with --predictions DIR::METHOD"
    return ("give the HPatches sequences folder (or a mirror of it) holding "
            "<seq>/<k>.ppm.<method> npz files")


def save_predictions(path: Path, features: dict[str, dict[str, np.ndarray]],
                     matches: dict[str, np.ndarray] | None = None) -> None:
    """Write features ``{image_id: {keypoints, descriptors[, scores]}}`` and optional
    ``{pair_id: matches}`` in the family's ``.npz`` layout."""
    arrays = {f"{image_id}/{key}": value for image_id, feats in features.items()
              for key, value in feats.items() if key in FEATURE_KEYS}
    arrays.update({f"{pair_id}/matches": value for pair_id, value in (matches or {}).items()})
    np.savez(path, **arrays)


class FeatureFiles(PredictionWriter):
    """Per image ``<seq>/<k>.ppm.arbench`` feature files (the D2-Net / R2D2 layout, method
    ``arbench``): keypoints in pixels of the image on disk, descriptors and scores; each
    image is written once, to a temporary file renamed into place."""

    target_name = "features"
    method = "arbench"

    def __init__(self, folder: Path, dataset: Any) -> None:
        super().__init__(folder, dataset)
        self.written: set[str] = set()

    def write(self, batch: Batch, raw: Any, pred: list[dict[str, Any]]) -> None:
        scales = batch.get("image_scales", [(1.0, 1.0)] * len(batch["id"]))
        for index, pair in enumerate(pred):
            if pair.get("matches") is not None:
                raise ContractError(f"pair {batch['id'][index]!r}: predictions given as matches "
                                    "cannot be saved (the feature files hold keypoints and "
                                    "descriptors)")
            for side, image_id in enumerate(batch["image_ids"][index]):
                if image_id in self.written:
                    continue
                keypoints = pair[f"keypoints{side}"].detach().cpu()
                scale = float(scales[index][side])
                if scale != 1.0:
                    keypoints = (keypoints + 0.5) / scale - 0.5
                arrays = {"keypoints": keypoints.numpy(),
                          "descriptors": pair[f"descriptors{side}"].detach().cpu().numpy()}
                if pair[f"scores{side}"] is not None:
                    arrays["scores"] = pair[f"scores{side}"].detach().cpu().numpy()
                sequence, _, k = image_id.rpartition("/")
                buffer = io.BytesIO()
                np.savez(buffer, **arrays)
                write_bytes_atomic(self.target / sequence / f"{k}.ppm.{self.method}",
                                   buffer.getvalue())
                self.written.add(image_id)


@FAMILIES.register("matching")
class MatchingFamily(Family):
    """Keypoint detection, description and matching on image pairs with a homography."""

    name = "matching"
    sample_keys = ("id", "image0", "image1", "H", "kind", "image_ids")

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        """Images of different sizes stay in lists; homographies stack to [B,3,3]."""
        batch: Batch = {key: [s[key] for s in samples] for key in samples[0]}
        batch["H"] = torch.stack(batch["H"])
        return batch

    def module_predictor(self, module: Any) -> Predictor:
        """A network called per image as ``module(image [1,3,H,W]) -> (keypoints [N,2],
        descriptors [N,D][, scores [N]])``."""

        def extract(image: torch.Tensor) -> dict[str, torch.Tensor]:
            out = module(image[None])
            if not isinstance(out, tuple | list) or len(out) not in (2, 3):
                raise ContractError("a matching network must return (keypoints, descriptors"
                                    "[, scores])")
            return dict(zip(FEATURE_KEYS, out, strict=False))

        return per_image_predictor(extract)

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> list[dict[str, Any]]:
        """One dict per pair; see the module docstring for the keys, shapes and dtypes."""
        if isinstance(pred, dict) and len(batch["id"]) == 1:
            pred = [pred]
        if not isinstance(pred, list | tuple) or len(pred) != len(batch["id"]):
            raise ContractError(f"matching predictions must be a list of {len(batch['id'])} "
                                f"dicts (one per pair), got {type(pred).__name__}")
        return [check_pair(p, batch["image0"][i], batch["image1"][i], i)
                for i, p in enumerate(pred)]

    def load_predictions(self, path: Path, dataset: Any, option: str | None = None
                         ) -> Predictor:
        """Read the ``.npz`` layout (per-image features, optional per-pair matches), or a
        folder of per-image feature files ``<seq>/<k>.ppm.<method>``; ``option`` names the
        method (needed only when the folder holds several)."""
        if path.is_dir():
            if option is None:
                methods = feature_methods(path)
                if len(methods) != 1:
                    raise ModelError(
                        f"{path} holds feature files of {len(methods) or 'no'} methods"
                        + (f" ({', '.join(methods)})" if methods else ""), _methods_hint(path))
                option = methods[0]
            return FeatureFolder(path, option)
        if option is not None:
            raise ModelError(f"{path}::{option}: a method name goes with a folder of "
                             "<seq>/<k>.ppm.<method> feature files, not with a file")
        if path.suffix != ".npz":
            raise ContractError(f"{path}: matching predictions must be an .npz file or a "
                                "folder of <seq>/<k>.ppm.<method> feature files")
        return PredictionFile(path)

    def prediction_writer(self, folder: Path, dataset: Any) -> FeatureFiles:
        """Per-image feature files ``<seq>/<k>.ppm.arbench`` (the D2-Net / R2D2 layout)."""
        return FeatureFiles(folder, dataset)
