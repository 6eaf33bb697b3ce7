"""lift-style: patch geometry, training-data correspondences, the loss by hand, the
committed weights, the descriptor's output, the orientation estimator's equivariance, the
matchability labels by hand and the budget the matchability score fills. No training here."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from baselines.lift_patches import (
    MATCH_RADIUS,
    TRAIN_PHOTOS,
    VALIDATION_PHOTOS,
    correspondences,
    cut_patches,
    dog_detector,
    dog_keypoints,
    image_pyramid,
    local_similarity,
    random_view,
    standardise,
)
from baselines.lift_style import (
    CORRECT_PX,
    MATCHABILITY_THRESHOLD,
    LiftStyle,
    angle_error,
    candidate_detector,
    correct_match_labels,
    describe_candidates,
    hardest_triplet_loss,
    lift_style_extractor,
    load_lift_style,
    retrain_matchability,
    rotated_crops,
    weights_path,
)
from bench.errors import ModelError
from bench.spec import load_spec
from bench.synth.homography_pairs import EVAL_IMAGES, photograph


def _textured(size: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random texture, uint8 [size,size]."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 1.5)
    return cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def test_photo_sets_are_disjoint_from_each_other_and_the_evaluation_set() -> None:
    evaluation = {*EVAL_IMAGES, "cat"}   # skimage's cat is chelsea
    assert not set(TRAIN_PHOTOS) & evaluation
    assert not set(VALIDATION_PHOTOS) & evaluation
    assert not set(TRAIN_PHOTOS) & set(VALIDATION_PHOTOS)


def test_patch_of_a_rotated_image_equals_the_rotated_patch() -> None:
    # B = rot90(A) maps pixel (x, y) of A to (y, W-1-x): its Jacobian [[0,1],[-1,0]] is a
    # rotation by -90 deg, so B's patch at angle -90 deg shows A's patch at angle 0.
    gray_a = _textured()
    gray_b = np.ascontiguousarray(np.rot90(gray_a))
    point_a = np.array([[40.0, 52.0]])
    point_b = np.array([[point_a[0, 1], 95 - point_a[0, 0]]])
    _, scale, rotation = local_similarity(np.array([[0, 1, 0], [-1, 0, 95], [0, 0, 1.0]]),
                                          point_a)
    assert scale[0] == pytest.approx(1.0) and math.degrees(rotation[0]) == pytest.approx(-90)
    sides = torch.tensor([24.0])

    def patch(gray: np.ndarray, point: np.ndarray, angle: float) -> torch.Tensor:
        pyramid = image_pyramid(torch.from_numpy(gray).float())
        return cut_patches(pyramid, torch.from_numpy(point).float(), sides,
                           torch.tensor([angle]))

    assert torch.allclose(patch(gray_b, point_b, -math.pi / 2), patch(gray_a, point_a, 0.0),
                          atol=1e-3)
    assert not torch.allclose(patch(gray_b, point_b, 0.0), patch(gray_a, point_a, 0.0),
                              atol=1.0)


def test_rotated_crops_are_the_context_centre_turned() -> None:
    context = torch.from_numpy(_textured(48))[None]
    centre = context[:, 8:40, 8:40].float()
    upright = rotated_crops(context, torch.tensor([0.0]))
    assert torch.allclose(upright[:, 0], standardise(centre[:, None])[:, 0], atol=1e-4)
    # x axis along +90 deg (y down): crop[i, j] = centre[j, 31 - i] = np.rot90(centre).
    turned = rotated_crops(context, torch.tensor([math.pi / 2]))
    expected = torch.from_numpy(np.rot90(centre[0].numpy()).copy())[None, None]
    assert torch.allclose(turned, standardise(expected), atol=1e-3)
    assert turned.flatten().mean().abs() < 1e-4 and turned.flatten().std() == pytest.approx(
        1.0, abs=1e-3)


def test_training_correspondences_follow_the_homography() -> None:
    rng = np.random.default_rng(3)
    gray_a, gray_b, homography = random_view(rng, photograph("camera", max_side=320))
    detector = dog_detector(500, 0.02)
    pa, pb, side_a, side_b, rotation = correspondences(gray_a, gray_b, homography, detector, 500)
    assert len(pa) > 50
    projected, scale, truth = local_similarity(homography, pa.astype(np.float64))
    assert np.linalg.norm(projected - pb, axis=1).max() <= MATCH_RADIUS
    assert np.all(side_b / (side_a * scale) < 1.36) and np.all(side_b / (side_a * scale) > 0.73)
    assert rotation == pytest.approx(truth)


def test_dog_keypoints_drop_repeated_orientations_and_keep_the_strongest() -> None:
    gray = photograph("camera", max_side=320)[:, :, 0]
    detector = dog_detector(200, 0.02)
    points, sizes, responses = dog_keypoints(gray, detector, 200)
    assert len(points) == 200
    assert len(np.unique(np.round(np.c_[points, sizes], 3), axis=0)) == 200
    everything = dog_keypoints(gray, dog_detector(10_000, 0.02), 10_000)[2]
    assert responses.min() >= np.sort(everything)[-200] - 1e-6


def test_hardest_triplet_loss_by_hand() -> None:
    eye = torch.eye(2)
    # Positives at distance 0, nearest negative at sqrt(2): hinge 1 + 0 - sqrt(2) < 0.
    assert hardest_triplet_loss(eye, eye).item() == pytest.approx(0.0)
    # Swapped: positives at sqrt(2), hardest negatives at 0 -> 1 + sqrt(2).
    assert hardest_triplet_loss(eye, eye.flip(0)).item() == pytest.approx(1 + math.sqrt(2))
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    b = torch.tensor([[0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    # Pair 0: positive |a0 - b0| = 0.632; hardest negative over row 0 (a0 to b1, b2: 1.414,
    # 2) and column 0 (b0 to a1, a2: 0.894, 1.897) is 0.894 -> 1 + 0.632 - 0.894 = 0.738.
    expected0 = 1 + math.dist((1, 0), (0.8, 0.6)) - math.dist((0.8, 0.6), (0, 1))
    # Pair 1: positive 0, hardest negative |a1 - b0| = 0.894 -> 0.106.
    # Pair 2: positive 0, hardest negative 1.414 -> 0.
    expected1 = 1 - math.dist((0.8, 0.6), (0, 1))
    loss = hardest_triplet_loss(a, b).item()
    assert loss == pytest.approx((expected0 + expected1 + 0.0) / 3, abs=1e-6)


def test_angle_error_wraps() -> None:
    errors = angle_error(torch.tensor([math.radians(170.0), 0.1]),
                         torch.tensor([math.radians(-170.0), 0.1]))
    assert torch.rad2deg(errors).tolist() == pytest.approx([20.0, 0.0], abs=1e-4)


def test_committed_weights_load() -> None:
    path = weights_path()
    assert path.stat().st_size < 2_000_000
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert set(checkpoint["train_photos"]) == set(TRAIN_PHOTOS)
    assert set(checkpoint["validation_photos"]) == set(VALIDATION_PHOTOS)
    assert checkpoint["history"][-1]["step"] == checkpoint["steps"]
    model = load_lift_style(path, torch.device("cpu"))
    assert isinstance(model, LiftStyle) and not model.training
    fresh = LiftStyle().state_dict()
    assert set(checkpoint["state_dict"]) == set(fresh)
    assert any(key.startswith("matchability.") for key in fresh)
    report = checkpoint["matchability"]
    assert report["train_keypoints"] > 100_000 and report["validation_keypoints"] > 10_000
    # Better than chance on the held-out photographs.
    assert report["validation"]["auc"] > 0.6


def test_retraining_the_score_needs_a_lift_style_weights_file(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}}, path)
    with pytest.raises(ModelError, match="not a lift-style weights file"):
        retrain_matchability(path, load_spec("matching-homography"), torch.device("cpu"))


def test_illumination_only_view_keeps_the_geometry() -> None:
    photo = photograph("camera", max_side=200)
    gray_a, gray_b, homography = random_view(np.random.default_rng(5), photo, warp=False)
    assert np.array_equal(homography, np.eye(3))
    assert gray_a.shape == gray_b.shape == photo.shape[:2]
    assert not np.array_equal(gray_a, gray_b)


def test_correct_match_labels_by_hand() -> None:
    # B is A shifted right by 10 px: H maps (x, y) to (x + 10, y); images 100 x 100.
    homography = np.array([[1.0, 0, 10], [0, 1, 0], [0, 0, 1]])
    points_a = np.array([[20.0, 20], [50, 50], [70, 30], [95, 10]])
    # b0 is a0's true match, b1 lies 4 px off a1's projection (60, 50), b2 is 2 px off
    # a2's (80, 30), b3 lies left of x = 10 (its inverse projection leaves A).
    points_b = np.array([[30.0, 20], [60, 54], [80, 32], [5, 5]])
    eye = torch.eye(4)
    # Descriptors: b_i = e_i, a_i = e_i except a3, still nearest to b3 (0.63 against 0.89
    # to b2, 1.41 to b0, b1): four mutual matches, a3-b3 about 100 px from the truth.
    desc_a = eye.clone()
    desc_a[3] = torch.tensor([0.0, 0.0, 0.6, 0.8])
    correct_a, correct_b, shared_a, shared_b = correct_match_labels(
        points_a, desc_a, points_b, eye, homography, (100, 100), (100, 100))
    assert CORRECT_PX == 3.0
    assert correct_a.tolist() == [True, False, True, False]      # a1's match: 4 px off
    assert correct_b.tolist() == [True, False, True, False]
    assert shared_a.tolist() == [True, True, True, False]         # a3 maps to x = 105
    assert shared_b.tolist() == [True, True, True, False]         # b3 maps to x = -5


def test_lift_style_keeps_the_most_matchable_candidates_within_the_budget() -> None:
    model = load_lift_style(weights_path(), torch.device("cpu"))
    photo = photograph("coins", max_side=320)
    budget = 150
    extract = lift_style_extractor(model, budget)
    image = torch.from_numpy(photo).permute(2, 0, 1).float() / 255.0
    found = extract(image)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    candidates = describe_candidates(model, gray, candidate_detector(budget), budget * 4,
                                     torch.device("cpu"))
    score = candidates["matchability"]
    eligible = score[score >= MATCHABILITY_THRESHOLD]
    assert len(candidates["keypoints"]) > budget
    assert len(found["keypoints"]) == min(budget, len(eligible)) > 0
    assert found["scores"].min() >= MATCHABILITY_THRESHOLD
    # Exactly the highest-scoring eligible candidates, in the detector's order.
    assert found["scores"].sort().values == pytest.approx(
        eligible.sort(descending=True).values[:len(found["scores"])].sort().values)
    assert found["descriptors"].shape == (len(found["keypoints"]), 128)


def test_learned_descriptors_are_128d_unit_vectors() -> None:
    model = load_lift_style(weights_path(), torch.device("cpu"))
    pyramid = image_pyramid(torch.from_numpy(_textured(128)).float())
    points = torch.tensor([[30.0, 40.0], [64.0, 64.0], [100.0, 90.0]])
    sides = torch.tensor([12.0, 40.0, 90.0])   # pyramid levels 0, 0 and 1
    with torch.no_grad():
        angles = model.orient(pyramid, points, sides)
        descriptors = model.describe(pyramid, points, sides, angles)
    assert angles.shape == (3,) and descriptors.shape == (3, 128)
    assert descriptors.dtype == torch.float32
    assert torch.linalg.norm(descriptors, dim=1) == pytest.approx(torch.ones(3), abs=1e-5)
    assert not torch.allclose(descriptors[0], descriptors[1], atol=0.1)


def _oriented_pattern(size: int = 97) -> np.ndarray:
    """A blurred float image with one clear orientation at its centre pixel (48, 48): a
    bright blob right of and below the centre and a bar above it."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2
    blob = 150 * np.exp(-((xx - centre - 10) ** 2 + (yy - centre - 4) ** 2) / 50)
    bar = 80 * ((np.abs(yy - centre + 8) < 2) & (np.abs(xx - centre) < 14))
    return cv2.GaussianBlur((60 + blob + bar).astype(np.float32), (0, 0), 1.0)


def test_orientation_estimator_is_rotation_equivariant() -> None:
    model = load_lift_style(weights_path(), torch.device("cpu"))
    pattern = _oriented_pattern()
    centre = torch.tensor([[48.0, 48.0]])

    def orientation(image: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return model.orient(image_pyramid(torch.from_numpy(image)), centre,
                                torch.tensor([32.0]))

    upright = orientation(pattern)
    # np.rot90 k times turns the image by -90 k deg in image coordinates (y down), exactly
    # (no resampling), about the centre pixel.
    for k in (1, 2, 3):
        turned = orientation(np.ascontiguousarray(np.rot90(pattern, k)))
        assert torch.rad2deg(angle_error(turned, upright - k * math.pi / 2)).item() < 8.0, k
    for degrees in (20.0, 45.0, -35.0):
        # OpenCV's angle turns counter-clockwise on screen: -degrees in image coordinates.
        matrix = cv2.getRotationMatrix2D((48.0, 48.0), -degrees, 1.0)
        turned_image = cv2.warpAffine(pattern, matrix, (97, 97), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
        turned = orientation(turned_image)
        error = angle_error(turned, upright + math.radians(degrees))
        assert torch.rad2deg(error).item() < 10.0, degrees
