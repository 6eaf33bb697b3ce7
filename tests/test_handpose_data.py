"""The hand model, the embedded synthetic-hands set, the freihand adapter on FreiHAND-layout
fixtures, pred.json validation and end-to-end runs of the hand-pose tasks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.adapters.freihand import FREIHAND_FROM, FreiHandDataset, to_freihand_order
from bench.errors import ContractError, DataError
from bench.families.handpose import HandPoseFamily, read_pred_json
from bench.geometry.cameras import project
from bench.geometry.hand import BONES, KEYPOINT_NAMES
from bench.runner import evaluate
from bench.synth import hand_model
from bench.synth.synthetic_hands import build_synthetic_hands

K = [[200.0, 0.0, 31.5], [0.0, 200.0, 31.5], [0.0, 0.0, 1.0]]


def write_freihand(root: Path, split: str, count: int, verts: bool = True,
                   images_per_sample: int = 1, seed: int = 0) -> np.ndarray:
    """A tiny FreiHAND-layout split (64x64 JPEGs); returns its xyz [N,21,3]."""
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0.0, 0.03, (count, 21, 3)) + np.array([0.0, 0.0, 0.5])
    (root / split / "rgb").mkdir(parents=True)
    for index in range(count * images_per_sample):
        image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(root / split / "rgb" / f"{index:08d}.jpg"), image)
    (root / f"{split}_K.json").write_text(json.dumps([K] * count))
    (root / f"{split}_xyz.json").write_text(json.dumps(xyz.tolist()))
    if verts:
        (root / f"{split}_verts.json").write_text(json.dumps(xyz[:, :10].tolist()))
    return xyz


def test_hand_model_bones_follow_lengths_and_limits() -> None:
    pose = hand_model.random_pose(np.random.default_rng(0))
    keypoints = hand_model.forward_kinematics(pose)
    assert keypoints.shape == (21, 3) and np.allclose(keypoints[0], 0.0)
    for finger in range(5):
        chain = keypoints[1 + 4 * finger: 5 + 4 * finger]
        lengths = np.linalg.norm(np.diff(chain, axis=0), axis=1)
        np.testing.assert_allclose(lengths, hand_model.PHALANGES[finger] * pose.scale)
    # A straight hand (no flexion, no abduction) keeps every finger in one line.
    flat = hand_model.HandPose(1.0, np.zeros(5), np.zeros((5, 3)))
    index = hand_model.forward_kinematics(flat)[5:9]
    direction = np.diff(index, axis=0)
    assert np.allclose(np.cross(direction[0], direction[1]), 0.0, atol=1e-12)
    # Flexion outside the limits is clamped: 170 degrees at a PIP acts like its 105 limit.
    bent = hand_model.HandPose(1.0, np.zeros(5), np.full((5, 3), 170.0))
    limit = hand_model.HandPose(1.0, np.zeros(5), hand_model.FLEXION_LIMITS[..., 1])
    np.testing.assert_allclose(hand_model.forward_kinematics(bent),
                               hand_model.forward_kinematics(limit))
    assert len(BONES) == 20 and len(KEYPOINT_NAMES) == 21


def test_embedded_set_is_freihand_layout_with_consistent_geometry(tmp_path: Path) -> None:
    build_synthetic_hands(tmp_path, sizes={"training": 3, "evaluation": 2})
    for name in ("training/rgb/00000000.jpg", "training/mask/00000002.jpg",
                 "evaluation/depth/00000001.png", "training_K.json", "evaluation_xyz.json",
                 "evaluation_vis.json", "evaluation_scale.json"):
        assert (tmp_path / name).is_file(), name
    train = FreiHandDataset(tmp_path, "train")
    test = FreiHandDataset(tmp_path, "test")
    assert len(train) == 3 and len(test) == 2
    assert not np.allclose(train.xyz[:2], test.xyz[:2])  # disjoint seeds
    sample = test[1]
    assert sample["id"] == "evaluation/00000001"
    assert sample["image"].shape == (3, 128, 128) and sample["keypoints"].shape == (21, 3)
    # Visible keypoints project inside the hand mask, and the depth map there is just in
    # front of them (the surface of the capsule around the joint).
    mask = cv2.imread(str(tmp_path / "evaluation/mask/00000001.jpg"), cv2.IMREAD_GRAYSCALE) > 127
    depth = cv2.imread(str(tmp_path / "evaluation/depth/00000001.png"), cv2.IMREAD_UNCHANGED)
    uv = np.rint(project(test.xyz[1], test.K[1])).astype(int)
    visible = sample["visibility"].numpy()
    assert visible.sum() > 0
    for (u, v), z in zip(uv[visible], test.xyz[1][visible, 2], strict=True):
        assert mask[v, u]
        assert 0 < z * 1000 - depth[v, u] < 26
    scale = json.loads((tmp_path / "evaluation_scale.json").read_text())
    assert scale[1] == pytest.approx(np.linalg.norm(test.xyz[1][10] - test.xyz[1][9]), abs=1e-6)
    assert train.info.fingerprint != test.info.fingerprint


def test_adapter_reads_freihand_layout_versions_and_vertices(tmp_path: Path) -> None:
    xyz = write_freihand(tmp_path, "evaluation", 3, images_per_sample=2)
    data = FreiHandDataset(tmp_path, "test", version=1)
    sample = data[2]
    assert data.image_path(2).name == "00000005.jpg"
    np.testing.assert_allclose(sample["keypoints"].numpy(), xyz[2], atol=1e-6)
    assert sample["vertices"].shape == (10, 3) and bool(sample["visibility"].all())
    assert data.info.meta["has_vertices"]


def test_keypoint_orders_map_onto_freihand(tmp_path: Path) -> None:
    freihand = np.arange(21 * 3, dtype=float).reshape(21, 3)
    # RHD lists each finger tip first: RHD keypoint 1 is the thumb tip (FreiHAND's 4).
    rhd = np.empty_like(freihand)
    rhd[FREIHAND_FROM["rhd"]] = freihand
    assert np.array_equal(rhd[1], freihand[4]) and np.array_equal(rhd[8], freihand[5])
    np.testing.assert_array_equal(to_freihand_order(rhd, "rhd"), freihand)
    # MANO (manopth): 1-3 index, 13-15 thumb, 16-20 tips thumb..little.
    mano = np.empty_like(freihand)
    mano[FREIHAND_FROM["mano"]] = freihand
    assert np.array_equal(mano[1], freihand[5]) and np.array_equal(mano[16], freihand[4])
    assert np.array_equal(mano[7], freihand[17]) and np.array_equal(mano[20], freihand[20])
    np.testing.assert_array_equal(to_freihand_order(mano, "mano"), freihand)
    xyz = write_freihand(tmp_path, "evaluation", 2, verts=False)
    stored = np.empty_like(xyz)
    stored[:, FREIHAND_FROM["rhd"]] = xyz
    (tmp_path / "evaluation_xyz.json").write_text(json.dumps(stored.tolist()))
    data = FreiHandDataset(tmp_path, "test", keypoint_order="rhd")
    np.testing.assert_allclose(data[1]["keypoints"].numpy(), xyz[1], atol=1e-6)
    with pytest.raises(DataError, match="keypoint_order"):
        FreiHandDataset(tmp_path, "test", keypoint_order="coco")


def test_missing_and_malformed_data_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        FreiHandDataset(tmp_path / "nowhere", "test")
    write_freihand(tmp_path, "evaluation", 2)
    (tmp_path / "evaluation_K.json").unlink()
    with pytest.raises(DataError, match="evaluation_K.json"):
        FreiHandDataset(tmp_path, "test")
    (tmp_path / "evaluation_K.json").write_text(json.dumps([K]))
    with pytest.raises(DataError, match="1 entries"):
        FreiHandDataset(tmp_path, "test")
    (tmp_path / "evaluation_K.json").write_text(json.dumps([K] * 2))
    (tmp_path / "evaluation_xyz.json").write_text(json.dumps([[[0.0, 0.0, 1.0]] * 20] * 2))
    with pytest.raises(DataError, match=r"evaluation_xyz.json holds an array of shape \[2, 20"):
        FreiHandDataset(tmp_path, "test")
    write_freihand(tmp_path / "short", "evaluation", 2)
    (tmp_path / "short/evaluation/rgb/00000001.jpg").unlink()
    with pytest.raises(DataError, match="holds 1 images"):
        FreiHandDataset(tmp_path / "short", "test")


def test_pred_json_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "pred.json"
    good = np.zeros((2, 21, 3)).tolist()
    path.write_text(json.dumps([good, [[], []]]))
    keypoints, vertices = read_pred_json(path, 2)
    assert keypoints.shape == (2, 21, 3) and vertices is None
    path.write_text(json.dumps([good, [[], []]]))
    with pytest.raises(ContractError, match="xyz_list has 2 entries, the data set has 3"):
        read_pred_json(path, 3)
    path.write_text(json.dumps([[good[0], good[1][:20]], [[], []]]))
    with pytest.raises(ContractError, match=r"xyz_list\[1\] has shape \[20, 3\]"):
        read_pred_json(path, 2)
    path.write_text(json.dumps({"xyz": good}))
    with pytest.raises(ContractError, match=r"\[xyz_list, verts_list\]"):
        read_pred_json(path, 2)


def test_prediction_checks_shapes_nan_and_millimetres() -> None:
    family = HandPoseFamily()
    gt = torch.full((2, 21, 3), 0.5)
    batch = {"id": ["a", "b"], "keypoints": gt}
    with pytest.raises(ContractError, match=r"shape \(2, 20, 3\)"):
        family.check_prediction(torch.zeros(2, 20, 3), batch, None)
    with pytest.warns(UserWarning, match="millimetres"):
        family.check_prediction(gt * 1000.0, batch, None)
    nan = gt.clone()
    nan[0, 0] = float("nan")
    with pytest.warns(UserWarning, match="NaN"):
        out = family.check_prediction({"keypoints": nan}, batch, None)
    assert torch.isnan(out["keypoints"][0, 0]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HandPoseFamily().check_prediction(gt, batch, None)


def test_freihand_task_end_to_end_with_pred_json_and_mean_hand(tmp_path: Path,
                                                              run_dirs: dict) -> None:
    root = tmp_path / "freihand"
    write_freihand(root, "training", 4, seed=1)
    xyz = write_freihand(root, "evaluation", 3, seed=2)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([xyz.tolist(), (xyz[:, :10] + [0, 0, 0.01]).tolist()]))
    result = evaluate("freihand", overrides=[f"dataset.root={root}"], predictions=str(pred),
                      progress=False, **run_dirs)
    assert result.metrics["mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert result.metrics["auc_0_50"] == pytest.approx(1.0)
    assert result.metrics["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-4)
    assert result.metrics["mesh_error_mm"] == pytest.approx(10.0, abs=1e-4)
    assert result.metrics["pa_fscore_5mm"] == pytest.approx(1.0)
    assert {Path(f).name for f in result.figures} >= {"pck3d_procrustes.png",
                                                      "hand_samples.png"}
    floor = evaluate("freihand", "mean-hand", overrides=[f"dataset.root={root}"],
                     progress=False, **run_dirs)
    assert floor.metrics["mpjpe_mm"] > 10.0
    assert (run_dirs["leaderboard_dir"] / "freihand.csv").is_file()


def test_synthetic_task_runs_both_baselines(tmp_path: Path, run_dirs: dict) -> None:
    root = tmp_path / "synthetic-hands"
    build_synthetic_hands(root, sizes={"training": 4, "evaluation": 3})
    for model in ("mean-hand", "hand-cnn"):
        result = evaluate("synthetic-hands", model,
                          overrides=[f"dataset.root={root}", "dataset.embedded=null"],
                          progress=False, **run_dirs)
        assert result.n_samples == 3
        assert 0.0 < result.metrics["pa_mpjpe_mm"] < 100.0
