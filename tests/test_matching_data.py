"""HPatches adapter on tiny fixtures in the real layout, the matching family's contract,
predictions files and end-to-end runs on the embedded homography-pairs set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.adapters.hpatches import HPatchesDataset
from bench.errors import ContractError, DataError
from bench.families.matching import MatchingFamily, save_predictions
from bench.runner import build_dataset, evaluate
from bench.spec import load_spec


def write_sequence(root: Path, name: str, size: tuple[int, int] = (40, 60), n: int = 3,
                   homography: np.ndarray | None = None) -> Path:
    """A tiny HPatches sequence: n copies of one smooth random .ppm image (height, width =
    size) and H_1_k files."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    image = rng.integers(0, 255, size=(size[0] // 4, size[1] // 4, 3), dtype=np.uint8)
    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    for k in range(1, n + 1):
        cv2.imwrite(str(folder / f"{k}.ppm"), image)
    for k in range(2, n + 1):
        np.savetxt(folder / f"H_1_{k}", np.eye(3) if homography is None else homography)
    return folder


def test_adapter_reads_hpatches_layout(tmp_path: Path) -> None:
    write_sequence(tmp_path, "i_a")
    write_sequence(tmp_path, "v_b", homography=np.array([[1, 0, 4], [0, 1, 2], [0, 0, 1.0]]))
    (tmp_path / "notes").mkdir()
    dataset = HPatchesDataset(tmp_path)
    assert len(dataset) == 4
    assert dataset.info.meta["pairs_i"] == 2 and dataset.info.meta["pairs_v"] == 2
    sample = dataset[3]
    assert sample["id"] == "v_b/1-3" and sample["kind"] == "v"
    assert sample["image_ids"] == ["v_b/1", "v_b/3"]
    assert sample["image0"].shape == (3, 40, 60) and sample["image0"].max() <= 1.0
    assert torch.allclose(sample["H"], torch.tensor([[1, 0, 4], [0, 1, 2], [0, 0, 1.0]],
                                                    dtype=torch.float64))
    assert len(HPatchesDataset(tmp_path, subset="v")) == 2
    assert len(HPatchesDataset(tmp_path, exclude=["v_b"])) == 2


def test_adapter_rescales_homography_with_images(tmp_path: Path) -> None:
    homography = np.array([[1, 0, 4], [0, 1, 2], [0, 0, 1.0]])
    write_sequence(tmp_path, "v_b", size=(40, 80), homography=homography)
    sample = HPatchesDataset(tmp_path, max_side=40)[0]
    assert sample["image0"].shape == (3, 20, 40)
    # pixel centres: x_small = (x + 0.5) / 2 - 0.5; a shift of 4 px becomes 2 px
    assert torch.allclose(sample["H"], torch.tensor([[1, 0, 2], [0, 1, 1], [0, 0, 1.0]],
                                                    dtype=torch.float64))


def test_adapter_errors_name_the_file(tmp_path: Path) -> None:
    folder = write_sequence(tmp_path, "v_b")
    (folder / "H_1_3").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(DataError, match=r"H_1_3 holds 6 numbers, expected 3x3"):
        HPatchesDataset(tmp_path)
    (folder / "H_1_3").unlink()
    with pytest.raises(DataError, match=r"missing homography file .*H_1_3"):
        HPatchesDataset(tmp_path)
    np.savetxt(folder / "H_1_3", np.eye(3))
    (folder / "2.ppm").write_bytes(b"not an image")
    dataset = HPatchesDataset(tmp_path)
    with pytest.raises(DataError, match=r"cannot read image .*2\.ppm"):
        dataset[0]
    with pytest.raises(DataError, match="does not exist"):
        HPatchesDataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no i_\\* or v_\\* sequence"):
        HPatchesDataset(folder)


def _batch() -> dict:
    return {"id": ["v_b/1-2"], "image0": [torch.zeros(3, 40, 60)],
            "image1": [torch.zeros(3, 40, 60)], "H": torch.eye(3, dtype=torch.float64)[None],
            "kind": ["v"], "image_ids": [["v_b/1", "v_b/2"]]}


def _features(n: int = 5) -> dict:
    kp = torch.tensor([[float(i), float(i)] for i in range(n)])
    return {"keypoints0": kp, "keypoints1": kp.clone(), "descriptors0": torch.eye(n, 8),
            "descriptors1": torch.eye(n, 8)}


def test_family_contract_errors() -> None:
    family = MatchingFamily()
    batch = _batch()
    assert family.check_prediction([_features()], batch, None)[0]["keypoints0"].shape == (5, 2)
    outside = _features()
    outside["keypoints1"][0] = torch.tensor([60.0, 3.0])
    with pytest.raises(ContractError, match="outside the 60x40 image"):
        family.check_prediction([outside], batch, None)
    short = _features()
    short["descriptors0"] = short["descriptors0"][:3]
    with pytest.raises(ContractError, match="3 descriptors0 for 5 keypoints0"):
        family.check_prediction([short], batch, None)
    nan = _features()
    nan["descriptors1"][1, 2] = float("nan")
    with pytest.raises(ContractError, match="NaN"):
        family.check_prediction([nan], batch, None)
    wrong = _features()
    wrong["descriptors0"] = wrong["descriptors0"].long()
    with pytest.raises(ContractError, match="uint8 packed bits"):
        family.check_prediction([wrong], batch, None)
    matches = {k: v for k, v in _features().items() if k.startswith("keypoints")}
    matches["matches"] = torch.tensor([[0, 0], [4, 5]])
    with pytest.raises(ContractError, match="matches index outside"):
        family.check_prediction([matches], batch, None)
    with pytest.raises(ContractError, match="list of 1 dicts"):
        family.check_prediction("nope", batch, None)


def test_embedded_set_is_hpatches_layout_and_deterministic(tmp_path: Path) -> None:
    import hashlib

    from bench.synth.homography_pairs import build_homography_pairs

    spec = load_spec("matching-homography")
    dataset = build_dataset(spec)
    assert len(dataset) == 40
    assert dataset.info.meta["pairs_i"] == 20 and dataset.info.meta["pairs_v"] == 20
    manifest = json.loads((dataset.info.root / "MANIFEST.json").read_text())
    build_homography_pairs(tmp_path)
    for name in ("v_astronaut/H_1_6", "v_astronaut/6.ppm", "i_rocket/6.ppm"):
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert manifest["files"][name] == digest, name
    sample = dataset[4]
    assert sample["id"] == "i_astronaut/1-6"
    assert torch.equal(sample["H"], torch.eye(3, dtype=torch.float64))


def test_sift_run_and_predictions_file_agree(run_dirs: dict, tmp_path: Path) -> None:
    result = evaluate("matching-homography", "sift", limit=3, progress=False, **run_dirs)
    assert result.n_samples == 3
    assert result.metrics["correct_matches@3px"] > 100
    assert 0.5 < result.metrics["mma@3px"] <= 1.0
    figure = Path(result.figures[0])
    assert figure.name == "mma_curve.png" and figure.stat().st_size > 1000
    assert len(result.details["mma_curve"]["mma_all"]) == 10

    spec = load_spec("matching-homography")
    dataset = build_dataset(spec)
    from bench.registry import MODELS

    predictor = MODELS.get("sift").build(spec, dataset.info, torch.device("cpu"))
    features = {}
    for index in range(3):
        sample = dataset[index]
        batch = MatchingFamily().collate([sample])
        pair = predictor(batch)[0]
        for side in (0, 1):
            features[sample["image_ids"][side]] = {
                key: pair[f"{key}{side}"].numpy() for key in ("keypoints", "descriptors",
                                                              "scores")}
    path = tmp_path / "sift.npz"
    save_predictions(path, features)
    from_file = evaluate("matching-homography", predictions=str(path), limit=3,
                         progress=False, **run_dirs)
    for key, value in result.metrics.items():
        assert from_file.metrics[key] == pytest.approx(value), key


def test_lift_style_weights_and_run(run_dirs: dict) -> None:
    from baselines.lift_style import weights_path
    from bench.synth.homography_pairs import EVAL_IMAGES

    path = weights_path()
    assert path.stat().st_size < 2_000_000
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["train_photos"] and not set(checkpoint["train_photos"]) & set(EVAL_IMAGES)
    result = evaluate("matching-homography", "lift-style", limit=2, progress=False, **run_dirs)
    assert result.metrics["keypoints"] <= 1000
    assert result.metrics["correct_matches@3px"] > 100


def test_orb_uses_hamming_and_compare_table(run_dirs: dict, capsys: pytest.CaptureFixture
                                            ) -> None:
    from bench.cli import main

    orb = evaluate("matching-homography", "orb", limit=2, progress=False, **run_dirs)
    assert orb.metrics["putative_matches"] > 50
    code = main(["compare", "matching-homography", "--models", "sift", "orb", "--reference",
                 "sift", "--limit", "2", "--out", str(run_dirs["out_dir"]),
                 "--leaderboard-dir", str(run_dirs["leaderboard_dir"])])
    assert code == 0
    table = capsys.readouterr().out
    assert "correct_matches@3px" in table and "orb" in table and "%" in table


def test_real_task_reads_a_root_in_hpatches_layout(tmp_path: Path, run_dirs: dict) -> None:
    write_sequence(tmp_path, "i_noise", size=(96, 128))
    result = evaluate("matching-hpatches", "sift", progress=False,
                      overrides=[f"dataset.root={tmp_path}", "dataset.params.max_side=64"],
                      **run_dirs)
    assert result.n_samples == 2
    # identical images, identity homographies: every mutual match is exact
    assert result.metrics["keypoints"] > 10
    assert result.metrics["mma@1px"] == 1.0 and result.metrics["repeatability"] == 1.0
    assert result.metrics["homography_accuracy@1px"] == 1.0


class GridFeatures(torch.nn.Module):
    """A plain network: keypoints on a fixed 16-px grid, descriptors = 5x5 gray patches."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gray = image[0].mean(0)
        height, width = gray.shape
        ys, xs = torch.meshgrid(torch.arange(8, height - 8, 16), torch.arange(8, width - 8, 16),
                                indexing="ij")
        keypoints = torch.stack([xs.flatten(), ys.flatten()], dim=1).float()
        patches = torch.nn.functional.unfold(gray[None, None], 5, padding=2)[0]
        index = ys.flatten() * width + xs.flatten()
        return keypoints, patches[:, index].T.contiguous()


def test_plain_module_and_direct_matches_file(run_dirs: dict, tmp_path: Path) -> None:
    dataset = build_dataset(load_spec("matching-homography"))
    family = MatchingFamily()
    sample = dataset[0]  # i_astronaut/1-2: identity homography
    predictor = family.module_predictor(GridFeatures())
    pair = family.check_prediction(predictor(family.collate([sample])), family.collate([sample]),
                                   dataset.info)[0]
    assert pair["keypoints0"].shape[1] == 2
    assert pair["descriptors0"].shape == (len(pair["keypoints0"]), 25)
    # a file holding keypoints and, for the pair, matches: identity matches on the grid
    n = len(pair["keypoints0"])
    features = {image_id: {"keypoints": pair[f"keypoints{side}"].numpy()}
                for side, image_id in enumerate(sample["image_ids"])}
    matches = {sample["id"]: np.stack([np.arange(n), np.arange(n)], axis=1)}
    path = tmp_path / "grid.npz"
    save_predictions(path, features, matches)
    result = evaluate("matching-homography", predictions=str(path), limit=1, progress=False,
                      **run_dirs)
    assert result.metrics["putative_matches"] == n
    assert result.metrics["correct_matches@1px"] == n and result.metrics["mma@1px"] == 1.0
    assert result.metrics["homography_accuracy@1px"] == 1.0
    missing = tmp_path / "empty.npz"
    np.savez(missing, other=np.zeros(1))
    with pytest.raises(Exception, match="has no array 'i_astronaut/1/keypoints'"):
        evaluate("matching-homography", predictions=str(missing), limit=1, progress=False,
                 **run_dirs)
