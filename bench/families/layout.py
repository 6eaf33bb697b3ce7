"""Room layout from one image (LSUN room layout challenge, Hedau et al. 2009, ScanNet-Layout).

Sample: ``image`` [3,H,W] in [0,1], ``K`` [3,3], ``labels`` [H,W] uint8, the amodal surface
label map (0 none, 1 frontal wall, 2 left wall, 3 right wall, 4 floor, 5 ceiling: LSUN's
labels), ``type`` (LSUN layout type 0..10) and ``corners`` [N,2] (pixels, OpenCV convention,
in LSUN's order for the type; N = ``CORNER_COUNTS[type]``). Where the data has them:
``layout_depth`` [H,W] (metres, depth of the empty room, 0 = unknown), ``planes`` [P,4]
(camera-frame planes ``n . X + d = 0``, n the unit normal towards the camera) and
``plane_map`` [H,W] int64 (0 none, k = k-th layout plane; ScanNet-Layout's polygons).

Prediction: a dict per batch with any of ``labels`` ([B,H,W] integer, or per-class scores
[B,C,H,W] with C = 6 for labels 0..5, or a list of [H,W]), ``type`` ([B] or list of int)
with ``corners`` (list of [N,2] pixels), ``layout_depth`` ([B,H,W] or list, metres) and
``plane_map`` (list of [H,W] integer plane ids). A layout given only as type and corners is
rasterised into labels (``rasterize_layout``). Bad input (labels outside 0..5, a corner
count that does not fit the type, corners outside the image by more than ``CORNER_MARGIN``
of the diagonal, NaN) is a ContractError naming the image.

Predictions file: a ``.mat`` file (or a folder holding ``results.mat``) in the LSUN
challenge's result format, struct array ``results`` with fields ``image``, ``type`` and
``point`` (1-based MATLAB pixel coordinates, as LSUN's ground truth); and/or a folder with
``labels/<image>.png`` (8-bit label maps, 0..5), ``layout_depth/<image>.npy`` (metres) and
``corners/<image>.json`` (``{"type": t, "corners": [[x, y], ...]}``, 0-based pixels, exact:
what ``arbench run --save-predictions`` writes beside the label maps; it takes precedence
over ``results.mat``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.errors import ContractError
from bench.families.base import Batch, Family, PredictionTable, Predictor, batch_device
from bench.families.saving import PredictionWriter, write_bytes_atomic
from bench.registry import FAMILIES

SURFACES = {1: "frontal wall", 2: "left wall", 3: "right wall", 4: "floor", 5: "ceiling"}
FRONT, LEFT, RIGHT, FLOOR, CEILING = 1, 2, 3, 4, 5
NUM_LABELS = 6
CORNER_COUNTS = (8, 6, 6, 4, 4, 6, 4, 4, 2, 2, 2)
CORNER_MARGIN = 0.5

# Per LSUN type: each surface as a chain of 1-based corner indices, listed clockwise on
# screen (y down); an open chain is closed by walking clockwise along the image border from
# its last corner to its first. Walls are "left", "front", "right" for three-wall types and
# "wall1" (left), "wall2" (right) or "wall" otherwise (see ``wall_labels``).
SURFACE_CHAINS: dict[int, list[tuple[str, list[int], bool]]] = {
    0: [("front", [1, 7, 5, 3], True), ("ceiling", [8, 7, 1, 2], False),
        ("floor", [4, 3, 5, 6], False), ("left", [2, 1, 3, 4], False),
        ("right", [6, 5, 7, 8], False)],
    1: [("front", [5, 4, 1, 2], False), ("floor", [3, 1, 4, 6], False),
        ("left", [2, 1, 3], False), ("right", [6, 4, 5], False)],
    2: [("front", [3, 1, 4, 6], False), ("ceiling", [5, 4, 1, 2], False),
        ("left", [2, 1, 3], False), ("right", [6, 4, 5], False)],
    3: [("ceiling", [4, 1, 2], False), ("wall1", [2, 1, 3], False),
        ("wall2", [3, 1, 4], False)],
    4: [("floor", [2, 1, 4], False), ("wall1", [3, 1, 2], False), ("wall2", [4, 1, 3], False)],
    5: [("ceiling", [3, 1, 2], False), ("floor", [5, 4, 6], False),
        ("wall1", [2, 1, 4, 5], False), ("wall2", [6, 4, 1, 3], False)],
    6: [("ceiling", [2, 1], False), ("floor", [3, 4], False), ("wall", [1, 2, 4, 3], False)],
    7: [("left", [1, 2], False), ("front", [3, 4, 2, 1], False), ("right", [4, 3], False)],
    8: [("ceiling", [2, 1], False), ("wall", [1, 2], False)],
    9: [("floor", [1, 2], False), ("wall", [2, 1], False)],
    10: [("wall1", [1, 2], False), ("wall2", [2, 1], False)],
}
FIXED_LABELS = {"front": FRONT, "left": LEFT, "right": RIGHT, "floor": FLOOR,
                "ceiling": CEILING, "wall": FRONT}


def _border_position(point: np.ndarray, width: int, height: int) -> float:
    """Clockwise arc length from the top-left corner of the nearest border point."""
    x = float(np.clip(point[0], 0, width - 1))
    y = float(np.clip(point[1], 0, height - 1))
    distances = (y, width - 1 - x, height - 1 - y, x)
    side = int(np.argmin(distances))
    w, h = width - 1, height - 1
    return (x, w + y, w + h + (w - x), 2 * w + h + (h - y))[side]


def _close_along_border(chain: np.ndarray, width: int, height: int) -> np.ndarray:
    """The chain's points followed by the image corners met walking clockwise along the
    border from its last point to its first (image corners half a pixel outside)."""
    w, h = width - 1, height - 1
    perimeter = 2 * (w + h)
    start = _border_position(chain[-1], width, height)
    end = _border_position(chain[0], width, height)
    span = (end - start) % perimeter
    corners = [(0.0, (-0.5, -0.5)), (w, (w + 0.5, -0.5)), (w + h, (w + 0.5, h + 0.5)),
               (2 * w + h, (-0.5, h + 0.5))]
    passed = sorted(((pos - start) % perimeter, xy) for pos, xy in corners
                    if 0 < (pos - start) % perimeter < span)
    return np.concatenate([chain, np.array([xy for _, xy in passed]).reshape(-1, 2)])


def wall_labels(polygons: dict[str, np.ndarray], areas: dict[str, float]) -> dict[str, int]:
    """Labels of a two-wall layout: the larger wall is the frontal wall (1), the other the
    left (2) or right (3) wall by side; one wall alone is frontal."""
    labels = {role: FIXED_LABELS[role] for role in polygons if role in FIXED_LABELS}
    if "wall1" in polygons:
        front = "wall1" if areas["wall1"] >= areas["wall2"] else "wall2"
        labels[front] = FRONT
        labels["wall2" if front == "wall1" else "wall1"] = RIGHT if front == "wall1" else LEFT
    return labels


def layout_polygons(layout_type: int, corners: np.ndarray, height: int, width: int
                    ) -> list[tuple[int, np.ndarray]]:
    """(label, closed polygon [M,2] in pixels) of every surface of an LSUN layout."""
    corners = np.asarray(corners, dtype=np.float64)
    polygons = {}
    for role, chain, closed in SURFACE_CHAINS[int(layout_type)]:
        points = corners[[i - 1 for i in chain]]
        polygons[role] = points if closed else _close_along_border(points, width, height)
    areas = {role: float(abs(cv2.contourArea(p.astype(np.float32))))
             for role, p in polygons.items()}
    labels = wall_labels(polygons, areas)
    return [(labels[role], polygon) for role, polygon in polygons.items()]


def level_wall_layout(ceiling: Any, floor: Any) -> tuple[int, np.ndarray] | None:
    """LSUN type and corners of a view that shows one wall, from the image of its ceiling and
    floor edges, each ``(p, q, p_kept, q_kept)`` as ``clip_segment_to_image`` gives it, or
    None when out of view: type 6 with both lines, 8 with the ceiling's, 9 with the floor's
    (corners left to right). None when an edge ends inside the image (its end is a room
    corner, so the view is not a single level wall) or neither line shows."""
    lines = []
    for edge in (ceiling, floor):
        if edge is not None and (edge[2] or edge[3]):
            return None
        lines.append(None if edge is None else sorted(edge[:2], key=lambda point: point[0]))
    top, bottom = lines
    if top is not None and bottom is not None:
        return 6, np.array([*top, *bottom])
    if top is not None:
        return 8, np.array(top)
    if bottom is not None:
        return 9, np.array(bottom)
    return None


def rasterize_layout(layout_type: int, corners: np.ndarray, height: int, width: int
                     ) -> np.ndarray:
    """The surface label map [H,W] uint8 (1..5) of an LSUN layout type and its corners."""
    from skimage.draw import polygon as polygon_pixels

    out = np.zeros((height, width), dtype=np.uint8)
    # Closed (inner) surfaces last so they win the shared edges; a pixel belongs to a
    # surface when its centre lies inside the surface's polygon.
    ordered = sorted(layout_polygons(layout_type, corners, height, width),
                     key=lambda item: item[0] == FRONT and int(layout_type) == 0)
    for label, polygon in ordered:
        rows, cols = polygon_pixels(polygon[:, 1], polygon[:, 0], shape=(height, width))
        out[rows, cols] = label
    return out


def check_layout(name: str, layout_type: Any, corners: Any, height: int, width: int,
                 margin: float = CORNER_MARGIN) -> tuple[int, np.ndarray]:
    """Validate an LSUN type and its corners [N,2]; ContractError naming image ``name``."""
    try:
        kind = int(layout_type)
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{name}: layout type {layout_type!r} is not an integer") from exc
    if not 0 <= kind < len(CORNER_COUNTS):
        raise ContractError(f"{name}: layout type {kind} is not an LSUN type (0..10)")
    if isinstance(corners, torch.Tensor):
        corners = corners.detach().cpu().numpy()
    points = np.asarray(corners, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != CORNER_COUNTS[kind]:
        raise ContractError(f"{name}: layout type {kind} needs {CORNER_COUNTS[kind]} corners "
                            f"[N,2], got shape {tuple(points.shape)}")
    if not np.isfinite(points).all():
        raise ContractError(f"{name}: corners hold NaN or infinite values")
    slack = margin * float(np.hypot(height, width))
    low = np.array([-slack, -slack])
    high = np.array([width - 1 + slack, height - 1 + slack])
    if len(points) and ((points.min(0) < low).any() or (points.max(0) > high).any()):
        outside = ((points < low) | (points > high)).any(1)
        bad = points[int(np.argmax(outside))]
        raise ContractError(f"{name}: corner ({bad[0]:.1f}, {bad[1]:.1f}) lies outside the "
                            f"{width}x{height} image by more than {margin} of its diagonal")
    return kind, points


def check_label_map(name: str, labels: Any, height: int, width: int) -> torch.Tensor:
    """A predicted label map [H,W] (scores [6,H,W] are arg-maxed) as uint8 labels 0..5."""
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(np.asarray(labels))
    if labels.ndim == 3:
        if labels.shape[0] != NUM_LABELS:
            raise ContractError(f"{name}: label scores need {NUM_LABELS} channels (0..5), "
                                f"got {labels.shape[0]}")
        if labels.is_floating_point() and labels.numel() and not all_finite(labels):
            raise ContractError(f"{name}: label scores hold NaN or infinite values")
        labels = best_label(labels, 0)
    if labels.ndim != 2 or tuple(labels.shape) != (height, width):
        raise ContractError(f"{name}: label map has shape {tuple(labels.shape)}, "
                            f"expected ({height}, {width})")
    checked = _uint8_labels(labels)
    if checked is not None:
        return checked
    if labels.is_floating_point() and (
            not all_finite(labels) or bool((labels != labels.round()).any())):
        raise ContractError(f"{name}: label map holds non-integer values")
    bad = int(labels[(labels < 0) | (labels >= NUM_LABELS)][0])
    raise ContractError(f"{name}: label {bad} outside 0..5 in the label map")


def best_label(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """Index (int64) of the highest score along ``dim`` (the first one on ties), e.g. labels
    [B,H,W] of scores [B,6,H,W]. The same as ``argmax``, through ``max``: on the CPU, torch's
    ``argmax`` over a dimension that is not the innermost is about 9x slower."""
    return scores.max(dim).indices


def check_label_maps(ids: list[str], labels: Any, shapes: list[tuple[int, int]]
                     ) -> torch.Tensor | list[torch.Tensor]:
    """The predicted label maps of a batch as uint8 labels 0..5: one [B,H,W] tensor when
    the prediction is one (labels [B,H,W] or scores [B,6,H,W], checked and converted in one
    pass each), else a list of [H,W]. A bad map is a ContractError naming its image."""
    if _one_tensor(labels, len(ids), shapes, NUM_LABELS):
        if labels.ndim == 4 and (not labels.is_floating_point() or not labels.numel()
                                 or all_finite(labels)):
            labels = best_label(labels, 1)
        if labels.ndim == 3:
            checked = _uint8_labels(labels)
            if checked is not None:
                return checked
    per_image = _per_image(labels, len(ids), "labels")
    return [check_label_map(name, label, h, w)
            for name, label, (h, w) in zip(ids, per_image, shapes, strict=True)]


def _one_tensor(value: Any, size: int, shapes: list[tuple[int, int]], channels: int) -> bool:
    """Whether ``value`` is one tensor [B,H,W] or [B,channels,H,W] for a batch of ``size``
    images that all have the shape (H, W) = ``shapes[0]``."""
    return (isinstance(value, torch.Tensor) and value.ndim in (3, 4) and len(value) == size
            and len(set(shapes)) == 1 and tuple(value.shape[-2:]) == shapes[0]
            and (value.ndim == 3 or value.shape[1] == channels))


def _uint8_labels(labels: torch.Tensor) -> torch.Tensor | None:
    """Integer-valued labels 0..5 (any dtype, any shape) as uint8; None when some value is
    not one (NaN, a fraction or out of range)."""
    if labels.dtype == torch.bool or not labels.numel():
        return labels.to(torch.uint8)
    if labels.is_floating_point() and (
            not all_finite(labels) or bool((labels != labels.round()).any())):
        return None
    lowest, highest = torch.aminmax(labels)
    if lowest < 0 or highest >= NUM_LABELS:
        return None
    return labels.to(torch.uint8)


def check_layout_depths(ids: list[str], depths: Any, shapes: list[tuple[int, int]]
                        ) -> torch.Tensor | list[torch.Tensor]:
    """The predicted layout depths of a batch as float32 (metres): one [B,H,W] tensor when
    the prediction is one ([B,H,W] or [B,1,H,W], checked in one pass), else a list of
    [H,W]. A wrong shape, NaN or infinity is a ContractError naming the image."""
    if _one_tensor(depths, len(ids), shapes, 1):
        batch = depths.reshape(len(ids), *shapes[0])
        if not batch.numel() or all_finite(batch):
            return batch.float()
    out = []
    for name, depth, shape in zip(ids, _per_image(depths, len(ids), "layout_depth"), shapes,
                                  strict=True):
        depth = torch.as_tensor(depth)
        if depth.ndim == 3 and depth.shape[0] == 1:
            depth = depth[0]
        if tuple(depth.shape) != shape:
            raise ContractError(f"{name}: layout depth has shape {tuple(depth.shape)}, "
                                f"expected {shape}")
        if depth.numel() and not all_finite(depth):
            raise ContractError(f"{name}: layout depth holds NaN or infinite values")
        out.append(depth.float())
    return out


def all_finite(values: torch.Tensor) -> bool:
    """Whether a non-empty float tensor holds no NaN or infinity (one pass: NaN propagates
    to the extrema, and finite extrema bound every value)."""
    lowest, highest = torch.aminmax(values)
    return bool(torch.isfinite(lowest) & torch.isfinite(highest))


def _per_image(value: Any, size: int, key: str) -> list[Any]:
    if isinstance(value, torch.Tensor) and value.ndim >= 1 and len(value) == size:
        return list(value)
    if isinstance(value, list | tuple) and len(value) == size:
        return list(value)
    raise ContractError(f"prediction {key!r} must hold one entry per image of the batch "
                        f"({size})")


@FAMILIES.register("layout")
class LayoutFamily(Family):
    """Room layout: image, K, surface labels, LSUN type + corners -> labels and/or corners."""

    name = "layout"
    sample_keys = ("id", "image", "K", "labels", "type", "corners")

    def module_predictor(self, module: Any) -> Predictor:
        """``module(images [B,3,H,W]) -> label scores [B,6,H,W]`` (labels 0..5)."""

        def predict(batch: Batch) -> dict[str, Any]:
            images = batch["image"]
            if isinstance(images, torch.Tensor):
                return {"labels": module(images)}
            return {"labels": [module(image[None])[0] for image in images]}

        return predict

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> dict[str, Any]:
        """Normalise to ``{"labels", "type", "corners", "layout_depth", "plane_map"}``, each
        indexed by image: a list (None where the prediction lacks it), or for ``labels``
        (uint8) and ``layout_depth`` (float32) one [B,H,W] tensor when given as one."""
        if not isinstance(pred, dict):
            raise ContractError("a layout prediction is a dict with 'labels' and/or 'type' "
                                "and 'corners' (and optional 'layout_depth'), got "
                                f"{type(pred).__name__}")
        known = {"labels", "type", "corners", "layout_depth", "plane_map"}
        if not known & set(pred):
            raise ContractError(f"a layout prediction needs 'labels' or 'type' + 'corners'; "
                                f"got keys {sorted(pred)}")
        if ("type" in pred) != ("corners" in pred):
            raise ContractError("a layout prediction gives 'type' and 'corners' together")
        ids = [str(i) for i in batch["id"]]
        size = len(ids)
        shapes = [tuple(label.shape[-2:]) for label in batch["labels"]]
        out: dict[str, list[Any]] = {key: [None] * size for key in sorted(known)}
        if "type" in pred:
            types = _per_image(pred["type"], size, "type")
            corners = _per_image(pred["corners"], size, "corners")
            for i, (name, (h, w)) in enumerate(zip(ids, shapes, strict=True)):
                kind, points = check_layout(name, types[i], corners[i], h, w)
                out["type"][i] = kind
                out["corners"][i] = torch.from_numpy(points)
        if "labels" in pred:
            out["labels"] = check_label_maps(ids, pred["labels"], shapes)
        elif "type" in pred:
            device = batch_device(batch)
            for i, (h, w) in enumerate(shapes):
                out["labels"][i] = torch.from_numpy(rasterize_layout(
                    out["type"][i], out["corners"][i].numpy(), h, w)).to(device)
        if "layout_depth" in pred:
            out["layout_depth"] = check_layout_depths(ids, pred["layout_depth"], shapes)
        if "plane_map" in pred:
            maps = _per_image(pred["plane_map"], size, "plane_map")
            for i, (name, shape) in enumerate(zip(ids, shapes, strict=True)):
                plane_map = torch.as_tensor(maps[i])
                if tuple(plane_map.shape) != shape or plane_map.is_floating_point():
                    raise ContractError(f"{name}: plane map must be integer {shape}, got "
                                        f"{plane_map.dtype} {tuple(plane_map.shape)}")
                out["plane_map"][i] = plane_map.long()
        return out

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """Read LSUN-format results (``.mat``) and/or a folder of label PNGs and depth .npy."""
        return LayoutPredictions(path)

    def prediction_writer(self, folder: Path, dataset: Any) -> LayoutFolder:
        """A folder of ``labels/``, ``layout_depth/`` and ``corners/`` files per image."""
        return LayoutFolder(folder, dataset)


class LayoutFolder(PredictionWriter):
    """Per image ``labels/<stem>.png``, ``layout_depth/<stem>.npy`` and
    ``corners/<stem>.json``, each written to a temporary file and renamed into place."""

    target_name = "layout"

    def write(self, batch: Batch, raw: Any, pred: dict[str, Any]) -> None:
        for i, sample_id in enumerate(batch["id"]):
            stem = image_stem(str(sample_id))
            if pred["plane_map"][i] is not None:
                raise ContractError(f"{sample_id}: plane maps cannot be saved (the layout "
                                    "predictions folder holds labels, depth and corners)")
            ok, png = cv2.imencode(".png", pred["labels"][i].cpu().numpy().astype(np.uint8))
            if not ok:
                raise ContractError(f"{sample_id}: cannot encode the label map as PNG")
            write_bytes_atomic(self.target / "labels" / f"{stem}.png", png.tobytes())
            if pred["layout_depth"][i] is not None:
                buffer = io.BytesIO()
                np.save(buffer, pred["layout_depth"][i].cpu().numpy().astype(np.float32))
                write_bytes_atomic(self.target / "layout_depth" / f"{stem}.npy",
                                   buffer.getvalue())
            if pred["type"][i] is not None:
                corners = {"type": int(pred["type"][i]),
                           "corners": pred["corners"][i].cpu().tolist()}
                write_bytes_atomic(self.target / "corners" / f"{stem}.json",
                                   json.dumps(corners).encode("utf-8"))


def image_stem(sample_id: str) -> str:
    """The file stem predictions use for a sample id (``scene/0001.jpg`` -> ``scene/0001``)."""
    return sample_id.rsplit(".", 1)[0] if sample_id.lower().endswith((".jpg", ".png")) \
        else sample_id


def read_results_mat(path: Path) -> dict[str, tuple[int, np.ndarray]]:
    """LSUN challenge results: struct array ``results`` (image, type, point 1-based) ->
    image -> (type, corners [N,2] 0-based pixels)."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (ValueError, OSError, TypeError) as exc:
        raise ContractError(f"{path}: cannot read MATLAB file ({exc})") from exc
    if "results" not in data:
        raise ContractError(f"{path} has no variable 'results' (LSUN result format: struct "
                            "array with fields image, type, point)")
    out = {}
    for index, entry in enumerate(np.atleast_1d(data["results"])):
        for field in ("image", "type", "point"):
            if not hasattr(entry, field):
                raise ContractError(f"{path}: results({index + 1}) has no field {field!r}")
        points = np.atleast_2d(np.asarray(entry.point, dtype=np.float64)) - 1.0
        out[str(entry.image)] = (int(entry.type), points)
    return out


class LayoutPredictions(PredictionTable):
    """Serves predictions from LSUN-format results and/or label PNGs by sample id."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ContractError(f"layout predictions {path} do not exist")
        mat = path if path.suffix == ".mat" else path / "results.mat"
        self.layouts = read_results_mat(mat) if mat.is_file() else {}
        self.folder = path if path.is_dir() else None
        folders = [self.folder / name for name in ("labels", "corners")] if self.folder else []
        if not self.layouts and not any(folder.is_dir() for folder in folders):
            raise ContractError(f"{path}: expected results.mat (LSUN result format) or a "
                                "labels/ folder of label PNGs")
        super().__init__([], path)

    def _labels(self, stem: str) -> np.ndarray | None:
        if self.folder is None:
            return None
        file = self.folder / "labels" / f"{stem}.png"
        if not file.is_file():
            return None
        labels = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if labels is None or labels.ndim != 2:
            raise ContractError(f"{file} is not a single-channel label PNG")
        return labels

    def _corners(self, stem: str) -> tuple[int, np.ndarray] | None:
        file = self.folder / "corners" / f"{stem}.json" if self.folder else None
        if file is None or not file.is_file():
            return None
        try:
            entry = json.loads(file.read_text(encoding="utf-8"))
            return int(entry["type"]), np.asarray(entry["corners"], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as exc:
            raise ContractError(f"{file}: expected {{\"type\": t, \"corners\": [[x, y], "
                                f"...]}} ({exc})") from exc

    def __call__(self, batch: Batch) -> dict[str, Any]:
        out: dict[str, list[Any]] = {}
        for sample_id in batch["id"]:
            stem = image_stem(str(sample_id))
            labels = self._labels(stem)
            layout = (self._corners(stem) or self.layouts.get(stem)
                      or self.layouts.get(Path(stem).name))
            if labels is None and layout is None:
                raise ContractError(f"{self.source} has no prediction for image {sample_id!r}")
            if labels is not None:
                out.setdefault("labels", []).append(torch.from_numpy(
                    labels if labels.dtype == np.uint8 else labels.astype(np.int64)))
            if layout is not None:
                out.setdefault("type", []).append(layout[0])
                out.setdefault("corners", []).append(torch.from_numpy(layout[1]))
            depth_file = self.folder / "layout_depth" / f"{stem}.npy" if self.folder else None
            if depth_file is not None and depth_file.is_file():
                out.setdefault("layout_depth", []).append(
                    torch.from_numpy(np.load(depth_file, allow_pickle=False).astype(np.float32)))
        size = len(batch["id"])
        incomplete = [key for key, values in out.items() if len(values) != size]
        if incomplete:
            raise ContractError(f"{self.source}: {incomplete[0]!r} is given for some images of "
                                "a batch but not all")
        return out
