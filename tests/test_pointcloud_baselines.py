"""Point-cloud baselines and the task end to end: PointNet, FPFH + SVM, predictions files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.pointcloud import (
    PointNet,
    chi2_map,
    orthogonality_loss,
    pooled_histogram,
    train_fpfh_svm,
    train_pointnet,
    weights_path,
)
from bench.errors import ModelError
from bench.runner import evaluate
from bench.spec import load_spec
from bench.synth.shapes import make_shape
from bench.synth.synthetic_shapes import write_off


def test_chi2_map_matches_scikit_learn() -> None:
    from sklearn.kernel_approximation import AdditiveChi2Sampler

    x = np.random.default_rng(0).random((6, 5))
    x[0, 0] = 0.0
    expected = AdditiveChi2Sampler(sample_steps=2, sample_interval=0.5).fit_transform(x)
    assert np.allclose(chi2_map(x), expected)


def test_pooled_histogram_by_hand() -> None:
    descriptors = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    codebook = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    feature = pooled_histogram(descriptors, codebook)
    assert np.allclose(feature, [1.9 / 3, 1.1 / 3, 2 / 3, 1 / 3, 0.0])


def test_pointnet_shapes_and_regulariser() -> None:
    torch.manual_seed(0)
    net = PointNet(5, width=0.125).eval()
    assert net(torch.randn(2, 40, 3)).shape == (2, 5)
    assert net.last_feature_transform.shape == (2, 8, 8)
    with_normals = PointNet(5, width=0.125, in_channels=6).eval()
    assert with_normals(torch.randn(2, 40, 6)).shape == (2, 5)
    assert float(orthogonality_loss(torch.eye(4).repeat(3, 1, 1))) == 0.0
    assert float(orthogonality_loss(2 * torch.eye(2)[None])) == pytest.approx(18.0)


def _tiny_task(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("box", "torus"):
        for split in ("train", "test"):
            folder = tmp_path / "data" / name / split
            folder.mkdir(parents=True)
            for index in range(3):
                mesh = make_shape(name, rng)
                write_off(folder / f"{name}_{split}{index}.off", np.asarray(mesh.vertices),
                          np.asarray(mesh.triangles))
    spec = tmp_path / "tiny.yaml"
    spec.write_text(f"""task: tiny-shapes
version: 1
family: pointcloud
description: two classes
dataset:
  adapter: modelnet40
  root: {tmp_path / "data"}
  params: {{num_points: 128, num_classes: 2, votes: 2}}
metrics:
  - name: overall_accuracy
    params: {{num_classes: 2}}
  - name: class_accuracy
    params: {{num_classes: 2, class_names: [box, torus]}}
primary_metric: overall_accuracy
""")
    return spec


@pytest.fixture()
def one_thread():
    """Tiny tensors: one intra-op thread avoids spin-waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_writes_safe_weights(tmp_path: Path, one_thread: None) -> None:
    spec = load_spec(_tiny_task(tmp_path))
    path = train_pointnet(spec, torch.device("cpu"), out=tmp_path / "pn.pt", epochs=1,
                          width=0.125)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["config"] == {"num_classes": 2, "width": 0.125, "in_channels": 3}
    PointNet(2, width=0.125).load_state_dict(checkpoint["state_dict"])
    path = train_fpfh_svm(spec, torch.device("cpu"), out=tmp_path / "svm.pt")
    params = torch.load(path, weights_only=True)
    assert params["codebook"].shape == (64, 33)
    assert params["weight"].shape[0] == 2 and params["bias"].shape == (2,)


def test_missing_weights_say_how_to_train(tmp_path: Path) -> None:
    spec = load_spec(_tiny_task(tmp_path))
    assert not weights_path("pointnet", "tiny-shapes").exists()
    with pytest.raises(ModelError, match="arbench train pointnet --task tiny-shapes"):
        evaluate(spec, "pointnet", out_dir=tmp_path / "r", leaderboard=False, progress=False)


@pytest.mark.parametrize("model", ["fpfh-svm", "pointnet"])
def test_baselines_on_the_embedded_task(model: str, run_dirs: dict[str, Path]) -> None:
    result = evaluate("synthetic-shapes", model, limit=12, progress=False, **run_dirs)
    assert result.n_samples == 12
    assert 0.0 <= result.metrics["overall_accuracy"] <= 1.0
    records = [json.loads(line) for line in
               (result.out_dir / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 12
    assert result.metrics["overall_accuracy"] == pytest.approx(
        np.mean([r["correct"] for r in records]))
    per_class = result.details["per_class_accuracy"]
    assert set(per_class) >= {"arrow", "torus"}
    assert (run_dirs["leaderboard_dir"] / "synthetic-shapes.csv").is_file()
    assert any(Path(f).name == "confusion_matrix.png" for f in result.figures)


def test_predictions_file_and_voting(tmp_path: Path, run_dirs: dict[str, Path]) -> None:
    from bench.runner import build_dataset

    spec = load_spec("synthetic-shapes")
    dataset = build_dataset(spec)
    ids = [dataset[i]["id"] for i in range(6)]
    labels = [dataset[i]["label"] for i in range(6)]
    logits = np.eye(12, dtype=np.float32)[[*labels[:5], (labels[5] + 1) % 12]]
    path = tmp_path / "preds.npz"
    np.savez(path, ids=np.array(ids), logits=logits)
    result = evaluate(spec, predictions=str(path), limit=6, progress=False, **run_dirs)
    assert result.metrics["overall_accuracy"] == pytest.approx(5 / 6)
    voted = evaluate("synthetic-shapes", "pointnet", overrides=["dataset.params.votes=3"],
                     limit=4, progress=False, leaderboard=False, out_dir=run_dirs["out_dir"])
    assert voted.metadata["protocol_hash"] != result.metadata["protocol_hash"]
