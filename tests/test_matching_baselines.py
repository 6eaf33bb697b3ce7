"""RootSIFT by hand, and the rootsift baseline against OpenCV's SIFT on the same image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bench.spec import load_spec


def test_root_sift_by_hand() -> None:
    from baselines.matching import root_sift

    descriptors = np.zeros((3, 128), dtype=np.float32)
    descriptors[0, :2] = [1.0, 3.0]           # L1 norm 4 -> sqrt(1/4), sqrt(3/4)
    descriptors[1, [0, 5, 9, 127]] = 25.0     # L1 norm 100 -> four times sqrt(1/4)
    rooted = root_sift(descriptors)
    assert rooted.dtype == np.float32 and rooted.shape == (3, 128)
    assert rooted[0, :2] == pytest.approx([0.5, np.sqrt(3) / 2])
    assert rooted[1, [0, 5, 9, 127]] == pytest.approx([0.5] * 4)
    assert np.count_nonzero(rooted[:2]) == 6
    assert not rooted[2].any()                 # an all-zero descriptor stays zero, no NaN
    assert np.linalg.norm(rooted[:2], axis=1) == pytest.approx([1.0, 1.0])


def test_rootsift_baseline_is_sift_keypoints_with_hellinger_descriptors() -> None:
    from skimage import data

    from baselines.matching import gray_uint8
    from bench.registry import MODELS

    gray = data.camera()[100:260, 100:300].astype(np.float32) / 255.0
    image = torch.from_numpy(gray)[None].repeat(3, 1, 1)
    spec = load_spec("matching-homography")
    batch = {"id": ["p"], "image0": [image], "image1": [image], "image_ids": [("a", "a")]}
    sift = MODELS.get("sift").build(spec, None, torch.device("cpu"))(batch)[0]
    root = MODELS.get("rootsift").build(spec, None, torch.device("cpu"))(batch)[0]
    assert len(sift["keypoints0"]) > 20
    assert torch.equal(root["keypoints0"], sift["keypoints0"])
    plain = sift["descriptors0"].numpy().astype(np.float64)
    expected = np.sqrt(plain / plain.sum(axis=1, keepdims=True))
    assert root["descriptors0"].numpy() == pytest.approx(expected, abs=1e-6)
    opencv = cv2.SIFT_create(nfeatures=1000)
    keypoints = opencv.detect(gray_uint8(image), None)
    assert len(keypoints) == len(root["keypoints0"])
