"""HPatches predictions in the field's native layout: per-image feature files
``<seq>/<k>.ppm.<method>`` (npz: keypoints [N,>=2], descriptors, optional scores) as D2-Net's
and R2D2's HPatches evaluations read them, beside the images or in a mirror of the folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_matching_data import write_sequence

from bench.cli import main
from bench.errors import ModelError
from bench.families.matching import FeatureFolder, MatchingFamily
from bench.registry import MODELS
from bench.runner import build_dataset, evaluate
from bench.spec import load_spec

PAIRS = 3  # i_astronaut/1-2 .. 1-4: images 1, 2, 3 and 4 of one sequence


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def sift_features() -> dict[str, dict[str, np.ndarray]]:
    """The sift baseline's features of the images of the first PAIRS embedded pairs."""
    spec = load_spec("matching-homography")
    dataset = build_dataset(spec)
    predictor = MODELS.get("sift").build(spec, dataset.info, torch.device("cpu"))
    features = {}
    for index in range(PAIRS):
        sample = dataset[index]
        pair = predictor(MatchingFamily().collate([sample]))[0]
        for side in (0, 1):
            features[sample["image_ids"][side]] = {
                key: pair[f"{key}{side}"].numpy() for key in ("keypoints", "descriptors",
                                                              "scores")}
    return features


def write_features(root: Path, method: str, features: dict[str, dict[str, np.ndarray]]
                   ) -> None:
    """D2-Net's layout: ``root/<seq>/<k>.ppm.<method>``, keypoints as (x, y, scale, angle)."""
    for image_id, feats in features.items():
        sequence, k = image_id.split("/")
        (root / sequence).mkdir(parents=True, exist_ok=True)
        keypoints = np.concatenate([feats["keypoints"], np.ones((len(feats["keypoints"]), 2),
                                                                np.float32)], axis=1)
        with open(root / sequence / f"{k}.ppm.{method}", "wb") as handle:
            np.savez(handle, keypoints=keypoints, descriptors=feats["descriptors"],
                     scores=feats["scores"])


@pytest.fixture(scope="module")
def sift() -> dict[str, dict[str, np.ndarray]]:
    return sift_features()


def test_features_beside_a_copy_of_the_images_score_as_the_model(
        sift: dict, run_dirs: dict, tmp_path: Path) -> None:
    copy = tmp_path / "hpatches-copy"
    shutil.copytree(build_dataset(load_spec("matching-homography")).root, copy)
    write_features(copy, "sift", sift)
    before = snapshot(copy)
    result = evaluate("matching-homography", predictions=f"{copy}::sift", limit=PAIRS,
                      progress=False, **run_dirs)
    assert snapshot(copy) == before  # read, never written
    assert result.model == "sift"
    baseline = evaluate("matching-homography", "sift", limit=PAIRS, progress=False, **run_dirs)
    assert baseline.metrics["correct_matches@3px"] > 100
    for key, value in baseline.metrics.items():
        assert result.metrics[key] == pytest.approx(value), key

    # a second method beside the first: the method must be named, and is honoured
    write_features(copy, "shuffled", {image_id: {**feats, "descriptors": feats["descriptors"][
        ::-1].copy()} for image_id, feats in sift.items()})
    with pytest.raises(ModelError, match=r"holds feature files of 2 methods \(shuffled, sift\)"):
        evaluate("matching-homography", predictions=str(copy), limit=1, progress=False,
                 **run_dirs)
    shuffled = evaluate("matching-homography", predictions=f"{copy}::shuffled", limit=PAIRS,
                        progress=False, **run_dirs)
    assert shuffled.metrics["correct_matches@3px"] < baseline.metrics["correct_matches@3px"] / 5


def test_a_mirror_with_one_method_needs_no_name(sift: dict, run_dirs: dict, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    mirror = tmp_path / "features"
    write_features(mirror, "d2-net", sift)
    args = ["run", "matching-homography", "--predictions", str(mirror), "--limit", str(PAIRS),
            "--out", str(run_dirs["out_dir"]), "--leaderboard-dir",
            str(run_dirs["leaderboard_dir"])]
    assert main(args) == 0
    assert "correct_matches@3px" in capsys.readouterr().out
    (mirror / "i_astronaut" / "3.ppm.d2-net").unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "missing feature file i_astronaut/3.ppm.d2-net" in err and "Traceback" not in err


def test_malformed_feature_files_are_named(sift: dict, run_dirs: dict, tmp_path: Path) -> None:
    mirror = tmp_path / "features"
    write_features(mirror, "m", sift)
    target = mirror / "i_astronaut" / "2.ppm.m"

    def run() -> None:
        evaluate("matching-homography", predictions=f"{mirror}::m", limit=1, progress=False,
                 **run_dirs)

    target.write_text("not an npz")
    with pytest.raises(ModelError, match=r"cannot read feature file i_astronaut/2\.ppm\.m as npz"):
        run()
    with open(target, "wb") as handle:
        np.savez(handle, keypoints=np.zeros(5), descriptors=np.zeros((5, 8)))
    with pytest.raises(ModelError, match=r"2\.ppm\.m: keypoints have shape \(5,\), expected"):
        run()
    with open(target, "wb") as handle:
        np.savez(handle, keypoints=np.zeros((5, 2)))
    with pytest.raises(ModelError, match=r"2\.ppm\.m has no 'descriptors' array"):
        run()
    with pytest.raises(ModelError, match=r"has no feature files <seq>/<k>\.ppm\.other"):
        evaluate("matching-homography", predictions=f"{mirror}::other", limit=1,
                 progress=False, **run_dirs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds feature files of no methods"):
        evaluate("matching-homography", predictions=str(tmp_path / "empty"), limit=1,
                 progress=False, **run_dirs)


def test_keypoints_follow_the_adapter_resize(tmp_path: Path, run_dirs: dict) -> None:
    data = tmp_path / "data"
    write_sequence(data, "i_noise", size=(96, 128))
    spec = load_spec("matching-hpatches", [f"dataset.root={data}", "dataset.params.max_side=64"])
    sample = build_dataset(spec)[0]
    assert sample["image_scales"] == [0.5, 0.5]  # 128 px wide on disk, 64 px read
    mirror = tmp_path / "features"
    keypoints = np.array([[10.0, 20.0], [-0.5, -0.5], [127.5, 95.5]], np.float32)
    write_features(mirror, "grid", {f"i_noise/{k}": {
        "keypoints": keypoints, "descriptors": np.eye(3, dtype=np.float32),
        "scores": np.ones(3, np.float32)} for k in (1, 2, 3)})
    pair = FeatureFolder(mirror, "grid")(MatchingFamily().collate([sample]))[0]
    # pixel centres: x' = (x + 0.5) * 0.5 - 0.5; the image edges stay the image edges
    expected = torch.tensor([[4.75, 9.75], [-0.5, -0.5], [63.5, 47.5]])
    assert torch.equal(pair["keypoints0"], expected) and torch.equal(pair["keypoints1"], expected)
    result = evaluate(spec.task, predictions=str(mirror), progress=False,
                      overrides=[f"dataset.root={data}", "dataset.params.max_side=64"],
                      **run_dirs)
    assert result.metrics["putative_matches"] == 3 and result.metrics["mma@1px"] == 1.0
