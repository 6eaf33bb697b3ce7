"""layout-cnn's fit of a box room to a label map: the type and corners it gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.layout_vp import fit_box_to_labels, surface_classes
from bench.adapters.base import ensure_embedded
from bench.adapters.lsun_layout import LsunLayoutDataset
from bench.metrics.layout import corner_error


def test_surface_classes_of_a_box() -> None:
    # Identity frame; box faces at -x 1, +x 2, ceiling 1, floor 1, -z 5, +z 3 (as in
    # test_layout_vp's render case): ahead -> wall, down -> floor, up -> ceiling,
    # steeply left -> wall (x = -1 reached at t = 1 before y at t = 10).
    rays = np.array([[0, 0, 1], [0, 1, 0.1], [0, -1, 0.1], [-1, 0.1, 0.1]], dtype=float)
    classes = surface_classes(rays, np.eye(3)[None], np.array([[1.0, 2, 1, 1, 5, 3]]))
    assert classes.tolist() == [[2, 1, 0, 2]]


def test_surface_classes_of_many_boxes_equal_the_einsum_formula() -> None:
    # The formula the published box fits were made with: rays in each box's frame by
    # einsum, then the nearest face along each axis.
    rng = np.random.default_rng(3)
    rays = rng.normal(size=(1200, 3))
    frames = np.linalg.qr(rng.normal(size=(300, 3, 3)))[0]
    distances = np.exp(rng.uniform(np.log(0.3), np.log(8.0), (300, 6)))
    local = np.einsum("pc,bck->bpk", rays, frames)
    ahead = local > 0
    inverse = 1.0 / np.maximum(np.abs(local), 1e-9)
    hits = [np.where(ahead[..., axis], distances[:, 2 * axis + 1, None],
                     distances[:, 2 * axis, None]) * inverse[..., axis] for axis in range(3)]
    expected = np.where(np.minimum(hits[0], hits[2]) < hits[1], 2, ahead[..., 1])
    np.testing.assert_array_equal(surface_classes(rays, frames, distances), expected)


@pytest.mark.parametrize(("index", "kind"), [(18, 5), (54, 4)])
def test_box_fit_to_ground_truth_labels(index: int, kind: int) -> None:
    # On the true label maps of two validation views (a type-5 and a type-4 view) the fit
    # finds the type, its corners within 3% of the diagonal on average (measured: 0.008
    # and 0.011), although walls are not told apart.
    sample = LsunLayoutDataset(ensure_embedded("synthetic-rooms"), "validation")[index]
    assert int(sample["type"]) == kind
    fitted = fit_box_to_labels(sample["labels"].numpy(), sample["K"].numpy().astype(float))
    assert fitted is not None and fitted[0] == kind
    assert corner_error(fitted[1], sample["corners"].numpy(), 240, 320) < 0.03


def test_layout_cnn_gives_checked_type_and_corners() -> None:
    from baselines.layout import build_cnn
    from bench.families.layout import LayoutFamily
    from bench.spec import load_spec

    rooms = LsunLayoutDataset(ensure_embedded("synthetic-rooms"), "validation")
    sample = rooms[0]
    batch = {"id": [sample["id"]], "image": sample["image"][None], "K": sample["K"][None],
             "labels": sample["labels"][None]}
    with torch.no_grad():
        raw = build_cnn(load_spec("synthetic-rooms"), None, torch.device("cpu"))(batch)
    pred = LayoutFamily().check_prediction(raw, batch, None)
    assert 0 <= pred["type"][0] <= 10 and pred["corners"][0].shape[1] == 2
