"""6D object pose from one image.

Sample: ``image`` [3,H,W] in [0,1], ``K`` [3,3], ``obj_id``, ``scene_id``, ``im_id``, the
ground truth ``R`` [3,3] and ``t`` [3] (metres, model -> camera), ``model_points`` [N,3]
(metres, model frame), ``diameter`` (m), ``symmetric`` (bool), ``symmetries`` [S,4,4],
``bbox`` [4] (x, y, w, h of the visible part, pixels; -1 when unknown) and, where the
data has it, ``depth`` [H,W] (metres, 0 = no measurement).

Prediction: a dict with ``R`` [B,3,3], ``t`` [B,3] (metres), optional ``score`` [B] and
``valid`` [B] (bool; False = no estimate). A non-finite pose counts as a missing estimate
(a failure in every metric). A rotation that is not orthonormal is refused, or projected
to SO(3) when the data set's ``project_rotations`` parameter is true.

Predictions file: the BOP results CSV, ``scene_id,im_id,obj_id,score,R,t,time`` with R
row-major (9 numbers separated by spaces) and t in millimetres; duplicates for one target
keep the highest score (as BOP does); targets without a row count as failures.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError
from bench.families.base import Batch, Family, Predictor, check_tensor, default_collate
from bench.families.saving import AppendedLines
from bench.registry import FAMILIES

BOP_HEADER = ["scene_id", "im_id", "obj_id", "score", "R", "t", "time"]
ORTHONORMAL_TOLERANCE = 1e-3


def project_to_so3(R: torch.Tensor) -> torch.Tensor:
    """The closest rotation [B,3,3] (Frobenius norm) to each matrix of R [B,3,3] (SVD)."""
    U, _, Vh = torch.linalg.svd(R)
    det = torch.det(U @ Vh)
    fix = torch.ones_like(R[:, 0])
    fix[:, 2] = det
    return U @ torch.diag_embed(fix) @ Vh


def orthonormality_error(R: torch.Tensor) -> torch.Tensor:
    """[B] max |R R^T - I| entry, +inf where det(R) <= 0."""
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    error = (R @ R.transpose(1, 2) - eye).abs().flatten(1).amax(dim=1)
    return torch.where(torch.det(R) > 0, error, torch.full_like(error, math.inf))


class BopResults:
    """Pose estimates from a BOP results CSV, served per target of a batch."""

    def __init__(self, path: Path, known_objects: list[int] | None = None) -> None:
        self.path = path
        self.poses: dict[tuple[int, int, int], tuple[float, np.ndarray, np.ndarray]] = {}
        self.duplicates = 0
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            if header != BOP_HEADER:
                raise ContractError(f"{path}:1: BOP results header must be "
                                    f"{','.join(BOP_HEADER)}, got {','.join(header) or 'nothing'}")
            for line_no, row in enumerate(reader, start=2):
                if not row or all(not field.strip() for field in row):
                    continue
                self._add(self._parse(row, line_no, known_objects))

    def _parse(self, row: list[str], line: int,
               known: list[int] | None) -> tuple[tuple[int, int, int], float, np.ndarray,
                                                 np.ndarray]:
        where = f"{self.path}:{line}"
        if len(row) != len(BOP_HEADER):
            raise ContractError(f"{where}: {len(row)} fields, expected {len(BOP_HEADER)} "
                                f"({','.join(BOP_HEADER)})")
        try:
            scene_id, im_id, obj_id = (int(v) for v in row[:3])
        except ValueError as exc:
            raise ContractError(f"{where}: scene_id, im_id and obj_id must be integers") from exc
        if known is not None and obj_id not in known:
            raise ContractError(f"{where}: object {obj_id} has no model in this data set "
                                f"(objects: {', '.join(map(str, known))})")
        try:
            score = float(row[3])
            R = np.array([float(v) for v in row[4].split()], dtype=np.float64)
            t = np.array([float(v) for v in row[5].split()], dtype=np.float64)
        except ValueError as exc:
            raise ContractError(f"{where}: score, R and t must be numbers ({exc})") from exc
        if R.size != 9:
            raise ContractError(f"{where}: R has {R.size} numbers, expected 9 (row-major 3x3)")
        if t.size != 3:
            raise ContractError(f"{where}: t has {t.size} numbers, expected 3 (millimetres)")
        R = R.reshape(3, 3)
        if np.isfinite(R).all() and np.isfinite(t).all():
            error = float(orthonormality_error(torch.from_numpy(R)[None])[0])
            if error > ORTHONORMAL_TOLERANCE:
                raise ContractError(f"{where}: R is not a rotation (max |R R^T - I| = "
                                    f"{error:.3g}, or det(R) <= 0)")
        return (scene_id, im_id, obj_id), score, R, t * 0.001

    def _add(self, parsed: tuple) -> None:
        key, score, R, t = parsed
        if key in self.poses:
            self.duplicates += 1
            if score <= self.poses[key][0]:
                return
        self.poses[key] = (score, R, t)

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        size = len(batch["id"])
        R = torch.full((size, 3, 3), math.nan, dtype=torch.float64)
        t = torch.full((size, 3), math.nan, dtype=torch.float64)
        score = torch.full((size,), -math.inf, dtype=torch.float64)
        valid = torch.zeros(size, dtype=torch.bool)
        keys = zip(_ints(batch["scene_id"]), _ints(batch["im_id"]), _ints(batch["obj_id"]),
                   strict=True)
        for row, key in enumerate(keys):
            if key in self.poses:
                s, rotation, translation = self.poses[key]
                R[row], t[row] = torch.from_numpy(rotation), torch.from_numpy(translation)
                score[row] = s
                valid[row] = True
        device = batch["K"].device
        return {"R": R.to(device), "t": t.to(device), "score": score.to(device),
                "valid": valid.to(device)}


def _ints(values: Any) -> list[int]:
    return [int(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]


def write_bop_results(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write pose estimates (R [3,3], t [3] metres, ids, score, time) as a BOP results CSV."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(BOP_HEADER)
        for row in rows:
            R = np.asarray(row["R"], dtype=np.float64).reshape(-1)
            t = np.asarray(row["t"], dtype=np.float64).reshape(-1) * 1000.0
            writer.writerow([int(row["scene_id"]), int(row["im_id"]), int(row["obj_id"]),
                             f"{float(row.get('score', 1.0)):.6f}",
                             " ".join(f"{v:.9f}" for v in R), " ".join(f"{v:.6f}" for v in t),
                             f"{float(row.get('time', -1.0)):.6f}"])


def millimetres_text(t: float) -> str:
    """``t`` (metres) as millimetres text that the reader's ``float(text) * 0.001`` turns
    back into exactly ``t`` (the nearest float to 1000 t, or a neighbour when rounding
    twice would miss)."""
    guess = t * 1000.0
    for candidate in (guess, *(math.nextafter(guess, d) for d in (math.inf, -math.inf))):
        if candidate * 0.001 == t:
            return repr(candidate)
    return repr(guess)


class BopCsv(AppendedLines):
    """A BOP results CSV grown batch by batch: one row per valid estimate, numbers written
    so that the reader gets the same float64 values back; missing estimates get no row."""

    target_name = "results.csv"

    def header(self, pred: Any) -> str:
        return ",".join(BOP_HEADER)

    def lines(self, batch: Batch, raw: Any, pred: dict[str, torch.Tensor]) -> list[str]:
        R, t = pred["R"].cpu().tolist(), pred["t"].cpu().tolist()
        score, valid = pred["score"].cpu().tolist(), pred["valid"].cpu().tolist()
        keys = zip(_ints(batch["scene_id"]), _ints(batch["im_id"]), _ints(batch["obj_id"]),
                   strict=True)
        return [",".join([str(scene), str(image), str(obj), repr(score[row]),
                          " ".join(repr(v) for line in R[row] for v in line),
                          " ".join(millimetres_text(v) for v in t[row]), "-1"])
                for row, (scene, image, obj) in enumerate(keys) if valid[row]]


@FAMILIES.register("pose")
class PoseFamily(Family):
    """6D object pose: image, K, object, model points -> R [3,3], t [3] (metres)."""

    name = "pose"
    sample_keys = ("id", "image", "K", "obj_id", "scene_id", "im_id", "R", "t",
                   "model_points", "diameter", "symmetric", "symmetries", "bbox")

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        """Stack images, K, poses; model points and symmetries stay lists (sizes differ)."""
        batch = default_collate(samples)
        for key in ("model_points", "symmetries"):
            batch[key] = [sample[key] for sample in samples]
        return batch

    def module_predictor(self, module: Any) -> Predictor:
        """A network called as ``module(images [B,3,H,W], K [B,3,3], obj_ids [B])`` returning
        (R [B,3,3], t [B,3]) or a dict with R and t."""

        def predict(batch: Batch) -> Any:
            obj_ids = torch.as_tensor(_ints(batch["obj_id"]), device=batch["image"].device)
            out = module(batch["image"], batch["K"].float(), obj_ids)
            if isinstance(out, tuple | list) and len(out) == 2:
                return {"R": out[0], "t": out[1]}
            return out

        return predict

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> dict[str, torch.Tensor]:
        """R [B,3,3] and t [B,3] float; NaN rows become missing; rotations must be rotations."""
        if not isinstance(pred, dict) or "R" not in pred or "t" not in pred:
            raise ContractError(f"a pose prediction must be a dict with 'R' [B,3,3] and 't' "
                                f"[B,3], got {type(pred).__name__}")
        size = len(batch["id"])
        R = check_tensor("R", pred["R"], (size, 3, 3), finite=False).double()
        t = check_tensor("t", pred["t"], (size, 3), finite=False).double()
        valid = pred.get("valid")
        valid = torch.ones(size, dtype=torch.bool, device=R.device) if valid is None else (
            check_tensor("valid", valid, (size,), floating=False, finite=False).bool()
            .to(R.device))
        finite = torch.isfinite(R).flatten(1).all(1) & torch.isfinite(t).all(1)
        valid = valid & finite
        score = pred.get("score")
        score = torch.ones(size, dtype=torch.float64, device=R.device) if score is None else (
            check_tensor("score", score, (size,), finite=False).double())
        safe = torch.where(valid[:, None, None], R, torch.eye(3, dtype=R.dtype, device=R.device))
        if info.meta.get("project_rotations"):
            safe = project_to_so3(safe)
        else:
            error = orthonormality_error(safe)
            bad = (error > ORTHONORMAL_TOLERANCE) & valid
            if bad.any():
                row = int(bad.nonzero()[0, 0])
                raise ContractError(
                    f"prediction 'R' for sample {batch['id'][row]!r} is not a rotation "
                    f"(max |R R^T - I| = {float(error[row]):.3g}, or det(R) <= 0)",
                    "return orthonormal matrices, or set dataset.params.project_rotations=true "
                    "to project them to SO(3)")
        R = torch.where(valid[:, None, None], safe, R)
        return {"R": R, "t": t, "valid": valid, "score": score}

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """A BOP results CSV (see the module docstring)."""
        if path.suffix.lower() != ".csv":
            raise ContractError(f"{path}: pose predictions must be a BOP results .csv "
                                f"({','.join(BOP_HEADER)})")
        known = dataset.info.meta.get("objects")
        return BopResults(path, known)

    def prediction_writer(self, folder: Path, dataset: Any) -> BopCsv:
        """A BOP results CSV (``results.csv``), grown batch by batch."""
        return BopCsv(folder, dataset)
